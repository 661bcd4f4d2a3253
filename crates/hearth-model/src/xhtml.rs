//! The rules for a narrative (`xhtml`, `Narrative.div`): well-formed XML,
//! one `div` in the XHTML namespace, and only the basic formatting HTML
//! that R4's `txt-1` allows (no scripts, forms, frames, objects,
//! document-level elements or event handlers). A narrative is written
//! verbatim into XML responses, so one that is not well-formed would break
//! them. Like the other invariants, `txt-2` (some non-whitespace content)
//! is not enforced: four official examples have empty narratives.

use quick_xml::events::{BytesStart, Event};

const XHTML_NS: &[u8] = b"http://www.w3.org/1999/xhtml";

/// Elements `txt-1` excludes: document structure, scripting, forms,
/// frames, embedded objects, and external references.
const FORBIDDEN: &[&str] = &[
    "html", "head", "body", "title", "meta", "link", "base", "style", "script", "noscript", "form",
    "input", "button", "select", "option", "optgroup", "textarea", "label", "fieldset", "legend",
    "iframe", "frame", "frameset", "noframes", "object", "embed", "applet", "param", "isindex",
];

/// Checks a narrative; the error says what is wrong with it.
pub fn check(div: &str) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(div);
    let mut depth = 0usize;
    let mut root_done = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("is not well-formed XHTML: {e}"))?;
        match event {
            Event::Start(tag) | Event::Empty(tag) if root_done => {
                return Err(format!("has an element after its div: <{}>", name_of(&tag)))
            }
            Event::Start(ref tag) | Event::Empty(ref tag) => {
                let empty = matches!(event, Event::Empty(_));
                check_element(tag, depth == 0)?;
                if !empty {
                    depth += 1;
                } else if depth == 0 {
                    root_done = true;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    root_done = true;
                }
            }
            Event::Text(text) => {
                let whitespace = text.iter().all(u8::is_ascii_whitespace);
                if depth == 0 && !whitespace {
                    return Err("has text outside its div".into());
                }
            }
            Event::CData(_) if depth == 0 => return Err("has text outside its div".into()),
            Event::CData(_) => {}
            Event::Comment(_) => {}
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {
                return Err(
                    "must not hold XML declarations, processing instructions or a DOCTYPE".into(),
                )
            }
            Event::Eof => break,
        }
    }
    if !root_done {
        return Err("must be a div element".into());
    }
    Ok(())
}

fn name_of(tag: &BytesStart) -> String {
    String::from_utf8_lossy(tag.local_name().as_ref()).into_owned()
}

fn check_element(tag: &BytesStart, root: bool) -> Result<(), String> {
    let name = name_of(tag);
    if root {
        if name != "div" {
            return Err(format!("must be a div element, not <{name}>"));
        }
        let in_xhtml = tag.attributes().flatten().any(|a| {
            let key = a.key.as_ref();
            (key == b"xmlns" || key.starts_with(b"xmlns:")) && a.value.as_ref() == XHTML_NS
        });
        if !in_xhtml {
            return Err(
                "must be a div in the XHTML namespace (xmlns=\"http://www.w3.org/1999/xhtml\")"
                    .into(),
            );
        }
    }
    if FORBIDDEN.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("must not contain <{name}> (txt-1)"));
    }
    for attribute in tag.attributes() {
        let attribute = attribute.map_err(|e| format!("is not well-formed XHTML: {e}"))?;
        let key = String::from_utf8_lossy(attribute.key.local_name().as_ref()).to_ascii_lowercase();
        if key.starts_with("on") {
            return Err(format!(
                "must not contain event handlers ({key} on <{name}>) (txt-1)"
            ));
        }
        let value = String::from_utf8_lossy(attribute.value.as_ref()).to_ascii_lowercase();
        if matches!(key.as_str(), "href" | "src") && value.trim_start().starts_with("javascript:") {
            return Err(format!(
                "must not contain script links ({key} on <{name}>) (txt-1)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    const DIV: &str = r#"<div xmlns="http://www.w3.org/1999/xhtml">"#;

    #[test]
    fn valid_narratives() {
        for ok in [
            format!("{DIV}Ann <b>Smith</b></div>"),
            format!("{DIV}<table><tr><td style=\"color: red\">1</td></tr></table></div>"),
            format!("{DIV}<a href=\"http://x\">x</a><!-- note --><img src=\"#a\"/></div>"),
            format!("  {DIV}<p>x</p></div>\n"),
            format!("{DIV}  </div>"),
            r#"<xhtml:div xmlns:xhtml="http://www.w3.org/1999/xhtml">x</xhtml:div>"#.to_owned(),
        ] {
            assert_eq!(check(&ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn invalid_narratives() {
        for (bad, why) in [
            (format!("{DIV}<b>x</div>"), "not well-formed"),
            ("<div>x</div>".to_owned(), "XHTML namespace"),
            (
                r#"<p xmlns="http://www.w3.org/1999/xhtml">x</p>"#.to_owned(),
                "must be a div",
            ),
            ("plain text".to_owned(), "outside its div"),
            (format!("{DIV}x</div><div>y</div>"), "after its div"),
            (format!("{DIV}<script>alert(1)</script></div>"), "<script>"),
            (
                format!("{DIV}<p onclick=\"x()\">x</p></div>"),
                "event handlers",
            ),
            (
                format!("{DIV}<a href=\"javascript:x()\">x</a></div>"),
                "script links",
            ),
            (
                format!("<?xml version=\"1.0\"?>{DIV}x</div>"),
                "declarations",
            ),
        ] {
            let error = check(&bad).expect_err(&bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
