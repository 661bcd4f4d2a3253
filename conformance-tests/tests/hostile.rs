//! Hostile and careless requests: over-deep, oversized, truncated, malformed
//! or slow. Each is answered with a 4xx and an OperationOutcome, the
//! server answers the next request, and the store is unchanged. These
//! are Hearth's limits, so the tests run on a local Hearth only.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use conformance_tests::both_backends;
use conformance_tests::{
    json, parse_raw_response, patient, Response, Server, Value, FHIR_JSON, FHIR_XML,
};

/// Versions in the store (every write adds one).
fn versions(server: &Server) -> i64 {
    server.read_json("_history?_count=1")["total"]
        .as_i64()
        .expect("history total")
}

/// Runs a hostile request: it must be answered `status` with an
/// OperationOutcome, change nothing, and leave the server answering.
#[track_caller]
fn refused(server: &Server, status: u16, send: impl FnOnce() -> Response) -> Value {
    let before = versions(server);
    let response = send();
    let outcome = response.assert_error(status);
    assert_eq!(
        versions(server),
        before,
        "a refused request changed the store: {outcome}"
    );
    server.get("metadata").assert_status(200);
    outcome
}

fn diagnostics(outcome: &Value) -> String {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["diagnostics"].as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn post(server: &Server, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    server
        .request("POST", "Patient")
        .accept(FHIR_JSON)
        .body(content_type, body)
        .send()
}

/// A Patient whose extensions nest `levels` deep, in JSON.
fn nested_extensions_json(levels: usize) -> String {
    let mut extension = json!({"url": "http://example.org/leaf", "valueString": "x"});
    for _ in 1..levels {
        extension = json!({"url": "http://example.org/n", "extension": [extension]});
    }
    json!({"resourceType": "Patient", "extension": [extension]}).to_string()
}

/// The same in XML.
fn nested_extensions_xml(levels: usize) -> String {
    format!(
        "<Patient xmlns=\"http://hl7.org/fhir\">{}<valueString value=\"x\"/>{}</Patient>",
        "<extension url=\"http://example.org/n\">".repeat(levels),
        "</extension>".repeat(levels)
    )
}

both_backends! {
    fn deep_json_is_refused_and_ordinary_nesting_is_kept() {
        let server = Server::local(|_| {});
        // Nesting past serde_json's own recursion limit, and far past it.
        for depth in [200, 100_000] {
            let body = format!("{{\"resourceType\":\"Patient\",\"x\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
            let outcome = refused(&server, 400, || post(&server, FHIR_JSON, body));
            assert!(diagnostics(&outcome).contains("deeper than 100"), "{outcome}");
        }
        // 60 levels of extensions are 121 levels of JSON.
        refused(&server, 400, || post(&server, FHIR_JSON, nested_extensions_json(60)));
        // 49 levels are 99: stored, and read back in every form.
        let created = post(&server, FHIR_JSON, nested_extensions_json(49));
        created.assert_status(201);
        let id = created.json()["id"].as_str().unwrap().to_owned();
        for (accept, query) in [(FHIR_JSON, ""), (FHIR_XML, ""), (FHIR_JSON, "?_summary=true"), (FHIR_XML, "?_pretty=true")] {
            let read = server.request("GET", &format!("Patient/{id}{query}")).accept(accept).send();
            read.assert_status(200);
        }
        let bundle = server.request("GET", &format!("Patient?_id={id}")).accept(FHIR_XML).send();
        bundle.assert_status(200);
    }
}

both_backends! {
    fn deep_xml_is_refused_before_it_is_parsed() {
        let server = Server::local(|_| {});
        for levels in [1_000, 100_000] {
            let outcome = refused(&server, 400, || post(&server, FHIR_XML, nested_extensions_xml(levels)));
            assert!(diagnostics(&outcome).contains("deeper than 100"), "{outcome}");
        }
        post(&server, FHIR_XML, nested_extensions_xml(40)).assert_status(201);
    }
}

both_backends! {
    fn xml_with_a_doctype_is_refused_so_no_entity_expands() {
        let server = Server::local(|_| {});
        let laughs = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">{}]><Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"&lol9;\"/></name></Patient>",
            (1..10)
                .map(|i| format!("<!ENTITY lol{i} \"{}\">", format!("&lol{};", if i == 1 { String::new() } else { (i - 1).to_string() }).repeat(10)))
                .collect::<String>()
        );
        let outcome = refused(&server, 400, || post(&server, FHIR_XML, laughs));
        assert!(diagnostics(&outcome).contains("DOCTYPE"), "{outcome}");
        let external = "<?xml version=\"1.0\"?><!DOCTYPE p [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"&x;\"/></name></Patient>";
        refused(&server, 400, || post(&server, FHIR_XML, external));
        // An entity no DTD defines is an error too, not text.
        let undefined = "<Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"&x;\"/></name></Patient>";
        refused(&server, 400, || post(&server, FHIR_XML, undefined));
    }
}

both_backends! {
    fn truncated_xml_is_never_stored() {
        let server = Server::local(|_| {});
        let document = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/><name><family value=\"Chalmers\"/><given value=\"Peter\"/></name><birthDate value=\"1974-12-25\"/></Patient>\n";
        post(&server, FHIR_XML, document).assert_status(201);
        let before = versions(&server);
        let end = document.trim_end().len();
        for cut in document.find("<Patient").expect("root") + 1..end {
            let response = post(&server, FHIR_XML, &document.as_bytes()[..cut]);
            response.assert_error(400);
        }
        assert_eq!(versions(&server), before, "a truncated document was stored");
    }
}

both_backends! {
    fn trailing_content_is_refused() {
        let server = Server::local(|_| {});
        let json = format!("{}{}", patient("A"), patient("B"));
        refused(&server, 400, || post(&server, FHIR_JSON, json));
        let xml = "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/></Patient><Patient xmlns=\"http://hl7.org/fhir\"/>";
        refused(&server, 400, || post(&server, FHIR_XML, xml));
        let xml = "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/></Patient>trailing";
        refused(&server, 400, || post(&server, FHIR_XML, xml));
    }
}

both_backends! {
    fn a_member_named_twice_is_refused_by_name() {
        let server = Server::local(|_| {});
        let outcome = refused(&server, 400, || {
            post(&server, FHIR_JSON, r#"{"resourceType":"Observation","resourceType":"Patient"}"#)
        });
        assert!(diagnostics(&outcome).contains("'resourceType' appears more than once"), "{outcome}");
        let outcome = refused(&server, 400, || {
            post(&server, FHIR_JSON, r#"{"resourceType":"Patient","birthDate":"1970-13-45","birthDate":"1970-01-01"}"#)
        });
        assert!(diagnostics(&outcome).contains("'birthDate'"), "{outcome}");
    }
}

both_backends! {
    fn invalid_utf8_and_nul_bytes_are_refused() {
        let server = Server::local(|_| {});
        refused(&server, 400, || post(&server, FHIR_JSON, &b"{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}"[..]));
        refused(&server, 400, || post(&server, FHIR_XML, &b"<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"\xff\"/></Patient>"[..]));
        refused(&server, 400, || post(&server, FHIR_JSON, r#"{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}"#));
        refused(&server, 400, || post(&server, FHIR_JSON, &b"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a\x00b\"}]}"[..]));
        refused(&server, 400, || post(&server, FHIR_XML, &b"<Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"a\x00b\"/></name></Patient>"[..]));
        // Raw bytes that are not UTF-8 in the path, and a percent-encoded one.
        let authority = server.authority();
        for path in [&b"/Patient/\xff\xfe"[..], b"/Patient/%FF"] {
            let mut request = b"GET ".to_vec();
            request.extend_from_slice(path);
            request.extend_from_slice(format!(" HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").as_bytes());
            let response = server.raw(&request);
            assert!((400..500).contains(&response.status), "{}: {}", response.status, response.text());
            response.assert_error(response.status);
        }
    }
}

both_backends! {
    fn huge_numbers_are_refused() {
        let server = Server::local(|_| {});
        for value in ["1e999999", "-2e308", &format!("0.{}", "1".repeat(100)), &"9".repeat(400)] {
            let body = format!("{{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{{\"text\":\"x\"}},\"valueQuantity\":{{\"value\":{value}}}}}");
            refused(&server, 400, || server.request("POST", "Observation").body(FHIR_JSON, body).send());
        }
        let body = r#"{"resourceType":"Patient","multipleBirthInteger":100000000000000000000}"#;
        refused(&server, 400, || post(&server, FHIR_JSON, body));
        // And in searches: an error, not a match of infinity.
        let response = server.get("Observation?value-quantity=1e999999");
        response.assert_error(400);
    }
}

both_backends! {
    fn a_deep_fhirpath_patch_is_refused_and_the_writer_lives_on() {
        let server = Server::local(|_| {});
        let id = server.create(&patient("Deep"));
        for depth in [100, 3000] {
            let path = format!("{}Patient.active{}", "(".repeat(depth), ")".repeat(depth));
            let patch = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
                {"name": "type", "valueCode": "replace"},
                {"name": "path", "valueString": path},
                {"name": "value", "valueBoolean": true}
            ]}]});
            refused(&server, 400, || server.request("PATCH", &format!("Patient/{id}")).json(&patch).send());
        }
        // The writer thread still writes.
        server.create(&patient("After"));
        assert_eq!(server.read_json(&format!("Patient/{id}"))["meta"]["versionId"], "1");
    }
}

