//! Managing resource contention with `If-Match` (http.html#concurrency) and
//! conditional read with `If-None-Match` / `If-Modified-Since`
//! (http.html#cread).

use conformance_tests::both_backends;
use conformance_tests::{json, patient, Response, Server};

/// Creates a Patient and updates it once: its current version is 2.
fn patient_at_version_2(server: &Server) -> String {
    let id = server.create(&patient("Smith"));
    let mut body = patient("Jones");
    body["id"] = json!(id);
    server
        .put(&format!("Patient/{id}"), &body)
        .assert_status(200);
    id
}

fn update_if_match(server: &Server, id: &str, if_match: &str) -> Response {
    let mut body = patient("Changed");
    body["id"] = json!(id);
    server
        .request("PUT", &format!("Patient/{id}"))
        .header("If-Match", if_match)
        .json(&body)
        .send()
}

/// Asserts the Patient is still at version 2 with its family name Jones.
#[track_caller]
fn assert_unchanged(server: &Server, id: &str) {
    let read = server.read_json(&format!("Patient/{id}"));
    assert_eq!(read["meta"]["versionId"], "2", "{read}");
    assert_eq!(read["name"][0]["family"], "Jones", "{read}");
}

fn get_with(server: &Server, path: &str, name: &str, value: &str) -> Response {
    server
        .request("GET", path)
        .accept(conformance_tests::FHIR_JSON)
        .header(name, value)
        .send()
}

both_backends! {
    fn update_with_matching_if_match_succeeds() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        let response = update_if_match(&server, &id, "W/\"2\"");
        response.assert_status(200);
        assert_eq!(response.etag(), Some("W/\"3\""));
    }
}

both_backends! {
    fn update_with_stale_if_match_is_412_and_changes_nothing() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        update_if_match(&server, &id, "W/\"1\"").assert_error(412);
        assert_unchanged(&server, &id);
    }
}

both_backends! {
    fn update_with_malformed_if_match_is_400_and_changes_nothing() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        update_if_match(&server, &id, "version two").assert_error(400);
        assert_unchanged(&server, &id);
    }
}

both_backends! {
    fn delete_with_stale_if_match_is_412_and_keeps_the_resource() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        server
            .request("DELETE", &format!("Patient/{id}"))
            .header("If-Match", "W/\"1\"")
            .send()
            .assert_error(412);
        assert_unchanged(&server, &id);
    }
}

both_backends! {
    fn delete_with_matching_if_match_deletes() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        let deleted = server
            .request("DELETE", &format!("Patient/{id}"))
            .header("If-Match", "W/\"2\"")
            .send();
        assert!(matches!(deleted.status, 200 | 204), "{}", deleted.text());
        server.get(&format!("Patient/{id}")).assert_error(410);
    }
}

both_backends! {
    fn read_with_if_none_match_of_the_current_version_is_304_without_body() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        let response = get_with(
            &server,
            &format!("Patient/{id}"),
            "If-None-Match",
            "W/\"2\"",
        );
        response.assert_status(304);
        assert!(response.body.is_empty(), "{}", response.text());
    }
}

both_backends! {
    fn read_with_if_none_match_star_is_304() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        let response = get_with(&server, &format!("Patient/{id}"), "If-None-Match", "*");
        response.assert_status(304);
        assert!(response.body.is_empty(), "{}", response.text());
    }
}

both_backends! {
    fn read_with_if_none_match_of_an_old_version_is_200() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        let response = get_with(
            &server,
            &format!("Patient/{id}"),
            "If-None-Match",
            "W/\"1\"",
        );
        response.assert_status(200);
        assert_eq!(response.etag(), Some("W/\"2\""));
        assert_eq!(response.json()["name"][0]["family"], "Jones");
    }
}

both_backends! {
    fn read_with_if_modified_since_last_modified_is_304() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        let path = format!("Patient/{id}");
        let read = server.get(&path);
        let last_modified = read.header("last-modified").expect("Last-Modified");
        let response = get_with(&server, &path, "If-Modified-Since", last_modified);
        response.assert_status(304);
        assert!(response.body.is_empty(), "{}", response.text());
    }
}

both_backends! {
    fn read_with_if_modified_since_an_earlier_date_is_200() {
        let server = Server::start();
        let id = patient_at_version_2(&server);
        let response = get_with(
            &server,
            &format!("Patient/{id}"),
            "If-Modified-Since",
            "Mon, 01 Jan 2001 00:00:00 GMT",
        );
        response.assert_status(200);
        assert_eq!(response.json()["name"][0]["family"], "Jones");
    }
}
