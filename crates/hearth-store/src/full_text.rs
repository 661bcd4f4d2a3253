//! The full-text index behind `_text` (narrative) and `_content` (every
//! text value of the resource): SQLite FTS5, one row per current resource.

use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;
use serde_json::Value;

use crate::statement::Sql;

/// What the full-text index holds of one resource: the words of its
/// narrative (`_text`) and of every text value (`_content`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FullText {
    narrative: String,
    content: String,
}

impl FullText {
    pub(crate) fn of(resource: &Value) -> FullText {
        let narrative = resource
            .pointer("/text/div")
            .and_then(Value::as_str)
            .map(strip_markup)
            .unwrap_or_default();
        let mut content = String::new();
        collect_text(resource, &mut content, true);
        FullText { narrative, content }
    }
}

/// The full-text changes of an open write transaction, applied together
/// just before it commits, or before a full-text search inside it. FTS5
/// writes what it holds in memory to disk at every savepoint and statement
/// journal; applying its rows last does that once per transaction.
#[derive(Debug, Default)]
pub(crate) struct PendingText {
    /// In order: the resource key, whether it had a row to remove, and its
    /// new text (`None` when it is deleted).
    ops: Vec<(i64, bool, Option<FullText>)>,
    /// `ops[..applied]` are in the database already.
    applied: usize,
}

/// Where [`PendingText`] stood, to go back to when a savepoint rolls back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingMark {
    len: usize,
    applied: usize,
}

struct DeleteText;
struct InsertText;

impl PendingText {
    /// Replaces the text of `res_key` (which had a row when `had_row`).
    pub(crate) fn replace(&mut self, res_key: i64, had_row: bool, text: Option<FullText>) {
        self.ops.push((res_key, had_row, text));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.applied == self.ops.len()
    }

    /// Writes the changes not yet written.
    pub(crate) fn apply(&mut self, conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
        for (key, had_row, text) in &self.ops[self.applied..] {
            if *had_row {
                let mut sql = Sql::default();
                sql.push("DELETE FROM resource_text WHERE rowid = ")
                    .int(*key);
                sql.cached::<DeleteText>().execute(conn)?;
            }
            if let Some(text) = text {
                let mut sql = Sql::default();
                sql.push("INSERT INTO resource_text (rowid, narrative, content) VALUES (")
                    .int(*key)
                    .push(", ")
                    .text(text.narrative.as_str())
                    .push(", ")
                    .text(text.content.as_str())
                    .push(")");
                sql.cached::<InsertText>().execute(conn)?;
            }
        }
        self.applied = self.ops.len();
        Ok(())
    }

    pub(crate) fn mark(&self) -> PendingMark {
        PendingMark {
            len: self.ops.len(),
            applied: self.applied,
        }
    }

    /// Forgets the changes made since `mark`, and takes changes written
    /// since then as unwritten again (their savepoint rolled them back).
    pub(crate) fn restore(&mut self, mark: PendingMark) {
        self.ops.truncate(mark.len);
        self.applied = self.applied.min(mark.applied);
    }
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

/// Every string value of the resource (narrative included, as words),
/// but for its id and meta, which the server sets.
fn collect_text(value: &Value, out: &mut String, top: bool) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out, false)),
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("div", Value::String(div)) => {
                        out.push_str(&strip_markup(div));
                        out.push(' ');
                    }
                    ("id" | "meta", _) if top => {}
                    // Identifiers of structure, not content.
                    ("resourceType" | "url" | "system" | "reference", _) => {}
                    _ => collect_text(v, out, false),
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
