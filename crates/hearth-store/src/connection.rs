//! Opening the database: the connection pool, per-connection settings and
//! the embedded migrations.

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use hearth_model::search_params::CustomParams;

use crate::{Result, StoreError};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

pub(crate) type Pool = diesel::r2d2::Pool<ConnectionManager<SqliteConnection>>;

/// When SQLite makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// A commit survives a crash of the process (the WAL is written before
    /// the commit returns) but may be lost if the machine loses power.
    #[default]
    Normal,
    /// A commit is also flushed to disk: survives power loss, slower writes.
    Full,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// Connections in the pool (readers run in parallel; writers queue).
    pub pool_size: u32,
    /// How long a request waits for the write lock or a pool connection.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
struct Pragmas {
    synchronous: Synchronous,
    busy_timeout: Duration,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(
        &self,
        conn: &mut SqliteConnection,
    ) -> std::result::Result<(), diesel::r2d2::Error> {
        let synchronous = match self.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        // The checkpoint thread copies the log into the database; the
        // connection that writes checkpoints only when the log is large.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -8000; PRAGMA temp_store = MEMORY; \
             PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
            self.busy_timeout.as_millis(),
            crate::checkpoint::WRITER_CHECKPOINT_PAGES,
            64 * 1024 * 1024,
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

pub(crate) fn open_sqlite(
    path: &Path,
    options: &SqliteOptions,
) -> Result<(Pool, std::sync::Arc<CustomParams>)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let url = path.to_string_lossy().into_owned();
    // WAL is a property of the database file: set it once, before the pool
    // opens connections, so readers never block the writer.
    let custom = {
        use diesel::Connection;
        let mut conn = SqliteConnection::establish(&url)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL;",
            options.busy_timeout.as_millis()
        ))?;
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| StoreError::Database(format!("migrating {url}: {e}")))?;
        let custom = std::sync::Arc::new(conn.immediate_transaction(crate::custom::load)?);
        crate::index_rows::rebuild_if_stale(&mut conn, &custom)?;
        custom
    };
    let manager = ConnectionManager::<SqliteConnection>::new(url);
    let pool = diesel::r2d2::Pool::builder()
        .max_size(options.pool_size.max(1))
        .connection_timeout(options.busy_timeout)
        // A connection to a local file does not go stale; testing it costs
        // a parsed statement on every checkout.
        .test_on_check_out(false)
        .connection_customizer(Box::new(Pragmas {
            synchronous: options.synchronous,
            busy_timeout: options.busy_timeout,
        }))
        .build(manager)
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok((pool, custom))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::{Connection, RunQueryDsl};

    #[derive(diesel::QueryableByName, PartialEq, Debug)]
    struct SchemaRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }

    fn schema(conn: &mut SqliteConnection) -> Vec<SchemaRow> {
        diesel::sql_query("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE '__diesel%' ORDER BY name")
            .load(conn)
            .unwrap()
    }

    #[test]
    fn migrations_go_down_and_up_again_to_the_same_schema() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let first = schema(&mut conn);
        assert!(!first.is_empty());
        conn.revert_all_migrations(SQLITE_MIGRATIONS).unwrap();
        assert!(schema(&mut conn)
            .iter()
            .all(|r| !r.sql.contains("resource")));
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        assert_eq!(schema(&mut conn), first);
    }
}
