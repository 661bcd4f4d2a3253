//! `_summary` and `_elements`: returning a subset of a resource
//! (https://hl7.org/fhir/R4/search.html#summary and #elements).
//!
//! Both mark a resource they removed something from with the `SUBSETTED` tag,
//! so that the incomplete copy is not mistaken for (and written back over)
//! the full resource.

use serde_json::{json, Map, Value};

use crate::structure::{self, ElementInfo};

const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
const SUBSETTED_CODE: &str = "SUBSETTED";

/// Values of `_summary` that shape a resource (`count` only affects search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryMode {
    /// Only elements marked isSummary, recursively.
    True,
    /// `text`, `id`, `meta` and the top-level mandatory elements.
    Text,
    /// Everything but `text`.
    Data,
    /// The whole resource.
    False,
}

impl SummaryMode {
    /// Parses a `_summary` value; `None` for `count` and invalid values.
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "true" => Some(Self::True),
            "text" => Some(Self::Text),
            "data" => Some(Self::Data),
            "false" => Some(Self::False),
            _ => None,
        }
    }
}

/// Reduces `resource` in place as `_summary=mode` asks.
///
/// `True` keeps the elements flagged isSummary in the base definitions,
/// descending into complex values with their own type's flags (so e.g.
/// `Attachment.data` and extensions on data types go). Extensions that are
/// kept (`modifierExtension` of backbone elements) are kept whole, and
/// resources inside the resource (`Bundle.entry.resource`) are summarised by
/// their own type. `resourceType`, `id` and `meta` always stay.
pub fn summary(resource: &mut Value, mode: SummaryMode) {
    let Some((obj, rt)) = as_resource(resource) else {
        return;
    };
    let removed = match mode {
        SummaryMode::False => false,
        SummaryMode::Data => {
            // Only `text` goes; anything else (even unknown) is left as is.
            let before = obj.len();
            obj.retain(|key, _| key != "text");
            obj.len() != before
        }
        SummaryMode::Text => retain_top(obj, &rt, |name, info| {
            matches!(name, "text" | "id" | "meta") || info.min >= 1
        }),
        SummaryMode::True => keep_summary(obj, &rt),
    };
    if removed {
        mark_subsetted(obj);
    }
}

/// Keeps only the named top-level elements, as `_elements` asks.
///
/// Besides the requested elements, `resourceType`, `id`, `meta` and the
/// mandatory (min >= 1) elements stay: R4 says servers SHOULD always return
/// mandatory elements. A name may be a choice element's base name (`value`,
/// `value[x]`) or a concrete JSON name (`valueQuantity`), and may be prefixed
/// with the resource type (`Patient.name`). Nested paths (`name.family`)
/// select the whole top-level element, which the spec permits ("servers are
/// not obliged to return just the requested elements").
pub fn elements(resource: &mut Value, names: &[&str]) {
    let Some((obj, rt)) = as_resource(resource) else {
        return;
    };
    let wanted: Vec<&str> = names
        .iter()
        .map(|n| {
            let n = n.trim();
            let n = n
                .strip_prefix(rt.as_str())
                .and_then(|r| r.strip_prefix('.'))
                .unwrap_or(n);
            let n = n.split('.').next().unwrap_or(n);
            n.strip_suffix("[x]").unwrap_or(n)
        })
        .collect();
    let removed = retain_top(obj, &rt, |name, info| {
        matches!(name, "id" | "meta")
            || info.min >= 1
            || wanted.contains(&name)
            || wanted.contains(&info.name())
    });
    if removed {
        mark_subsetted(obj);
    }
}

/// The object and resource type of a resource of a known type.
fn as_resource(resource: &mut Value) -> Option<(&mut Map<String, Value>, String)> {
    let obj = resource.as_object_mut()?;
    let rt = obj.get("resourceType")?.as_str()?.to_owned();
    structure::is_resource_type(&rt).then_some((obj, rt))
}

