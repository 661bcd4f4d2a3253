//! Checks of a FHIR JSON resource against the element table in
//! [`crate::structure`], in one walk over the resource:
//!
//! - structure: unknown elements, array/single mismatches, empty arrays and
//!   objects, values of the wrong JSON kind, several types of one choice
//!   element, missing mandatory elements, unknown resource types;
//! - values: every primitive against its element's type
//!   ([`crate::primitives`]).
//!
//! Locations are built only for the problems found, so a clean resource
//! costs one pass and no allocation per element.

use std::fmt;

use serde_json::{Map, Value};

use crate::primitives;
use crate::structure::{self, ElementInfo};

/// A problem found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// FHIRPath-style location using the JSON property names, e.g.
    /// `Patient.name[0].given[1]` or `Observation.valueQuantity.value`.
    pub expression: String,
    pub message: String,
}

/// What [`check`] found: structural problems, and malformed primitive
/// values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub structure: Vec<Issue>,
    pub values: Vec<Issue>,
}

/// Checks a resource (contained resources, Bundle entries and Parameters
/// resources too, each against its own resourceType), in document order.
pub fn check(resource: &Value) -> Checked {
    let mut checked = Checked::default();
    if let Some(obj) = resource.as_object() {
        structure_resource(obj, None, &mut checked);
    }
    checked
}

/// The malformed primitive values of `resource` (see [`check`]).
pub fn check_primitives(resource: &Value) -> Vec<Issue> {
    check(resource).values
}

/// The structural problems of `resource` (see [`check`]).
pub fn check_structure(resource: &Value) -> Vec<Issue> {
    check(resource).structure
}

