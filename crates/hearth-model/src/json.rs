//! The strict JSON reader every request body goes through.
//!
//! `serde_json::from_slice` into a `Value` quietly keeps the last of two
//! members with one name, nests as deep as its recursion limit allows and
//! builds values for as long as the input lasts. A body is refused instead
//! when it names a member twice in one object, nests deeper than
//! [`limits::MAX_DEPTH`], or holds more values than
//! [`limits::max_values`] allows for its size (which bounds the memory a
//! request can take to a small multiple of its length).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::limits;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Parses one JSON document strictly (see the module's documentation):
/// nothing but whitespace may follow it.
pub fn from_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    let budget = Cell::new(limits::max_values(bytes.len()));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        depth: 0,
        budget: &budget,
    }
    .deserialize(&mut de)
    .map_err(|e| JsonError(e.to_string()))?;
    de.end().map_err(|e| JsonError(e.to_string()))?;
    Ok(value)
}

/// About how many bytes `value` takes as compact JSON (escapes aside): the
/// measure patches are held to as they apply.
pub fn encoded_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) => n.as_str().len(),
        Value::String(s) => s.len() + 2,
        Value::Array(items) => {
            1 + items
                .iter()
                .map(|v| encoded_len(v) + 1)
                .sum::<usize>()
                .max(1)
        }
        Value::Object(map) => {
            1 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + encoded_len(v))
                .sum::<usize>()
                .max(1)
        }
    }
}

/// How many objects and arrays nest in `value` (0 for a primitive), the
/// measure of [`limits::MAX_DEPTH`].
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// serde_json (with `arbitrary_precision`, which fhirbolt turns on) hands a
/// number to a visitor as a one-member map under this name, its text as
/// the value.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

#[derive(Clone, Copy)]
struct Strict<'b> {
    /// Containers around the value being read.
    depth: usize,
    /// Values that may still be read.
    budget: &'b Cell<usize>,
}

impl Strict<'_> {
    fn take<E: de::Error>(&self) -> Result<(), E> {
        match self.budget.get().checked_sub(1) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the body holds more JSON values than a body of its size may (one per {} bytes)",
                limits::BYTES_PER_VALUE
            ))),
        }
    }

    /// The reader for a value inside this container.
    fn inner<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth >= limits::MAX_DEPTH {
            return Err(E::custom(format!(
                "the body nests objects and arrays deeper than {} levels",
                limits::MAX_DEPTH
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
            budget: self.budget,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let inner = self.inner()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Value::Object(Map::new()));
        };
        if first == NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return text
                .parse::<Number>()
                .map(Value::Number)
                .map_err(de::Error::custom);
        }
        let inner = self.inner()?;
        let mut object = Map::new();
        let mut key = first;
        loop {
            let value = map.next_value_seed(inner)?;
            if object.contains_key(&key) {
                let shown: String = key.chars().take(100).collect();
                return Err(de::Error::custom(format!(
                    "the member '{shown}' appears more than once in one object"
                )));
            }
            object.insert(key, value);
            match map.next_key::<String>()? {
                Some(next) => key = next,
                None => return Ok(Value::Object(object)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        from_slice(text.as_bytes()).unwrap_err().0
    }

    #[test]
    fn reads_what_serde_json_reads_keeping_numbers_exact() {
        let text = r#"{"resourceType":"Observation","valueQuantity":{"value":1.50,"unit":"kg"},"x":[1,-2,0.000,null,true,"s",{}]}"#;
        let strict = from_slice(text.as_bytes()).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(strict["valueQuantity"]["value"].to_string(), "1.50");
        assert_eq!(serde_json::to_string(&strict).unwrap(), text);
    }

    #[test]
    fn a_member_named_twice_is_refused_by_name() {
        let e = error(r#"{"resourceType":"Observation","resourceType":"Patient"}"#);
        assert!(e.contains("'resourceType' appears more than once"), "{e}");
        let e = error(r#"{"a":{"b":1,"c":2,"b":3}}"#);
        assert!(e.contains("'b' appears more than once"), "{e}");
        // The same name in two objects is fine.
        assert!(from_slice(br#"{"a":{"b":1},"c":{"b":2}}"#).is_ok());
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(from_slice(deep(limits::MAX_DEPTH).as_bytes()).is_ok());
        let e = error(&deep(limits::MAX_DEPTH + 1));
        assert!(e.contains("deeper than"), "{e}");
        // Far deeper than serde_json's own limit: the same error, no overflow.
        let e = error(&deep(100_000));
        assert!(e.contains("deeper than"), "{e}");
    }

    #[test]
    fn many_tiny_values_are_refused_before_they_are_built() {
        let body = format!("[{}{{}}]", "{},".repeat(500_000));
        let e = error(&body);
        assert!(e.contains("more JSON values"), "{e}");
        // Ordinary FHIR JSON is far below the bound.
        let patient = br#"{"resourceType":"Patient","name":[{"family":"Chalmers","given":["Peter","James"]}],"birthDate":"1974-12-25"}"#;
        assert!(from_slice(patient).is_ok());
    }

    #[test]
    fn encoded_len_is_the_compact_length_and_depth_the_nesting() {
        for text in [
            r#"{"resourceType":"Patient","active":true,"name":[{"given":["a","b"]}],"x":null,"n":-1.50,"e":[],"o":{},"f":false}"#,
            "[]",
            "{}",
            "[1,[2,[3]]]",
        ] {
            let value = from_slice(text.as_bytes()).unwrap();
            assert_eq!(encoded_len(&value), text.len(), "{text}");
        }
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!({"a": [{"b": 1}], "c": 2})), 3);
    }

    #[test]
    fn trailing_content_and_broken_input_are_refused() {
        assert!(from_slice(br#"{"a":1} {"b":2}"#).is_err());
        assert!(from_slice(br#"{"a":1"#).is_err());
        assert!(from_slice(b"{\"a\":\"\xff\"}").is_err());
        assert!(from_slice(b"{\"a\":\"x\0y\"}").is_err());
        assert!(from_slice(br#"{"a":1}   "#).is_ok());
    }
}
