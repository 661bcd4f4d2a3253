//! The capabilities interaction (http.html#capabilities): `GET /metadata`.

use conformance_tests::{Server, Value, FHIR_XML};

fn metadata(server: &Server) -> Value {
    let statement = server.read_json("metadata");
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    statement
}

fn codes(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["code"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn metadata_is_an_r4_capability_statement() {
    let server = Server::start();
    let statement = metadata(&server);
    assert_eq!(statement["fhirVersion"], "4.0.1");
    assert_eq!(statement["kind"], "instance");
    let formats: Vec<&str> = statement["format"]
        .as_array()
        .expect("format")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(formats.iter().any(|f| f.contains("json")), "{formats:?}");
    assert!(formats.iter().any(|f| f.contains("xml")), "{formats:?}");
}

#[test]
fn metadata_lists_the_patient_interactions() {
    let server = Server::start();
    let statement = metadata(&server);
    let rest = &statement["rest"][0];
    assert_eq!(rest["mode"], "server");
    let patient = rest["resource"]
        .as_array()
        .expect("rest.resource")
        .iter()
        .find(|r| r["type"] == "Patient")
        .expect("Patient resource");
    let interactions = codes(&patient["interaction"]);
    for code in [
        "read",
        "vread",
        "create",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
    ] {
        assert!(
            interactions.iter().any(|c| c == code),
            "Patient lacks {code}: {interactions:?}"
        );
    }
    assert!(
        codes(&rest["interaction"])
            .iter()
            .any(|c| c == "history-system"),
        "{rest}"
    );
}

#[test]
fn metadata_claims_no_search_when_search_is_not_implemented() {
    let server = Server::start();
    if !server.is_local() {
        return; // other servers may implement search
    }
    let statement = metadata(&server);
    for resource in statement["rest"][0]["resource"]
        .as_array()
        .expect("rest.resource")
    {
        assert!(
            !codes(&resource["interaction"])
                .iter()
                .any(|c| c == "search-type"),
            "{} claims search-type",
            resource["type"]
        );
        assert!(
            resource.get("searchParam").is_none(),
            "{}",
            resource["type"]
        );
    }
    assert!(!codes(&statement["rest"][0]["interaction"])
        .iter()
        .any(|c| c == "search-system"));
}

#[test]
fn metadata_is_available_as_xml() {
    let server = Server::start();
    let response = server.request("GET", "metadata").accept(FHIR_XML).send();
    response.assert_status(200);
    assert_eq!(response.content_type(), FHIR_XML);
    let text = response.text();
    assert!(text.contains("<CapabilityStatement"), "{text}");
    assert!(text.contains(r#"<fhirVersion value="4.0.1"/>"#), "{text}");
}
