//! Content negotiation (http.html#mime): `Accept`, `_format`, `_pretty`
//! and XML request bodies.

use conformance_tests::both_backends;
use conformance_tests::{patient, unique, Response, Server, FHIR_JSON, FHIR_XML};

fn read_accepting(server: &Server, path: &str, accept: &str) -> Response {
    server.request("GET", path).accept(accept).send()
}

/// Asserts a 200 response whose body is a Patient in `content_type`.
#[track_caller]
fn assert_patient_as(response: &Response, content_type: &str) {
    response.assert_status(200);
    assert_eq!(response.content_type(), content_type);
    if content_type.contains("json") {
        assert_eq!(response.json()["resourceType"], "Patient");
    } else {
        let text = response.text();
        assert!(text.contains("<Patient"), "{text}");
        assert!(text.contains("xmlns=\"http://hl7.org/fhir\""), "{text}");
    }
}

both_backends! {
    fn accept_picks_each_supported_media_type() {
        let server = Server::start();
        let path = format!("Patient/{}", server.create(&patient("Smith")));
        for media in [
            FHIR_JSON,
            "application/json",
            FHIR_XML,
            "application/xml",
            "text/xml",
        ] {
            assert_patient_as(&read_accepting(&server, &path, media), media);
        }
    }
}

both_backends! {
    fn accept_any_gives_fhir_json() {
        let server = Server::start();
        let path = format!("Patient/{}", server.create(&patient("Smith")));
        assert_patient_as(&read_accepting(&server, &path, "*/*"), FHIR_JSON);
    }
}

both_backends! {
    fn no_accept_header_gives_fhir_json() {
        let server = Server::start();
        let path = format!("Patient/{}", server.create(&patient("Smith")));
        assert_patient_as(&server.send_without_accept("GET", &path), FHIR_JSON);
    }
}

both_backends! {
    fn accept_prefers_the_highest_quality() {
        let server = Server::start();
        let path = format!("Patient/{}", server.create(&patient("Smith")));
        let accept = "application/fhir+json;q=0.5, application/fhir+xml";
        assert_patient_as(&read_accepting(&server, &path, accept), FHIR_XML);
    }
}

both_backends! {
    fn format_parameter_overrides_accept() {
        let server = Server::start();
        let id = server.create(&patient("Smith"));
        for (format, accept, expected) in [
            ("json", FHIR_XML, FHIR_JSON),
            ("xml", FHIR_JSON, FHIR_XML),
            ("application/fhir%2Bxml", FHIR_JSON, FHIR_XML),
            ("application/fhir%2Bjson", FHIR_XML, FHIR_JSON),
        ] {
            let path = format!("Patient/{id}?_format={format}");
            assert_patient_as(&read_accepting(&server, &path, accept), expected);
        }
    }
}

both_backends! {
    fn format_parameter_with_an_unencoded_plus_is_understood() {
        // `application/fhir+xml` in a query string decodes to
        // `application/fhir xml`; clients often send it so.
        let server = Server::start();
        let id = server.create(&patient("Smith"));
        let path = format!("Patient/{id}?_format=application/fhir+xml");
        assert_patient_as(&read_accepting(&server, &path, FHIR_JSON), FHIR_XML);
    }
}

both_backends! {
    fn unsupported_accept_is_406_with_an_outcome() {
        let server = Server::start();
        let path = format!("Patient/{}", server.create(&patient("Smith")));
        read_accepting(&server, &path, "text/plain").assert_error(406);
    }
}

both_backends! {
    fn accept_of_another_fhir_version_is_406() {
        let server = Server::start();
        let path = format!("Patient/{}", server.create(&patient("Smith")));
        read_accepting(&server, &path, "application/fhir+json; fhirVersion=3.0").assert_error(406);
    }
}

both_backends! {
    fn accept_of_fhir_version_4_0_is_served() {
        let server = Server::start();
        let path = format!("Patient/{}", server.create(&patient("Smith")));
        let response = read_accepting(&server, &path, "application/fhir+json; fhirVersion=4.0");
        assert_patient_as(&response, FHIR_JSON);
    }
}

both_backends! {
    fn pretty_gives_indented_json() {
        let server = Server::start();
        let id = server.create(&patient("Smith"));
        let pretty = server.get(&format!("Patient/{id}?_pretty=true"));
        pretty.assert_status(200);
        let text = pretty.text();
        assert!(text.contains("\n  \""), "not indented: {text}");
        assert_eq!(pretty.json()["id"], id.as_str());
    }
}

const XML_PATIENT: &str = r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="Xmlson"/><given value="Ann"/></name><birthDate value="1980-02-03"/></Patient>"#;

