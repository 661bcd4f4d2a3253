//! Plain-text work on FHIR XML that fhirbolt's XML reader cannot do for us:
//! finding XHTML narratives (so they are kept byte for byte: fhirbolt trims
//! the text next to tags, which turns "Ann <b>Smith</b>" into "Ann<b>Smith</b>")
//! and locating the first unknown element of a rejected document.

use serde_json::Value;

use crate::structure;

const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// One tag of an XML document.
struct Tag<'a> {
    /// The whole tag, `<…>`.
    text: &'a str,
    start: usize,
    end: usize,
}

impl Tag<'_> {
    fn is_close(&self) -> bool {
        self.text.starts_with("</")
    }

    fn is_empty_element(&self) -> bool {
        self.text.ends_with("/>")
    }

    /// Declarations, processing instructions and comments.
    fn is_meta(&self) -> bool {
        self.text.starts_with("<?") || self.text.starts_with("<!")
    }

    fn name(&self) -> &str {
        let inner = self.text.trim_start_matches("</").trim_start_matches('<');
        let end = inner
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(inner.len());
        let name = &inner[..end];
        name.rsplit(':').next().unwrap_or(name)
    }

    /// Whether this starts an XHTML narrative `div`.
    fn opens_narrative(&self) -> bool {
        !self.is_close()
            && self.name() == "div"
            && (self.text.contains(&format!("\"{XHTML_NS}\""))
                || self.text.contains(&format!("'{XHTML_NS}'")))
    }
}

/// The next tag at or after `pos`, skipping comments' and CDATA's insides.
fn next_tag(xml: &str, pos: usize) -> Option<Tag<'_>> {
    let start = pos + xml.get(pos..)?.find('<')?;
    let rest = &xml[start..];
    let len = if rest.starts_with("<!--") {
        rest.find("-->")? + 3
    } else if rest.starts_with("<![CDATA[") {
        rest.find("]]>")? + 3
    } else {
        rest.find('>')? + 1
    };
    Some(Tag {
        text: &rest[..len],
        start,
        end: start + len,
    })
}

/// The end (exclusive) of the element whose start tag is `open`.
fn element_end(xml: &str, open: &Tag<'_>) -> usize {
    if open.is_empty_element() {
        return open.end;
    }
    let mut depth = 1usize;
    let mut pos = open.end;
    while let Some(tag) = next_tag(xml, pos) {
        pos = tag.end;
        if tag.is_meta() || tag.is_empty_element() {
            continue;
        }
        if tag.is_close() {
            depth -= 1;
            if depth == 0 {
                return tag.end;
            }
        } else {
            depth += 1;
        }
    }
    xml.len()
}

/// The XHTML narratives of a document, verbatim, in document order.
pub fn narratives(xml: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(tag) = next_tag(xml, pos) {
        if tag.opens_narrative() {
            let end = element_end(xml, &tag);
            found.push(&xml[tag.start..end]);
            pos = end;
        } else {
            pos = tag.end;
        }
    }
    found
}

/// Puts narratives back, in order, into the `text.div` of every resource
/// in `value` (which lists elements in document order). Does nothing if the
/// counts disagree, rather than risk pairing the wrong ones.
pub fn restore_narratives(value: &mut Value, narratives: &[&str]) {
    let mut slots = Vec::new();
    collect_divs(value, &mut slots);
    if slots.len() != narratives.len() {
        return;
    }
    for (slot, text) in slots.into_iter().zip(narratives) {
        *slot = Value::String((*text).to_owned());
    }
}

/// The narrative `div` values of `value`, in order.
pub fn collect_divs<'v>(value: &'v mut Value, slots: &mut Vec<&'v mut Value>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "text" && v.get("div").is_some_and(Value::is_string) {
                    if let Some(div) = v.get_mut("div") {
                        slots.push(div);
                    }
                    continue;
                }
                collect_divs(v, slots);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| collect_divs(v, slots)),
        _ => {}
    }
}

/// The FHIRPath-style location of the first element the R4 definitions do
/// not know, e.g. `Patient.contact.nme`.
pub fn first_unknown_element(xml: &str) -> Option<String> {
    // Each open element: (context for its children, expression).
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    while let Some(tag) = next_tag(xml, pos) {
        pos = tag.end;
        if tag.is_meta() {
            continue;
        }
        if tag.is_close() {
            stack.pop();
            continue;
        }
        if tag.opens_narrative() {
            pos = element_end(xml, &tag);
            continue;
        }
        let name = tag.name();
        let entry = match stack.last() {
            None => (name.to_owned(), name.to_owned()),
            // Inside an element of type Resource, the child names the type.
            Some((ctx, expr)) if ctx == "Resource" => {
                if !structure::is_resource_type(name) {
                    return Some(format!("{expr}.{name}"));
                }
                (name.to_owned(), expr.clone())
            }
            Some((ctx, expr)) => match structure::child(ctx, name) {
                Some((info, chosen)) => (
                    info.child_context(chosen).unwrap_or_default().to_owned(),
                    format!("{expr}.{name}"),
                ),
                None => return Some(format!("{expr}.{name}")),
            },
        };
        if !tag.is_empty_element() {
            stack.push(entry);
        }
    }
    None
}

/// Replaces each `placeholder(i)` element in `xml` by `narratives[i]`.
pub fn splice_narratives(
    xml: &str,
    narratives: &[String],
    placeholder: impl Fn(usize) -> String,
) -> String {
    let mut out = xml.to_owned();
    for (i, text) in narratives.iter().enumerate() {
        let marker = placeholder(i);
        let Some(at) = out.find(&marker) else {
            continue;
        };
        let Some(start) = out[..at].rfind("<div") else {
            continue;
        };
        let Some(close) = out[at..].find("</div>") else {
            continue;
        };
        out.replace_range(start..at + close + "</div>".len(), text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0"?><Patient xmlns="http://hl7.org/fhir"><!-- c --><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Ann <b>Smith</b> &amp; <div>co</div></p></div></text><contained><Organization><nme value="x"/></Organization></contained></Patient>"#;

    #[test]
    fn finds_narratives_verbatim_with_nested_divs() {
        assert_eq!(
            narratives(DOC),
            vec![
                r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>Ann <b>Smith</b> &amp; <div>co</div></p></div>"#
            ]
        );
    }

    #[test]
    fn locates_unknown_elements_through_contained_resources() {
        assert_eq!(
            first_unknown_element(DOC).as_deref(),
            Some("Patient.contained.nme")
        );
        let ok = r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="F"/></name><deceasedBoolean value="true"/></Patient>"#;
        assert_eq!(first_unknown_element(ok), None);
        let nested = r#"<Patient xmlns="http://hl7.org/fhir"><contact><nme/></contact></Patient>"#;
        assert_eq!(
            first_unknown_element(nested).as_deref(),
            Some("Patient.contact.nme")
        );
    }

    #[test]
    fn splices_narratives_in_place_of_placeholders() {
        let xml = r#"<a><div xmlns="http://www.w3.org/1999/xhtml">N0</div><b/><div xmlns="http://www.w3.org/1999/xhtml">N1</div></a>"#;
        let out = splice_narratives(
            xml,
            &["<div>x y</div>".into(), "<div>z</div>".into()],
            |i| format!("N{i}"),
        );
        assert_eq!(out, "<a><div>x y</div><b/><div>z</div></a>");
    }
}
