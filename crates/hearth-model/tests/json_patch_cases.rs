//! Runs the official FHIR JSON Patch test cases (json-patch-tests format:
//! each case has `doc`, `patch` and either `expected` or `error`, and may be
//! `disabled`) through `hearth_model::json_patch::apply`.

use hearth_model::json_patch::apply;
use serde_json::Value;

/// Cases we believe are wrong in the official file, by `comment`, with the
/// reason. They are still run and reported, but do not fail the test.
const KNOWN_WRONG: &[(&str, &str)] = &[];

#[test]
fn official_json_patch_cases() {
    let Some(dir) = hearth_fixtures::patch_cases() else {
        return;
    };
    let path = dir.join("json-patch-tests.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let cases: Vec<Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a JSON array of test cases: {e}", path.display()));

    let mut passed = 0;
    let mut failures = Vec::new();
    let mut known_wrong_seen = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let name = case["comment"]
            .as_str()
            .map_or_else(|| format!("case #{n}"), str::to_owned);
        if case["disabled"].as_bool() == Some(true) {
            eprintln!("skipped (disabled in the file): {name}");
            continue;
        }
        let outcome = run_case(&name, case);
        if let Some((_, reason)) = KNOWN_WRONG.iter().find(|(c, _)| *c == name) {
            eprintln!("known wrong: {name}: {reason} (outcome: {outcome:?})");
            known_wrong_seen.push(name);
            continue;
        }
        match outcome {
            Ok(()) => passed += 1,
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    eprintln!(
        "{passed} of {} official JSON Patch cases passed",
        cases.len()
    );

    // Keep the exception list honest: every entry must name a real case.
    for (comment, _) in KNOWN_WRONG {
        assert!(
            known_wrong_seen.iter().any(|seen| seen == comment),
            "KNOWN_WRONG lists {comment:?}, which is not an enabled case of the file"
        );
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs one case, returning why it failed.
fn run_case(name: &str, case: &Value) -> Result<(), String> {
    let original = case.get("doc").ok_or("case has no \"doc\"")?;
    let patch = case.get("patch").ok_or("case has no \"patch\"")?;
    let mut doc = original.clone();
    let result = apply(&mut doc, patch, 16 << 20);
    match (case.get("expected"), case.get("error"), result) {
        (Some(expected), _, Ok(())) if doc == *expected => Ok(()),
        (Some(expected), _, Ok(())) => Err(format!("expected {expected}, got {doc}")),
        (Some(_), _, Err(e)) => Err(format!("unexpected error: {e}")),
        (None, Some(_), Err(e)) if doc == *original => {
            eprintln!("{name}: got the expected error: {e}");
            Ok(())
        }
        (None, Some(_), Err(e)) => Err(format!("failed with {e} but modified the document")),
        (None, Some(error), Ok(())) => Err(format!("expected error {error}, got {doc}")),
        (None, None, _) => Err("case has neither \"expected\" nor \"error\"".into()),
    }
}
