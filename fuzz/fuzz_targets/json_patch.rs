//! A JSON Patch document (after the first NUL byte) applied to a JSON
//! document (before it), both read as bodies are, with a 1 MiB bound on
//! what the patch may grow the document to.
#![no_main]

use hearth_model::json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (doc, patch) = (&data[..at], data.get(at + 1..).unwrap_or_default());
    let (Ok(mut doc), Ok(patch)) = (json::from_slice(doc), json::from_slice(patch)) else {
        return;
    };
    if hearth_model::json_patch::apply(&mut doc, &patch, 1 << 20).is_ok() {
        assert!(json::encoded_len(&doc) <= 1 << 20, "the patched document passed the bound");
        assert!(json::depth(&doc) <= hearth_model::limits::MAX_DEPTH, "the patched document passed the depth");
    }
});
