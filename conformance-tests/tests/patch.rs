//! The patch interaction (http.html#patch): JSON Patch and FHIRPath Patch.

use conformance_tests::both_backends;
use conformance_tests::{json, patient, unique, Response, Server, Value, FHIR_JSON};

const JSON_PATCH: &str = "application/json-patch+json";

fn json_patch(server: &Server, path: &str, operations: Value) -> Response {
    server
        .request("PATCH", path)
        .accept(FHIR_JSON)
        .body(
            JSON_PATCH,
            serde_json::to_vec(&operations).expect("serialise"),
        )
        .send()
}

fn created(server: &Server) -> String {
    format!("Patient/{}", server.create(&patient("Smith")))
}

/// Asserts the Patient at `path` is still the unpatched version 1.
#[track_caller]
fn assert_unpatched(server: &Server, path: &str) {
    let read = server.read_json(path);
    assert_eq!(read["meta"]["versionId"], "1", "{read}");
    assert_eq!(read["birthDate"], "1970-01-01", "{read}");
    assert_eq!(read["name"][0]["family"], "Smith", "{read}");
}

both_backends! {
    fn json_patch_replace_writes_a_new_version() {
        let server = Server::start();
        let path = created(&server);
        let response = json_patch(
            &server,
            &path,
            json!([{"op": "replace", "path": "/birthDate", "value": "1980-05-06"}]),
        );
        response.assert_status(200);
        assert_eq!(response.etag(), Some("W/\"2\""));
        assert_eq!(response.json()["birthDate"], "1980-05-06");
        let read = server.read_json(&path);
        assert_eq!(read["birthDate"], "1980-05-06");
        assert_eq!(read["meta"]["versionId"], "2");
        assert_eq!(read["name"][0]["family"], "Smith");
    }
}

both_backends! {
    fn json_patch_add_and_remove() {
        let server = Server::start();
        let path = created(&server);
        json_patch(
            &server,
            &path,
            json!([
                {"op": "add", "path": "/active", "value": true},
                {"op": "add", "path": "/name/0/given/-", "value": "Beth"},
                {"op": "remove", "path": "/birthDate"},
            ]),
        )
        .assert_status(200);
        let read = server.read_json(&path);
        assert_eq!(read["active"], true);
        assert_eq!(read["name"][0]["given"], json!(["Ann", "Beth"]));
        assert!(read.get("birthDate").is_none(), "{read}");
    }
}

both_backends! {
    fn json_patch_failing_test_is_422_and_changes_nothing() {
        let server = Server::start();
        let path = created(&server);
        json_patch(
            &server,
            &path,
            json!([
                {"op": "test", "path": "/birthDate", "value": "2000-01-01"},
                {"op": "replace", "path": "/birthDate", "value": "1980-05-06"},
            ]),
        )
        .assert_error(422);
        assert_unpatched(&server, &path);
    }
}

both_backends! {
    fn invalid_json_patch_document_is_400() {
        let server = Server::start();
        let path = created(&server);
        for document in [
            json!({"op": "replace", "path": "/birthDate", "value": "1980-05-06"}),
            json!([{"op": "frobnicate", "path": "/birthDate"}]),
            json!([{"op": "replace", "value": "1980-05-06"}]),
        ] {
            json_patch(&server, &path, document).assert_error(400);
        }
        let malformed = server
            .request("PATCH", &path)
            .body(JSON_PATCH, "[{\"op\": ")
            .send();
        malformed.assert_error(400);
        assert_unpatched(&server, &path);
    }
}

both_backends! {
    fn json_patch_that_changes_the_id_is_422() {
        let server = Server::start();
        let path = created(&server);
        json_patch(
            &server,
            &path,
            json!([{"op": "replace", "path": "/id", "value": unique("other")}]),
        )
        .assert_error(422);
        assert_unpatched(&server, &path);
    }
}

both_backends! {
    fn json_patch_making_an_invalid_resource_is_422() {
        let server = Server::start();
        let path = created(&server);
        json_patch(
            &server,
            &path,
            json!([{"op": "replace", "path": "/birthDate", "value": "not a date"}]),
        )
        .assert_error(422);
        assert_unpatched(&server, &path);
    }
}

