//! The history interactions (http.html#history): instance, type and
//! system, paging, `_since` and `_at`.

use std::time::Duration;

use conformance_tests::both_backends;
use conformance_tests::{encode, json, link, patient, Server, Value};

/// PUTs the Patient `id` with the family name `family`; returns the body.
fn update(server: &Server, id: &str, family: &str) -> Value {
    let mut body = patient(family);
    body["id"] = json!(id);
    let response = server.put(&format!("Patient/{id}"), &body);
    response.assert_status(200);
    response.json()
}

/// Creates a Patient and updates it twice: versions 1 to 3.
fn patient_with_three_versions(server: &Server) -> String {
    let id = server.create(&patient("One"));
    update(server, &id, "Two");
    update(server, &id, "Three");
    id
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

/// (type/id, version) of each entry, from its response ETag.
fn versions(bundle: &Value) -> Vec<(String, String)> {
    entries(bundle)
        .iter()
        .map(|e| {
            let full_url = e["fullUrl"].as_str().unwrap_or_default();
            let tail: Vec<&str> = full_url.rsplitn(3, '/').collect();
            let reference = match tail.as_slice() {
                [id, resource_type, ..] => format!("{resource_type}/{id}"),
                _ => full_url.to_owned(),
            };
            let etag = e["response"]["etag"].as_str().unwrap_or_default();
            (
                reference,
                etag.trim_start_matches("W/").trim_matches('"').to_owned(),
            )
        })
        .collect()
}

fn version_numbers(bundle: &Value) -> Vec<String> {
    versions(bundle).into_iter().map(|(_, v)| v).collect()
}

both_backends! {
    fn instance_history_lists_every_version_newest_first() {
        let server = Server::start();
        let id = server.create(&patient("One"));
        update(&server, &id, "Two");
        server.delete(&format!("Patient/{id}"));

        let history = server.read_json(&format!("Patient/{id}/_history"));
        assert_eq!(history["resourceType"], "Bundle");
        assert_eq!(history["type"], "history");
        assert_eq!(history["total"], 3);
        let entries = entries(&history);
        let methods: Vec<&str> = entries
            .iter()
            .map(|e| e["request"]["method"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(methods, ["DELETE", "PUT", "POST"]);
        assert_eq!(version_numbers(&history), ["3", "2", "1"]);
        assert!(
            entries[0].get("resource").is_none(),
            "tombstone with a resource"
        );
        assert_eq!(entries[1]["resource"]["name"][0]["family"], "Two");
        assert_eq!(entries[1]["resource"]["meta"]["versionId"], "2");
        assert_eq!(entries[2]["resource"]["name"][0]["family"], "One");
        for entry in &entries {
            let full_url = entry["fullUrl"].as_str().expect("fullUrl");
            assert!(full_url.ends_with(&format!("Patient/{id}")), "{full_url}");
        }
    }
}

both_backends! {
    fn type_history_lists_the_versions_of_that_type_newest_first() {
        let server = Server::start();
        let a = server.create(&patient("A"));
        let since = server.read_json(&format!("Patient/{a}"))["meta"]["lastUpdated"]
            .as_str()
            .expect("lastUpdated")
            .to_owned();
        let b = server.create(&patient("B"));
        update(&server, &a, "A2");
        server
            .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}));

        let history = server.read_json(&format!("Patient/_history?_since={}", encode(&since)));
        assert_eq!(history["type"], "history");
        let ours: Vec<(String, String)> = versions(&history)
            .into_iter()
            .filter(|(r, _)| *r == format!("Patient/{a}") || *r == format!("Patient/{b}"))
            .collect();
        let expected = [
            (format!("Patient/{a}"), "2"),
            (format!("Patient/{b}"), "1"),
            (format!("Patient/{a}"), "1"),
        ];
        assert_eq!(ours, expected.map(|(r, v)| (r, v.to_owned())));
        for entry in entries(&history) {
            assert_eq!(entry["resource"]["resourceType"], "Patient", "{entry}");
        }
    }
}

both_backends! {
    fn system_history_lists_versions_of_every_type_newest_first() {
        let server = Server::start();
        let p = server.create(&patient("A"));
        let since = server.read_json(&format!("Patient/{p}"))["meta"]["lastUpdated"]
            .as_str()
            .expect("lastUpdated")
            .to_owned();
        let o = server
            .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}));

        let history = server.read_json(&format!("_history?_since={}", encode(&since)));
        assert_eq!(history["type"], "history");
        let ours: Vec<String> = versions(&history)
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| *r == format!("Patient/{p}") || *r == format!("Observation/{o}"))
            .collect();
        assert_eq!(ours, [format!("Observation/{o}"), format!("Patient/{p}")]);
        let methods: Vec<Value> = entries(&history)
            .iter()
            .map(|e| e["request"]["method"].clone())
            .collect();
        assert!(
            methods
                .iter()
                .all(|m| m == "POST" || m == "PUT" || m == "DELETE" || m == "PATCH"),
            "{methods:?}"
        );
    }
}

