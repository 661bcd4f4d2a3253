//! read, vread, create, update and delete (http.html#read … #delete), and
//! `Prefer: return` on writes (http.html#return).

use conformance_tests::both_backends;
use conformance_tests::{json, patient, unique, Server, Value};

/// Creates a Patient and returns its id.
fn create_patient(server: &Server) -> String {
    server.create(&patient("Smith"))
}

/// PUTs the Patient `id` with the family name `family`.
fn put_patient(server: &Server, id: &str, family: &str) -> conformance_tests::Response {
    let mut body = patient(family);
    body["id"] = json!(id);
    server.put(&format!("Patient/{id}"), &body)
}

both_backends! {
    fn create_answers_201_with_location_etag_and_last_modified() {
        let server = Server::start();
        let response = server.post("Patient", &patient("Smith"));
        response.assert_status(201);
        let body = response.json();
        let id = body["id"].as_str().expect("server-assigned id");
        assert_eq!(
            response.header("location"),
            Some(format!("{}/Patient/{id}/_history/1", server.base).as_str())
        );
        assert_eq!(response.etag(), Some("W/\"1\""));
        assert!(response.header("last-modified").is_some());
        assert_eq!(body["meta"]["versionId"], "1");
        assert!(body["meta"]["lastUpdated"].is_string(), "{body}");
        assert_eq!(body["name"][0]["family"], "Smith");
    }
}

both_backends! {
    fn create_ignores_a_client_supplied_id() {
        let server = Server::start();
        let wanted = unique("client");
        let mut body = patient("Smith");
        body["id"] = json!(wanted);
        let id = server.create(&body);
        assert_ne!(id, wanted);
        server.get(&format!("Patient/{id}")).assert_status(200);
        server.get(&format!("Patient/{wanted}")).assert_error(404);
    }
}

both_backends! {
    fn read_returns_the_current_version_with_etag_and_last_modified() {
        let server = Server::start();
        let id = create_patient(&server);
        let read = server.get(&format!("Patient/{id}"));
        read.assert_status(200);
        assert_eq!(read.etag(), Some("W/\"1\""));
        assert!(read.header("last-modified").is_some());
        let body = read.json();
        assert_eq!(body["resourceType"], "Patient");
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["meta"]["versionId"], "1");
    }
}

both_backends! {
    fn update_answers_200_with_the_next_version() {
        let server = Server::start();
        let id = create_patient(&server);
        let response = put_patient(&server, &id, "Jones");
        response.assert_status(200);
        assert_eq!(response.etag(), Some("W/\"2\""));
        assert!(response.header("last-modified").is_some());
        assert_eq!(response.json()["meta"]["versionId"], "2");
        let read = server.read_json(&format!("Patient/{id}"));
        assert_eq!(read["name"][0]["family"], "Jones");
        assert_eq!(read["meta"]["versionId"], "2");
    }
}

both_backends! {
    fn update_of_a_new_id_creates_it_with_201() {
        let server = Server::start();
        let id = unique("upd");
        let response = put_patient(&server, &id, "Smith");
        response.assert_status(201);
        assert_eq!(response.etag(), Some("W/\"1\""));
        assert_eq!(response.json()["id"], id.as_str());
        assert_eq!(
            server.read_json(&format!("Patient/{id}"))["meta"]["versionId"],
            "1"
        );
    }
}

both_backends! {
    fn vread_returns_each_version() {
        let server = Server::start();
        let id = create_patient(&server);
        put_patient(&server, &id, "Jones").assert_status(200);
        let v1 = server.get(&format!("Patient/{id}/_history/1"));
        v1.assert_status(200);
        assert_eq!(v1.etag(), Some("W/\"1\""));
        assert_eq!(v1.json()["name"][0]["family"], "Smith");
        let v2 = server.read_json(&format!("Patient/{id}/_history/2"));
        assert_eq!(v2["name"][0]["family"], "Jones");
    }
}

both_backends! {
    fn vread_of_a_version_that_does_not_exist_is_404() {
        let server = Server::start();
        let id = create_patient(&server);
        server
            .get(&format!("Patient/{id}/_history/7"))
            .assert_error(404);
    }
}

both_backends! {
    fn delete_answers_204_and_then_read_is_410_gone() {
        let server = Server::start();
        let id = create_patient(&server);
        let deleted = server.delete(&format!("Patient/{id}"));
        assert!(
            deleted.status == 204 || deleted.status == 200,
            "delete: {} {}",
            deleted.status,
            deleted.text()
        );
        if deleted.status == 204 {
            assert!(
                deleted.body.is_empty(),
                "204 with a body: {}",
                deleted.text()
            );
        }
        server.get(&format!("Patient/{id}")).assert_error(410);
    }
}

both_backends! {
    fn delete_with_prefer_operation_outcome_answers_200_with_an_outcome() {
        let server = Server::start();
        let id = create_patient(&server);
        let deleted = server
            .request("DELETE", &format!("Patient/{id}"))
            .header("Prefer", "return=OperationOutcome")
            .send();
        deleted.assert_status(200);
        assert_eq!(deleted.json()["resourceType"], "OperationOutcome");
    }
}

both_backends! {
    fn deleting_twice_succeeds_both_times() {
        let server = Server::start();
        let id = create_patient(&server);
        for _ in 0..2 {
            let deleted = server.delete(&format!("Patient/{id}"));
            assert!(matches!(deleted.status, 200 | 204), "{}", deleted.status);
        }
    }
}

