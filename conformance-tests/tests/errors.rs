//! Rejected requests: each answers with the right status and an
//! OperationOutcome, and leaves the store as it was.

use conformance_tests::both_backends;
use conformance_tests::{
    issue_expressions, json, patient, unique, Response, Server, FHIR_JSON, FHIR_XML,
};

/// Total number of versions on the server (system history).
fn version_count(server: &Server) -> i64 {
    server.read_json("_history?_count=1")["total"]
        .as_i64()
        .expect("history total")
}

/// POSTs `body` to `Patient` and asserts that nothing was created (on a
/// local server, where no one else writes).
fn rejected_create(server: &Server, content_type: Option<&str>, body: &[u8]) -> Response {
    let before = server.is_local().then(|| version_count(server));
    let request = server.request("POST", "Patient").accept(FHIR_JSON);
    let response = match content_type {
        Some(t) => request.body(t, body),
        None => request.body_without_type(body),
    }
    .send();
    if let Some(before) = before {
        assert_eq!(
            version_count(server),
            before,
            "the rejected create wrote something; it answered {}: {}",
            response.status,
            response.text()
        );
    }
    response
}

/// Creates a Patient, PUTs `body` over it and asserts it kept version 1.
fn rejected_update(
    server: &Server,
    content_type: Option<&str>,
    body: impl Fn(&str) -> Vec<u8>,
) -> Response {
    let id = server.create(&patient("Smith"));
    let path = format!("Patient/{id}");
    let request = server.request("PUT", &path).accept(FHIR_JSON);
    let response = match content_type {
        Some(t) => request.body(t, body(&id)),
        None => request.body_without_type(body(&id)),
    }
    .send();
    let read = server.read_json(&path);
    assert_eq!(
        read["meta"]["versionId"],
        "1",
        "the rejected update wrote {read}; it answered {}: {}",
        response.status,
        response.text()
    );
    assert_eq!(read["name"][0]["family"], "Smith");
    let history = server.read_json(&format!("{path}/_history"));
    assert_eq!(
        history["entry"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    response
}

fn json_bytes(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("serialise")
}

/// A Patient with `id` and one extra member.
fn patient_with(id: &str, name: &str, value: serde_json::Value) -> Vec<u8> {
    let mut body = patient("Changed");
    body["id"] = json!(id);
    body[name] = value;
    json_bytes(body)
}

#[track_caller]
fn assert_expression(outcome: &serde_json::Value, expression: &str) {
    let expressions = issue_expressions(outcome);
    assert!(
        expressions.iter().any(|e| e == expression),
        "no issue names {expression}: {outcome}"
    );
}

both_backends! {
    fn malformed_json_is_400() {
        let server = Server::start();
        rejected_create(&server, Some(FHIR_JSON), b"{\"resourceType\": \"Patient\",").assert_error(400);
        rejected_update(&server, Some(FHIR_JSON), |id| {
            format!("{{\"resourceType\":\"Patient\",\"id\":\"{id}\"").into_bytes()
        })
        .assert_error(400);
    }
}

both_backends! {
    fn malformed_xml_is_400() {
        let server = Server::start();
        let body = br#"<Patient xmlns="http://hl7.org/fhir"><name><family value="X"/></Patient>"#;
        rejected_create(&server, Some(FHIR_XML), body).assert_error(400);
    }
}

both_backends! {
    fn unknown_element_is_400_naming_it() {
        let server = Server::start();
        let outcome = rejected_create(
            &server,
            Some(FHIR_JSON),
            &json_bytes(json!({"resourceType": "Patient", "nme": [{"family": "Smith"}]})),
        )
        .assert_error(400);
        assert_expression(&outcome, "Patient.nme");
        let outcome = rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "nme", json!([{"family": "X"}]))
        })
        .assert_error(400);
        assert_expression(&outcome, "Patient.nme");
    }
}

both_backends! {
    fn element_of_the_wrong_type_is_400() {
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "active", json!("yes"))
        })
        .assert_error(400);
    }
}

