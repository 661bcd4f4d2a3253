//! A JSON body as a client sends it: strict reading and validation, then,
//! for what is accepted, what the server does with a stored resource
//! (index extraction, XML and JSON rendering, `_summary`).
#![no_main]

use hearth_model::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resource) = parse(data, Format::Json) {
        hearth_fuzz::exercise(resource);
    }
});
