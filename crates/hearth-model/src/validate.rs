//! Checks of a FHIR JSON resource against the element table in
//! [`crate::structure`]:
//!
//! - [`check_primitives`] validates every primitive value against its
//!   element's type. It skips what it does not recognise: rejecting unknown
//!   properties is the strict parser's job.
//! - [`check_structure`] locates what the strict parser rejects (unknown
//!   elements, array/single mismatches, wrong JSON kinds, missing mandatory
//!   elements), so its errors can name the offending element.

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

/// Checks every primitive value in `resource` (including contained
/// resources, Bundle entries and Parameters resources, each against its own
/// resourceType). Returns no issues for a value that is not a resource of a
/// known type.
pub fn check_primitives(resource: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(obj) = resource.as_object() {
        walk_resource(obj, "", &mut issues);
    }
    issues
}

/// `expr` is the location of the resource inside its container, or empty for
/// the root, where the resource type starts the expression instead.
fn walk_resource(obj: &Map<String, Value>, expr: &str, issues: &mut Vec<Issue>) {
    let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
        return;
    };
    if structure::is_resource_type(rt) {
        let expr = if expr.is_empty() { rt } else { expr };
        walk_object(obj, rt, expr, issues);
    }
}

/// Walks the properties of an object whose definition is `ctx` (a type name
/// or backbone path).
fn walk_object(obj: &Map<String, Value>, ctx: &str, expr: &str, issues: &mut Vec<Issue>) {
    for (key, value) in obj {
        // `_name` holds the id/extensions of primitive `name`: an Element
        // (or an array of them, null where there are none).
        let (name, element_part) = match key.strip_prefix('_') {
            Some(name) => (name, true),
            None => (key.as_str(), false),
        };
        let Some((info, chosen)) = structure::child(ctx, name) else {
            continue; // unknown property (or resourceType): not ours to report
        };
        let Some(child_ctx) = info.child_context(chosen) else {
            continue;
        };
        let path = format!("{expr}.{name}");
        let primitive = structure::is_primitive_type(child_ctx);

        for (i, item) in items(value) {
            let item_expr = match i {
                Some(i) => format!("{path}[{i}]"),
                None => path.clone(),
            };
            if element_part {
                // Validated against the primitive's own definition, whose
                // children are id and extension.
                if let (true, Some(o)) = (primitive, item.as_object()) {
                    walk_object(o, child_ctx, &item_expr, issues);
                }
            } else if primitive {
                if item.is_null() && i.is_some() && has_element_part(obj, name, i) {
                    continue; // value absent, only extensions present
                }
                if let Err(message) = primitives::check(child_ctx, item) {
                    issue(issues, item_expr, message);
                }
            } else if let Some(o) = item.as_object() {
                if child_ctx == "Resource" {
                    walk_resource(o, &item_expr, issues);
                } else {
                    walk_object(o, child_ctx, &item_expr, issues);
                }
            }
        }
    }
}

/// Finds structural problems in a resource (nested resources included), in
/// document order: unknown or misplaced `resourceType`, unknown properties,
/// `_name` on a non-primitive, an array where one value is allowed or the
/// reverse, empty arrays and objects, values of the wrong JSON kind, several
/// types of one choice element, and missing mandatory elements. Primitive
/// values themselves are [`check_primitives`]'s job.
pub fn check_structure(resource: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(obj) = resource.as_object() {
        structure_resource(obj, "", &mut issues);
    }
    issues
}

fn issue(issues: &mut Vec<Issue>, expression: String, message: impl Into<String>) {
    issues.push(Issue {
        expression,
        message: message.into(),
    });
}

/// `expr` is where the resource sits in its container, empty for the root.
fn structure_resource(obj: &Map<String, Value>, expr: &str, issues: &mut Vec<Issue>) {
    let at = |name: &str| match expr {
        "" => name.to_owned(),
        _ => format!("{expr}.{name}"),
    };
    let rt = match obj.get("resourceType") {
        Some(Value::String(rt)) if structure::is_resource_type(rt) => rt,
        Some(Value::String(rt)) => {
            let shown: String = rt.chars().take(100).collect();
            return issue(
                issues,
                at("resourceType"),
                format!("'{shown}' is not a known resource type"),
            );
        }
        Some(_) => return issue(issues, at("resourceType"), "resourceType must be a string"),
        None => return issue(issues, at("resourceType"), "missing resourceType"),
    };
    let expr = if expr.is_empty() { rt.as_str() } else { expr };
    structure_object(obj, rt, expr, true, issues);
}

