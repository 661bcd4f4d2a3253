//! URI search (search.html#uri), the parameters of every resource (`_id`,
//! `_tag`, `_profile`, `_security`, `_source`), OR by comma, AND by
//! repetition, and escaping (search.html#escaping).

use conformance_tests::both_backends;
use conformance_tests::{json, Fixture, Server, Value};

fn value_set(id: &str, url: &str) -> Value {
    json!({"resourceType": "ValueSet", "id": id, "status": "active", "url": url})
}

fn value_sets(f: &Fixture) {
    f.put_all(vec![
        value_set("~vs123", "http://acme.org/fhir/ValueSet/123"),
        value_set("~vs456", "http://acme.org/fhir/ValueSet/456"),
        value_set("~root", "http://acme.org/fhir"),
        value_set("~other", "http://acme.org/other/ValueSet/123"),
        value_set("~oid", "urn:oid:1.2.3.4.5"),
    ]);
}

both_backends! {
    fn uri_default_is_an_exact_match() {
        let server = Server::start();
        let f = Fixture::new(&server);
        value_sets(&f);
        f.check("ValueSet?url=http://acme.org/fhir/ValueSet/123", &["vs123"]);
        f.check("ValueSet?url=urn:oid:1.2.3.4.5", &["oid"]);
        f.check("ValueSet?url=http://acme.org/fhir/ValueSet/12", &[]);
        f.check("ValueSet?url=HTTP://ACME.ORG/fhir/ValueSet/123", &[]);
    }
}

both_backends! {
    fn uri_below_matches_urls_under_the_value() {
        let server = Server::start();
        let f = Fixture::new(&server);
        value_sets(&f);
        f.check(
            "ValueSet?url:below=http://acme.org/fhir/",
            &["vs123", "vs456"],
        );
        f.check(
            "ValueSet?url:below=http://acme.org/",
            &["vs123", "vs456", "root", "other"],
        );
    }
}

both_backends! {
    fn uri_above_matches_urls_the_value_is_under() {
        let server = Server::start();
        let f = Fixture::new(&server);
        value_sets(&f);
        f.check(
            "ValueSet?url:above=http://acme.org/fhir/ValueSet/123/_history/5",
            &["vs123", "root"],
        );
    }
}

both_backends! {
    fn id_matches_logical_ids_with_or() {
        let server = Server::start();
        let f = Fixture::new(&server);
        for id in ["~a", "~b", "~c"] {
            f.put(json!({"resourceType": "Patient", "id": id}));
        }
        f.check("Patient?_id=~a", &["a"]);
        f.check("Patient?_id=~a,~c", &["a", "c"]);
        f.check("Patient?_id=~z", &[]);
    }
}

fn with_meta(id: &str, meta: Value) -> Value {
    json!({"resourceType": "Patient", "id": id, "meta": meta})
}

both_backends! {
    fn tag_profile_security_and_source_search_meta() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            with_meta("~m1", json!({
                "tag": [{"system": "http://tags.example", "code": "vip"}],
                "profile": ["http://example.org/StructureDefinition/special"],
                "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
                "source": "http://source.example/a"})),
            with_meta("~m2", json!({"tag": [{"system": "http://other.example", "code": "vip"}]})),
            json!({"resourceType": "Patient", "id": "~m3"}),
        ]);
        f.check("Patient?_tag=vip", &["m1", "m2"]);
        f.check("Patient?_tag=http://tags.example|vip", &["m1"]);
        f.check(
            "Patient?_profile=http://example.org/StructureDefinition/special",
            &["m1"],
        );
        f.check(
            "Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
            &["m1"],
        );
        f.check("Patient?_security=N", &[]);
        f.check("Patient?_source=http://source.example/a", &["m1"]);
    }
}

fn named(id: &str, family: &str, given: &[&str]) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family, "given": given}]})
}

both_backends! {
    fn comma_separated_values_are_or() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            named("~smith", "Smith", &["Ann"]),
            named("~jones", "Jones", &["Bob"]),
            named("~brown", "Brown", &["Ann"]),
        ]);
        f.check("Patient?family=smith,jones", &["smith", "jones"]);
        f.check("Patient?family=smith,nobody", &["smith"]);
    }
}

both_backends! {
    fn repeated_parameters_are_and() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            named("~ann", "Smith", &["Ann", "Maria"]),
            named("~ann2", "Smith", &["Ann"]),
            named("~maria", "Brown", &["Maria"]),
        ]);
        f.check("Patient?given=ann&given=maria", &["ann"]);
        f.check("Patient?given=ann&family=smith", &["ann", "ann2"]);
        f.check("Patient?given=ann,maria&family=brown", &["maria"]);
    }
}

both_backends! {
    fn escaped_comma_and_bar_are_part_of_the_value() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            named("~comma", "Smith,Jones", &["A"]),
            named("~smith", "Smith", &["A"]),
            named("~jones", "Jones", &["A"]),
            json!({"resourceType": "Patient", "id": "~bar", "identifier": [{"value": "a|b"}]}),
        ]);
        f.check(r"Patient?family:exact=Smith\,Jones", &["comma"]);
        f.check(r"Patient?family=smith\,j", &["comma"]);
        f.check("Patient?family:exact=Smith,Jones", &["smith", "jones"]);
        f.check(r"Patient?identifier=a\|b", &["bar"]);
    }
}

