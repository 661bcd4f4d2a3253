//! The full-text index behind `_text` (narrative) and `_content` (every
//! text value of the resource), one row per current resource: SQLite FTS5,
//! or PostgreSQL tsvectors. Words are what FTS5's `unicode61` tokenizer
//! makes of a text (runs of letters and digits, lower-cased, accents
//! removed); for PostgreSQL the store makes them itself, so both backends
//! match the same words.

use diesel::RunQueryDsl;
use serde_json::Value;

use crate::db::{Db, Dialect};
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
struct DeletePgText;
struct InsertPgText;

impl PendingText {
    /// Replaces the text of `res_key` (which had a row when `had_row`).
    pub(crate) fn replace(&mut self, res_key: i64, had_row: bool, text: Option<FullText>) {
        self.ops.push((res_key, had_row, text));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.applied == self.ops.len()
    }

    /// Writes the changes not yet written.
    pub(crate) fn apply(&mut self, conn: &mut Db) -> diesel::QueryResult<()> {
        let dialect = conn.dialect();
        for (key, had_row, text) in &self.ops[self.applied..] {
            if *had_row {
                let mut sql = Sql::default();
                match dialect {
                    Dialect::Sqlite => {
                        sql.push("DELETE FROM resource_text WHERE rowid = ")
                            .int(*key);
                        sql.cached::<DeleteText>().execute_on(conn)?;
                    }
                    Dialect::Postgres => {
                        sql.push("DELETE FROM resource_text WHERE res_key = ")
                            .int(*key);
                        sql.cached::<DeletePgText>().execute(conn)?;
                    }
                }
            }
            if let Some(text) = text {
                let mut sql = Sql::default();
                match dialect {
                    Dialect::Sqlite => {
                        sql.push("INSERT INTO resource_text (rowid, narrative, content) VALUES (")
                            .int(*key)
                            .push(", ")
                            .text(text.narrative.as_str())
                            .push(", ")
                            .text(text.content.as_str())
                            .push(")");
                        sql.cached::<InsertText>().execute_on(conn)?;
                    }
                    Dialect::Postgres => {
                        sql.push(
                            "INSERT INTO resource_text (res_key, narrative, content) VALUES (",
                        )
                        .int(*key)
                        .push(", CAST(")
                        .text(tsvector(&text.narrative))
                        .push(" AS tsvector), CAST(")
                        .text(tsvector(&text.content))
                        .push(" AS tsvector))");
                        sql.cached::<InsertPgText>().execute(conn)?;
                    }
                }
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

/// Words longer than this are left out of PostgreSQL's index (it refuses
/// lexemes over 2 KB; no one searches for such a word).
const LONGEST_WORD: usize = 255;

/// The words of a text, as the index holds them.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() <= LONGEST_WORD)
        .map(hearth_model::index::normalise)
}

/// A tsvector literal of the words of `text`. The words hold only letters
/// and digits, so quoting them needs no escapes.
fn tsvector(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for word in words(text) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('\'');
        out.push_str(&word);
        out.push('\'');
    }
    out
}

/// A `_text` / `_content` search: the resources whose `column` holds all
/// the words of at least one of `any` (words are ANDed, and `OR` between
/// words or a comma between values gives alternatives).
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    pub column: &'static str,
    pub any: Vec<Vec<String>>,
}

impl TextQuery {
    /// The query of one `_text` / `_content` value; `None` when it holds
    /// no words.
    pub(crate) fn parse(column: &'static str, value: &str) -> Option<TextQuery> {
        let mut any: Vec<Vec<String>> = vec![Vec::new()];
        for token in value.split_whitespace() {
            match token {
                "OR" => any.push(Vec::new()),
                "AND" => {}
                _ => any
                    .last_mut()
                    .into_iter()
                    .for_each(|all| all.extend(words(token))),
            }
        }
        any.retain(|all| !all.is_empty());
        (!any.is_empty()).then_some(TextQuery { column, any })
    }

    /// Adds the alternatives of `other` (a further comma-separated value).
    pub(crate) fn or(&mut self, other: TextQuery) {
        self.any.extend(other.any);
    }

    /// The query in the dialect's full-text syntax. Words are quoted, so
    /// operators in user input are taken as words; FTS5 then makes no
    /// phrase of them (the index keeps no positions).
    pub(crate) fn render(&self, dialect: Dialect) -> String {
        let (quote, and, or) = match dialect {
            Dialect::Sqlite => ('"', " AND ", " OR "),
            Dialect::Postgres => ('\'', " & ", " | "),
        };
        let alternatives: Vec<String> = self
            .any
            .iter()
            .map(|all| {
                let words: Vec<String> = all.iter().map(|w| format!("{quote}{w}{quote}")).collect();
                format!("({})", words.join(and))
            })
            .collect();
        let query = alternatives.join(or);
        match dialect {
            Dialect::Sqlite => format!("{} : ({query})", self.column),
            Dialect::Postgres => query,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_words_and_keep_or() {
        let q = |v| TextQuery::parse("content", v).map(|q| q.render(Dialect::Sqlite));
        assert_eq!(
            q("heart attack").as_deref(),
            Some("content : ((\"heart\" AND \"attack\"))")
        );
        assert_eq!(
            q("a OR b").as_deref(),
            Some("content : ((\"a\") OR (\"b\"))")
        );
        assert_eq!(q("x\"y").as_deref(), Some("content : ((\"x\" AND \"y\"))"));
        assert_eq!(q("  "), None);
        assert_eq!(q("OR"), None);
        let mut both = TextQuery::parse("narrative", "Fièvre aiguë").unwrap();
        both.or(TextQuery::parse("narrative", "cough").unwrap());
        assert_eq!(
            both.render(Dialect::Postgres),
            "('fievre' & 'aigue') | ('cough')"
        );
    }

    #[test]
    fn postgres_gets_the_words_fts5_would_make() {
        assert_eq!(
            tsvector("Ann-Marie O'Brien, 3.5 mg"),
            "'ann' 'marie' 'o' 'brien' '3' '5' 'mg'"
        );
        assert_eq!(tsvector(&"x".repeat(300)), "");
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
