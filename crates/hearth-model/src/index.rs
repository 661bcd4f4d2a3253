//! Search index values: what each search parameter of a resource's type
//! selects in it, as typed values a database can store and compare.
//!
//! [`extract`] is a pure function of the resource and the definitions in
//! [`crate::search_params`], so the store can write the index in the same
//! transaction as the resource version, and a `$reindex` gives the same
//! result.

use serde_json::Value;

use crate::datetime;
use crate::fhirpath::{self, Element, Item, SystemValue};
use crate::search_params::{self, ParamType, SearchParam};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    /// The parameter's code (`family`, `code`, `_id`).
    pub param: String,
    pub value: IndexValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexValue {
    String {
        /// Lower-cased, accents removed, whitespace collapsed: see
        /// [`normalise`]. The default (prefix) and `:contains` matches use it.
        normalised: String,
        /// The text as written, for `:exact`.
        exact: String,
    },
    Token {
        system: Option<String>,
        code: Option<String>,
        /// What `:text` searches: a CodeableConcept's text, a Coding's
        /// display, an Identifier's type text.
        display_text: Option<String>,
        /// An Identifier's type coding (system, code), for `:of-type`.
        identifier_type: Option<(Option<String>, Option<String>)>,
        /// A primitive (`code`, `boolean`, `string`, …) whose system, if
        /// any, is implied by its value set rather than stated.
        implicit_system: bool,
    },
    Reference {
        resource_type: Option<String>,
        id: Option<String>,
        version: Option<String>,
        /// The reference as written when it is absolute (`http://…`,
        /// `urn:uuid:…`), local (`#id`) or canonical (without `|version`).
        url: Option<String>,
        /// A logical reference's identifier (system, value), for
        /// `:identifier`.
        identifier: Option<(Option<String>, Option<String>)>,
    },
    /// The instants the value covers, `[start_ms, end_ms)`; open ends of a
    /// Period are `i64::MIN` / `i64::MAX`.
    Date {
        start_ms: i64,
        end_ms: i64,
    },
    /// Decimal text as written, so precision-aware comparison stays possible.
    Number {
        value: String,
    },
    Quantity {
        value: String,
        system: Option<String>,
        code: Option<String>,
        unit: Option<String>,
    },
    Uri(String),
    /// One value per component, in the definition's component order.
    Composite(Vec<IndexValue>),
}

/// The index entries of `resource` for every supported search parameter of
/// its type, in parameter order then document order, without duplicates.
pub fn extract(resource: &Value, custom: &search_params::CustomParams) -> Vec<IndexEntry> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    // A union of other parameters, or a composite of their pairings, is
    // searched through their rows.
    let own_rows = |p: &&SearchParam| p.stored_as.is_empty() && p.derived_from.is_empty();
    for param in search_params::for_type(resource_type, custom).filter(own_rows) {
        let mut values = param_values(param, resource);
        // A value found twice for one parameter is indexed once (few values
        // per parameter: comparing beats hashing).
        let mut unique: Vec<IndexValue> = Vec::with_capacity(values.len());
        for value in values.drain(..) {
            if !unique.contains(&value) {
                unique.push(value);
            }
        }
        entries.extend(unique.into_iter().map(|value| IndexEntry {
            param: param.code.clone(),
            value,
        }));
    }
    entries
}

/// The values of one parameter in `resource`.
pub fn param_values(param: &SearchParam, resource: &Value) -> Vec<IndexValue> {
    let Some(expr) = param.expression.as_ref().filter(|_| param.is_supported()) else {
        return Vec::new();
    };
    // An evaluation error (e.g. `is` on several items in a malformed
    // resource) leaves the parameter unindexed rather than failing the write.
    let Ok(items) = fhirpath::select(expr, resource) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in &items {
        if param.param_type == ParamType::Composite {
            composite_values(param, resource, item, &mut out);
        } else {
            values(param.param_type, item, &mut out);
        }
    }
    out
}

