//! Grants enforced by the store, in SQL, on a real SQLite file and a real
//! PostgreSQL database: what a patient-limited or granular grant lets a
//! request see, count, include, chain through, page and write.

use hearth_auth::{Grant, Principal, Scopes};
use hearth_store::both_backends;
use hearth_store::search::{self, ParseOptions, SearchPage};
use hearth_store::testing::TestDatabase;
use hearth_store::{Access, HistoryQuery, HistoryScope, Method, Store, StoreError, StoreOptions};
use serde_json::{json, Value};

fn principal(scopes: &str, patient: Option<&str>) -> Principal {
    Principal {
        issuer: "https://hearth.example/fhir".into(),
        subject: Some("tester".into()),
        client_id: Some("app".into()),
        fhir_user: None,
        patient: patient.map(str::to_owned),
        encounter: None,
        scopes: Scopes::parse(scopes).unwrap(),
        expires_at: i64::MAX,
        token_id: None,
    }
}

fn under(store: &Store, scopes: &str, patient: Option<&str>) -> Store {
    let p = principal(scopes, patient);
    store.under(Access::new(Grant::of(&p), Some(p.owner())))
}

fn put(store: &Store, resource: Value) {
    let id = resource["id"].as_str().unwrap().to_owned();
    store.update(&id, resource, None, Method::Put).unwrap();
}

fn category(code: &str) -> Value {
    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}])
}

/// Patients a and b share practitioner d; e worked for b alone.
fn seeded() -> (Store, TestDatabase) {
    let db = TestDatabase::new();
    let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
    put(
        &store,
        json!({"resourceType": "Patient", "id": "a", "name": [{"family": "Alpha"}]}),
    );
    put(
        &store,
        json!({"resourceType": "Patient", "id": "b", "name": [{"family": "Beta"}]}),
    );
    put(
        &store,
        json!({"resourceType": "Practitioner", "id": "d", "name": [{"family": "Shared"}]}),
    );
    put(
        &store,
        json!({"resourceType": "Practitioner", "id": "e", "name": [{"family": "OnlyB"}]}),
    );
    put(
        &store,
        json!({"resourceType": "Observation", "id": "oa1", "status": "final", "category": category("laboratory"),
        "code": {"text": "a lab"}, "subject": {"reference": "Patient/a"}, "performer": [{"reference": "Practitioner/d"}]}),
    );
    put(
        &store,
        json!({"resourceType": "Observation", "id": "oa2", "status": "final", "category": category("vital-signs"),
        "code": {"text": "a vital"}, "subject": {"reference": "Patient/a"}}),
    );
    put(
        &store,
        json!({"resourceType": "Observation", "id": "ob1", "status": "final", "category": category("laboratory"),
        "code": {"coding": [{"system": "http://loinc.org", "code": "secret-b"}]},
        "subject": {"reference": "Patient/b"}, "performer": [{"reference": "Practitioner/d"}, {"reference": "Practitioner/e"}]}),
    );
    // a's Observation that points at b's.
    put(
        &store,
        json!({"resourceType": "Observation", "id": "oa3", "status": "final",
        "code": {"text": "a panel"}, "subject": {"reference": "Patient/a"}, "hasMember": [{"reference": "Observation/ob1"}]}),
    );
    put(
        &store,
        json!({"resourceType": "Device", "id": "devb", "patient": {"reference": "Patient/b"}}),
    );
    put(
        &store,
        json!({"resourceType": "Device", "id": "deva", "patient": {"reference": "Patient/a"}}),
    );
    (store, db)
}

fn ids(store: &Store, types: &[&str], params: &[(&str, &str)]) -> (Vec<String>, Vec<String>, i64) {
    let options = ParseOptions {
        strict: true,
        default_count: 100,
        max_count: 1000,
        base: None,
        custom: store.custom_params(),
    };
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let query = search::parse(&types, &params, &options).unwrap();
    let results = store.search(&query, &SearchPage::default()).unwrap();
    let name = |v: &hearth_store::StoredVersion| format!("{}/{}", v.resource_type, v.id);
    let mut matches: Vec<String> = results.matches.iter().map(name).collect();
    let mut included: Vec<String> = results.included.iter().map(name).collect();
    matches.sort();
    included.sort();
    (matches, included, results.total)
}

