//! `_summary` and `_elements` on read (search.html#summary, #elements).

use conformance_tests::both_backends;
use conformance_tests::{json, Server, Value};

/// Creates a Patient with narrative, name, birth date and a contact, and
/// returns the path to read it.
fn full_patient(server: &Server) -> String {
    let id = server.create(&json!({
        "resourceType": "Patient",
        "text": {
            "status": "generated",
            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann Smith</div>",
        },
        "name": [{"family": "Smith", "given": ["Ann"]}],
        "birthDate": "1970-01-01",
        "contact": [{"name": {"family": "Smith", "given": ["Bob"]}}],
    }));
    format!("Patient/{id}")
}

fn is_subsetted(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t["code"] == "SUBSETTED"))
}

both_backends! {
    fn summary_true_keeps_only_summary_elements_and_marks_subsetted() {
        let server = Server::start();
        let path = full_patient(&server);
        let summary = server.read_json(&format!("{path}?_summary=true"));
        assert_eq!(summary["resourceType"], "Patient");
        assert!(summary["id"].is_string(), "{summary}");
        assert_eq!(summary["name"][0]["family"], "Smith");
        assert_eq!(summary["birthDate"], "1970-01-01");
        assert!(summary.get("contact").is_none(), "{summary}");
        assert!(summary.get("text").is_none(), "{summary}");
        assert!(is_subsetted(&summary), "no SUBSETTED tag: {summary}");
    }
}

both_backends! {
    fn summary_text_keeps_text_id_and_meta() {
        let server = Server::start();
        let path = full_patient(&server);
        let summary = server.read_json(&format!("{path}?_summary=text"));
        assert!(summary["text"]["div"].is_string(), "{summary}");
        assert!(summary["id"].is_string(), "{summary}");
        assert!(summary["meta"].is_object(), "{summary}");
        for gone in ["name", "birthDate", "contact"] {
            assert!(summary.get(gone).is_none(), "{gone} kept: {summary}");
        }
    }
}

both_backends! {
    fn summary_data_drops_only_text() {
        let server = Server::start();
        let path = full_patient(&server);
        let summary = server.read_json(&format!("{path}?_summary=data"));
        assert!(summary.get("text").is_none(), "{summary}");
        assert_eq!(summary["name"][0]["family"], "Smith");
        assert_eq!(summary["contact"][0]["name"]["given"][0], "Bob");
    }
}

both_backends! {
    fn summary_false_returns_everything() {
        let server = Server::start();
        let path = full_patient(&server);
        let full = server.read_json(&format!("{path}?_summary=false"));
        assert!(full["text"]["div"].is_string(), "{full}");
        assert_eq!(full["contact"][0]["name"]["given"][0], "Bob");
        assert!(!is_subsetted(&full), "{full}");
    }
}

both_backends! {
    fn elements_keeps_only_the_named_elements() {
        let server = Server::start();
        let path = full_patient(&server);
        let subset = server.read_json(&format!("{path}?_elements=name"));
        assert_eq!(subset["resourceType"], "Patient");
        assert!(subset["id"].is_string(), "{subset}");
        assert!(subset["meta"].is_object(), "{subset}");
        assert_eq!(subset["name"][0]["family"], "Smith");
        for gone in ["text", "birthDate", "contact"] {
            assert!(subset.get(gone).is_none(), "{gone} kept: {subset}");
        }
    }
}

both_backends! {
    fn summary_applies_to_vread() {
        let server = Server::start();
        let path = full_patient(&server);
        let summary = server.read_json(&format!("{path}/_history/1?_summary=true"));
        assert!(summary.get("contact").is_none(), "{summary}");
        assert_eq!(summary["name"][0]["family"], "Smith");
    }
}
