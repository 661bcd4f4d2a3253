//! Request logging without patient data: the route pattern (`/{type}/{id}`),
//! never the path, query string or body, plus status, duration and a request
//! id that is echoed in `X-Request-Id`.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::Error;

use crate::metrics::Metrics;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Middleware factory; wrap the app with `.wrap(RequestLog::new(metrics))`.
/// It also counts each request in the metrics, when they are on.
pub struct RequestLog {
    metrics: Option<Arc<Metrics>>,
}

impl RequestLog {
    pub fn new(metrics: Option<Arc<Metrics>>) -> RequestLog {
        RequestLog { metrics }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestLogService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLogService {
            service,
            metrics: self.metrics.clone(),
        }))
    }
}

pub struct RequestLogService<S> {
    service: S,
    metrics: Option<Arc<Metrics>>,
}

/// A client's request id is kept only if it is a short token, so it cannot
/// smuggle data into logs. Otherwise the request gets the next of this
/// process's ids (see [`next_id`]).
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(next_id)
}

/// `{process}-{n}`: a random prefix drawn once per process (so ids of
/// several nodes, and of restarts, do not meet) and a counter. An id only
/// has to be unique; drawing a random one per request costs a system call.
fn next_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PROCESS: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let process =
        PROCESS.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    format!("{process}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl<S, B> Service<ServiceRequest> for RequestLogService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let id = request_id(&req);
        let method = req.method().clone();
        let metrics = self.metrics.clone();
        let in_flight = metrics.as_ref().map(Metrics::started);
        let fut = self.service.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            drop(in_flight);
            let route = res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "(no route)".to_owned());
            let status = res.status().as_u16();
            if let Some(metrics) = &metrics {
                metrics.observe(&route, &method, status, start.elapsed());
            }
            tracing::info!(
                request_id = %id,
                http.method = %method,
                http.route = %route,
                http.status = status,
                duration_ms = start.elapsed().as_micros() as f64 / 1000.0,
                "request"
            );
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            Ok(res)
        })
    }
}
