use std::fmt;

/// What can go wrong in the store. The HTTP layer maps each kind to a status
/// and an OperationOutcome in one table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{resource_type}/{id} is not known")]
    NotFound { resource_type: String, id: String },
    #[error("{resource_type}/{id}/_history/{version_id} is not known")]
    VersionNotFound {
        resource_type: String,
        id: String,
        version_id: i64,
    },
    /// The resource exists but its current version is a deletion.
    #[error("{resource_type}/{id} was deleted (version {version_id})")]
    Gone {
        resource_type: String,
        id: String,
        version_id: i64,
        last_updated: i64,
    },
    /// A write conditioned on a version found another version current.
    #[error("version conflict: the request expected version {expected} but the current version is {}", CurrentVersion(*.current))]
    VersionConflict { expected: i64, current: Option<i64> },
    /// The resource to store has no `resourceType` or is otherwise unusable.
    #[error("{0}")]
    InvalidResource(String),
    /// The database is unreachable, locked for too long, or failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The work ran past its time limit and was stopped.
    #[error("{0}")]
    TooSlow(String),
    /// The work was stopped because nobody waits for it any more.
    #[error("the request was cancelled")]
    Cancelled,
    /// A search the database refuses as too large to plan.
    #[error("{0}")]
    TooComplex(String),
    /// The request's grant does not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("database error: {0}")]
    Database(String),
}

struct CurrentVersion(Option<i64>);

impl fmt::Display for CurrentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("none (the resource does not exist)"),
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            // Retrying later can succeed: the database is busy, went away,
            // or gave up on a statement that took too long.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::SerializationFailure,
                info,
            ) => StoreError::Unavailable(info.message().to_owned()),
            // SQLite's progress handler, or the PostgreSQL canceller,
            // stopped the statement.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message() == "interrupted"
                    || info.message().contains("canceling statement due to user request") =>
            {
                crate::budget::interrupted().unwrap_or_else(|| StoreError::Database(e.to_string()))
            }
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().contains("canceling statement due to statement timeout") =>
            {
                StoreError::TooSlow(format!(
                    "the database stopped a statement at its time limit ({}); narrow the search",
                    info.message()
                ))
            }
            // SQLite's limits on the statement's text, not on its data.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().starts_with("Expression tree is too large")
                    || info.message().starts_with("too many terms in compound SELECT")
                    || info.message().starts_with("too many SQL variables")
                    || info.message().starts_with("parser stack overflow")
                    || info.message().starts_with("at most 64 tables in a join") =>
            {
                StoreError::TooComplex(format!(
                    "the search is too complex for the database to run ({}); use fewer parameters or values",
                    info.message()
                ))
            }
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().contains("database is locked")
                    || info.message().contains("busy")
                    || info.message().contains("deadlock detected")
                    || info.message().contains("lock timeout")
                    || info.message().contains("terminating connection")
                    || info.message().contains("server closed the connection") =>
            {
                StoreError::Unavailable(info.message().to_owned())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}
