//! Configuration: defaults, then a TOML file, then `HEARTH_*` environment
//! variables, then command-line flags (later wins). Everything is typed and
//! checked at start-up; a bad value stops the server with a clear message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use hearth_store::{Database, StoreOptions, Synchronous};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid {name} '{value}': {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Flags of `hearth serve`; each can also be set by its environment variable.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, env = "HEARTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "HEARTH_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the embedded database [default: ./hearth-data].
    #[arg(long, env = "HEARTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The public base URL (e.g. https://fhir.example.org/r4); by default
    /// taken from each request's Host.
    #[arg(long, env = "HEARTH_BASE_URL")]
    pub base_url: Option<String>,
    /// Largest accepted request body in bytes [default: 16777216].
    #[arg(long, env = "HEARTH_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "HEARTH_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log level or filter (e.g. info, hearth_http=debug) [default: info].
    #[arg(long, env = "HEARTH_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// HTTP worker threads [default: number of cores].
    #[arg(long, env = "HEARTH_WORKERS")]
    pub workers: Option<usize>,
    /// SQLite durability: normal (survives a process crash) or full (also
    /// survives power loss) [default: normal].
    #[arg(long, env = "HEARTH_SQLITE_SYNCHRONOUS")]
    pub sqlite_synchronous: Option<String>,
    /// The database: postgres://user@host/db for PostgreSQL, or an SQLite
    /// file (a path or sqlite://path) [default: DATA_DIR/hearth.db].
    #[arg(long, env = "HEARTH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Database connections in the pool [default: 8].
    #[arg(long, env = "HEARTH_DB_POOL_SIZE")]
    pub db_pool_size: Option<u32>,
    /// Seconds a request waits for a pool connection (and, on SQLite, for
    /// the write lock) before answering 503 [default: 5].
    #[arg(long, env = "HEARTH_DB_TIMEOUT_SECS")]
    pub db_timeout_secs: Option<u64>,
    /// Seconds a request's database work may run before it is stopped
    /// with 503 (a request's reads together, and each write; PostgreSQL
    /// also stops any one statement); 0 for no limit [default: 30].
    #[arg(long, env = "HEARTH_DB_STATEMENT_TIMEOUT_SECS")]
    pub db_statement_timeout_secs: Option<u64>,
    /// Open connections at most [default: 10000].
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Prometheus metrics at GET /metrics: on or off [default: on].
    #[arg(long, env = "HEARTH_METRICS")]
    pub metrics: Option<String>,
    /// Serve /metrics on this address alone, not beside the API (e.g.
    /// 127.0.0.1:9090).
    #[arg(long, env = "HEARTH_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Authorization: smart (bearer tokens required) or none (every
    /// request allowed) [default: none on a loopback address, else it must
    /// be set].
    #[arg(long, env = "HEARTH_AUTH")]
    pub auth: Option<String>,
    /// Address and port of the HTTPS listener (needs --tls-cert and
    /// --tls-key).
    #[arg(long, env = "HEARTH_TLS_LISTEN")]
    pub tls_listen: Option<String>,
    /// The TLS certificate chain, PEM.
    #[arg(long, env = "HEARTH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "HEARTH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Origins browsers may call the API from, comma-separated
    /// (https://app.example.org), or * for any.
    #[arg(long, env = "HEARTH_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
}

/// The file form; every key is optional and unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    base_url: Option<String>,
    max_body_bytes: Option<usize>,
    log_format: Option<String>,
    log_level: Option<String>,
    workers: Option<usize>,
    sqlite_synchronous: Option<String>,
    database_url: Option<String>,
    db_pool_size: Option<u32>,
    db_timeout_secs: Option<u64>,
    db_statement_timeout_secs: Option<u64>,
    default_page_size: Option<i64>,
    max_page_size: Option<i64>,
    shutdown_timeout_secs: Option<u64>,
    conditional_delete_multiple: Option<bool>,
    max_connections: Option<usize>,
    keep_alive_secs: Option<u64>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    max_bundle_entries: Option<usize>,
    max_includes: Option<usize>,
    metrics: Option<String>,
    metrics_listen: Option<String>,
    auth: Option<String>,
    tls_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    cors_origins: Option<Vec<String>>,
    /// Issuers whose tokens are trusted besides Hearth's own.
    #[serde(default)]
    issuers: Vec<hearth_auth::ExternalIssuer>,
}

/// How requests are authorized (see `hearth_http::auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Bearer tokens required: Hearth's own and `issuers`'.
    Smart {
        issuers: Vec<hearth_auth::ExternalIssuer>,
    },
    /// Every request allowed; `chosen` is false when nobody set it (a
    /// loopback listener without configuration), which is warned about.
    None { chosen: bool },
}

