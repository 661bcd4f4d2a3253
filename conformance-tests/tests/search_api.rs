//! The search interactions (search.html, http.html#search): unknown and
//! invalid parameters, `POST _search`, system and compartment search, and
//! which versions match.

use conformance_tests::both_backends;
use conformance_tests::{json, link, Fixture, Server, Value};

fn named(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]})
}

both_backends! {
    fn unknown_parameter_is_ignored_and_reported_by_default() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put(named("~a", "Known"));
        f.put(named("~b", "Other"));
        let response = f.get("Patient?_id=~a,~b&family=known&bogus-param=1", &[]);
        response.assert_status(200);
        let bundle = response.json();
        f.check("Patient?_id=~a,~b&family=known&bogus-param=1", &["a"]);
        let outcomes: Vec<&Value> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"] == "outcome")
            .collect();
        assert_eq!(outcomes.len(), 1, "{bundle}");
        assert_eq!(outcomes[0]["resource"]["resourceType"], "OperationOutcome");
        let this = link(&bundle, "self").expect("self link");
        assert!(!this.contains("bogus-param"), "{this}");
        assert!(this.contains("family=known"), "{this}");
    }
}

both_backends! {
    fn unknown_parameter_with_strict_handling_is_an_error() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.get("Patient?bogus-param=1", &[("Prefer", "handling=strict")])
            .assert_error(400);
        f.get("Patient?family=x", &[("Prefer", "handling=strict")])
            .assert_status(200);
        f.get("Patient?bogus-param=1", &[("Prefer", "handling=lenient")])
            .assert_status(200);
    }
}

both_backends! {
    fn invalid_values_and_modifiers_are_errors() {
        let server = Server::start();
        let f = Fixture::new(&server);
        for query in [
            "Patient?birthdate=notadate",
            "Patient?_count=-1",
            "Patient?_count=many",
            "Patient?family:foo=x",
            "Patient?gender:exact=male",
            "RiskAssessment?probability=high",
            "Patient?_sort=nonsense",
            "Patient?_include=Nothing:subject",
        ] {
            let response = f.get(query, &[]);
            assert_eq!(response.status, 400, "{query}: {}", response.text());
            response.assert_error(400);
        }
    }
}

both_backends! {
    fn post_search_with_a_form_body_matches_get() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put(named("~a", "Poster"));
        f.put(named("~b", "Other"));
        f.check("Patient?family=poster&_id=~a,~b", &["a"]);
        let body = format!("family=poster&_id={}", f.expand("~a,~b"));
        let response = server
            .request("POST", "Patient/_search")
            .body("application/x-www-form-urlencoded", body)
            .send();
        response.assert_status(200);
        let bundle = response.json();
        assert_eq!(bundle["type"], "searchset");
        let ids: Vec<&str> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"] == "match")
            .filter_map(|e| e["resource"]["id"].as_str())
            .collect();
        assert_eq!(ids, [f.expand("~a")]);
    }
}

both_backends! {
    fn system_search_spans_the_listed_types() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            named("~p1", "System"),
            json!({"resourceType": "Observation", "id": "~o1", "status": "final", "code": {"text": "x"}}),
            json!({"resourceType": "Encounter", "id": "~e1", "status": "finished",
                "class": {"code": "AMB"}}),
        ]);
        let base = &server.base;
        f.check(
            &format!("{base}?_type=Patient,Observation&_id=~p1,~o1,~e1"),
            &["p1", "o1"],
        );
        f.check(&format!("{base}?_id=~p1,~o1,~e1"), &["p1", "o1", "e1"]);
    }
}

both_backends! {
    fn compartment_search_finds_resources_linked_to_the_patient() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let obs = |id: &str, subject: &str, performer: &str| {
            json!({"resourceType": "Observation", "id": id, "status": "final",
                "code": {"text": "x"}, "subject": {"reference": subject},
                "performer": [{"reference": performer}]})
        };
        f.put_all(vec![
            named("~p1", "One"),
            named("~p2", "Two"),
            json!({"resourceType": "Practitioner", "id": "~doc"}),
            obs("~subject", "Patient/~p1", "Practitioner/~doc"),
            obs("~performer", "Patient/~p2", "Patient/~p1"),
            obs("~neither", "Patient/~p2", "Practitioner/~doc"),
        ]);
        f.check("Patient/~p1/Observation", &["subject", "performer"]);
        f.check("Patient/~p2/Observation", &["performer", "neither"]);
        f.check("Patient/~p1/Observation?_id=~performer", &["performer"]);
    }
}