both_backends! {
    fn invalid_date_is_400_naming_the_element() {
        let server = Server::start();
        let outcome = rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "birthDate", json!("1970-13-45"))
        })
        .assert_error(400);
        assert_expression(&outcome, "Patient.birthDate");
    }
}

both_backends! {
    /// A narrative is XHTML written verbatim into XML responses: it must be
    /// well-formed, and free of what txt-1 forbids.
    fn unsafe_or_malformed_narratives_are_400() {
        let server = Server::start();
        let div = |inner: &str| json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{inner}</div>")});
        for text in [
            div("<script>alert(1)</script>"),
            div("<p onclick=\"steal()\">Ann</p>"),
            div("<b>unclosed</div>"),
            json!({"status": "generated", "div": "<div>no namespace</div>"}),
        ] {
            let outcome = rejected_update(&server, Some(FHIR_JSON), |id| {
                patient_with(id, "text", text.clone())
            })
            .assert_error(400);
            assert_expression(&outcome, "Patient.text.div");
        }
        // A safe narrative is stored as written, and served in XML.
        let id = server.create(&{
            let mut p = patient("Smith");
            p["text"] = div("Ann <b>Smith</b> &amp; <a href=\"http://x\">co</a>");
            p
        });
        let xml = server
            .request("GET", &format!("Patient/{id}"))
            .accept(FHIR_XML)
            .send();
        assert!(
            xml.text()
                .contains("Ann <b>Smith</b> &amp; <a href=\"http://x\">co</a>"),
            "{}",
            xml.text()
        );
    }
}

both_backends! {
    fn body_of_another_resource_type_is_400() {
        let server = Server::start();
        let observation =
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
        rejected_create(&server, Some(FHIR_JSON), &json_bytes(observation.clone())).assert_error(400);
        rejected_update(&server, Some(FHIR_JSON), |id| {
            let mut body = observation.clone();
            body["id"] = json!(id);
            json_bytes(body)
        })
        .assert_error(400);
    }
}

both_backends! {
    fn update_with_an_id_differing_from_the_url_is_400() {
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |_| {
            let mut body = patient("Changed");
            body["id"] = json!(unique("other"));
            json_bytes(body)
        })
        .assert_error(400);
    }
}

both_backends! {
    fn update_without_an_id_is_400() {
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |_| json_bytes(patient("Changed"))).assert_error(400);
    }
}

both_backends! {
    fn update_without_an_id_does_not_create() {
        let server = Server::start();
        let path = format!("Patient/{}", unique("noid"));
        server.put(&path, &patient("Smith")).assert_error(400);
        server.get(&path).assert_error(404);
    }
}

both_backends! {
    fn empty_body_is_400() {
        let server = Server::start();
        rejected_create(&server, Some(FHIR_JSON), b"").assert_error(400);
    }
}

both_backends! {
    fn unsupported_content_type_is_415() {
        let server = Server::start();
        let body = json_bytes(patient("Smith"));
        rejected_create(&server, Some("text/plain"), &body).assert_error(415);
        rejected_update(&server, Some("text/plain"), |id| {
            patient_with(id, "active", json!(true))
        })
        .assert_error(415);
    }
}

both_backends! {
    fn missing_content_type_is_415() {
        let server = Server::start();
        rejected_create(&server, None, &json_bytes(patient("Smith"))).assert_error(415);
        rejected_update(&server, None, |id| patient_with(id, "active", json!(true))).assert_error(415);
    }
}

both_backends! {
    fn body_over_the_configured_limit_on_create_is_413() {
        let server = Server::local(|c| c.max_body_bytes = 1000);
        let mut body = patient("Smith");
        body["name"][0]["text"] = json!("x".repeat(2000));
        rejected_create(&server, Some(FHIR_JSON), &json_bytes(body)).assert_error(413);
    }
}

both_backends! {
    fn body_over_the_configured_limit_on_update_is_413() {
        let server = Server::local(|c| c.max_body_bytes = 1000);
        rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "gender", json!("x".repeat(2000)))
        })
        .assert_error(413);
    }
}

