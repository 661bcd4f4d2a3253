//! `hearth`: the Hearth FHIR R4 server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth::config::{Config, LogFormat, ServeArgs};
use tracing_subscriber::EnvFilter;

// Requests allocate many small values (JSON trees, index rows); mimalloc
// serves them faster than the system allocator, with less fragmentation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hearth", version, about = "Hearth: a FHIR R4 server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FHIR server.
    Serve(ServeArgs),
    /// Load Bundles and NDJSON files (.json, .ndjson, .gz, .bz2) and
    /// folders of them into the database, or upload them to a FHIR server
    /// with --url.
    Import(hearth::import::ImportArgs),
    /// Write a consistent backup of the SQLite store to DEST while servers
    /// use it (PostgreSQL: use pg_dump, see the README).
    Backup(hearth::backup::BackupArgs),
    /// Replace the SQLite store by a backup; refused while a server or an
    /// import uses the store.
    Restore(hearth::backup::RestoreArgs),
    /// Print an access token signed by this server's key, for operators
    /// and service accounts, e.g. `hearth token --scope "patient/*.rs"
    /// --patient 123`.
    Token(hearth::token::TokenArgs),
    /// Revoke an access token before it expires: every server on the store
    /// refuses it within 2 s.
    Revoke(hearth::token::RevokeArgs),
    /// Register the apps and services that may ask the authorization
    /// server for tokens: add, list, remove.
    Client(hearth::clients::ClientArgs),
    /// Manage the people who sign in to the authorization server: add,
    /// list, remove, passwd.
    User(hearth::users::UserArgs),
    /// Launch an app as an EHR does: print its launch URL, carrying a
    /// single-use launch context (patient, encounter) valid five minutes.
    Launch(hearth::launch::LaunchArgs),
    /// Manage the token signing keys: list, rotate, retire.
    Keys(hearth::keys::KeysArgs),
    /// Print the database's plan for searches, e.g.
    /// `hearth explain 'Observation?code=http://loinc.org|8867-4'`.
    Explain {
        #[command(flatten)]
        args: ServeArgs,
        /// Searches as `Type?parameters` (values URL-encoded where needed).
        #[arg(required = true)]
        searches: Vec<String>,
    },
}

/// Logs to standard output, buffered (see `hearth::logs`): hold what it
/// answers until the end, which writes the last lines.
#[must_use]
fn init_tracing(config: &Config) -> hearth::logs::Flush {
    // actix-http logs each request it cannot read as an error; those are
    // the client's, and `hearth_http::server` logs them as requests.
    let mut directives = config.log_level.clone();
    if !directives.contains("actix_http") {
        directives.push_str(",actix_http::h1::dispatcher=off");
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, flush) = hearth::logs::Buffered::start();
    // Colours for a terminal; none in a file or a pipe to a log collector.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(terminal)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    flush
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Explain { args, searches } => with_config(
            &args,
            |config| hearth::explain::plans(config, &searches),
            |report| print!("{report}"),
        ),
        Command::Import(args) => {
            let mut complete = true;
            let code = with_config(
                &args.settings,
                |config| {
                    let _logs = init_tracing(config);
                    hearth::import::run(&args, config)
                },
                |summary| {
                    print!("{summary}");
                    complete = summary.failed.is_empty();
                },
            );
            if complete {
                code
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Backup(args) => with_config(
            &args.settings,
            |config| hearth::backup::run_backup(&args, config),
            |summary| {
                println!(
                    "backed up {}",
                    hearth::backup::describe(&args.dest, &summary)
                )
            },
        ),
        Command::Restore(args) => with_config(
            &args.settings,
            |config| hearth::backup::run_restore(&args, config),
            |(dest, summary)| {
                println!(
                    "restored {} from {}",
                    hearth::backup::describe(&dest, &summary),
                    args.src.display()
                )
            },
        ),
        Command::Token(args) => with_config(
            &args.settings,
            |config| hearth::token::issue(&args, config),
            |token| println!("{token}"),
        ),
        Command::Revoke(args) => with_config(
            &args.settings,
            |config| hearth::token::revoke(&args, config),
            |said| println!("{said}"),
        ),
        Command::Client(args) => with_config(
            &args.settings,
            |config| hearth::clients::run(&args, config, &mut std::io::stdin()),
            |report| print!("{report}"),
        ),
        Command::User(args) => with_config(
            &args.settings,
            |config| hearth::users::run(&args, config, &mut std::io::stdin()),
            |report| print!("{report}"),
        ),
        Command::Launch(args) => with_config(
            &args.settings,
            |config| hearth::launch::run(&args, config),
            |url| println!("{url}"),
        ),
        Command::Keys(args) => with_config(
            &args.settings,
            |config| hearth::keys::run(&args, config),
            |report| print!("{report}"),
        ),
    }
}

/// Runs a command under the configuration `settings` make: exit code 2
/// when it is not valid, 1 when the command fails (after saying why), and
/// otherwise 0 once `done` has shown the result.
fn with_config<T, E: std::fmt::Display>(
    settings: &ServeArgs,
    run: impl FnOnce(&Config) -> Result<T, E>,
    done: impl FnOnce(T),
) -> ExitCode {
    let Some(config) = load(settings) else {
        return ExitCode::from(2);
    };
    match run(&config) {
        Ok(value) => {
            done(value);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hearth: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration, or `None` after saying what is wrong with it.
fn load(args: &ServeArgs) -> Option<Config> {
    match Config::load(args) {
        Ok(config) => Some(config),
        Err(e) => {
            eprintln!("hearth: {e}");
            None
        }
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let Some(config) = load(args) else {
        return ExitCode::from(2);
    };
    let _logs = init_tracing(&config);
    let system = actix_web::rt::System::new();
    // Bound before the runtime runs: opening the store may write (the
    // first signing key), which waits for its commit.
    let result = hearth::server::bind(&config).and_then(|bound| {
        system.block_on(async move {
            let hearth::server::Bound {
                server,
                addr,
                tls_addr,
                worker,
                keys,
            } = bound;
            let shown =
                |a: Option<std::net::SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
            tracing::info!(
                listen = %shown(addr),
                tls_listen = %shown(tls_addr),
                auth = match config.auth {
                    hearth::config::Auth::Smart { .. } => "smart",
                    hearth::config::Auth::None { .. } => "none",
                },
                database = %config.database().describe(),
                workers = config.workers,
                "Hearth is serving FHIR R4"
            );
            // actix-web stops gracefully on SIGINT and SIGTERM: it stops
            // accepting, finishes requests in flight, then returns.
            server.await?;
            drop(worker);
            drop(keys);
            tracing::info!("Hearth stopped");
            Ok::<(), hearth::server::ServeError>(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Hearth could not run");
            eprintln!("hearth: {e}");
            ExitCode::FAILURE
        }
    }
}
