//! JSON Patch (RFC 6902) with JSON Pointer (RFC 6901) paths, as used by the
//! FHIR `PATCH` interaction with `Content-Type: application/json-patch+json`.
//!
//! Error messages are returned to clients inside an OperationOutcome, so each
//! names the 0-based index of the failing operation and the reason.

use serde_json::{Number, Value};
use thiserror::Error;

use crate::{json, limits};

/// Why a JSON Patch document could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonPatchError {
    #[error("JSON Patch document must be a JSON array of operations")]
    NotAnArray,
    #[error("operation {index} is invalid: {reason}")]
    InvalidOperation { index: usize, reason: String },
    #[error("operation {index}: invalid JSON Pointer {pointer:?}: {reason}")]
    InvalidPointer {
        index: usize,
        pointer: String,
        reason: &'static str,
    },
    #[error("operation {index}: path {path:?} does not exist")]
    PathNotFound { index: usize, path: String },
    #[error("operation {index}: {path:?} is neither an object nor an array, so nothing can be added to it")]
    NotAContainer { index: usize, path: String },
    #[error("operation {index}: {token:?} in path {path:?} is not a valid array index (expected \"0\" or a positive integer without leading zeros)")]
    InvalidArrayIndex {
        index: usize,
        path: String,
        token: String,
    },
    #[error(
        "operation {index}: array index in path {path:?} is out of bounds (array length is {len})"
    )]
    IndexOutOfBounds {
        index: usize,
        path: String,
        len: usize,
    },
    #[error("operation {index}: cannot move {from:?} into its own child {path:?}")]
    MoveIntoChild {
        index: usize,
        from: String,
        path: String,
    },
    #[error(
        "operation {index}: test failed: the value at {path:?} does not equal the expected value"
    )]
    TestFailed { index: usize, path: String },
    #[error("operation {index} would make the resource larger than {limit} bytes")]
    TooLarge { index: usize, limit: usize },
    #[error(
        "operation {index} would nest the resource's objects and arrays deeper than {} levels",
        limits::MAX_DEPTH
    )]
    TooDeep { index: usize },
}

/// Applies an RFC 6902 JSON Patch document (a JSON array of operations) to `doc`.
/// On error, `doc` is left unchanged (apply to a clone and swap on success).
///
/// Each operation is checked before it runs not to make the document larger
/// than `max_bytes` (as compact JSON) or nest deeper than
/// [`limits::MAX_DEPTH`]: `copy` can double a document at each step.
pub fn apply(doc: &mut Value, patch: &Value, max_bytes: usize) -> Result<(), JsonPatchError> {
    let ops = patch.as_array().ok_or(JsonPatchError::NotAnArray)?;
    // Parse every operation before touching the document, so a malformed patch
    // is reported as such regardless of what the document contains.
    let ops = ops
        .iter()
        .enumerate()
        .map(|(index, op)| Op::parse(index, op))
        .collect::<Result<Vec<_>, _>>()?;
    // RFC 6902 §5: the patch is atomic, so work on a copy.
    let mut work = doc.clone();
    let mut size = json::encoded_len(&work);
    for (index, op) in ops.iter().enumerate() {
        size = op.check_growth(&mut work, index, size, max_bytes)?;
        op.apply(&mut work, index)?;
    }
    *doc = work;
    Ok(())
}

/// A parsed JSON Pointer that remembers its source text for error messages.
#[derive(Debug)]
struct Pointer<'a> {
    raw: &'a str,
    tokens: Vec<String>,
}

