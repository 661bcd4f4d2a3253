//! A SearchParameter resource defines a new search parameter: it is
//! searchable after `$reindex` of its base type, and then advertised.

use std::time::{Duration, Instant};

use conformance_tests::both_backends;
use conformance_tests::{json, unique, Server};

both_backends! {
    fn a_custom_parameter_becomes_searchable_after_reindex() {
        let server = Server::start();
        if !server.is_local() {
            return; // $reindex is Hearth's operation
        }
        let code = unique("marital-text");
        let p =
            server.create(&json!({"resourceType": "Patient", "maritalStatus": {"text": "Married"}}));
        let created = server.post(
            "SearchParameter",
            &json!({
                "resourceType": "SearchParameter", "url": format!("http://example.org/SearchParameter/{code}"),
                "name": "maritalText", "status": "active", "description": "Marital status text",
                "code": code, "base": ["Patient"], "type": "string", "expression": "Patient.maritalStatus.text"
            }),
        );
        assert_eq!(created.status, 201, "{}", created.text());

        // Not yet reindexed: strict handling refuses it.
        let early = server
            .request("GET", &format!("Patient?{code}=married"))
            .header("Prefer", "handling=strict")
            .send();
        assert_eq!(early.status, 400, "{}", early.text());

        let kicked = server.request("POST", "Patient/$reindex").send();
        assert_eq!(kicked.status, 202, "{}", kicked.text());
        let status_url = kicked
            .header("content-location")
            .expect("Content-Location")
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = server.get(&status_url);
            if status.status == 200 {
                break;
            }
            assert_eq!(status.status, 202, "{}", status.text());
            assert!(status.header("x-progress").is_some());
            assert!(Instant::now() < deadline, "reindex did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }

        let found = server
            .request("GET", &format!("Patient?{code}=married"))
            .header("Prefer", "handling=strict")
            .send();
        assert_eq!(found.status, 200, "{}", found.text());
        let ids: Vec<String> = found.json()["entry"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|x| x["resource"]["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ids, vec![p.clone()]);

        // Written after the parameter exists: indexed straight away.
        let later = server
            .create(&json!({"resourceType": "Patient", "maritalStatus": {"text": "Married twice"}}));
        let found = server.get(&format!("Patient?{code}=married&_summary=count"));
        assert_eq!(found.json()["total"], 2, "{later}");

        let statement = server.get("metadata").json();
        let patient = statement["rest"][0]["resource"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["type"] == "Patient")
            .expect("Patient")
            .clone();
        assert!(patient["searchParam"]
            .as_array()
            .expect("searchParam")
            .iter()
            .any(|p| p["name"] == code.as_str()));
    }
}

both_backends! {
    fn an_active_search_parameter_that_cannot_compile_is_rejected() {
        let server = Server::start();
        if !server.is_local() {
            return;
        }
        let response = server.post(
            "SearchParameter",
            &json!({
                "resourceType": "SearchParameter", "url": "http://example.org/SearchParameter/broken",
                "name": "broken", "status": "active", "description": "x",
                "code": "broken", "base": ["Patient"], "type": "string", "expression": "Patient.(("
            }),
        );
        response.assert_outcome(400, "invalid");
    }
}

both_backends! {
    fn an_unknown_async_request_is_404() {
        let server = Server::start();
        if !server.is_local() {
            return;
        }
        server
            .get("_async/no-such-job")
            .assert_outcome(404, "not-found");
    }
}
