//! `hearth backup DEST` and `hearth restore SRC`: an online backup of the
//! SQLite store while servers use it, and putting one back in place while
//! none does. PostgreSQL is backed up with its own tools (README,
//! "Backups").

use std::path::{Path, PathBuf};

use clap::Args;
use hearth_store::backup::{self, BackupSummary};
use hearth_store::Database;

use crate::config::{Config, ServeArgs};
use crate::progress::Bar;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write the backup to; it must not exist.
    pub dest: PathBuf,
    #[command(flatten)]
    pub settings: ServeArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (a file `hearth backup` wrote).
    pub src: PathBuf,
    #[command(flatten)]
    pub settings: ServeArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{0} is a PostgreSQL database: back it up with PostgreSQL's tools — `pg_dump -Fc` \
         (and `pg_restore`) for a copy, base backups with WAL archiving for point-in-time \
         recovery (see the README, \"Backups\")"
    )]
    Postgres(String),
    #[error("{0}")]
    Store(#[from] hearth_store::StoreError),
}

fn sqlite_path(config: &Config) -> Result<PathBuf, BackupError> {
    match config.database() {
        Database::Sqlite(path) => Ok(path),
        database => Err(BackupError::Postgres(database.describe())),
    }
}

/// Writes the backup, with a progress bar.
pub fn run_backup(args: &BackupArgs, config: &Config) -> Result<BackupSummary, BackupError> {
    let source = sqlite_path(config)?;
    let mut bar = Bar::new();
    let summary = backup::backup(&source, &args.dest, move |done, total| {
        let share = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let rate = done as f64 / 1e6 / bar.elapsed().as_secs_f64().max(1e-9);
        bar.show(
            share,
            &format!("{} of {} MB  {rate:.0} MB/s", done >> 20, total >> 20),
            done == total && done > 0,
        );
    })?;
    Ok(summary)
}

/// Puts the backup in place of the configured store.
pub fn run_restore(
    args: &RestoreArgs,
    config: &Config,
) -> Result<(PathBuf, BackupSummary), BackupError> {
    let dest = sqlite_path(config)?;
    let summary = backup::restore(&args.src, &dest)?;
    Ok((dest, summary))
}

/// `resources in versions, size` for a summary line.
pub fn describe(path: &Path, summary: &BackupSummary) -> String {
    format!(
        "{}: {} resources, {} versions, {:.1} MB",
        path.display(),
        summary.resources,
        summary.versions,
        summary.bytes as f64 / 1e6
    )
}
