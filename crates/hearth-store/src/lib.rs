//! Versioned FHIR resource storage on diesel.
//!
//! Every write (create, update, delete) adds a row to `resource_versions` and
//! moves the `resources` pointer in one database transaction. The data
//! functions live on [`Tx`], an open transaction, so they work alone (through
//! the [`Store`] shorthands, one transaction each) and inside a caller's
//! transaction (transaction Bundles run many of them in one [`Store::write`]).

mod access;
pub mod backup;
mod body;
mod budget;
mod bulk_load;
mod cancel;
mod checkpoint;
mod clients;
mod connection;
mod custom;
mod db;
mod direct;
mod document;
mod error;
mod export;
mod full_text;
mod group_commit;
mod history;
mod index_rows;
mod jobs;
mod keys;
mod patients;
mod revoked;
mod schema;
pub mod search;
mod statement;
mod stats;
mod store_meta;
pub mod testing;
mod ucum;
mod users;
mod versions;

pub use access::{check_filter, Access};
pub use budget::{Budget, CancelOnDrop, Spent};
pub use connection::{without_password, Database, StoreOptions, Synchronous};
pub use document::Document;
pub use error::StoreError;
pub use export::{parse_type_filter, ExportPart, ExportRequest};
pub use full_text::TextQuery;
pub use history::{HistoryPage, HistoryQuery, HistoryScope, HistorySnapshot};
pub use jobs::{Job, JobStatus};
pub use stats::{JobCount, StoreStats};
pub use versions::{Method, StoredVersion, Tx, Written};

use std::sync::{Arc, RwLock};

use connection::Pool;
use hearth_model::search_params::CustomParams;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// The custom search parameters of this database, replaced whole when
    /// a SearchParameter is written or a reindex finishes.
    custom: Arc<RwLock<Arc<CustomParams>>>,
    /// How writes reach the database.
    writes: Writes,
    /// This process among the nodes sharing the database (job leases).
    node: Arc<str>,
    /// How long this node keeps a job after its last batch.
    job_lease: std::time::Duration,
    /// The budget reads through this handle run under (see
    /// [`Store::bounded`]).
    budget: Option<Budget>,
    /// SQLite: shared with every process using the store, so that a
    /// restore cannot replace it under them.
    _lock: Option<Arc<backup::StoreLock>>,
    /// What the store counts as it works (see [`Store::stats`]).
    counters: Arc<stats::Counters>,
    /// The grant reads and writes through this handle are held to (see
    /// [`Store::under`]).
    access: Access,
}

