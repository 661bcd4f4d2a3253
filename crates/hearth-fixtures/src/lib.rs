//! Where tests find the fixtures that live outside the repository: the
//! official R4 examples, the official PATCH test cases and Synthea's
//! patients.
//!
//! They are looked for under one folder, `HEARTH_FIXTURES` (by default
//! `../shared` beside the workspace, as on the development machine and in
//! CI). What a package registry serves — the official examples, npm's
//! `hl7.fhir.r4.examples@4.0.1` — is fetched when absent, once, into a
//! cache outside the clone (`HEARTH_FIXTURES_CACHE`, by default
//! `~/.cache/hearth/fixtures`). A fixture that cannot be had makes the
//! tests that need it pass without running, with one note per test
//! program saying which and how to get it; under `CI` it fails them
//! instead, so CI cannot pass having skipped them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The folder the fixtures are looked for in.
pub fn root() -> PathBuf {
    match std::env::var_os("HEARTH_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// The 709 official R4 example resources (`fhir/r4/examples`), fetched
/// from the npm registry when the fixtures folder lacks them.
pub fn examples() -> Option<PathBuf> {
    static NOTE: Once = Once::new();
    let local = root().join("fhir/r4/examples");
    if local.is_dir() {
        return Some(local);
    }
    match npm_examples() {
        Ok(dir) => Some(dir),
        Err(e) => missing(
            &NOTE,
            "the official R4 examples",
            &format!(
                "set HEARTH_FIXTURES to a folder holding fhir/r4/examples, or let the tests fetch \
                 {PACKAGE}@{VERSION} from {REGISTRY} (that failed: {e})"
            ),
        ),
    }
}

/// The official PATCH test cases (`fhir/test-cases/patch`: JSON Patch and
/// FHIRPath Patch), from the FHIR project's fhir-test-cases repository.
pub fn patch_cases() -> Option<PathBuf> {
    static NOTE: Once = Once::new();
    local(
        &NOTE,
        "fhir/test-cases/patch",
        "the official PATCH test cases",
        "copy fhir-test-cases' r4/patch folder (github.com/FHIR/fhir-test-cases) to HEARTH_FIXTURES/fhir/test-cases/patch",
    )
}

/// Synthea's 120 patients (`data/synthea-120`, bzip2-compressed Bundles).
pub fn synthea() -> Option<PathBuf> {
    static NOTE: Once = Once::new();
    local(
        &NOTE,
        "data/synthea-120",
        "Synthea's patients",
        "put Synthea transaction Bundles (.json.bz2, hospital and practitioner files named 0-…) in HEARTH_FIXTURES/data/synthea-120",
    )
}

fn local(note: &'static Once, path: &str, what: &str, how: &str) -> Option<PathBuf> {
    let dir = root().join(path);
    if dir.is_dir() {
        Some(dir)
    } else {
        missing(note, what, &format!("{} is missing; {how}", dir.display()))
    }
}

/// A fixture that cannot be had: a note, or under CI a failure.
fn missing(note: &'static Once, what: &str, how: &str) -> Option<PathBuf> {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("CI must run every test, but {what} are not available: {how}");
    }
    note.call_once(|| {
        say(&format!(
            "note: the tests that need {what} are skipped (they pass without running): {how}"
        ))
    });
    None
}

/// Writes past the test harness's capture, so a plain `cargo test` shows
/// it.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

const REGISTRY: &str = "https://registry.npmjs.org";
const PACKAGE: &str = "hl7.fhir.r4.examples";
const VERSION: &str = "4.0.1";

/// The package's definitional resources, which are not examples: the
/// specification's own profiles, value sets, code systems, search
/// parameters and the like, and the Bundles that gather them.
const DEFINITIONAL_TYPES: &[&str] = &[
    "CapabilityStatement",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "GraphDefinition",
    "ImplementationGuide",
    "MessageDefinition",
    "NamingSystem",
    "OperationDefinition",
    "SearchParameter",
    "StructureDefinition",
    "StructureMap",
    "TerminologyCapabilities",
    "ValueSet",
];
const DEFINITIONAL_FILES: &[&str] = &[
    "Bundle-dataelements.json",
    "Bundle-extensions.json",
    "Bundle-profiles-others.json",
    "Bundle-resources.json",
    "Bundle-searchParams.json",
    "Bundle-types.json",
    "Bundle-v2-valuesets.json",
    "Bundle-v3-valuesets.json",
    "Bundle-valueset-expansions.json",
    "Bundle-valuesets.json",
    "Library-library-fhir-model-definition.json",
];

fn is_example(name: &str) -> bool {
    let resource_type = name.split('-').next().unwrap_or_default();
    name.ends_with(".json")
        && resource_type.starts_with(|c: char| c.is_ascii_uppercase())
        && !DEFINITIONAL_TYPES.contains(&resource_type)
        && !DEFINITIONAL_FILES.contains(&name)
}

fn cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTH_FIXTURES_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("hearth/fixtures")
}

/// The examples of the npm package, downloaded and unpacked into the cache
/// the first time. Test programs racing to do it each unpack into a
/// folder of their own and rename it into place; the first rename wins.
fn npm_examples() -> Result<PathBuf, String> {
    let dir = cache().join(format!("{PACKAGE}-{VERSION}"));
    if dir.is_dir() {
        return Ok(dir);
    }
    let url = format!("{REGISTRY}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz");
    say(&format!(
        "note: fetching {url} for the official R4 examples (once, into {})",
        dir.display()
    ));
    let response = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .and_then(|client| client.get(&url).send())
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    let mut tgz = Vec::new();
    response
        .take(200 << 20)
        .read_to_end(&mut tgz)
        .map_err(|e| e.to_string())?;
    let parent = dir.parent().ok_or("no cache folder")?;
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    let unpacking = parent.join(format!(".{PACKAGE}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&unpacking);
    std::fs::create_dir_all(&unpacking).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]));
    let mut count = 0;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(name) = path
            .strip_prefix("package")
            .ok()
            .and_then(|p| p.to_str())
            .filter(|n| !n.contains('/') && is_example(n))
            .map(str::to_owned)
        else {
            continue;
        };
        entry
            .unpack(unpacking.join(&name))
            .map_err(|e| e.to_string())?;
        count += 1;
    }
    if count == 0 {
        return Err(format!("{url} holds no examples"));
    }
    if std::fs::rename(&unpacking, &dir).is_err() {
        // Another test program put it in place first.
        let _ = std::fs::remove_dir_all(&unpacking);
    }
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!("cannot put the examples in {}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_leave_out_the_specifications_definitions() {
        for name in [
            "Patient-example.json",
            "Bundle-101.json",
            "Library-example.json",
        ] {
            assert!(is_example(name), "{name}");
        }
        for name in [
            "StructureDefinition-Patient.json",
            "ValueSet-example.json",
            "Bundle-valuesets.json",
            "Library-library-fhir-model-definition.json",
            "package.json",
            "ig-r4.json",
        ] {
            assert!(!is_example(name), "{name}");
        }
    }
}