both_backends! {
    fn a_json_patch_cannot_double_a_resource_without_bound() {
        let server = Server::local(|_| {});
        let id = server.create(&patient("Copies"));
        let ops: Vec<Value> = (0..30)
            .map(|_| json!({"op": "copy", "from": "/name", "path": "/name/-"}))
            .collect();
        let outcome = refused(&server, 400, || {
            server
                .request("PATCH", &format!("Patient/{id}"))
                .accept(FHIR_JSON)
                .body("application/json-patch+json", serde_json::to_vec(&ops).unwrap())
                .send()
        });
        assert_eq!(outcome["issue"][0]["code"], "too-long", "{outcome}");
        assert_eq!(server.read_json(&format!("Patient/{id}"))["meta"]["versionId"], "1");
        // A patch inside the bound applies.
        let ops: Vec<Value> = (0..3)
            .map(|_| json!({"op": "copy", "from": "/name/0", "path": "/name/-"}))
            .collect();
        server
            .request("PATCH", &format!("Patient/{id}"))
            .body("application/json-patch+json", serde_json::to_vec(&ops).unwrap())
            .send()
            .assert_status(200);
    }
}

both_backends! {
    fn over_complex_searches_are_400_not_500() {
        let server = Server::local(|_| {});
        let ids: Vec<String> = (0..3).map(|i| server.create(&patient(&format!("Many{i}")))).collect();
        let chain = format!("Observation?subject:Patient{}=x", ".organization.partof".repeat(10));
        let has = format!("Patient?{}code=x", "_has:Observation:subject:".repeat(200));
        let repeated = format!("Patient?{}", vec!["family=x"; 1000].join("&"));
        for query in [chain, has, repeated] {
            let response = server.get(&query);
            let outcome = response.assert_outcome(400, "too-costly");
            assert_eq!(outcome["issue"][0]["severity"], "error");
        }
        // Too long for a URL: in a form.
        let many_ids = format!("_id={}", (0..10_000).map(|i| format!("id{i}")).collect::<Vec<_>>().join(","));
        let response = server
            .request("POST", "Patient/_search")
            .body("application/x-www-form-urlencoded", many_ids)
            .send();
        response.assert_outcome(400, "too-costly");
        server.get("metadata").assert_status(200);
        // A thousand values, the most allowed, work: the database is sent a
        // shallow tree of them.
        let mut values: Vec<String> = (0..996).map(|i| format!("absent{i}")).collect();
        values.extend(ids.iter().cloned());
        let bundle = server.read_json(&format!("Patient?_id={}&_total=accurate", values.join(",")));
        assert_eq!(bundle["total"], 3, "{bundle}");
        let codes = (0..1000).map(|i| format!("http://loinc.org|{i}")).collect::<Vec<_>>().join(",");
        // (1,000 values and no other parameter.)
        let bundle = server.read_json(&format!("Observation?code={}", conformance_tests::encode(&codes)));
        assert_eq!(bundle["resourceType"], "Bundle");
    }
}

