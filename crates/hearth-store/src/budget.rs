//! How long the database work of one request may run, and whether its
//! client still waits for it.
//!
//! SQLite has no statement timeout. Every SQLite connection gets a progress
//! handler ([`on_progress`]) that SQLite calls every few thousand
//! virtual-machine steps; it interrupts the statement when the budget of
//! the work running on that thread is spent or cancelled. The budget is
//! that thread's ([`Budget::enter`]): a read runs on its caller's thread,
//! a write on the writer thread, each with its own. An interrupted
//! statement fails with SQLite's "interrupted", which [`interrupted`] turns
//! into [`StoreError::TooSlow`] or [`StoreError::Cancelled`] while the
//! budget is still in place to say which.
//!
//! PostgreSQL cancels a statement at `statement_timeout` itself; there a
//! budget is checked before each piece of work ([`Budget::check`]).

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sqlite::ProgressDecision;

use crate::StoreError;

/// SQLite virtual-machine steps between two looks at the budget: about a
/// tenth of a millisecond of work, so a stop is prompt and the look (a
/// clock read) costs nothing measurable.
const STEPS: NonZeroU32 = match NonZeroU32::new(10_000) {
    Some(n) => n,
    None => panic!("a positive step count"),
};

/// The time one request's database work may take and whether it was
/// cancelled; cheap to clone (clones share the cancellation).
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: no time limit.
    deadline: Option<Instant>,
    limit: Duration,
    cancelled: AtomicBool,
}

/// Why work stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// The time limit passed.
    Time(Duration),
    /// [`Budget::cancel`] was called: nobody waits for the answer.
    Cancelled,
}

impl Budget {
    /// A budget of `limit` from now; a zero limit means no time limit
    /// (the work can still be cancelled).
    pub fn new(limit: Duration) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                deadline: (!limit.is_zero()).then(|| Instant::now() + limit),
                limit,
                cancelled: AtomicBool::new(false),
            }),
        }
    }

    /// Stops the work this budget bounds at its next look.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the budget is spent, and how.
    pub fn spent(&self) -> Option<Spent> {
        if self.inner.cancelled.load(Ordering::Relaxed) {
            return Some(Spent::Cancelled);
        }
        match self.inner.deadline {
            Some(deadline) if Instant::now() >= deadline => Some(Spent::Time(self.inner.limit)),
            _ => None,
        }
    }

    /// An error if the budget is spent: for work about to start.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.spent() {
            Some(spent) => Err(spent.into()),
            None => Ok(()),
        }
    }

    /// Makes this the budget of the database work the current thread does
    /// until the guard is dropped.
    pub(crate) fn enter(&self) -> Entered {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        Entered { previous }
    }
}

impl From<Spent> for StoreError {
    fn from(spent: Spent) -> Self {
        match spent {
            Spent::Time(limit) => StoreError::TooSlow(format!(
                "the request's database work was stopped after its limit of {} ms; \
                 narrow the search (more selective parameters, fewer _include/_revinclude, a smaller _count)",
                limit.as_millis()
            )),
            Spent::Cancelled => StoreError::Cancelled,
        }
    }
}

/// Puts back the thread's previous budget when dropped.
pub(crate) struct Entered {
    previous: Option<Budget>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| c.replace(previous));
    }
}

/// Cancels a budget when dropped: a request holds one, so when its client
/// goes away and the server drops the request, its database work stops.
#[derive(Debug)]
pub struct CancelOnDrop(pub Budget);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// The current thread's budget, spent.
fn current_spent() -> Option<Spent> {
    CURRENT
        .try_with(|c| c.try_borrow().ok()?.as_ref()?.spent())
        .ok()
        .flatten()
}

/// Installs the progress handler on a new SQLite connection. It never
/// panics (a panic in it would abort the process).
pub(crate) fn on_progress(conn: &mut diesel::sqlite::SqliteConnection) {
    conn.on_progress(STEPS, || match current_spent() {
        Some(_) => ProgressDecision::Interrupt,
        None => ProgressDecision::Continue,
    });
}

/// What an "interrupted" statement means: the current thread's budget
/// stopped it.
pub(crate) fn interrupted() -> Option<StoreError> {
    current_spent().map(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl};

    /// A statement that counts to a billion: seconds of work.
    const SLOW: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT count(*) FROM n";

    fn connection() -> diesel::sqlite::SqliteConnection {
        let mut conn = diesel::sqlite::SqliteConnection::establish(":memory:").unwrap();
        on_progress(&mut conn);
        conn
    }

    #[test]
    fn a_spent_budget_interrupts_the_statement_and_says_why() {
        let mut conn = connection();
        let budget = Budget::new(Duration::from_millis(50));
        let _entered = budget.enter();
        let started = Instant::now();
        let error = diesel::sql_query(SLOW).execute(&mut conn).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ran {:?}",
            started.elapsed()
        );
        let error = StoreError::from(error);
        assert!(matches!(error, StoreError::TooSlow(_)), "{error}");
    }

    #[test]
    fn a_cancelled_budget_interrupts_from_another_thread() {
        let mut conn = connection();
        let budget = Budget::new(Duration::ZERO);
        let guard = CancelOnDrop(budget.clone());
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(guard);
        });
        let _entered = budget.enter();
        let error = StoreError::from(diesel::sql_query(SLOW).execute(&mut conn).unwrap_err());
        canceller.join().unwrap();
        assert!(matches!(error, StoreError::Cancelled), "{error}");
    }

    #[test]
    fn without_a_budget_statements_run_to_the_end() {
        let mut conn = connection();
        conn.batch_execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            .unwrap();
        // A spent budget no longer entered stops nothing.
        {
            let spent = Budget::new(Duration::from_nanos(1));
            std::thread::sleep(Duration::from_millis(1));
            let _entered = spent.enter();
            assert!(diesel::sql_query(SLOW).execute(&mut conn).is_err());
        }
        let small = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT count(*) FROM n";
        diesel::sql_query(small).execute(&mut conn).unwrap();
    }
}
