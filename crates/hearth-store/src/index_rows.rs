//! Writing search index rows: the store side of
//! [`hearth_model::index::extract`]. Rows are replaced in the transaction
//! that writes a version, so the index always describes current versions.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use hearth_model::index::{self, IndexValue};
use hearth_model::search_params::CustomParams;
use serde_json::Value;

use crate::schema::{
    idx_date, idx_number, idx_quantity, idx_reference, idx_string, idx_token, idx_uri,
};
use crate::Result;

/// Bump when extraction changes: the store then rebuilds the index.
pub(crate) const INDEX_VERSION: &str = "3";

/// Removes the index rows of a resource.
pub(crate) fn clear(conn: &mut SqliteConnection, res_key: i64) -> Result<()> {
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

/// Writes the index rows of `resource`, whose key is `res_key`.
pub(crate) fn write(
    conn: &mut SqliteConnection,
    res_key: i64,
    resource_type: &str,
    resource: &Value,
    custom: &CustomParams,
) -> Result<()> {
    let mut counters = Counters::default();
    for entry in index::extract(resource, custom) {
        let param = format!("{resource_type}.{}", entry.param);
        insert(conn, res_key, &param, None, entry.value, &mut counters)?;
    }
    Ok(())
}

/// Numbers the rows of one resource (`n`) and its composite groups.
#[derive(Default)]
struct Counters {
    row: i64,
    group: i64,
}

/// Inserts one index value; a composite's components go to their own
/// types' tables as `param$i`, tied together by a group number.
fn insert(
    conn: &mut SqliteConnection,
    key: i64,
    param: &str,
    grp: Option<i64>,
    value: IndexValue,
    counters: &mut Counters,
) -> Result<()> {
    counters.row += 1;
    let n = counters.row;
    use diesel::insert_into;
    match value {
        IndexValue::String { normalised, exact } => {
            insert_into(idx_string::table)
                .values((
                    idx_string::res_key.eq(key),
                    idx_string::n.eq(n),
                    idx_string::param.eq(param),
                    idx_string::grp.eq(grp),
                    idx_string::norm.eq(normalised),
                    idx_string::exact.eq(exact),
                ))
                .execute(conn)?;
        }
        IndexValue::Token {
            system,
            code,
            display_text,
            identifier_type,
            implicit_system,
        } => {
            let (type_system, type_code) = identifier_type.unwrap_or((None, None));
            insert_into(idx_token::table)
                .values((
                    idx_token::res_key.eq(key),
                    idx_token::n.eq(n),
                    idx_token::param.eq(param),
                    idx_token::grp.eq(grp),
                    idx_token::system.eq(system),
                    idx_token::code.eq(code),
                    idx_token::text.eq(display_text.map(|t| index::normalise(&t))),
                    idx_token::type_system.eq(type_system),
                    idx_token::type_code.eq(type_code),
                    idx_token::implicit.eq(implicit_system),
                ))
                .execute(conn)?;
        }
        IndexValue::Reference {
            resource_type,
            id,
            version,
            url,
            identifier,
        } => {
            let (ident_system, ident_value) = identifier.unwrap_or((None, None));
            insert_into(idx_reference::table)
                .values((
                    idx_reference::res_key.eq(key),
                    idx_reference::n.eq(n),
                    idx_reference::param.eq(param),
                    idx_reference::grp.eq(grp),
                    idx_reference::target_type.eq(resource_type),
                    idx_reference::target_id.eq(id),
                    idx_reference::target_version.eq(version),
                    idx_reference::url.eq(url),
                    idx_reference::ident_system.eq(ident_system),
                    idx_reference::ident_value.eq(ident_value),
                ))
                .execute(conn)?;
        }
        IndexValue::Date { start_ms, end_ms } => {
            insert_into(idx_date::table)
                .values((
                    idx_date::res_key.eq(key),
                    idx_date::n.eq(n),
                    idx_date::param.eq(param),
                    idx_date::grp.eq(grp),
                    idx_date::lo.eq(start_ms),
                    idx_date::hi.eq(end_ms),
                ))
                .execute(conn)?;
        }
        IndexValue::Number { value } => {
            if let Ok(v) = value.parse::<f64>() {
                insert_into(idx_number::table)
                    .values((
                        idx_number::res_key.eq(key),
                        idx_number::n.eq(n),
                        idx_number::param.eq(param),
                        idx_number::grp.eq(grp),
                        idx_number::value.eq(v),
                    ))
                    .execute(conn)?;
            }
        }
        IndexValue::Quantity {
            value,
            system,
            code,
            unit,
        } => {
            if let Ok(v) = value.parse::<f64>() {
                let canonical = crate::ucum::canonical(v, system.as_deref(), code.as_deref());
                insert_into(idx_quantity::table)
                    .values((
                        idx_quantity::res_key.eq(key),
                        idx_quantity::n.eq(n),
                        idx_quantity::param.eq(param),
                        idx_quantity::grp.eq(grp),
                        idx_quantity::value.eq(v),
                        idx_quantity::system.eq(system),
                        idx_quantity::code.eq(code),
                        idx_quantity::unit.eq(unit),
                        idx_quantity::canonical_value.eq(canonical.map(|(cv, _)| cv)),
                        idx_quantity::canonical_code.eq(canonical.map(|(_, cc)| cc)),
                    ))
                    .execute(conn)?;
            }
        }
        IndexValue::Uri(uri) => {
            insert_into(idx_uri::table)
                .values((
                    idx_uri::res_key.eq(key),
                    idx_uri::n.eq(n),
                    idx_uri::param.eq(param),
                    idx_uri::grp.eq(grp),
                    idx_uri::uri.eq(uri),
                ))
                .execute(conn)?;
        }
        IndexValue::Composite(components) => {
            counters.group += 1;
            let grp = Some(counters.group);
            for (i, component) in components.into_iter().enumerate() {
                insert(conn, key, &format!("{param}${i}"), grp, component, counters)?;
            }
        }
    }
    Ok(())
}

/// Rebuilds every index row when the index was built by other extraction
/// rules (or never: a database from before search). Runs once, when the
/// store opens, in one transaction.
pub(crate) fn rebuild_if_stale(conn: &mut SqliteConnection, custom: &CustomParams) -> Result<()> {
    use crate::schema::{resource_versions as v, resources as r, store_meta};
    let built: Option<String> = store_meta::table
        .filter(store_meta::key.eq("index_version"))
        .select(store_meta::value)
        .first(conn)
        .optional()?;
    if built.as_deref() == Some(INDEX_VERSION) {
        return Ok(());
    }
    conn.immediate_transaction(|conn| {
        for table in [
            "idx_string",
            "idx_token",
            "idx_reference",
            "idx_date",
            "idx_number",
            "idx_quantity",
            "idx_uri",
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
            for (key, resource_type, body) in batch {
                if let Some(resource) = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                {
                    write(conn, key, &resource_type, &resource, custom)?;
                    crate::full_text::write(conn, key, &resource)?;
                    rebuilt += 1;
                }
            }
        }
        diesel::replace_into(store_meta::table)
            .values((
                store_meta::key.eq("index_version"),
                store_meta::value.eq(INDEX_VERSION),
            ))
            .execute(conn)?;
        if rebuilt > 0 {
            tracing::info!(resources = rebuilt, "search index rebuilt");
        }
        Ok::<(), crate::StoreError>(())
    })
}
