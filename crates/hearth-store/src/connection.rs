//! Opening the database: which backend a URL names, the connection pool,
//! per-connection settings and the embedded migrations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{CustomizeConnection, ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use hearth_model::search_params::CustomParams;

use crate::db::Db;
use crate::{Result, StoreError};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

pub(crate) type Pool = diesel::r2d2::Pool<Manager>;

/// The database a store lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file, created if missing (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL server: a `postgres://` connection URL.
    Postgres(String),
}

impl Database {
    /// The backend a database URL names: `postgres://…` or
    /// `postgresql://…` is PostgreSQL; `sqlite://path` or a plain path is
    /// an SQLite file.
    pub fn from_url(url: &str) -> Database {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Database::Postgres(url.to_owned())
        } else {
            Database::Sqlite(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
        }
    }

    /// The database for a log line: the file, or the server without the
    /// password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => without_password(url),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

/// A connection URL with its password masked, for messages and logs.
pub fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// The page cache of each SQLite connection (8 MB).
pub(crate) const CACHE_SIZE: &str = "PRAGMA cache_size = -8000";

/// Reads of the database file go through a memory map of up to this many
/// bytes rather than a system call and a copy per page missing from the
/// cache (the log's pages are still read).
pub(crate) const MMAP_SIZE: &str = "PRAGMA mmap_size = 1073741824";

/// Temporary tables and indexes, and statement journals, stay in memory.
pub(crate) const TEMP_STORE: &str = "PRAGMA temp_store = MEMORY";

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
pub struct StoreOptions {
    /// SQLite only (PostgreSQL commits are durable by its own settings).
    pub synchronous: Synchronous,
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long a request waits for a pool connection (and, on SQLite,
    /// for the write lock).
    pub busy_timeout: Duration,
    /// The longest a write may run on SQLite before its statement is
    /// interrupted, and a statement on PostgreSQL before the server
    /// cancels it (zero: no limit). Reads are bounded by their request's
    /// [`crate::Budget`].
    pub statement_timeout: Duration,
    /// How long a node keeps a background job after its last batch: when
    /// it stops (or restarts, as another node), the job waits this long
    /// before another node takes it over.
    pub job_lease: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Normal,
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            job_lease: Duration::from_secs(30),
        }
    }
}

/// A connection of the pool: the database connection, and on PostgreSQL
/// the backend process serving it, learnt once, so that a statement it
/// runs can be cancelled (`cancel.rs`) without asking each time.
pub(crate) struct Conn {
    db: Db,
    pub(crate) backend_pid: Option<i32>,
}

impl std::ops::Deref for Conn {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Db {
        &mut self.db
    }
}

