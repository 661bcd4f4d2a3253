//! The fhirbolt boundary: the few non-generic functions through which every
//! resource enters or leaves Hearth. fhirbolt's generated (de)serialisers are
//! huge; instantiating them only here keeps their compile cost in this crate.

use std::panic::{catch_unwind, AssertUnwindSafe};

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

use crate::{validate, xml_check, xml_text};

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
    /// or cardinality, empty elements, missing `resourceType`.
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

/// Parses a resource strictly and returns it as FHIR JSON.
///
/// JSON is read by the strict reader ([`crate::json`]: a member named
/// twice, nesting past the limit or trailing content is an error) and
/// checked against the R4 element definitions as it was sent
/// ([`validate::check`]: a string where a boolean belongs or an empty
/// object is an error, not something to repair quietly); it
/// need not go through fhirbolt's typed model, which accepts no less (a
/// test compares the two on mutated official examples). XML is checked to
/// be one complete document without a DOCTYPE, within the limits
/// ([`crate::xml_check`]), then goes through fhirbolt; its narratives are put back exactly as written, and the
/// result is checked the same way.
pub fn parse(bytes: &[u8], format: Format) -> Result<Value, ParseError> {
    let value = match format {
        Format::Json => crate::json::from_slice(bytes).map_err(|e| ParseError::Syntax {
            format: "JSON",
            message: e.0,
        })?,
        Format::Xml => {
            let text = std::str::from_utf8(bytes).map_err(|e| ParseError::Syntax {
                format: "XML",
                message: format!("not UTF-8: {e}"),
            })?;
            xml_check::check(text).map_err(|message| ParseError::Syntax {
                format: "XML",
                message,
            })?;
            let mut value = typed_to_value(xml_to_typed(text)?)?;
            xml_text::restore_narratives(&mut value, &xml_text::narratives(text));
            value
        }
    };
    let checked = validate::check(&value);
    if let Some(first) = checked.structure.first() {
        return Err(ParseError::Structure {
            message: format!("{}: {}", first.expression, first.message),
            expression: checked
                .structure
                .iter()
                .map(|i| i.expression.clone())
                .collect(),
        });
    }
    if !checked.values.is_empty() {
        return Err(ParseError::Invalid {
            issues: checked.values,
        });
    }
    Ok(value)
}

/// Converts an XML resource to FHIR JSON (strictly, as [`parse`]).
pub fn xml_to_json(bytes: &[u8]) -> Result<Value, ParseError> {
    parse(bytes, Format::Xml)
}

/// Serialises FHIR JSON as FHIR XML. The value must be a valid resource (it
/// went through [`parse`] before it was stored). Narratives are written
/// verbatim: fhirbolt gets a placeholder in their place.
pub fn to_xml(json: &[u8]) -> Result<Vec<u8>, ParseError> {
    let internal = |message: String| ParseError::Structure {
        message,
        expression: Vec::new(),
    };
    if !contains(json, b"\"div\"") {
        let typed = json_bytes_to_typed(json)?;
        return guarded(|| fhirbolt::xml::to_vec(&typed, None))
            .and_then(|r| r.map_err(|e| internal(e.to_string())));
    }
    let mut value: Value = serde_json::from_slice(json).map_err(|e| internal(e.to_string()))?;
    let mut divs = Vec::new();
    xml_text::collect_divs(&mut value, &mut divs);
    let originals: Vec<String> = divs
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            let original = std::mem::replace(slot, Value::String(placeholder_div(i)));
            original.as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let typed =
        json_bytes_to_typed(&serde_json::to_vec(&value).map_err(|e| internal(e.to_string()))?)?;
    let xml =
        guarded(|| fhirbolt::xml::to_string(&typed, None))?.map_err(|e| internal(e.to_string()))?;
    Ok(xml_text::splice_narratives(&xml, &originals, placeholder_text).into_bytes())
}

fn placeholder_text(i: usize) -> String {
    format!("hearth-narrative-{i}")
}

fn placeholder_div(i: usize) -> String {
    format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>",
        placeholder_text(i)
    )
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs fhirbolt code that must not take the server down: a panic inside
/// it (seen on some malformed input) becomes a structure error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ParseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| ParseError::Structure {
        message: "the resource could not be read as FHIR R4".into(),
        expression: Vec::new(),
    })
}

