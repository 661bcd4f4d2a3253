//! The FHIR R4 REST API of Hearth on actix-web.
//!
//! Only this crate knows HTTP: media types, headers and status codes. Each
//! handler takes a [`context::Fhir`] (negotiated representation, the
//! store held to the request's grant — decided once, in [`auth`], from its
//! bearer token), calls the store, and answers through
//! [`context::Fhir::finish`], which renders any [`error::ApiError`] as an
//! OperationOutcome.

pub mod auth;
mod bundle;
mod capabilities;
mod conditional;
pub mod context;
pub mod cors;
mod everything;
mod export;
mod health;
mod history;
mod logging;
pub mod metrics;
pub mod negotiate;
pub mod oauth;
mod operations;
mod pages;
mod reply;
mod rest;
mod search;
pub mod server;
mod spliced;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use hearth_store::Store;

use crate::auth::Authorization;
pub use hearth_api::error;

use crate::error::ApiError;

/// What the REST API needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The public base URL; when `None` it is taken from each request.
    pub base_url: Option<String>,
    /// The largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    pub default_page_size: i64,
    pub max_page_size: i64,
    /// Whether a conditional delete matching several resources deletes them
    /// all (otherwise it answers 412).
    pub conditional_delete_multiple: bool,
    /// How long a request's database reads may take (zero: no limit).
    pub time_limit: Duration,
    /// How long a request body may take to arrive (408 after that).
    pub body_timeout: Duration,
    /// The most entries a batch or transaction Bundle may have.
    pub max_bundle_entries: usize,
    /// The most resources `_include` and `_revinclude` add to one page.
    pub max_includes: usize,
    /// Whether `GET /metrics` is served beside the API (when metrics are
    /// on and have no listener of their own).
    pub metrics_route: bool,
    /// The origins browsers may call the API from (discovery answers any).
    pub cors: cors::Origins,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            base_url: None,
            max_body_bytes: 16 * 1024 * 1024,
            default_page_size: 50,
            max_page_size: 1000,
            conditional_delete_multiple: false,
            time_limit: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_bundle_entries: 5000,
            max_includes: 1000,
            metrics_route: true,
            cors: cors::Origins::default(),
        }
    }
}

/// Shared state of every worker.
pub struct AppState {
    pub store: Store,
    pub config: HttpConfig,
    /// How requests are authorized.
    pub authorization: Authorization,
    /// The authorization server (`auth = "smart"`), which also publishes
    /// Hearth's keys (`/.well-known/jwks.json`).
    pub oauth: Option<Arc<hearth_auth::oauth::AuthServer>>,
    /// When this server started (the CapabilityStatement's date).
    pub started: String,
    /// `None` when metrics are off.
    pub metrics: Option<Arc<metrics::Metrics>>,
}

impl AppState {
    pub fn new(store: Store, config: HttpConfig, authorization: Authorization) -> Self {
        AppState {
            store,
            config,
            authorization,
            oauth: None,
            started: hearth_model::datetime::format_instant(hearth_model::datetime::now_ms()),
            metrics: None,
        }
    }

    /// The state, with an authorization server.
    pub fn with_oauth(self, oauth: Arc<hearth_auth::oauth::AuthServer>) -> Self {
        AppState {
            oauth: Some(oauth),
            ..self
        }
    }

    /// The state, counting requests in `metrics`.
    pub fn with_metrics(self, metrics: Option<Arc<metrics::Metrics>>) -> Self {
        AppState { metrics, ..self }
    }
}

