//! The checks an XML body passes before fhirbolt reads it. fhirbolt's
//! reader is recursive, accepts a document cut off before its root element
//! closes, and reads past what it needs; this one pass over the document's
//! events (no recursion, nothing kept) refuses what it must not see:
//!
//! - anything but one complete, well-formed root element, with only
//!   whitespace, comments and processing instructions around it;
//! - a DOCTYPE, so no entity is ever defined, let alone expanded (billion
//!   laughs, external entities): the five predefined entities and
//!   character references are all XML without a DTD has;
//! - elements nested deeper than [`limits::MAX_DEPTH`], or more of them
//!   than [`limits::max_values`] allows for the body's size.

use quick_xml::events::Event;

use crate::limits;

/// Checks an XML document; the error says what is wrong with it.
pub(crate) fn check(text: &str) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.check_end_names(true);
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut budget = limits::max_values(text.len());
    let mut first = true;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed at byte {}: {e}", reader.buffer_position()))?;
        let opening = std::mem::replace(&mut first, false);
        // quick-xml takes a tag cut off by the end of the input (`</Patient`)
        // as complete.
        if matches!(event, Event::Start(_) | Event::Empty(_) | Event::End(_))
            && text
                .as_bytes()
                .get(reader.buffer_position().wrapping_sub(1))
                != Some(&b'>')
        {
            return Err(format!(
                "a tag is not closed at byte {}: the document is truncated",
                reader.buffer_position()
            ));
        }
        match event {
            Event::Start(_) | Event::Empty(_) => {
                if depth == 0 && root_seen {
                    return Err("there is content after the root element".into());
                }
                root_seen = true;
                budget = budget.checked_sub(1).ok_or_else(|| {
                    format!(
                        "the body holds more XML elements than a body of its size may (one per {} bytes)",
                        limits::BYTES_PER_VALUE
                    )
                })?;
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                    if depth > limits::MAX_DEPTH {
                        return Err(format!(
                            "elements nest deeper than {} levels",
                            limits::MAX_DEPTH
                        ));
                    }
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(text) if depth == 0 => {
                if !text.iter().all(u8::is_ascii_whitespace) {
                    return Err(if root_seen {
                        "there is content after the root element".into()
                    } else {
                        "there is text before the root element".into()
                    });
                }
            }
            Event::CData(_) if depth == 0 => {
                return Err("there is content outside the root element".into())
            }
            Event::DocType(_) => {
                return Err(
                    "a DOCTYPE is not allowed: FHIR XML defines no entities, and none is expanded"
                        .into(),
                )
            }
            Event::Decl(_) if !opening => {
                return Err("an XML declaration may only open the document".into())
            }
            Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof if depth > 0 => {
                return Err(format!(
                    "the document ends before its root element is closed ({depth} element(s) still open): it is truncated"
                ))
            }
            Event::Eof if !root_seen => return Err("there is no root element".into()),
            Event::Eof => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><active value="true"/><name><family value="Chalmers"/></name></Patient>
"#;

    #[test]
    fn a_complete_document_passes() {
        assert_eq!(check(PATIENT), Ok(()));
        assert_eq!(
            check("<!-- before --><Patient xmlns=\"http://hl7.org/fhir\"/><!-- after -->\n"),
            Ok(())
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        let end = PATIENT.trim_end().len();
        for cut in PATIENT.find("<Patient").unwrap() + 1..end {
            if !PATIENT.is_char_boundary(cut) {
                continue;
            }
            assert!(
                check(&PATIENT[..cut]).is_err(),
                "accepted a document cut at byte {cut}: {:?}",
                &PATIENT[..cut]
            );
        }
    }

    #[test]
    fn trailing_content_and_second_roots_are_refused() {
        let e = check(&format!("{PATIENT}<Patient/>")).unwrap_err();
        assert!(e.contains("after the root element"), "{e}");
        let e = check(&format!("{PATIENT}trailing")).unwrap_err();
        assert!(e.contains("after the root element"), "{e}");
        assert!(check("text<Patient/>").is_err());
        assert!(check("").is_err());
        assert!(check("<a><b></a></b>").is_err());
    }

    #[test]
    fn doctypes_are_refused_so_entities_never_expand() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol2;"/></name></Patient>"#;
        let e = check(laughs).unwrap_err();
        assert!(e.contains("DOCTYPE"), "{e}");
        let external = r#"<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"/>"#;
        assert!(check(external).unwrap_err().contains("DOCTYPE"));
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let deep = |n: usize| {
            format!(
                "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
                "<extension url=\"u\">".repeat(n),
                "</extension>".repeat(n)
            )
        };
        assert_eq!(check(&deep(limits::MAX_DEPTH - 1)), Ok(()));
        assert!(check(&deep(limits::MAX_DEPTH))
            .unwrap_err()
            .contains("deeper"));
        assert!(check(&deep(200_000)).unwrap_err().contains("deeper"));
    }

    #[test]
    fn too_many_elements_for_the_size_are_refused() {
        let body = format!(
            "<Bundle xmlns=\"http://hl7.org/fhir\">{}</Bundle>",
            "<a/>".repeat(200_000)
        );
        assert!(check(&body).unwrap_err().contains("more XML elements"));
    }
}