#[derive(Clone)]
enum Writes {
    /// SQLite: one writer thread, whose transactions concurrent writes
    /// share (group commit), and the thread that checkpoints its log.
    Grouped {
        writer: Arc<group_commit::Writer>,
        _checkpointer: Arc<checkpoint::Checkpointer>,
    },
    /// PostgreSQL: each write in its own transaction, on the caller's
    /// thread; writers of one resource wait for each other on its lock.
    /// Searches whose budget is spent are cancelled by `canceller`.
    Direct {
        _watch: Arc<direct::CustomWatch>,
        canceller: Arc<cancel::Canceller>,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A write queued by [`Store::write_later`].
pub struct PendingWrite<T, E>(Later<T, E>);

enum Later<T, E> {
    Queued(group_commit::Pending<T, E>),
    Done(std::result::Result<T, E>),
}

impl<T: 'static, E: From<StoreError> + 'static> PendingWrite<T, E> {
    /// Blocks until the write is committed or has failed.
    pub fn wait(self) -> std::result::Result<T, E> {
        match self.0 {
            Later::Queued(pending) => pending.wait(),
            Later::Done(result) => result,
        }
    }
}

impl Store {
    /// Opens (creating if needed) a database and brings its schema up to
    /// date.
    pub fn open(database: &Database, options: &StoreOptions) -> Result<Store> {
        // Taken before anything is read: a restore in progress holds it.
        let lock = match database {
            Database::Sqlite(path) => Some(Arc::new(backup::StoreLock::shared(path)?)),
            Database::Postgres(_) => None,
        };
        let (pool, custom) = connection::open(database, options)?;
        let custom = Arc::new(RwLock::new(custom));
        let counters = Arc::new(stats::Counters::default());
        let writes = match database {
            Database::Sqlite(path) => Writes::Grouped {
                writer: Arc::new(group_commit::Writer::start(
                    pool.clone(),
                    custom.clone(),
                    options.statement_timeout,
                    counters.clone(),
                )),
                _checkpointer: Arc::new(checkpoint::Checkpointer::start(
                    path,
                    options.busy_timeout,
                )?),
            },
            Database::Postgres(url) => Writes::Direct {
                _watch: Arc::new(direct::CustomWatch::start(pool.clone(), custom.clone())),
                canceller: Arc::new(cancel::Canceller::start(url)),
            },
        };
        Ok(Store {
            pool,
            custom,
            writes,
            node: uuid::Uuid::new_v4().to_string().into(),
            job_lease: options.job_lease,
            budget: None,
            _lock: lock,
            counters,
            access: Access::everything(),
        })
    }

    /// This store, with its reads bounded by `budget`: they stop (with
    /// [`StoreError::TooSlow`] or [`StoreError::Cancelled`]) once it is
    /// spent. A request's handlers use such a handle, so a search cannot
    /// outlive its time limit or its client. Writes are bounded by the
    /// statement timeout on their own.
    pub fn bounded(&self, budget: Budget) -> Store {
        Store {
            budget: Some(budget),
            ..self.clone()
        }
    }

    /// This store, with everything read or written through it held to
    /// `access`: a request's handlers use such a handle, so what a token
    /// grants is enforced where the data is read, whatever the path.
    pub fn under(&self, access: Access) -> Store {
        Store {
            access,
            ..self.clone()
        }
    }

    /// The grant of this handle.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// [`Store::open`] for an SQLite file.
    pub fn open_sqlite(path: &std::path::Path, options: &StoreOptions) -> Result<Store> {
        Store::open(&Database::Sqlite(path.to_owned()), options)
    }

    /// Prepares an empty store for a bulk load (see `bulk_load.rs`): it
    /// writes without the secondary indexes the load does not search.
    /// Answers whether it deferred them; [`Store::finish_bulk_load`] builds
    /// them, as does opening the store if the load never finished.
    pub fn begin_bulk_load(&self) -> Result<bool> {
        bulk_load::defer(&mut *self.pool.get()?)
    }

    /// Builds the indexes [`Store::begin_bulk_load`] deferred; answers
    /// whether there were any.
    pub fn finish_bulk_load(&self) -> Result<bool> {
        bulk_load::restore(&mut *self.pool.get()?)
    }

    /// Whether the database answers (readiness).
    pub fn ping(&self) -> Result<()> {
        use diesel::r2d2::R2D2Connection;
        let mut conn = self.pool.get()?;
        conn.ping()?;
        Ok(())
    }

    /// The custom search parameters now in force.
    pub fn custom_params(&self) -> Arc<CustomParams> {
        self.custom
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_custom_params(&self, custom: CustomParams) {
        *self.custom.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(custom);
    }

    /// Runs `f` in a write transaction: everything it writes is committed
    /// together, or nothing is if it returns an error (in which case writes
    /// of other callers sharing the transaction are unaffected). `f` may
    /// fail with the caller's own error type.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    ) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_as(f, false)
    }

    /// [`Store::write`] in a transaction shared with no other write, so
    /// that `f` needs no savepoint to fail cleanly at any point: for large
    /// writes (an import's files), where SQLite's savepoints cost most.
    pub fn write_alone<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    ) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_as(f, true)
    }