/// Registers the FHIR API on an actix-web app:
/// `App::new().configure(|c| hearth_http::configure(c, state.clone()))`.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    if state.metrics.is_some() && state.config.metrics_route {
        configure_metrics(cfg);
    }
    cfg.app_data(state)
        // Fixed paths first, then by the number of segments: a read
        // (`/{type}/{id}`, the most frequent request) is matched after the
        // other two-segment routes and before the longer ones, so it is
        // tried against as few patterns as can be.
        .service(
            web::resource("/health/live")
                .route(web::get().to(health::live))
                .route(web::head().to(health::live))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/health/ready")
                .route(web::get().to(health::ready))
                .route(web::head().to(health::ready))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/.well-known/jwks.json")
                .route(web::get().to(capabilities::jwks))
                .route(web::head().to(capabilities::jwks))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/.well-known/smart-configuration")
                .route(web::get().to(oauth::configuration))
                .route(web::head().to(oauth::configuration))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/.well-known/openid-configuration")
                .route(web::get().to(oauth::openid_configuration))
                .route(web::head().to(oauth::openid_configuration))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/auth/token")
                .route(web::post().to(oauth::token))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/auth/authorize")
                .route(web::get().to(pages::authorize))
                .route(web::post().to(pages::authorize))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/auth/sign-in")
                .route(web::post().to(pages::sign_in))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/auth/patient")
                .route(web::post().to(pages::patient))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/auth/consent")
                .route(web::post().to(pages::consent))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/auth/launch")
                .route(web::post().to(oauth::launch))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/auth/introspect")
                .route(web::post().to(oauth::introspect))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/auth/revoke")
                .route(web::post().to(oauth::revoke))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/metadata")
                .route(web::get().to(capabilities::metadata))
                .route(web::head().to(capabilities::metadata))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/")
                .route(web::get().to(search::system))
                .route(web::head().to(search::system))
                .route(web::post().to(bundle::submit))
                .default_service(not_allowed("GET, HEAD, POST")),
        )
        .service(
            web::resource("/$export")
                .route(web::get().to(export::system))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/$reindex")
                .route(web::post().to(operations::reindex_system))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/_search")
                .route(web::post().to(search::system_post))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/_history")
                .route(web::get().to(history::system))
                .route(web::head().to(history::system))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/Patient/$export")
                .route(web::get().to(export::patients))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/Patient/$everything")
                .route(web::get().to(everything::type_level))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/_async/{id}")
                .route(web::get().to(operations::status))
                .route(web::delete().to(operations::cancel))
                .default_service(not_allowed("GET, DELETE")),
        )
        .service(
            web::resource("/{type}/_history")
                .route(web::get().to(history::of_type))
                .route(web::head().to(history::of_type))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/{type}/$reindex")
                .route(web::post().to(operations::reindex_type))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/{type}/_search")
                .route(web::post().to(search::of_type_post))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/{type}/{id}")
                .route(web::get().to(rest::read))
                .route(web::head().to(rest::read))
                .route(web::put().to(rest::update))
                .route(web::patch().to(rest::patch))
                .route(web::delete().to(rest::delete))
                .default_service(not_allowed("GET, HEAD, PUT, PATCH, DELETE")),
        )
        .service(
            web::resource("/Group/{id}/$export")
                .route(web::get().to(export::group))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/_export/{id}/{file}")
                .route(web::get().to(export::file))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/Patient/{id}/$everything")
                .route(web::get().to(everything::instance))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/{type}/{id}/_history")
                .route(web::get().to(history::instance))
                .route(web::head().to(history::instance))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/{type}/{id}/_history/{vid}")
                .route(web::get().to(rest::vread))
                .route(web::head().to(rest::vread))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/{type}/{id}/{compartment_type}")
                .route(web::get().to(search::compartment))
                .route(web::head().to(search::compartment))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(
            web::resource("/{type}")
                .route(web::get().to(search::of_type))
                .route(web::head().to(search::of_type))
                .route(web::post().to(rest::create))
                .route(web::put().to(conditional::update))
                .route(web::delete().to(conditional::delete))
                .route(web::patch().to(conditional::patch))
                .default_service(not_allowed("GET, HEAD, POST, PUT, DELETE, PATCH")),
        )
        .default_service(web::to(not_found));
}

/// `GET /metrics`, on the API's listener.
fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(metrics::serve))
            .default_service(not_allowed("GET")),
    );
}

/// `GET /metrics` alone, for a listener of its own.
pub fn configure_metrics_only(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    configure_metrics(cfg);
    cfg.app_data(state).default_service(web::to(not_found));
}

/// The logging middleware: one line per request with its route pattern,
/// status and duration, never its path, query or body.
pub use logging::RequestLog;

/// 405 with an `Allow` header for a method a route does not take. An unknown
/// resource type answers 404 first.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        let error = match req.match_info().get("type") {
            Some(t)
                if t != "metadata"
                    && t != "_history"
                    && hearth_api::checks::check_type(t).is_err() =>
            {
                ApiError::UnknownResourceType(t.to_owned())
            }
            _ => ApiError::MethodNotAllowed(format!(
                "{} is not supported here; this endpoint allows {allow}",
                req.method()
            )),
        };
        let mut response = error_response(&req, &error);
        if error.status() == actix_web::http::StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        response
    })
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let error = ApiError::NotFound(format!(
        "there is no FHIR endpoint at {} {}",
        req.method(),
        req.path()
    ));
    error_response(&req, &error)
}

/// An error outside a FHIR handler, in the representation the request asked for.
fn error_response(req: &HttpRequest, error: &ApiError) -> HttpResponse {
    negotiate::outcome_response(
        error.status(),
        &error.outcome(),
        negotiate::fallback_representation(req),
    )
}