both_backends! {
    fn compartment_search_of_a_type_outside_the_compartment_is_not_found() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put(named("~p1", "One"));
        f.get("Patient/~p1/Organization", &[]).assert_error(404);
    }
}

both_backends! {
    fn deleted_resources_never_match() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put(named("~gone", "Vanished"));
        f.put(named("~kept", "Vanished"));
        f.delete("Patient/~gone");
        f.check("Patient?family=vanished", &["kept"]);
        f.check("Patient?_id=~gone", &[]);
        f.check("Patient?family:missing=false&_id=~gone,~kept", &["kept"]);
    }
}

both_backends! {
    fn updated_resources_match_on_their_new_values_only() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put(named("~p", "Before"));
        f.put(named("~p", "After"));
        f.check("Patient?family=before", &[]);
        f.check("Patient?family=after", &["p"]);
    }
}

both_backends! {
    /// A searchset's entries (matches, includes and the outcome of an
    /// ignored parameter) are the same resources in compact JSON, `_pretty`
    /// JSON and XML, and `_summary` shapes each of them.
    fn a_searchset_is_the_same_in_every_representation() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let patient = f.put(json!({"resourceType": "Patient", "id": "~p", "name": [{"family": "Renders"}],
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Renders</div>"}}));
        let observation = f.put(json!({"resourceType": "Observation", "id": "~o", "status": "final",
            "code": {"text": "weight"}, "subject": {"reference": "Patient/~p"},
            "valueQuantity": {"value": 72.5, "unit": "kg"}}));
        let query = f.expand("Observation?_id=~o&_include=Observation:subject&bogus=1");
        let compact = f.get(&query, &[]);
        compact.assert_status(200);
        let bundle = compact.json();
        let entries = bundle["entry"].as_array().expect("entries");
        let modes: Vec<&str> = entries.iter().map(|e| e["search"]["mode"].as_str().unwrap()).collect();
        assert_eq!(modes, ["outcome", "match", "include"], "{bundle}");
        assert_eq!(entries[1]["resource"], observation);
        assert_eq!(entries[2]["resource"], patient);
        assert_eq!(
            entries[1]["fullUrl"],
            server.url(&format!("Observation/{}", observation["id"].as_str().unwrap()))
        );

        let pretty = f.get(&format!("{query}&_pretty=true"), &[]);
        assert!(pretty.text().contains("\n  "), "indented");
        let pretty = pretty.json();
        // The same entries (the outcome's fullUrl is a new uuid each time).
        assert_eq!(pretty["entry"][0]["resource"], bundle["entry"][0]["resource"]);
        assert_eq!(pretty["entry"][1], bundle["entry"][1]);
        assert_eq!(pretty["entry"][2], bundle["entry"][2]);
        assert_eq!(pretty["total"], bundle["total"]);

        let xml = f.get(&format!("{query}&_format=xml"), &[]);
        xml.assert_status(200);
        assert!(xml.content_type().starts_with("application/fhir+xml"), "{}", xml.content_type());
        let text = xml.text();
        assert_eq!(text.matches("<entry>").count(), 3, "{text}");
        assert!(text.contains("<family value=\"Renders\"/>") && text.contains("<value value=\"72.5\"/>"), "{text}");

        let summary = f.get(&format!("{query}&_summary=true"), &[]).json();
        let summarised = &summary["entry"][2]["resource"];
        assert_eq!(summarised["name"], patient["name"]);
        assert!(summarised.get("text").is_none(), "{summarised}");
        assert_eq!(summarised["meta"]["tag"][0]["code"], "SUBSETTED");
    }
}