/// The HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The plain HTTP listener; `None` (`listen = "off"`) with HTTPS only.
    pub listen: Option<SocketAddr>,
    /// The origins browsers may call the API from.
    pub cors: hearth_http::cors::Origins,
    pub tls: Option<Tls>,
    pub auth: Auth,
    pub data_dir: PathBuf,
    pub base_url: Option<String>,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub log_level: String,
    pub workers: usize,
    /// Set when the database is not the data directory's SQLite file.
    pub database_url: Option<String>,
    pub store: StoreOptions,
    pub default_page_size: i64,
    pub max_page_size: i64,
    pub shutdown_timeout: Duration,
    pub conditional_delete_multiple: bool,
    /// Open connections at most, across workers.
    pub max_connections: usize,
    /// How long an idle keep-alive connection stays open (zero: none).
    pub keep_alive: Duration,
    /// How long a request's line and headers may take to arrive (408).
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive (408).
    pub body_timeout: Duration,
    /// The most entries of a batch or transaction Bundle.
    pub max_bundle_entries: usize,
    /// The most resources `_include`/`_revinclude` add to a page.
    pub max_includes: usize,
    /// Whether `GET /metrics` is served.
    pub metrics: bool,
    /// Where `/metrics` is served alone; `None`: beside the API.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// The database: the URL's, or the data directory's SQLite file.
    pub fn database(&self) -> Database {
        match &self.database_url {
            Some(url) => Database::from_url(url),
            None => Database::Sqlite(self.data_dir.join("hearth.db")),
        }
    }

    /// A configuration for tests: an ephemeral port on loopback and a data
    /// directory of the caller's.
    pub fn for_tests(data_dir: &Path) -> Config {
        Config {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: data_dir.to_owned(),
            workers: 2,
            ..Config::load(&ServeArgs::default()).expect("the defaults are valid")
        }
    }

    /// Builds the configuration from the layers.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text =
            pick(&args.listen, &file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen =
            match listen_text.as_str() {
                "off" => None,
                text => Some(text.parse().map_err(|e: std::net::AddrParseError| {
                    ConfigError::Invalid {
                        name: "listen address",
                        value: listen_text.clone(),
                        reason: format!("{e}; expected host:port such as 127.0.0.1:8080, or off"),
                    }
                })?),
            };
        let tls = match (
            pick(&args.tls_listen, &file.tls_listen),
            pick(&args.tls_cert, &file.tls_cert),
            pick(&args.tls_key, &file.tls_key),
        ) {
            (None, None, None) => None,
            (Some(listen), Some(cert), Some(key)) => Some(Tls {
                listen: listen.parse().map_err(|e: std::net::AddrParseError| {
                    ConfigError::Invalid {
                        name: "TLS listen address",
                        value: listen.clone(),
                        reason: format!("{e}; expected host:port such as 0.0.0.0:8443"),
                    }
                })?,
                cert,
                key,
            }),
            (listen, cert, key) => {
                return Err(ConfigError::Invalid {
                    name: "TLS settings",
                    value: format!(
                        "tls_listen {}, tls_cert {}, tls_key {}",
                        if listen.is_some() { "set" } else { "unset" },
                        if cert.is_some() { "set" } else { "unset" },
                        if key.is_some() { "set" } else { "unset" },
                    ),
                    reason: "HTTPS needs all three: tls_listen, tls_cert and tls_key".into(),
                })
            }
        };
        if listen.is_none() && tls.is_none() {
            return Err(ConfigError::Invalid {
                name: "listen address",
                value: "off".into(),
                reason: "with HTTP off, set tls_listen, tls_cert and tls_key".into(),
            });
        }
        let base_url = pick(&args.base_url, &file.base_url);
        if let Some(url) = &base_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(['?', '#', ' '])
            {
                return Err(ConfigError::Invalid {
                    name: "base URL",
                    value: url.clone(),
                    reason:
                        "it must be an absolute http:// or https:// URL without query or fragment"
                            .into(),
                });
            }
        }
        let max_body_bytes =
            pick(&args.max_body_bytes, &file.max_body_bytes).unwrap_or(16 * 1024 * 1024);
        positive("max body bytes", max_body_bytes as i64)?;
        let log_format = match pick(&args.log_format, &file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "log format",
                    value: other.into(),
                    reason: "use text or json".into(),
                })
            }
        };
        let log_level = pick(&args.log_level, &file.log_level).unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level).map_err(|e| ConfigError::Invalid {
            name: "log level",
            value: log_level.clone(),
            reason: e.to_string(),
        })?;
        let workers = pick(&args.workers, &file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        positive("workers", workers as i64)?;
        let synchronous = match pick(&args.sqlite_synchronous, &file.sqlite_synchronous).as_deref()
        {
            None | Some("normal") => Synchronous::Normal,
            Some("full") => Synchronous::Full,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "sqlite synchronous",
                    value: other.into(),
                    reason: "use normal or full".into(),
                })
            }
        };
        let pool_size = pick(&args.db_pool_size, &file.db_pool_size).unwrap_or(8);
        positive("db pool size", pool_size as i64)?;
        let db_timeout = pick(&args.db_timeout_secs, &file.db_timeout_secs).unwrap_or(5);
        positive("db timeout", db_timeout as i64)?;
        let statement_timeout = pick(
            &args.db_statement_timeout_secs,
            &file.db_statement_timeout_secs,
        )
        .unwrap_or(30);
        let database_url = pick(&args.database_url, &file.database_url);
        if let Some(url) = &database_url {
            if url.trim().is_empty()
                || url.contains("://")
                    && !url.starts_with("postgres://")
                    && !url.starts_with("postgresql://")
                    && !url.starts_with("sqlite://")
            {
                return Err(ConfigError::Invalid {
                    name: "database URL",
                    value: hearth_store::without_password(url),
                    reason: "use postgres://…, postgresql://…, sqlite://PATH or a file path".into(),
                });
            }
        }
        let default_page_size = file.default_page_size.unwrap_or(50);
        let max_page_size = file.max_page_size.unwrap_or(1000);
        positive("default page size", default_page_size)?;
        positive("max page size", max_page_size)?;
        let max_connections = pick(&args.max_connections, &file.max_connections).unwrap_or(10_000);
        positive("max connections", max_connections as i64)?;
        let header_timeout = file.header_timeout_secs.unwrap_or(5);
        positive("header timeout", header_timeout as i64)?;
        let body_timeout = file.body_timeout_secs.unwrap_or(60);
        positive("body timeout", body_timeout as i64)?;
        let max_bundle_entries = file.max_bundle_entries.unwrap_or(5000);
        positive("max bundle entries", max_bundle_entries as i64)?;
        let max_includes = file.max_includes.unwrap_or(1000);
        positive("max includes", max_includes as i64)?;
        let metrics = match pick(&args.metrics, &file.metrics).as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "metrics",
                    value: other.into(),
                    reason: "use on or off".into(),
                })
            }
        };
        let metrics_listen = pick(&args.metrics_listen, &file.metrics_listen)
            .map(|text| {
                text.parse()
                    .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                        name: "metrics listen address",
                        value: text.clone(),
                        reason: format!("{e}; expected host:port such as 127.0.0.1:9090"),
                    })
            })
            .transpose()?;
        let loopback_only = listen
            .iter()
            .chain(tls.iter().map(|t| &t.listen))
            .all(|a| a.ip().is_loopback());
        let auth = match pick(&args.auth, &file.auth).as_deref() {
            Some("smart") => {
                if base_url.is_none() {
                    return Err(ConfigError::Invalid {
                        name: "auth",
                        value: "smart".into(),
                        reason: "tokens are issued for, and must name, this server's base URL: set base_url".into(),
                    });
                }
                Auth::Smart {
                    issuers: file.issuers.clone(),
                }
            }
            Some("none") => Auth::None { chosen: true },
            None if loopback_only => Auth::None { chosen: false },
            None => {
                return Err(ConfigError::Invalid {
                    name: "auth",
                    value: "(unset)".into(),
                    reason: "Hearth listens beyond this machine without authorization: set auth = \"smart\" (bearer tokens required) or, for a network where every client is trusted, auth = \"none\"".into(),
                })
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "auth",
                    value: other.into(),
                    reason: "use smart or none".into(),
                })
            }
        };
        if !file.issuers.is_empty() && !matches!(auth, Auth::Smart { .. }) {
            return Err(ConfigError::Invalid {
                name: "issuers",
                value: format!("{} configured", file.issuers.len()),
                reason: "external issuers are trusted only with auth = \"smart\"".into(),
            });
        }
        let cors = hearth_http::cors::Origins::new(
            pick(&args.cors_origins, &file.cors_origins).unwrap_or_default(),
        )
        .map_err(|reason| ConfigError::Invalid {
            name: "cors_origins",
            value: format!(
                "{:?}",
                pick(&args.cors_origins, &file.cors_origins).unwrap_or_default()
            ),
            reason,
        })?;
        Ok(Config {
            listen,
            cors,
            tls,
            auth,
            data_dir: pick(&args.data_dir, &file.data_dir)
                .unwrap_or_else(|| PathBuf::from("hearth-data")),
            base_url: base_url.map(|u| u.trim_end_matches('/').to_owned()),
            max_body_bytes,
            log_format,
            log_level,
            workers,
            database_url,
            store: StoreOptions {
                synchronous,
                pool_size,
                busy_timeout: Duration::from_secs(db_timeout),
                statement_timeout: Duration::from_secs(statement_timeout),
                ..StoreOptions::default()
            },
            default_page_size,
            max_page_size: max_page_size.max(default_page_size),
            shutdown_timeout: Duration::from_secs(file.shutdown_timeout_secs.unwrap_or(30)),
            conditional_delete_multiple: file.conditional_delete_multiple.unwrap_or(false),
            max_connections,
            keep_alive: Duration::from_secs(file.keep_alive_secs.unwrap_or(5)),
            header_timeout: Duration::from_secs(header_timeout),
            body_timeout: Duration::from_secs(body_timeout),
            max_bundle_entries,
            max_includes,
            metrics,
            metrics_listen,
        })
    }
}

