//! SQL text built at run time, with its binds, as a diesel query.
//!
//! The text marks each bind with `?`; when the statement is sent, diesel
//! writes each backend's own placeholder there, so the same text serves
//! SQLite (`?`) and PostgreSQL (`$1`). A statement whose text never varies
//! gets a key type ([`Sql::cached`]) and is prepared once per connection.

use std::borrow::Cow;
use std::marker::PhantomData;

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, Bool, Double, HasSqlType, Nullable, Text, Untyped};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl};

use crate::db::Dialect;

/// A bound SQL value.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Real(f64),
    OptReal(Option<f64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// SQL text with its binds, built left to right.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    text: Cow<'static, str>,
    binds: Vec<Bind>,
    /// Where each bind's `?` is in `text`: diesel walks a statement two or
    /// three times per run, and finding them again each time cost a tenth
    /// of a bulk load's writer thread.
    marks: Cow<'static, [usize]>,
    /// The SQL the text is built for, where the backends differ.
    pub dialect: Dialect,
    /// Set for a statement whose text takes few forms, run often: the
    /// connection keeps it prepared, by its text (see [`Sql::reused`]).
    reused: bool,
}

/// A statement's text that never varies, with its binds' places found
/// once (for statements run very often).
#[derive(Debug)]
pub(crate) struct Template {
    text: &'static str,
    marks: Vec<usize>,
}

impl Template {
    pub fn new(text: &'static str) -> Template {
        Template {
            text,
            marks: text.match_indices('?').map(|(at, _)| at).collect(),
        }
    }
}

/// The largest code point: `prefix || MAX` bounds every string that starts
/// with `prefix` (UTF-8 order is code point order).
const MAX_CHAR: char = '\u{10FFFF}';

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: Cow::Owned(text.to_owned()),
            ..Sql::default()
        }
    }

    /// This statement, kept prepared by its connection under its text:
    /// for statements run on every request whose text takes few forms (a
    /// grant's checks, whose values are binds). Texts that vary with the
    /// request's values must not be, or the cache grows without bound.
    pub fn reused(mut self) -> Sql {
        self.reused = true;
        self
    }

    /// An empty statement, to be built in `dialect`.
    pub fn on(dialect: Dialect) -> Sql {
        Sql {
            dialect,
            ..Sql::default()
        }
    }

    /// A statement whose text (the same in every dialect) already holds a
    /// `?` for each of `binds`.
    pub fn with_binds(text: &str, binds: Vec<Bind>) -> Sql {
        let marks: Vec<usize> = text.match_indices('?').map(|(at, _)| at).collect();
        debug_assert_eq!(marks.len(), binds.len());
        Sql {
            text: Cow::Owned(text.to_owned()),
            binds,
            marks: Cow::Owned(marks),
            ..Sql::default()
        }
    }

    /// A statement of `template`'s text, with a bind for each of its `?`.
    pub fn from_template(template: &'static Template, binds: Vec<Bind>) -> Sql {
        debug_assert_eq!(template.marks.len(), binds.len());
        Sql {
            text: Cow::Borrowed(template.text),
            binds,
            marks: Cow::Borrowed(&template.marks),
            ..Sql::default()
        }
    }

    /// Appends `other`, text and binds.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        let at = self.text.len();
        self.text.to_mut().push_str(&other.text);
        self.marks
            .to_mut()
            .extend(other.marks.iter().map(|m| m + at));
        self.binds.extend(other.binds);
        self
    }

    /// `column`, kept from driving the query (see [`Dialect::no_index`]).
    pub fn unindexed(&mut self, column: &str) -> &mut Self {
        let hint = self.dialect.no_index();
        self.push(hint).push(column)
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        debug_assert!(!s.contains('?'), "binds are added with the bind methods");
        self.text.to_mut().push_str(s);
        self
    }

    pub fn bind(&mut self, bind: Bind) -> &mut Self {
        self.marks.to_mut().push(self.text.len());
        self.text.to_mut().push('?');
        self.binds.push(bind);
        self
    }

    pub fn text(&mut self, v: impl Into<String>) -> &mut Self {
        self.bind(Bind::Text(v.into()))
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.bind(Bind::Int(v))
    }

    pub fn real(&mut self, v: f64) -> &mut Self {
        self.bind(Bind::Real(v))
    }

    /// `(?, ?, …)`
    pub fn list<T: AsRef<str>>(&mut self, items: &[T]) -> &mut Self {
        self.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(item.as_ref());
        }
        self.push(")")
    }

    pub fn ints(&mut self, items: &[i64]) -> &mut Self {
        self.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.int(*item);
        }
        self.push(")")
    }

    /// `column >= prefix AND column < prefix || MAX`: a prefix match that
    /// uses the index.
    pub fn prefix(&mut self, column: &str, prefix: &str) -> &mut Self {
        self.push("(").push(column).push(" >= ").text(prefix);
        self.push(" AND ")
            .push(column)
            .push(" < ")
            .text(format!("{prefix}{MAX_CHAR}"))
            .push(")")
    }

    /// The same statement, prepared once per connection and kept: `K` is a
    /// type that names this statement alone (its text must never vary).
    pub fn cached<K: 'static>(self) -> Cached<K> {
        Cached {
            sql: self,
            key: PhantomData,
        }
    }
}

