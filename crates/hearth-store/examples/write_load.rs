//! Store-level write load, without HTTP: how fast the writer thread commits
//! the bench Patient, and what each create costs it.
//!
//! ```sh
//! cargo run --release -p hearth-store --example write_load   # from the repository root
//! THREADS=32 SECONDS=10 …     # concurrent creates for 10 s (the default)
//! BATCH=20 COUNT=2000 …       # one thread, creates in batches of 20: repeatable
//!                             # under `valgrind --tool=callgrind`
//! ```
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_store::{Store, StoreError};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = setting("SECONDS", 10);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open_sqlite(&dir.path().join("hearth.db"), &Default::default())
        .expect("a new store");
    let body = std::fs::read("bench/patient.json").expect("bench/patient.json (run from the root)");
    let patient = hearth_model::parse(&body, hearth_model::Format::Json).expect("a valid Patient");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();

    if let Ok(batch) = std::env::var("BATCH") {
        let batch: usize = batch.parse().expect("BATCH is a number");
        let count = setting("COUNT", u64::MAX) as usize;
        let mut n = 0;
        while Instant::now() < deadline && n < count {
            let documents: Vec<_> = (0..batch)
                .map(|_| store.document(patient.clone()).expect("a document"))
                .collect();
            store
                .write(move |tx| {
                    for d in documents {
                        tx.create(d)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .expect("a committed batch");
            n += batch;
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        println!("{n} creates in batches of {batch}: {rate:.0}/s");
        return;
    }

    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..setting("THREADS", 32))
        .map(|_| {
            let (store, patient, done) = (store.clone(), patient.clone(), done.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    store.create(patient.clone()).expect("a create");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a load thread");
    }
    let n = done.load(Ordering::Relaxed);
    let size =
        |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "{n} creates in {seconds} s: {:.0}/s; writer CPU {:.0} us per create; db {:.1} MB, wal {:.1} MB",
        n as f64 / started.elapsed().as_secs_f64(),
        writer_cpu_seconds() * 1e6 / n as f64,
        size("hearth.db"),
        size("hearth.db-wal"),
    );
}

/// CPU seconds (user and system) the writer thread has used so far.
fn writer_cpu_seconds() -> f64 {
    const TICKS_PER_SECOND: f64 = 100.0;
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "hearth-writer")
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|stat| {
            // Fields after the command name: utime and stime are 12th and 13th.
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (ticks(11) + ticks(12)) / TICKS_PER_SECOND
        })
        .sum()
}
