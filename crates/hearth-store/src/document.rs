//! A resource made ready to store: its search index rows and full text are
//! computed before the write transaction, outside the one writer thread, so
//! that thread only inserts rows.

use std::sync::Arc;

use hearth_model::search_params::CustomParams;
use hearth_model::{index, resource};
use serde_json::Value;

use crate::full_text::FullText;
use crate::index_rows::IndexRows;
use crate::{Result, StoreError};

/// A resource to write, with what the index and the full text need of it.
/// Its id and `meta.versionId` / `meta.lastUpdated` are set by the store
/// when it is written; nothing computed here depends on them.
#[derive(Debug, Clone)]
pub struct Document {
    pub(crate) resource_type: String,
    pub(crate) body: BodyTemplate,
    pub(crate) index: IndexRows,
    pub(crate) text: FullText,
    /// The patients it belongs to (a Patient also to itself, added when
    /// its id is known): see `hearth_model::compartments::patients_of`.
    pub(crate) patients: Vec<String>,
    /// The custom search parameters the index rows were computed with; a
    /// write under other ones computes them again.
    pub(crate) params: Arc<CustomParams>,
}

impl Document {
    /// Computes the index rows and full text of `resource` under `params`.
    /// The resource is dropped here, by the caller's thread.
    pub fn new(resource: Value, params: Arc<CustomParams>) -> Result<Document> {
        let resource_type = resource::resource_type(&resource)
            .map(str::to_owned)
            .ok_or_else(|| {
                StoreError::InvalidResource("the resource has no resourceType".into())
            })?;
        if resource_type == "SearchParameter" {
            crate::custom::check(&resource).map_err(StoreError::InvalidResource)?;
        }
        let entries = index::extract(&resource, &params);
        let patients = hearth_model::compartments::patients_of(&resource_type, None, &entries);
        let index = IndexRows::of(&resource_type, entries);
        let text = FullText::of(&resource);
        let body = BodyTemplate::of(&resource);
        Ok(Document {
            resource_type,
            body,
            index,
            text,
            patients,
            params,
        })
    }

    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The same document under other custom search parameters (rare: a
    /// SearchParameter was written since it was made).
    pub(crate) fn under(self, params: &Arc<CustomParams>) -> Result<Document> {
        if self.params.generation() == params.generation() {
            return Ok(self);
        }
        let body = self.body.render("id", 1, "1970-01-01T00:00:00.000Z");
        let resource = serde_json::from_slice(&body)
            .map_err(|e| StoreError::Database(format!("re-reading a document: {e}")))?;
        Document::new(resource, params.clone())
    }
}

/// The stored JSON of a resource but for what the store sets when it
/// writes it, so that writing a version only splices in its id, version id
/// and time: `{"resourceType":…,"id":…,"meta":{"versionId":…,"lastUpdated":…`
/// then the rest of `meta`, `}`, then the rest of the resource, `}`.
#[derive(Debug, Clone)]
pub(crate) struct BodyTemplate {
    /// `{"resourceType":"Patient"`
    head: Vec<u8>,
    /// The other elements of `meta`, each preceded by a comma.
    meta_rest: Vec<u8>,
    /// The other elements of the resource, each preceded by a comma.
    rest: Vec<u8>,
}

impl BodyTemplate {
    fn of(resource: &Value) -> BodyTemplate {
        let mut head = b"{\"resourceType\":".to_vec();
        let mut meta_rest = Vec::new();
        let mut rest = Vec::new();
        if let Some(map) = resource.as_object() {
            write_json(
                &mut head,
                &map.get("resourceType").cloned().unwrap_or(Value::Null),
            );
            for (key, value) in map {
                match key.as_str() {
                    "resourceType" | "id" => {}
                    "meta" => {
                        for (k, v) in value.as_object().into_iter().flatten() {
                            if k != "versionId" && k != "lastUpdated" {
                                write_member(&mut meta_rest, k, v);
                            }
                        }
                    }
                    _ => write_member(&mut rest, key, value),
                }
            }
        }
        BodyTemplate {
            head,
            meta_rest,
            rest,
        }
    }

    /// The body of the version `version_id` of resource `id`, written at
    /// `last_updated` (a FHIR instant).
    pub(crate) fn render(&self, id: &str, version_id: i64, last_updated: &str) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.head.len() + self.meta_rest.len() + self.rest.len() + 128);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b",\"id\":");
        write_json(&mut out, &Value::String(id.to_owned()));
        out.extend_from_slice(b",\"meta\":{\"versionId\":\"");
        out.extend_from_slice(version_id.to_string().as_bytes());
        out.extend_from_slice(b"\",\"lastUpdated\":");
        write_json(&mut out, &Value::String(last_updated.to_owned()));
        out.extend_from_slice(&self.meta_rest);
        out.push(b'}');
        out.extend_from_slice(&self.rest);
        out.push(b'}');
        out
    }
}

fn write_member(out: &mut Vec<u8>, key: &str, value: &Value) {
    out.push(b',');
    write_json(out, &Value::String(key.to_owned()));
    out.push(b':');
    write_json(out, value);
}

fn write_json(out: &mut Vec<u8>, value: &Value) {
    // Writing a Value into memory cannot fail: its keys are strings.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_body_gets_id_and_version_meta_in_the_spec_order() {
        let resource = json!({"resourceType": "Patient", "active": true, "meta": {"tag": [{"code": "x"}], "versionId": "9"}, "id": "old"});
        let body = BodyTemplate::of(&resource).render("a", 2, "2020-01-01T00:00:00.000Z");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"2","lastUpdated":"2020-01-01T00:00:00.000Z","tag":[{"code":"x"}]},"active":true}"#
        );
        let bare = BodyTemplate::of(&json!({"resourceType": "Basic"})).render("b", 1, "t");
        assert_eq!(
            String::from_utf8(bare).unwrap(),
            r#"{"resourceType":"Basic","id":"b","meta":{"versionId":"1","lastUpdated":"t"}}"#
        );
    }
}
