//! Runs the official FHIRPath Patch test cases (`fhir-patch-tests.xml`)
//! through `hearth_model::fhirpath_patch::apply`.
//!
//! Each `<case name=".." mode="..">` holds an `<input>` resource, a `<diff>`
//! (the Parameters patch) and either the expected `<output>` resource or an
//! `<error msg=".."/>` marker, all in FHIR XML; they are converted with
//! `xml_to_json` and compared as JSON. `mode` says whether the case can also
//! be used to test generating diffs, which does not matter for applying them.
//!
//! The file is regular, so it is split with plain string searching rather than
//! an XML parser (hearth-model has no XML reader of its own to offer tests).

use hearth_model::fhirpath_patch::apply;
use hearth_model::xml_to_json;
use serde_json::Value;

/// Cases we believe are wrong in the official file, by name, with the
/// reason. They are still run and reported, but do not fail the test.
const NOT_PASSING: &[(&str, &str)] = &[];

/// The number of cases in the file; guards against the splitter silently
/// missing some.
const EXPECTED_CASES: usize = 33;

struct Case<'t> {
    name: String,
    input: &'t str,
    diff: &'t str,
    expected: Expected<'t>,
}

enum Expected<'t> {
    Output(&'t str),
    /// The message the reference implementation gives (ours differs).
    Error(String),
}

#[test]
fn official_fhirpath_patch_cases() {
    let Some(dir) = hearth_fixtures::patch_cases() else {
        return;
    };
    let path = dir.join("fhir-patch-tests.xml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let cases = split_cases(&text);
    assert_eq!(
        cases.len(),
        EXPECTED_CASES,
        "expected {EXPECTED_CASES} cases in {}, found {}",
        path.display(),
        cases.len()
    );

    let mut passed = 0;
    let mut failures = Vec::new();
    let mut not_passing_seen = Vec::new();
    for case in &cases {
        let outcome = run_case(case);
        if let Some((_, reason)) = NOT_PASSING.iter().find(|(n, _)| *n == case.name) {
            eprintln!(
                "known not passing: {}: {reason} (outcome: {outcome:?})",
                case.name
            );
            not_passing_seen.push(case.name.clone());
            continue;
        }
        match outcome {
            Ok(()) => passed += 1,
            Err(why) => failures.push(format!("{}: {why}", case.name)),
        }
    }
    eprintln!(
        "{passed} of {} official FHIRPath Patch cases passed",
        cases.len()
    );

    // Keep the exception list honest: every entry must name a real case.
    for (name, _) in NOT_PASSING {
        assert!(
            not_passing_seen.iter().any(|seen| seen == name),
            "NOT_PASSING lists {name:?}, which is not a case of the file"
        );
    }
    assert!(
        failures.is_empty(),
        "{} FHIRPath Patch case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

fn run_case(case: &Case<'_>) -> Result<(), String> {
    let input = resource(case.input).map_err(|e| format!("input: {e}"))?;
    let diff = resource(case.diff).map_err(|e| format!("diff: {e}"))?;
    let mut patched = input.clone();
    let result = apply(&mut patched, &diff, 16 << 20);
    match (&case.expected, result) {
        (Expected::Output(xml), Ok(())) => {
            let expected = resource(xml).map_err(|e| format!("output: {e}"))?;
            if normalise(&patched) == normalise(&expected) {
                Ok(())
            } else {
                Err(format!(
                    "result differs\n    expected: {}\n    got:      {}",
                    serde_json::to_string(&expected).unwrap_or_default(),
                    serde_json::to_string(&patched).unwrap_or_default()
                ))
            }
        }
        (Expected::Output(_), Err(e)) => Err(format!("unexpected error: {e}")),
        (Expected::Error(_), Err(e)) => {
            if patched == input {
                eprintln!("{}: failed as expected: {e}", case.name);
                Ok(())
            } else {
                Err(format!("failed ({e}) but changed the resource"))
            }
        }
        (Expected::Error(msg), Ok(())) => {
            Err(format!("expected an error ({msg}), but the patch applied"))
        }
    }
}

/// Parses one resource of the test file as a standalone XML document.
fn resource(xml: &str) -> Result<Value, String> {
    xml_to_json(xml.trim().as_bytes()).map_err(|e| e.to_string())
}

/// Narrative XHTML is compared with insignificant differences removed: the
/// expected output's div went through an XML parser (which drops
/// whitespace-only text and trims text next to tags, and escapes quotes),
/// while the patch sets the div from a string as written.
fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("div", Value::String(s)) => Value::String(normalise_xhtml(s)),
                        _ => normalise(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        v => v.clone(),
    }
}

/// Collapses whitespace runs to one space, drops whitespace next to tags
/// and writes quotes unescaped.
fn normalise_xhtml(xhtml: &str) -> String {
    let collapsed = xhtml
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    collapsed
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace("> ", ">")
}

/// Splits the test file into its cases.
fn split_cases(text: &str) -> Vec<Case<'_>> {
    let mut cases = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<case ") {
        let body_start = start + rest[start..].find('>').expect("unterminated <case> tag") + 1;
        let tag = &rest[start..body_start];
        let end = body_start
            + rest[body_start..]
                .find("</case>")
                .expect("<case> without </case>");
        let body = &rest[body_start..end];
        let name = attribute(tag, "name").expect("<case> without a name");
        let element = |tag: &str| {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            let from = body.find(&open)? + open.len();
            let to = from + body[from..].find(&close)?;
            Some(&body[from..to])
        };
        let expected = match (element("output"), body.find("<error")) {
            (Some(output), None) => Expected::Output(output),
            (None, Some(at)) => {
                let tag_end = at + body[at..].find('>').expect("unterminated <error> tag");
                Expected::Error(attribute(&body[at..tag_end], "msg").unwrap_or_default())
            }
            _ => panic!("case {name:?} must have exactly one of <output> or <error>"),
        };
        cases.push(Case {
            input: element("input").unwrap_or_else(|| panic!("case {name:?} has no <input>")),
            diff: element("diff").unwrap_or_else(|| panic!("case {name:?} has no <diff>")),
            name,
            expected,
        });
        rest = &rest[end + "</case>".len()..];
    }
    cases
}

/// The unescaped value of attribute `name` (in double quotes) of `tag`.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let from = tag.find(&marker)? + marker.len();
    let to = from + tag[from..].find('"')?;
    Some(
        tag[from..to]
            .replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
