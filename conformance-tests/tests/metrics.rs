//! `GET /metrics`: Prometheus's text format, labels that are route
//! patterns and never what clients sent, and the switches that move it to
//! a listener of its own or turn it off.

use conformance_tests::both_backends;
use conformance_tests::{encode, json, Server, FHIR_JSON};

fn metrics(server: &Server, url: &str) -> String {
    let response = server.request("GET", url).send();
    response.assert_status(200);
    assert!(
        response
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        response.header("content-type")
    );
    response.text()
}

both_backends! {
    fn metrics_count_requests_by_route_and_hold_no_patient_data() {
        let server = Server::local(|_| {});
        let family = "Zyxwvutsrq";
        let id = server.create(&json!({"resourceType": "Patient", "name": [{"family": family}], "birthDate": "1961-02-03"}));
        server.read_json(&format!("Patient/{id}"));
        server.read_json(&format!("Patient?family={}&_count=3&birthdate=1961-02-03", encode(family)));
        server.get(&format!("no/such/endpoint/{id}")).assert_error(404);
        server.raw(b"GET /Patient HTTP/1.1 extra\r\nHost: x\r\n\r\n").assert_error(400);
        // A background job, for the jobs' metrics.
        server.request("POST", "Patient/$reindex").send().assert_status(202);

        let text = metrics(&server, "metrics");
        for line in [
            "# TYPE hearth_http_requests_total counter",
            "route=\"/{type}/{id}\"",
            "route=\"/{type}\"",
            "method=\"POST\"",
            "status=\"201\"",
            "route=\"(no route)\"",
            "hearth_http_request_duration_seconds_bucket",
            "hearth_http_requests_in_flight 1",
            "hearth_http_refused_total{status=\"400\"} 1",
            "hearth_db_pool_connections{state=\"idle\"}",
            "hearth_db_pool_checkouts_total",
            "hearth_sqlite_writer_queue 0",
            "hearth_jobs{kind=\"reindex\"",
            "hearth_job_resources{kind=\"reindex\"",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        // Nothing a client sent: no id, name, date, parameter or path. Only
        // names and labels are searched: a sample's value (a duration, a
        // byte count) may well contain the digits 1961.
        let labels: String = text
            .lines()
            .map(|l| l.rsplit_once(' ').map_or(l, |(name, _value)| name))
            .collect::<Vec<_>>()
            .join("\n");
        for secret in [id.as_str(), family, "1961", "02-03", "family", "_count=", "no/such"] {
            assert!(!labels.contains(secret), "{secret:?} is in the metrics");
        }
        if hearth_store::testing::backend() == hearth_store::testing::Backend::Sqlite {
            let writes: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("hearth_sqlite_writer_writes_total "))
                .and_then(|v| v.parse().ok())
                .expect("the writer's writes");
            assert!(writes >= 1.0, "{writes}");
        }
    }
}

both_backends! {
    fn metrics_can_have_a_listener_of_their_own_or_be_off() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Server::local(|c| c.metrics_listen = Some(([127, 0, 0, 1], port).into()));
        server.request("GET", "metrics").accept(FHIR_JSON).send().assert_error(404);
        let text = metrics(&server, &format!("http://127.0.0.1:{port}/metrics"));
        assert!(text.contains("hearth_http_requests_total"), "{text}");
        server.request("GET", &format!("http://127.0.0.1:{port}/metadata")).send().assert_error(404);

        let off = Server::local(|c| c.metrics = false);
        off.request("GET", "metrics").accept(FHIR_JSON).send().assert_error(404);
    }
}

both_backends! {
    fn every_answer_carries_a_request_id() {
        let server = Server::local(|_| {});
        let first = server.request("GET", "metadata").send();
        let second = server.request("GET", "Patient/nobody").send();
        let (a, b) = (first.header("x-request-id").unwrap().to_owned(), second.header("x-request-id").unwrap().to_owned());
        assert_ne!(a, b, "ids are unique");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'), "{a}");
        // A client's own id is kept when it is a short token…
        let kept = server.request("GET", "metadata").header("X-Request-Id", "trace-42_a").send();
        assert_eq!(kept.header("x-request-id"), Some("trace-42_a"));
        // …and replaced when it could carry anything else into the logs.
        for sent in ["name=Zyxw vutsrq", &"x".repeat(65), ""] {
            let replaced = server.request("GET", "metadata").header("X-Request-Id", sent).send();
            let id = replaced.header("x-request-id").unwrap();
            assert_ne!(id, sent);
            assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'), "{id}");
        }
    }
}