/// A flag or environment variable wins over the file.
fn pick<T: Clone>(arg: &Option<T>, file: &Option<T>) -> Option<T> {
    arg.clone().or_else(|| file.clone())
}

fn positive(name: &'static str, value: i64) -> Result<(), ConfigError> {
    if value > 0 {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: "it must be greater than zero".into(),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_8080_with_data_in_hearth_data() {
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(c.listen.unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(c.auth, Auth::None { chosen: false });
        assert_eq!(
            c.database(),
            Database::Sqlite(PathBuf::from("hearth-data/hearth.db"))
        );
    }

    #[test]
    fn flags_win_over_the_file_and_bad_values_fail_fast() {
        let dir = std::env::temp_dir().join(format!("hearth-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hearth.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nworkers = 3\n").unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            workers: Some(5),
            ..ServeArgs::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!((c.listen.unwrap().port(), c.workers), (9000, 5));

        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");

        let bad = ServeArgs {
            listen: Some("localhost".into()),
            ..ServeArgs::default()
        };
        assert!(Config::load(&bad)
            .unwrap_err()
            .to_string()
            .contains("invalid listen address"));
    }

    #[test]
    fn listening_beyond_loopback_needs_auth_to_be_chosen() {
        let with = |listen: &str, auth: Option<&str>, base: Option<&str>| {
            Config::load(&ServeArgs {
                listen: Some(listen.into()),
                auth: auth.map(str::to_owned),
                base_url: base.map(str::to_owned),
                ..ServeArgs::default()
            })
        };
        let err = with("0.0.0.0:8080", None, None).unwrap_err().to_string();
        assert!(err.contains("auth = \"smart\""), "{err}");
        assert_eq!(
            with("0.0.0.0:8080", Some("none"), None).unwrap().auth,
            Auth::None { chosen: true }
        );
        assert!(matches!(
            with(
                "0.0.0.0:8080",
                Some("smart"),
                Some("https://fhir.example.org")
            )
            .unwrap()
            .auth,
            Auth::Smart { .. }
        ));
        let err = with("127.0.0.1:8080", Some("smart"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("base_url"), "{err}");
        assert!(with("[::1]:8080", None, None).is_ok());
        let err = with("127.0.0.1:8080", Some("oauth"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("smart or none"), "{err}");
    }

    #[test]
    fn https_needs_its_address_certificate_and_key() {
        let tls = Config::load(&ServeArgs {
            tls_listen: Some("127.0.0.1:8443".into()),
            tls_cert: Some("cert.pem".into()),
            tls_key: Some("key.pem".into()),
            listen: Some("off".into()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(tls.listen, None);
        assert_eq!(tls.tls.unwrap().listen.port(), 8443);
        let err = Config::load(&ServeArgs {
            tls_listen: Some("127.0.0.1:8443".into()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs all three"), "{err}");
        let err = Config::load(&ServeArgs {
            listen: Some("off".into()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("tls_listen"), "{err}");
    }

    #[test]
    fn the_database_url_chooses_the_backend() {
        let with = |url: &str| {
            Config::load(&ServeArgs {
                database_url: Some(url.into()),
                ..ServeArgs::default()
            })
        };
        assert_eq!(
            with("postgres://hearth@db/fhir").unwrap().database(),
            Database::Postgres("postgres://hearth@db/fhir".into())
        );
        assert_eq!(
            with("sqlite:///var/lib/hearth.db").unwrap().database(),
            Database::Sqlite(PathBuf::from("/var/lib/hearth.db"))
        );
        let err = with("mysql://root:secret@db/fhir").unwrap_err().to_string();
        assert!(err.contains("invalid database URL"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
