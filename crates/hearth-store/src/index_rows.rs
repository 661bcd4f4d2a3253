//! Writing search index rows: the store side of
//! [`hearth_model::index::extract`]. Rows are replaced in the transaction
//! that writes a version, so the index always describes current versions.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use diesel::prelude::*;
use hearth_model::index::{self, IndexValue};
use hearth_model::search_params::CustomParams;
use serde_json::Value;

use crate::db::Db;
use crate::document::Document;
use crate::full_text::PendingText;
use crate::schema::{
    idx_date, idx_number, idx_quantity, idx_reference, idx_string, idx_token, idx_uri,
};
use crate::statement::{Bind, Sql, Template};
use crate::Result;

/// Bump when extraction changes: the store then rebuilds the index.
pub(crate) const INDEX_VERSION: &str = "9";

/// Removes the index rows of a resource.
pub(crate) fn clear(conn: &mut Db, res_key: i64) -> Result<()> {
    diesel::delete(idx_string::table.filter(idx_string::res_key.eq(res_key))).execute(conn)?;
    diesel::delete(idx_token::table.filter(idx_token::res_key.eq(res_key))).execute(conn)?;
    diesel::delete(idx_reference::table.filter(idx_reference::res_key.eq(res_key)))
        .execute(conn)?;
    diesel::delete(idx_date::table.filter(idx_date::res_key.eq(res_key))).execute(conn)?;
    diesel::delete(idx_number::table.filter(idx_number::res_key.eq(res_key))).execute(conn)?;
    diesel::delete(idx_quantity::table.filter(idx_quantity::res_key.eq(res_key))).execute(conn)?;
    diesel::delete(idx_uri::table.filter(idx_uri::res_key.eq(res_key))).execute(conn)?;
    Ok(())
}

/// Parameters every resource has that the `resources` table answers
/// itself: they need no index rows.
fn in_resources_table(code: &str) -> bool {
    matches!(code, "_id" | "_lastUpdated")
}

/// The index tables, each with its one INSERT statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    String,
    Token,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
}

/// Each table's INSERT, in [`Table`] order.
static INSERTS: LazyLock<[Template; 7]> = LazyLock::new(|| {
    [
        Table::String,
        Table::Token,
        Table::Reference,
        Table::Date,
        Table::Number,
        Table::Quantity,
        Table::Uri,
    ]
    .map(|table| Template::new(table.insert_sql()))
});

impl Table {
    fn insert(self) -> &'static Template {
        &INSERTS[self as usize]
    }

    fn insert_sql(self) -> &'static str {
        match self {
            Table::String => "INSERT INTO idx_string (res_key, n, param, grp, norm, exact) VALUES (?, ?, ?, ?, ?, ?)",
            Table::Token => "INSERT INTO idx_token (res_key, n, param, grp, system, code, text, type_system, type_code, implicit, repeated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            Table::Reference => "INSERT INTO idx_reference (res_key, n, param, grp, target_type, target_id, target_version, url, ident_system, ident_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            Table::Date => "INSERT INTO idx_date (res_key, n, param, grp, lo, hi) VALUES (?, ?, ?, ?, ?, ?)",
            Table::Number => "INSERT INTO idx_number (res_key, n, param, grp, value) VALUES (?, ?, ?, ?, ?)",
            Table::Quantity => "INSERT INTO idx_quantity (res_key, n, param, grp, value, system, code, unit, canonical_value, canonical_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            Table::Uri => "INSERT INTO idx_uri (res_key, n, param, grp, uri) VALUES (?, ?, ?, ?, ?)",
        }
    }
}

/// The index rows of one resource: a pure function of its index entries.
/// Each row is its table and its values after `res_key`: `n` (its number
/// within the resource), `param`, `grp` (which composite value it is a
/// component of), then the table's own columns.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexRows {
    rows: Vec<(Table, Vec<Bind>)>,
    group: i64,
    /// The (param, system, code, implicit) of each token row so far: a
    /// row that repeats one is marked `repeated`, which counts skip.
    codes: HashSet<(String, Option<String>, Option<String>, bool)>,
}

impl IndexRows {
    pub(crate) fn of(resource_type: &str, entries: Vec<index::IndexEntry>) -> IndexRows {
        let mut rows = IndexRows::default();
        for entry in entries {
            if !in_resources_table(&entry.param) {
                rows.add(
                    &format!("{resource_type}.{}", entry.param),
                    None,
                    entry.value,
                );
            }
        }
        rows
    }