impl<'a> Pointer<'a> {
    fn parse(raw: &'a str, index: usize) -> Result<Self, JsonPatchError> {
        let invalid = |reason| JsonPatchError::InvalidPointer {
            index,
            pointer: raw.to_owned(),
            reason,
        };
        if raw.is_empty() {
            return Ok(Self {
                raw,
                tokens: Vec::new(),
            });
        }
        let rest = raw
            .strip_prefix('/')
            .ok_or_else(|| invalid("it must be empty or start with '/'"))?;
        let tokens = rest
            .split('/')
            .map(unescape)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("'~' must be followed by '0' or '1'"))?;
        Ok(Self { raw, tokens })
    }

    /// The source text addressing only the first `n` tokens, so errors can
    /// name the part of the path that is actually missing.
    fn prefix(&self, n: usize) -> String {
        let end = self
            .raw
            .match_indices('/')
            .nth(n)
            .map_or(self.raw.len(), |(at, _)| at);
        self.raw[..end].to_owned()
    }

    fn is_proper_prefix_of(&self, other: &Pointer) -> bool {
        self.tokens.len() < other.tokens.len() && other.tokens.starts_with(&self.tokens)
    }
}

/// Decodes `~1` to `/` and `~0` to `~` in one left-to-right pass, so `~01`
/// becomes `~1` rather than `/` (RFC 6901 §4). Any other `~` is invalid.
fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next()? {
                '0' => out.push('~'),
                '1' => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[derive(Debug)]
enum Op<'a> {
    Add {
        path: Pointer<'a>,
        value: &'a Value,
    },
    Remove {
        path: Pointer<'a>,
    },
    Replace {
        path: Pointer<'a>,
        value: &'a Value,
    },
    Move {
        from: Pointer<'a>,
        path: Pointer<'a>,
    },
    Copy {
        from: Pointer<'a>,
        path: Pointer<'a>,
    },
    Test {
        path: Pointer<'a>,
        value: &'a Value,
    },
}