both_backends! {
    fn count_extremes_and_unknown_modifiers_are_handled() {
        let server = Server::local(|_| {});
        server.create(&patient("Counted"));
        for query in [
            "Patient?_count=-1",
            "Patient?_count=abc",
            "Patient?_count=99999999999999999999",
            "Patient?family:bogus=x",
            "Patient?birthdate=xx2020",
            "Patient?birthdate=ge2020-13",
            "Patient?_sort=-bogus",
        ] {
            server.get(query).assert_error(400);
        }
        // A huge but valid _count is capped to the largest page.
        let bundle = server.read_json("Patient?_count=2147483647");
        assert_eq!(bundle["resourceType"], "Bundle");
    }
}

both_backends! {
    fn bundles_past_the_entry_limit_are_refused() {
        let server = Server::local(|_| {});
        let entry = json!({"resource": patient("Bulk"), "request": {"method": "POST", "url": "Patient"}});
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": vec![entry; 10_000]});
        let outcome = refused(&server, 400, || server.post("", &bundle));
        assert_eq!(outcome["issue"][0]["code"], "too-long", "{outcome}");
        // Five million empty entries: refused before they take gigabytes.
        let body = format!(
            "{{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{}{{}}]}}",
            "{},".repeat(5_000_000)
        );
        refused(&server, 400, || server.request("POST", "").body(FHIR_JSON, body).send());
    }
}

