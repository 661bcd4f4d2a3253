//! Conditional interactions (http.html): create with If-None-Exist, and
//! update, patch and delete addressed by a search.

use conformance_tests::both_backends;
use conformance_tests::{json, unique, Server, Value};

fn patient(system: &str, value: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": system, "value": value}], "name": [{"family": "Cond"}]})
}

fn count(server: &Server, query: &str) -> i64 {
    server.get(&format!("{query}&_summary=count")).json()["total"]
        .as_i64()
        .expect("total")
}

both_backends! {
    fn if_none_exist_creates_once_then_returns_the_match() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        let condition = format!("identifier={system}|1");
        let first = server
            .request("POST", "Patient")
            .header("If-None-Exist", &condition)
            .json(&patient(&system, "1"))
            .send();
        assert_eq!(first.status, 201, "{}", first.text());
        let second = server
            .request("POST", "Patient")
            .header("If-None-Exist", &condition)
            .json(&patient(&system, "1"))
            .send();
        assert_eq!(second.status, 200, "{}", second.text());
        assert_eq!(second.json()["id"], first.json()["id"]);
        assert_eq!(count(&server, &format!("Patient?identifier={system}|1")), 1);
    }
}

both_backends! {
    fn if_none_exist_with_several_matches_is_412_and_creates_nothing() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        server.create(&patient(&system, "dup"));
        server.create(&patient(&system, "dup"));
        let response = server
            .request("POST", "Patient")
            .header("If-None-Exist", &format!("identifier={system}|dup"))
            .json(&patient(&system, "dup"))
            .send();
        response.assert_outcome(412, "conflict");
        assert_eq!(
            count(&server, &format!("Patient?identifier={system}|dup")),
            2
        );
    }
}

both_backends! {
    fn an_unknown_parameter_in_a_condition_is_400_not_a_match_of_everything() {
        let server = Server::start();
        let response = server
            .request("POST", "Patient")
            .header("If-None-Exist", "no-such-param=1")
            .json(&patient("urn:x", "1"))
            .send();
        assert_eq!(response.status, 400, "{}", response.text());
    }
}

both_backends! {
    fn conditional_update_creates_then_updates_the_single_match() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        let url = format!("Patient?identifier={system}|7");
        let created = server.put(&url, &patient(&system, "7"));
        assert_eq!(created.status, 201, "{}", created.text());
        let id = created.json()["id"].as_str().expect("id").to_owned();
        let mut changed = patient(&system, "7");
        changed["active"] = json!(true);
        let updated = server.put(&url, &changed);
        assert_eq!(updated.status, 200, "{}", updated.text());
        assert_eq!(updated.json()["id"], id.as_str());
        assert_eq!(updated.header("etag"), Some("W/\"2\""));
    }
}

both_backends! {
    fn conditional_update_with_a_body_id_of_another_resource_is_400() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        server.create(&patient(&system, "8"));
        let mut body = patient(&system, "8");
        body["id"] = json!("someone-else");
        let response = server.put(&format!("Patient?identifier={system}|8"), &body);
        assert_eq!(response.status, 400, "{}", response.text());
    }
}

both_backends! {
    fn conditional_update_with_several_matches_is_412() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        server.create(&patient(&system, "9"));
        server.create(&patient(&system, "9"));
        server
            .put(
                &format!("Patient?identifier={system}|9"),
                &patient(&system, "9"),
            )
            .assert_outcome(412, "conflict");
    }
}

both_backends! {
    fn conditional_patch_and_delete_act_on_the_single_match() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        let id = server.create(&patient(&system, "10"));
        let url = format!("Patient?identifier={system}|10");
        let patched = server
            .request("PATCH", &url)
            .body(
                "application/json-patch+json",
                r#"[{"op":"add","path":"/active","value":false}]"#,
            )
            .send();
        assert_eq!(patched.status, 200, "{}", patched.text());
        assert_eq!(server.get(&format!("Patient/{id}")).json()["active"], false);
        let deleted = server.delete(&url);
        assert!(matches!(deleted.status, 200 | 204), "{}", deleted.text());
        assert_eq!(server.get(&format!("Patient/{id}")).status, 410);
        // Nothing matches any more: patch answers 404.
        let none = server
            .request("PATCH", &url)
            .body(
                "application/json-patch+json",
                r#"[{"op":"add","path":"/active","value":true}]"#,
            )
            .send();
        none.assert_outcome(404, "not-found");
    }
}

both_backends! {
    fn conditional_delete_with_several_matches_is_412_and_deletes_nothing() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        server.create(&patient(&system, "11"));
        server.create(&patient(&system, "11"));
        server
            .delete(&format!("Patient?identifier={system}|11"))
            .assert_outcome(412, "conflict");
        assert_eq!(
            count(&server, &format!("Patient?identifier={system}|11")),
            2
        );
    }
}

both_backends! {
    fn racing_conditional_creates_make_exactly_one_resource() {
        let server = Server::start();
        let system = format!("urn:{}", unique("sys"));
        let condition = format!("identifier={system}|race");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let response = server
                        .request("POST", "Patient")
                        .header("If-None-Exist", &condition)
                        .json(&patient(&system, "race"))
                        .send();
                    assert!(matches!(response.status, 200 | 201), "{}", response.text());
                });
            }
        });
        assert_eq!(
            count(&server, &format!("Patient?identifier={system}|race")),
            1
        );
    }
}

both_backends! {
    fn conditional_delete_of_several_deletes_all_where_configured() {
        let server = Server::local(|c| c.conditional_delete_multiple = true);
        let system = format!("urn:{}", unique("sys"));
        server.create(&patient(&system, "12"));
        server.create(&patient(&system, "12"));
        let response = server.delete(&format!("Patient?identifier={system}|12"));
        assert!(matches!(response.status, 200 | 204), "{}", response.text());
        assert_eq!(
            count(&server, &format!("Patient?identifier={system}|12")),
            0
        );
        let statement = server.get("metadata").json();
        assert_eq!(
            statement["rest"][0]["resource"][0]["conditionalDelete"],
            "multiple"
        );
    }
}
