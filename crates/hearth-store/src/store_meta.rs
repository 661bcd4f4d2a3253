//! The `store_meta` table: a few named values the store keeps about itself
//! (the index version, the custom parameters' generation, a bulk load's
//! deferred indexes).

use diesel::prelude::*;

use crate::db::Db;
use crate::schema::store_meta;
use crate::statement::{Bind, Sql};

/// The value stored under `key`, if any.
pub(crate) fn get(conn: &mut Db, key: &str) -> QueryResult<Option<String>> {
    store_meta::table
        .filter(store_meta::key.eq(key))
        .select(store_meta::value)
        .first(conn)
        .optional()
}

/// Stores `value` under `key`, replacing what was there.
pub(crate) fn set(conn: &mut Db, key: &str, value: String) -> QueryResult<()> {
    Sql::with_binds(
        "INSERT INTO store_meta (key, value) VALUES (?, ?) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        vec![Bind::Text(key.to_owned()), Bind::Text(value)],
    )
    .execute(conn)
    .map(|_| ())
}

/// Removes `key`.
pub(crate) fn remove(conn: &mut Db, key: &str) -> QueryResult<()> {
    diesel::delete(store_meta::table.filter(store_meta::key.eq(key)))
        .execute(conn)
        .map(|_| ())
}
