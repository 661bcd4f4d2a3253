//! Bulk Data Access 2.0 `$export`, as a Bulk Data client runs it: kick-off
//! with `Prefer: respond-async`, polling the status URL, the manifest, the
//! NDJSON files; `_type`, `_since`, `_typeFilter`, Patient and Group level,
//! cancelling, and the refusals the specification asks for.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use conformance_tests::both_backends;
use conformance_tests::{json, patient, unique, Server, Value};

/// Kicks off an export at `path`; answers the status URL.
fn kick_off(server: &Server, path: &str) -> String {
    let response = server
        .request("GET", path)
        .header("Prefer", "respond-async")
        .accept("application/fhir+json")
        .send();
    assert_eq!(response.status, 202, "{}", response.text());
    response
        .header("content-location")
        .expect("a Content-Location to poll")
        .to_owned()
}

/// Polls until the manifest arrives.
fn manifest(server: &Server, status_url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = server.get(status_url);
        if status.status == 200 {
            assert!(
                status.content_type().starts_with("application/json"),
                "{}",
                status.content_type()
            );
            return status.json();
        }
        assert_eq!(status.status, 202, "{}", status.text());
        assert!(status.header("x-progress").is_some());
        assert!(status.header("retry-after").is_some());
        assert!(Instant::now() < deadline, "the export did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every resource of every file of a manifest, as `Type/id`, checking that
/// each file holds resources of its type, one per line.
fn downloaded(server: &Server, manifest: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (i, file) in manifest["output"]
        .as_array()
        .expect("output")
        .iter()
        .enumerate()
    {
        // As Bulk Data clients ask for them (the IG's default, and the
        // short form).
        let accept = ["application/fhir+ndjson", "application/ndjson", "*/*"][i % 3];
        let response = server
            .request("GET", file["url"].as_str().unwrap())
            .accept(accept)
            .send();
        response.assert_status(200);
        assert_eq!(
            response.content_type(),
            "application/fhir+ndjson",
            "Accept: {accept}"
        );
        let text = response.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as i64, file["count"].as_i64().unwrap());
        for line in lines {
            let resource: Value = serde_json::from_str(line).expect("a resource per line");
            assert_eq!(resource["resourceType"], file["type"]);
            out.push(format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap(),
                resource["id"].as_str().unwrap()
            ));
        }
    }
    out
}

fn observation(subject: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
           "subject": {"reference": format!("Patient/{subject}")}})
}