both_backends! {
    fn xml_body_creates_a_resource_readable_as_json_and_xml() {
        let server = Server::start();
        let created = server
            .request("POST", "Patient")
            .body(FHIR_XML, XML_PATIENT)
            .accept(FHIR_JSON)
            .send();
        created.assert_status(201);
        let id = created.json()["id"].as_str().expect("id").to_owned();

        let json = server.read_json(&format!("Patient/{id}"));
        assert_eq!(json["name"][0]["family"], "Xmlson");
        assert_eq!(json["name"][0]["given"][0], "Ann");
        assert_eq!(json["birthDate"], "1980-02-03");

        let xml = read_accepting(&server, &format!("Patient/{id}"), FHIR_XML);
        assert_patient_as(&xml, FHIR_XML);
        let text = xml.text();
        assert!(text.contains(r#"<family value="Xmlson"/>"#), "{text}");
        assert!(
            text.contains(r#"<birthDate value="1980-02-03"/>"#),
            "{text}"
        );
    }
}

both_backends! {
    fn create_answers_in_the_negotiated_format() {
        let server = Server::start();
        let created = server
            .request("POST", "Patient")
            .body(FHIR_XML, XML_PATIENT)
            .accept(FHIR_XML)
            .send();
        created.assert_status(201);
        assert_eq!(created.content_type(), FHIR_XML);
        assert!(created.text().contains("<Patient"), "{}", created.text());
    }
}

both_backends! {
    fn errors_are_xml_when_xml_was_negotiated() {
        let server = Server::start();
        let path = format!("Patient/{}", unique("none"));
        let response = read_accepting(&server, &path, FHIR_XML);
        response.assert_status(404);
        assert_eq!(response.content_type(), FHIR_XML);
        assert!(
            response.text().contains("<OperationOutcome"),
            "{}",
            response.text()
        );
    }
}

both_backends! {
    fn errors_outside_resource_routes_are_xml_when_xml_was_negotiated() {
        let server = Server::start();
        for (method, path) in [("DELETE", "metadata"), ("GET", "Patient/1/2/3/4")] {
            let response = server.request(method, path).accept(FHIR_XML).send();
            assert!(
                response.status >= 400,
                "{method} {path}: {}",
                response.status
            );
            assert_eq!(response.content_type(), FHIR_XML, "{method} {path}");
            assert!(
                response.text().contains("<OperationOutcome"),
                "{}",
                response.text()
            );
        }
    }
}

both_backends! {
    fn bodies_in_every_fhir_media_type_are_accepted() {
        let server = Server::start();
        let json = serde_json::to_vec(&patient("Smith")).expect("serialise");
        for media in [
            FHIR_JSON,
            "application/json",
            "application/fhir+json; charset=utf-8",
        ] {
            let response = server
                .request("POST", "Patient")
                .body(media, json.clone())
                .send();
            assert_eq!(response.status, 201, "{media}: {}", response.text());
        }
        for media in [FHIR_XML, "application/xml", "text/xml"] {
            let response = server
                .request("POST", "Patient")
                .body(media, XML_PATIENT)
                .send();
            assert_eq!(response.status, 201, "{media}: {}", response.text());
        }
    }
}

both_backends! {
    fn decimal_precision_is_kept_in_json_and_xml() {
        let server = Server::start();
        let body = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}"#;
        let created = server
            .request("POST", "Observation")
            .body(FHIR_JSON, body)
            .send();
        created.assert_status(201);
        let path = format!("Observation/{}", created.json()["id"].as_str().expect("id"));
        let json = server.get(&path).text();
        assert!(json.contains("\"value\":1.50"), "{json}");
        let xml = read_accepting(&server, &path, FHIR_XML).text();
        assert!(xml.contains(r#"<value value="1.50"/>"#), "{xml}");
    }
}

const NARRATIVE: &str =
    r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>Ann <b>Smith</b> &amp; co</p></div>"#;

both_backends! {
    fn narrative_from_xml_keeps_its_text() {
        let server = Server::start();
        let xml = format!(
            r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/>{NARRATIVE}</text></Patient>"#
        );
        let created = server.request("POST", "Patient").body(FHIR_XML, xml).send();
        created.assert_status(201);
        let id = created.json()["id"].as_str().expect("id").to_owned();
        let div = server.read_json(&format!("Patient/{id}"))["text"]["div"].clone();
        assert!(
            div.as_str()
                .is_some_and(|d| d.contains("<p>Ann <b>Smith</b> &amp; co</p>")),
            "narrative text changed: {div}"
        );
    }
}

both_backends! {
    fn narrative_from_json_keeps_its_text_in_xml() {
        let server = Server::start();
        let id = server.create(&conformance_tests::json!({
            "resourceType": "Patient",
            "text": {"status": "generated", "div": NARRATIVE},
        }));
        let xml = read_accepting(&server, &format!("Patient/{id}"), FHIR_XML).text();
        assert!(
            xml.contains("Ann <b>Smith</b> &amp; co"),
            "narrative text changed: {xml}"
        );
    }
}