impl<'a> Op<'a> {
    fn parse(index: usize, op: &'a Value) -> Result<Self, JsonPatchError> {
        let invalid = |reason: String| JsonPatchError::InvalidOperation { index, reason };
        let obj = op
            .as_object()
            .ok_or_else(|| invalid("an operation must be a JSON object".into()))?;
        let string = |member: &str| match obj.get(member) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(invalid(format!("\"{member}\" must be a string"))),
            None => Err(invalid(format!("missing \"{member}\" member"))),
        };
        let pointer = |member: &str| Pointer::parse(string(member)?, index);
        // "value" may legitimately be null, so only its absence is an error.
        let value = || {
            obj.get("value")
                .ok_or_else(|| invalid("missing \"value\" member".into()))
        };
        // Unrecognised members are ignored, as RFC 6902 §4 requires.
        Ok(match string("op")? {
            "add" => Op::Add {
                path: pointer("path")?,
                value: value()?,
            },
            "remove" => Op::Remove {
                path: pointer("path")?,
            },
            "replace" => Op::Replace {
                path: pointer("path")?,
                value: value()?,
            },
            "move" => Op::Move {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            "copy" => Op::Copy {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            "test" => Op::Test {
                path: pointer("path")?,
                value: value()?,
            },
            other => return Err(invalid(format!("unknown \"op\" {other:?}"))),
        })
    }

    /// The document's size after this operation, or an error if it would
    /// pass `max_bytes` or nest too deep; nothing is copied to find out. An
    /// operation whose path does not resolve is left for [`Op::apply`] to
    /// report.
    fn check_growth(
        &self,
        doc: &mut Value,
        index: usize,
        size: usize,
        max_bytes: usize,
    ) -> Result<usize, JsonPatchError> {
        let peek = |doc: &mut Value, ptr: &Pointer| -> Option<(usize, usize)> {
            resolve(doc, index, ptr, ptr.tokens.len())
                .ok()
                .map(|v| (json::encoded_len(v), json::depth(v)))
        };
        // What naming a new member or item adds: `"key":` and a comma
        // (more than an array item needs, which is safe).
        let naming = |path: &Pointer| path.tokens.last().map_or(0, |t| t.len() + 4);
        let (added, removed, depth) = match self {
            Op::Add { path, value } => {
                // Adding to an object member that exists replaces it.
                let replaced = match path.tokens.last() {
                    None => size,
                    Some(last) if last != "-" => peek(doc, path)
                        .filter(|_| {
                            let parent = resolve(doc, index, path, path.tokens.len() - 1);
                            matches!(parent, Ok(Value::Object(_)))
                        })
                        .map_or(0, |(len, _)| len),
                    _ => 0,
                };
                (
                    json::encoded_len(value) + naming(path),
                    replaced,
                    path.tokens.len() + json::depth(value),
                )
            }
            Op::Replace { path, value } => (
                json::encoded_len(value),
                peek(doc, path).map_or(0, |(len, _)| len),
                path.tokens.len() + json::depth(value),
            ),
            Op::Copy { from, path } => {
                let (len, depth) = peek(doc, from).unwrap_or_default();
                (len + naming(path), 0, path.tokens.len() + depth)
            }
            Op::Move { from, path } => {
                let (_, depth) = peek(doc, from).unwrap_or_default();
                (naming(path), 0, path.tokens.len() + depth)
            }
            Op::Remove { path } => (0, peek(doc, path).map_or(0, |(len, _)| len), 0),
            Op::Test { .. } => (0, 0, 0),
        };
        if depth > limits::MAX_DEPTH {
            return Err(JsonPatchError::TooDeep { index });
        }
        let size = (size + added).saturating_sub(removed);
        if size > max_bytes {
            return Err(JsonPatchError::TooLarge {
                index,
                limit: max_bytes,
            });
        }
        Ok(size)
    }

    fn apply(&self, doc: &mut Value, index: usize) -> Result<(), JsonPatchError> {
        match self {
            Op::Add { path, value } => add(doc, index, path, (*value).clone()),
            Op::Remove { path } => remove(doc, index, path).map(drop),
            Op::Replace { path, value } => {
                *resolve(doc, index, path, path.tokens.len())? = (*value).clone();
                Ok(())
            }
            Op::Move { from, path } => {
                if from.is_proper_prefix_of(path) {
                    return Err(JsonPatchError::MoveIntoChild {
                        index,
                        from: from.raw.to_owned(),
                        path: path.raw.to_owned(),
                    });
                }
                if from.tokens == path.tokens {
                    // A no-op, but the source must still exist.
                    return resolve(doc, index, from, from.tokens.len()).map(drop);
                }
                let value = remove(doc, index, from)?;
                add(doc, index, path, value)
            }
            Op::Copy { from, path } => {
                let value = resolve(doc, index, from, from.tokens.len())?.clone();
                add(doc, index, path, value)
            }
            Op::Test { path, value } => {
                if json_eq(resolve(doc, index, path, path.tokens.len())?, value) {
                    Ok(())
                } else {
                    Err(JsonPatchError::TestFailed {
                        index,
                        path: path.raw.to_owned(),
                    })
                }
            }
        }
    }
}

/// Returns the value addressed by the first `depth` tokens of `ptr`.
fn resolve<'v>(
    doc: &'v mut Value,
    index: usize,
    ptr: &Pointer,
    depth: usize,
) -> Result<&'v mut Value, JsonPatchError> {
    let mut current = doc;
    for (i, token) in ptr.tokens.iter().take(depth).enumerate() {
        let next = match current {
            Value::Object(map) => map.get_mut(token.as_str()),
            Value::Array(items) => {
                let at = array_index(index, ptr, i, items.len(), false)?;
                items.get_mut(at)
            }
            _ => None,
        };
        current = next.ok_or_else(|| JsonPatchError::PathNotFound {
            index,
            path: ptr.prefix(i + 1),
        })?;
    }
    Ok(current)
}

/// Interprets token `i` of `ptr` as an index into an array of length `len`.
/// `-` and `len` itself (one past the end) are only valid targets for `add`.
fn array_index(
    index: usize,
    ptr: &Pointer,
    i: usize,
    len: usize,
    for_add: bool,
) -> Result<usize, JsonPatchError> {
    let token = ptr.tokens.get(i).map_or("", String::as_str);
    if token == "-" {
        return if for_add {
            Ok(len)
        } else {
            Err(JsonPatchError::PathNotFound {
                index,
                path: ptr.prefix(i + 1),
            })
        };
    }
    // RFC 6901 §4: array indexes are "0" or digits without a leading zero.
    let well_formed = token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.is_empty() && !token.starts_with('0'));
    if !well_formed {
        return Err(JsonPatchError::InvalidArrayIndex {
            index,
            path: ptr.raw.to_owned(),
            token: token.to_owned(),
        });
    }
    // A digit string too long for usize is necessarily out of bounds.
    match token.parse::<usize>() {
        Ok(at) if at < len || (for_add && at == len) => Ok(at),
        _ => Err(JsonPatchError::IndexOutOfBounds {
            index,
            path: ptr.prefix(i + 1),
            len,
        }),
    }
}

