//! What the binary's tests share: Synthea's files and `hearth import`.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_store::testing::TestDatabase;

/// A folder with Synthea's two shared files and the first `patients`
/// patients' files, compressed as published; `None` (with a note, see
/// `hearth_fixtures`) where Synthea's files cannot be had.
pub fn synthea_folder(dir: &Path, patients: usize) -> Option<PathBuf> {
    let synthea = hearth_fixtures::synthea()?;
    let folder = dir.join("synthea");
    std::fs::create_dir_all(&folder).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&synthea)
        .expect("Synthea's folder")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let chosen: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("0-"))
        .take(patients)
        .collect();
    for name in names.iter().filter(|n| n.starts_with("0-")).chain(chosen) {
        std::fs::copy(synthea.join(name), folder.join(name)).unwrap();
    }
    Some(folder)
}

/// Runs `hearth import` of `paths` into `database`: whether it succeeded,
/// its standard output and error.
pub fn import(database: &TestDatabase, paths: &[&Path]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("import")
        .arg("--data-dir")
        .arg(database.dir())
        .arg("--database-url")
        .arg(database.url())
        .args(paths)
        .output()
        .expect("run hearth import");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `hearth serve` on loopback `port`, with `flags`.
pub fn serve(port: u16, flags: &[&OsStr]) -> Child {
    serve_to(port, flags, Stdio::null())
}

/// [`serve`], its log (standard output) going to `log`.
pub fn serve_to(port: u16, flags: &[&OsStr], log: impl Into<Stdio>) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(flags)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("start hearth")
}

/// Waits until the server at `base` is ready.
pub fn wait_ready(client: &reqwest::blocking::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{base}/health/ready"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("hearth did not become ready at {base}");
}