/// Where a value is, built on the stack as the walk descends and written
/// out only for a problem.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root(&'p str),
    Field(&'p Path<'p>, &'p str),
    Item(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn issue(issues: &mut Vec<Issue>, at: &dyn fmt::Display, message: impl Into<String>) {
    issues.push(Issue {
        expression: at.to_string(),
        message: message.into(),
    });
}

/// `at` is where the resource sits in its container, `None` for the root.
fn structure_resource(obj: &Map<String, Value>, at: Option<&Path>, checked: &mut Checked) {
    let rt_at = |name: &'static str| -> String {
        match at {
            None => name.to_owned(),
            Some(p) => Path::Field(p, name).to_string(),
        }
    };
    let rt = match obj.get("resourceType") {
        Some(Value::String(rt)) if structure::is_resource_type(rt) => rt,
        Some(Value::String(rt)) => {
            let shown: String = rt.chars().take(100).collect();
            let message = format!("'{shown}' is not a known resource type");
            return issue(&mut checked.structure, &rt_at("resourceType"), message);
        }
        Some(_) => {
            return issue(
                &mut checked.structure,
                &rt_at("resourceType"),
                "resourceType must be a string",
            )
        }
        None => {
            return issue(
                &mut checked.structure,
                &rt_at("resourceType"),
                "missing resourceType",
            )
        }
    };
    let root = Path::Root(rt);
    structure_object(obj, rt, at.unwrap_or(&root), true, checked);
}

fn structure_object(
    obj: &Map<String, Value>,
    ctx: &str,
    at: &Path,
    is_resource: bool,
    checked: &mut Checked,
) {
    if obj.is_empty() {
        issue(&mut checked.structure, at, "empty objects are not allowed");
    }
    // First JSON name seen for each choice element, to catch a second type.
    let mut choices: Vec<(&'static ElementInfo, &str)> = Vec::new();
    for (key, value) in obj {
        if is_resource && key == "resourceType" {
            continue;
        }
        let (name, element_part) = match key.strip_prefix('_') {
            Some(name) => (name, true),
            None => (key.as_str(), false),
        };
        let key_at = Path::Field(at, key);
        let Some((info, chosen)) = structure::child(ctx, name) else {
            issue(
                &mut checked.structure,
                &key_at,
                format!("unknown element '{key}'"),
            );
            continue;
        };
        let Some(child_ctx) = info.child_context(chosen) else {
            continue;
        };
        let path = Path::Field(at, name);
        let primitive = structure::is_primitive_type(child_ctx);
        if element_part && !primitive {
            issue(
                &mut checked.structure,
                &key_at,
                format!("unknown element '{key}' ('{name}' is not a primitive)"),
            );
            continue;
        }
        if info.choice {
            match choices.iter().find(|(c, _)| std::ptr::eq(*c, info)) {
                Some((_, first)) if *first != name => issue(
                    &mut checked.structure,
                    &path,
                    format!("only one of {first} and {name} is allowed ({})", info.path),
                ),
                Some(_) => {}
                None => choices.push((info, name)),
            }
        }
        let items: &[Value] = match (value, info.many) {
            (Value::Array(a), true) if a.is_empty() => {
                issue(
                    &mut checked.structure,
                    &path,
                    "empty arrays are not allowed",
                );
                continue;
            }
            (Value::Array(_), false) => {
                let message = format!("'{key}' has at most one value and must not be an array");
                issue(&mut checked.structure, &path, message);
                continue;
            }
            (Value::Array(a), true) => a,
            (_, true) => {
                let message = format!("'{key}' can repeat and must be an array");
                issue(&mut checked.structure, &path, message);
                continue;
            }
            (v, false) => std::slice::from_ref(v),
        };
        let repeats = value.is_array();
        for (i, item) in items.iter().enumerate() {
            let item_path = Path::Item(&path, i);
            let item_at: &Path = if repeats { &item_path } else { &path };
            match item {
                // In arrays, null pairs a primitive with its `_name` entry.
                Value::Null if repeats && primitive => {
                    if !element_part && !has_element_part(obj, name, i) {
                        if let Err(message) = primitives::check(child_ctx, item) {
                            issue(&mut checked.values, item_at, message);
                        }
                    }
                }
                Value::Null => issue(&mut checked.structure, item_at, "null is not allowed here"),
                // The id and extensions of a primitive.
                Value::Object(o) if element_part => {
                    structure_object(o, child_ctx, item_at, false, checked)
                }
                _ if element_part => issue(
                    &mut checked.structure,
                    item_at,
                    format!("'{key}' must hold objects"),
                ),
                _ if primitive => {
                    let value = primitives::check(child_ctx, item);
                    // A value of the wrong JSON kind is a structure problem.
                    if !kind_matches(child_ctx, item) {
                        let message = value.clone().err().unwrap_or_default();
                        issue(&mut checked.structure, item_at, message);
                    }
                    if let Err(message) = value {
                        issue(&mut checked.values, item_at, message);
                    }
                }
                Value::Object(o) if child_ctx == "Resource" => {
                    structure_resource(o, Some(item_at), checked)
                }
                Value::Object(o) => structure_object(o, child_ctx, item_at, false, checked),
                _ => issue(
                    &mut checked.structure,
                    item_at,
                    format!("a {child_ctx} must be a JSON object"),
                ),
            }
        }
    }
    for el in structure::children(ctx).filter(|e| e.min > 0) {
        let present = obj.keys().any(|k| {
            let name = k.strip_prefix('_').unwrap_or(k);
            structure::child(ctx, name).is_some_and(|(info, _)| std::ptr::eq(info, el))
        });
        if !present {
            let name = el.name();
            issue(
                &mut checked.structure,
                &Path::Field(at, name),
                format!("missing mandatory element '{name}'"),
            );
        }
    }
}

/// Whether `v` has the JSON kind FHIR JSON uses for the primitive type.
fn kind_matches(type_code: &str, v: &Value) -> bool {
    match type_code {
        "boolean" => v.is_boolean(),
        "integer" | "positiveInt" | "unsignedInt" | "decimal" => v.is_number(),
        _ => v.is_string(),
    }
}

/// In a primitive array, `null` marks an entry that has only extensions,
/// which the `_name` array then holds at the same index.
fn has_element_part(obj: &Map<String, Value>, name: &str, i: usize) -> bool {
    obj.iter()
        .find(|(k, _)| k.strip_prefix('_') == Some(name))
        .is_some_and(
            |(_, v)| matches!(v, Value::Array(a) if a.get(i).is_some_and(Value::is_object)),
        )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The official R4 examples as (file name, resource), sorted; empty
    /// (with a note, see `hearth_fixtures`) where they cannot be had.
    pub(crate) fn official_examples() -> Vec<(String, Value)> {
        let Some(dir) = hearth_fixtures::examples() else {
            return Vec::new();
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, serde_json::from_str(&text).unwrap())
            })
            .collect()
    }

    /// The official examples are valid, except for known defects.
    #[test]
    fn official_examples_are_clean() {
        let mut failing = Vec::new();
        for (name, resource) in official_examples() {
            let issues = check_primitives(&resource);
            assert!(issues.is_empty(), "{name}: {issues:#?}");
            if !check_structure(&resource).is_empty() {
                failing.push(name);
            }
        }
        // Generated from a StructureDefinition: its nested display items have
        // no linkId, which Questionnaire.item requires (1..1).
        let known: &[&str] = &["Questionnaire-qs1.json"];
        assert!(
            failing.iter().all(|f| known.contains(&f.as_str())),
            "{failing:?}"
        );
    }

    fn exprs(v: Value) -> Vec<String> {
        check_primitives(&v)
            .into_iter()
            .map(|i| i.expression)
            .collect()
    }

    #[test]
    fn clean_resource() {
        let p = json!({
            "resourceType": "Patient",
            "id": "example",
            "meta": {"lastUpdated": "2020-01-01T00:00:00Z"},
            "active": true,
            "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
            "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
            "deceasedBoolean": false,
            "multipleBirthInteger": 2,
            "unknownThing": "ignored",
            "contact": [{"name": {"family": "du Marché"}, "gender": "female"}]
        });
        assert_eq!(check_primitives(&p), []);
    }

    #[test]
    fn reports_bad_primitives_with_paths() {
        let p = json!({
            "resourceType": "Patient",
            "id": "bad id",
            "active": "yes",
            "name": [{"given": ["Peter", ""]}],
            "birthDate": "1974-02-30",
            "_birthDate": {"extension": [{"url": "http://x", "valueDateTime": "1974-12-25T14:35"}]},
            "deceasedDateTime": "2020-01-01T10:00:00",
            "multipleBirthInteger": 1.5,
            "contact": [{"gender": " female"}]
        });
        assert_eq!(
            exprs(p),
            [
                "Patient.id",
                "Patient.active",
                "Patient.name[0].given[1]",
                "Patient.birthDate",
                "Patient.birthDate.extension[0].valueDateTime",
                "Patient.deceasedDateTime",
                "Patient.multipleBirthInteger",
                "Patient.contact[0].gender",
            ]
        );
        let issues =
            check_primitives(&json!({"resourceType": "Patient", "birthDate": "1974-02-30"}));
        assert_eq!(
            issues[0].message,
            "'1974-02-30' is not a valid date (day 30 does not exist in 1974-02, which has 28 days)"
        );
    }

    #[test]
    fn choice_and_nested_types() {
        let o = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5 "}]},
            "valueQuantity": {"value": "5.4", "unit": "mmol/l"},
            "component": [{"code": {"text": "x"}, "valueInteger": 2147483648_i64}],
            "referenceRange": [{"low": {"value": 1e2}}]
        });
        assert_eq!(
            exprs(o),
            [
                "Observation.code.coding[0].code",
                "Observation.valueQuantity.value",
                "Observation.component[0].valueInteger",
            ]
        );
    }

    #[test]
    fn primitive_arrays_with_extensions() {
        let ext = json!({"extension": [{"url": "http://x", "valueCode": "a"}]});
        let ok = json!({"resourceType": "Patient", "name": [{"given": [null, "B"], "_given": [ext, null]}]});
        assert_eq!(check_primitives(&ok), []);
        // A null with no extensions at that index is not a value.
        let bad = json!({"resourceType": "Patient", "name": [{"given": ["A", null], "_given": [ext, null]}]});
        assert_eq!(exprs(bad), ["Patient.name[0].given[1]"]);
        let bad = json!({"resourceType": "Patient", "name": [{"_given": [{"id": ""}]}]});
        assert_eq!(exprs(bad), ["Patient.name[0].given[0].id"]);
    }

    #[test]
    fn nested_resources() {
        let b = json!({
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:x", "resource": {
                    "resourceType": "Patient",
                    "birthDate": "2001-13",
                    "contained": [{"resourceType": "Organization", "active": 1}]
                }},
                {"resource": {"resourceType": "Parameters", "parameter": [
                    {"name": "p", "valueInstant": "2020-01-01"},
                    {"name": "r", "resource": {"resourceType": "Basic", "created": "x"}},
                    {"name": "nested", "part": [{"name": "q", "valuePositiveInt": 0}]}
                ]}},
                {"resource": {"resourceType": "NotAType", "birthDate": "x"}}
            ]
        });
        assert_eq!(
            exprs(b),
            [
                "Bundle.entry[0].resource.birthDate",
                "Bundle.entry[0].resource.contained[0].active",
                "Bundle.entry[1].resource.parameter[0].valueInstant",
                "Bundle.entry[1].resource.parameter[1].resource.created",
                "Bundle.entry[1].resource.parameter[2].part[0].valuePositiveInt",
            ]
        );
    }

    #[test]
    fn content_reference_recursion() {
        let q = json!({
            "resourceType": "Questionnaire",
            "status": "active",
            "item": [{"linkId": "1", "type": "group", "item": [
                {"linkId": "1.1", "type": "boolean", "item": [{"linkId": "1.1.1", "type": "display", "required": "no"}]}
            ]}]
        });
        assert_eq!(exprs(q), ["Questionnaire.item[0].item[0].item[0].required"]);
    }

    #[test]
    fn not_a_resource() {
        assert_eq!(check_primitives(&json!({"birthDate": "x"})), []);
        assert_eq!(check_primitives(&json!("Patient")), []);
        assert_eq!(
            check_primitives(&json!({"resourceType": "HumanName", "family": ""})),
            []
        );
    }

    fn structure(v: Value) -> Vec<(String, String)> {
        check_structure(&v)
            .into_iter()
            .map(|i| (i.expression, i.message))
            .collect()
    }

    #[test]
    fn structure_of_valid_resources() {
        let p = json!({
            "resourceType": "Patient",
            "name": [{"given": [null, "B"], "_given": [{"id": "x"}, null]}],
            "_birthDate": {"extension": [{"url": "http://x", "valueCode": "a"}]},
            "link": [{"other": {"reference": "Patient/1"}, "type": "seealso"}]
        });
        assert_eq!(structure(p), []);
        // A mandatory primitive may be present through its extensions only.
        let o = json!({"resourceType": "Observation", "_status": {"extension": [{"url": "http://x", "valueCode": "a"}]}, "code": {"text": "x"}});
        assert_eq!(structure(o), []);
    }

    #[test]
    fn structure_problems() {
        let p = json!({
            "resourceType": "Patient",
            "nickname": "x",
            "_name": {"id": "n"},
            "name": {"family": "A"},
            "birthDate": ["2000"],
            "telecom": [],
            "maritalStatus": {},
            "active": "true",
            "gender": 1,
            "deceasedBoolean": true,
            "deceasedDateTime": "2020",
            "photo": ["x"],
            "link": [{"other": {"reference": "Patient/1"}, "type": null}],
            "contact": [{"name": {"given": "A"}}]
        });
        let found = structure(p);
        let exprs: Vec<&str> = found.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(
            exprs,
            [
                "Patient.nickname",
                "Patient._name",
                "Patient.name",
                "Patient.birthDate",
                "Patient.telecom",
                "Patient.maritalStatus",
                "Patient.active",
                "Patient.gender",
                "Patient.deceasedDateTime",
                "Patient.photo[0]",
                "Patient.link[0].type",
                "Patient.contact[0].name.given",
            ],
            "{found:#?}"
        );
        assert_eq!(found[0].1, "unknown element 'nickname'");
        assert_eq!(
            found[6].1,
            "a boolean must be a JSON boolean, found string \"true\""
        );
        assert_eq!(
            found[8].1,
            "only one of deceasedBoolean and deceasedDateTime is allowed (Patient.deceased[x])"
        );
        // Missing mandatory elements, including in backbones and extensions.
        let o = json!({"resourceType": "Observation", "code": {"text": "x"}, "extension": [{"valueString": "v"}],
                       "component": [{"valueString": "v"}]});
        assert_eq!(
            structure(o),
            [
                (
                    "Observation.extension[0].url".to_owned(),
                    "missing mandatory element 'url'".to_owned()
                ),
                (
                    "Observation.component[0].code".to_owned(),
                    "missing mandatory element 'code'".to_owned()
                ),
                (
                    "Observation.status".to_owned(),
                    "missing mandatory element 'status'".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn structure_of_resource_types() {
        assert_eq!(
            structure(json!({"id": "x"})),
            [("resourceType".to_owned(), "missing resourceType".to_owned())]
        );
        assert_eq!(
            structure(json!({"resourceType": "Patients"})),
            [(
                "resourceType".to_owned(),
                "'Patients' is not a known resource type".to_owned()
            )]
        );
        let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"id": "x"}},
            {"resource": {"resourceType": "Patient", "contained": [{"resourceType": "Basic"}]}}
        ]});
        assert_eq!(
            structure(b),
            [
                (
                    "Bundle.entry[0].resource.resourceType".to_owned(),
                    "missing resourceType".to_owned()
                ),
                (
                    "Bundle.entry[1].resource.contained[0].code".to_owned(),
                    "missing mandatory element 'code'".to_owned()
                ),
            ]
        );
        assert_eq!(structure(json!([1])), []);
        let nested_rt = json!({"resourceType": "Patient", "name": [{"resourceType": "HumanName"}]});
        assert_eq!(structure(nested_rt)[0].0, "Patient.name[0].resourceType");
    }
}