/// One Composite value per combination of the components' values on `item`.
fn composite_values(param: &SearchParam, resource: &Value, item: &Item, out: &mut Vec<IndexValue>) {
    let mut combinations = vec![Vec::new()];
    for component in &param.components {
        let focus = std::slice::from_ref(item);
        let Ok(items) = fhirpath::select_on(&component.expression, resource, focus) else {
            return;
        };
        let mut parts = Vec::new();
        for item in &items {
            values(component.param_type, item, &mut parts);
        }
        combinations = combinations
            .into_iter()
            .flat_map(|prefix| {
                parts.iter().map(move |part| {
                    let mut next = prefix.clone();
                    next.push(part.clone());
                    next
                })
            })
            .collect();
    }
    out.extend(combinations.into_iter().map(IndexValue::Composite));
}

/// Appends the values of `item` for a parameter of type `param_type`.
/// Values of types the parameter type does not cover are skipped.
fn values(param_type: ParamType, item: &Item, out: &mut Vec<IndexValue>) {
    let element = match item {
        Item::Element(e) => e,
        Item::Value(v) => {
            out.extend(system_value(param_type, v));
            return;
        }
    };
    let Some(value) = element.value() else {
        return;
    };
    let type_name = element.type_name().unwrap_or_default();
    match param_type {
        ParamType::String => string_values(type_name, value, out),
        ParamType::Token => token_values(type_name, value, out),
        ParamType::Reference => out.extend(reference_value(element, value)),
        ParamType::Date => out.extend(date_value(type_name, value)),
        ParamType::Number => out.extend(number(value).map(|value| IndexValue::Number { value })),
        ParamType::Quantity => out.extend(quantity_value(type_name, value)),
        ParamType::Uri => out.extend(value.as_str().map(|s| IndexValue::Uri(s.to_owned()))),
        ParamType::Composite | ParamType::Special => {}
    }
}

/// Values computed by the expression rather than found in the resource,
/// like the boolean of `Patient.deceased.exists() and Patient.deceased != false`.
fn system_value(param_type: ParamType, value: &SystemValue) -> Option<IndexValue> {
    match (param_type, value) {
        (ParamType::Token, SystemValue::Boolean(b)) => Some(token(None, Some(b.to_string()))),
        (ParamType::Token, SystemValue::String(s)) => Some(token(None, Some(s.clone()))),
        (ParamType::String, SystemValue::String(s)) => Some(string(s)),
        (ParamType::Number, SystemValue::Integer(i)) => Some(IndexValue::Number {
            value: i.to_string(),
        }),
        (ParamType::Number, SystemValue::Decimal(d)) => {
            Some(IndexValue::Number { value: d.clone() })
        }
        _ => None,
    }
}

fn str_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The strings of `key`, which may repeat.
fn strs_at<'v>(value: &'v Value, key: &str) -> impl Iterator<Item = &'v str> {
    match value.get(key) {
        Some(Value::Array(items)) => items.as_slice(),
        Some(v) => std::slice::from_ref(v),
        None => &[],
    }
    .iter()
    .filter_map(Value::as_str)
}

/// A number's decimal text exactly as written (the workspace's serde_json
/// keeps it, `arbitrary_precision`).
fn number(value: &Value) -> Option<String> {
    value.as_number().map(ToString::to_string)
}

// ---------------------------------------------------------------------------
// string

