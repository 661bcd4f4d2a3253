//! The capabilities interaction (http.html#capabilities): `GET /metadata`.

use conformance_tests::both_backends;
use conformance_tests::{Server, Value, FHIR_JSON, FHIR_XML};

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

both_backends! {
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
}

both_backends! {
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
}

both_backends! {
    fn every_search_parameter_claimed_for_patient_and_observation_is_accepted() {
        let server = Server::start();
        let statement = metadata(&server);
        let rest = &statement["rest"][0];
        assert!(codes(&rest["interaction"])
            .iter()
            .any(|c| c == "search-system"));
        for resource_type in ["Patient", "Observation"] {
            let resource = rest["resource"]
                .as_array()
                .expect("rest.resource")
                .iter()
                .find(|r| r["type"] == resource_type)
                .expect("resource listed");
            assert!(codes(&resource["interaction"])
                .iter()
                .any(|c| c == "search-type"));
            let params = resource["searchParam"].as_array().expect("searchParam");
            assert!(
                params.len() > 10,
                "{resource_type} lists only {} parameters",
                params.len()
            );
            for param in params {
                let name = param["name"].as_str().expect("name");
                let value = match param["type"].as_str().expect("type") {
                    // A composite's value depends on its components' types;
                    // the search tests cover them.
                    "composite" => continue,
                    "date" => "ge2020-01-01",
                    "number" | "quantity" => "1",
                    "reference" => "Patient/x",
                    _ => "x",
                };
                // Strict handling: a claimed parameter must not be ignored.
                let response = server
                    .request("GET", &format!("{resource_type}?{name}={value}"))
                    .header("Prefer", "handling=strict")
                    .accept(FHIR_JSON)
                    .send();
                assert_eq!(
                    response.status,
                    200,
                    "{resource_type}?{name}: {}",
                    response.text()
                );
            }
        }
    }
}

both_backends! {
    fn metadata_is_available_as_xml() {
        let server = Server::start();
        let response = server.request("GET", "metadata").accept(FHIR_XML).send();
        response.assert_status(200);
        assert_eq!(response.content_type(), FHIR_XML);
        let text = response.text();
        assert!(text.contains("<CapabilityStatement"), "{text}");
        assert!(text.contains(r#"<fhirVersion value="4.0.1"/>"#), "{text}");
    }
}

both_backends! {
    fn metadata_states_the_limits_it_enforces() {
        let server = Server::local(|c| {
            c.max_bundle_entries = 123;
            c.max_includes = 45;
        });
        let statement = metadata(&server);
        let documentation = statement["rest"][0]["documentation"].as_str().unwrap_or_default();
        assert!(documentation.contains("at most 123 entries"), "{documentation}");
        assert!(documentation.contains("at most 45 resources to a page"), "{documentation}");
    }
}
