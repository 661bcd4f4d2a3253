//! Versioning, history and transactions of the store, on a real SQLite
//! file and a real PostgreSQL database.

use hearth_store::both_backends;
use hearth_store::testing::{Backend, TestDatabase};
use hearth_store::{HistoryQuery, HistoryScope, Method, Store, StoreError, StoreOptions};
use serde_json::{json, Value};

/// A store on a fresh database of the test's backend.
fn store() -> (Store, TestDatabase) {
    let database = TestDatabase::new();
    let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
    (store, database)
}

fn body(v: &hearth_store::StoredVersion) -> Value {
    serde_json::from_slice(v.body.as_ref().unwrap()).unwrap()
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]})
}

fn history(store: &Store, scope: HistoryScope) -> Vec<(String, i64, Method)> {
    let page = store
        .history(&HistoryQuery {
            scope,
            since: None,
            at: None,
            count: 1000,
            offset: 0,
            snapshot: None,
        })
        .unwrap();
    page.entries
        .into_iter()
        .map(|v| (v.id, v.version_id, v.method))
        .collect()
}

both_backends! {
    fn every_write_is_a_new_version_with_server_meta() {
        let (store, _dir) = store();
        let created = store
            .create(json!({"resourceType": "Patient", "active": true}))
            .unwrap();
        assert!(created.created);
        let id = created.version.id.clone();
        let v1 = body(&created.version);
        assert_eq!(v1["id"], id.as_str());
        assert_eq!(v1["meta"]["versionId"], "1");

        let updated = store
            .update(&id, patient(&id, "Smith"), None, Method::Put)
            .unwrap();
        assert!(!updated.created);
        assert_eq!(updated.version.version_id, 2);
        assert!(updated.version.last_updated > created.version.last_updated);
        assert_eq!(
            body(&store.read("Patient", &id).unwrap())["name"][0]["family"],
            "Smith"
        );
        assert_eq!(
            body(&store.vread("Patient", &id, 1).unwrap())["active"],
            true
        );
    }
}

both_backends! {
    fn delete_is_a_tombstone_that_history_keeps() {
        let (store, _dir) = store();
        store
            .update("p1", patient("p1", "A"), None, Method::Put)
            .unwrap();
        let tombstone = store.delete("Patient", "p1", None).unwrap().unwrap();
        assert_eq!(tombstone.version_id, 2);
        assert!(matches!(
            store.read("Patient", "p1"),
            Err(StoreError::Gone { version_id: 2, .. })
        ));
        assert!(matches!(
            store.vread("Patient", "p1", 2),
            Err(StoreError::Gone { .. })
        ));
        assert!(store.vread("Patient", "p1", 1).is_ok());
        // Deleting again writes nothing.
        assert!(store.delete("Patient", "p1", None).unwrap().is_none());
        assert_eq!(
            history(
                &store,
                HistoryScope::Instance("Patient".into(), "p1".into())
            ),
            vec![
                ("p1".into(), 2, Method::Delete),
                ("p1".into(), 1, Method::Put)
            ]
        );
        // An update brings it back as version 3, reported as a creation.
        let back = store
            .update("p1", patient("p1", "B"), None, Method::Put)
            .unwrap();
        assert!(back.created);
        assert_eq!(back.version.version_id, 3);
    }
}

both_backends! {
    fn a_stale_if_match_fails_and_changes_nothing() {
        let (store, _dir) = store();
        store
            .update("p1", patient("p1", "A"), None, Method::Put)
            .unwrap();
        store
            .update("p1", patient("p1", "B"), Some(1), Method::Put)
            .unwrap();
        let err = store
            .update("p1", patient("p1", "C"), Some(1), Method::Put)
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::VersionConflict {
                expected: 1,
                current: Some(2)
            }
        ));
        assert!(matches!(
            store.delete("Patient", "p1", Some(1)),
            Err(StoreError::VersionConflict { .. })
        ));
        assert_eq!(
            body(&store.read("Patient", "p1").unwrap())["name"][0]["family"],
            "B"
        );
    }
}

both_backends! {
    fn a_failed_transaction_writes_nothing() {
        let (store, _dir) = store();
        let result: Result<(), StoreError> = store.write(|tx| {
            tx.savepoint(|tx| {
                let a = tx.document(patient("a", "A"))?;
                tx.update("a", a, None, Method::Put)?;
                let b = tx.document(patient("b", "B"))?;
                tx.update("b", b, None, Method::Put)?;
                // Inside the transaction, its own writes are visible.
                assert!(tx.read("Patient", "a").is_ok());
                Err(StoreError::InvalidResource("abort".into()))
            })
        });
        assert!(matches!(result, Err(StoreError::InvalidResource(m)) if m == "abort"));
        assert_nothing_written(&store);
    }
}