/// Lower-cases, removes accents (what Unicode NFD followed by stripping
/// combining marks does, for Latin-1 and Latin Extended-A: `Müller` →
/// `muller`; letters that do not decompose, like `ø` or `ß`, stay) and
/// collapses runs of whitespace into one space.
pub fn normalise(text: &str) -> String {
    let folded: String = text
        .to_lowercase()
        .chars()
        // Combining diacritical marks, already decomposed in the input or
        // produced by lower-casing (`İ` → `i̇`).
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(fold_accent)
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lower-case letters of Latin-1 Supplement and Latin Extended-A that
/// decompose under NFD, grouped by their base letter.
const ACCENTED: &[(char, &str)] = &[
    ('a', "àáâãäåāăą"),
    ('c', "çćĉċč"),
    ('d', "ď"),
    ('e', "èéêëēĕėęě"),
    ('g', "ĝğġģ"),
    ('h', "ĥ"),
    ('i', "ìíîïĩīĭį"),
    ('j', "ĵ"),
    ('k', "ķ"),
    ('l', "ĺļľ"),
    ('n', "ñńņň"),
    ('o', "òóôõöōŏő"),
    ('r', "ŕŗř"),
    ('s', "śŝşš"),
    ('t', "ţť"),
    ('u', "ùúûüũūŭůűų"),
    ('w', "ŵ"),
    ('y', "ýÿŷ"),
    ('z', "źżž"),
];

fn fold_accent(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    ACCENTED
        .iter()
        .find(|(_, accented)| accented.contains(c))
        .map_or(c, |(base, _)| *base)
}

fn string(text: &str) -> IndexValue {
    IndexValue::String {
        normalised: normalise(text),
        exact: text.to_owned(),
    }
}

fn string_values(type_name: &str, value: &Value, out: &mut Vec<IndexValue>) {
    // HumanName and Address match on any of their parts.
    let parts: &[&str] = match type_name {
        "HumanName" => &["family", "given", "prefix", "suffix", "text"],
        "Address" => &[
            "line",
            "city",
            "district",
            "state",
            "postalCode",
            "country",
            "text",
        ],
        _ => {
            out.extend(value.as_str().map(string));
            return;
        }
    };
    for part in parts {
        out.extend(strs_at(value, part).map(string));
    }
}

// ---------------------------------------------------------------------------
// token

fn token(system: Option<String>, code: Option<String>) -> IndexValue {
    IndexValue::Token {
        system,
        code,
        display_text: None,
        identifier_type: None,
        implicit_system: true,
    }
}

fn coding_token(coding: &Value, display_text: Option<String>) -> IndexValue {
    IndexValue::Token {
        system: str_at(coding, "system"),
        code: str_at(coding, "code"),
        display_text,
        identifier_type: None,
        implicit_system: false,
    }
}

fn codings(concept: &Value) -> impl Iterator<Item = &Value> {
    concept
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn token_values(type_name: &str, value: &Value, out: &mut Vec<IndexValue>) {
    match (type_name, value) {
        ("Coding", _) => out.push(coding_token(value, str_at(value, "display"))),
        ("CodeableConcept", _) => {
            for coding in codings(value) {
                out.push(coding_token(coding, str_at(coding, "display")));
            }
            // `:text` reads the text and every display, normalised: a text
            // that a display already says adds nothing, and gets no entry
            // (on synthea-120, every text of the 132,677).
            let said = |text: &str| {
                codings(value).any(|c| {
                    c.get("display")
                        .and_then(Value::as_str)
                        .is_some_and(|display| {
                            display == text || normalise(display) == normalise(text)
                        })
                })
            };
            if let Some(text) = str_at(value, "text").filter(|t| !said(t)) {
                out.push(IndexValue::Token {
                    system: None,
                    code: None,
                    display_text: Some(text),
                    identifier_type: None,
                    implicit_system: false,
                });
            }
        }
        ("Identifier", _) => {
            let (system, code) = (str_at(value, "system"), str_at(value, "value"));
            let concept = value.get("type");
            let display_text = concept.and_then(|t| str_at(t, "text"));
            let identifier = |identifier_type| IndexValue::Token {
                system: system.clone(),
                code: code.clone(),
                display_text: display_text.clone(),
                identifier_type,
                implicit_system: false,
            };
            // One entry per type coding, so `:of-type` matches a pair.
            let types: Vec<_> = concept.into_iter().flat_map(codings).collect();
            if types.is_empty() {
                out.push(identifier(None));
            }
            for t in types {
                out.push(identifier(Some((str_at(t, "system"), str_at(t, "code")))));
            }
        }
        // A telecom matches on its value; its system is the kind of contact,
        // not a code system.
        ("ContactPoint", _) => out.extend(str_at(value, "value").map(|v| token(None, Some(v)))),
        (_, Value::Bool(b)) => out.push(token(None, Some(b.to_string()))),
        (_, Value::String(s)) => out.push(token(None, Some(s.clone()))),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// reference

fn reference_value(element: &Element, value: &Value) -> Option<IndexValue> {
    // A resource in place of a reference (`Bundle.entry[0].resource`).
    if let Some(resource_type) = value.get("resourceType").and_then(Value::as_str) {
        return Some(IndexValue::Reference {
            resource_type: Some(resource_type.to_owned()),
            id: str_at(value, "id"),
            version: None,
            url: None,
            identifier: None,
        });
    }
    if let Value::String(canonical) = value {
        // canonical and uri: `url|version`.
        let (url, version) = match canonical.split_once('|') {
            Some((url, version)) => (url, Some(version.to_owned())),
            None => (canonical.as_str(), None),
        };
        return Some(IndexValue::Reference {
            resource_type: None,
            id: None,
            version,
            url: Some(url.to_owned()),
            identifier: None,
        });
    }
    if element.type_name() != Some("Reference") {
        return None;
    }
    let identifier = value
        .get("identifier")
        .map(|i| (str_at(i, "system"), str_at(i, "value")));
    let mut parsed = match value.get("reference").and_then(Value::as_str) {
        Some(reference) => parse_reference(reference),
        None if identifier.is_some() => IndexValue::Reference {
            resource_type: str_at(value, "type"),
            id: None,
            version: None,
            url: None,
            identifier: None,
        },
        None => return None,
    };
    if let IndexValue::Reference {
        identifier: slot, ..
    } = &mut parsed
    {
        *slot = identifier;
    }
    Some(parsed)
}

/// Splits a literal reference: `Patient/1`, `Patient/1/_history/2`,
/// `http://example.org/fhir/Patient/1` (type and id too, so the store can
/// match absolute references to its own base), `urn:uuid:…`, `#contained`;
/// anything else lands in `url` as written.
pub fn parse_reference(reference: &str) -> IndexValue {
    let absolute = reference.contains(':') || reference.starts_with('#');
    let (path, version) = match reference.split_once("/_history/") {
        Some((path, version)) => (path, Some(version.to_owned())),
        None => (reference, None),
    };
    let typed = fhirpath::reference_type(path).map(|resource_type| {
        let id = path.rsplit('/').next().unwrap_or_default();
        (resource_type.to_owned(), id.to_owned())
    });
    // Text that is neither absolute nor `Type/id` is kept as written rather
    // than dropped, so it can still be matched exactly.
    let keep_text = absolute || typed.is_none();
    let (resource_type, id) = typed.unzip();
    IndexValue::Reference {
        resource_type,
        id,
        version,
        url: keep_text.then(|| path.to_owned()),
        identifier: None,
    }
}

// ---------------------------------------------------------------------------
// date

fn date_value(type_name: &str, value: &Value) -> Option<IndexValue> {
    let (start_ms, end_ms) = match (type_name, value) {
        (_, Value::String(text)) => datetime::range(text).map(|r| (r.start, r.end))?,
        ("Period", _) => period(value)?,
        ("Timing", _) => timing(value)?,
        _ => return None,
    };
    Some(IndexValue::Date { start_ms, end_ms })
}

/// `[start, end)`, an absent end being open. A Period with neither says
/// nothing and is not indexed.
fn period(value: &Value) -> Option<(i64, i64)> {
    let bound = |key| {
        value
            .get(key)
            .and_then(Value::as_str)
            .and_then(datetime::range)
    };
    let (start, end) = (bound("start"), bound("end"));
    if start.is_none() && end.is_none() {
        return None;
    }
    Some((
        start.map_or(i64::MIN, |r| r.start),
        end.map_or(i64::MAX, |r| r.end),
    ))
}

/// The outer limits of a Timing: its events and its bounds Period (the
/// spec's date search ignores the schedule details).
fn timing(value: &Value) -> Option<(i64, i64)> {
    let events = strs_at(value, "event")
        .filter_map(datetime::range)
        .map(|r| (r.start, r.end));
    let bounds = value
        .get("repeat")
        .and_then(|r| r.get("boundsPeriod"))
        .and_then(period);
    events
        .chain(bounds)
        .reduce(|(s1, e1), (s2, e2)| (s1.min(s2), e1.max(e2)))
}

// ---------------------------------------------------------------------------
// quantity

fn quantity_value(type_name: &str, value: &Value) -> Option<IndexValue> {
    let amount = number(value.get("value")?)?;
    match type_name {
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "SimpleQuantity" => {
            Some(IndexValue::Quantity {
                value: amount,
                system: str_at(value, "system"),
                code: str_at(value, "code"),
                unit: str_at(value, "unit"),
            })
        }
        "Money" => Some(IndexValue::Quantity {
            value: amount,
            system: Some("urn:iso:std:iso:4217".to_owned()),
            code: str_at(value, "currency"),
            unit: None,
        }),
        // Range and SampledData need range semantics a single quantity
        // cannot express; they are not indexed yet.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The values of parameter `code` in `resource`.
    fn values_of(resource: &Value, code: &str) -> Vec<IndexValue> {
        extract(resource, &search_params::CustomParams::default())
            .into_iter()
            .filter(|e| e.param == code)
            .map(|e| e.value)
            .collect()
    }

    fn exact_strings(resource: &Value, code: &str) -> Vec<String> {
        values_of(resource, code)
            .into_iter()
            .map(|v| match v {
                IndexValue::String { exact, .. } => exact,
                other => panic!("not a string: {other:?}"),
            })
            .collect()
    }

    fn tok(system: Option<&str>, code: Option<&str>, display: Option<&str>) -> IndexValue {
        IndexValue::Token {
            system: system.map(Into::into),
            code: code.map(Into::into),
            display_text: display.map(Into::into),
            identifier_type: None,
            // The tests' primitives are the tokens without system or display.
            implicit_system: system.is_none() && display.is_none(),
        }
    }

    fn reference(resource_type: Option<&str>, id: Option<&str>) -> IndexValue {
        full_reference(resource_type, id, None, None, None)
    }

    fn full_reference(
        resource_type: Option<&str>,
        id: Option<&str>,
        version: Option<&str>,
        url: Option<&str>,
        identifier: Option<(&str, &str)>,
    ) -> IndexValue {
        IndexValue::Reference {
            resource_type: resource_type.map(Into::into),
            id: id.map(Into::into),
            version: version.map(Into::into),
            url: url.map(Into::into),
            identifier: identifier.map(|(s, v)| (Some(s.into()), Some(v.into()))),
        }
    }

    fn ms(text: &str) -> i64 {
        datetime::range(text).unwrap().start
    }

    #[test]
    fn normalisation_folds_case_accents_and_spaces() {
        assert_eq!(normalise("Müller"), "muller");
        assert_eq!(normalise("  ZOË\t Łukasz  Ærø "), "zoe łukasz ærø");
        assert_eq!(normalise("Čapek Ñandú İlkay"), "capek nandu ilkay");
        // Already decomposed input: e + combining acute.
        assert_eq!(normalise("Rene\u{301}e"), "renee");
    }

    #[test]
    fn human_name_and_address_index_every_part() {
        let patient = json!({
            "resourceType": "Patient",
            "name": [{"family": "Müller", "given": ["Zoë", "Anna"], "prefix": ["Dr"],
                      "suffix": ["PhD"], "text": "Dr Zoë Anna Müller PhD"}],
            "address": [{"line": ["1 Rue de l'Église"], "city": "Québec", "district": "D",
                         "state": "QC", "postalCode": "G1R", "country": "CA"}]
        });
        assert_eq!(
            values_of(&patient, "family"),
            [IndexValue::String {
                normalised: "muller".into(),
                exact: "Müller".into()
            }]
        );
        assert_eq!(exact_strings(&patient, "given"), ["Zoë", "Anna"]);
        assert_eq!(
            exact_strings(&patient, "name"),
            [
                "Müller",
                "Zoë",
                "Anna",
                "Dr",
                "PhD",
                "Dr Zoë Anna Müller PhD"
            ]
        );
        assert_eq!(
            exact_strings(&patient, "address"),
            ["1 Rue de l'Église", "Québec", "D", "QC", "G1R", "CA"]
        );
        let city = &values_of(&patient, "address-city")[0];
        assert!(matches!(city, IndexValue::String { normalised, .. } if normalised == "quebec"));
    }

    #[test]
    fn tokens_from_codings_concepts_identifiers_and_primitives() {
        let observation = json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"},
                                {"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}],
                     "text": "Weight"},
            "identifier": [{"system": "urn:s", "value": "1",
                            "type": {"coding": [{"system": "urn:t", "code": "MR"}, {"code": "X"}], "text": "MRN"}},
                           {"value": "2"}]
        });
        // The duplicate coding is indexed once.
        assert_eq!(
            values_of(&observation, "code"),
            [
                tok(
                    Some("http://loinc.org"),
                    Some("29463-7"),
                    Some("Body Weight")
                ),
                tok(None, None, Some("Weight")),
            ]
        );
        // A text that a display says (once normalised) is not indexed again.
        let said = json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}],
                     "text": "body  WEIGHT"}
        });
        assert_eq!(
            values_of(&said, "code"),
            [tok(
                Some("http://loinc.org"),
                Some("29463-7"),
                Some("Body Weight")
            )]
        );
        assert_eq!(
            values_of(&observation, "status"),
            [tok(None, Some("final"), None)]
        );
        let identifier = |code, identifier_type| IndexValue::Token {
            system: (code == "1").then(|| "urn:s".into()),
            code: Some(String::from(code)),
            display_text: (code == "1").then(|| "MRN".into()),
            identifier_type,
            implicit_system: false,
        };
        assert_eq!(
            values_of(&observation, "identifier"),
            [
                identifier("1", Some((Some("urn:t".into()), Some("MR".into())))),
                identifier("1", Some((None, Some("X".into())))),
                identifier("2", None),
            ]
        );
        let patient = json!({
            "resourceType": "Patient", "active": true, "gender": "female",
            "deceasedDateTime": "2020-01-01",
            "telecom": [{"system": "email", "value": "a@b.org"}]
        });
        assert_eq!(
            values_of(&patient, "active"),
            [tok(None, Some("true"), None)]
        );
        assert_eq!(
            values_of(&patient, "gender"),
            [tok(None, Some("female"), None)]
        );
        assert_eq!(
            values_of(&patient, "email"),
            [tok(None, Some("a@b.org"), None)]
        );
        assert_eq!(values_of(&patient, "phone"), []);
        // `Patient.deceased.exists() and Patient.deceased != false`
        assert_eq!(
            values_of(&patient, "deceased"),
            [tok(None, Some("true"), None)]
        );
        let alive = json!({"resourceType": "Patient", "deceasedBoolean": false});
        assert_eq!(
            values_of(&alive, "deceased"),
            [tok(None, Some("false"), None)]
        );
    }

    #[test]
    fn references_in_all_their_forms() {
        let observation = json!({
            "resourceType": "Observation",
            "contained": [{"resourceType": "Device", "id": "d1"}],
            "subject": {"reference": "Patient/123/_history/2"},
            "performer": [{"reference": "http://example.org/fhir/Practitioner/p1"},
                          {"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},
                          {"identifier": {"system": "urn:npi", "value": "42"}, "display": "Dr X"},
                          {"display": "nobody"}],
            "device": {"reference": "#d1"}
        });
        let versioned = full_reference(Some("Patient"), Some("123"), Some("2"), None, None);
        assert_eq!(
            values_of(&observation, "subject"),
            std::slice::from_ref(&versioned)
        );
        assert_eq!(values_of(&observation, "patient"), [versioned]);
        assert_eq!(
            values_of(&observation, "performer"),
            [
                full_reference(
                    Some("Practitioner"),
                    Some("p1"),
                    None,
                    Some("http://example.org/fhir/Practitioner/p1"),
                    None
                ),
                full_reference(
                    None,
                    None,
                    None,
                    Some("urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"),
                    None
                ),
                full_reference(None, None, None, None, Some(("urn:npi", "42"))),
            ]
        );
        assert_eq!(
            values_of(&observation, "device"),
            [full_reference(None, None, None, Some("#d1"), None)]
        );
        // `Observation.subject.where(resolve() is Patient)`: a Group is a
        // subject but not a patient.
        let group = json!({"resourceType": "Observation", "subject": {"reference": "Group/g"}});
        assert_eq!(
            values_of(&group, "subject"),
            [reference(Some("Group"), Some("g"))]
        );
        assert_eq!(values_of(&group, "patient"), []);
        // Canonical with a version.
        let response = json!({"resourceType": "QuestionnaireResponse",
                              "questionnaire": "http://x.org/Questionnaire/q|1.0"});
        assert_eq!(
            values_of(&response, "questionnaire"),
            [full_reference(
                None,
                None,
                Some("1.0"),
                Some("http://x.org/Questionnaire/q"),
                None
            )]
        );
    }

    #[test]
    fn dates_by_precision_periods_and_timings() {
        let patient = json!({"resourceType": "Patient", "birthDate": "1974"});
        assert_eq!(
            values_of(&patient, "birthdate"),
            [IndexValue::Date {
                start_ms: ms("1974-01-01"),
                end_ms: ms("1975-01-01")
            }]
        );
        let open_end = json!({"resourceType": "Observation",
                              "effectivePeriod": {"start": "2020-03-01T10:00:00+01:00"}});
        assert_eq!(
            values_of(&open_end, "date"),
            [IndexValue::Date {
                start_ms: ms("2020-03-01T09:00:00Z"),
                end_ms: i64::MAX
            }]
        );
        let open_start =
            json!({"resourceType": "Observation", "effectivePeriod": {"end": "2020-03"}});
        assert_eq!(
            values_of(&open_start, "date"),
            [IndexValue::Date {
                start_ms: i64::MIN,
                end_ms: ms("2020-04-01")
            }]
        );
        let instant =
            json!({"resourceType": "Observation", "effectiveInstant": "2020-03-01T10:00:00.5Z"});
        let start = ms("2020-03-01T10:00:00.5Z");
        assert_eq!(
            values_of(&instant, "date"),
            [IndexValue::Date {
                start_ms: start,
                end_ms: start + 100
            }]
        );
        let timing = json!({"resourceType": "ServiceRequest",
            "occurrenceTiming": {"event": ["2021-05-02", "2021-05-01"],
                                 "repeat": {"boundsPeriod": {"start": "2021-05-01T12:00:00Z", "end": "2021-06"}}}});
        assert_eq!(
            values_of(&timing, "occurrence"),
            [IndexValue::Date {
                start_ms: ms("2021-05-01"),
                end_ms: ms("2021-07-01")
            }]
        );
    }

    #[test]
    fn numbers_quantities_and_uris() {
        // Parsed from text: decimals keep their digits (`json!` would go
        // through f64).
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        let observation = parse(
            r#"{"resourceType": "Observation", "valueQuantity":
                {"value": 1.50, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}"#,
        );
        assert_eq!(
            values_of(&observation, "value-quantity"),
            [IndexValue::Quantity {
                value: "1.50".into(),
                system: Some("http://unitsofmeasure.org".into()),
                code: Some("mg".into()),
                unit: Some("mg".into())
            }]
        );
        let risk = parse(
            r#"{"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.020}]}"#,
        );
        assert_eq!(
            values_of(&risk, "probability"),
            [IndexValue::Number {
                value: "0.020".into()
            }]
        );
        let value_set = json!({"resourceType": "ValueSet", "url": "http://x.org/vs"});
        assert_eq!(
            values_of(&value_set, "url"),
            [IndexValue::Uri("http://x.org/vs".into())]
        );
    }

    #[test]
    fn composites_combine_their_components() {
        let observation = json!({"resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 107, "code": "mm[Hg]"}},
            {"code": {"text": "diastolic"}, "valueString": "n/a"}
        ]});
        let quantity = IndexValue::Quantity {
            value: "107".into(),
            system: None,
            code: Some("mm[Hg]".into()),
            unit: None,
        };
        assert_eq!(
            values_of(&observation, "component-code-value-quantity"),
            [IndexValue::Composite(vec![
                tok(Some("http://loinc.org"), Some("8480-6"), None),
                quantity.clone()
            ])]
        );
        // The Observation itself has no value, so only the component counts.
        // The combo is stored as its parts: it has no entries of its own.
        let combo = search_params::spec_get("Observation", "combo-code-value-quantity").unwrap();
        assert_eq!(param_values(combo, &observation).len(), 1);
        assert_eq!(values_of(&observation, "combo-code-value-quantity"), []);
        assert_eq!(values_of(&observation, "code-value-quantity"), []);
        // Pairings of the Observation's own code and value are searched
        // through `code` and `value-quantity`: no entries either.
        let heart_rate = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "valueQuantity": {"value": 72, "code": "/min"}});
        let derived = search_params::spec_get("Observation", "code-value-quantity").unwrap();
        assert_eq!(derived.derived_from, ["code", "value-quantity"]);
        assert_eq!(param_values(derived, &heart_rate).len(), 1);
        assert_eq!(values_of(&heart_rate, "code-value-quantity"), []);
        assert_eq!(values_of(&heart_rate, "value-quantity").len(), 1);
    }

    #[test]
    fn shared_parameters_and_meta() {
        let patient = json!({"resourceType": "Patient", "id": "p1",
            "meta": {"lastUpdated": "2024-01-02T03:04:05.678Z", "profile": ["http://x.org/p"],
                     "tag": [{"system": "urn:t", "code": "a"}], "source": "urn:src"}});
        assert_eq!(values_of(&patient, "_id"), [tok(None, Some("p1"), None)]);
        let updated = ms("2024-01-02T03:04:05.678Z");
        assert_eq!(
            values_of(&patient, "_lastUpdated"),
            [IndexValue::Date {
                start_ms: updated,
                end_ms: updated + 1
            }]
        );
        assert_eq!(
            values_of(&patient, "_tag"),
            [tok(Some("urn:t"), Some("a"), None)]
        );
        assert_eq!(
            values_of(&patient, "_profile"),
            [IndexValue::Uri("http://x.org/p".into())]
        );
        assert_eq!(
            values_of(&patient, "_source"),
            [IndexValue::Uri("urn:src".into())]
        );
    }

    #[test]
    fn custom_parameter_with_an_extension() {
        let mut param = search_params::spec_get("Patient", "gender")
            .unwrap()
            .clone();
        param.code = "race".into();
        param.expression =
            Some(fhirpath::parse("Patient.extension('http://x.org/race').value.first()").unwrap());
        let patient = json!({"resourceType": "Patient", "extension": [
            {"url": "http://x.org/other", "valueCode": "no"},
            {"url": "http://x.org/race", "valueCoding": {"system": "urn:r", "code": "2106-3"}},
            {"url": "http://x.org/race", "valueCoding": {"system": "urn:r", "code": "1002-5"}}
        ]});
        assert_eq!(
            param_values(&param, &patient),
            [tok(Some("urn:r"), Some("2106-3"), None)]
        );
    }

    #[test]
    fn extraction_is_deterministic() {
        let patient = json!({"resourceType": "Patient", "id": "x",
            "name": [{"family": "A", "given": ["B"]}, {"family": "A"}]});
        let first = extract(&patient, &search_params::CustomParams::default());
        assert_eq!(
            first,
            extract(&patient, &search_params::CustomParams::default())
        );
        // `family` A twice in the resource, once in the index.
        assert_eq!(exact_strings(&patient, "family"), ["A"]);
        assert!(extract(
            &json!({"no": "type"}),
            &search_params::CustomParams::default()
        )
        .is_empty());
    }
}
