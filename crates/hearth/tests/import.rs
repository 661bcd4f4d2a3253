//! `hearth import` as an operator runs it: Synthea's files as they are
//! (compressed, hospital and practitioner files first), again without
//! duplicates, files racing to create one resource, and a broken file
//! reported without partial data.

use std::path::{Path, PathBuf};

use hearth_store::both_backends;
use hearth_store::testing::TestDatabase;
use hearth_store::{Store, StoreOptions};

mod common;

use common::import;

/// A folder with Synthea's two shared files and two patients.
fn synthea_folder(dir: &Path) -> Option<PathBuf> {
    common::synthea_folder(dir, 2)
}

/// Resources in the database by type.
fn count(store: &Store, resource_type: &str) -> i64 {
    count_where(store, resource_type, &[])
}

/// Resources of a type that match a search's parameters.
fn count_where(store: &Store, resource_type: &str, params: &[(&str, &str)]) -> i64 {
    let mut params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    params.push(("_summary".into(), "count".into()));
    let query = hearth_store::search::parse(
        &[resource_type.to_owned()],
        &params,
        &hearth_store::search::ParseOptions {
            strict: true,
            default_count: 10,
            max_count: 10,
            base: None,
            custom: store.custom_params(),
        },
    )
    .unwrap();
    store
        .search(&query, &hearth_store::search::SearchPage::default())
        .unwrap()
        .total
}

both_backends! {
    fn synthea_loads_once_however_often_it_is_imported() {
        let database = TestDatabase::new();
        let Some(folder) = synthea_folder(&database.dir()) else {
            return;
        };
        let (ok, stdout, stderr) = import(&database, &[&folder]);
        assert!(ok, "{stdout}{stderr}");
        assert!(stdout.contains("imported 4 of 4 files"), "{stdout}");
        assert!(stderr.contains("100%"), "the progress bar: {stderr}");
        assert!(stdout.contains("search indexes built at the end"), "an empty database: {stdout}");
        let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
        let patients = count(&store, "Patient");
        let encounters = count(&store, "Encounter");
        let practitioners = count(&store, "Practitioner");
        assert_eq!(patients, 2);
        assert!(encounters > 10 && practitioners > 100, "{encounters} {practitioners}");
        // Conditional references were resolved: an encounter names a stored practitioner.
        let query = hearth_store::search::parse(
            &["Encounter".to_owned()],
            &[("practitioner:missing".into(), "false".into())],
            &hearth_store::search::ParseOptions {
                strict: true,
                default_count: 1,
                max_count: 1,
                base: None,
                custom: store.custom_params(),
            },
        )
        .unwrap();
        let page = store.search(&query, &hearth_store::search::SearchPage::default()).unwrap();
        let encounter: serde_json::Value =
            serde_json::from_slice(page.matches[0].body.as_deref().unwrap()).unwrap();
        let reference = encounter["participant"][0]["individual"]["reference"].as_str().unwrap();
        let (t, id) = reference.split_once('/').expect("a local reference");
        assert!(store.read(t, id).is_ok(), "{reference}");

        // $everything of the encounter's patient: the patient first, then
        // their resources (this encounter among them), then what those
        // refer to (this practitioner among them).
        let subject = encounter["subject"]["reference"].as_str().unwrap();
        let patient_id = subject.strip_prefix("Patient/").unwrap().to_owned();
        let everything = store
            .everything(
                &hearth_store::search::Everything {
                    patients: Some(vec![patient_id.clone()]),
                    count: 100_000,
                    ..Default::default()
                },
                &hearth_store::search::SearchPage::default(),
            )
            .unwrap();
        let found: Vec<(String, String)> = everything
            .matches
            .iter()
            .map(|v| (v.resource_type.clone(), v.id.clone()))
            .collect();
        assert_eq!(found[0], ("Patient".to_owned(), patient_id.clone()));
        let encounter_id = encounter["id"].as_str().unwrap().to_owned();
        assert!(found.contains(&("Encounter".to_owned(), encounter_id)));
        assert!(found.contains(&(t.to_owned(), id.to_owned())), "{reference}");
        assert_eq!(everything.total as usize, found.len());
        let observations = found.iter().filter(|(t, _)| t == "Observation").count();
        assert!(observations > 10, "{observations}");
        drop(store);

        let (ok, stdout, stderr) = import(&database, &[&folder]);
        assert!(ok, "{stdout}{stderr}");
        assert!(stdout.contains(" 0 created, 0 updated"), "{stdout}");
        assert!(!stdout.contains("search indexes built"), "kept up to date: {stdout}");
        let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
        assert_eq!(count(&store, "Patient"), patients);
        assert_eq!(count(&store, "Encounter"), encounters);
    }
}

