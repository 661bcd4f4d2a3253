//! The HTTP server around the API: connections, their limits and timeouts,
//! and the errors the HTTP layer answers before any handler runs.
//!
//! actix-web's `HttpServer` would answer a request it cannot read (a
//! malformed request line, header fields too large, a head that does not
//! arrive in time) with an empty 400, 431 or 408. Hearth promises an
//! OperationOutcome with every error, so it assembles the same server from
//! actix's parts with each connection wrapped in [`Outcomes`], which gives
//! those answers a body.

use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive};
use actix_service::{fn_service, map_config, Service, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use hearth_model::{IssueCode, OperationOutcome, Severity};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::Metrics;
use crate::{AppState, RequestLog};

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Worker threads, each with its own event loop.
    pub workers: usize,
    /// Threads of the blocking pool per worker (store calls).
    pub max_blocking_threads: usize,
    /// Open connections at most, across workers; more wait in the
    /// listen backlog.
    pub max_connections: usize,
    /// How long an idle keep-alive connection stays open (zero: close
    /// after each response).
    pub keep_alive: Duration,
    /// How long a client may take to send a request's line and headers:
    /// 408 after that.
    pub header_timeout: Duration,
    /// How long requests in flight may finish after a shutdown begins.
    pub shutdown_timeout: Duration,
}

/// Where `GET /metrics` is served when not beside the API.
pub struct MetricsListener(pub TcpListener);

/// The HTTPS listener and its rustls configuration.
pub struct TlsListener(pub TcpListener, pub Arc<rustls::ServerConfig>);

/// Marks a connection served over TLS (its requests' scheme is https).
#[derive(Debug, Clone, Copy)]
pub struct Secure;