/// Statements are sent through [`Db`](crate::db::Db), whose backend
/// writes each dialect's placeholders; a cached statement can also go
/// straight to SQLite ([`Cached::execute_on`]).
type Backend = crate::db::MultiBackend;

fn walk<'b, DB>(sql: &'b Sql, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
where
    DB: diesel::backend::Backend
        + HasSqlType<Text>
        + HasSqlType<BigInt>
        + HasSqlType<Double>
        + HasSqlType<Bool>
        + HasSqlType<Binary>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    f64: ToSql<Double, DB>,
    bool: ToSql<Bool, DB>,
    Vec<u8>: ToSql<Binary, DB>,
{
    // The text between marks: every mark is an ASCII `?`, so every piece
    // is a str.
    let piece = |from: usize, to: usize| sql.text.get(from..to).unwrap_or_default();
    let ends = sql.marks.iter().copied().chain([sql.text.len()]);
    let starts = std::iter::once(0).chain(sql.marks.iter().map(|m| m + 1));
    let mut pieces = starts.zip(ends).map(|(from, to)| piece(from, to));
    if let Some(first) = pieces.next() {
        out.push_sql(first);
    }
    for (piece, bind) in pieces.zip(&sql.binds) {
        match bind {
            Bind::Text(v) => out.push_bind_param::<Text, _>(v)?,
            Bind::OptText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
            Bind::Int(v) => out.push_bind_param::<BigInt, _>(v)?,
            Bind::OptInt(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
            Bind::Real(v) => out.push_bind_param::<Double, _>(v)?,
            Bind::OptReal(v) => out.push_bind_param::<Nullable<Double>, _>(v)?,
            Bind::Bool(v) => out.push_bind_param::<Bool, _>(v)?,
            Bind::Bytes(v) => out.push_bind_param::<Binary, _>(v)?,
        }
        out.push_sql(piece);
    }
    Ok(())
}

impl QueryFragment<Backend> for Sql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Backend>) -> QueryResult<()> {
        // The text varies from one call to the next, unless it is known
        // to take few forms.
        if !self.reused {
            out.unsafe_to_cache_prepared();
        }
        walk(self, &mut out)
    }
}

impl QueryId for Sql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Sql {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Sql {}

/// A [`Sql`] whose text never varies, cached under the key type `K`.
pub(crate) struct Cached<K> {
    sql: Sql,
    key: PhantomData<K>,
}

impl<K> QueryFragment<Backend> for Cached<K> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Backend>) -> QueryResult<()> {
        walk(&self.sql, &mut out)
    }
}

impl<K> QueryFragment<Sqlite> for Cached<K> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        walk(&self.sql, &mut out)
    }
}

impl<K: 'static> Cached<K> {
    /// Runs the statement; on SQLite, straight on its connection. Through
    /// [`Db`](crate::db::Db), diesel's multi-backend wrapper writes the
    /// whole SQL text again at each of its several walks of a statement,
    /// which cost a bulk load's writer more than the statements' binds.
    pub fn execute_on(self, conn: &mut crate::db::Db) -> QueryResult<usize> {
        match conn {
            crate::db::Db::Sqlite(sqlite) => self.execute(sqlite),
            other => self.execute(other),
        }
    }
}

impl<K: 'static> QueryId for Cached<K> {
    type QueryId = K;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K> Query for Cached<K> {
    type SqlType = Untyped;
}

impl<K, Conn> RunQueryDsl<Conn> for Cached<K> {}