#[inline(never)]
fn json_bytes_to_typed(bytes: &[u8]) -> Result<Resource, ParseError> {
    guarded(|| fhirbolt::json::from_slice::<Resource>(bytes, strict()))?.map_err(|e| {
        ParseError::Structure {
            message: e.to_string(),
            expression: Vec::new(),
        }
    })
}

#[inline(never)]
fn xml_to_typed(text: &str) -> Result<Resource, ParseError> {
    let result = guarded(|| fhirbolt::xml::from_str::<Resource>(text, strict()))?;
    result.map_err(|e| {
        let message = e.to_string();
        if matches!(e, fhirbolt::xml::error::Error::InvalidXml(_)) {
            ParseError::Syntax {
                format: "XML",
                message,
            }
        } else {
            ParseError::Structure {
                message,
                expression: xml_text::first_unknown_element(text).into_iter().collect(),
            }
        }
    })
}

#[inline(never)]
fn typed_to_value(typed: Resource) -> Result<Value, ParseError> {
    guarded(|| fhirbolt::json::to_json_value(typed, None))?.map_err(|e| ParseError::Structure {
        message: e.to_string(),
        expression: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::official_examples;

    /// Whether fhirbolt's strict JSON reader takes `value` as an R4 resource.
    fn fhirbolt_accepts(value: Value) -> bool {
        guarded(|| fhirbolt::json::from_json_value::<Resource>(value, strict()))
            .is_ok_and(|r| r.is_ok())
    }

    /// A small deterministic generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// JSON pointers of every object in `value`.
    fn objects(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                out.push(at.clone());
                for (k, v) in map {
                    objects(
                        v,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    objects(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// One random change to one object of `resource`: an unknown element,
    /// a value of another JSON kind, an array for a single value or the
    /// reverse, or a missing element.
    fn mutate(resource: &Value, rng: &mut Rng) -> Option<(String, Value)> {
        let mut at = Vec::new();
        objects(resource, String::new(), &mut at);
        let pointer = at[rng.next(at.len())].clone();
        let mut mutated = resource.clone();
        let object = mutated.pointer_mut(&pointer)?.as_object_mut()?;
        let keys: Vec<String> = object
            .keys()
            .filter(|k| *k != "resourceType")
            .cloned()
            .collect();
        let what = rng.next(6);
        if what == 0 || keys.is_empty() {
            object.insert("hearthUnknown".into(), Value::Bool(true));
            return Some((format!("{pointer}: unknown element"), mutated));
        }
        let key = keys[rng.next(keys.len())].clone();
        let old = object.get(&key)?.clone();
        let (how, new) = match what {
            1 => ("removed", None),
            2 => match old {
                Value::Array(items) => ("single", items.into_iter().next()),
                other => ("in an array", Some(Value::Array(vec![other]))),
            },
            3 => ("a string", Some(Value::String("x".into()))),
            4 => ("a number", Some(serde_json::json!(1))),
            _ => ("an object", Some(serde_json::json!({"a": 1}))),
        };
        match new {
            Some(v) => object.insert(key.clone(), v),
            None => object.remove(&key),
        };
        Some((format!("{pointer}/{key}: {how}"), mutated))
    }

    /// Dropping fhirbolt from the JSON path is safe only if the checks
    /// reject whatever fhirbolt's strict reader rejects.
    #[test]
    fn the_checks_reject_whatever_fhirbolt_rejects() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut compared = 0;
        let mut missed = Vec::new();
        for (name, example) in official_examples().into_iter().step_by(5) {
            for _ in 0..12 {
                let Some((what, mutated)) = mutate(&example, &mut rng) else {
                    continue;
                };
                let checked = validate::check(&mutated);
                let ours = checked.structure.is_empty() && checked.values.is_empty();
                compared += 1;
                if ours && !fhirbolt_accepts(mutated) {
                    missed.push(format!("{name} {what}"));
                }
            }
        }
        assert!(
            missed.is_empty(),
            "fhirbolt rejects, the checks accept: {missed:#?}"
        );
        if compared > 0 {
            assert!(compared > 1000, "only {compared} mutations compared");
        }
    }
}