both_backends! {
    fn deleting_an_unknown_resource_succeeds() {
        let server = Server::start();
        let deleted = server.delete(&format!("Patient/{}", unique("none")));
        assert!(matches!(deleted.status, 200 | 204), "{}", deleted.status);
    }
}

both_backends! {
    fn old_versions_stay_readable_after_delete() {
        let server = Server::start();
        let id = create_patient(&server);
        server.delete(&format!("Patient/{id}"));
        let v1 = server.read_json(&format!("Patient/{id}/_history/1"));
        assert_eq!(v1["name"][0]["family"], "Smith");
    }
}

both_backends! {
    fn vread_of_the_deleted_version_is_410() {
        let server = Server::start();
        let id = create_patient(&server);
        server.delete(&format!("Patient/{id}"));
        server
            .get(&format!("Patient/{id}/_history/2"))
            .assert_error(410);
    }
}

both_backends! {
    fn history_keeps_the_delete_tombstone() {
        let server = Server::start();
        let id = create_patient(&server);
        server.delete(&format!("Patient/{id}"));
        let history = server.read_json(&format!("Patient/{id}/_history"));
        let entries = history["entry"].as_array().expect("entries");
        assert_eq!(entries.len(), 2, "{history}");
        assert_eq!(entries[0]["request"]["method"], "DELETE");
        assert!(entries[0].get("resource").is_none(), "{history}");
        assert_eq!(entries[1]["request"]["method"], "POST");
    }
}

both_backends! {
    fn update_after_delete_brings_the_resource_back_with_the_next_version() {
        let server = Server::start();
        let id = create_patient(&server);
        server.delete(&format!("Patient/{id}"));
        let response = put_patient(&server, &id, "Back");
        assert!(matches!(response.status, 200 | 201), "{}", response.text());
        assert_eq!(response.etag(), Some("W/\"3\""));
        let read = server.read_json(&format!("Patient/{id}"));
        assert_eq!(read["name"][0]["family"], "Back");
        assert_eq!(read["meta"]["versionId"], "3");
    }
}

fn written_with_prefer(server: &Server, method: &str, prefer: &str) -> conformance_tests::Response {
    match method {
        "POST" => server
            .request("POST", "Patient")
            .header("Prefer", prefer)
            .json(&patient("Smith"))
            .send(),
        _ => {
            let id = create_patient(server);
            let mut body = patient("Jones");
            body["id"] = json!(id);
            server
                .request("PUT", &format!("Patient/{id}"))
                .header("Prefer", prefer)
                .json(&body)
                .send()
        }
    }
}

both_backends! {
    fn prefer_return_minimal_gives_no_body() {
        let server = Server::start();
        for (method, status, version) in [("POST", 201, "W/\"1\""), ("PUT", 200, "W/\"2\"")] {
            let response = written_with_prefer(&server, method, "return=minimal");
            response.assert_status(status);
            assert!(response.body.is_empty(), "{method}: {}", response.text());
            assert_eq!(response.etag(), Some(version), "{method}");
        }
    }
}

both_backends! {
    fn prefer_return_minimal_still_gives_the_location_of_a_create() {
        let server = Server::start();
        let response = written_with_prefer(&server, "POST", "return=minimal");
        let location = response.header("location").expect("Location");
        let read = server.get(location);
        read.assert_status(200);
        assert_eq!(read.json()["resourceType"], "Patient");
    }
}

both_backends! {
    fn prefer_return_representation_gives_the_resource() {
        let server = Server::start();
        for (method, family) in [("POST", "Smith"), ("PUT", "Jones")] {
            let response = written_with_prefer(&server, method, "return=representation");
            let body: Value = response.json();
            assert_eq!(body["resourceType"], "Patient", "{method}");
            assert_eq!(body["name"][0]["family"], family, "{method}");
        }
    }
}

both_backends! {
    fn prefer_return_operation_outcome_gives_an_outcome() {
        let server = Server::start();
        for (method, status) in [("POST", 201), ("PUT", 200)] {
            let response = written_with_prefer(&server, method, "return=OperationOutcome");
            response.assert_status(status);
            assert_eq!(
                response.json()["resourceType"],
                "OperationOutcome",
                "{method}"
            );
        }
    }
}

both_backends! {
    fn create_replaces_client_supplied_meta_version_and_last_updated() {
        let server = Server::start();
        let mut body = patient("Smith");
        body["meta"] = json!({"versionId": "7", "lastUpdated": "2001-01-01T00:00:00Z"});
        let created = server.post("Patient", &body);
        created.assert_status(201);
        let meta = &created.json()["meta"];
        assert_eq!(meta["versionId"], "1");
        assert_ne!(meta["lastUpdated"], "2001-01-01T00:00:00Z");
    }
}

both_backends! {
    fn update_ignores_the_version_in_the_body() {
        let server = Server::start();
        let id = create_patient(&server);
        let mut body = patient("Jones");
        body["id"] = json!(id);
        body["meta"] = json!({"versionId": "99"});
        let response = server.put(&format!("Patient/{id}"), &body);
        response.assert_status(200);
        assert_eq!(response.json()["meta"]["versionId"], "2");
    }
}
