//! Online backups of an SQLite store, and restoring one.
//!
//! A copy of the file taken while Hearth writes is not a backup: it can
//! catch a page half-written or miss the write-ahead log. `VACUUM INTO`
//! writes a consistent copy of one read snapshot instead — every commit
//! acknowledged before it began, none after — while the server goes on
//! reading and writing. A store in use holds a shared lock on its lock file
//! (`StoreLock`); a restore takes it exclusively, so it cannot replace a
//! database under a running server or import.
//!
//! PostgreSQL has its own tools: `pg_dump`/`pg_restore`, and base backups
//! with WAL archiving for point-in-time recovery (see README, "Backups").

use std::fs::File;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use diesel::connection::SimpleConnection;
use diesel::sqlite::{ProgressDecision, SqliteConnection};
use diesel::{Connection, QueryableByName, RunQueryDsl};

use crate::db::Db;
use crate::{Result, StoreError};

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub bytes: u64,
    /// Current, non-deleted resources.
    pub resources: i64,
    /// Versions of resources, deletions included.
    pub versions: i64,
    /// The version of the search index's extraction rules it was built
    /// with (opening a store of another version rebuilds the index).
    pub index_version: Option<String>,
}

impl BackupSummary {
    /// Whether its search index is this build's, so a server opens it
    /// without rebuilding the index.
    pub fn index_is_current(&self) -> bool {
        self.index_version.as_deref() == Some(crate::index_rows::INDEX_VERSION)
    }
}

/// A store's lock file: shared by every process using the store, taken
/// exclusively to replace it. Released when dropped.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// The lock file beside `database`.
    fn path(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn open(database: &Path) -> Result<File> {
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(Self::path(database))
            .map_err(|e| StoreError::Unavailable(format!("cannot open the store's lock file: {e}")))
    }

    /// The lock a process using the store holds (waiting for a restore to
    /// finish).
    pub(crate) fn shared(database: &Path) -> Result<StoreLock> {
        let file = Self::open(database)?;
        file.lock_shared().map_err(|e| {
            StoreError::Unavailable(format!("cannot lock the store's lock file: {e}"))
        })?;
        Ok(StoreLock { _file: file })
    }

    /// The lock a restore takes, refused at once if the store is in use.
    fn exclusive(database: &Path) -> Result<StoreLock> {
        let file = Self::open(database)?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
                "{} is in use (a server or an import has it open); stop it before restoring",
                database.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
                "cannot lock the store's lock file: {e}"
            ))),
        }
    }
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = diesel::sql_types::Text)]
    quick_check: String,
}

fn number(conn: &mut Db, sql: &str) -> Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<Number>(conn)?.n)
}

fn open(path: &Path) -> Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.batch_execute("PRAGMA busy_timeout = 5000")?;
    Ok(conn)
}

/// Checks that `path` is an intact Hearth store, and says what it holds.
pub fn verify(path: &Path) -> Result<BackupSummary> {
    if !path.is_file() {
        return Err(StoreError::InvalidResource(format!(
            "{} is not a file",
            path.display()
        )));
    }
    let mut conn = Db::Sqlite(open(path)?);
    let check = diesel::sql_query("PRAGMA quick_check")
        .load::<Check>(&mut conn)
        .map_err(|e| {
            StoreError::InvalidResource(format!(
                "{} is not an SQLite database: {e}",
                path.display()
            ))
        })?;
    if check.iter().any(|c| c.quick_check != "ok") {
        let problems: Vec<&str> = check
            .iter()
            .take(5)
            .map(|c| c.quick_check.as_str())
            .collect();
        return Err(StoreError::InvalidResource(format!(
            "{} is damaged: {}",
            path.display(),
            problems.join("; ")
        )));
    }
    let summary = |conn: &mut Db| -> Result<BackupSummary> {
        let resources = number(
            conn,
            "SELECT COUNT(*) AS n FROM resources WHERE NOT deleted",
        )?;
        let versions = number(conn, "SELECT COUNT(*) AS n FROM resource_versions")?;
        let index_version = crate::store_meta::get(conn, "index_version")?;
        Ok(BackupSummary {
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            resources,
            versions,
            index_version,
        })
    };
    summary(&mut conn).map_err(|e| {
        StoreError::InvalidResource(format!("{} is not a Hearth store: {e}", path.display()))
    })
}

