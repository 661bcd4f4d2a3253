//! Group commit. SQLite has one writer at a time, and a transaction's cost
//! is dominated by the pages it dirties (the version, and index rows spread
//! over several B-trees). One writer thread therefore takes every write
//! waiting for it and runs them in a single transaction, each in its own
//! savepoint: a write that fails rolls back alone, and every caller is
//! answered only after the commit, so an acknowledged write is durable.

use std::any::Any;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use diesel::Connection;
use hearth_model::search_params::CustomParams;

use crate::connection::Pool;
use crate::versions::Tx;
use crate::{custom, StoreError};

/// Writes that share one transaction at most.
const MAX_BATCH: usize = 64;

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
    reply: mpsc::SyncSender<Outcome>,
}

/// The handle on the writer thread; the thread ends when every handle is
/// dropped.
pub(crate) struct Writer {
    sender: mpsc::Sender<Request>,
}

/// Rolls back a savepoint for the write's own error or a database error.
enum Abort {
    Refused(Boxed),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Database(e)
    }
}

impl Writer {
    pub(crate) fn start(pool: Pool, params: Arc<RwLock<Arc<CustomParams>>>) -> Writer {
        let (sender, receiver) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("hearth-writer".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(request) => batch.push(request),
                            Err(_) => break,
                        }
                    }
                    run_batch(&pool, &params, batch);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the writer thread"));
        Writer { sender }
    }

    /// Runs `f` in a write transaction (shared with other writes) and
    /// returns its result once committed.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |tx| match f(tx) {
            Ok(value) => Ok(Box::new(value) as Boxed),
            Err(error) => Err(Box::new(error) as Boxed),
        });
        let stopped = || E::from(StoreError::Unavailable("the writer has stopped".into()));
        self.sender
            .send(Request { job, reply })
            .map_err(|_| stopped())?;
        let mismatch = || {
            E::from(StoreError::Database(
                "a write answered with the wrong type".into(),
            ))
        };
        match answer.recv().map_err(|_| stopped())? {
            Outcome::Done(value) => value.downcast::<T>().map(|v| *v).map_err(|_| mismatch()),
            Outcome::Refused(error) => Err(error
                .downcast::<E>()
                .map(|e| *e)
                .unwrap_or_else(|_| mismatch())),
            Outcome::Failed(error) => Err(E::from(error)),
        }
    }
}

fn run_batch(pool: &Pool, params: &Arc<RwLock<Arc<CustomParams>>>, batch: Vec<Request>) {
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            let error = StoreError::from(e);
            for request in batch {
                let _ = request
                    .reply
                    .send(Outcome::Failed(StoreError::Unavailable(error.to_string())));
            }
            return;
        }
    };
    let snapshot = params.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut replies = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut search_parameters_written = false;
    let committed = conn.immediate_transaction::<_, diesel::result::Error, _>(|c| {
        for request in batch {
            replies.push(request.reply);
            let job = request.job;
            let mut written = false;
            // A nested transaction is a savepoint.
            let result = c.transaction::<_, Abort, _>(|c| {
                let mut tx = Tx::new(c, snapshot.clone());
                let result = job(&mut tx).map_err(Abort::Refused);
                written = tx.search_parameters_written;
                result
            });
            outcomes.push(match result {
                Ok(value) => {
                    search_parameters_written |= written;
                    Outcome::Done(value)
                }
                Err(Abort::Refused(error)) => Outcome::Refused(error),
                Err(Abort::Database(e)) => Outcome::Failed(e.into()),
            });
        }
        Ok(())
    });
    if let Err(e) = committed {
        let error = StoreError::from(e);
        for reply in replies {
            let _ = reply.send(Outcome::Failed(StoreError::Database(error.to_string())));
        }
        return;
    }
    // Custom search parameters follow the committed SearchParameters.
    if search_parameters_written {
        match conn.immediate_transaction(custom::load) {
            Ok(reloaded) => *params.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reloaded),
            Err(e) => tracing::error!(error = %e, "cannot reload the custom search parameters"),
        }
    }
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}
