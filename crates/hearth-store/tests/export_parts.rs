//! An export's parts are bounded by bytes, not only by resources: large
//! resources spread over several parts, and each is exported once.

use hearth_store::testing::TestDatabase;
use hearth_store::{ExportRequest, JobStatus, Store, StoreOptions};
use serde_json::json;

/// Stores `n` Basic resources whose text is `text(i)`; runs an export of
/// everything; answers their ids, sorted, and each part's NDJSON.
fn export_parts(n: usize, text: impl Fn(usize) -> String) -> (Vec<String>, Vec<Vec<u8>>) {
    let database = TestDatabase::new();
    let store = Store::open(&database.database, &StoreOptions::default()).unwrap();
    let mut created: Vec<String> = (0..n)
        .map(|i| {
            let resource = json!({"resourceType": "Basic", "code": {"text": text(i)}});
            store.create(resource).unwrap().version.id
        })
        .collect();
    created.sort();
    let id = store.start_export(&ExportRequest::default()).unwrap();
    while store.run_job_batch().unwrap() {}
    let job = store.job(&id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.done, n as i64);
    let parts = store
        .export_parts(&id)
        .unwrap()
        .into_iter()
        .map(|part| {
            let data = store.export_part(&id, part.n).unwrap().unwrap();
            let lines = data
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            assert_eq!(lines as i64, part.resources);
            data
        })
        .collect();
    (created, parts)
}

/// The ids in the parts, sorted.
fn ids(parts: &[Vec<u8>]) -> Vec<String> {
    let mut ids: Vec<String> = parts
        .iter()
        .flat_map(|data| data.split(|b| *b == b'\n').filter(|l| !l.is_empty()))
        .map(|line| {
            serde_json::from_slice::<serde_json::Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

hearth_store::both_backends! {
    /// Bodies that do not compress (1 MB each): a part reads about 4 MB of
    /// them.
    fn large_stored_resources_spread_over_parts() {
        let (created, parts) = export_parts(10, |i| {
            // Hex digits of a simple generator: LZ4 finds nothing to repeat.
            let mut x = i as u64 + 1;
            (0..1 << 20)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    char::from_digit((x >> 60) as u32, 16).unwrap()
                })
                .collect()
        });
        assert!(parts.len() >= 3, "{} parts", parts.len());
        for part in &parts {
            assert!(part.len() <= 5 << 20, "a part of {} bytes", part.len());
        }
        assert_eq!(ids(&parts), created);
    }
}

hearth_store::both_backends! {
    /// Bodies stored small that expand (6 MB of one letter each): a part's
    /// NDJSON stops near 16 MB.
    fn resources_that_expand_spread_over_parts() {
        let (created, parts) = export_parts(10, |_| "x".repeat(6 << 20));
        assert!(parts.len() >= 4, "{} parts", parts.len());
        for part in &parts {
            assert!(part.len() <= 19 << 20, "a part of {} bytes", part.len());
        }
        assert_eq!(ids(&parts), created);
    }
}