both_backends! {
    fn oversized_bodies_are_413() {
        let server = Server::local(|c| c.max_body_bytes = 100_000);
        let mut big = patient("Big");
        big["text"] = json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "x".repeat(200_000))});
        refused(&server, 413, || server.post("Patient", &big));
        // Sent in chunks, without a Content-Length.
        let body = serde_json::to_vec(&big).unwrap();
        let mut request = format!(
            "POST /Patient HTTP/1.1\r\nHost: {}\r\nContent-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            server.authority()
        )
        .into_bytes();
        for chunk in body.chunks(8192) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        refused(&server, 413, || server.raw(&request));
        // Search parameters in a form body are bounded the same way.
        let form = format!("family={}", "x".repeat(200_000));
        refused(&server, 413, || {
            server.request("POST", "Patient/_search").body("application/x-www-form-urlencoded", form)
                .send()
        });
    }
}

both_backends! {
    fn etags_are_parsed_exactly() {
        let server = Server::local(|_| {});
        let id = server.create(&patient("Tagged"));
        let path = format!("Patient/{id}");
        let mut body = patient("Retagged");
        body["id"] = json!(id);
        for tag in ["W/\"+1\"", "W/\"01\"", "W/\" 1\"", "\"1\"", "W/1", "W/\"1", "W/\"1\"x"] {
            let response = refused(&server, 400, || {
                server.request("PUT", &path).header("If-Match", tag).json(&body).send()
            });
            assert!(diagnostics(&response).contains("If-Match"), "{tag}: {response}");
        }
        server.request("PUT", &path).header("If-Match", "W/\"1\"").json(&body).send().assert_status(200);
    }
}

both_backends! {
    fn dot_segments_are_not_ids() {
        let server = Server::local(|_| {});
        let authority = server.authority();
        for id in [".", ".."] {
            let body = json!({"resourceType": "Patient", "id": id}).to_string();
            let request = format!(
                "PUT /Patient/{id} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let response = refused(&server, 400, || server.raw(request.as_bytes()));
            assert!(diagnostics(&response).contains("cannot name a resource"), "{response}");
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "id": ".."}, "request": {"method": "PUT", "url": "Patient/.."}}
        ]});
        refused(&server, 400, || server.post("", &bundle));
    }
}

both_backends! {
    fn a_placeholder_no_entry_resolves_is_not_stored() {
        let server = Server::local(|_| {});
        let dangling = "urn:uuid:0b6f1d2e-5c1a-4a57-9f0e-000000000001";
        let observation = json!({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
            "subject": {"reference": dangling}});
        let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:0b6f1d2e-5c1a-4a57-9f0e-000000000002", "resource": patient("Placeholder"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": observation, "request": {"method": "POST", "url": "Observation"}}
        ]});
        let outcome = refused(&server, 400, || server.post("", &transaction));
        assert!(diagnostics(&outcome).contains(dangling), "{outcome}");
        // In a batch, the entry fails and the others are written.
        let mut batch = transaction.clone();
        batch["type"] = json!("batch");
        let before = versions(&server);
        let response = server.post("", &batch);
        response.assert_status(200);
        let body = response.json();
        assert!(body["entry"][0]["response"]["status"].as_str().unwrap().starts_with("201"), "{body}");
        assert!(body["entry"][1]["response"]["status"].as_str().unwrap().starts_with("400"), "{body}");
        assert_eq!(versions(&server), before + 1);
        let oid = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "urn:oid:1.2.3.4"}},
             "request": {"method": "POST", "url": "Observation"}}
        ]});
        refused(&server, 400, || server.post("", &oid));
    }
}

