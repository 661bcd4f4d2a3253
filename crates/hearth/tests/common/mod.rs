//! What the binary's tests share: Synthea's files and `hearth import`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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
