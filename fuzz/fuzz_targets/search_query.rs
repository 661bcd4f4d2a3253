//! A search's query string as a client sends it, parsed against the R4
//! SearchParameter definitions for a type chosen by the first byte, or a
//! system search.
#![no_main]

use std::sync::Arc;

use hearth_store::search::{parse, ParseOptions};
use libfuzzer_sys::fuzz_target;

const TYPES: &[&str] = &["Observation", "Patient", "Encounter", "Organization", "MedicationRequest"];

fuzz_target!(|data: &[u8]| {
    let Some((first, query)) = data.split_first() else {
        return;
    };
    let types: Vec<String> = TYPES
        .get(*first as usize % (TYPES.len() + 1))
        .map(|t| vec![(*t).to_owned()])
        .unwrap_or_default();
    let params: Vec<(String, String)> = form_urlencoded::parse(query).into_owned().collect();
    for strict in [false, true] {
        let options = ParseOptions {
            strict,
            default_count: 50,
            max_count: 1000,
            base: Some("http://localhost:8080".to_owned()),
            custom: Arc::new(Default::default()),
        };
        let _ = parse(&types, &params, &options);
    }
});
