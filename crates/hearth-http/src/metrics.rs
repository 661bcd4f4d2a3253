//! `GET /metrics` in Prometheus's text format: requests by route pattern,
//! method and status with their latency, requests in flight and refused by
//! the HTTP layer, the database pool and its waits, the SQLite writer's
//! queue and batches, background jobs, and the process (memory, CPU, open
//! files).
//!
//! Labels are route patterns (`/{type}/{id}`), methods and statuses only —
//! never paths, ids, query strings or anything a client wrote — so no
//! patient data can reach a monitoring system, and the number of series
//! stays bounded whatever clients send.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use hearth_store::Store;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::ApiError;
use crate::AppState;

/// The server's metrics; one per process, shared by every worker.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    refused: IntCounterVec,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    checkouts: IntCounter,
    checkout_wait: prometheus::Counter,
    writer_queue: IntGauge,
    writer_batches: IntCounter,
    writer_batched_writes: IntCounter,
    jobs: IntGaugeVec,
    job_resources: IntGaugeVec,
    /// The store's counters as last read: counters only go up by the
    /// difference.
    seen: Mutex<hearth_store::StoreStats>,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("a valid metric")
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("a valid metric")
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let metrics = Metrics {
            registry: Registry::new(),
            requests: counter_vec(
                "hearth_http_requests_total",
                "Requests answered, by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "hearth_http_request_duration_seconds",
                    "Time from a request's arrival to its answer, by route pattern and method.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0,
                ]),
                &["route", "method"],
            )
            .expect("a valid metric"),
            in_flight: gauge("hearth_http_requests_in_flight", "Requests being answered."),
            refused: counter_vec(
                "hearth_http_refused_total",
                "Requests the HTTP layer refused before routing (not HTTP, headers too large or too slow), by status.",
                &["status"],
            ),
            pool: gauge_vec(
                "hearth_db_pool_connections",
                "Database connections of this node, in use or idle.",
                &["state"],
            ),
            pool_max: gauge("hearth_db_pool_max_connections", "The largest number of database connections this node opens."),
            checkouts: counter("hearth_db_pool_checkouts_total", "Database connections taken from the pool by reads and writes."),
            checkout_wait: prometheus::Counter::new(
                "hearth_db_pool_wait_seconds_total",
                "Time spent waiting for a database connection.",
            )
            .expect("a valid metric"),
            writer_queue: gauge("hearth_sqlite_writer_queue", "Writes waiting for SQLite's writer (0 on PostgreSQL)."),
            writer_batches: counter("hearth_sqlite_writer_batches_total", "Transactions SQLite's writer has run (several writes share one)."),
            writer_batched_writes: counter("hearth_sqlite_writer_writes_total", "Writes SQLite's writer has run; divided by the batches, the mean batch size."),
            jobs: gauge_vec(
                "hearth_jobs",
                "Background jobs ($export, $reindex) stored, by kind and status.",
                &["kind", "status"],
            ),
            job_resources: gauge_vec(
                "hearth_job_resources",
                "Resources of background jobs, done and in all, by kind and status: the progress of exports and reindexing.",
                &["kind", "status", "of"],
            ),
            seen: Mutex::default(),
        };
        let registry = &metrics.registry;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.requests.clone()),
            Box::new(metrics.duration.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(metrics.refused.clone()),
            Box::new(metrics.pool.clone()),
            Box::new(metrics.pool_max.clone()),
            Box::new(metrics.checkouts.clone()),
            Box::new(metrics.checkout_wait.clone()),
            Box::new(metrics.writer_queue.clone()),
            Box::new(metrics.writer_batches.clone()),
            Box::new(metrics.writer_batched_writes.clone()),
            Box::new(metrics.jobs.clone()),
            Box::new(metrics.job_resources.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("metrics registered once");
        }
        Arc::new(metrics)
    }

    /// Counts an answered request.
    pub(crate) fn observe(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    /// A request begins; the guard ends it, however the request ends.
    pub(crate) fn started(self: &Arc<Self>) -> InFlight {
        self.in_flight.inc();
        InFlight(self.clone())
    }

    /// Counts a request the HTTP layer refused with `status`.
    pub(crate) fn refused(&self, status: u16) {
        self.refused.with_label_values(&[&status.to_string()]).inc();
    }

    /// The text of `GET /metrics`, with the store's state read now.
    pub fn render(&self, store: &Store) -> String {
        self.read_store(store);
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!(error = %e, "cannot write the metrics");
        }
        String::from_utf8(text).unwrap_or_default()
    }

    fn read_store(&self, store: &Store) {
        let now = store.stats();
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(now.pool_connections - now.pool_idle));
        self.pool
            .with_label_values(&["idle"])
            .set(i64::from(now.pool_idle));
        self.pool_max.set(i64::from(now.pool_max));
        self.writer_queue.set(now.writer_queue.unwrap_or(0) as i64);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.checkouts
            .inc_by(now.checkouts.saturating_sub(seen.checkouts));
        self.checkout_wait
            .inc_by((now.checkout_wait_seconds - seen.checkout_wait_seconds).max(0.0));
        self.writer_batches
            .inc_by(now.writer_batches.saturating_sub(seen.writer_batches));
        self.writer_batched_writes.inc_by(
            now.writer_batched_writes
                .saturating_sub(seen.writer_batched_writes),
        );
        *seen = now;
        drop(seen);
        match store.job_counts() {
            Ok(counts) => {
                self.jobs.reset();
                self.job_resources.reset();
                for c in counts {
                    self.jobs
                        .with_label_values(&[c.kind.as_str(), c.status.as_str()])
                        .set(c.jobs);
                    for (of, n) in [("done", c.done), ("all", c.total)] {
                        self.job_resources
                            .with_label_values(&[c.kind.as_str(), c.status.as_str(), of])
                            .set(n);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the jobs for the metrics"),
        }
    }
}

/// Ends an in-flight request when dropped.
pub(crate) struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// Methods as labels: the standard ones, and `OTHER` for whatever else a
/// client sends, so clients cannot make series without end.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// `GET /metrics` (routed only when metrics are on).
pub(crate) async fn serve(state: web::Data<AppState>) -> HttpResponse {
    let Some(metrics) = state.metrics.clone() else {
        let error = ApiError::NotFound("metrics are switched off".into());
        return crate::negotiate::outcome_response(
            error.status(),
            &error.outcome(),
            Default::default(),
        );
    };
    let store = state.store.clone();
    match web::block(move || metrics.render(&store)).await {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            let error = crate::context::shutting_down(e);
            crate::negotiate::outcome_response(error.status(), &error.outcome(), Default::default())
        }
    }
}