    /// Adds one index value; a composite's components go to their own
    /// types' tables as `param$i`, tied together by a group number.
    fn add(&mut self, param: &str, grp: Option<i64>, value: IndexValue) {
        use Bind::{Bool, Int, OptText, Real, Text};
        let (table, values) = match value {
            IndexValue::String { normalised, exact } => {
                (Table::String, vec![Text(normalised), Text(exact)])
            }
            IndexValue::Token {
                system,
                code,
                display_text,
                identifier_type,
                implicit_system,
            } => {
                let (type_system, type_code) = identifier_type.unwrap_or((None, None));
                let text = display_text.map(|t| index::normalise(&t));
                let repeated = code.is_some()
                    && !self.codes.insert((
                        param.to_owned(),
                        system.clone(),
                        code.clone(),
                        implicit_system,
                    ));
                let values = vec![
                    OptText(system),
                    OptText(code),
                    OptText(text),
                    OptText(type_system),
                    OptText(type_code),
                    Bool(implicit_system),
                    Bool(repeated),
                ];
                (Table::Token, values)
            }
            IndexValue::Reference {
                resource_type,
                id,
                version,
                url,
                identifier,
            } => {
                let (ident_system, ident_value) = identifier.unwrap_or((None, None));
                let values = vec![
                    OptText(resource_type),
                    OptText(id),
                    OptText(version),
                    OptText(url),
                    OptText(ident_system),
                    OptText(ident_value),
                ];
                (Table::Reference, values)
            }
            IndexValue::Date { start_ms, end_ms } => {
                (Table::Date, vec![Int(start_ms), Int(end_ms)])
            }
            IndexValue::Number { value } => match value.parse::<f64>() {
                Ok(value) => (Table::Number, vec![Real(value)]),
                Err(_) => return,
            },
            IndexValue::Quantity {
                value,
                system,
                code,
                unit,
            } => {
                let Ok(value) = value.parse::<f64>() else {
                    return;
                };
                let canonical = crate::ucum::canonical(value, system.as_deref(), code.as_deref());
                let values = vec![
                    Real(value),
                    OptText(system),
                    OptText(code),
                    OptText(unit),
                    Bind::OptReal(canonical.map(|(v, _)| v)),
                    OptText(canonical.map(|(_, c)| c.to_owned())),
                ];
                (Table::Quantity, values)
            }
            IndexValue::Uri(uri) => (Table::Uri, vec![Text(uri)]),
            IndexValue::Composite(components) => {
                self.group += 1;
                let grp = Some(self.group);
                for (i, component) in components.into_iter().enumerate() {
                    self.add(&format!("{param}${i}"), grp, component);
                }
                return;
            }
        };
        let n = self.rows.len() as i64 + 1;
        let mut binds = Vec::with_capacity(values.len() + 4);
        // res_key is bound when the rows are inserted.
        binds.extend([Int(0), Int(n), Text(param.to_owned()), Bind::OptInt(grp)]);
        binds.extend(values);
        self.rows.push((table, binds));
    }

    /// Inserts the rows for the resource `res_key`. On SQLite, in process,
    /// one prepared statement per row costs least; PostgreSQL is a round
    /// trip away, so each table gets one statement of all its rows.
    pub(crate) fn insert(self, conn: &mut Db, res_key: i64) -> Result<()> {
        if conn.dialect() == crate::db::Dialect::Postgres {
            return self.insert_by_table(conn, res_key);
        }
        struct InsertString;
        struct InsertToken;
        struct InsertReference;
        struct InsertDate;
        struct InsertNumber;
        struct InsertQuantity;
        struct InsertUri;
        for (table, mut binds) in self.rows {
            binds[0] = Bind::Int(res_key);
            let sql = Sql::from_template(table.insert(), binds);
            match table {
                Table::String => sql.cached::<InsertString>().execute_on(conn),
                Table::Token => sql.cached::<InsertToken>().execute_on(conn),
                Table::Reference => sql.cached::<InsertReference>().execute_on(conn),
                Table::Date => sql.cached::<InsertDate>().execute_on(conn),
                Table::Number => sql.cached::<InsertNumber>().execute_on(conn),
                Table::Quantity => sql.cached::<InsertQuantity>().execute_on(conn),
                Table::Uri => sql.cached::<InsertUri>().execute_on(conn),
            }?;
        }
        Ok(())
    }
}

