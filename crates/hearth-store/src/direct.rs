//! Writes on PostgreSQL: each in its own transaction, on the caller's
//! thread. The server runs many transactions at once, and several Hearth
//! nodes may share it: writers of one resource serialise on its advisory
//! lock ([`Tx::lock`]), conditional writes on their type's, so versions stay
//! sequential and a raced conditional create creates once.
//!
//! Every node keeps the custom search parameters in memory; [`CustomWatch`]
//! reloads them when another node changed them.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use hearth_model::search_params::CustomParams;

use crate::connection::Pool;
use crate::db::Abort;
use crate::full_text::PendingText;
use crate::versions::Tx;
use crate::{custom, StoreError};

/// Runs `f` in a transaction of its own; reloads the custom search
/// parameters after it when it wrote a SearchParameter.
pub(crate) fn write<T, E>(
    pool: &Pool,
    params: &RwLock<Arc<CustomParams>>,
    counters: &crate::stats::Counters,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let waiting = std::time::Instant::now();
    let mut conn = pool.get().map_err(StoreError::from)?;
    counters.checked_out(waiting);
    let snapshot = params.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut text = PendingText::default();
    let mut search_parameters_written = false;
    let result = conn.write_transaction(|c| {
        let mut tx = Tx::new(c, snapshot, &mut text);
        let value = f(&mut tx).map_err(Abort::Refused)?;
        search_parameters_written = tx.search_parameters_written;
        text.apply(c)?;
        Ok::<T, Abort<E>>(value)
    });
    let value = result.map_err(|abort| match abort {
        Abort::Refused(e) => e,
        Abort::Database(e) => E::from(StoreError::from(e)),
    })?;
    if search_parameters_written {
        reload(&mut conn, params);
    }
    Ok(value)
}

fn reload(conn: &mut crate::db::Db, params: &RwLock<Arc<CustomParams>>) {
    match conn.write_transaction(custom::load) {
        Ok(reloaded) => *params.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reloaded),
        Err(e) => tracing::error!(error = %e, "cannot reload the custom search parameters"),
    }
}

/// How often a node looks for custom search parameters changed by others.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Watches the generation of the custom search parameters and reloads them
/// when another node moved it; stops when dropped, and the drop waits for
/// it: a process that exits while the watch is inside libpq may crash in
/// its exit handlers (seen with `hearth token` on PostgreSQL).
pub(crate) struct CustomWatch {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CustomWatch {
    pub(crate) fn start(pool: Pool, params: Arc<RwLock<Arc<CustomParams>>>) -> CustomWatch {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let watch = move || {
            let mut seen = None;
            loop {
                if let Ok(mut conn) = pool.get() {
                    match custom::generation(&mut conn) {
                        Ok(now) if seen.is_some_and(|s| s != now) => {
                            reload(&mut conn, &params);
                            seen = Some(now);
                        }
                        Ok(now) => seen = Some(now),
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot read the custom parameters' generation")
                        }
                    }
                }
                // Until the next look, or the drop.
                if !matches!(
                    stopped.recv_timeout(WATCH_EVERY),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                ) {
                    return;
                }
            }
        };
        let thread = std::thread::Builder::new()
            .name("hearth-custom-watch".into())
            .spawn(watch)
            .map_err(|e| tracing::error!(error = %e, "cannot start the custom parameter watch"))
            .ok();
        CustomWatch {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for CustomWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
