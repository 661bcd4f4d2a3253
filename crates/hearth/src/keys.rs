//! `hearth keys`: the server's token signing keys (kept in the database,
//! shared by every node, which picks up a change within 2 seconds).

use clap::{Args, Subcommand};
use hearth_store::Store;

use crate::config::{Config, ServeArgs};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    #[command(flatten)]
    pub settings: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys: id and age; the newest signs.
    List,
    /// Make a new key, which signs from now on; the older ones still
    /// verify the tokens they signed.
    Rotate,
    /// Remove keys made more than this many seconds ago (never the
    /// newest): tokens they signed stop working.
    Retire {
        #[arg(long = "older-than")]
        older_than: i64,
    },
}

/// Runs the command; answers what to print.
pub fn run(args: &KeysArgs, config: &Config) -> Result<String, hearth_store::StoreError> {
    let store = Store::open(&config.database(), &config.store)?;
    let now = hearth_model::datetime::now_ms();
    match args.command {
        KeysCommand::List => {
            let keys = store.signing_keys()?;
            let newest = keys.iter().map(|k| k.created_at).max().unwrap_or_default();
            Ok(keys
                .iter()
                .map(|k| {
                    format!(
                        "{}  made {} s ago{}\n",
                        k.kid,
                        (now - k.created_at) / 1000,
                        if k.created_at == newest {
                            "  (signs)"
                        } else {
                            ""
                        }
                    )
                })
                .collect())
        }
        KeysCommand::Rotate => {
            let key = store.add_signing_key()?;
            Ok(format!("{} signs from now on\n", key.kid))
        }
        KeysCommand::Retire { older_than } => {
            let removed = store.retire_signing_keys(now - older_than.max(0) * 1000)?;
            Ok(format!("{removed} key(s) retired\n"))
        }
    }
}
