//! Every official R4 example parses strictly and survives
//! JSON → Hearth → XML → Hearth → JSON without loss.

use hearth_model::{parse, to_json_bytes, to_xml, Format, Value};

/// Examples that are genuinely defective, with the reason.
const DEFECTIVE: &[(&str, &str)] = &[(
    "Questionnaire-qs1.json",
    "32 nested display items lack Questionnaire.item.linkId, which is mandatory (1..1)",
)];

#[test]
fn every_example_round_trips_through_json_and_xml() {
    let Some(dir) = hearth_fixtures::examples() else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        let defect = DEFECTIVE.iter().find(|(n, _)| *n == name);
        let parsed = match parse(&bytes, Format::Json) {
            Ok(v) => v,
            Err(e) => {
                if defect.is_none() {
                    failures.push(format!("{name}: does not parse: {e}"));
                }
                continue;
            }
        };
        if let Some((_, reason)) = defect {
            failures.push(format!(
                "{name}: listed as defective ({reason}) but parses; remove it from DEFECTIVE"
            ));
            continue;
        }
        if parsed != original {
            failures.push(format!("{name}: JSON → Hearth → JSON changed the resource"));
            continue;
        }
        let xml = match to_xml(&to_json_bytes(&parsed, false)) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{name}: cannot serialise as XML: {e}"));
                continue;
            }
        };
        let back = match parse(&xml, Format::Xml) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: its XML does not parse back: {e}"));
                continue;
            }
        };
        // Narratives included: they must come back byte for byte.
        if back != parsed {
            if let Ok(dump) = std::env::var("HEARTH_DUMP_DIFF") {
                std::fs::write(
                    format!("{dump}/{name}.expected"),
                    serde_json::to_string_pretty(&parsed).unwrap(),
                )
                .unwrap();
                std::fs::write(
                    format!("{dump}/{name}.back"),
                    serde_json::to_string_pretty(&back).unwrap(),
                )
                .unwrap();
            }
            failures.push(format!("{name}: JSON → XML → JSON changed the resource"));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of the examples failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked + DEFECTIVE.len(),
        709,
        "expected all 709 official examples"
    );
}