impl IndexRows {
    fn insert_by_table(self, conn: &mut Db, res_key: i64) -> Result<()> {
        let mut statements: Vec<(Table, Sql)> = Vec::new();
        for (table, mut binds) in self.rows {
            binds[0] = Bind::Int(res_key);
            let at = match statements.iter().position(|(t, _)| *t == table) {
                Some(at) => {
                    statements[at].1.push(", ");
                    at
                }
                None => {
                    let insert = table.insert_sql();
                    let columns = &insert[..insert.find(" VALUES").unwrap_or(insert.len())];
                    let mut sql = Sql::new(columns);
                    sql.push(" VALUES ");
                    statements.push((table, sql));
                    statements.len() - 1
                }
            };
            let sql = &mut statements[at].1;
            sql.push("(");
            for (i, bind) in binds.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(bind);
            }
            sql.push(")");
        }
        for (_, sql) in statements {
            sql.execute(conn)?;
        }
        Ok(())
    }
}

/// Rebuilds every index row when the index was built by other extraction
/// rules (or never: a database from before search). Runs once, when the
/// store opens, in one transaction.
pub(crate) fn rebuild_if_stale(conn: &mut Db, custom: &Arc<CustomParams>) -> Result<()> {
    use crate::schema::{resource_versions as v, resources as r};
    let built = crate::store_meta::get(conn, "index_version")?;
    if built.as_deref() == Some(INDEX_VERSION) {
        return Ok(());
    }
    conn.write_transaction(|conn| {
        for table in [
            "idx_string",
            "idx_token",
            "idx_reference",
            "idx_date",
            "idx_number",
            "idx_quantity",
            "idx_uri",
            "resource_text",
        ] {
            diesel::sql_query(format!("DELETE FROM {table}")).execute(conn)?;
        }
        let mut after = 0i64;
        let mut rebuilt = 0usize;
        loop {
            let batch: Vec<(i64, String, Option<Vec<u8>>)> = r::table
                .inner_join(v::table.on(v::seq.eq(r::current_seq)))
                .filter(r::deleted.eq(false).and(r::res_key.gt(after)))
                .order(r::res_key)
                .limit(1000)
                .select((r::res_key, r::resource_type, v::body))
                .load(conn)?;
            let Some(last) = batch.last() else { break };
            after = last.0;
            let mut text = PendingText::default();
            for (key, _, body) in batch {
                let body = crate::body::decode_opt(body)?;
                if let Some(resource) = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                {
                    let document = Document::new(resource, custom.clone())?;
                    document.index.insert(conn, key)?;
                    text.replace(key, false, Some(document.text));
                    rebuilt += 1;
                }
            }
            text.apply(conn)?;
        }
        crate::store_meta::set(conn, "index_version", INDEX_VERSION.to_owned())?;
        if rebuilt > 0 {
            tracing::info!(resources = rebuilt, "search index rebuilt");
        }
        Ok::<(), crate::StoreError>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(
        param: &str,
        system: Option<&str>,
        code: Option<&str>,
        display: &str,
    ) -> index::IndexEntry {
        index::IndexEntry {
            param: param.to_owned(),
            value: IndexValue::Token {
                system: system.map(str::to_owned),
                code: code.map(str::to_owned),
                display_text: Some(display.to_owned()),
                identifier_type: None,
                implicit_system: false,
            },
        }
    }

    /// Each token row's `repeated` column, in row order.
    fn repeated(rows: &IndexRows) -> Vec<bool> {
        rows.rows
            .iter()
            .filter(|(table, _)| *table == Table::Token)
            .map(|(_, binds)| matches!(binds.last(), Some(Bind::Bool(true))))
            .collect()
    }

    #[test]
    fn only_a_code_the_resource_already_has_under_its_parameter_is_repeated() {
        let s = Some("http://loinc.org");
        let rows = IndexRows::of(
            "Observation",
            vec![
                token("code", s, Some("8867-4"), "Heart rate"),
                token("code", s, Some("8867-4"), "Pulse"),
                token("code", None, Some("8867-4"), "no system"),
                token("code", s, Some("8310-5"), "Temperature"),
                token("combo-code", s, Some("8867-4"), "another parameter"),
                token("code", None, None, "text alone"),
                token("code", None, None, "text alone"),
            ],
        );
        assert_eq!(
            repeated(&rows),
            [false, true, false, false, false, false, false]
        );
    }
}
