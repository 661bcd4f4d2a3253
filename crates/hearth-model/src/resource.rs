//! Small accessors on a resource held as FHIR JSON.

use serde_json::{Map, Value};

pub fn resource_type(resource: &Value) -> Option<&str> {
    resource.get("resourceType")?.as_str()
}

pub fn id(resource: &Value) -> Option<&str> {
    resource.get("id")?.as_str()
}

pub fn set_id(resource: &mut Value, id: &str) {
    if let Some(obj) = resource.as_object_mut() {
        insert_after_resource_type(obj, "id", Value::String(id.to_owned()));
    }
}

/// Sets the server-owned `meta.versionId` and `meta.lastUpdated`, keeping
/// whatever else the client put in `meta` (profiles, tags, security labels).
pub fn set_version_meta(resource: &mut Value, version_id: &str, last_updated: &str) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    let mut meta = match obj.remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.remove("versionId");
    meta.remove("lastUpdated");
    // Keep the spec's element order: versionId and lastUpdated come first.
    let mut ordered = Map::new();
    ordered.insert("versionId".into(), Value::String(version_id.to_owned()));
    ordered.insert("lastUpdated".into(), Value::String(last_updated.to_owned()));
    ordered.extend(meta);
    let anchor = if obj.contains_key("id") {
        "id"
    } else {
        "resourceType"
    };
    let mut rebuilt = Map::new();
    let mut pending = Some(Value::Object(ordered));
    for (k, v) in std::mem::take(obj) {
        let at_anchor = k == anchor;
        rebuilt.insert(k, v);
        if at_anchor {
            if let Some(m) = pending.take() {
                rebuilt.insert("meta".into(), m);
            }
        }
    }
    if let Some(m) = pending {
        rebuilt.insert("meta".into(), m);
    }
    *obj = rebuilt;
}

/// Inserts `key` right after `resourceType` (JSON order is not significant in
/// FHIR, but keeping the spec's order makes responses easier to read).
fn insert_after_resource_type(obj: &mut Map<String, Value>, key: &str, value: Value) {
    obj.remove(key);
    let mut rebuilt = Map::new();
    let mut pending = Some(value);
    for (k, v) in std::mem::take(obj) {
        let anchor = k == "resourceType";
        rebuilt.insert(k, v);
        if anchor {
            if let Some(p) = pending.take() {
                rebuilt.insert(key.to_owned(), p);
            }
        }
    }
    if let Some(p) = pending {
        rebuilt.insert(key.to_owned(), p);
    }
    *obj = rebuilt;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_meta_goes_after_id_and_keeps_tags() {
        let mut r = json!({"resourceType": "Patient", "id": "a", "meta": {"tag": [{"code": "x"}], "versionId": "9"}, "active": true});
        set_version_meta(&mut r, "2", "2020-01-01T00:00:00.000Z");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"2","lastUpdated":"2020-01-01T00:00:00.000Z","tag":[{"code":"x"}]},"active":true}"#
        );
    }

    #[test]
    fn set_id_puts_id_after_resource_type() {
        let mut r = json!({"resourceType": "Patient", "active": true});
        set_id(&mut r, "x1");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resourceType":"Patient","id":"x1","active":true}"#
        );
        set_version_meta(&mut r, "1", "t");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resourceType":"Patient","id":"x1","meta":{"versionId":"1","lastUpdated":"t"},"active":true}"#
        );
    }
}
