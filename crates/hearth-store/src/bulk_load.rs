//! Bulk loads into an empty store (the first `hearth import` of a data
//! set). The load writes its index rows without the secondary indexes it
//! never searches itself, and builds them once at the end. Building an
//! index is one sort. Keeping it up to date means one B-tree insert per
//! row, at a random place. On synthea-120 the second costs about five
//! times the first.
//!
//! The dropped indexes' definitions are saved in `store_meta` in the
//! transaction that drops them. A load that dies midway therefore leaves a
//! store that builds them again when it next opens ([`restore`]). So does
//! a server opening the database while the load runs: the load then goes
//! on with the indexes, only slower.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::Db;
use crate::schema::resources;
use crate::store_meta;
use crate::Result;

/// The indexes a load does without. The load looks resources up by id
/// (`resources`) and by token or string (conditional references and
/// `ifNoneExist`, usually on `identifier`): those indexes stay.
const DEFERRED: &[&str] = &[
    "resources_type_key",
    "idx_reference_search",
    "idx_reference_target",
    "idx_reference_url",
    "idx_date_lo",
    "idx_date_hi",
    "idx_quantity_search",
    "idx_quantity_canonical",
    "idx_number_search",
    "version_patients_patient",
];

/// The `store_meta` key that holds the dropped indexes' definitions.
const KEY: &str = "deferred_indexes";

#[derive(QueryableByName)]
struct Definition {
    #[diesel(sql_type = Text)]
    sql: String,
}

/// Drops the deferred indexes if the store holds no resources yet, and
/// answers whether it did.
pub(crate) fn defer(conn: &mut Db) -> Result<bool> {
    conn.write_transaction(|conn| {
        let empty = resources::table
            .select(resources::res_key)
            .first::<i64>(conn)
            .optional()?
            .is_none();
        let already = store_meta::get(conn, KEY)?.is_some();
        if !empty || already {
            return Ok(false);
        }
        let names = DEFERRED
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let query = match conn {
            Db::Sqlite(_) => format!(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name IN ({names}) ORDER BY name"
            ),
            Db::Pg(_) => format!(
                "SELECT indexdef AS sql FROM pg_indexes \
                 WHERE schemaname = current_schema() AND indexname IN ({names}) ORDER BY indexname"
            ),
        };
        let definitions: Vec<String> = diesel::sql_query(query)
            .load::<Definition>(conn)?
            .into_iter()
            .map(|d| d.sql)
            .collect();
        for name in DEFERRED {
            diesel::sql_query(format!("DROP INDEX IF EXISTS {name}")).execute(conn)?;
        }
        let saved = serde_json::to_string(&definitions)
            .map_err(|e| crate::StoreError::Database(e.to_string()))?;
        store_meta::set(conn, KEY, saved)?;
        Ok(true)
    })
}

/// Builds the indexes a load deferred, if any are missing; answers
/// whether it built them. Every store opening calls it: when nothing waits,
/// it only reads.
pub(crate) fn restore(conn: &mut Db) -> Result<bool> {
    if store_meta::get(conn, KEY)?.is_none() {
        return Ok(false);
    }
    // Building an index sorts all its rows: SQLite keeps a cache's worth in
    // memory and spills the rest to temporary files, which this store's
    // connections otherwise keep in memory (hundreds of MB for a large load).
    // Two sorter threads take 1.8 s down to 1.5-1.7 s on synthea-120.
    let sqlite = matches!(conn, Db::Sqlite(_));
    if sqlite {
        conn.batch_execute("PRAGMA temp_store = FILE; PRAGMA threads = 2")?;
    }
    let built = build(conn);
    if sqlite {
        conn.batch_execute(crate::connection::TEMP_STORE)?;
        conn.batch_execute("PRAGMA threads = 0")?;
    }
    built
}

fn build(conn: &mut Db) -> Result<bool> {
    conn.write_transaction(|conn| {
        // Another process may have built them since the read above.
        let Some(saved) = store_meta::get(conn, KEY)? else {
            return Ok(false);
        };
        let definitions: Vec<String> = serde_json::from_str(&saved).map_err(|e| {
            crate::StoreError::Database(format!("the deferred indexes cannot be read: {e}"))
        })?;
        let started = std::time::Instant::now();
        for definition in &definitions {
            diesel::sql_query(definition.as_str()).execute(conn)?;
        }
        store_meta::remove(conn, KEY)?;
        tracing::info!(
            indexes = definitions.len(),
            ms = started.elapsed().as_millis() as u64,
            "deferred search indexes built"
        );
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use crate::{Store, StoreOptions};

    fn index_names(store: &Store) -> Vec<String> {
        let mut conn = store.pool.get().unwrap();
        let query = match &**conn {
            Db::Sqlite(_) => "SELECT name AS sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
            Db::Pg(_) => "SELECT indexname AS sql FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname",
        };
        diesel::sql_query(query)
            .load::<Definition>(&mut **conn)
            .unwrap()
            .into_iter()
            .map(|d| d.sql)
            .collect()
    }

    fn observation(code: &str, date: &str) -> serde_json::Value {
        serde_json::json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "effectiveDateTime": date})
    }

    fn dated_after(store: &Store, date: &str) -> usize {
        let options = crate::search::ParseOptions {
            strict: true,
            default_count: 100,
            max_count: 100,
            base: None,
            custom: store.custom_params(),
        };
        let query = crate::search::parse(
            &["Observation".to_owned()],
            &[("date".to_owned(), format!("gt{date}"))],
            &options,
        )
        .unwrap();
        store.read_with(|tx| tx.find(&query, 100)).unwrap().len()
    }

    crate::both_backends! {
        fn a_load_into_an_empty_store_ends_with_the_same_indexes_and_answers() {
            let db = TestDatabase::new();
            let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
            let before = index_names(&store);
            assert!(before.contains(&"idx_date_lo".to_owned()), "{before:?}");
            assert!(store.begin_bulk_load().unwrap(), "an empty store defers");
            let during = index_names(&store);
            assert!(!during.contains(&"idx_date_lo".to_owned()), "{during:?}");
            assert!(during.contains(&"idx_token_search".to_owned()), "{during:?}");
            for (i, date) in ["2019-05-01", "2021-05-01", "2022-05-01"].iter().enumerate() {
                store.create(observation(&i.to_string(), date)).unwrap();
            }
            assert_eq!(dated_after(&store, "2020-01-01"), 2, "searches work without them");
            assert!(store.finish_bulk_load().unwrap());
            assert_eq!(index_names(&store), before);
            assert_eq!(dated_after(&store, "2020-01-01"), 2);
            assert!(!store.finish_bulk_load().unwrap(), "nothing left to build");
        }

        fn a_store_that_holds_resources_keeps_its_indexes() {
            let db = TestDatabase::new();
            let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
            store.create(observation("1", "2020-01-01")).unwrap();
            let before = index_names(&store);
            assert!(!store.begin_bulk_load().unwrap());
            assert_eq!(index_names(&store), before);
        }

        fn a_load_that_stopped_midway_gets_its_indexes_when_the_store_opens() {
            let db = TestDatabase::new();
            let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
            let before = index_names(&store);
            assert!(store.begin_bulk_load().unwrap());
            store.create(observation("1", "2021-01-01")).unwrap();
            drop(store);
            let reopened = Store::open(&db.database, &StoreOptions::default()).unwrap();
            assert_eq!(index_names(&reopened), before);
            assert_eq!(dated_after(&reopened, "2020-01-01"), 1);
            assert!(!reopened.finish_bulk_load().unwrap());
        }
    }
}
