//! Starting the HTTP server on a store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use hearth_auth::oauth::AuthServer;
use hearth_auth::Verifier;
use hearth_http::auth::Authorization;
use hearth_http::server::{MetricsListener, TlsListener, Transport};
use hearth_http::{AppState, HttpConfig};
use hearth_store::{Store, StoreError};

use crate::config::{Auth, Config, Tls};

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
    #[error("TLS: {0}")]
    Tls(String),
    #[error("authorization: {0}")]
    Auth(String),
}

fn state(config: &Config) -> Result<(web::Data<AppState>, Option<KeyWatch>), ServeError> {
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
        // Under SMART every route of the API's listener needs a token,
        // which a scraper has not: metrics are then served on
        // `metrics_listen` only.
        metrics_route: config.metrics_listen.is_none() && matches!(config.auth, Auth::None { .. }),
        cors: config.cors.clone(),
    };
    let metrics = config.metrics.then(hearth_http::metrics::Metrics::new);
    let (authorization, watch) = match &config.auth {
        Auth::None { chosen } => {
            let warning = (!chosen).then(|| {
                "auth is not configured, so Hearth is open to every client of this machine's loopback address; set auth = \"smart\" (or, knowingly, auth = \"none\")".to_owned()
            });
            if let Some(w) = &warning {
                tracing::warn!("{w}");
            }
            (Authorization::Open { warning }, None)
        }
        Auth::Smart { issuers } => {
            let base = config.base_url.as_deref().unwrap_or_default();
            let keys = store.signing_keys()?;
            let verifier =
                Arc::new(Verifier::new(base, &keys, issuers.clone()).map_err(ServeError::Auth)?);
            // Refused from the first request, not from the first watch.
            verifier.set_revoked(store.revoked_tokens()?.into_iter().collect());
            let oauth = Arc::new(AuthServer::new(base, &keys, verifier.clone()));
            oauth.set_id_key(store.id_token_key()?);
            oauth.set_clients(&store.clients()?);
            let watch = watch_keys(store.clone(), verifier.clone(), oauth.clone());
            (Authorization::Smart(verifier), Some((watch, oauth)))
        }
    };
    let mut state = AppState::new(store, http, authorization).with_metrics(metrics);
    let watch = match watch {
        Some((watch, oauth)) => {
            state = state.with_oauth(oauth);
            Some(watch)
        }
        None => None,
    };
    Ok((web::Data::new(state), watch))
}

/// A thread that runs a step again and again until dropped: at once when
/// the step says there is more to do, otherwise after `pause` (a drop
/// waits at most 100 ms for the pause to end).
pub struct Periodic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Periodic {
    fn start(pause: Duration, mut step: impl FnMut() -> bool + Send + 'static) -> Periodic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if step() {
                    continue;
                }
                let until = std::time::Instant::now() + pause;
                while !flag.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(100).min(pause));
                }
            }
        });
        Periodic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Keeps the verifier and the authorization server current until dropped:
/// Hearth's own keys (another node may rotate them), the registered
/// clients' origins (CORS), the id_token key and the revoked tokens every 2 seconds, and the
/// external issuers' keys when their cache lifetime ends.
pub type KeyWatch = Periodic;

