//! A FHIRPath expression (the first line) compiled and, when it compiles,
//! evaluated on a resource (the rest, as JSON), as patches and custom
//! SearchParameters use them.
#![no_main]

use hearth_model::fhirpath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expression, resource) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(expr) = fhirpath::parse(expression) else {
        return;
    };
    let resource = hearth_model::json::from_slice(resource.as_bytes()).unwrap_or_else(|_| {
        serde_json::json!({"resourceType": "Patient", "name": [{"family": "x", "given": ["a", "b"]}], "active": true})
    });
    let _ = fhirpath::evaluate(&expr, &resource);
});
