//! Databases for tests, on either backend (feature `testing`).
//!
//! Every test that touches a database runs twice, on SQLite and on
//! PostgreSQL ([`crate::both_backends!`]). The PostgreSQL run needs a
//! server: `HEARTH_TEST_POSTGRES_URL` names one (a URL whose user may
//! create databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
//! Without it the PostgreSQL run of each test passes at once, saying it
//! skipped. Each test gets a database of its own, dropped afterwards.

use std::cell::Cell;
use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

use crate::Database;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "HEARTH_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

thread_local! {
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Sqlite) };
}

/// The backend of the test running on this thread.
pub fn backend() -> Backend {
    BACKEND.with(Cell::get)
}

/// Runs a test body on `backend`; on PostgreSQL without a server to use,
/// says so and returns (the test passes, having checked nothing there).
pub fn run_on(backend: Backend, test: &str, body: impl FnOnce()) {
    if backend == Backend::Postgres && postgres_server().is_none() {
        // Written past the test harness's capture, once per test program,
        // so a plain `cargo test` says what it did not run.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: the PostgreSQL half of these tests is skipped (they pass without running); \
                 set {POSTGRES_URL_VAR} to run them there"
            );
        });
        eprintln!("skipped {test} on PostgreSQL: set {POSTGRES_URL_VAR} to run it there");
        return;
    }
    BACKEND.with(|b| b.set(backend));
    body();
}

fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A fresh, empty database for one test, removed when dropped.
pub struct TestDatabase {
    pub database: Database,
    _dir: tempfile::TempDir,
    /// The server and the name of a PostgreSQL database to drop.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A database on this thread's backend (see [`run_on`]).
    pub fn new() -> TestDatabase {
        TestDatabase::on(backend())
    }

    pub fn on(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend {
            Backend::Sqlite => TestDatabase {
                database: Database::Sqlite(dir.path().join("hearth.db")),
                _dir: dir,
                postgres: None,
            },
            Backend::Postgres => {
                let server = postgres_server().expect("a PostgreSQL server for tests");
                let name = format!("hearth_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&server)
                    .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("CREATE DATABASE");
                TestDatabase {
                    database: Database::Postgres(with_database(&server, &name)),
                    _dir: dir,
                    postgres: Some((server, name)),
                }
            }
        }
    }

    /// A directory of the test's own (SQLite keeps its file there).
    pub fn dir(&self) -> PathBuf {
        self._dir.path().to_owned()
    }

    /// The URL to give `hearth serve` (`HEARTH_DATABASE_URL`).
    pub fn url(&self) -> String {
        match &self.database {
            Database::Sqlite(path) => path.to_string_lossy().into_owned(),
            Database::Postgres(url) => url.clone(),
        }
    }
}

impl TestDatabase {
    /// PostgreSQL only: the database goes away, as in an outage. Its
    /// connections are closed and new ones refused until [`Self::restore`].
    pub fn cut_off(&self) {
        let (server, name) = self.postgres.as_ref().expect("a PostgreSQL test database");
        let mut admin = PgConnection::establish(server).expect("the PostgreSQL server");
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid();"
            ))
            .expect("cut the database off");
    }

    /// Ends [`Self::cut_off`].
    pub fn restore(&self) {
        let (server, name) = self.postgres.as_ref().expect("a PostgreSQL test database");
        let mut admin = PgConnection::establish(server).expect("the PostgreSQL server");
        admin
            .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .expect("restore the database");
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        TestDatabase::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres {
            if let Ok(mut admin) = PgConnection::establish(server) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `server` (a PostgreSQL URL) with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Declares tests that run on both backends: each `fn name() { … }`
/// becomes the tests `name::sqlite` and `name::postgres`, whose body finds
/// its backend with [`backend`] (and [`TestDatabase::new`] uses it).
#[macro_export]
macro_rules! both_backends {
    ($($(#[$attr:meta])* fn $name:ident() $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                $(#[$attr])*
                #[test]
                fn sqlite() {
                    $crate::testing::run_on(
                        $crate::testing::Backend::Sqlite,
                        concat!(module_path!()),
                        || $body,
                    )
                }

                $(#[$attr])*
                #[test]
                fn postgres() {
                    $crate::testing::run_on(
                        $crate::testing::Backend::Postgres,
                        concat!(module_path!()),
                        || $body,
                    )
                }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_database_replaces_the_server_url_s_database() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            super::with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://h", "t3"),
            "postgres://h/t3"
        );
    }
}
