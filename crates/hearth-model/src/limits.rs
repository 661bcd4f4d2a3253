//! The bounds on what one request may ask of the server, checked before
//! any recursive walk or large allocation can run away. Every recursive
//! walk of a resource (validation, index extraction, `_summary`, patches,
//! rendering) runs only on values these bounds have already checked.

/// How deeply JSON objects and arrays may nest in a body or a stored
/// resource (the deepest official R4 example nests 21 levels), and XML
/// elements in an XML body.
pub const MAX_DEPTH: usize = 100;

/// A body may hold one JSON value (or XML element) per this many bytes,
/// with at least [`MIN_VALUES`]. FHIR JSON has one per 25 to 40 bytes;
/// values of two or three bytes (`{},`, `0,`) would otherwise make a body
/// take thirty times its size in memory.
pub const BYTES_PER_VALUE: usize = 8;

/// The fewest values any body may hold, however short.
pub const MIN_VALUES: usize = 4096;

/// How many values a body of `len` bytes may hold.
pub fn max_values(len: usize) -> usize {
    (len / BYTES_PER_VALUE).max(MIN_VALUES)
}

/// The longest string value, in bytes (R4 datatypes: "strings SHALL NOT
/// exceed 1MB in size"), and of any primitive but base64Binary and xhtml,
/// which only the body size bounds.
pub const MAX_STRING_BYTES: usize = 1024 * 1024;

/// The longest decimal, in characters: FHIR's decimals carry at most 18
/// digits before and 17 after the point (as later releases' regex says);
/// 64 leaves room for an exponent and a sign.
pub const MAX_DECIMAL_CHARS: usize = 64;

/// The most tokens in one FHIRPath expression (a patch's path, a custom
/// SearchParameter's expression; the longest of R4's own has 325).
pub const MAX_FHIRPATH_TOKENS: usize = 1000;

/// How deeply FHIRPath parentheses, brackets and function arguments nest.
pub const MAX_FHIRPATH_NESTING: usize = 32;
