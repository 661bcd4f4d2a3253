//! The FHIR R4 wire format for Hearth.
//!
//! This is the only crate that touches fhirbolt. Resources travel through the
//! rest of Hearth as `serde_json::Value` in FHIR JSON form: they are parsed and
//! checked strictly here once, and every other crate works on that value or on
//! the compact JSON bytes the store keeps.

pub mod compartments;
pub mod datetime;
pub mod fhirpath;
pub mod fhirpath_patch;
pub mod index;
pub mod json;
pub mod json_patch;
pub mod limits;
pub mod outcome;
pub mod primitives;
pub mod resource;
pub mod search_params;
pub mod structure;
pub mod summary;
pub mod validate;
mod wire;
mod xhtml;
mod xml_check;
mod xml_pretty;
mod xml_text;

pub use outcome::{IssueCode, OperationOutcome, Severity};
pub use wire::{parse, to_json_bytes, to_xml, to_xml_pretty, xml_to_json, Format, ParseError};

pub use serde_json::Value;
