//! Group commit. SQLite has one writer at a time, and a transaction's cost
//! is dominated by the pages it dirties (the version, and index rows spread
//! over several B-trees). One writer thread therefore takes every write
//! waiting for it and runs them in a single transaction, and answers every
//! caller only after the commit, so an acknowledged write is durable.
//!
//! A write that fails must fail before it changes anything, or inside
//! [`Tx::savepoint`]: single-resource interactions check everything first,
//! and savepoints (which cost a copy of every page they touch) are kept for
//! writes of several steps, like transaction Bundles. A write that breaks
//! this rule rolls back its whole batch rather than commit half of itself.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use hearth_model::search_params::CustomParams;

use crate::connection::Pool;
use crate::full_text::PendingText;
use crate::stats::Counters;
use crate::versions::Tx;
use crate::{custom, StoreError};

/// Writes that share one transaction at most.
const MAX_BATCH: usize = 64;

/// The resources a transaction takes in at most from bulk writes (an
/// import's files, [`Writer::write_later`]). Each commit writes every page
/// it dirtied to the log, and an import's files dirty much the same index
/// pages: on synthea-120, files six at a time wrote 37% fewer bytes than
/// one at a time.
const MAX_WEIGHT: usize = 4000;

/// A write of this many resources or more gets [`LARGE_WRITE_CACHE`].
const LARGE_WEIGHT: usize = 100;

/// The page cache of a large write's connection (32 MiB).
const LARGE_WRITE_CACHE: &str = "PRAGMA cache_size = -32768";

type Boxed = Box<dyn Any + Send>;
type Job = Box<dyn FnOnce(&mut Tx<'_>) -> Result<Boxed, Boxed> + Send>;

/// What happened to one write.
enum Outcome {
    Done(Boxed),
    /// The write's own error (its savepoint was rolled back).
    Refused(Boxed),
    /// The database failed the write or the whole transaction.
    Failed(StoreError),
}

struct Request {
    job: Job,
    reply: oneshot::Sender<Outcome>,
    /// Runs in a transaction of its own (see [`Writer::write`]).
    alone: bool,
    /// The resources it writes, as far as its caller knows (1 for a
    /// single-resource interaction).
    weight: usize,
}

/// The handle on the writer thread; the thread ends when every handle is
/// dropped.
pub(crate) struct Writer {
    sender: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread; each write may run for `time_limit` (zero:
    /// no limit) before its statement is interrupted.
    pub(crate) fn start(
        pool: Pool,
        params: Arc<RwLock<Arc<CustomParams>>>,
        time_limit: std::time::Duration,
        counters: Arc<Counters>,
    ) -> Writer {
        let counting = counters.clone();
        let (sender, receiver) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("hearth-writer".into())
            .spawn(move || {
                // A write that runs alone, taken while gathering a batch,
                // waits for the next transaction.
                let mut held: Option<Request> = None;
                loop {
                    let first = match held.take() {
                        Some(request) => request,
                        None => match receiver.recv() {
                            Ok(request) => {
                                counting.queued.fetch_sub(1, Ordering::Relaxed);
                                request
                            }
                            Err(_) => break,
                        },
                    };
                    // Writes that arrive while the batch runs join it.
                    let more = |count: usize, weight: usize| {
                        if count >= MAX_BATCH || weight >= MAX_WEIGHT || held.is_some() {
                            return None;
                        }
                        let request = receiver.try_recv().ok()?;
                        counting.queued.fetch_sub(1, Ordering::Relaxed);
                        if request.alone {
                            held = Some(request);
                            None
                        } else {
                            Some(request)
                        }
                    };
                    let writes = run_batch(&pool, &params, time_limit, first, more);
                    counting.batches.fetch_add(1, Ordering::Relaxed);
                    counting
                        .batched_writes
                        .fetch_add(writes as u64, Ordering::Relaxed);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the writer thread"));
        Writer { sender, counters }
    }

    /// Runs `f` in a write transaction and returns its result once
    /// committed. The transaction is shared with other writes unless
    /// `alone`: then a failure anywhere in `f` rolls all of it back without
    /// a savepoint (which costs SQLite a copy of every page a large write
    /// touches).
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        alone: bool,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let weight = if alone { MAX_WEIGHT } else { 1 };
        let answer = self.submit(f, alone, weight)?;
        answer_of(answer.blocking_recv())
    }

    /// Queues `f`, a write of about `resources` resources, and returns at
    /// once: [`Pending::wait`] gives its result after the commit. It shares
    /// its transaction with other writes, so, like every shared write, it
    /// must fail before it changes anything; a failure after its first
    /// change rolls back every write of its transaction.
    pub(crate) fn write_later<T, E>(
        &self,
        resources: usize,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<Pending<T, E>, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let answer = self.submit(f, false, resources.max(1))?;
        Ok(Pending {
            answer,
            _types: std::marker::PhantomData,
        })
    }

    /// [`Writer::write`] for async callers: waiting for the commit holds no
    /// thread, so as many writes as there are requests can share it.
    pub(crate) fn write_async<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        alone: bool,
    ) -> impl std::future::Future<Output = Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let weight = if alone { MAX_WEIGHT } else { 1 };
        let submitted = self.submit(f, alone, weight);
        async move { answer_of(submitted?.await) }
    }

    fn submit<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        alone: bool,
        weight: usize,
    ) -> Result<oneshot::Receiver<Outcome>, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |tx| match f(tx) {
            Ok(value) => Ok(Box::new(value) as Boxed),
            Err(error) => Err(Box::new(error) as Boxed),
        });
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.sender
            .send(Request {
                job,
                reply,
                alone,
                weight,
            })
            .map_err(|_| {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                E::from(stopped())
            })?;
        Ok(answer)
    }
}

