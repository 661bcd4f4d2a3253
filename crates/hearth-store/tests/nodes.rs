//! Two stores on one PostgreSQL database, as two Hearth nodes: a
//! background job is run by one of them. (Needs PostgreSQL; skips without.)

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