fn add(doc: &mut Value, index: usize, ptr: &Pointer, value: Value) -> Result<(), JsonPatchError> {
    let Some((last, parents)) = ptr.tokens.split_last() else {
        // An empty path replaces the whole document.
        *doc = value;
        return Ok(());
    };
    match resolve(doc, index, ptr, parents.len())? {
        // Inserting an existing key replaces its value in place, keeping the
        // document's member order stable.
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            let at = array_index(index, ptr, parents.len(), items.len(), true)?;
            items.insert(at, value);
        }
        _ => {
            return Err(JsonPatchError::NotAContainer {
                index,
                path: ptr.prefix(parents.len()),
            })
        }
    }
    Ok(())
}

fn remove(doc: &mut Value, index: usize, ptr: &Pointer) -> Result<Value, JsonPatchError> {
    let Some((last, parents)) = ptr.tokens.split_last() else {
        return Err(JsonPatchError::InvalidOperation {
            index,
            reason: "cannot remove the whole document".into(),
        });
    };
    let not_found = || JsonPatchError::PathNotFound {
        index,
        path: ptr.raw.to_owned(),
    };
    match resolve(doc, index, ptr, parents.len())? {
        // shift_remove keeps the remaining members in order (preserve_order).
        Value::Object(map) => map.shift_remove(last.as_str()).ok_or_else(not_found),
        Value::Array(items) => {
            let at = array_index(index, ptr, parents.len(), items.len(), false)?;
            Ok(items.remove(at))
        }
        _ => Err(not_found()),
    }
}

/// Equality as RFC 6902 §4.6 defines it for `test`. `Value`'s own `==` is not
/// enough: with serde_json's `arbitrary_precision` feature numbers compare as
/// their source text, so `1` and `1.0` would differ.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Compares exact decimal values rather than f64s, so large integers and
/// long decimals that round to the same double are still told apart.
fn numbers_eq(a: &Number, b: &Number) -> bool {
    let (a, b) = (a.to_string(), b.to_string());
    a == b || matches!((decimal(&a), decimal(&b)), (Some(x), Some(y)) if x == y)
}

