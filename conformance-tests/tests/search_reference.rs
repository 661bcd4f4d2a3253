//! Reference search (search.html#reference), chained parameters
//! (#chaining) and reverse chaining with `_has` (#has).

use conformance_tests::both_backends;
use conformance_tests::{json, Fixture, Server, Value};

fn observation(id: &str, subject: Value) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"text": "x"}, "subject": subject})
}

fn reference(to: &str) -> Value {
    json!({"reference": to})
}

/// p1 (Ann, at org Acme), p2 (Bob), location loc (Ann's Room);
/// observations of p1 (relative), p1 (versioned), p2, loc and an identifier-only
/// subject.
fn world(f: &Fixture) {
    f.put_all(vec![
        json!({"resourceType": "Organization", "id": "~acme", "name": "Acme Health"}),
        json!({"resourceType": "Organization", "id": "~other", "name": "Other Clinic"}),
        json!({"resourceType": "Patient", "id": "~p1", "name": [{"family": "Ann"}],
            "identifier": [{"system": "http://ids.example", "value": "111"}],
            "managingOrganization": {"reference": "Organization/~acme"}}),
        json!({"resourceType": "Patient", "id": "~p2", "name": [{"family": "Bob"}],
            "managingOrganization": {"reference": "Organization/~other"}}),
        json!({"resourceType": "Location", "id": "~loc", "name": "Ann's Room",
            "identifier": [{"system": "http://ids.example", "value": "222"}]}),
        observation("~o1", reference("Patient/~p1")),
        observation("~o1v", reference("Patient/~p1/_history/1")),
        observation("~o2", reference("Patient/~p2")),
        observation("~oloc", reference("Location/~loc")),
        observation(
            "~oid",
            json!({"identifier": {"system": "http://ids.example", "value": "333"}}),
        ),
    ]);
}

/// oabs: an observation of p1 referenced by an absolute URL under the
/// server's own base.
fn absolute(f: &Fixture) {
    let base = &f.server.base;
    f.put(observation(
        "~oabs",
        reference(&format!("{base}/Patient/~p1")),
    ));
}

both_backends! {
    fn reference_type_and_id_matches_relative_versioned_and_own_base_absolute() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        absolute(&f);
        f.check("Observation?subject=Patient/~p1", &["o1", "o1v", "oabs"]);
        f.check("Observation?subject=Patient/~p2", &["o2"]);
        f.check("Observation?subject=Location/~loc", &["oloc"]);
        f.check("Observation?subject=Location/~p1", &[]);
    }
}

both_backends! {
    fn reference_bare_id_on_a_single_target_parameter() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        absolute(&f);
        f.check("Observation?patient=~p1", &["o1", "o1v", "oabs"]);
        f.check("Observation?patient=~loc", &[]);
    }
}

both_backends! {
    fn reference_absolute_url_with_the_servers_own_base() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        absolute(&f);
        let base = &server.base;
        f.check(
            &format!("Observation?subject={base}/Patient/~p1"),
            &["o1", "o1v", "oabs"],
        );
        f.check(
            "Observation?subject=http://elsewhere.example/fhir/Patient/~p1",
            &[],
        );
    }
}

both_backends! {
    fn reference_type_modifier_restricts_the_target_type() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        absolute(&f);
        f.check("Observation?subject:Patient=~p1", &["o1", "o1v", "oabs"]);
        f.check("Observation?subject:Location=~loc", &["oloc"]);
        f.check("Observation?subject:Location=~p1", &[]);
    }
}

both_backends! {
    fn reference_identifier_modifier_matches_the_logical_identifier() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.check(
            "Observation?subject:identifier=http://ids.example|333",
            &["oid"],
        );
        f.check("Observation?subject:identifier=333", &["oid"]);
        f.check("Observation?subject:identifier=http://ids.example|111", &[]);
    }
}

both_backends! {
    fn reference_versioned_value_matches_that_version_only() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.check("Observation?subject=Patient/~p1/_history/1", &["o1v"]);
        f.check("Observation?subject=Patient/~p1/_history/2", &[]);
    }
}

both_backends! {
    fn chain_with_a_type_modifier() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.check("Observation?subject:Patient.name=ann", &["o1", "o1v"]);
        f.check("Observation?subject:Location.name=ann", &["oloc"]);
        f.check("Observation?subject:Patient.name=nobody", &[]);
    }
}

both_backends! {
    fn chain_without_a_type_covers_every_target_type() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.check("Observation?subject.name=ann", &["o1", "o1v", "oloc"]);
        f.check(
            "Observation?subject.identifier=http://ids.example|222",
            &["oloc"],
        );
        f.check(
            "Observation?subject.identifier=http://ids.example|111",
            &["o1", "o1v"],
        );
    }
}

both_backends! {
    fn chain_of_depth_two() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.check(
            "Observation?subject:Patient.organization.name=acme",
            &["o1", "o1v"],
        );
        f.check(
            "Observation?subject:Patient.organization.name=other",
            &["o2"],
        );
        f.check("Observation?patient.organization.name=nowhere", &[]);
    }
}

both_backends! {
    /// search.html#reference: "A relative reference resolving to the same value
    /// as a specified absolute URL, or vice versa, qualifies as a match" — the
    /// server applies this to `subject=Patient/p1`, so a chain through the same
    /// reference must reach the same Patient.
    fn chain_follows_absolute_references_to_the_servers_own_base() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        absolute(&f);
        f.check("Observation?subject=Patient/~p1", &["o1", "o1v", "oabs"]);
        f.check(
            "Observation?subject:Patient.name=ann",
            &["o1", "o1v", "oabs"],
        );
        f.check(
            "Observation?subject.name=ann",
            &["o1", "o1v", "oabs", "oloc"],
        );
    }
}

both_backends! {
    fn chain_does_not_follow_references_to_deleted_resources() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.delete("Patient/~p2");
        f.check("Observation?subject:Patient.name=bob", &[]);
    }
}

both_backends! {
    fn has_finds_resources_referred_to_by_matching_resources() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.put(
            json!({"resourceType": "Observation", "id": "~bp", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": "Patient/~p2"}}),
        );
        f.check("Patient?_has:Observation:patient:code=85354-9", &["p2"]);
        f.check(
            "Patient?_has:Observation:subject:code=http://loinc.org|85354-9",
            &["p2"],
        );
        f.check("Patient?_has:Observation:patient:code=00000-0", &[]);
        f.check(
            "Organization?_has:Patient:organization:name=bob",
            &["other"],
        );
    }
}

both_backends! {
    fn has_can_be_nested() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        f.put(
            json!({"resourceType": "DiagnosticReport", "id": "~dr", "status": "final",
            "code": {"text": "panel"}, "result": [{"reference": "Observation/~o2"}]}),
        );
        f.check(
            "Patient?_has:Observation:subject:_has:DiagnosticReport:result:status=final",
            &["p2"],
        );
        f.check(
            "Patient?_has:Observation:subject:_has:DiagnosticReport:result:status=amended",
            &[],
        );
    }
}

both_backends! {
    /// The same reference, followed by `_include`.
    fn include_follows_absolute_references_to_the_servers_own_base() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        absolute(&f);
        let q = "Observation?_id=~oabs&_include=Observation:subject";
        f.check(q, &["oabs"]);
        assert_eq!(f.included(q), ["p1"]);
    }
}
