//! The fhirbolt boundary: the few non-generic functions through which every
//! resource enters or leaves Hearth. fhirbolt's generated (de)serialisers are
//! huge; instantiating them only here keeps their compile cost in this crate.

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

use crate::validate;

/// A FHIR wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

/// Why a body is not an acceptable FHIR resource.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not well-formed JSON or XML at all.
    #[error("the body is not well-formed {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    /// Well-formed, but not a FHIR R4 resource: unknown elements, wrong types
    /// or cardinality, missing `resourceType`.
    #[error("the body is not a valid FHIR R4 resource: {message}")]
    Structure {
        message: String,
        expression: Vec<String>,
    },
    /// A structurally valid resource whose primitive values are malformed.
    #[error("{}", .issues.iter().map(|i| format!("{}: {}", i.expression, i.message)).collect::<Vec<_>>().join("; "))]
    Invalid { issues: Vec<validate::Issue> },
}

fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

/// Parses a resource strictly (unknown elements, wrong types and malformed
/// primitives are errors) and returns it as FHIR JSON.
pub fn parse(bytes: &[u8], format: Format) -> Result<Value, ParseError> {
    let typed = match format {
        Format::Json => parse_typed_json(bytes).map_err(|e| json_error(bytes, e))?,
        Format::Xml => parse_typed_xml(bytes)?,
    };
    let value = typed_to_value(typed)?;
    let issues = validate::check_primitives(&value);
    if issues.is_empty() {
        Ok(value)
    } else {
        Err(ParseError::Invalid { issues })
    }
}

/// Converts an XML resource to FHIR JSON (strictly, as [`parse`]).
pub fn xml_to_json(bytes: &[u8]) -> Result<Value, ParseError> {
    parse(bytes, Format::Xml)
}

/// Serialises FHIR JSON as FHIR XML. The value must be a valid resource (it
/// went through [`parse`] before it was stored).
pub fn to_xml(json: &[u8]) -> Result<Vec<u8>, ParseError> {
    let typed = parse_typed_json(json).map_err(|e| json_error(json, e))?;
    fhirbolt::xml::to_vec(&typed, None).map_err(|e| ParseError::Structure {
        message: e.to_string(),
        expression: Vec::new(),
    })
}

/// Serialises FHIR JSON as indented FHIR XML (`_pretty=true`).
pub fn to_xml_pretty(json: &[u8]) -> Result<Vec<u8>, ParseError> {
    let compact = to_xml(json)?;
    Ok(crate::xml_pretty::indent(&String::from_utf8_lossy(&compact)).into_bytes())
}

/// Serialises FHIR JSON, compact or indented.
pub fn to_json_bytes(value: &Value, pretty: bool) -> Vec<u8> {
    let result = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    // Serialising a Value into memory cannot fail: its keys are strings.
    result.unwrap_or_default()
}

#[inline(never)]
fn parse_typed_json(bytes: &[u8]) -> Result<Resource, serde_json::Error> {
    fhirbolt::json::from_slice::<Resource>(bytes, strict())
}

#[inline(never)]
fn parse_typed_xml(bytes: &[u8]) -> Result<Resource, ParseError> {
    fhirbolt::xml::from_slice::<Resource>(bytes, strict()).map_err(|e| {
        let message = e.to_string();
        if matches!(e, fhirbolt::xml::error::Error::InvalidXml(_)) {
            ParseError::Syntax {
                format: "XML",
                message,
            }
        } else {
            ParseError::Structure {
                message,
                expression: Vec::new(),
            }
        }
    })
}

#[inline(never)]
fn typed_to_value(typed: Resource) -> Result<Value, ParseError> {
    fhirbolt::json::to_json_value(typed, None).map_err(|e| ParseError::Structure {
        message: e.to_string(),
        expression: Vec::new(),
    })
}

/// Tells malformed JSON from JSON that is not a valid resource, and points at
/// the offending element where the structure table can find it.
fn json_error(bytes: &[u8], err: serde_json::Error) -> ParseError {
    match serde_json::from_slice::<Value>(bytes) {
        Err(syntax) => ParseError::Syntax {
            format: "JSON",
            message: syntax.to_string(),
        },
        Ok(value) => {
            let located = validate::check_structure(&value);
            let expression = located.iter().map(|i| i.expression.clone()).collect();
            let message = match located.first() {
                Some(issue) => format!("{} ({})", issue.message, err),
                None => err.to_string(),
            };
            ParseError::Structure {
                message,
                expression,
            }
        }
    }
}
