//! Two stores on one PostgreSQL database, as two Hearth nodes: a
//! background job is run by one of them (needs PostgreSQL; skips without);
//! and an export that a restart interrupted resumes (both backends).

use hearth_store::testing::{run_on, Backend, TestDatabase};
use hearth_store::{JobStatus, Store, StoreOptions};
use serde_json::json;

#[test]
fn a_job_is_run_by_the_one_node_that_holds_it() {
    run_on(
        Backend::Postgres,
        "a_job_is_run_by_the_one_node_that_holds_it",
        || {
            let database = TestDatabase::new();
            let a = Store::open(&database.database, &StoreOptions::default()).unwrap();
            let b = Store::open(&database.database, &StoreOptions::default()).unwrap();
            for i in 0..1200 {
                a.create(json!({"resourceType": "Patient", "name": [{"family": format!("N{i}")}]}))
                    .unwrap();
            }
            let id = a.start_reindex(&[]).unwrap();
            // Both nodes look for work at once; each counts the batches it ran.
            let batches = |store: &Store| {
                let mut ran = 0;
                while store.run_job_batch().unwrap() {
                    ran += 1;
                }
                ran
            };
            let (on_a, on_b) = std::thread::scope(|scope| {
                let on_a = scope.spawn(|| batches(&a));
                let on_b = scope.spawn(|| batches(&b));
                (on_a.join().unwrap(), on_b.join().unwrap())
            });
            // Three batches of 500 and the one that finds nothing left, all on
            // one node (whichever claimed the job first).
            assert!(
                (on_a, on_b) == (4, 0) || (on_a, on_b) == (0, 4),
                "batches run: {on_a} and {on_b}"
            );
            let job = b.job(&id).unwrap().unwrap();
            assert_eq!(job.status, JobStatus::Done);
            assert_eq!((job.done, job.total), (1200, 1200));
        },
    );
}

hearth_store::both_backends! {
    /// An export stopped part-way (the process killed between two batches)
    /// resumes where it stopped when the store opens again: every resource
    /// is exported exactly once.
    fn an_interrupted_export_resumes_after_a_restart() {
        let database = TestDatabase::new();
        // A short lease: the reopened store is another node to the jobs.
        let options = StoreOptions {
            // Long enough to outlast reopening the store on a loaded machine.
            job_lease: std::time::Duration::from_secs(2),
            ..StoreOptions::default()
        };
        // More than two export batches (5,000 each), written in one go.
        let ids: Vec<String> = {
            let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
            store
                .write_alone(|tx| -> Result<Vec<String>, hearth_store::StoreError> {
                    (0..11_000)
                        .map(|i| {
                            let doc = tx.document(json!({"resourceType": "Patient", "name": [{"family": format!("E{i}")}]}))?;
                            Ok(tx.create(doc)?.version.id)
                        })
                        .collect()
                })
                .unwrap()
        };
        let id = {
            let store = Store::open(&database.database, &options).unwrap();
            let id = store.start_export(&hearth_store::ExportRequest::default()).unwrap();
            // One batch, then the store goes away as a killed process's.
            assert!(store.run_job_batch().unwrap());
            let job = store.job(&id).unwrap().unwrap();
            assert_eq!(job.status, JobStatus::Running);
            assert!(job.done > 0 && job.done < 11_000, "{}", job.done);
            id
        };
        let store = Store::open(&database.database, &options).unwrap();
        // Until the lease of the stopped one runs out, the job is not ours.
        assert!(!store.run_job_batch().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        while store.run_job_batch().unwrap() {}
        assert_eq!(store.job(&id).unwrap().unwrap().status, JobStatus::Done);
        let mut exported = Vec::new();
        for part in store.export_parts(&id).unwrap() {
            let data = store.export_part(&id, part.n).unwrap().unwrap();
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let resource: serde_json::Value = serde_json::from_slice(line).unwrap();
                exported.push(resource["id"].as_str().unwrap().to_owned());
            }
        }
        let mut expected = ids.clone();
        expected.sort();
        exported.sort();
        assert_eq!(exported, expected);
    }
}