/// Keeps `resourceType` and the top-level properties for which `keep(json
/// name, element)` holds; a primitive's `_name` goes with `name`. Unknown
/// properties go. Returns whether anything was removed.
fn retain_top(
    obj: &mut Map<String, Value>,
    rt: &str,
    keep: impl Fn(&str, &ElementInfo) -> bool,
) -> bool {
    let before = obj.len();
    obj.retain(|key, _| {
        let name = key.strip_prefix('_').unwrap_or(key);
        key == "resourceType"
            || structure::child(rt, name).is_some_and(|(info, _)| keep(name, info))
    });
    obj.len() != before
}

/// `_summary=true` on an object whose definition is `ctx`. Returns whether
/// anything was removed.
fn keep_summary(obj: &mut Map<String, Value>, ctx: &str) -> bool {
    let mut removed = false;
    obj.retain(|key, value| {
        if key == "resourceType" {
            return true;
        }
        // `_name` holds a primitive's id and extensions, which are not
        // summary elements of the primitive types; unknown properties go too.
        let found = (!key.starts_with('_'))
            .then(|| structure::child(ctx, key))
            .flatten();
        let keep = match found {
            Some((info, chosen)) if info.summary => {
                removed |= summarise_value(value, info, chosen);
                !is_empty(value)
            }
            _ => false,
        };
        removed |= !keep;
        keep
    });
    if removed {
        // With `_name` gone, nulls that stood for extension-only entries in
        // primitive arrays mean nothing (and are invalid on their own).
        obj.retain(|_, v| match v {
            Value::Array(a) => {
                a.retain(|x| !x.is_null());
                !a.is_empty()
            }
            _ => true,
        });
    }
    removed
}