both_backends! {
    fn unknown_resource_type_is_404() {
        let server = Server::start();
        server.get("Foo/1").assert_error(404);
        server
            .post("Foo", &json!({"resourceType": "Foo"}))
            .assert_error(404);
        server.get("Foo/1/_history").assert_error(404);
    }
}

both_backends! {
    fn unknown_id_is_404() {
        let server = Server::start();
        server
            .get(&format!("Patient/{}", unique("none")))
            .assert_error(404);
    }
}

both_backends! {
    fn invalid_id_in_the_url_is_400() {
        let server = Server::start();
        server
            .get(&format!("Patient/{}", "a".repeat(70)))
            .assert_error(400);
        server.get("Patient/bad_id!").assert_error(400);
    }
}

both_backends! {
    fn unsupported_method_is_405_with_allow() {
        let server = Server::start();
        for (method, path) in [("DELETE", "metadata"), ("POST", "Patient/1")] {
            let response = server.request(method, path).accept(FHIR_JSON).send();
            response.assert_error(405);
            let allow = response
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow"));
            assert!(!allow.contains(method), "{method} {path}: Allow: {allow}");
        }
    }
}

both_backends! {
    fn invalid_summary_is_400() {
        let server = Server::start();
        let id = server.create(&patient("Smith"));
        server
            .get(&format!("Patient/{id}?_summary=foo"))
            .assert_error(400);
    }
}

both_backends! {
    fn unknown_xml_element_is_400_naming_it() {
        let server = Server::start();
        let body =
            br#"<Patient xmlns="http://hl7.org/fhir"><nme><family value="Smith"/></nme></Patient>"#;
        let outcome = rejected_create(&server, Some(FHIR_XML), body).assert_error(400);
        assert_expression(&outcome, "Patient.nme");
    }
}

both_backends! {
    fn null_value_is_400() {
        // json.html: properties never have null values (except to pad arrays
        // of primitives that have extensions).
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "birthDate", serde_json::Value::Null)
        })
        .assert_error(400);
    }
}

both_backends! {
    fn empty_array_is_400() {
        // json.html: arrays are never empty.
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "name", json!([]))
        })
        .assert_error(400);
    }
}

both_backends! {
    fn empty_object_is_400() {
        // ele-1: All FHIR elements must have a @value or children.
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "maritalStatus", json!({}))
        })
        .assert_error(400);
    }
}

both_backends! {
    fn empty_xml_element_is_400() {
        // ele-1: All FHIR elements must have a @value or children.
        let server = Server::start();
        let body = br#"<Patient xmlns="http://hl7.org/fhir"><maritalStatus/></Patient>"#;
        rejected_create(&server, Some(FHIR_XML), body).assert_error(400);
    }
}

both_backends! {
    fn boolean_or_number_given_as_a_json_string_is_400() {
        // json.html: boolean and number primitives are JSON booleans and numbers.
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "active", json!("true"))
        })
        .assert_error(400);
        rejected_update(&server, Some(FHIR_JSON), |id| {
            patient_with(id, "multipleBirthInteger", json!("2"))
        })
        .assert_error(400);
    }
}

both_backends! {
    fn content_after_the_json_value_is_400() {
        let server = Server::start();
        rejected_update(&server, Some(FHIR_JSON), |id| {
            let mut body = patient_with(id, "active", json!(true));
            body.extend_from_slice(b" {\"resourceType\": \"Patient\"}");
            body
        })
        .assert_error(400);
    }
}

both_backends! {
    fn ids_are_at_most_64_characters() {
        let server = Server::start();
        let id = format!("{}-{}", unique("long"), "a".repeat(64))[..64].to_owned();
        let mut body = patient("Smith");
        body["id"] = json!(id);
        server
            .put(&format!("Patient/{id}"), &body)
            .assert_status(201);
        server.get(&format!("Patient/{id}")).assert_status(200);
        let too_long = format!("{id}b");
        body["id"] = json!(too_long);
        server
            .put(&format!("Patient/{too_long}"), &body)
            .assert_error(400);
    }
}