both_backends! {
    fn lenient_handling_passes_over_what_it_cannot_honour_and_reports_it() {
        let server = Server::start();
        if !server.is_local() {
            return;
        }
        server.create(&patient("Lenient"));
        let kick = server
            .request("GET", "$export?_type=Patient,Nonsense&_elements=id&_typeFilter=Patient?nonsense=1")
            .header("Prefer", "respond-async, handling=lenient")
            .send();
        assert_eq!(kick.status, 202, "{}", kick.text());
        let status = kick.header("content-location").unwrap().to_owned();
        let manifest = manifest(&server, &status);
        let errors = manifest["error"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{manifest}");
        assert_eq!(errors[0]["type"], "OperationOutcome");
        let file = server.request("GET", errors[0]["url"].as_str().unwrap()).accept("application/fhir+ndjson").send();
        file.assert_status(200);
        let outcomes: Vec<Value> = file.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(outcomes.len(), 3, "{}", file.text());
        assert!(outcomes.iter().all(|o| o["resourceType"] == "OperationOutcome" && o["issue"][0]["severity"] == "warning"));
        let text = file.text();
        assert!(text.contains("_elements") && text.contains("Nonsense") && text.contains("nonsense"), "{text}");
        // What could be honoured was: the Patients.
        assert!(manifest["output"].as_array().unwrap().iter().all(|o| o["type"] == "Patient"));
        // The same without lenient handling: 400.
        let strict = server
            .request("GET", "$export?_elements=id")
            .header("Prefer", "respond-async")
            .send();
        strict.assert_error(400);
    }

    fn patient_level_types_must_be_in_the_compartment_and_the_statement_says_bulk_data() {
        let server = Server::start();
        let response = server
            .request("GET", "Patient/$export?_type=Organization")
            .header("Prefer", "respond-async")
            .send();
        let outcome = response.assert_error(400);
        assert!(outcome.to_string().contains("Organization"), "{outcome}");
        let statement = server.read_json("metadata");
        assert!(
            statement["instantiates"].as_array().unwrap().iter()
                .any(|u| u == "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"),
            "{}", statement["instantiates"]
        );
        let resources = statement["rest"][0]["resource"].as_array().unwrap();
        for (t, name) in [("Patient", "patient-export"), ("Group", "group-export")] {
            let operations = resources.iter().find(|r| r["type"] == t).unwrap()["operation"].clone();
            for wanted in ["export", name] {
                assert!(
                    operations.as_array().unwrap().iter().any(|o| o["name"] == wanted),
                    "{t}: {operations}"
                );
            }
        }
    }
}

both_backends! {
    fn a_bulk_client_kicks_off_polls_and_downloads_everything() {
        let server = Server::start();
        if !server.is_local() {
            return; // a fresh database: the export's contents are known
        }
        let p = server.create(&patient(&unique("Bulk")));
        let obs: Vec<String> = (0..5).map(|_| server.create(&observation(&p, "8867-4"))).collect();
        let org = server.create(&json!({"resourceType": "Organization", "name": "Org"}));
        let status_url = kick_off(&server, "$export");
        let manifest = manifest(&server, &status_url);
        assert_eq!(manifest["requiresAccessToken"], false);
        assert!(manifest["transactionTime"].is_string());
        assert!(manifest["request"].as_str().unwrap().ends_with("/$export"), "{manifest}");
        assert_eq!(manifest["error"], json!([]));
        let found: BTreeSet<String> = downloaded(&server, &manifest).into_iter().collect();
        let mut expected: BTreeSet<String> = obs.iter().map(|o| format!("Observation/{o}")).collect();
        expected.insert(format!("Patient/{p}"));
        expected.insert(format!("Organization/{org}"));
        assert_eq!(found, expected);
        // Deleting the request removes it and its files.
        let first_file = manifest["output"][0]["url"].as_str().unwrap().to_owned();
        server.request("DELETE", &status_url).send().assert_status(202);
        server.get(&status_url).assert_status(404);
        server.get(&first_file).assert_status(404);
    }
}

both_backends! {
    fn type_since_and_type_filter_choose_what_is_exported() {
        let server = Server::start();
        if !server.is_local() {
            return;
        }
        let p = server.create(&patient(&unique("Bulk")));
        let heart = server.create(&observation(&p, "8867-4"));
        let _other = server.create(&observation(&p, "2339-0"));
        server.create(&json!({"resourceType": "Organization", "name": "Org"}));
        let filtered = kick_off(
            &server,
            &format!("$export?_type=Patient,Observation&_typeFilter={}", conformance_tests::encode("Observation?code=http://loinc.org|8867-4")),
        );
        let found: BTreeSet<String> = downloaded(&server, &manifest(&server, &filtered)).into_iter().collect();
        assert_eq!(found, [format!("Patient/{p}"), format!("Observation/{heart}")].into_iter().collect());

        let since = server.read_json(&format!("Observation/{heart}"))["meta"]["lastUpdated"].as_str().unwrap().to_owned();
        std::thread::sleep(Duration::from_millis(20));
        let late = server.create(&observation(&p, "8867-4"));
        let newer = kick_off(&server, &format!("$export?_since={}", conformance_tests::encode(&since)));
        let found = downloaded(&server, &manifest(&server, &newer));
        assert!(found.contains(&format!("Observation/{late}")), "{found:?}");
        assert!(!found.contains(&format!("Patient/{p}")), "{found:?}");
    }
}

both_backends! {
    fn patient_and_group_exports_hold_patient_compartments() {
        let server = Server::start();
        if !server.is_local() {
            return;
        }
        let a = server.create(&patient(&unique("A")));
        let b = server.create(&patient(&unique("B")));
        let oa = server.create(&observation(&a, "8867-4"));
        let ob = server.create(&observation(&b, "8867-4"));
        let org = server.create(&json!({"resourceType": "Organization", "name": "Org"}));
        let all = downloaded(&server, &manifest(&server, &kick_off(&server, "Patient/$export")));
        for expected in [format!("Patient/{a}"), format!("Patient/{b}"), format!("Observation/{oa}"), format!("Observation/{ob}")] {
            assert!(all.contains(&expected), "{expected} in {all:?}");
        }
        assert!(!all.contains(&format!("Organization/{org}")), "not in a compartment: {all:?}");
        let group = server.create(&json!({"resourceType": "Group", "type": "person", "actual": true,
            "member": [{"entity": {"reference": format!("Patient/{a}")}}]}));
        let members: BTreeSet<String> = downloaded(&server, &manifest(&server, &kick_off(&server, &format!("Group/{group}/$export"))))
            .into_iter()
            .collect();
        // The Group itself is in its member's compartment (Group.member).
        assert_eq!(
            members,
            [format!("Patient/{a}"), format!("Observation/{oa}"), format!("Group/{group}")].into_iter().collect()
        );
        server.request("GET", "Group/no-such-group/$export").header("Prefer", "respond-async").send().assert_status(404);
    }
}

both_backends! {
    fn kick_offs_the_specification_refuses_are_400() {
        let server = Server::start();
        // Without Prefer: respond-async.
        server.get("$export").assert_error(400);
        let refused = |query: &str| {
            server.request("GET", &format!("$export?{query}")).header("Prefer", "respond-async").send().assert_error(400);
        };
        refused("_outputFormat=text/csv");
        refused("_type=NotAType");
        refused("_since=yesterday");
        refused("_elements=id");
        refused(&format!("_typeFilter={}", conformance_tests::encode("Observation?nonsense=1")));
        let statement = server.get("metadata").json();
        let operations: Vec<&str> = statement["rest"][0]["operation"].as_array().unwrap().iter().filter_map(|o| o["name"].as_str()).collect();
        assert!(operations.contains(&"export"), "{operations:?}");
    }
}