both_backends! {
    /// A write that fails after changing something, outside a savepoint,
    /// leaves nothing behind. On SQLite it cannot be undone alone: its
    /// whole group-commit batch is rolled back (and the callers told to try
    /// again); on PostgreSQL its own transaction is, and it fails with its
    /// own error.
    fn a_write_failing_halfway_without_a_savepoint_rolls_back_its_batch() {
        let (store, _dir) = store();
        let result: Result<(), StoreError> = store.write(|tx| {
            let a = tx.document(patient("a", "A"))?;
            tx.update("a", a, None, Method::Put)?;
            Err(StoreError::InvalidResource("abort".into()))
        });
        match hearth_store::testing::backend() {
            Backend::Sqlite => assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            ),
            Backend::Postgres => assert!(
                matches!(&result, Err(StoreError::InvalidResource(m)) if m == "abort"),
                "{result:?}"
            ),
        }
        assert_nothing_written(&store);
        // The writer goes on.
        store
            .update("b", patient("b", "B"), None, Method::Put)
            .unwrap();
    }
}

/// Holds the store's writer (on SQLite, its one thread) inside a write
/// until the returned sender is dropped, so that the writes queued
/// meanwhile share its next transaction.
fn hold_the_writer(store: &Store) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let holder = store.clone();
    let thread = std::thread::spawn(move || {
        holder
            .write(move |_tx| -> Result<(), StoreError> {
                started.send(()).unwrap();
                let _ = released.recv();
                Ok(())
            })
            .unwrap_or_default();
    });
    running.recv().unwrap();
    (release, thread)
}

/// A queued write of one Patient, refused before it changes anything when
/// `refuse`.
fn queue_patient(
    store: &Store,
    id: &'static str,
    refuse: bool,
) -> hearth_store::PendingWrite<bool, StoreError> {
    store.write_later(1, move |tx| {
        if refuse {
            return Err(StoreError::InvalidResource(format!("{id} refused")));
        }
        let document = tx.document(patient(id, id))?;
        Ok(tx.update_unless_same(id, document, Method::Put)?.is_some())
    })
}

both_backends! {
    /// Writes queued with `write_later` (an import's files) may share one
    /// transaction; one refused before it changes anything fails alone.
    fn queued_writes_commit_together_and_a_refused_one_fails_alone() {
        let (store, _dir) = store();
        let (release, holder) = hold_the_writer(&store);
        let a = queue_patient(&store, "a", false);
        let refused = queue_patient(&store, "r", true);
        let b = queue_patient(&store, "b", false);
        drop(release);
        holder.join().unwrap();
        assert!(a.wait().unwrap(), "a written");
        assert!(matches!(refused.wait(), Err(StoreError::InvalidResource(m)) if m == "r refused"));
        assert!(b.wait().unwrap(), "b written");
        assert!(store.read("Patient", "a").is_ok() && store.read("Patient", "b").is_ok());
        assert!(matches!(store.read("Patient", "r"), Err(StoreError::NotFound { .. })));
        assert_eq!(history(&store, HistoryScope::System).len(), 2);
    }
}

both_backends! {
    /// A queued write that fails after changing something leaves nothing
    /// behind: on SQLite the transaction it shares is rolled back, and every
    /// write in it is told to try again; on PostgreSQL it ran alone.
    fn a_queued_write_failing_halfway_rolls_back_its_transaction() {
        let (store, _dir) = store();
        let (release, holder) = hold_the_writer(&store);
        let a = queue_patient(&store, "a", false);
        let halfway = store.write_later(1, |tx| -> Result<(), StoreError> {
            let b = tx.document(patient("b", "B"))?;
            tx.update("b", b, None, Method::Put)?;
            Err(StoreError::InvalidResource("abort".into()))
        });
        drop(release);
        holder.join().unwrap();
        match hearth_store::testing::backend() {
            Backend::Sqlite => {
                assert!(matches!(a.wait(), Err(StoreError::Unavailable(_))));
                assert!(matches!(halfway.wait(), Err(StoreError::Unavailable(_))));
                assert_nothing_written(&store);
            }
            Backend::Postgres => {
                assert!(a.wait().unwrap());
                assert!(matches!(halfway.wait(), Err(StoreError::InvalidResource(m)) if m == "abort"));
                assert!(matches!(store.read("Patient", "b"), Err(StoreError::NotFound { .. })));
            }
        }
        // The writer goes on.
        assert!(queue_patient(&store, "c", false).wait().unwrap());
    }
}