fn structure_object(
    obj: &Map<String, Value>,
    ctx: &str,
    expr: &str,
    is_resource: bool,
    issues: &mut Vec<Issue>,
) {
    if obj.is_empty() {
        issue(issues, expr.to_owned(), "empty objects are not allowed");
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
        let Some((info, chosen)) = structure::child(ctx, name) else {
            issue(
                issues,
                format!("{expr}.{key}"),
                format!("unknown element '{key}'"),
            );
            continue;
        };
        let Some(child_ctx) = info.child_context(chosen) else {
            continue;
        };
        let path = format!("{expr}.{name}");
        let primitive = structure::is_primitive_type(child_ctx);
        if element_part && !primitive {
            issue(
                issues,
                format!("{expr}.{key}"),
                format!("unknown element '{key}' ('{name}' is not a primitive)"),
            );
            continue;
        }
        if info.choice {
            match choices.iter().find(|(c, _)| std::ptr::eq(*c, info)) {
                Some((_, first)) if *first != name => issue(
                    issues,
                    path.clone(),
                    format!("only one of {first} and {name} is allowed ({})", info.path),
                ),
                Some(_) => {}
                None => choices.push((info, name)),
            }
        }
        match (value, info.many) {
            (Value::Array(a), true) if a.is_empty() => {
                issue(issues, path, "empty arrays are not allowed");
                continue;
            }
            (Value::Array(_), false) => {
                issue(
                    issues,
                    path,
                    format!("'{key}' has at most one value and must not be an array"),
                );
                continue;
            }
            (_, true) if !value.is_array() => {
                issue(
                    issues,
                    path,
                    format!("'{key}' can repeat and must be an array"),
                );
                continue;
            }
            _ => {}
        }
        for (i, item) in items(value) {
            let item_expr = match i {
                Some(i) => format!("{path}[{i}]"),
                None => path.clone(),
            };
            match item {
                // In arrays, null pairs a primitive with its `_name` entry.
                Value::Null if i.is_some() && primitive => {}
                Value::Null => issue(issues, item_expr, "null is not allowed here"),
                Value::Object(o) if element_part => {
                    structure_object(o, child_ctx, &item_expr, false, issues)
                }
                _ if element_part => issue(issues, item_expr, format!("'{key}' must hold objects")),
                // Only the JSON kind is structure; check_primitives reports
                // malformed values of the right kind.
                _ if primitive => {
                    if !kind_matches(child_ctx, item) {
                        let message = primitives::check(child_ctx, item).err();
                        issue(issues, item_expr, message.unwrap_or_default());
                    }
                }
                Value::Object(o) if child_ctx == "Resource" => {
                    structure_resource(o, &item_expr, issues)
                }
                Value::Object(o) => structure_object(o, child_ctx, &item_expr, false, issues),
                _ => issue(
                    issues,
                    item_expr,
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
                issues,
                format!("{expr}.{name}"),
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

/// The items of a property with their array index (`None` for a single value).
fn items(value: &Value) -> Vec<(Option<usize>, &Value)> {
    match value {
        Value::Array(a) => a.iter().enumerate().map(|(i, v)| (Some(i), v)).collect(),
        v => vec![(None, v)],
    }
}

/// In a primitive array, `null` marks an entry that has only extensions,
/// which the `_name` array then holds at the same index.
fn has_element_part(obj: &Map<String, Value>, name: &str, i: Option<usize>) -> bool {
    let key = format!("_{name}");
    match (obj.get(&key), i) {
        (Some(Value::Array(a)), Some(i)) => a.get(i).is_some_and(Value::is_object),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fhir/r4/examples"
    );

    /// The official R4 examples as (file name, resource), sorted; empty (with
    /// a note) where the directory is not available.
    pub(crate) fn official_examples() -> Vec<(String, Value)> {
        let Ok(dir) = std::fs::read_dir(EXAMPLES) else {
            eprintln!("{EXAMPLES} not found: skipping the official examples");
            return Vec::new();
        };
        let mut files: Vec<_> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
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
