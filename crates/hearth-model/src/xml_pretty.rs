//! Indents FHIR XML for `_pretty=true`. fhirbolt writes XML on one line; FHIR
//! XML has no mixed content outside the XHTML narrative, so whitespace may
//! be added between elements everywhere except inside `<div xmlns=…xhtml>`,
//! which is copied verbatim.

const XHTML_DIV: &str = "<div xmlns=\"http://www.w3.org/1999/xhtml\"";

/// Indents compact FHIR XML by two spaces per level.
pub fn indent(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() + xml.len() / 4);
    let mut depth = 0usize;
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        // Text between tags (an element value never appears here in FHIR
        // XML: values are attributes) is copied as is.
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.starts_with(XHTML_DIV) {
            let end = narrative_end(rest);
            newline(&mut out, depth);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let Some(close) = rest.find('>') else {
            break;
        };
        let tag = &rest[..=close];
        if tag.starts_with("<?") {
            out.push_str(tag);
        } else if tag.starts_with("</") {
            depth = depth.saturating_sub(1);
            newline(&mut out, depth);
            out.push_str(tag);
        } else {
            newline(&mut out, depth);
            out.push_str(tag);
            if !tag.ends_with("/>") && !tag.starts_with("<!--") {
                depth += 1;
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.push('\n');
    out
}

fn newline(out: &mut String, depth: usize) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.extend(std::iter::repeat_n("  ", depth));
}

/// The length of the XHTML `div` element at the start of `xml`, counting
/// nested `div`s so that the matching end tag is found.
fn narrative_end(xml: &str) -> usize {
    let mut depth = 0usize;
    let mut pos = 0;
    while let Some(offset) = xml[pos..].find('<') {
        let at = pos + offset;
        let tail = &xml[at..];
        let close = tail.find('>').map_or(xml.len(), |c| at + c + 1);
        if tail.starts_with("</div") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return close;
            }
        } else if tail.starts_with("<div") && !xml[at..close].ends_with("/>") {
            depth += 1;
        }
        pos = close;
    }
    xml.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_elements_and_keeps_narratives_verbatim() {
        let xml = r#"<Patient xmlns="http://hl7.org/fhir"><id value="a"/><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><div>x <b>y</b></div></div></text><name><family value="F"/></name></Patient>"#;
        let expected = "<Patient xmlns=\"http://hl7.org/fhir\">\n  <id value=\"a\"/>\n  <text>\n    <status value=\"generated\"/>\n    <div xmlns=\"http://www.w3.org/1999/xhtml\"><div>x <b>y</b></div></div>\n  </text>\n  <name>\n    <family value=\"F\"/>\n  </name>\n</Patient>\n";
        assert_eq!(indent(xml), expected);
    }
}