fn assert_nothing_written(store: &Store) {
    assert!(matches!(
        store.read("Patient", "a"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.read("Patient", "b"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(history(store, HistoryScope::System).is_empty());
}

both_backends! {
    fn concurrent_updates_lose_nothing_and_versions_stay_sequential() {
        let (store, _dir) = store();
        store
            .update("p", patient("p", "0"), None, Method::Put)
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        store
                            .update("p", patient("p", &format!("{t}-{i}")), None, Method::Put)
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(store.read("Patient", "p").unwrap().version_id, 101);
        let versions: Vec<i64> = history(&store, HistoryScope::Instance("Patient".into(), "p".into()))
            .into_iter()
            .map(|(_, v, _)| v)
            .collect();
        assert_eq!(versions, (1..=101).rev().collect::<Vec<_>>());
    }
}

both_backends! {
    fn history_pages_are_stable_while_others_write() {
        let (store, _dir) = store();
        for i in 0..5 {
            store
                .update(
                    &format!("p{i}"),
                    patient(&format!("p{i}"), "A"),
                    None,
                    Method::Put,
                )
                .unwrap();
        }
        let mut query = HistoryQuery {
            scope: HistoryScope::Type("Patient".into()),
            since: None,
            at: None,
            count: 2,
            offset: 0,
            snapshot: None,
        };
        let first = store.history(&query).unwrap();
        assert_eq!(first.total, 5);
        store
            .update("late", patient("late", "Z"), None, Method::Put)
            .unwrap();
        query.snapshot = Some(first.snapshot);
        let mut seen: Vec<String> = first.entries.iter().map(|v| v.id.clone()).collect();
        for offset in [2, 4] {
            query.offset = offset;
            let page = store.history(&query).unwrap();
            assert_eq!(page.total, 5);
            seen.extend(page.entries.into_iter().map(|v| v.id));
        }
        assert_eq!(seen, vec!["p4", "p3", "p2", "p1", "p0"]);
    }
}

both_backends! {
    fn the_database_survives_reopening() {
        let database = TestDatabase::new();
        {
            let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
            store
                .update("p", patient("p", "Kept"), None, Method::Put)
                .unwrap();
        }
        let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
        assert_eq!(
            body(&store.read("Patient", "p").unwrap())["name"][0]["family"],
            "Kept"
        );
    }
}

/// On PostgreSQL a version's seq is taken at insert, and transactions
/// commit in any order: a history page must still page the list its first
/// page saw, not one a late commit with a smaller seq slipped into.
#[test]
fn history_pages_ignore_commits_that_came_after_the_first_page() {
    hearth_store::testing::run_on(
        Backend::Postgres,
        "history_pages_ignore_commits_that_came_after_the_first_page",
        || {
            let (store, _dir) = store();
            for i in 0..5 {
                store
                    .update(
                        &format!("p{i}"),
                        patient(&format!("p{i}"), "P"),
                        None,
                        Method::Put,
                    )
                    .unwrap();
            }
            let (written, wait) = std::sync::mpsc::channel::<()>();
            let (go, proceed) = std::sync::mpsc::channel::<()>();
            let slow = {
                let store = store.clone();
                std::thread::spawn(move || {
                    store
                        .write(move |tx| -> Result<(), StoreError> {
                            let doc = tx.document(patient("late", "Late"))?;
                            tx.update("late", doc, None, Method::Put)?;
                            written.send(()).unwrap();
                            proceed.recv().unwrap();
                            Ok(())
                        })
                        .unwrap()
                })
            };
            wait.recv().unwrap();
            // Written after the slow one took its seq, committed before it.
            store
                .update("quick", patient("quick", "Quick"), None, Method::Put)
                .unwrap();
            let mut query = HistoryQuery {
                scope: HistoryScope::Type("Patient".into()),
                since: None,
                at: None,
                count: 3,
                offset: 0,
                snapshot: None,
            };
            let first = store.history(&query).unwrap();
            assert_eq!(first.total, 6);
            go.send(()).unwrap();
            slow.join().unwrap();
            query.snapshot = Some(first.snapshot.clone());
            query.offset = 3;
            let second = store.history(&query).unwrap();
            assert_eq!(second.total, 6, "the late commit joined the list");
            let ids: Vec<String> = first
                .entries
                .iter()
                .chain(&second.entries)
                .map(|v| v.id.clone())
                .collect();
            assert_eq!(ids, ["quick", "p4", "p3", "p2", "p1", "p0"]);
            // A fresh first page sees the late one.
            query.snapshot = None;
            query.offset = 0;
            assert_eq!(store.history(&query).unwrap().total, 7);
        },
    );
}
