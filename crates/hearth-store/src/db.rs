//! The database connection, for either backend, and the few places where
//! their SQL differs (the dialect). Everything else in the store is written
//! once, in SQL both understand.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};

use crate::statement::Sql;

/// Runs `$body` with `$c` bound to the backend's own connection, for
/// statements run many times a request or a load: through [`Db`], diesel's
/// multi-backend wrapper writes a statement's whole SQL text again at each
/// of its several walks of it.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Db::Sqlite($c) => $body,
            $crate::db::Db::Pg($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// A connection to SQLite or PostgreSQL; diesel queries run on either.
#[derive(diesel::MultiConnection)]
pub(crate) enum Db {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which SQL the connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Dialect {
    #[default]
    Sqlite,
    Postgres,
}

impl Db {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Pg(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs `f` in a write transaction. On SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`), so it never fails half-way for want of
    /// it; on PostgreSQL writers lock the rows and keys they change.
    pub(crate) fn write_transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        match self {
            Db::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
            Db::Pg(_) => <Db as Connection>::TransactionManager::begin_transaction(self)?,
        }
        match f(self) {
            Ok(value) => {
                <Db as Connection>::TransactionManager::commit_transaction(self)?;
                Ok(value)
            }
            Err(e) => {
                // The transaction's own error matters more than a failed
                // rollback (which leaves the connection broken: the pool
                // discards it).
                let _ = <Db as Connection>::TransactionManager::rollback_transaction(self);
                Err(e)
            }
        }
    }

    /// Rows changed on this connection since it opened. SQLite counts
    /// every INSERT, UPDATE and DELETE, including those a savepoint rolled
    /// back; the group-commit writer uses it to tell a write that failed
    /// cleanly from one that must take its batch down with it. PostgreSQL
    /// writes are not batched (a failed one rolls back alone): zero.
    pub(crate) fn changes(&mut self) -> diesel::QueryResult<i64> {
        match self {
            Db::Sqlite(_) => Sql::new("SELECT total_changes() AS n")
                .cached::<TotalChanges>()
                .get_result::<Changes>(self)
                .map(|c| c.n),
            Db::Pg(_) => Ok(0),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Changes {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

struct TotalChanges;

/// Why a transaction or savepoint was rolled back: the work refused (its
/// own error), or the database failed.
pub(crate) enum Abort<E> {
    Refused(E),
    Database(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for Abort<E> {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Database(e)
    }
}

impl Dialect {
    /// Written before a column in a condition that an index on it should
    /// not drive: SQLite's planner needs the hint (a unary `+`), and
    /// PostgreSQL's, which weighs statistics, does without.
    pub(crate) fn no_index(self) -> &'static str {
        match self {
            Dialect::Sqlite => "+",
            Dialect::Postgres => "",
        }
    }
}

/// A 64-bit key for PostgreSQL's advisory locks: the same text gives the
/// same key on every node (FNV-1a).
pub(crate) fn lock_key(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_keys_are_stable() {
        assert_eq!(super::lock_key(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_ne!(super::lock_key("Patient/a"), super::lock_key("Patient/b"));
    }
}