/// Summarises the value(s) of a kept summary element.
fn summarise_value(value: &mut Value, info: &ElementInfo, chosen: Option<&str>) -> bool {
    let Some(ctx) = info.child_context(chosen) else {
        return false;
    };
    // Primitives are atomic; an extension without its url and value (which
    // are not flagged summary) would be meaningless, so it stays whole.
    if ctx == "Extension" || structure::is_primitive_type(ctx) {
        return false;
    }
    let mut removed = false;
    let mut one = |v: &mut Value| {
        let Some(o) = v.as_object_mut() else { return };
        if ctx != "Resource" {
            removed |= keep_summary(o, ctx);
        } else if let Some(rt) = o.get("resourceType").and_then(Value::as_str) {
            if structure::is_resource_type(rt) {
                let rt = rt.to_owned();
                removed |= keep_summary(o, &rt);
            }
        }
    };
    match value {
        Value::Array(items) => {
            items.iter_mut().for_each(&mut one);
            // Complex values left empty are dropped (no `_name` pairing here).
            items.retain(|v| !is_empty(v));
        }
        v => one(v),
    }
    removed
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Adds the SUBSETTED tag to `meta.tag` unless it is already there.
fn mark_subsetted(obj: &mut Map<String, Value>) {
    if !obj.get("meta").is_some_and(Value::is_object) {
        insert_meta(obj);
    }
    let meta = obj["meta"].as_object_mut().expect("meta is an object");
    let tags = meta.entry("tag").or_insert_with(|| json!([]));
    if !tags.is_array() {
        *tags = json!([]);
    }
    let tags = tags.as_array_mut().expect("tag is an array");
    let present = tags
        .iter()
        .any(|t| t["system"] == SUBSETTED_SYSTEM && t["code"] == SUBSETTED_CODE);
    if !present {
        tags.push(json!({"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE}));
    }
}

/// Inserts an empty `meta` where it conventionally goes: after `id` (or
/// `resourceType`), keeping the order of the other properties.
fn insert_meta(obj: &mut Map<String, Value>) {
    let anchor = if obj.contains_key("id") {
        "id"
    } else {
        "resourceType"
    };
    let old = std::mem::take(obj);
    for (k, v) in old {
        let at_anchor = k == anchor;
        obj.insert(k, v);
        if at_anchor {
            obj.insert("meta".to_owned(), json!({}));
        }
    }
    // Cannot happen for a resource (it has resourceType), but stay total.
    obj.entry("meta").or_insert_with(|| json!({}));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subsetted() -> Value {
        json!({"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE})
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"versionId": "2"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "contained": [{"resourceType": "Organization", "id": "o"}],
            "extension": [{"url": "http://x", "valueString": "top"}],
            "identifier": [{"system": "urn:s", "value": "1", "extension": [{"url": "http://y", "valueCode": "c"}]}],
            "active": true,
            "name": [{"family": "Chalmers", "given": ["Peter", null], "_given": [null, {"extension": [{"url": "http://z", "valueCode": "a"}]}]}],
            "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "http://b", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
            "maritalStatus": {"text": "married"},
            "photo": [{"contentType": "image/png", "data": "aGk="}],
            "contact": [{"relationship": [{"text": "x"}], "name": {"family": "M"}}],
            "link": [{"other": {"reference": "Patient/2"}, "type": "seealso", "modifierExtension": [{"url": "http://m", "valueBoolean": true}]}],
            "unknown": 1
        })
    }

    #[test]
    fn summary_true() {
        let mut p = patient();
        summary(&mut p, SummaryMode::True);
        assert_eq!(
            p,
            json!({
                "resourceType": "Patient",
                "id": "p1",
                "meta": {"versionId": "2", "tag": [subsetted()]},
                "identifier": [{"system": "urn:s", "value": "1"}],
                "active": true,
                "name": [{"family": "Chalmers", "given": ["Peter"]}],
                "birthDate": "1974-12-25",
                "link": [{"other": {"reference": "Patient/2"}, "type": "seealso", "modifierExtension": [{"url": "http://m", "valueBoolean": true}]}]
            })
        );
        // Key order is preserved, with meta where it was.
        let keys: Vec<_> = p.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[..3], ["resourceType", "id", "meta"]);
    }

    #[test]
    fn summary_true_drops_non_summary_data_type_parts() {
        let mut d = json!({
            "resourceType": "DocumentReference",
            "status": "current",
            "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}, {"attachment": {"data": "aGk="}}]
        });
        summary(&mut d, SummaryMode::True);
        assert_eq!(
            d,
            json!({
                "resourceType": "DocumentReference",
                "meta": {"tag": [subsetted()]},
                "status": "current",
                "content": [{"attachment": {"contentType": "text/plain"}}]
            })
        );
    }

    #[test]
    fn summary_true_recurses_into_bundle_resources() {
        let mut b = json!({
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": "urn:uuid:1", "resource": patient()}]
        });
        summary(&mut b, SummaryMode::True);
        let inner = &b["entry"][0]["resource"];
        assert_eq!(inner["resourceType"], "Patient");
        assert!(inner.get("text").is_none() && inner.get("contact").is_none());
        assert_eq!(inner["name"][0]["family"], "Chalmers");
        assert_eq!(b["meta"]["tag"][0], subsetted());
    }

    #[test]
    fn summary_text() {
        let mut o = json!({
            "resourceType": "Observation",
            "id": "o1",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "status": "final",
            "_status": {"extension": [{"url": "http://s", "valueString": "s"}]},
            "code": {"text": "glucose"},
            "subject": {"reference": "Patient/1"},
            "valueQuantity": {"value": 1}
        });
        summary(&mut o, SummaryMode::Text);
        assert_eq!(
            o,
            json!({
                "resourceType": "Observation",
                "id": "o1",
                "meta": {"tag": [subsetted()]},
                "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
                "status": "final",
                "_status": {"extension": [{"url": "http://s", "valueString": "s"}]},
                "code": {"text": "glucose"}
            })
        );
    }

    #[test]
    fn summary_data_and_false() {
        let mut p = patient();
        summary(&mut p, SummaryMode::Data);
        let mut expected = patient();
        expected.as_object_mut().unwrap().retain(|k, _| k != "text");
        expected["meta"]["tag"] = json!([subsetted()]);
        assert_eq!(p, expected);

        // Nothing removed: no tag.
        let mut plain = json!({"resourceType": "Basic", "code": {"text": "x"}});
        summary(&mut plain, SummaryMode::Data);
        assert_eq!(
            plain,
            json!({"resourceType": "Basic", "code": {"text": "x"}})
        );
        let mut p = patient();
        summary(&mut p, SummaryMode::False);
        assert_eq!(p, patient());
    }

    #[test]
    fn tag_added_once_and_other_tags_kept() {
        let other = json!({"system": "http://t", "code": "x"});
        let mut p = json!({"resourceType": "Patient", "meta": {"tag": [other, subsetted()]}, "text": {"status": "empty", "div": "<div/>"}});
        summary(&mut p, SummaryMode::Data);
        assert_eq!(p["meta"]["tag"], json!([other, subsetted()]));
    }

    #[test]
    fn elements_keeps_requested_mandatory_and_id_meta() {
        let mut o = json!({
            "resourceType": "Observation",
            "id": "o1",
            "meta": {"versionId": "1"},
            "text": {"status": "generated", "div": "<div>x</div>"},
            "status": "final",
            "category": [{"text": "lab"}],
            "code": {"text": "glucose"},
            "subject": {"reference": "Patient/1"},
            "effectiveDateTime": "2020-01-01",
            "_effectiveDateTime": {"id": "e"},
            "valueQuantity": {"value": 1},
            "note": [{"text": "n"}]
        });
        elements(
            &mut o,
            &["subject", "value", "Observation.effective[x]", "nope"],
        );
        assert_eq!(
            o,
            json!({
                "resourceType": "Observation",
                "id": "o1",
                "meta": {"versionId": "1", "tag": [subsetted()]},
                "status": "final",
                "code": {"text": "glucose"},
                "subject": {"reference": "Patient/1"},
                "effectiveDateTime": "2020-01-01",
                "_effectiveDateTime": {"id": "e"},
                "valueQuantity": {"value": 1}
            })
        );
    }

    #[test]
    fn elements_by_json_name_and_nested_path() {
        let mut o = json!({"resourceType": "Patient", "name": [{"family": "A", "given": ["B"]}], "gender": "male", "deceasedBoolean": false});
        elements(&mut o, &["name.family", "deceasedBoolean"]);
        assert_eq!(
            o,
            json!({"resourceType": "Patient", "meta": {"tag": [subsetted()]}, "name": [{"family": "A", "given": ["B"]}], "deceasedBoolean": false})
        );
        // Everything requested: untouched, no tag.
        let mut p = json!({"resourceType": "Patient", "id": "1", "gender": "male"});
        elements(&mut p, &["gender"]);
        assert_eq!(
            p,
            json!({"resourceType": "Patient", "id": "1", "gender": "male"})
        );
    }

    /// Every mode leaves the official examples well-formed (summary=true may
    /// drop non-summary mandatory elements: that is what SUBSETTED flags),
    /// tags what it changed, and is idempotent.
    #[test]
    fn subsets_of_official_examples_stay_well_formed() {
        use crate::validate::{check_primitives, check_structure};
        type Subset = fn(&mut Value);
        let modes: [(&str, Subset); 5] = [
            ("true", |r| summary(r, SummaryMode::True)),
            ("text", |r| summary(r, SummaryMode::Text)),
            ("data", |r| summary(r, SummaryMode::Data)),
            ("false", |r| summary(r, SummaryMode::False)),
            ("_elements", |r| elements(r, &["id", "status"])),
        ];
        for (name, resource) in crate::validate::tests::official_examples() {
            if !check_structure(&resource).is_empty() {
                continue; // a known defective example
            }
            for (mode, subset) in modes {
                let mut out = resource.clone();
                subset(&mut out);
                let mut again = out.clone();
                subset(&mut again);
                assert_eq!(out, again, "{name} {mode}: not idempotent");
                if out != resource {
                    assert!(out["meta"]["tag"]
                        .as_array()
                        .unwrap()
                        .contains(&subsetted()));
                }
                assert_eq!(check_primitives(&out), [], "{name} {mode}");
                let problems: Vec<_> = check_structure(&out)
                    .into_iter()
                    .filter(|i| mode != "true" || !i.message.starts_with("missing mandatory"))
                    .collect();
                assert_eq!(problems, [], "{name} {mode}");
            }
        }
    }

    #[test]
    fn non_resources_are_left_alone() {
        let mut v = json!({"resourceType": "HumanName", "text": "x"});
        summary(&mut v, SummaryMode::Data);
        elements(&mut v, &["family"]);
        assert_eq!(v, json!({"resourceType": "HumanName", "text": "x"}));
        assert_eq!(SummaryMode::from_param("text"), Some(SummaryMode::Text));
        assert_eq!(SummaryMode::from_param("count"), None);
    }
}