/// Writes a consistent copy of the SQLite store at `source` to `dest`
/// (which must not exist) while the store stays in use, then checks it.
/// `progress` is told the bytes written so far and about how many there
/// will be.
pub fn backup(
    source: &Path,
    dest: &Path,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<BackupSummary> {
    if dest.exists() {
        return Err(StoreError::InvalidResource(format!(
            "{} exists; a backup never overwrites a file",
            dest.display()
        )));
    }
    if !source.is_file() {
        return Err(StoreError::Unavailable(format!(
            "there is no store at {}",
            source.display()
        )));
    }
    let mut conn = open(source)?;
    let total = diesel::sql_query(
        "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
    )
    .get_result::<Number>(&mut conn)?
    .n
    .max(0) as u64;
    // SQLite calls this while it copies: look at the copy's size now and
    // then.
    let progress = Arc::new(Mutex::new(progress));
    let watched = dest.to_owned();
    let mut calls = 0u32;
    let report = progress.clone();
    conn.on_progress(
        NonZeroU32::new(100_000).unwrap_or(NonZeroU32::MIN),
        move || {
            calls = calls.wrapping_add(1);
            if calls.is_multiple_of(16) {
                let written = std::fs::metadata(&watched).map(|m| m.len()).unwrap_or(0);
                if let Ok(mut report) = report.lock() {
                    report(written.min(total), total);
                }
            }
            ProgressDecision::Continue
        },
    );
    let written = diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(dest.to_string_lossy().into_owned())
        .execute(&mut conn);
    conn.remove_progress_handler();
    if let Err(e) = written {
        let _ = std::fs::remove_file(dest);
        return Err(e.into());
    }
    let summary = verify(dest)?;
    if let Ok(mut report) = progress.lock() {
        report(summary.bytes, summary.bytes);
    }
    Ok(summary)
}

/// Replaces the SQLite store at `dest` by the backup at `backup`, refused
/// while the store is in use. The backup is checked first; the old
/// database's write-ahead log goes with it.
pub fn restore(backup: &Path, dest: &Path) -> Result<BackupSummary> {
    let summary = verify(backup)?;
    let _lock = StoreLock::exclusive(dest)?;
    let mut staged = dest.as_os_str().to_owned();
    staged.push(".restoring");
    let staged = PathBuf::from(staged);
    std::fs::copy(backup, &staged)
        .map_err(|e| StoreError::Unavailable(format!("cannot copy {}: {e}", backup.display())))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = dest.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(StoreError::Unavailable(format!(
                    "cannot remove the old database's {suffix} file: {e}"
                )));
            }
        }
    }
    std::fs::rename(&staged, dest)
        .map_err(|e| StoreError::Unavailable(format!("cannot put the backup in place: {e}")))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};
    use serde_json::json;

    fn store(dir: &Path) -> (Store, PathBuf) {
        let path = dir.join("hearth.db");
        (
            Store::open_sqlite(&path, &StoreOptions::default()).unwrap(),
            path,
        )
    }

    #[test]
    fn a_backup_holds_what_was_committed_and_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path) = store(dir.path());
        for i in 0..20 {
            store
                .create(
                    json!({"resourceType": "Patient", "name": [{"family": format!("Backup{i}")}]}),
                )
                .unwrap();
        }
        let copy = dir.path().join("backup.db");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let noted = seen.clone();
        let summary = backup(&path, &copy, move |done, total| {
            noted.lock().unwrap().push((done, total))
        })
        .unwrap();
        assert_eq!((summary.resources, summary.versions), (20, 20));
        assert!(summary.index_is_current(), "{summary:?}");
        assert!(seen.lock().unwrap().last().is_some_and(|(d, t)| d == t));
        // Never over a file.
        assert!(backup(&path, &copy, |_, _| {}).is_err());

        // Not while the store is open.
        let restored = dir.path().join("restored/hearth.db");
        let other = Store::open_sqlite(&restored, &StoreOptions::default()).unwrap();
        let error = restore(&copy, &restored).unwrap_err();
        assert!(error.to_string().contains("in use"), "{error}");
        drop(other);
        let summary = restore(&copy, &restored).unwrap();
        assert_eq!(summary.resources, 20);
        let reopened = Store::open_sqlite(&restored, &StoreOptions::default()).unwrap();
        let written = store
            .create(json!({"resourceType": "Patient", "id": "x"}))
            .unwrap();
        assert!(
            reopened.read("Patient", &written.version.id).is_err(),
            "written after the backup"
        );
    }

    #[test]
    fn a_damaged_or_foreign_file_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![7u8; 8192]).unwrap();
        assert!(restore(&junk, &dir.path().join("hearth.db")).is_err());
        let empty = dir.path().join("empty.db");
        SqliteConnection::establish(&empty.to_string_lossy())
            .unwrap()
            .batch_execute("CREATE TABLE t (x)")
            .unwrap();
        let error = restore(&empty, &dir.path().join("hearth.db")).unwrap_err();
        assert!(error.to_string().contains("not a Hearth store"), "{error}");
        assert!(!dir.path().join("hearth.db").exists());
    }
}
