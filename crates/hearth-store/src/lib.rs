//! Versioned FHIR resource storage on diesel.
//!
//! Every write (create, update, delete) adds a row to `resource_versions` and
//! moves the `resources` pointer in one database transaction. The data
//! functions live on [`Tx`], an open transaction, so they work alone (through
//! the [`Store`] shorthands, one transaction each) and inside a caller's
//! transaction (transaction Bundles run many of them in one [`Store::write`]).

mod connection;
mod custom;
mod error;
mod full_text;
mod group_commit;
mod history;
mod index_rows;
mod jobs;
mod schema;
pub mod search;
mod ucum;
mod versions;

pub use connection::{SqliteOptions, Synchronous};
pub use error::StoreError;
pub use history::{HistoryPage, HistoryQuery, HistoryScope};
pub use jobs::{Job, JobStatus};
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
    /// The one writer thread: SQLite has one writer at a time, and
    /// concurrent writes share its transactions (group commit).
    writer: Arc<group_commit::Writer>,
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl Store {
    /// Opens (creating if needed) an SQLite database file and brings its
    /// schema up to date.
    pub fn open_sqlite(path: &std::path::Path, options: &SqliteOptions) -> Result<Store> {
        let (pool, custom) = connection::open_sqlite(path, options)?;
        let custom = Arc::new(RwLock::new(Arc::new(custom)));
        Ok(Store {
            writer: Arc::new(group_commit::Writer::start(pool.clone(), custom.clone())),
            pool,
            custom,
        })
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
        self.writer.write(f)
    }

    /// Runs `f` on a read snapshot.
    pub fn read_with<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        f(&mut Tx::new(&mut conn, self.custom_params()))
    }

    /// The current version of a resource (a deleted one answers `Gone`).
    pub fn read(&self, resource_type: &str, id: &str) -> Result<StoredVersion> {
        self.read_with(|tx| tx.read(resource_type, id))
    }

    /// One version of a resource.
    pub fn vread(&self, resource_type: &str, id: &str, version_id: i64) -> Result<StoredVersion> {
        self.read_with(|tx| tx.vread(resource_type, id, version_id))
    }

    pub fn create(&self, resource: serde_json::Value) -> Result<Written> {
        self.write(move |tx| tx.create(resource))
    }

    pub fn update(
        &self,
        id: &str,
        resource: serde_json::Value,
        if_match: Option<i64>,
        method: Method,
    ) -> Result<Written> {
        let id = id.to_owned();
        self.write(move |tx| tx.update(&id, resource, if_match, method))
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
            return self.read_with(|tx| tx.count(query));
        }
        let (keys, stored) = self.read_with(|tx| tx.result_keys(query, page))?;
        let snapshot = match stored {
            Some(id) => Some(id),
            None if keys.len() as i64 > query.count => {
                let saved = keys.clone();
                Some(self.write(move |tx| tx.save_snapshot(&saved))?)
            }
            None => None,
        };
        self.read_with(|tx| tx.page(query, &keys, snapshot, page.offset))
    }

    pub fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        self.read_with(|tx| tx.history(query))
    }
}
