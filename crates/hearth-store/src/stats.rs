//! What an operator watches of the store (served as metrics by the HTTP
//! crate): the connection pool, the waits for it, the SQLite writer's queue
//! and batches, and the background jobs. Counters are atomics bumped where
//! the work happens; the rest is read when asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use diesel::{QueryableByName, RunQueryDsl};

use crate::statement::Sql;
use crate::{Result, Store};

/// Counters the store keeps as it works.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Pool checkouts by reads and direct writes, and the time they waited.
    pub(crate) checkouts: AtomicU64,
    pub(crate) checkout_wait_micros: AtomicU64,
    /// Writes queued for the SQLite writer and not yet taken.
    pub(crate) queued: AtomicU64,
    /// Transactions the writer committed (or tried), and the writes in them.
    pub(crate) batches: AtomicU64,
    pub(crate) batched_writes: AtomicU64,
}

impl Counters {
    /// Notes a pool checkout that began at `started`.
    pub(crate) fn checked_out(&self, started: Instant) {
        self.checkouts.fetch_add(1, Ordering::Relaxed);
        self.checkout_wait_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// A snapshot of the store's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Connections open in the pool, and of those, idle ones.
    pub pool_connections: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    pub checkouts: u64,
    pub checkout_wait_seconds: f64,
    /// SQLite only: writes waiting for the writer.
    pub writer_queue: Option<u64>,
    pub writer_batches: u64,
    pub writer_batched_writes: u64,
}

/// Background jobs of one kind and status, and how far along they are.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct JobCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub jobs: i64,
    /// Resources done and to do, summed over the jobs.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub done: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub total: i64,
}

impl Store {
    /// The store's state now.
    pub fn stats(&self) -> StoreStats {
        let state = self.pool.state();
        let counters = &self.counters;
        StoreStats {
            pool_connections: state.connections,
            pool_idle: state.idle_connections,
            pool_max: self.pool.max_size(),
            checkouts: counters.checkouts.load(Ordering::Relaxed),
            checkout_wait_seconds: counters.checkout_wait_micros.load(Ordering::Relaxed) as f64
                / 1e6,
            writer_queue: self
                .is_sqlite()
                .then(|| counters.queued.load(Ordering::Relaxed)),
            writer_batches: counters.batches.load(Ordering::Relaxed),
            writer_batched_writes: counters.batched_writes.load(Ordering::Relaxed),
        }
    }

    /// Background jobs by kind and status.
    pub fn job_counts(&self) -> Result<Vec<JobCount>> {
        self.read_with(|tx| {
            Ok(Sql::with_binds(
                "SELECT kind, status, COUNT(*) AS jobs, CAST(SUM(done) AS BIGINT) AS done, \
                 CAST(SUM(total) AS BIGINT) AS total FROM jobs GROUP BY kind, status ORDER BY kind, status",
                Vec::new(),
            )
            .load(tx.conn)?)
        })
    }
}
