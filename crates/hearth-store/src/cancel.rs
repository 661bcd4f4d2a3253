//! Stopping a PostgreSQL statement whose request's budget is spent: its
//! client went away, or its time is up. SQLite's progress handler stops a
//! statement from inside (`budget.rs`); PostgreSQL has to be asked, by
//! `pg_cancel_backend` on another connection, naming the backend process
//! that runs the statement.
//!
//! A cancel is sent only while the statement's connection is registered
//! here, and the canceller holds the registry's lock while it sends, so
//! the connection cannot be handed to another request in between. After a
//! cancel, the reader runs `SELECT 1` until one succeeds before the
//! connection goes back to the pool: PostgreSQL handles the signal at once,
//! so no cancel is left to hit another request's statement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};

use crate::budget::Budget;
use crate::db::Db;
use crate::Result;

/// How often the canceller looks at the budgets of running reads.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// The running reads of a PostgreSQL store, and the thread that cancels
/// those whose budget is spent; stops when dropped.
pub(crate) struct Canceller {
    shared: Arc<Shared>,
}

struct Shared {
    url: String,
    running: Mutex<Running>,
    wake: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Running {
    next: u64,
    reads: HashMap<u64, Read>,
}

struct Read {
    /// The backend process running the read's statements.
    pid: i32,
    budget: Budget,
    cancelled: bool,
}

#[derive(QueryableByName)]
struct Sent {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    sent: bool,
}

impl Canceller {
    pub(crate) fn start(url: &str) -> Canceller {
        let shared = Arc::new(Shared {
            url: url.to_owned(),
            running: Mutex::new(Running::default()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let looking = shared.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("hearth-pg-cancel".into())
            .spawn(move || looking.run())
        {
            tracing::error!(error = %e, "cannot start the PostgreSQL canceller");
        }
        Canceller { shared }
    }

    /// Runs `f` on `conn`, served by backend `pid`, as a read that is
    /// cancelled when `budget` is spent.
    pub(crate) fn run<T>(
        &self,
        conn: &mut Db,
        pid: i32,
        budget: &Budget,
        f: impl FnOnce(&mut Db) -> Result<T>,
    ) -> Result<T> {
        let id = {
            let mut running = self.shared.lock();
            running.next += 1;
            let id = running.next;
            running.reads.insert(
                id,
                Read {
                    pid,
                    budget: budget.clone(),
                    cancelled: false,
                },
            );
            id
        };
        self.shared.wake.notify_one();
        let result = f(conn);
        let cancelled = self
            .shared
            .lock()
            .reads
            .remove(&id)
            .is_some_and(|r| r.cancelled);
        if cancelled {
            // A cancel that arrives after the statement it was meant for
            // would stop this one instead; then it is spent.
            for _ in 0..10 {
                if diesel::sql_query("SELECT 1").execute(conn).is_ok() {
                    break;
                }
            }
        }
        result
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut conn: Option<PgConnection> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let mut running = self.lock();
            if running.reads.is_empty() {
                let (guard, _) = self
                    .wake
                    .wait_timeout(running, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner());
                running = guard;
            }
            for read in running.reads.values_mut() {
                if read.cancelled || read.budget.spent().is_none() {
                    continue;
                }
                // The lock is held: the read cannot finish and hand its
                // connection on before the cancel is sent.
                match cancel(&mut conn, &self.url, read.pid) {
                    Ok(()) => read.cancelled = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot cancel a PostgreSQL statement");
                        conn = None;
                    }
                }
            }
            drop(running);
            std::thread::sleep(LOOK_EVERY);
        }
    }
}

fn cancel(conn: &mut Option<PgConnection>, url: &str, pid: i32) -> Result<()> {
    if conn.is_none() {
        *conn = Some(
            PgConnection::establish(url)
                .map_err(|e| crate::StoreError::Unavailable(e.to_string()))?,
        );
    }
    let Some(conn) = conn.as_mut() else {
        return Ok(());
    };
    let sent: Sent = diesel::sql_query("SELECT pg_cancel_backend($1) AS sent")
        .bind::<diesel::sql_types::Integer, _>(pid)
        .get_result(conn)?;
    if !sent.sent {
        tracing::debug!(pid, "no PostgreSQL backend to cancel");
    }
    Ok(())
}
