//! Starting the HTTP server on a store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use hearth_http::access::AllowAll;
use hearth_http::server::{MetricsListener, Transport};
use hearth_http::{AppState, HttpConfig};
use hearth_store::{Store, StoreError};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

fn state(config: &Config) -> Result<web::Data<AppState>, ServeError> {
    let store = Store::open(&config.database(), &config.store)?;
    let http = HttpConfig {
        base_url: config.base_url.clone(),
        max_body_bytes: config.max_body_bytes,
        default_page_size: config.default_page_size,
        max_page_size: config.max_page_size,
        conditional_delete_multiple: config.conditional_delete_multiple,
        time_limit: config.store.statement_timeout,
        body_timeout: config.body_timeout,
        max_bundle_entries: config.max_bundle_entries,
        max_includes: config.max_includes,
        metrics_route: config.metrics_listen.is_none(),
    };
    let metrics = config.metrics.then(hearth_http::metrics::Metrics::new);
    Ok(web::Data::new(
        AppState::new(store, http, Arc::new(AllowAll)).with_metrics(metrics),
    ))
}

/// Runs background jobs (`$reindex`) on its own thread until dropped.
pub struct JobWorker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JobWorker {
    fn start(store: Store) -> JobWorker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match store.run_job_batch() {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "background job failed a batch"),
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        JobWorker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for JobWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A bound server: run it by awaiting `server`; `worker` runs background
/// jobs while it lives.
pub struct Bound {
    pub server: actix_web::dev::Server,
    pub addr: std::net::SocketAddr,
    pub worker: JobWorker,
}

/// Binds the listener and starts the job worker. The server is not yet
/// awaited; `addr` is where it listens (useful when the port was 0).
pub fn bind(config: &Config) -> Result<Bound, ServeError> {
    let state = state(config)?;
    let worker = JobWorker::start(state.store.clone());
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let transport = Transport {
        workers: config.workers,
        // Store calls run on the blocking pool and wait for a pooled
        // connection: threads beyond the pool size only add stacks and
        // malloc arenas.
        max_blocking_threads: (config.store.pool_size as usize).div_ceil(config.workers) + 1,
        max_connections: config.max_connections,
        keep_alive: config.keep_alive,
        header_timeout: config.header_timeout,
        shutdown_timeout: config.shutdown_timeout,
    };
    let metrics_listener = match config.metrics_listen.filter(|_| config.metrics) {
        Some(addr) => Some(MetricsListener(
            std::net::TcpListener::bind(addr)
                .map_err(|source| ServeError::Bind { addr, source })?,
        )),
        None => None,
    };
    Ok(Bound {
        server: hearth_http::server::serve(listener, state, &transport, metrics_listener)?,
        addr,
        worker,
    })
}

/// A server running on its own thread, for tests and embedding.
pub struct Background {
    pub base_url: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _worker: JobWorker,
}

impl Background {
    /// Starts a server on its own runtime thread and returns once it listens.
    pub fn start(config: &Config) -> Result<Background, ServeError> {
        let Bound {
            server,
            addr,
            worker,
        } = bind(config)?;
        let handle = server.handle();
        let thread = std::thread::spawn(move || {
            let runtime = actix_web::rt::System::new();
            // Errors after start-up end the thread; tests see connection errors.
            let _ = runtime.block_on(server);
        });
        Ok(Background {
            base_url: format!("http://{addr}"),
            handle,
            thread: Some(thread),
            _worker: worker,
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let stop = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(true));
        });
        let _ = stop.join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
