//! An XML body as a client sends it: the document checks, fhirbolt's
//! reader and validation, then what the server does with what it accepts.
#![no_main]

use hearth_model::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resource) = parse(data, Format::Xml) {
        hearth_fuzz::exercise(resource);
    }
});