both_backends! {
    fn a_broken_file_is_reported_and_leaves_nothing_behind() {
        let database = TestDatabase::new();
        let dir = database.dir().join("files");
        std::fs::create_dir_all(&dir).unwrap();
        // A good NDJSON file, and a Bundle whose last entry is invalid.
        std::fs::write(
            dir.join("good.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"nd1\"}\n{\"resourceType\":\"Patient\",\"id\":\"nd2\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("broken.json"),
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": "urn:uuid:1b7c0000-0000-4000-8000-000000000001", "resource": {"resourceType": "Patient", "name": [{"family": "Half"}]}, "request": {"method": "POST", "url": "Patient"}},
                {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient?identifier=nobody"}}, "request": {"method": "POST", "url": "Observation"}}
            ]})
            .to_string(),
        )
        .unwrap();
        let (ok, stdout, _) = import(&database, &[&dir]);
        assert!(!ok, "a failed file fails the import");
        assert!(stdout.contains("imported 1 of 2 files"), "{stdout}");
        assert!(stdout.contains("FAILED") && stdout.contains("broken.json") && stdout.contains("Bundle.entry[1]"), "{stdout}");
        let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
        assert!(store.read("Patient", "nd1").is_ok() && store.read("Patient", "nd2").is_ok());
        assert!(store.read("Patient", "1b7c0000-0000-4000-8000-000000000001").is_err());
        assert_eq!(count(&store, "Patient"), 2);
    }
}

both_backends! {
    /// Input no HTTP request could send is refused in files too: a
    /// placeholder no entry carries fails its file, a member named twice
    /// fails its line, and `.` or `..` never becomes an id.
    fn files_are_held_to_the_same_rules_as_requests() {
        let database = TestDatabase::new();
        let dir = database.dir().join("files");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("dots.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"..\"}\n{\"resourceType\":\"Patient\",\"id\":\".\"}\n",
        )
        .unwrap();
        std::fs::write(dir.join("twice.ndjson"), "{\"resourceType\":\"Patient\",\"id\":\"a\",\"id\":\"b\"}\n").unwrap();
        std::fs::write(
            dir.join("dangling.json"),
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                              "subject": {"reference": "urn:uuid:1b7c0000-0000-4000-8000-00000000000f"}},
                 "request": {"method": "POST", "url": "Observation"}}
            ]})
            .to_string(),
        )
        .unwrap();
        let (ok, stdout, _) = import(&database, &[&dir]);
        assert!(!ok, "{stdout}");
        assert!(stdout.contains("imported 1 of 3 files"), "{stdout}");
        assert!(stdout.contains("twice.ndjson") && stdout.contains("more than once"), "{stdout}");
        assert!(stdout.contains("dangling.json") && stdout.contains("names no entry"), "{stdout}");
        let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
        assert_eq!(count(&store, "Patient"), 2, "both dotted Patients, under new ids");
        assert!(store.read("Patient", "..").is_err() && store.read("Patient", ".").is_err());
        assert_eq!(count(&store, "Observation"), 0);
    }
}

both_backends! {
    /// Files prepared side by side that each create the same Organization
    /// if none exists: whichever writes second finds the first's, when it
    /// is written or when it is loaded again alone, so the import ends
    /// with one Organization that every Patient names.
    fn files_racing_to_create_one_resource_create_it_once() {
        let database = TestDatabase::new();
        let dir = database.dir().join("files");
        std::fs::create_dir_all(&dir).unwrap();
        let files = 24;
        for i in 0..files {
            let organization = format!("urn:uuid:0a000000-0000-4000-8000-{i:012}");
            let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": organization, "resource": {"resourceType": "Organization",
                    "identifier": [{"system": "http://example.org/org", "value": "shared"}], "name": "Shared"},
                 "request": {"method": "POST", "url": "Organization",
                    "ifNoneExist": "identifier=http://example.org/org|shared"}},
                {"fullUrl": format!("urn:uuid:0b000000-0000-4000-8000-{i:012}"),
                 "resource": {"resourceType": "Patient", "managingOrganization": {"reference": organization}},
                 "request": {"method": "POST", "url": "Patient"}}
            ]});
            std::fs::write(dir.join(format!("{i:02}.json")), bundle.to_string()).unwrap();
        }
        let (ok, stdout, stderr) = import(&database, &[&dir]);
        assert!(ok, "{stdout}{stderr}");
        assert!(stdout.contains(&format!("imported {files} of {files} files")), "{stdout}");
        assert!(stdout.contains(&format!("{} found by ifNoneExist", files - 1)), "{stdout}");
        let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
        assert_eq!(count(&store, "Organization"), 1);
        assert_eq!(count(&store, "Patient"), files);
        assert_eq!(
            count_where(&store, "Patient", &[("organization.identifier", "http://example.org/org|shared")]),
            files,
            "every Patient names the one Organization"
        );
    }
}