both_backends! {
    fn history_pages_can_be_followed_to_see_each_version_once() {
        let server = Server::start();
        let id = patient_with_three_versions(&server);
        let mut page = server.read_json(&format!("Patient/{id}/_history?_count=1"));
        assert_eq!(page["total"], 3);
        let mut seen = version_numbers(&page);
        while let Some(next) = server.follow(&page, "next") {
            assert_eq!(entries(&next).len(), 1, "{next}");
            seen.extend(version_numbers(&next));
            assert!(seen.len() <= 3, "paging does not end: {seen:?}");
            page = next;
        }
        assert_eq!(seen, ["3", "2", "1"]);
    }
}

both_backends! {
    fn history_pages_link_first_last_and_previous() {
        let server = Server::start();
        let id = patient_with_three_versions(&server);
        let first_page = server.read_json(&format!("Patient/{id}/_history?_count=1"));
        assert!(link(&first_page, "previous").is_none(), "{first_page}");

        let last = server.follow(&first_page, "last").expect("last link");
        assert_eq!(version_numbers(&last), ["1"]);
        assert!(link(&last, "next").is_none(), "{last}");
        let previous = server.follow(&last, "previous").expect("previous link");
        assert_eq!(version_numbers(&previous), ["2"]);
        let first = server.follow(&previous, "first").expect("first link");
        assert_eq!(version_numbers(&first), ["3"]);
    }
}

both_backends! {
    fn history_paging_is_stable_while_new_versions_are_written() {
        let server = Server::start();
        let id = patient_with_three_versions(&server);
        let first = server.read_json(&format!("Patient/{id}/_history?_count=1"));
        assert_eq!(version_numbers(&first), ["3"]);

        update(&server, &id, "Four");

        let second = server.follow(&first, "next").expect("next link");
        assert_eq!(version_numbers(&second), ["2"]);
        let third = server.follow(&second, "next").expect("next link");
        assert_eq!(version_numbers(&third), ["1"]);
        assert!(link(&third, "next").is_none(), "{third}");
        // A fresh history request does show the new version.
        let fresh = server.read_json(&format!("Patient/{id}/_history?_count=1"));
        assert_eq!(version_numbers(&fresh), ["4"]);
    }
}

/// Creates a Patient and updates it more than a second later (so the
/// versions differ even at the one-second precision of some servers);
/// returns the id and the lastUpdated of both versions.
fn patient_with_two_timed_versions(server: &Server) -> (String, String, String) {
    let id = server.create(&patient("One"));
    let v1 = server.read_json(&format!("Patient/{id}"))["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_owned();
    std::thread::sleep(Duration::from_millis(1100));
    let v2 = update(server, &id, "Two")["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_owned();
    (id, v1, v2)
}

both_backends! {
    fn since_keeps_only_versions_at_or_after_the_instant() {
        let server = Server::start();
        let (id, _, v2) = patient_with_two_timed_versions(&server);
        let history = server.read_json(&format!("Patient/{id}/_history?_since={}", encode(&v2)));
        assert_eq!(version_numbers(&history), ["2"]);
    }
}

both_backends! {
    fn at_keeps_only_versions_current_at_the_instant() {
        let server = Server::start();
        let (id, v1, _) = patient_with_two_timed_versions(&server);
        let history = server.read_json(&format!("Patient/{id}/_history?_at={}", encode(&v1)));
        assert_eq!(version_numbers(&history), ["1"]);
    }
}

both_backends! {
    fn invalid_since_is_400() {
        let server = Server::start();
        let id = server.create(&patient("One"));
        server
            .get(&format!("Patient/{id}/_history?_since=yesterday"))
            .assert_error(400);
        server.get("_history?_since=2024-13-45").assert_error(400);
    }
}

both_backends! {
    fn history_is_available_as_xml() {
        let server = Server::start();
        let id = server.create(&patient("One"));
        let response = server
            .request("GET", &format!("Patient/{id}/_history"))
            .accept(conformance_tests::FHIR_XML)
            .send();
        response.assert_status(200);
        assert_eq!(response.content_type(), conformance_tests::FHIR_XML);
        let text = response.text();
        assert!(text.contains("<Bundle"), "{text}");
        assert!(text.contains(r#"<type value="history"/>"#), "{text}");
    }
}

both_backends! {
    fn a_snapshot_the_server_did_not_give_is_400() {
        let server = Server::start();
        if !server.is_local() {
            return; // the snapshot's form is Hearth's own
        }
        server.create(&patient("Snap"));
        for forged in ["abc", "-1", "5~1:2:3", "5~9:2:", "5~1:x:"] {
            server
                .get(&format!("_history?_snapshot={}", conformance_tests::encode(forged)))
                .assert_error(400);
        }
        // A PostgreSQL snapshot is valid on PostgreSQL only.
        let foreign = server.get(&format!("_history?_snapshot={}", conformance_tests::encode("5~1:3:2")));
        match hearth_store::testing::backend() {
            hearth_store::testing::Backend::Sqlite => {
                foreign.assert_error(400);
            }
            hearth_store::testing::Backend::Postgres => {
                foreign.assert_status(200);
            }
        }
    }
}