    /// Queues a large write of about `resources` resources (an imported
    /// file) and returns at once; [`PendingWrite::wait`] gives its result
    /// once committed. On SQLite it may share its transaction with other
    /// writes, so `f` must fail before it changes anything: a failure after
    /// that rolls back every write sharing the transaction, and each of them
    /// fails with [`StoreError::Unavailable`]. On PostgreSQL it runs now, in
    /// a transaction of its own.
    pub fn write_later<T, E>(
        &self,
        resources: usize,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    ) -> PendingWrite<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let f = self.held(f);
        PendingWrite(match &self.writes {
            Writes::Grouped { writer, .. } => match writer.write_later(resources, f) {
                Ok(pending) => Later::Queued(pending),
                Err(e) => Later::Done(Err(e)),
            },
            Writes::Direct { .. } => {
                Later::Done(direct::write(&self.pool, &self.custom, &self.counters, f))
            }
        })
    }

    /// `f`, run under this handle's grant.
    fn held<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    ) -> impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static {
        let access = self.access.clone();
        move |tx: &mut Tx<'_>| {
            tx.access = access;
            f(tx)
        }
    }

    fn write_as<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
        alone: bool,
    ) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let f = self.held(f);
        match &self.writes {
            Writes::Grouped { writer, .. } => writer.write(f, alone),
            // Each write on PostgreSQL is alone in its transaction.
            Writes::Direct { .. } => direct::write(&self.pool, &self.custom, &self.counters, f),
        }
    }

    /// [`Store::write`] for async callers: nothing blocks while the write
    /// waits for its commit (on PostgreSQL it runs on tokio's blocking
    /// pool).
    pub fn write_async<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    ) -> impl std::future::Future<Output = std::result::Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_async_as(f, false)
    }

    /// [`Store::write_alone`] for async callers.
    pub fn write_alone_async<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    ) -> impl std::future::Future<Output = std::result::Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_async_as(f, true)
    }

    fn write_async_as<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
        alone: bool,
    ) -> impl std::future::Future<Output = std::result::Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        type Boxed<T, E> =
            std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<T, E>> + Send>>;
        let f = self.held(f);
        match &self.writes {
            Writes::Grouped { writer, .. } => Box::pin(writer.write_async(f, alone)) as Boxed<T, E>,
            Writes::Direct { .. } => {
                let (pool, custom, counters) = (
                    self.pool.clone(),
                    self.custom.clone(),
                    self.counters.clone(),
                );
                let write = tokio::task::spawn_blocking(move || {
                    direct::write(&pool, &custom, &counters, f)
                });
                Box::pin(async move {
                    write
                        .await
                        .unwrap_or_else(|e| Err(E::from(StoreError::Database(e.to_string()))))
                })
            }
        }
    }

    /// Runs `f` on a read snapshot.
    pub fn read_with<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.read_as(f, false)
    }

    /// [`Store::read_with`] for reads that may be long (searches,
    /// histories): on PostgreSQL their statement is cancelled when the
    /// budget is spent (`cancel.rs`).
    pub(crate) fn read_long<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.read_as(f, true)
    }

    fn read_as<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>, long: bool) -> Result<T> {
        // The budget is looked at here, between statements; on SQLite also
        // inside them (`budget.rs`), on PostgreSQL by the canceller.
        if let Some(budget) = &self.budget {
            budget.check()?;
        }
        let _entered = self.budget.as_ref().map(Budget::enter);
        let waiting = std::time::Instant::now();
        let mut conn = self.pool.get()?;
        self.counters.checked_out(waiting);
        let custom = self.custom_params();
        // Reads write no full text.
        let mut text = full_text::PendingText::default();
        let read = |conn: &mut db::Db| {
            let mut tx = Tx::new(conn, custom, &mut text);
            tx.access = self.access.clone();
            f(&mut tx)
        };
        match (&self.budget, &self.writes, conn.backend_pid) {
            (Some(budget), Writes::Direct { canceller, .. }, Some(pid)) if long => {
                canceller.run(&mut conn, pid, budget, read)
            }
            _ => read(&mut conn),
        }
    }

    /// The current version of a resource (a deleted one answers `Gone`).
    pub fn read(&self, resource_type: &str, id: &str) -> Result<StoredVersion> {
        self.read_with(|tx| tx.read(resource_type, id))
    }

    fn is_sqlite(&self) -> bool {
        matches!(self.writes, Writes::Grouped { .. })
    }

    /// [`Store::read`] when it can be answered at once, without waiting: a
    /// lookup by key on a local database takes microseconds, less than
    /// handing it to another thread. `None` when no connection is free, or
    /// the database is a server (a round trip away).
    pub fn read_now(&self, resource_type: &str, id: &str) -> Option<Result<StoredVersion>> {
        if matches!(self.writes, Writes::Direct { .. }) {
            return None;
        }
        let mut conn = self.pool.try_get()?;
        let mut text = full_text::PendingText::default();
        let mut tx = Tx::new(&mut conn, self.custom_params(), &mut text);
        tx.access = self.access.clone();
        Some(tx.read(resource_type, id))
    }

    /// One version of a resource.
    pub fn vread(&self, resource_type: &str, id: &str, version_id: i64) -> Result<StoredVersion> {
        self.read_with(|tx| tx.vread(resource_type, id, version_id))
    }

    /// Makes `resource` ready to write (see [`Document`]): call it before
    /// [`Store::write`], so the work is done by the calling thread.
    pub fn document(&self, resource: serde_json::Value) -> Result<Document> {
        Document::new(resource, self.custom_params())
    }

    pub fn create(&self, resource: serde_json::Value) -> Result<Written> {
        let document = self.document(resource)?;
        self.write(move |tx| tx.create(document))
    }

    pub fn update(
        &self,
        id: &str,
        resource: serde_json::Value,
        if_match: Option<i64>,
        method: Method,
    ) -> Result<Written> {
        let id = id.to_owned();
        let document = self.document(resource)?;
        self.write(move |tx| tx.update(&id, document, if_match, method))
    }

    pub fn delete(
        &self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<Option<StoredVersion>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        self.write(move |tx| tx.delete(&resource_type, &id, if_match))
    }

    /// Runs a search and returns one page of it. A result larger than a
    /// page is stored as a snapshot (through the writer, like every write)
    /// so its paging links keep meaning the same list.
    pub fn search(
        &self,
        query: &search::SearchQuery,
        page: &search::SearchPage,
    ) -> Result<search::SearchResults> {
        if query.count_only {
            return self.read_long(|tx| tx.count(query));
        }
        let query = &*self.access.held(query, &self.custom_params())?;
        if let Some(results) = self.read_long(|tx| tx.keyset_page(query, page))? {
            return Ok(results);
        }
        self.paged(query, page, |tx| tx.matching_keys(query))
    }

    /// One page of the result whose ordered keys `keys` computes (unless
    /// the page's snapshot holds them). A result larger than a page is
    /// stored as a snapshot, through a write, for its paging links.
    pub(crate) fn paged(
        &self,
        query: &search::SearchQuery,
        page: &search::SearchPage,
        keys: impl FnOnce(&mut Tx<'_>) -> Result<Vec<i64>>,
    ) -> Result<search::SearchResults> {
        let (keys, stored) = self.read_long(|tx| tx.result_keys(page, keys))?;
        let snapshot = match stored {
            Some(id) => Some(id),
            None if keys.len() as i64 > query.count => {
                let saved = keys.clone();
                Some(self.write(move |tx| tx.save_snapshot(&saved))?)
            }
            None => None,
        };
        self.read_long(|tx| tx.page(query, &keys, snapshot, page.offset))
    }

    /// The database's query plan for a search (`EXPLAIN`), a line per
    /// step: which indexes it uses, and whether it scans a whole table.
    pub fn explain(&self, query: &search::SearchQuery) -> Result<Vec<String>> {
        self.read_with(|tx| tx.explain(query))
    }

    pub fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        self.read_long(|tx| tx.history(query))
    }
}