/// Reads one response off `stream`: its head, and as much body as its
/// Content-Length says (the connection may stay open after it).
fn read_response(stream: &mut std::net::TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                break;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse_raw_response(&raw)
}

both_backends! {
    fn errors_of_the_http_layer_are_operation_outcomes_too() {
        let server = Server::local(|c| {
            c.header_timeout = Duration::from_secs(1);
            c.body_timeout = Duration::from_secs(1);
        });
        let authority = server.authority();
        // A request line that is not HTTP.
        let response = server.raw(b"GET /Patient HTTP/1.1 extra\r\nHost: x\r\n\r\n");
        response.assert_error(400);
        let response = server.raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
        response.assert_error(400);
        // Header fields too large: exactly as much as the server reads
        // before it gives up (128 KiB), so it answers before closing.
        let mut request = format!("GET /metadata HTTP/1.1\r\nHost: {authority}\r\nX-Big: ").into_bytes();
        request.resize(128 * 1024, b'x');
        let mut stream = server.connect();
        stream.write_all(&request).unwrap();
        read_response(&mut stream).assert_error(431);
        // No Host.
        server.raw(b"GET /metadata HTTP/1.1\r\nConnection: close\r\n\r\n").assert_error(400);
        // Headers that never finish arriving.
        let mut stream = server.connect();
        stream.write_all(b"GET /metadata HTTP/1.1\r\nHost: x\r\n").unwrap();
        let outcome = read_response(&mut stream).assert_error(408);
        assert_eq!(outcome["issue"][0]["code"], "timeout");
        // A body that never finishes arriving.
        let mut stream = server.connect();
        write!(stream, "POST /Patient HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{{\"resourceType\"").unwrap();
        let outcome = read_response(&mut stream).assert_error(408);
        assert_eq!(outcome["issue"][0]["code"], "timeout");
        // Nothing here.
        server.get("no/such/endpoint/at/all").assert_error(404);
        server.get("metadata").assert_status(200);
    }
}

both_backends! {
    fn idle_and_slow_connections_do_not_starve_others() {
        let server = Server::local(|c| {
            c.header_timeout = Duration::from_secs(1);
            c.keep_alive = Duration::from_secs(1);
        });
        let id = server.create(&patient("Reader"));
        let idle: Vec<std::net::TcpStream> = (0..300).map(|_| server.connect()).collect();
        let mut slow: Vec<std::net::TcpStream> = (0..30).map(|_| server.connect()).collect();
        for (i, stream) in slow.iter_mut().enumerate() {
            let _ = write!(stream, "GET /Patient/{i} HTTP/1.1\r\nHo");
        }
        for _ in 0..20 {
            for stream in &mut slow {
                let _ = stream.write_all(b"s");
            }
            server.read_json(&format!("Patient/{id}"));
        }
        // The server closes connections that send no whole request in time.
        for mut stream in idle.into_iter().take(20).chain(slow) {
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut rest = Vec::new();
            let read = stream.read_to_end(&mut rest);
            assert!(read.is_ok(), "an idle connection was not closed: {read:?}");
        }
        // A kept-alive connection is closed once idle for its limit.
        let mut stream = server.connect();
        write!(stream, "GET /metadata HTTP/1.1\r\nHost: {}\r\n\r\n", server.authority()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        let started = Instant::now();
        stream.read_to_end(&mut all).expect("the server closes the idle connection");
        assert!(started.elapsed() < Duration::from_secs(8));
        assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    }
}

both_backends! {
    fn connections_past_the_limit_wait_for_a_free_one() {
        let server = Server::local(|c| {
            c.max_connections = 2;
            c.workers = 1;
            c.header_timeout = Duration::from_secs(2);
        });
        let held: Vec<std::net::TcpStream> = (0..2).map(|_| server.connect()).collect();
        std::thread::sleep(Duration::from_millis(200));
        // Accepted by the kernel, but not served until a held connection
        // is closed for sending nothing (after the header timeout).
        let started = Instant::now();
        server.get("metadata").assert_status(200);
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "served after {:?}, with every connection taken",
            started.elapsed()
        );
        drop(held);
        let started = Instant::now();
        server.get("metadata").assert_status(200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
