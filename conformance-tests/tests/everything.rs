//! `Patient/[id]/$everything` and `Patient/$everything`
//! (patient-operation-everything): the patient, their compartment and what
//! it refers to, paged, with `_type`, `_since`, `start` and `end`.

use std::collections::BTreeSet;

use conformance_tests::both_backends;
use conformance_tests::{json, link, patient, unique, Server, Value};

struct Record {
    patient: String,
    observation: String,
    encounter: String,
    practitioner: String,
    organization: String,
}

/// A patient with an encounter (by a practitioner) and an observation
/// (performed by an organization); another patient with an observation.
fn record(server: &Server) -> (Record, String) {
    let practitioner = server
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": unique("Doc")}]}));
    let organization =
        server.create(&json!({"resourceType": "Organization", "name": unique("Lab")}));
    let patient_id = server.create(&patient(&unique("Everything")));
    let encounter = server.create(&json!({
        "resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "participant": [{"individual": {"reference": format!("Practitioner/{practitioner}")}}],
        "period": {"start": "2015-03-01T10:00:00Z", "end": "2015-03-01T11:00:00Z"},
    }));
    let observation = server.create(&json!({
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "performer": [{"reference": format!("Organization/{organization}")}],
        "effectiveDateTime": "2020-06-01",
    }));
    let other = server.create(&patient(&unique("Other")));
    let others = server.create(&json!({
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": {"reference": format!("Patient/{other}")},
    }));
    (
        Record {
            patient: patient_id,
            observation,
            encounter,
            practitioner,
            organization,
        },
        others,
    )
}

/// Every resource of every page, as `Type/id`, following `next` links.
fn all_pages(server: &Server, first: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut page = server.get(first);
    loop {
        page.assert_status(200);
        let bundle: Value = page.json();
        assert_eq!(bundle["type"], "searchset");
        for e in bundle["entry"].as_array().cloned().unwrap_or_default() {
            out.push(format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            ));
        }
        match link(&bundle, "next") {
            Some(next) => page = server.get(&next),
            None => break,
        }
    }
    out
}

both_backends! {
    fn everything_is_the_patient_their_compartment_and_what_it_refers_to() {
        let server = Server::start();
        let (r, others) = record(&server);
        let path = format!("Patient/{}/$everything", r.patient);
        let bundle = server.get(&path).json();
        assert_eq!(bundle["total"], 5, "{bundle}");
        let found = all_pages(&server, &path);
        assert_eq!(found[0], format!("Patient/{}", r.patient), "the patient comes first");
        let expected: BTreeSet<String> = [
            format!("Patient/{}", r.patient),
            format!("Observation/{}", r.observation),
            format!("Encounter/{}", r.encounter),
            format!("Practitioner/{}", r.practitioner),
            format!("Organization/{}", r.organization),
        ]
        .into_iter()
        .collect();
        assert_eq!(found.iter().cloned().collect::<BTreeSet<_>>(), expected);
        assert!(!found.contains(&format!("Observation/{others}")));
        // Paged two at a time, the same five, each once.
        let paged = all_pages(&server, &format!("{path}?_count=2"));
        assert_eq!(paged.len(), 5);
        assert_eq!(paged.iter().cloned().collect::<BTreeSet<_>>(), expected);
    }
}

both_backends! {
    fn everything_honours_type_since_start_and_end() {
        let server = Server::start();
        let (r, _) = record(&server);
        let path = format!("Patient/{}/$everything", r.patient);
        let only = all_pages(&server, &format!("{path}?_type=Practitioner,Organization"));
        assert_eq!(
            only.into_iter().collect::<BTreeSet<_>>(),
            [format!("Practitioner/{}", r.practitioner), format!("Organization/{}", r.organization)].into_iter().collect()
        );
        // Care dates: the 2015 encounter is out of a 2019– range, the 2020
        // observation in; resources without dates stay.
        let recent = all_pages(&server, &format!("{path}?start=2019-01-01"));
        assert!(recent.contains(&format!("Observation/{}", r.observation)), "{recent:?}");
        assert!(!recent.contains(&format!("Encounter/{}", r.encounter)), "{recent:?}");
        let early = all_pages(&server, &format!("{path}?end=2016"));
        assert!(early.contains(&format!("Encounter/{}", r.encounter)), "{early:?}");
        assert!(!early.contains(&format!("Observation/{}", r.observation)), "{early:?}");
        // _since: only what was written since.
        let since = server.read_json(&format!("Observation/{}", r.observation))["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .to_owned();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut changed = server.read_json(&format!("Encounter/{}", r.encounter));
        changed["status"] = json!("cancelled");
        server.put(&format!("Encounter/{}", r.encounter), &changed).assert_status(200);
        let newer = all_pages(&server, &format!("{path}?_since={}", conformance_tests::encode(&since)));
        assert!(newer.contains(&format!("Encounter/{}", r.encounter)), "{newer:?}");
        assert!(!newer.contains(&format!("Patient/{}", r.patient)), "{newer:?}");
    }
}

both_backends! {
    fn everything_of_every_patient_and_its_errors() {
        let server = Server::start();
        let (r, others) = record(&server);
        let every = all_pages(&server, "Patient/$everything?_count=1000");
        assert!(every.contains(&format!("Observation/{}", r.observation)));
        assert!(every.contains(&format!("Observation/{others}")));
        server.get("Patient/no-such-patient/$everything").assert_outcome(404, "not-found");
        server.get(&format!("Patient/{}/$everything?_summary=true", r.patient)).assert_error(400);
        server.get(&format!("Patient/{}/$everything?_type=Nonsense", r.patient)).assert_error(404);
        server.delete(&format!("Patient/{}", r.patient)).assert_status(204);
        server.get(&format!("Patient/{}/$everything", r.patient)).assert_error(410);
        let statement = server.get("metadata").json();
        let patient = statement["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").unwrap();
        assert_eq!(patient["operation"][0]["name"], "everything");
    }
}
