//! Custom search parameters: SearchParameter resources stored on this
//! server. The set is recomputed from the stored resources after every
//! transaction that wrote one, and installed in the model's registry.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use hearth_model::search_params::{self, CustomParams, SearchParam};
use serde_json::Value;

use crate::db::Db;
use crate::schema::{resource_versions as v, resources as r};
use crate::statement::{Bind, Sql};
use crate::Result;

/// Checks a SearchParameter about to be stored: an active one must compile.
pub(crate) fn check(resource: &Value) -> std::result::Result<(), String> {
    if resource["status"].as_str() == Some("active") {
        search_params::compile_custom(resource).map(|_| ())
    } else {
        Ok(())
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Text)]
    expression: String,
    #[diesel(sql_type = Bool)]
    ready: bool,
}

/// Recomputes the custom parameters from the stored active SearchParameter
/// resources. A parameter whose expression is new or changed is not
/// searchable until its type is reindexed.
pub(crate) fn load(conn: &mut Db) -> Result<CustomParams> {
    let bodies: Vec<Option<Vec<u8>>> = r::table
        .inner_join(v::table.on(v::seq.eq(r::current_seq)))
        .filter(
            r::resource_type
                .eq("SearchParameter")
                .and(r::deleted.eq(false)),
        )
        .select(v::body)
        .load(conn)?;
    let mut params: Vec<SearchParam> = Vec::new();
    for body in bodies.into_iter().flatten() {
        let body = crate::body::decode(body)?;
        let Ok(resource) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        if resource["status"].as_str() != Some("active") {
            continue;
        }
        match search_params::compile_custom(&resource) {
            Ok(compiled) => params.extend(compiled),
            Err(reason) => {
                tracing::warn!(reason = %reason, "a stored SearchParameter cannot be used")
            }
        }
    }
    let known: Vec<Row> = diesel::sql_query(
        "SELECT resource_type, code, expression, ready FROM custom_search_params",
    )
    .load(conn)?;
    let mut ready = Vec::new();
    diesel::sql_query("DELETE FROM custom_search_params").execute(conn)?;
    for p in &params {
        let expression = p.source_expression.clone().unwrap_or_default();
        let was_ready = known.iter().any(|k| {
            k.resource_type == p.base && k.code == p.code && k.expression == expression && k.ready
        });
        if was_ready {
            ready.push((p.base.clone(), p.code.clone()));
        }
        // Two SearchParameters may define the same code for a type: the
        // later one wins, as it does in the registry.
        Sql::with_binds(
            "INSERT INTO custom_search_params (resource_type, code, url, expression, ready) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (resource_type, code) DO UPDATE SET \
             url = excluded.url, expression = excluded.expression, ready = excluded.ready",
            vec![
                Bind::Text(p.base.clone()),
                Bind::Text(p.code.clone()),
                Bind::Text(p.url.clone()),
                Bind::Text(expression),
                Bind::Bool(was_ready),
            ],
        )
        .execute(conn)?;
    }
    Ok(CustomParams::new(params, ready))
}

/// Records that the custom parameters changed (a SearchParameter was
/// written, or a reindex made some searchable): every node watches this
/// generation and reloads them when it moves.
pub(crate) fn changed(conn: &mut Db) -> Result<()> {
    Sql::new(
        "INSERT INTO store_meta (key, value) VALUES ('custom_params_generation', '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(store_meta.value AS BIGINT) + 1 AS TEXT)",
    )
    .execute(conn)?;
    Ok(())
}

/// The generation of the custom parameters (see [`changed`]).
pub(crate) fn generation(conn: &mut Db) -> Result<i64> {
    let value = crate::store_meta::get(conn, "custom_params_generation")?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Marks the custom parameters of `types` (all when empty) searchable:
/// a reindex of them has finished.
pub(crate) fn mark_ready(conn: &mut Db, types: &[String]) -> Result<CustomParams> {
    if types.is_empty() {
        diesel::sql_query("UPDATE custom_search_params SET ready = TRUE").execute(conn)?;
    } else {
        for t in types {
            Sql::with_binds(
                "UPDATE custom_search_params SET ready = TRUE WHERE resource_type = ?",
                vec![Bind::Text(t.clone())],
            )
            .execute(conn)?;
        }
    }
    changed(conn)?;
    load(conn)
}