both_backends! {
    fn missing_on_string_date_and_reference_parameters() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            json!({"resourceType": "Patient", "id": "~full", "name": [{"family": "Full"}],
                "birthDate": "1970", "generalPractitioner": [{"reference": "Practitioner/x"}]}),
            // A name without a family part: `family` is missing, `name` is not.
            json!({"resourceType": "Patient", "id": "~given", "name": [{"given": ["Only"]}]}),
            json!({"resourceType": "Patient", "id": "~bare"}),
        ]);
        f.check("Patient?family:missing=true", &["given", "bare"]);
        f.check("Patient?family:missing=false", &["full"]);
        f.check("Patient?name:missing=true", &["bare"]);
        f.check("Patient?birthdate:missing=true", &["given", "bare"]);
        f.check("Patient?birthdate:missing=false", &["full"]);
        f.check(
            "Patient?general-practitioner:missing=true",
            &["given", "bare"],
        );
        f.check("Patient?general-practitioner:missing=false", &["full"]);
    }
}

/// p1 has 10 Observations (5 of code ~a, 5 of ~b), p2 has 30 (10 ~a, 20
/// ~b), all final, o1…o40, dated in the order of their numbers from
/// 2020-01-01: equality conditions of
/// every breadth, for searches that combine them (the server counts them
/// to choose which select the candidates and which check them).
fn observations_of_two_patients(f: &Fixture) {
    let mut resources = vec![
        json!({"resourceType": "Patient", "id": "~p1"}),
        json!({"resourceType": "Patient", "id": "~p2"}),
    ];
    for i in 1..=40 {
        let (patient, code) = match i {
            1..=5 => ("p1", "a"),
            6..=10 => ("p1", "b"),
            11..=20 => ("p2", "a"),
            _ => ("p2", "b"),
        };
        resources.push(json!({
            "resourceType": "Observation", "id": format!("~o{i}"), "status": "final",
            "code": {"coding": [{"system": "http://example.org/codes", "code": format!("~{code}")}]},
            "subject": {"reference": format!("Patient/~{patient}")},
            "effectiveDateTime": format!("2020-{:02}-{:02}", 1 + (i - 1) / 28, 1 + (i - 1) % 28)
        }));
    }
    f.put_all(resources);
}

fn numbered(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("o{i}")).collect()
}

both_backends! {
    fn several_equality_conditions_match_what_meets_them_all_in_any_order() {
        let server = Server::start();
        let f = Fixture::new(&server);
        observations_of_two_patients(&f);
        let p1_a = numbered(1..=5);
        let p1_a: Vec<&str> = p1_a.iter().map(String::as_str).collect();
        let p2_b = numbered(21..=40);
        let p2_b: Vec<&str> = p2_b.iter().map(String::as_str).collect();
        // Narrow and narrow (both select), in both orders.
        f.check("Observation?subject=Patient/~p1&code=~a", &p1_a);
        f.check("Observation?code=~a&subject=Patient/~p1", &p1_a);
        f.check("Observation?code=http://example.org/codes|~a&patient=~p1", &p1_a);
        // A broad one (status, with and without its implied system) checks
        // what the narrow ones select.
        f.check("Observation?subject=Patient/~p1&code=~a&status=final", &p1_a);
        f.check(
            "Observation?status=http://hl7.org/fhir/observation-status|final&code=~b&subject=Patient/~p2",
            &p2_b,
        );
        // One that matches nothing empties the result.
        f.check("Observation?subject=Patient/~p1&code=~a&status=amended", &[]);
        f.check("Observation?subject=Patient/~p1&code=~nothing", &[]);
        // With other kinds of condition.
        f.check("Observation?subject=Patient/~p1&code=~a&date=ge2020-01-04", &["o4", "o5"]);
        let p1_b = numbered(6..=10);
        let p1_b: Vec<&str> = p1_b.iter().map(String::as_str).collect();
        f.check("Observation?subject=Patient/~p1&code:not=~a&status=final", &p1_b);
        // Sorted, over pages of three.
        let p2_a: Vec<String> = (11..=20).rev().map(|i| format!("o{i}")).collect();
        f.check_order(
            "Observation?code=~a&subject=Patient/~p2&_sort=-date&_count=3",
            &p2_a.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
}

both_backends! {
    fn a_count_of_several_equality_conditions_counts_what_meets_them_all() {
        let server = Server::start();
        let f = Fixture::new(&server);
        observations_of_two_patients(&f);
        let total = |query: &str| f.get(query, &[]).json()["total"].clone();
        assert_eq!(total("Observation?subject=Patient/~p2&code=~a&_summary=count"), json!(10));
        assert_eq!(total("Observation?code=~b&subject=Patient/~p2&status=final&_summary=count"), json!(20));
        assert_eq!(total("Observation?code=~b&subject=Patient/~p1&_summary=count"), json!(5));
    }
}