/// Normalises a JSON number literal to `(negative, digits, exponent)` with
/// value ±0.`digits` × 10^`exponent` and no leading or trailing zeros in
/// `digits`; every zero becomes `(false, "", 0)`. `None` if the text is not a
/// plain decimal or the exponent overflows.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let leading_zeros = digits.len() - digits.trim_start_matches('0').len();
    let exponent = i64::try_from(int.len())
        .ok()?
        .checked_sub(i64::try_from(leading_zeros).ok()?)?
        .checked_add(exponent)?;
    Some((negative, significant.to_owned(), exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMIT: usize = 1 << 20;

    fn patched(mut doc: Value, patch: Value) -> Result<Value, JsonPatchError> {
        apply(&mut doc, &patch, LIMIT).map(|()| doc)
    }

    fn patch_err(doc: Value, patch: Value) -> JsonPatchError {
        let original = doc.clone();
        let mut doc = doc;
        let err = apply(&mut doc, &patch, LIMIT).expect_err("patch should fail");
        assert_eq!(doc, original, "document must be unchanged on error");
        err
    }

    #[test]
    fn copies_cannot_grow_the_document_past_the_limit() {
        // Thirty copies would double the names 2^30 times.
        let doc = json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]});
        let ops: Vec<Value> = (0..30)
            .map(|_| json!({"op": "copy", "from": "/name", "path": "/name/-"}))
            .collect();
        let err = patch_err(doc.clone(), Value::Array(ops));
        assert!(
            matches!(err, JsonPatchError::TooLarge { limit: LIMIT, .. }),
            "{err}"
        );
        // A few copies stay well inside it.
        let ops: Vec<Value> = (0..3)
            .map(|_| json!({"op": "copy", "from": "/name", "path": "/name/-"}))
            .collect();
        assert!(patched(doc, Value::Array(ops)).is_ok());
    }

    #[test]
    fn replacing_and_removing_count_what_leaves() {
        let big = "x".repeat(LIMIT / 2);
        let doc = json!({"a": big.clone()});
        // Replacing a large value by another of its size stays in bounds.
        for _ in 0..2 {
            assert!(patched(
                doc.clone(),
                json!([{"op": "replace", "path": "/a", "value": big.clone()}])
            )
            .is_ok());
        }
        assert!(patched(
            doc.clone(),
            json!([{"op": "add", "path": "/a", "value": big.clone()}, {"op": "add", "path": "/b", "value": "y"}])
        )
        .is_ok());
        assert!(patched(
            doc.clone(),
            json!([{"op": "remove", "path": "/a"}, {"op": "add", "path": "/b", "value": big.clone()}, {"op": "add", "path": "", "value": {"c": big.clone()}}])
        )
        .is_ok());
        let err = patch_err(doc, json!([{"op": "add", "path": "/b", "value": big}]));
        assert!(
            matches!(err, JsonPatchError::TooLarge { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn copies_and_moves_cannot_nest_past_the_depth_limit() {
        // Copying a value into itself doubles its depth.
        let mut nested = json!(1);
        for _ in 0..30 {
            nested = json!({"a": nested});
        }
        let doc = json!({"x": nested});
        let inside = |n: usize| format!("/x{}/b", "/a".repeat(n));
        let ops = json!([
            {"op": "copy", "from": "/x", "path": inside(29)},
            {"op": "copy", "from": "/x", "path": inside(59)}
        ]);
        let err = patch_err(doc.clone(), ops);
        assert!(matches!(err, JsonPatchError::TooDeep { index: 1 }), "{err}");
        let deep_path = format!("/y{}", "/a".repeat(limits::MAX_DEPTH));
        let err = patch_err(
            doc,
            json!([{"op": "move", "from": "/x", "path": deep_path}]),
        );
        assert!(matches!(err, JsonPatchError::TooDeep { index: 0 }), "{err}");
    }

    #[test]
    fn add_to_object_and_array() {
        let doc = json!({"a": [1, 3], "b": {}});
        let patch = json!([
            {"op": "add", "path": "/a/1", "value": 2},
            {"op": "add", "path": "/a/3", "value": 4},
            {"op": "add", "path": "/a/-", "value": 5},
            {"op": "add", "path": "/b/c", "value": null},
        ]);
        assert_eq!(
            patched(doc, patch).unwrap(),
            json!({"a": [1, 2, 3, 4, 5], "b": {"c": null}})
        );
    }

    #[test]
    fn add_existing_member_replaces_in_place() {
        let doc = json!({"a": 1, "b": 2, "c": 3});
        let out = patched(doc, json!([{"op": "add", "path": "/b", "value": 9}])).unwrap();
        let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(out["b"], json!(9));
    }

    #[test]
    fn empty_path_replaces_document() {
        let out = patched(
            json!({"a": 1}),
            json!([{"op": "add", "path": "", "value": [1]}]),
        );
        assert_eq!(out.unwrap(), json!([1]));
        let out = patched(
            json!({"a": 1}),
            json!([{"op": "replace", "path": "", "value": 2}]),
        );
        assert_eq!(out.unwrap(), json!(2));
    }

    #[test]
    fn remove_keeps_member_order() {
        let doc = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        let out = patched(doc, json!([{"op": "remove", "path": "/b"}])).unwrap();
        let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "c", "d"]);
    }

    #[test]
    fn remove_root_is_an_error() {
        let err = patch_err(json!({}), json!([{"op": "remove", "path": ""}]));
        assert!(matches!(
            err,
            JsonPatchError::InvalidOperation { index: 0, .. }
        ));
    }

    #[test]
    fn pointer_escapes() {
        let doc = json!({"a/b": 1, "m~n": 2, "~1": 3});
        let patch = json!([
            {"op": "test", "path": "/a~1b", "value": 1},
            {"op": "test", "path": "/m~0n", "value": 2},
            {"op": "test", "path": "/~01", "value": 3},
        ]);
        assert!(patched(doc.clone(), patch).is_ok());
        for bad in ["/m~2n", "/m~", "a"] {
            let err = patch_err(doc.clone(), json!([{"op": "remove", "path": bad}]));
            assert!(
                matches!(err, JsonPatchError::InvalidPointer { index: 0, ref pointer, .. } if pointer == bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn array_index_validation() {
        let doc = json!({"a": [0, 1, 2]});
        for (path, op) in [
            ("/a/01", "remove"),
            ("/a/x", "remove"),
            ("/a/-1", "remove"),
            ("/a/", "remove"),
        ] {
            let err = patch_err(doc.clone(), json!([{"op": op, "path": path}]));
            assert!(
                matches!(err, JsonPatchError::InvalidArrayIndex { .. }),
                "{path}: {err}"
            );
        }
        let err = patch_err(doc.clone(), json!([{"op": "remove", "path": "/a/3"}]));
        assert!(
            matches!(err, JsonPatchError::IndexOutOfBounds { len: 3, .. }),
            "{err}"
        );
        let err = patch_err(
            doc.clone(),
            json!([{"op": "add", "path": "/a/4", "value": 0}]),
        );
        assert!(
            matches!(err, JsonPatchError::IndexOutOfBounds { len: 3, .. }),
            "{err}"
        );
        let err = patch_err(
            doc.clone(),
            json!([{"op": "replace", "path": "/a/-", "value": 0}]),
        );
        assert!(matches!(err, JsonPatchError::PathNotFound { .. }), "{err}");
        let huge = "/a/99999999999999999999999999";
        let err = patch_err(
            doc.clone(),
            json!([{"op": "test", "path": huge, "value": 0}]),
        );
        assert!(
            matches!(err, JsonPatchError::IndexOutOfBounds { .. }),
            "{err}"
        );
        // On objects a numeric-looking token is just a key.
        let out = patched(json!({}), json!([{"op": "add", "path": "/01", "value": 1}]));
        assert_eq!(out.unwrap(), json!({"01": 1}));
    }

    #[test]
    fn missing_parent_is_named_in_error() {
        let err = patch_err(
            json!({"q": 1}),
            json!([{"op": "add", "path": "/a/b/c", "value": 1}]),
        );
        assert_eq!(
            err,
            JsonPatchError::PathNotFound {
                index: 0,
                path: "/a".into()
            }
        );
        let err = patch_err(
            json!({"q": 1}),
            json!([{"op": "add", "path": "/q/b", "value": 1}]),
        );
        assert!(matches!(err, JsonPatchError::NotAContainer { ref path, .. } if path == "/q"));
    }

    #[test]
    fn move_and_copy() {
        let doc = json!({"a": {"b": 1}, "c": [1, 2]});
        let patch = json!([
            {"op": "copy", "from": "/a", "path": "/d"},
            {"op": "move", "from": "/a/b", "path": "/c/0"},
            {"op": "move", "from": "/d", "path": "/d"},
        ]);
        assert_eq!(
            patched(doc, patch).unwrap(),
            json!({"a": {}, "c": [1, 1, 2], "d": {"b": 1}})
        );
    }

    #[test]
    fn move_into_own_child_is_an_error() {
        let doc = json!({"a": {"b": {}}, "ab": 1});
        let err = patch_err(
            doc.clone(),
            json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
        );
        assert!(
            matches!(err, JsonPatchError::MoveIntoChild { index: 0, .. }),
            "{err}"
        );
        // "/a" is a string prefix of "/ab" but not a pointer prefix.
        assert!(patched(doc, json!([{"op": "move", "from": "/a", "path": "/ab"}])).is_ok());
    }

    #[test]
    fn move_from_missing_source_fails() {
        let err = patch_err(
            json!({}),
            json!([{"op": "move", "from": "/x", "path": "/x"}]),
        );
        assert!(matches!(err, JsonPatchError::PathNotFound { ref path, .. } if path == "/x"));
    }

    #[test]
    fn malformed_operations() {
        let doc = json!({"a": 1});
        let cases = [
            (json!(1), "must be a JSON object"),
            (json!({"path": "/a"}), "missing \"op\""),
            (json!({"op": 1, "path": "/a"}), "\"op\" must be a string"),
            (
                json!({"op": "frob", "path": "/a"}),
                "unknown \"op\" \"frob\"",
            ),
            (json!({"op": "remove"}), "missing \"path\""),
            (
                json!({"op": "remove", "path": 3}),
                "\"path\" must be a string",
            ),
            (json!({"op": "add", "path": "/b"}), "missing \"value\""),
            (json!({"op": "copy", "path": "/b"}), "missing \"from\""),
        ];
        for (op, expected) in cases {
            let patch = json!([{"op": "test", "path": "/a", "value": 1}, op]);
            let err = patch_err(doc.clone(), patch).to_string();
            assert!(err.starts_with("operation 1 is invalid"), "{err}");
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
        assert_eq!(patch_err(doc, json!({})), JsonPatchError::NotAnArray);
    }

    #[test]
    fn error_leaves_document_unchanged() {
        let doc = json!({"a": 1});
        let patch = json!([
            {"op": "add", "path": "/b", "value": 2},
            {"op": "test", "path": "/a", "value": 2},
        ]);
        let err = patch_err(doc, patch);
        assert_eq!(
            err.to_string(),
            "operation 1: test failed: the value at \"/a\" does not equal the expected value"
        );
    }

    #[test]
    fn test_compares_by_value() {
        let doc: Value = serde_json::from_str(
            r#"{"n": 1, "f": 100.50, "big": 12345678901234567890, "o": {"x": [1.0, {"y": 2}], "z": null}}"#,
        )
        .unwrap();
        let ok = serde_json::from_str(
            r#"[
                {"op": "test", "path": "/n", "value": 1.0},
                {"op": "test", "path": "/n", "value": 1e0},
                {"op": "test", "path": "/f", "value": 1005E-1},
                {"op": "test", "path": "/big", "value": 12345678901234567890.0},
                {"op": "test", "path": "/o", "value": {"z": null, "x": [1, {"y": 2.00}]}}
            ]"#,
        )
        .unwrap();
        assert!(patched(doc.clone(), ok).is_ok());
        for value in [r#"2"#, r#""1""#, r#"-1"#, r#"[1]"#, r#"true"#] {
            let patch = format!(r#"[{{"op": "test", "path": "/n", "value": {value}}}]"#);
            let err = patch_err(doc.clone(), serde_json::from_str(&patch).unwrap());
            assert!(
                matches!(err, JsonPatchError::TestFailed { index: 0, .. }),
                "{value}"
            );
        }
        // Differ beyond f64 precision.
        let patch = json!([{"op": "test", "path": "/big", "value": serde_json::from_str::<Value>("12345678901234567891").unwrap()}]);
        assert!(patched(doc.clone(), patch).is_err());
        let patch = json!([{"op": "test", "path": "/o", "value": {"x": [1], "z": null}}]);
        assert!(patched(doc, patch).is_err());
    }

    #[test]
    fn decimal_normalisation() {
        assert_eq!(decimal("0.0"), decimal("-0e5"));
        assert_eq!(decimal("0.010"), Some((false, "1".into(), -1)));
        assert_eq!(decimal("-120"), Some((true, "12".into(), 3)));
        assert_eq!(decimal("1.2e2"), decimal("120"));
        assert_ne!(decimal("1"), decimal("10"));
        assert_eq!(decimal("1e99999999999999999999"), None);
    }
}
