//! `hearth backup` and `hearth restore` as an operator runs them: a backup
//! taken while clients write holds every write acknowledged before it
//! began, restores to a store that answers the same searches with a
//! current index, and a restore is refused under a running server.

use std::ffi::OsStr;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_store::testing::TestDatabase;
use serde_json::Value;

mod common;

use common::{free_port, wait_ready};

fn hearth(args: &[&str], database: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .arg("--database-url")
        .arg(database)
        .output()
        .expect("run hearth")
}

fn serve(database: &std::path::Path, port: u16) -> Child {
    common::serve(port, &[OsStr::new("--database-url"), database.as_os_str()])
}

fn create(client: &reqwest::blocking::Client, base: &str, family: &str) -> Option<String> {
    let response = client
        .post(format!("{base}/Patient"))
        .header("Content-Type", "application/fhir+json")
        .header("Prefer", "return=minimal")
        .body(format!(
            r#"{{"resourceType":"Patient","name":[{{"family":"{family}"}}]}}"#
        ))
        .send()
        .ok()?;
    let location = response
        .headers()
        .get("location")?
        .to_str()
        .ok()?
        .to_owned();
    (response.status() == 201).then(|| {
        location
            .split('/')
            .nth_back(2)
            .unwrap_or_default()
            .to_owned()
    })
}

fn total(client: &reqwest::blocking::Client, base: &str, query: &str) -> i64 {
    let bundle: Value = client
        .get(format!("{base}/{query}"))
        .header("Accept", "application/fhir+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    bundle["total"]
        .as_i64()
        .unwrap_or_else(|| panic!("{bundle}"))
}

#[test]
fn a_backup_under_writes_restores_every_acknowledged_write() {
    // SQLite only: PostgreSQL is backed up with its own tools.
    let database = TestDatabase::new();
    let live = std::path::PathBuf::from(database.url());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let mut server = serve(&live, port);
    wait_ready(&client, &base);
    for i in 0..100 {
        create(&client, &base, &format!("Before{}", i % 7)).expect("a preloaded Patient");
    }

    // Four clients write until told to stop; each write is kept with the
    // time it was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, acknowledged, base) = (stop.clone(), acknowledged.clone(), base.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(id) = create(&client, &base, &format!("During{w}")) {
                        acknowledged.lock().unwrap().push((Instant::now(), id));
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let copy = database.dir().join("backup.db");
    let began = Instant::now();
    let output = hearth(&["backup", copy.to_str().unwrap()], &live);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("backed up"), "{stdout}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let before: Vec<&String> = acknowledged
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, id)| id)
        .collect();
    let after = acknowledged.len() - before.len();
    eprintln!(
        "{written} writes: {} acknowledged before the backup began, {after} after",
        before.len()
    );
    assert!(
        !before.is_empty() && after > 0,
        "{written} writes: {} before the backup, {after} after",
        before.len()
    );

    // Not over the store in use.
    let output = hearth(&["restore", copy.to_str().unwrap()], &live);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Into a store of its own.
    let restored = database.dir().join("restored/hearth.db");
    let output = hearth(&["restore", copy.to_str().unwrap()], &restored);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = hearth_store::backup::verify(&restored).unwrap();
    assert!(summary.index_is_current(), "{summary:?}");

    let restored_port = free_port();
    let restored_base = format!("http://127.0.0.1:{restored_port}");
    let mut copy_server = serve(&restored, restored_port);
    wait_ready(&client, &restored_base);
    for id in &before {
        let status = client
            .get(format!("{restored_base}/Patient/{id}"))
            .send()
            .unwrap()
            .status();
        assert_eq!(
            status, 200,
            "Patient/{id}, acknowledged before the backup, is missing"
        );
    }
    // The preloaded Patients, which nobody changed, are found alike.
    for i in 0..7 {
        let query = format!("Patient?family=Before{i}&_total=accurate");
        assert_eq!(
            total(&client, &base, &query),
            total(&client, &restored_base, &query)
        );
    }
    let restored_count = total(&client, &restored_base, "Patient?_summary=count");
    assert!(restored_count >= 100 + before.len() as i64);
    assert!(restored_count < total(&client, &base, "Patient?_summary=count"));
    copy_server.kill().unwrap();
    copy_server.wait().unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_backup_of_postgresql_points_to_its_tools() {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "backup",
            "/tmp/never-written.db",
            "--database-url",
            "postgres://hearth@db.example.org/fhir",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pg_dump") && !stderr.contains("never-written"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("/tmp/never-written.db").exists());
}