fn all_types() -> Vec<&'static str> {
    hearth_model::structure::resource_types().collect()
}

both_backends! {
    fn a_patient_grant_sees_and_counts_that_patients_data_only() {
        let (store, _db) = seeded();
        let a = under(&store, "patient/*.rs", Some("a"));
        let (m, _, total) = ids(&a, &["Observation"], &[]);
        assert_eq!(m, ["Observation/oa1", "Observation/oa2", "Observation/oa3"]);
        assert_eq!(total, 3);
        assert_eq!(ids(&a, &["Observation"], &[("_summary", "count")]).2, 3);
        assert_eq!(ids(&a, &["Observation"], &[("subject", "Patient/b")]).2, 0);
        assert_eq!(ids(&a, &["Observation"], &[("code", "http://loinc.org|secret-b")]).2, 0);
        // Every type: a's data, and what is nobody's.
        let (m, _, total) = ids(&a, &all_types(), &[]);
        assert_eq!(total as usize, m.len());
        assert!(m.contains(&"Patient/a".to_owned()) && m.contains(&"Device/deva".to_owned()));
        assert!(m.contains(&"Practitioner/d".to_owned()) && m.contains(&"Practitioner/e".to_owned()));
        assert!(!m.iter().any(|r| r.ends_with("/b") || r.ends_with("ob1") || r.ends_with("devb")), "{m:?}");
        // Without a grant the same searches see both patients.
        assert_eq!(ids(&store, &["Observation"], &[]).2, 4);
    }

    fn includes_chains_and_has_are_held_to_the_grant() {
        let (store, _db) = seeded();
        let a = under(&store, "patient/*.rs", Some("a"));
        // _revinclude of the shared practitioner: a's Observation only.
        let (m, inc, _) = ids(&a, &["Practitioner"], &[("_id", "d"), ("_revinclude", "Observation:performer")]);
        assert_eq!(m, ["Practitioner/d"]);
        assert_eq!(inc, ["Observation/oa1"]);
        // _include of what a's resource points at that is b's: left out.
        let (m, inc, _) = ids(&a, &["Observation"], &[("_id", "oa3"), ("_include", "Observation:has-member")]);
        assert_eq!(m, ["Observation/oa3"]);
        assert!(inc.is_empty(), "{inc:?}");
        // :iterate reaching b's data through the shared practitioner.
        let (_, inc, _) = ids(&a, &["Observation"], &[("_id", "oa1"), ("_include", "Observation:performer"),
            ("_revinclude:iterate", "Observation:performer")]);
        assert_eq!(inc, ["Practitioner/d"]);
        // _has as an oracle: e is referred to by b's Observation only.
        let (m, _, _) = ids(&a, &["Practitioner"], &[("_has:Observation:performer:status", "final")]);
        assert_eq!(m, ["Practitioner/d"]);
        let (m, _, _) = ids(&store, &["Practitioner"], &[("_has:Observation:performer:status", "final")]);
        assert_eq!(m, ["Practitioner/d", "Practitioner/e"]);
        // A chain as an oracle: a's oa3 has b's ob1 as a member.
        assert_eq!(ids(&a, &["Observation"], &[("has-member.code", "http://loinc.org|secret-b")]).2, 0);
        assert_eq!(ids(&store, &["Observation"], &[("has-member.code", "http://loinc.org|secret-b")]).2, 1);
        assert_eq!(ids(&a, &["Observation"], &[("subject:Patient.family", "Beta")]).2, 0);
        assert_eq!(ids(&a, &["Observation"], &[("subject:Patient.family", "Alpha")]).2, 3);
    }

    fn reads_versions_and_history_of_hidden_data_are_not_found() {
        let (store, _db) = seeded();
        let a = under(&store, "patient/*.rs", Some("a"));
        assert!(a.read("Observation", "oa1").is_ok());
        assert!(a.read("Practitioner", "e").is_ok(), "nobody's data is readable");
        for (t, id) in [("Observation", "ob1"), ("Patient", "b"), ("Device", "devb")] {
            assert!(matches!(a.read(t, id), Err(StoreError::NotFound { .. })), "{t}/{id}");
            assert!(matches!(a.vread(t, id, 1), Err(StoreError::NotFound { .. })), "{t}/{id}");
            assert!(matches!(a.vread(t, id, 9), Err(StoreError::NotFound { .. })), "{t}/{id}");
        }
        // A resource that moved from a to b: its first version is a's.
        put(&store, json!({"resourceType": "Observation", "id": "moved", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/a"}}));
        put(&store, json!({"resourceType": "Observation", "id": "moved", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/b"}}));
        assert!(matches!(a.read("Observation", "moved"), Err(StoreError::NotFound { .. })));
        assert!(a.vread("Observation", "moved", 1).is_ok());
        assert!(matches!(a.vread("Observation", "moved", 2), Err(StoreError::NotFound { .. })));
        let history = |s: &Store, scope: HistoryScope| {
            let page = s.history(&HistoryQuery { scope, since: None, at: None, count: 100, offset: 0, snapshot: None }).unwrap();
            let mut v: Vec<String> = page.entries.iter().map(|v| format!("{}/{}/{}", v.resource_type, v.id, v.version_id)).collect();
            v.sort();
            (v, page.total)
        };
        let (v, total) = history(&a, HistoryScope::Instance("Observation".into(), "moved".into()));
        assert_eq!((v, total), (vec!["Observation/moved/1".to_owned()], 1));
        let (v, total) = history(&a, HistoryScope::Type("Observation".into()));
        assert_eq!(total as usize, v.len());
        assert!(!v.iter().any(|e| e.contains("ob1") || e.contains("moved/2")), "{v:?}");
        let (v, _) = history(&a, HistoryScope::System);
        assert!(!v.iter().any(|e| e.starts_with("Patient/b") || e.contains("devb")), "{v:?}");
        assert!(v.contains(&"Practitioner/e/1".to_owned()));
        // A deletion of b's resource is b's.
        store.delete("Observation", "ob1", None).unwrap();
        let (v, _) = history(&a, HistoryScope::Type("Observation".into()));
        assert!(!v.iter().any(|e| e.contains("ob1")), "{v:?}");
        assert!(matches!(a.read("Observation", "ob1"), Err(StoreError::NotFound { .. })));
    }

    fn types_and_permissions_not_granted_are_refused() {
        let (store, _db) = seeded();
        let obs = under(&store, "patient/Observation.rs", Some("a"));
        assert!(matches!(obs.read("Condition", "x"), Err(StoreError::Forbidden(_))));
        let options = ParseOptions { strict: true, default_count: 10, max_count: 10, base: None, custom: store.custom_params() };
        let query = search::parse(&["Encounter".into()], &[], &options).unwrap();
        assert!(matches!(obs.search(&query, &SearchPage::default()), Err(StoreError::Forbidden(_))));
        // A system search is of the granted types.
        let (m, _, _) = ids(&obs, &all_types(), &[]);
        assert!(m.iter().all(|r| r.starts_with("Observation/")), "{m:?}");
        // Read without search: a search is refused.
        let read_only = under(&store, "patient/Observation.r", Some("a"));
        assert!(read_only.read("Observation", "oa1").is_ok());
        let query = search::parse(&["Observation".into()], &[], &options).unwrap();
        assert!(matches!(read_only.search(&query, &SearchPage::default()), Err(StoreError::Forbidden(_))));
        // Several scopes: each counts.
        let two = under(&store, "patient/Observation.rs patient/Device.rs", Some("a"));
        assert_eq!(ids(&two, &["Device"], &[]).0, ["Device/deva"]);
        assert_eq!(ids(&two, &["Observation"], &[]).2, 3);
        // Writes need c, u, d.
        assert!(matches!(obs.create(json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/a"}})), Err(StoreError::Forbidden(_))));
        assert!(matches!(store.under(Access::new(Grant::nothing(), None)).read("Patient", "a"), Err(StoreError::Forbidden(_))));
    }

    fn granular_scopes_limit_to_their_search() {
        let (store, _db) = seeded();
        let lab = under(&store, "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", Some("a"));
        assert_eq!(ids(&lab, &["Observation"], &[]).0, ["Observation/oa1"]);
        assert_eq!(ids(&lab, &["Observation"], &[("_summary", "count")]).2, 1);
        assert!(matches!(lab.read("Observation", "oa2"), Err(StoreError::NotFound { .. })));
        let both = under(&store, "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs", Some("a"));
        assert_eq!(ids(&both, &["Observation"], &[]).0, ["Observation/oa1", "Observation/oa2"]);
        // user/ with a filter: every patient's labs.
        let labs = under(&store, "user/Observation.rs?category=laboratory", None);
        assert_eq!(ids(&labs, &["Observation"], &[]).0, ["Observation/ob1", "Observation/oa1"].iter().rev().map(|s| s.to_string()).collect::<Vec<_>>());
    }

    fn writes_stay_within_the_patients_compartment() {
        let (store, _db) = seeded();
        let a = under(&store, "patient/*.cruds", Some("a"));
        let to = |patient: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": "new"}, "subject": {"reference": format!("Patient/{patient}")}});
        assert!(a.create(to("a")).is_ok());
        assert!(matches!(a.create(to("b")), Err(StoreError::Forbidden(_))));
        assert_eq!(ids(&store, &["Observation"], &[("subject", "Patient/b")]).2, 1, "nothing was written for b");
        // Moving a's resource to b is refused, and changes nothing.
        let mut moved = to("b");
        moved["id"] = json!("oa2");
        assert!(matches!(a.update("oa2", moved, None, Method::Put), Err(StoreError::Forbidden(_))));
        assert_eq!(store.read("Observation", "oa2").unwrap().version_id, 1);
        // b's resources cannot be seen to be updated or deleted.
        let mut theirs = to("a");
        theirs["id"] = json!("ob1");
        assert!(matches!(a.update("ob1", theirs, None, Method::Put), Err(StoreError::NotFound { .. })));
        assert!(matches!(a.delete("Observation", "ob1", None), Err(StoreError::NotFound { .. })));
        assert!(a.delete("Observation", "oa2", None).is_ok());
        assert!(store.read("Observation", "ob1").is_ok());
        // A SearchParameter needs system scopes.
        let sp = json!({"resourceType": "SearchParameter", "url": "http://example.org/sp", "name": "x", "status": "active",
            "description": "x", "code": "x", "base": ["Patient"], "type": "string", "expression": "Patient.name"});
        assert!(matches!(under(&store, "user/*.cruds", None).create(sp.clone()), Err(StoreError::Forbidden(_))));
        assert!(under(&store, "system/SearchParameter.c", None).create(sp).is_ok());
    }

    fn a_paging_snapshot_is_not_paged_under_another_grant() {
        let (store, _db) = seeded();
        let options = ParseOptions { strict: true, default_count: 1, max_count: 1, base: None, custom: store.custom_params() };
        let query = search::parse(&["Observation".into()], &[("_count".into(), "1".into()), ("_total".into(), "accurate".into())], &options).unwrap();
        let everyone = store.search(&query, &SearchPage::default()).unwrap();
        assert_eq!(everyone.total, 4);
        let a = under(&store, "patient/*.rs", Some("a"));
        let page = SearchPage { snapshot: everyone.snapshot.clone(), offset: 0, cursor: None };
        let mine = a.search(&query, &page).unwrap();
        assert_eq!(mine.total, 3, "the search ran afresh under a's grant");
    }
}
