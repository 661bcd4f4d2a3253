//! References inside a transaction (http.html#trules, bundle.html#references):
//! a reference to another entry's `fullUrl` (`urn:uuid:…`, `urn:oid:…`, or
//! any fullUrl of the Bundle) becomes that entry's `Type/id` once the server
//! has given it one, in `reference` elements, in `Attachment.url` and in the
//! narrative's links; a conditional reference (`Organization?identifier=…`)
//! becomes the one resource its search finds.

use std::collections::HashMap;

use hearth_model::Value;

use crate::error::ApiError;

/// The fullUrls of a Bundle's entries and the `Type/id` each became.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    targets: HashMap<String, String>,
}

impl Placeholders {
    pub(crate) fn insert(&mut self, full_url: &str, resource_type: &str, id: &str) {
        self.targets
            .insert(full_url.to_owned(), format!("{resource_type}/{id}"));
    }

    pub(crate) fn get(&self, full_url: &str) -> Option<&str> {
        self.targets.get(full_url).map(String::as_str)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Why a reference could not be rewritten.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unresolved<E> {
    /// A `urn:uuid:` or `urn:oid:` reference that names no entry of the
    /// Bundle: stored as it is, it would point nowhere.
    Placeholder(String),
    /// A conditional reference whose search failed.
    Search(E),
}

impl From<Unresolved<ApiError>> for ApiError {
    fn from(e: Unresolved<ApiError>) -> Self {
        match e {
            Unresolved::Placeholder(reference) => ApiError::bad_request(format!(
                "the reference {reference} names no entry of this Bundle"
            )),
            Unresolved::Search(e) => e,
        }
    }
}

/// Rewrites the references of `resource`: placeholders through
/// `placeholders`, conditional references through `resolve` (which finds
/// the single match of a search, or fails). Returns how many changed.
pub(crate) fn rewrite<E>(
    resource: &mut Value,
    placeholders: &Placeholders,
    resolve: &mut impl FnMut(&str) -> Result<String, E>,
) -> Result<usize, Unresolved<E>> {
    let mut changed = 0;
    walk(resource, placeholders, resolve, &mut changed, true)?;
    Ok(changed)
}

/// `urn:uuid:…` and `urn:oid:…`: identifiers that only an entry of the
/// Bundle can give meaning to (bundle.html#references).
fn is_placeholder(reference: &str) -> bool {
    reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:")
}

fn walk<E>(
    value: &mut Value,
    placeholders: &Placeholders,
    resolve: &mut impl FnMut(&str) -> Result<String, E>,
    changed: &mut usize,
    top: bool,
) -> Result<(), Unresolved<E>> {
    match value {
        Value::Array(items) => {
            for item in items {
                walk(item, placeholders, resolve, changed, false)?;
            }
        }
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v) {
                    // A contained resource's own id is not a reference.
                    ("id", _) if top => {}
                    ("reference", Value::String(reference)) => {
                        if let Some(target) = placeholders.get(reference) {
                            *reference = target.to_owned();
                            *changed += 1;
                        } else if is_conditional(reference) {
                            *reference = resolve(reference).map_err(Unresolved::Search)?;
                            *changed += 1;
                        } else if is_placeholder(reference) {
                            return Err(Unresolved::Placeholder(reference.clone()));
                        }
                    }
                    // Attachment.url, and every other url naming an entry.
                    ("url", Value::String(url)) => {
                        if let Some(target) = placeholders.get(url) {
                            *url = target.to_owned();
                            *changed += 1;
                        }
                    }
                    ("div", Value::String(div)) if !placeholders.is_empty() => {
                        *changed += rewrite_links(div, placeholders);
                    }
                    (_, v) => walk(v, placeholders, resolve, changed, false)?,
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Type?query`: a reference by search, which only a transaction resolves.
fn is_conditional(reference: &str) -> bool {
    match reference.split_once('?') {
        Some((resource_type, query)) => {
            !query.is_empty() && hearth_model::structure::is_resource_type(resource_type)
        }
        None => false,
    }
}

/// Replaces `href="…"` and `src="…"` values naming an entry in a narrative.
fn rewrite_links(div: &mut String, placeholders: &Placeholders) -> usize {
    let mut changed = 0;
    for attribute in ["href=\"", "src=\""] {
        let mut out = String::with_capacity(div.len());
        let mut rest = div.as_str();
        while let Some(at) = rest.find(attribute) {
            let start = at + attribute.len();
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let end = rest.find('"').unwrap_or(rest.len());
            match placeholders.get(&rest[..end]) {
                Some(target) => {
                    out.push_str(target);
                    changed += 1;
                }
                None => out.push_str(&rest[..end]),
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        *div = out;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_become_type_and_id_wherever_they_are_named() {
        let mut placeholders = Placeholders::default();
        placeholders.insert("urn:uuid:p1", "Patient", "abc");
        let mut resource = json!({
            "resourceType": "Observation",
            "subject": {"reference": "urn:uuid:p1"},
            "performer": [{"reference": "Organization?identifier=http://x|1"}],
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:p1\">p</a><img src=\"urn:uuid:other\"/></div>"},
            "valueAttachment": {"url": "urn:uuid:p1"},
            "focus": [{"reference": "Patient/kept"}]
        });
        let mut searched = Vec::new();
        let changed = rewrite(&mut resource, &placeholders, &mut |q: &str| {
            searched.push(q.to_owned());
            Ok::<_, ()>("Organization/o1".to_owned())
        })
        .unwrap();
        assert_eq!(changed, 4);
        assert_eq!(resource["subject"]["reference"], "Patient/abc");
        assert_eq!(resource["performer"][0]["reference"], "Organization/o1");
        assert_eq!(resource["valueAttachment"]["url"], "Patient/abc");
        assert_eq!(resource["focus"][0]["reference"], "Patient/kept");
        let div = resource["text"]["div"].as_str().unwrap();
        assert!(div.contains("href=\"Patient/abc\""), "{div}");
        assert!(div.contains("src=\"urn:uuid:other\""), "{div}");
        assert_eq!(searched, ["Organization?identifier=http://x|1"]);
    }

    #[test]
    fn a_failed_conditional_reference_fails_the_rewrite() {
        let mut resource =
            json!({"resourceType": "Encounter", "subject": {"reference": "Patient?identifier=x"}});
        let result = rewrite(&mut resource, &Placeholders::default(), &mut |_: &str| {
            Err::<String, _>("no match")
        });
        assert_eq!(result, Err(Unresolved::Search("no match")));
    }

    #[test]
    fn a_placeholder_naming_no_entry_fails_the_rewrite() {
        let mut placeholders = Placeholders::default();
        placeholders.insert("urn:uuid:p1", "Patient", "abc");
        for reference in [
            "urn:uuid:0b6f1d2e-0000-4000-8000-000000000009",
            "urn:oid:1.2.3",
        ] {
            let mut resource = json!({"resourceType": "Encounter", "subject": {"reference": "urn:uuid:p1"}, "partOf": {"reference": reference}});
            let result = rewrite(&mut resource, &placeholders, &mut |_: &str| {
                Ok::<_, ()>(String::new())
            });
            assert_eq!(result, Err(Unresolved::Placeholder(reference.to_owned())));
        }
        // Other absolute references are the client's to make.
        let mut resource = json!({"resourceType": "Encounter", "subject": {"reference": "http://other.example/Patient/1"}});
        assert_eq!(
            rewrite(&mut resource, &placeholders, &mut |_: &str| Ok::<_, ()>(
                String::new()
            )),
            Ok(0)
        );
    }
}