/// A connection: plain, or TLS once its handshake is done.
pub(crate) enum Connection {
    Plain(actix_rt::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<actix_rt::net::TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Connection::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Connection::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_flush(cx),
            Connection::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Connection::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Serves the FHIR API on `listener` (HTTP) and `tls` (HTTPS) until the
/// returned server is stopped.
pub fn serve(
    listener: Option<TcpListener>,
    tls: Option<TlsListener>,
    state: web::Data<AppState>,
    transport: &Transport,
    metrics_listener: Option<MetricsListener>,
) -> io::Result<actix_server::Server> {
    let t = transport.clone();
    let workers = t.workers.max(1);
    let mut builder = actix_server::Server::build();
    if let Some(MetricsListener(listener)) = metrics_listener {
        let state = state.clone();
        builder = builder.listen("metrics", listener, move || {
            let state = state.clone();
            let app = App::new().configure(move |cfg| crate::configure_metrics_only(cfg, state));
            HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .h1(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?;
    }
    builder = builder
        .workers(workers)
        .max_concurrent_connections(t.max_connections.div_ceil(workers).max(1))
        .worker_max_blocking_threads(t.max_blocking_threads.max(1))
        // On SIGINT or SIGTERM: stop accepting, let requests in flight
        // finish, and after this long drop them (which cancels their
        // database work).
        .shutdown_timeout(t.shutdown_timeout.as_secs());
    // One service for both listeners; HTTPS connections are handed on
    // once their handshake is done (within the header timeout).
    let service = |addr: std::net::SocketAddr, acceptor: Option<tokio_rustls::TlsAcceptor>| {
        let state = state.clone();
        let t = t.clone();
        move || {
            let state = state.clone();
            let metrics = state.metrics.clone();
            let acceptor = acceptor.clone();
            let origins = state.config.cors.clone();
            let registered = state.oauth.as_ref().map(|o| o.registered_origins());
            let app = App::new()
                // Inside the request log, so preflights are logged too.
                .wrap_fn(move |req, srv| {
                    let origins = origins.clone();
                    let registered = registered.clone();
                    let (answered, call) =
                        match crate::cors::preflight(&origins, registered.as_ref(), &req) {
                            Some(response) => (Some(req.into_response(response)), None),
                            None => (None, Some(srv.call(req))),
                        };
                    async move {
                        let mut response = match (answered, call) {
                            (Some(response), _) => response,
                            (None, Some(call)) => call.await?.map_into_boxed_body(),
                            (None, None) => unreachable!("a request is answered or called"),
                        };
                        crate::cors::decorate(&origins, registered.as_ref(), &mut response);
                        Ok(response)
                    }
                })
                .wrap(RequestLog::new(metrics.clone()))
                .configure(move |cfg| crate::configure(cfg, state));
            let secure = acceptor.is_some();
            let handshake_timeout = t.header_timeout;
            fn_service(move |io: actix_rt::net::TcpStream| {
                let metrics = metrics.clone();
                let acceptor = acceptor.clone();
                async move {
                    io.set_nodelay(true).map_err(DispatchError::Io)?;
                    let peer = io.peer_addr().ok();
                    let connection = match acceptor {
                        None => Connection::Plain(io),
                        Some(acceptor) => {
                            let accepted =
                                tokio::time::timeout(handshake_timeout, acceptor.accept(io))
                                    .await
                                    .map_err(|_| {
                                        DispatchError::Io(io::Error::new(
                                            io::ErrorKind::TimedOut,
                                            "TLS handshake timed out",
                                        ))
                                    })?
                                    .map_err(DispatchError::Io)?;
                            Connection::Tls(Box::new(accepted))
                        }
                    };
                    Ok::<_, DispatchError>((Outcomes::new(connection, metrics), peer))
                }
            })
            .and_then({
                let http = HttpService::<Outcomes<Connection>, _, _, _, _>::build()
                    // Requests over TLS know their scheme is https (links).
                    .on_connect_ext(
                        |io: &Outcomes<Connection>, ext: &mut actix_http::Extensions| {
                            if matches!(io.io, Connection::Tls(_)) {
                                ext.insert(Secure);
                            }
                        },
                    );
                let http = if secure { http.secure() } else { http };
                http.keep_alive(if t.keep_alive.is_zero() {
                    KeepAlive::Disabled
                } else {
                    KeepAlive::Timeout(t.keep_alive)
                })
                .client_request_timeout(t.header_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                // A client that closes its side has given up: the
                // request is dropped, and with it its database work.
                .h1_allow_half_closed(false)
                .local_addr(addr)
                // Links name the request's Host (a request without
                // one is refused), never this default.
                .h1(map_config(app, |_| AppConfig::default()))
            })
        }
    };
    if let Some(listener) = listener {
        let addr = listener.local_addr()?;
        builder = builder.listen("hearth", listener, service(addr, None))?;
    }
    if let Some(TlsListener(listener, config)) = tls {
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        builder = builder.listen("hearth-tls", listener, service(addr, Some(acceptor)))?;
    }
    Ok(builder.run())
}

/// A connection whose bodiless error answers from the HTTP layer (400,
/// 408, 431, 500) are given an OperationOutcome. Hearth's own responses
/// always have a body, so a head with `content-length: 0` and one of
/// those statuses can only be the HTTP layer's.
pub(crate) struct Outcomes<T> {
    io: T,
    /// A rewritten response still to be written.
    pending: Vec<u8>,
    written: usize,
    metrics: Option<Arc<Metrics>>,
}

impl<T> Outcomes<T> {
    pub(crate) fn new(io: T, metrics: Option<Arc<Metrics>>) -> Self {
        Outcomes {
            io,
            pending: Vec::new(),
            written: 0,
            metrics,
        }
    }
}

impl<T: AsyncWrite + Unpin> Outcomes<T> {
    /// Writes what is pending; ready when nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Outcomes<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Outcomes<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(response) = with_outcome(buf) {
            // The status line only: the request was not read.
            let status = String::from_utf8_lossy(&buf[9..12]).into_owned();
            tracing::info!(http.status = %status, "request refused by the HTTP layer");
            if let (Some(metrics), Ok(code)) = (&self.metrics, status.parse()) {
                metrics.refused(code);
            }
            self.pending = response;
            // The caller's bytes are taken; ours go out now or at the flush.
            if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The same answer as `head` with an OperationOutcome for its body, if
/// `head` is a whole bodiless 400, 408, 431 or 500 response.
fn with_outcome(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    let (diagnostics, code) = match rest.get(..4)? {
        b"400 " => (
            "the request is not well-formed HTTP (its request line, a header or the chunked \
             encoding of its body could not be read)",
            IssueCode::Structure,
        ),
        b"408 " => (
            "the request's line and headers did not arrive in time",
            IssueCode::Timeout,
        ),
        b"431 " => (
            "the request's header fields are too large",
            IssueCode::TooLong,
        ),
        b"500 " => (
            "the server could not read the request",
            IssueCode::Exception,
        ),
        _ => return None,
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    if end + 4 != head.len() {
        return None;
    }
    let lines = std::str::from_utf8(&head[..end]).ok()?;
    let mut status_line = "";
    let mut others = Vec::new();
    let mut empty = false;
    for (i, line) in lines.split("\r\n").enumerate() {
        let lower = line.to_ascii_lowercase();
        if i == 0 {
            status_line = line;
        } else if lower == "content-length: 0" {
            empty = true;
        } else if !lower.starts_with("content-type:") {
            others.push(line);
        }
    }
    if !empty {
        return None;
    }
    let outcome = OperationOutcome::single(Severity::Error, code, diagnostics);
    let body = hearth_model::to_json_bytes(&outcome.to_value(), false);
    let mut response = format!(
        "{status_line}\r\ncontent-type: application/fhir+json; charset=utf-8\r\ncontent-length: {}\r\n",
        body.len()
    );
    for line in others {
        response.push_str(line);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    let mut response = response.into_bytes();
    response.extend_from_slice(&body);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_layers_empty_errors_get_an_outcome() {
        let head = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\ndate: Mon, 07 Dec 2026 16:00:00 GMT\r\n\r\n";
        let rewritten = String::from_utf8(with_outcome(head).unwrap()).unwrap();
        let (head, body) = rewritten.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{head}"
        );
        assert!(head.contains("connection: close"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let outcome: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "timeout");
    }

    #[test]
    fn responses_with_bodies_and_other_statuses_pass_unchanged() {
        for head in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{\"x\":1}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        ] {
            assert_eq!(
                with_outcome(head),
                None,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