#[derive(diesel::QueryableByName)]
struct BackendPid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// Opens connections of the pool, for the backend the URL names.
#[derive(Debug)]
pub(crate) struct Manager {
    database: Database,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<Conn, Self::Error> {
        match &self.database {
            Database::Sqlite(path) => SqliteConnection::establish(&path.to_string_lossy())
                .map(|c| Conn {
                    db: Db::Sqlite(c),
                    backend_pid: None,
                })
                .map_err(diesel::r2d2::Error::ConnectionError),
            Database::Postgres(url) => {
                let mut db = PgConnection::establish(url)
                    .map(Db::Pg)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                let pid = diesel::RunQueryDsl::get_result::<BackendPid>(
                    diesel::sql_query("SELECT pg_backend_pid() AS pid"),
                    &mut db,
                )
                .map_err(diesel::r2d2::Error::QueryError)?
                .pid;
                Ok(Conn {
                    db,
                    backend_pid: Some(pid),
                })
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

#[derive(Debug)]
struct Settings {
    synchronous: Synchronous,
    busy_timeout: Duration,
    statement_timeout: Duration,
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for Settings {
    fn on_acquire(&self, conn: &mut Conn) -> std::result::Result<(), diesel::r2d2::Error> {
        let settings = match &mut **conn {
            Db::Sqlite(sqlite) => {
                crate::budget::on_progress(sqlite);
                let synchronous = match self.synchronous {
                    Synchronous::Normal => "NORMAL",
                    Synchronous::Full => "FULL",
                };
                // The checkpoint thread copies the log into the database;
                // the connection that writes checkpoints only when the log
                // is large.
                format!(
                    "PRAGMA busy_timeout = {}; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
                     {CACHE_SIZE}; {MMAP_SIZE}; {TEMP_STORE}; \
                     PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
                    self.busy_timeout.as_millis(),
                    crate::checkpoint::WRITER_CHECKPOINT_PAGES,
                    64 * 1024 * 1024,
                )
            }
            Db::Pg(_) => format!(
                "SET statement_timeout = {}; SET lock_timeout = {};",
                self.statement_timeout.as_millis(),
                self.busy_timeout.as_millis()
            ),
        };
        conn.batch_execute(&settings)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens the pool of `database`, bringing its schema up to date and its
/// search index in line with the extraction rules.
pub(crate) fn open(
    database: &Database,
    options: &StoreOptions,
) -> Result<(Pool, std::sync::Arc<CustomParams>)> {
    let custom = match database {
        Database::Sqlite(path) => prepare_sqlite(path, options)?,
        Database::Postgres(url) => prepare_postgres(url)?,
    };
    let pool = diesel::r2d2::Pool::builder()
        .max_size(options.pool_size.max(1))
        .connection_timeout(options.busy_timeout)
        // A connection to a local file does not go stale, and testing it
        // costs a statement on every checkout; a server connection can
        // drop at any time, and a dead one must not answer a request.
        .test_on_check_out(database.is_postgres())
        // PostgreSQL may be down when the server starts: the pool opens
        // its connections as they are needed, and requests answer 503
        // until it is back.
        .min_idle(Some(0))
        .connection_customizer(Box::new(Settings {
            synchronous: options.synchronous,
            busy_timeout: options.busy_timeout,
            statement_timeout: options.statement_timeout,
        }))
        .build_unchecked(Manager {
            database: database.clone(),
        });
    Ok((pool, custom))
}

fn prepare_sqlite(path: &Path, options: &StoreOptions) -> Result<std::sync::Arc<CustomParams>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let url = path.to_string_lossy().into_owned();
    let mut conn = SqliteConnection::establish(&url)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
    // WAL is a property of the database file: set it once, before the pool
    // opens connections, so readers never block the writer.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL;",
        options.busy_timeout.as_millis()
    ))?;
    conn.run_pending_migrations(SQLITE_MIGRATIONS)
        .map_err(|e| StoreError::Database(format!("migrating {url}: {e}")))?;
    prepare_db(&mut Db::Sqlite(conn))
}

fn prepare_postgres(url: &str) -> Result<std::sync::Arc<CustomParams>> {
    let mut conn = PgConnection::establish(url)
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
    // Nodes starting together migrate one at a time; the lock ends with
    // this connection.
    conn.batch_execute(&format!(
        "SELECT pg_advisory_lock({})",
        crate::db::lock_key("hearth migrations")
    ))?;
    conn.run_pending_migrations(POSTGRES_MIGRATIONS)
        .map_err(|e| StoreError::Database(format!("migrating PostgreSQL: {e}")))?;
    prepare_db(&mut Db::Pg(conn))
}

fn prepare_db(db: &mut Db) -> Result<std::sync::Arc<CustomParams>> {
    // A bulk load that stopped midway left indexes to build.
    crate::bulk_load::restore(db)?;
    let custom = std::sync::Arc::new(db.write_transaction(crate::custom::load)?);
    crate::index_rows::rebuild_if_stale(db, &custom)?;
    crate::patients::fill_if_stale(db)?;
    Ok(custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, TestDatabase};
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName, PartialEq, Debug)]
    struct SchemaRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }

    /// Every table, column and index, as text.
    fn schema(conn: &mut Db) -> Vec<SchemaRow> {
        let query = match conn {
            Db::Sqlite(_) => "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE '__diesel%' ORDER BY name",
            Db::Pg(_) => "SELECT sql FROM ( \
                SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable AS sql \
                FROM information_schema.columns WHERE table_schema = 'public' \
                UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public') s \
                WHERE sql NOT LIKE '%__diesel%' ORDER BY sql",
        };
        diesel::sql_query(query).load(conn).unwrap()
    }

    fn round_trip(conn: &mut Db, migrations: impl Fn() -> EmbeddedMigrations) {
        conn.run_pending_migrations(migrations()).unwrap();
        let first = schema(conn);
        assert!(first.iter().any(|r| r.sql.contains("resource_versions")));
        conn.revert_all_migrations(migrations()).unwrap();
        assert!(schema(conn).iter().all(|r| !r.sql.contains("resource")));
        conn.run_pending_migrations(migrations()).unwrap();
        assert_eq!(schema(conn), first);
    }

    crate::both_backends! {
        fn migrations_go_down_and_up_again_to_the_same_schema() {
            let database = TestDatabase::new();
            match (&database.database, crate::testing::backend()) {
                (Database::Sqlite(path), Backend::Sqlite) => round_trip(
                    &mut Db::Sqlite(SqliteConnection::establish(&path.to_string_lossy()).unwrap()),
                    || SQLITE_MIGRATIONS,
                ),
                (Database::Postgres(url), Backend::Postgres) => round_trip(
                    &mut Db::Pg(PgConnection::establish(url).unwrap()),
                    || POSTGRES_MIGRATIONS,
                ),
                other => panic!("a test database of the wrong backend: {other:?}"),
            }
        }
    }
}