fn watch_keys(store: Store, verifier: Arc<Verifier>, oauth: Arc<AuthServer>) -> KeyWatch {
    let mut known: Vec<String> = Vec::new();
    Periodic::start(Duration::from_secs(2), move || {
        match store.signing_keys() {
            Ok(keys) => {
                let kids: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
                if kids != known {
                    verifier.set_own_keys(&keys);
                    oauth.set_keys(&keys);
                    known = kids;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the signing keys failed"),
        }
        match store.clients() {
            Ok(clients) => oauth.set_clients(&clients),
            Err(e) => tracing::warn!(error = %e, "reading the registered clients failed"),
        }
        match store.id_token_key() {
            Ok(key) => oauth.set_id_key(key),
            Err(e) => tracing::warn!(error = %e, "reading the id_token key failed"),
        }
        match store.revoked_tokens() {
            Ok(ids) => verifier.set_revoked(ids.into_iter().collect()),
            Err(e) => tracing::warn!(error = %e, "reading the revoked tokens failed"),
        }
        verifier.refresh_stale();
        false
    })
}

/// The rustls configuration of the HTTPS listener: TLS 1.3 and 1.2,
/// HTTP/1.1.
fn tls_config(tls: &Tls) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            ServeError::Tls(format!(
                "reading the certificate {}: {e}",
                tls.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{} holds no certificate",
            tls.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        ServeError::Tls(format!(
            "reading the private key {}: {e}",
            tls.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs background jobs (`$reindex`, `$export`) until dropped: a batch
/// after another while there is work, then every 200 ms.
pub type JobWorker = Periodic;

fn run_jobs(store: Store) -> JobWorker {
    Periodic::start(Duration::from_millis(200), move || {
        match store.run_job_batch() {
            Ok(more) => more,
            Err(e) => {
                tracing::error!(error = %e, "background job failed a batch");
                false
            }
        }
    })
}

/// A bound server: run it by awaiting `server`; `worker` runs background
/// jobs and `keys` keeps the token keys current while they live.
pub struct Bound {
    pub server: actix_web::dev::Server,
    /// Where HTTP is served, and HTTPS.
    pub addr: Option<std::net::SocketAddr>,
    pub tls_addr: Option<std::net::SocketAddr>,
    pub worker: JobWorker,
    pub keys: Option<KeyWatch>,
}

/// Binds the listeners and starts the job worker. The server is not yet
/// awaited; `addr` is where it listens (useful when the port was 0).
pub fn bind(config: &Config) -> Result<Bound, ServeError> {
    let tls = config.tls.as_ref().map(tls_config).transpose()?;
    let (state, keys) = state(config)?;
    let worker = run_jobs(state.store.clone());
    let listen = |addr: std::net::SocketAddr| {
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })
    };
    let listener = config.listen.map(listen).transpose()?;
    let addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let tls_listener = match (&config.tls, tls) {
        (Some(t), Some(server_config)) => Some(TlsListener(listen(t.listen)?, server_config)),
        _ => None,
    };
    let tls_addr = tls_listener
        .as_ref()
        .map(|l| l.0.local_addr())
        .transpose()?;
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
        Some(addr) => Some(MetricsListener(listen(addr)?)),
        None => None,
    };
    Ok(Bound {
        server: hearth_http::server::serve(
            listener,
            tls_listener,
            state,
            &transport,
            metrics_listener,
        )?,
        addr,
        tls_addr,
        worker,
        keys,
    })
}

/// A server running on its own thread, for tests and embedding.
pub struct Background {
    /// The HTTP listener's URL (the HTTPS one's without HTTP).
    pub base_url: String,
    pub tls_addr: Option<std::net::SocketAddr>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _worker: JobWorker,
    _keys: Option<KeyWatch>,
}

impl Background {
    /// Starts a server on its own runtime thread and returns once it listens.
    pub fn start(config: &Config) -> Result<Background, ServeError> {
        let Bound {
            server,
            addr,
            tls_addr,
            worker,
            keys,
        } = bind(config)?;
        let handle = server.handle();
        let thread = std::thread::spawn(move || {
            let runtime = actix_web::rt::System::new();
            // Errors after start-up end the thread; tests see connection errors.
            let _ = runtime.block_on(server);
        });
        let base_url = match (addr, tls_addr) {
            (Some(addr), _) => format!("http://{addr}"),
            (None, Some(addr)) => format!("https://{addr}"),
            (None, None) => unreachable!("the configuration has a listener"),
        };
        Ok(Background {
            base_url,
            tls_addr,
            handle,
            thread: Some(thread),
            _worker: worker,
            _keys: keys,
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
