//! Runs index extraction over every official R4 example: none may panic,
//! and some well-known values must come out.

use std::collections::BTreeMap;

use hearth_model::index::{extract, IndexEntry, IndexValue};
use hearth_model::search_params::{CustomParams, SearchParam};
use serde_json::Value;

/// On every example, each of `params` of its type has no index entries of
/// its own, and its own expression gives exactly the values `expected`
/// gives (from the rows its searches read). Answers how many examples had
/// values to compare.
fn without_rows_on_examples(
    params: &[&SearchParam],
    expected: impl Fn(&SearchParam, &str, &Value) -> Vec<IndexValue>,
) -> usize {
    let mut compared = 0;
    for (name, resource) in &load_all() {
        let Some(resource_type) = resource["resourceType"].as_str() else {
            continue;
        };
        let entries = extract(resource, &CustomParams::default());
        for param in params.iter().filter(|p| p.base == resource_type) {
            assert!(
                entries.iter().all(|e| e.param != param.code),
                "{name}: {} has rows of its own",
                param.code
            );
            let own = hearth_model::index::param_values(param, resource);
            let theirs = expected(param, resource_type, resource);
            assert!(
                own.iter().all(|v| theirs.contains(v)) && theirs.iter().all(|v| own.contains(v)),
                "{name}: {} gives {own:?}, its parts {theirs:?}",
                param.code
            );
            compared += usize::from(!own.is_empty());
        }
    }
    compared
}

/// Every official example by file name; empty (with a note) where they
/// cannot be had.
fn load_all() -> BTreeMap<String, Value> {
    let Some(dir) = hearth_fixtures::examples() else {
        return BTreeMap::new();
    };
    std::fs::read_dir(dir)
        .expect("examples directory")
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let resource = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, resource)
        })
        .collect()
}

fn has(entries: &[IndexEntry], param: &str, wanted: impl Fn(&IndexValue) -> bool) -> bool {
    entries.iter().any(|e| e.param == param && wanted(&e.value))
}

#[test]
fn every_example_indexes_without_panicking() {
    let examples = load_all();
    if examples.is_empty() {
        return;
    }
    assert_eq!(examples.len(), 709);
    let mut total = 0;
    for (name, resource) in &examples {
        let entries = extract(resource, &CustomParams::default());
        // Every resource has at least `_id` (all examples have an id).
        assert!(!entries.is_empty(), "{name}: no entries");
        total += entries.len();
    }
    // 8,467 when written, 7,764 since union parameters have no entries of
    // their own; a sharp drop means extraction broke somewhere.
    assert!(total > 7_500, "only {total} entries");

    let patient = extract(&examples["Patient-example.json"], &CustomParams::default());
    assert!(has(&patient, "family", |v| matches!(v,
        IndexValue::String { normalised, exact } if normalised == "chalmers" && exact == "Chalmers")));
    assert!(has(&patient, "name", |v| matches!(v,
        IndexValue::String { exact, .. } if exact == "Windsor")));
    assert!(has(&patient, "identifier", |v| matches!(v,
        IndexValue::Token { system: Some(s), code: Some(c), identifier_type: Some((_, Some(t))), .. }
            if s == "urn:oid:1.2.36.146.595.217.0.1" && c == "12345" && t == "MR")));
    assert!(has(&patient, "birthdate", |v| matches!(
        v,
        IndexValue::Date { .. }
    )));

    let observation = extract(
        &examples["Observation-example.json"],
        &CustomParams::default(),
    );
    for code in ["29463-7", "3141-9"] {
        assert!(has(&observation, "code", |v| matches!(v,
            IndexValue::Token { system: Some(s), code: Some(c), .. }
                if s == "http://loinc.org" && c == code)));
    }
    assert!(has(&observation, "subject", |v| matches!(v,
        IndexValue::Reference { resource_type: Some(t), id: Some(i), .. }
            if t == "Patient" && i == "example")));
    assert!(has(&observation, "value-quantity", |v| matches!(v,
        IndexValue::Quantity { value, code: Some(c), .. } if value == "185" && c == "[lb_av]")));
    // Its code and value pair up through `code` and `value-quantity`.
    assert!(!has(&observation, "code-value-quantity", |_| true));
}

/// A parameter stored as the union of others (`combo-code` = `code` |
/// `component-code`) has no rows of its own, and on every example its own
/// expression gives exactly the values of those others: its searches can
/// read their rows.
#[test]
fn unions_of_other_parameters_have_exactly_their_values() {
    use hearth_model::index::param_values;
    use hearth_model::search_params::{self, ParamType};

    let unions: Vec<_> = search_params::all()
        .filter(|p| !p.stored_as.is_empty())
        .collect();
    let observation_union = |code: &str| {
        let mut stored: Vec<String> = search_params::spec_get("Observation", code)
            .unwrap()
            .stored_as
            .clone();
        stored.sort();
        stored
    };
    assert_eq!(observation_union("combo-code"), ["code", "component-code"]);
    assert_eq!(
        observation_union("combo-value-quantity"),
        ["component-value-quantity", "value-quantity"]
    );
    assert_eq!(
        observation_union("combo-value-concept"),
        ["component-value-concept", "value-concept"]
    );
    assert_eq!(
        observation_union("combo-code-value-quantity"),
        ["code-value-quantity", "component-code-value-quantity"]
    );
    assert_eq!(
        observation_union("combo-code-value-concept"),
        ["code-value-concept", "component-code-value-concept"]
    );
    assert!(unions.iter().all(|p| p.param_type != ParamType::Reference));

    if hearth_fixtures::examples().is_none() {
        return;
    }
    let compared = without_rows_on_examples(&unions, |union, resource_type, resource| {
        let mut theirs: Vec<IndexValue> = Vec::new();
        for code in &union.stored_as {
            let other = search_params::spec_get(resource_type, code).unwrap();
            for value in param_values(other, resource) {
                if !theirs.contains(&value) {
                    theirs.push(value);
                }
            }
        }
        theirs
    });
    assert!(
        compared > 10,
        "only {compared} examples had values to compare"
    );
}

/// A composite derived from other parameters (`code-value-quantity` from
/// `code` and `value-quantity`) has no rows of its own, and on every
/// example its own expression gives exactly every pairing of their values:
/// "has a matching value of each" finds what its rows would.
#[test]
fn derived_composites_are_every_pairing_of_their_parts() {
    use hearth_model::index::param_values;
    use hearth_model::search_params;

    let derived: Vec<_> = search_params::all()
        .filter(|p| !p.derived_from.is_empty())
        .collect();
    let mut codes: Vec<&str> = derived.iter().map(|p| p.code.as_str()).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "code-value-concept",
            "code-value-date",
            "code-value-quantity"
        ]
    );
    if hearth_fixtures::examples().is_none() {
        return;
    }
    let compared = without_rows_on_examples(&derived, |composite, resource_type, resource| {
        let parts: Vec<Vec<IndexValue>> = composite
            .derived_from
            .iter()
            .map(|code| {
                let part = search_params::spec_get(resource_type, code).unwrap();
                param_values(part, resource)
            })
            .collect();
        let [codes, values] = parts.as_slice() else {
            panic!("{}: two parts", composite.code);
        };
        codes
            .iter()
            .flat_map(|c| {
                values
                    .iter()
                    .map(move |v| IndexValue::Composite(vec![c.clone(), v.clone()]))
            })
            .collect()
    });
    assert!(
        compared > 30,
        "only {compared} examples had values to compare"
    );
}
