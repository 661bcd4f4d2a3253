//! A small client for black-box tests of a FHIR server.
//!
//! Tests talk to the server only through its base URL. By default each test
//! starts its own Hearth in-process on an ephemeral port with a fresh SQLite
//! database; set `HEARTH_TEST_BASE_URL` to point the same tests at any
//! running FHIR server instead (tests then create their own resources with
//! fresh ids and never assume an empty server).

use std::time::Duration;

pub use serde_json::{json, Value};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const FHIR_XML: &str = "application/fhir+xml";

/// A FHIR server under test.
pub struct Server {
    pub base: String,
    client: reqwest::blocking::Client,
    _local: Option<(hearth::server::Background, tempfile::TempDir)>,
}

impl Server {
    /// The server named by `HEARTH_TEST_BASE_URL`, or a fresh local Hearth.
    pub fn start() -> Server {
        match std::env::var("HEARTH_TEST_BASE_URL") {
            Ok(base) if !base.is_empty() => Server::remote(base.trim_end_matches('/').to_owned()),
            _ => Server::local(|_| {}),
        }
    }

    /// A fresh local Hearth with a configuration adjusted by `adjust`.
    pub fn local(adjust: impl FnOnce(&mut hearth::config::Config)) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = hearth::config::Config::for_tests(dir.path());
        adjust(&mut config);
        let background = hearth::server::Background::start(&config).expect("start Hearth");
        Server {
            base: background.base_url.clone(),
            client: client(),
            _local: Some((background, dir)),
        }
    }

    fn remote(base: String) -> Server {
        Server {
            base,
            client: client(),
            _local: None,
        }
    }

    /// Whether this is a local Hearth (tests of Hearth-specific limits and
    /// configuration run only then).
    pub fn is_local(&self) -> bool {
        self._local.is_some()
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// Starts a request; finish it with [`Request::send`].
    pub fn request(&self, method: &str, path: &str) -> Request {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        Request {
            inner: self.client.request(method, self.url(path)),
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path).accept(FHIR_JSON).send()
    }

    pub fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path).send()
    }

    /// POSTs a resource as FHIR JSON.
    pub fn post(&self, path: &str, resource: &Value) -> Response {
        self.request("POST", path).json(resource).send()
    }

    /// PUTs a resource as FHIR JSON.
    pub fn put(&self, path: &str, resource: &Value) -> Response {
        self.request("PUT", path).json(resource).send()
    }

    /// Creates a resource and returns its server-assigned id.
    pub fn create(&self, resource: &Value) -> String {
        let resource_type = resource["resourceType"].as_str().expect("resourceType");
        let response = self.post(resource_type, resource);
        assert_eq!(response.status, 201, "create {resource_type}: {}", response.text());
        response.json()["id"].as_str().expect("created id").to_owned()
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

pub struct Request {
    inner: reqwest::blocking::RequestBuilder,
}

impl Request {
    pub fn header(self, name: &str, value: &str) -> Request {
        Request {
            inner: self.inner.header(name, value),
        }
    }

    pub fn accept(self, media: &str) -> Request {
        self.header("Accept", media)
    }

    pub fn json(self, resource: &Value) -> Request {
        self.body(FHIR_JSON, serde_json::to_vec(resource).expect("serialise"))
    }

    pub fn body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Request {
        Request {
            inner: self.inner.header("Content-Type", content_type).body(body.into()),
        }
    }

    pub fn send(self) -> Response {
        let response = self.inner.send().expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().expect("response body").to_vec();
        Response { status, headers, body }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Asserts an OperationOutcome with the given status and issue code.
    #[track_caller]
    pub fn assert_outcome(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        let body = self.json();
        assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
        let codes: Vec<&str> = body["issue"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["code"].as_str()).collect())
            .unwrap_or_default();
        assert!(codes.contains(&code), "issue codes {codes:?} lack '{code}': {body}");
        body
    }
}

/// A unique suffix for ids created by a test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}