both_backends! {
    fn json_patch_with_stale_if_match_is_412() {
        let server = Server::start();
        let path = created(&server);
        let response = server
            .request("PATCH", &path)
            .header("If-Match", "W/\"7\"")
            .body(
                JSON_PATCH,
                r#"[{"op": "replace", "path": "/birthDate", "value": "1980-05-06"}]"#,
            )
            .send();
        response.assert_error(412);
        assert_unpatched(&server, &path);
    }
}

both_backends! {
    fn json_patch_with_matching_if_match_succeeds() {
        let server = Server::start();
        let path = created(&server);
        let response = server
            .request("PATCH", &path)
            .header("If-Match", "W/\"1\"")
            .body(
                JSON_PATCH,
                r#"[{"op": "replace", "path": "/birthDate", "value": "1980-05-06"}]"#,
            )
            .send();
        response.assert_status(200);
        assert_eq!(response.etag(), Some("W/\"2\""));
    }
}

both_backends! {
    fn patch_of_a_deleted_resource_is_410() {
        let server = Server::start();
        let path = created(&server);
        server.delete(&path);
        json_patch(
            &server,
            &path,
            json!([{"op": "add", "path": "/active", "value": true}]),
        )
        .assert_error(410);
    }
}

both_backends! {
    fn patch_of_an_unknown_resource_is_404() {
        let server = Server::start();
        let path = format!("Patient/{}", unique("none"));
        json_patch(
            &server,
            &path,
            json!([{"op": "add", "path": "/active", "value": true}]),
        )
        .assert_error(404);
    }
}

both_backends! {
    fn patch_appears_in_history() {
        let server = Server::start();
        let path = created(&server);
        json_patch(
            &server,
            &path,
            json!([{"op": "add", "path": "/active", "value": true}]),
        )
        .assert_status(200);
        let history = server.read_json(&format!("{path}/_history"));
        assert_eq!(history["total"], 2);
        assert_eq!(history["entry"][0]["resource"]["active"], true);
        assert_eq!(history["entry"][0]["response"]["etag"], "W/\"2\"");
    }
}

fn fhirpath_patch(server: &Server, path: &str, parameters: Value) -> Response {
    server
        .request("PATCH", path)
        .accept(FHIR_JSON)
        .json(&parameters)
        .send()
}

both_backends! {
    fn fhirpath_patch_replace_writes_a_new_version() {
        let server = Server::start();
        let path = created(&server);
        let parameters = json!({
            "resourceType": "Parameters",
            "parameter": [{
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.birthDate"},
                    {"name": "value", "valueDate": "1980-05-06"},
                ],
            }],
        });
        let response = fhirpath_patch(&server, &path, parameters);
        response.assert_status(200);
        assert_eq!(response.etag(), Some("W/\"2\""));
        let read = server.read_json(&path);
        assert_eq!(read["birthDate"], "1980-05-06");
        assert_eq!(read["meta"]["versionId"], "2");
    }
}

both_backends! {
    fn fhirpath_patch_add_inserts_an_element() {
        let server = Server::start();
        let path = created(&server);
        let parameters = json!({
            "resourceType": "Parameters",
            "parameter": [{
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "add"},
                    {"name": "path", "valueString": "Patient"},
                    {"name": "name", "valueString": "active"},
                    {"name": "value", "valueBoolean": true},
                ],
            }],
        });
        fhirpath_patch(&server, &path, parameters).assert_status(200);
        assert_eq!(server.read_json(&path)["active"], true);
    }
}

both_backends! {
    fn fhirpath_patch_that_is_not_parameters_is_400() {
        let server = Server::start();
        let path = created(&server);
        fhirpath_patch(&server, &path, patient("Other")).assert_error(400);
        assert_unpatched(&server, &path);
    }
}

both_backends! {
    fn patch_in_an_unsupported_media_type_is_415() {
        let server = Server::start();
        let path = created(&server);
        server
            .request("PATCH", &path)
            .body("text/plain", "birthDate = 1980-05-06")
            .send()
            .assert_error(415);
        assert_unpatched(&server, &path);
    }
}
