//! The per-request context every FHIR handler starts from: negotiated
//! representation, `Prefer`, the base URL, and the store, bounded by the
//! request's budget and held to its grant (see [`crate::auth`]).

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use hearth_store::{Budget, CancelOnDrop, Store};

use std::sync::Arc;

use hearth_auth::{Grant, Verified};
use hearth_store::Access;

use crate::error::ApiError;
use crate::negotiate::{self, Representation};
use crate::AppState;

/// `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreferReturn {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

pub struct Fhir {
    pub req: HttpRequest,
    pub state: web::Data<AppState>,
    /// The store, its reads bounded by this request's budget (they stop at
    /// the time limit, or when the request is dropped because its client
    /// went away) and everything held to the request's grant.
    pub store: Store,
    pub params: Vec<(String, String)>,
    pub rep: Representation,
    /// Who the request comes from; `None` on an open server.
    pub principal: Option<Arc<Verified>>,
    pub prefer_return: PreferReturn,
    _cancel: CancelOnDrop,
}

impl Fhir {
    /// The context of a request to the FHIR API; for a `Public` endpoint
    /// (`/metadata`) the store is granted nothing, so it cannot reach data
    /// whatever it does; a `File` is not negotiated (errors are FHIR JSON).
    fn from_request(req: &HttpRequest, kind: Kind) -> Result<Fhir, ApiError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
        let params: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
        let rep = match kind {
            Kind::File => Representation::default(),
            _ => negotiate::representation(req, &params)?,
        };
        check_host(req, &state.config)?;
        let (access, principal) = if kind == Kind::Public {
            (Access::new(Grant::nothing(), None), None)
        } else {
            state.authorization.access(req)?
        };
        let budget = Budget::new(state.config.time_limit);
        Ok(Fhir {
            req: req.clone(),
            store: state.store.bounded(budget.clone()).under(access),
            state,
            params,
            rep,
            principal,
            prefer_return: prefer_return(req),
            _cancel: CancelOnDrop(budget),
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        negotiate::param(&self.params, name)
    }

    /// The server's base URL, from configuration or from the request.
    pub fn base(&self) -> String {
        match &self.state.config.base_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => {
                let info = self.req.connection_info();
                let scheme = if self.req.conn_data::<crate::server::Secure>().is_some() {
                    "https"
                } else {
                    info.scheme()
                };
                format!("{scheme}://{}", info.host())
            }
        }
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the whole request body (a FHIR resource), refusing more than
    /// the configured limit, or a body that does not arrive in time.
    pub async fn body(&self, payload: web::Payload) -> Result<web::Bytes, ApiError> {
        let body = self.any_body(payload).await?;
        if body.is_empty() {
            return Err(ApiError::bad_request(
                "the request has no body; a FHIR resource is required",
            ));
        }
        Ok(body)
    }

    /// [`Fhir::body`], which may be empty (a form of search parameters).
    pub async fn any_body(&self, payload: web::Payload) -> Result<web::Bytes, ApiError> {
        read_body(
            &self.state.config,
            &self.req,
            payload,
            self.state.config.max_body_bytes,
        )
        .await
    }
}

/// Reads a request's whole body, refusing more than `limit` bytes, or a
/// body that does not arrive within `body_timeout`: for the FHIR API and
/// the authorization server's forms alike.
pub(crate) async fn read_body(
    config: &crate::HttpConfig,
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let read = async {
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    // A body trickling in would hold its connection and its buffer for as
    // long as the client liked.
    tokio::time::timeout(config.body_timeout, read)
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s",
                config.body_timeout.as_secs()
            ))
        })?
}

/// An HTTP/1.1 request must name its host (RFC 9112 §3.2), and links are
/// built from it unless `base_url` is configured.
fn check_host(req: &HttpRequest, config: &crate::HttpConfig) -> Result<(), ApiError> {
    if req.headers().contains_key(header::HOST) || req.uri().authority().is_some() {
        return Ok(());
    }
    if req.version() == actix_web::http::Version::HTTP_10 && config.base_url.is_some() {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "the request has no Host header, which HTTP/1.1 requires",
    ))
}

/// Bodies up to this size are parsed on the worker thread itself: that
/// takes tens of microseconds, less than handing the work to another
/// thread and back. Larger ones go to the blocking pool, so a big Bundle
/// never stalls the other requests of a worker.
const PARSE_INLINE_BYTES: usize = 16 * 1024;

/// Runs `f`, the parsing of a body of `len` bytes and what follows from
/// it, where it costs least (see [`PARSE_INLINE_BYTES`]).
pub(crate) async fn parse_work<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if len <= PARSE_INLINE_BYTES {
        Ok(f())
    } else {
        web::block(f).await.map_err(shutting_down)
    }
}

/// Runs `f`, a blocking store call, on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(shutting_down)?
        .map_err(Into::into)
}

/// The blocking pool refuses work only when the server stops.
pub(crate) fn shutting_down(_: actix_web::error::BlockingError) -> ApiError {
    ApiError::Unavailable("the server is shutting down".into())
}

impl FromRequest for Fhir {
    type Error = actix_web::Error;
    type Future = Ready<Result<Fhir, actix_web::Error>>;

    /// A request whose context cannot be settled (406, a bad `_pretty`, no
    /// valid token) is answered in the best representation that can be
    /// told.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, Kind::Api, |fhir| fhir)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Api,
    Public,
    File,
}

/// The context of a file download (Bulk Data NDJSON): authorized as the
/// API, but not negotiated.
pub struct Files(pub Fhir);

impl FromRequest for Files {
    type Error = actix_web::Error;
    type Future = Ready<Result<Files, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, Kind::File, Files)
    }
}

/// The context of a public endpoint (see [`Fhir::from_request`]).
pub struct Public(pub Fhir);

impl FromRequest for Public {
    type Error = actix_web::Error;
    type Future = Ready<Result<Public, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, Kind::Public, Public)
    }
}

/// The context of `req` as `kind`, wrapped; or its refusal, answered.
fn extract<T>(
    req: &HttpRequest,
    kind: Kind,
    wrap: fn(Fhir) -> T,
) -> Ready<Result<T, actix_web::Error>> {
    ready(
        Fhir::from_request(req, kind)
            .map(wrap)
            .map_err(|error| refused(req, error)),
    )
}

fn refused(req: &HttpRequest, error: ApiError) -> actix_web::Error {
    let mut response = negotiate::outcome_response(
        error.status(),
        &error.outcome(),
        negotiate::fallback_representation(req),
    );
    if let ApiError::Unauthorized(description) = &error {
        if let Ok(value) =
            header::HeaderValue::from_str(&crate::auth::challenge(description.as_deref()))
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    actix_web::error::InternalError::from_response(error, response).into()
}

fn prefer_return(req: &HttpRequest) -> PreferReturn {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .find_map(|token| match token.trim().split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("return") => {
                match v.trim().trim_matches('"') {
                    "minimal" => Some(PreferReturn::Minimal),
                    "representation" => Some(PreferReturn::Representation),
                    "OperationOutcome" => Some(PreferReturn::OperationOutcome),
                    _ => None,
                }
            }
            _ => None,
        })
        .unwrap_or_default()
}
