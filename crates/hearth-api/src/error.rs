//! Every failure of a FHIR interaction, and the one table that maps each
//! to an HTTP status and an OperationOutcome issue. The REST handlers and
//! Bundle entries answer with these; none builds an error by hand.

use hearth_model::{IssueCode, OperationOutcome, ParseError, Severity};
use hearth_store::StoreError;
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The request did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// A request that is well-formed HTTP but wrong for FHIR: a bad
    /// parameter, an id that does not match the URL, a missing header.
    #[error("{message}")]
    BadRequest {
        message: String,
        expression: Vec<String>,
    },
    #[error("unknown resource type '{0}'")]
    UnknownResourceType(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Conflict(String),
    /// A patch that is well-formed but cannot be applied, or whose result is
    /// not a valid resource.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Forbidden(String),
    /// No bearer token, or one that is not valid (401 with
    /// `WWW-Authenticate`): the description says what is wrong with it.
    #[error("{}", .0.as_deref().unwrap_or("this request needs a bearer access token (Authorization: Bearer …)"))]
    Unauthorized(Option<String>),
    /// An input past one of the size limits (the number of a Bundle's
    /// entries, what a patch would grow a resource to).
    #[error("{0}")]
    TooLong(String),
    /// A search that asks for more work than one request may take (too
    /// many parameters or values, chains or `_has` nested too deeply).
    #[error("{0}")]
    TooComplex(String),
    /// Work stopped at its time limit.
    #[error("{0}")]
    TooSlow(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    /// The failure of one entry of a batch or transaction Bundle: its
    /// status and issue are the entry's, located at the entry.
    #[error("Bundle.entry[{index}]: {error}")]
    InEntry { index: usize, error: Box<ApiError> },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            expression: Vec::new(),
        }
    }

    /// `self`, as the failure of entry `index` of a Bundle.
    pub fn in_entry(self, index: usize) -> ApiError {
        match self {
            ApiError::InEntry { .. } => self,
            error => ApiError::InEntry {
                index,
                error: Box::new(error),
            },
        }
    }

    /// The table: status, issue code and severity for each kind.
    pub fn spec(&self) -> (StatusCode, IssueCode, Severity) {
        use ApiError::*;
        match self {
            InEntry { error, .. } => error.spec(),
            NotAcceptable(_) => (
                StatusCode::NOT_ACCEPTABLE,
                IssueCode::NotSupported,
                Severity::Error,
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                IssueCode::NotSupported,
                Severity::Error,
            ),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueCode::TooLong,
                Severity::Error,
            ),
            RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                IssueCode::Timeout,
                Severity::Error,
            ),
            Parse(ParseError::Syntax { .. }) => (
                StatusCode::BAD_REQUEST,
                IssueCode::Structure,
                Severity::Error,
            ),
            Parse(ParseError::Structure { .. }) => (
                StatusCode::BAD_REQUEST,
                IssueCode::Structure,
                Severity::Error,
            ),
            Parse(ParseError::Invalid { .. }) => {
                (StatusCode::BAD_REQUEST, IssueCode::Value, Severity::Error)
            }
            BadRequest { .. } => (StatusCode::BAD_REQUEST, IssueCode::Invalid, Severity::Error),
            UnknownResourceType(_) => (
                StatusCode::NOT_FOUND,
                IssueCode::NotSupported,
                Severity::Error,
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, IssueCode::NotFound, Severity::Error),
            Gone(_) => (StatusCode::GONE, IssueCode::Deleted, Severity::Error),
            PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                IssueCode::Conflict,
                Severity::Error,
            ),
            Conflict(_) => (StatusCode::CONFLICT, IssueCode::Conflict, Severity::Error),
            Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueCode::Processing,
                Severity::Error,
            ),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                IssueCode::NotSupported,
                Severity::Error,
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, IssueCode::Forbidden, Severity::Error),
            Unauthorized(None) => (StatusCode::UNAUTHORIZED, IssueCode::Login, Severity::Error),
            Unauthorized(Some(_)) => (
                StatusCode::UNAUTHORIZED,
                IssueCode::Security,
                Severity::Error,
            ),
            TooLong(_) => (StatusCode::BAD_REQUEST, IssueCode::TooLong, Severity::Error),
            TooComplex(_) => (
                StatusCode::BAD_REQUEST,
                IssueCode::TooCostly,
                Severity::Error,
            ),
            TooSlow(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                IssueCode::TooCostly,
                Severity::Error,
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                IssueCode::Transient,
                Severity::Error,
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                IssueCode::Exception,
                Severity::Fatal,
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.spec().0
    }

    pub fn outcome(&self) -> OperationOutcome {
        let (_, code, severity) = self.spec();
        let mut outcome = OperationOutcome::single(severity, code, self.to_string());
        match self {
            ApiError::Parse(ParseError::Invalid { issues }) => {
                outcome.issues = issues
                    .iter()
                    .map(|i| hearth_model::outcome::Issue {
                        severity,
                        code,
                        diagnostics: i.message.clone(),
                        expression: vec![i.expression.clone()],
                    })
                    .collect();
            }
            ApiError::Parse(ParseError::Structure { expression, .. })
            | ApiError::BadRequest { expression, .. } => {
                outcome.issues[0].expression = expression.clone();
            }
            ApiError::InEntry { index, error } => {
                let entry = format!("Bundle.entry[{index}]");
                outcome = error.outcome();
                for issue in &mut outcome.issues {
                    issue.diagnostics = format!("{entry}: {}", issue.diagnostics);
                    if issue.expression.is_empty() {
                        issue.expression.push(entry.clone());
                    } else {
                        // `Patient.name[0]` of the entry's resource.
                        for e in &mut issue.expression {
                            *e = match e.split_once('.') {
                                Some((_, rest)) => format!("{entry}.resource.{rest}"),
                                None => format!("{entry}.resource"),
                            };
                        }
                    }
                }
            }
            _ => {}
        }
        outcome
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } | StoreError::VersionNotFound { .. } => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::Gone { .. } => ApiError::Gone(e.to_string()),
            StoreError::VersionConflict { .. } => ApiError::PreconditionFailed(e.to_string()),
            StoreError::InvalidResource(m) => ApiError::bad_request(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::TooSlow(m) => ApiError::TooSlow(m),
            StoreError::TooComplex(m) => ApiError::TooComplex(m),
            // Nobody reads this answer: the client has gone.
            StoreError::Cancelled => ApiError::TooSlow(e.to_string()),
            StoreError::Forbidden(m) => ApiError::Forbidden(m),
            StoreError::Database(m) => ApiError::Internal(m),
        }
    }
}

impl From<hearth_store::search::SearchError> for ApiError {
    fn from(e: hearth_store::search::SearchError) -> Self {
        if e.too_complex {
            ApiError::TooComplex(e.message)
        } else {
            ApiError::BadRequest {
                message: e.message,
                expression: vec![e.param],
            }
        }
    }
}
