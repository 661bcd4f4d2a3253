//! The full-text index behind `_text` (narrative) and `_content` (every
//! text value of the resource): SQLite FTS5, one row per current resource.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use serde_json::Value;

use crate::Result;

pub(crate) fn clear(conn: &mut SqliteConnection, res_key: i64) -> Result<()> {
    diesel::sql_query("DELETE FROM resource_text WHERE rowid = ?")
        .bind::<BigInt, _>(res_key)
        .execute(conn)?;
    Ok(())
}

pub(crate) fn write(conn: &mut SqliteConnection, res_key: i64, resource: &Value) -> Result<()> {
    let narrative = resource
        .pointer("/text/div")
        .and_then(Value::as_str)
        .map(strip_markup)
        .unwrap_or_default();
    let mut content = String::new();
    collect_text(resource, &mut content);
    diesel::sql_query("INSERT INTO resource_text (rowid, narrative, content) VALUES (?, ?, ?)")
        .bind::<BigInt, _>(res_key)
        .bind::<Text, _>(narrative)
        .bind::<Text, _>(content)
        .execute(conn)?;
    Ok(())
}

/// The words of an XHTML fragment, without tags; common entities decoded.
fn strip_markup(xhtml: &str) -> String {
    let mut out = String::with_capacity(xhtml.len());
    let mut in_tag = false;
    for c in xhtml.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
}

/// Every string value of the resource (narrative included, as words).
fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("div", Value::String(div)) => {
                        out.push_str(&strip_markup(div));
                        out.push(' ');
                    }
                    // Identifiers of structure, not content.
                    ("resourceType" | "url" | "system" | "reference", _) => {}
                    _ => collect_text(v, out),
                }
            }
        }
        _ => {}
    }
}

/// An FTS5 query for a `_text` / `_content` value: words are ANDed, `OR`
/// between words is kept. Words are split into the tokens the index holds
/// (letters and digits) and quoted, so FTS5 syntax in user input is taken
/// literally and no phrase query arises (the index keeps no positions).
pub(crate) fn match_query(column: &str, value: &str) -> Option<String> {
    let mut terms = Vec::new();
    let words = value
        .split_whitespace()
        .flat_map(|w| {
            if w == "OR" || w == "AND" {
                vec![w.to_owned()]
            } else {
                w.split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
        })
        .collect::<Vec<_>>();
    for word in words {
        let word = word.as_str();
        if word == "OR" || word == "AND" {
            if !terms.is_empty() {
                terms.push(word.to_owned());
            }
            continue;
        }
        let quoted = format!("\"{word}\"");
        if terms
            .last()
            .is_some_and(|t: &String| t != "OR" && t != "AND")
        {
            terms.push("AND".to_owned());
        }
        terms.push(quoted);
    }
    while terms.last().is_some_and(|t| t == "OR" || t == "AND") {
        terms.pop();
    }
    (!terms.is_empty()).then(|| format!("{column} : ({})", terms.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_words_and_keep_or() {
        assert_eq!(
            match_query("content", "heart attack").as_deref(),
            Some("content : (\"heart\" AND \"attack\")")
        );
        assert_eq!(
            match_query("narrative", "a OR b").as_deref(),
            Some("narrative : (\"a\" OR \"b\")")
        );
        assert_eq!(
            match_query("content", "x\"y"),
            Some("content : (\"x\" AND \"y\")".to_owned())
        );
        assert_eq!(match_query("content", "  "), None);
    }

    #[test]
    fn markup_is_stripped_to_words() {
        assert_eq!(
            strip_markup("<div><p>Ann <b>Smith</b> &amp; co</p></div>")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["Ann", "Smith", "&", "co"]
        );
    }
}
