//! WAL checkpoints on their own thread. A checkpoint copies the pages
//! committed to the write-ahead log back into the database file and syncs
//! it; left to SQLite's automatic checkpoint, that work (about a third of a
//! busy writer's time) would run on the one writer thread, after commits.
//! This thread copies them a few times a second instead, beside the writer.
//!
//! The log starts over when a write finds it fully copied; under a steady
//! stream of writes that may not happen, so the writer's own automatic
//! checkpoint stays on as a bound, at [`WRITER_CHECKPOINT_PAGES`] (128 MB).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};

use crate::{Result, StoreError};

/// How often the checkpointer copies the log into the database.
const INTERVAL: Duration = Duration::from_millis(100);

/// Log size (in pages) at which the writer finishes a checkpoint itself.
pub(crate) const WRITER_CHECKPOINT_PAGES: u32 = 32000;

/// The checkpoint thread; it ends when this is dropped.
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

#[derive(diesel::QueryableByName)]
#[allow(dead_code)] // the columns are named by the PRAGMA; only some are read
struct CheckpointResult {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Checkpointer> {
        let url = path.to_string_lossy().into_owned();
        let mut conn = SqliteConnection::establish(&url)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {};",
            busy_timeout.as_millis()
        ))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("hearth-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    // PASSIVE: copies what it can without waiting for readers
                    // or the writer.
                    let result = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
                        .get_result::<CheckpointResult>(&mut conn);
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer { _stop: stop })
    }
}