/// A write queued by [`Writer::write_later`].
pub(crate) struct Pending<T, E> {
    answer: oneshot::Receiver<Outcome>,
    _types: std::marker::PhantomData<fn() -> (T, E)>,
}

impl<T: 'static, E: From<StoreError> + 'static> Pending<T, E> {
    /// Blocks until the write is committed or failed.
    pub(crate) fn wait(self) -> Result<T, E> {
        answer_of(self.answer.blocking_recv())
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the writer has stopped".into())
}

/// A write's result, as the type its caller expects.
fn answer_of<T: 'static, E: From<StoreError> + 'static>(
    outcome: Result<Outcome, oneshot::error::RecvError>,
) -> Result<T, E> {
    let mismatch = || {
        E::from(StoreError::Database(
            "a write answered with the wrong type".into(),
        ))
    };
    match outcome.map_err(|_| E::from(stopped()))? {
        Outcome::Done(value) => value.downcast::<T>().map(|v| *v).map_err(|_| mismatch()),
        Outcome::Refused(error) => Err(error
            .downcast::<E>()
            .map(|e| *e)
            .unwrap_or_else(|_| mismatch())),
        Outcome::Failed(error) => Err(E::from(error)),
    }
}

/// Runs `first`, and the writes `more` gives while there is room (it is
/// asked with the batch's count and weight so far), in one transaction;
/// answers how many writes it ran.
fn run_batch(
    pool: &Pool,
    params: &Arc<RwLock<Arc<CustomParams>>>,
    time_limit: std::time::Duration,
    first: Request,
    mut more: impl FnMut(usize, usize) -> Option<Request>,
) -> usize {
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            let error = StoreError::from(e);
            let _ = first
                .reply
                .send(Outcome::Failed(StoreError::Unavailable(error.to_string())));
            return 1;
        }
    };
    // A large write (an imported file, a transaction Bundle): a larger page
    // cache keeps its B-tree pages from being spilled and read again before
    // the commit.
    let large = first.alone || first.weight >= LARGE_WEIGHT;
    if large {
        if let Err(e) = conn.batch_execute(LARGE_WRITE_CACHE) {
            tracing::warn!(error = %e, "cannot enlarge the page cache");
        }
    }
    let snapshot = params.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut text = PendingText::default();
    let mut replies = Vec::new();
    let mut outcomes = Vec::new();
    let mut search_parameters_written = false;
    // The error of a write alone in its transaction, which it rolled back.
    let mut own_failure: Option<Boxed> = None;
    let committed = conn.write_transaction::<_, diesel::result::Error>(|c| {
        let mut weight = 0;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            weight += request.weight;
            replies.push(request.reply);
            let alone = request.alone;
            let before = c.changes()?;
            let mark = text.mark();
            let mut tx = Tx::new(c, snapshot.clone(), &mut text);
            // A write's searches (conditions, conditional references) could
            // otherwise hold the only writer for as long as they run.
            let budget = crate::Budget::new(time_limit);
            let result = {
                let _entered = budget.enter();
                (request.job)(&mut tx)
            };
            let (written, not_its_own) = (tx.search_parameters_written, tx.not_its_own_changes);
            match result {
                Ok(value) => {
                    search_parameters_written |= written;
                    outcomes.push(Outcome::Done(value));
                }
                Err(error) if alone => {
                    own_failure = Some(error);
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                Err(error) => {
                    text.restore(mark);
                    // A write that fails must have changed nothing outside
                    // its savepoints; otherwise nothing in this transaction
                    // can be trusted, and all of it is rolled back.
                    if c.changes()? - before != not_its_own {
                        tracing::error!(
                            "a write failed after changing the database; its batch is rolled back"
                        );
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                    outcomes.push(Outcome::Refused(error));
                }
            }
            if !alone {
                next = more(replies.len(), weight);
            }
        }
        text.apply(c)?;
        Ok(())
    });
    if large {
        if let Err(e) = conn.batch_execute(crate::connection::CACHE_SIZE) {
            tracing::warn!(error = %e, "cannot restore the page cache");
        }
    }
    let writes = replies.len();
    if let Some(error) = own_failure {
        if let Some(reply) = replies.into_iter().next() {
            let _ = reply.send(Outcome::Refused(error));
        }
        return writes;
    }
    if let Err(e) = committed {
        let error = match e {
            diesel::result::Error::RollbackTransaction => StoreError::Unavailable(
                "the write was rolled back with others sharing its transaction; try again".into(),
            ),
            other => StoreError::from(other),
        };
        for reply in replies {
            let _ = reply.send(Outcome::Failed(match &error {
                StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                other => StoreError::Database(other.to_string()),
            }));
        }
        return writes;
    }
    // Custom search parameters follow the committed SearchParameters.
    if search_parameters_written {
        match conn.write_transaction(custom::load) {
            Ok(reloaded) => *params.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reloaded),
            Err(e) => tracing::error!(error = %e, "cannot reload the custom search parameters"),
        }
    }
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
    writes
}
