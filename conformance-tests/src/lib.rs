//! A small client for black-box tests of a FHIR server.
//!
//! Tests talk to the server only through its base URL. By default each test
//! starts its own Hearth in-process on an ephemeral port with a fresh
//! database, once on SQLite and once on PostgreSQL ([`both_backends!`]; the
//! PostgreSQL run needs `HEARTH_TEST_POSTGRES_URL`, and skips without it).
//! Set `HEARTH_TEST_BASE_URL` to point the same tests at any running FHIR
//! server instead (tests then create their own resources with fresh ids and
//! never assume an empty server).

use std::time::Duration;

pub use hearth_store::both_backends;
pub use hearth_store::testing::TestDatabase;
pub use serde_json::{json, Value};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const FHIR_XML: &str = "application/fhir+xml";

/// A FHIR server under test.
pub struct Server {
    pub base: String,
    client: reqwest::blocking::Client,
    _local: Option<(hearth::server::Background, std::sync::Arc<TestDatabase>)>,
    /// The local server's configuration.
    config: Option<hearth::config::Config>,
    /// Sent as `Authorization: Bearer` with every request when set.
    token: std::sync::Mutex<Option<String>>,
}

impl Server {
    /// The server named by `HEARTH_TEST_BASE_URL`, or a fresh local Hearth.
    pub fn start() -> Server {
        match std::env::var("HEARTH_TEST_BASE_URL") {
            Ok(base) if !base.is_empty() => Server::remote(base.trim_end_matches('/').to_owned()),
            _ => Server::local(|_| {}),
        }
    }

    /// A fresh local Hearth, on the test's backend, with a configuration
    /// adjusted by `adjust`.
    pub fn local(adjust: impl FnOnce(&mut hearth::config::Config)) -> Server {
        Server::on(std::sync::Arc::new(TestDatabase::new()), adjust)
    }

    /// `n` local Hearth nodes sharing one fresh database, as behind a load
    /// balancer (on PostgreSQL: several nodes on one SQLite file is not a
    /// configuration Hearth supports).
    pub fn nodes(n: usize) -> Vec<Server> {
        let database = std::sync::Arc::new(TestDatabase::new());
        (0..n)
            .map(|_| Server::on(database.clone(), |_| {}))
            .collect()
    }

    fn on(
        database: std::sync::Arc<TestDatabase>,
        adjust: impl FnOnce(&mut hearth::config::Config),
    ) -> Server {
        let mut config = hearth::config::Config::for_tests(&database.dir());
        config.database_url = Some(database.url());
        adjust(&mut config);
        let background = hearth::server::Background::start(&config).expect("start Hearth");
        Server {
            base: background.base_url.clone(),
            client: client(),
            _local: Some((background, database)),
            config: Some(config),
            token: std::sync::Mutex::new(None),
        }
    }

    /// A fresh local Hearth that requires SMART bearer tokens
    /// (`auth = "smart"`), on `database`, its base URL configured.
    pub fn smart_on(
        database: std::sync::Arc<TestDatabase>,
        adjust: impl FnOnce(&mut hearth::config::Config),
    ) -> Server {
        let port = free_port();
        Server::on(database, |config| {
            config.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            config.base_url = Some(format!("http://127.0.0.1:{port}"));
            config.auth = hearth::config::Auth::Smart {
                issuers: Vec::new(),
            };
            adjust(config);
        })
    }

    /// An access token for this (SMART) server, as `hearth token` prints.
    pub fn token(&self, scope: &str, patient: Option<&str>, fhir_user: Option<&str>) -> String {
        let config = self.config.as_ref().expect("a local Hearth");
        let args = hearth::token::TokenArgs {
            scope: scope.to_owned(),
            patient: patient.map(str::to_owned),
            client: Some("test-client".to_owned()),
            fhir_user: fhir_user.map(str::to_owned),
            expires_in: 600,
            settings: hearth::config::ServeArgs::default(),
        };
        hearth::token::issue(&args, config).expect("a token")
    }

    /// Registers a client on this local Hearth as `hearth client add` does
    /// (`change` sets its options, `stdin` gives a secret); answers what
    /// the command printed.
    pub fn add_client(
        &self,
        id: &str,
        change: impl FnOnce(&mut hearth::clients::AddArgs),
        stdin: &str,
    ) -> Result<String, hearth::clients::ClientError> {
        let mut add = hearth::clients::AddArgs::new(id, &format!("{id} app"));
        change(&mut add);
        let args = hearth::clients::ClientArgs {
            command: hearth::clients::ClientCommand::Add(add),
            settings: hearth::config::ServeArgs::default(),
        };
        hearth::clients::run(&args, self.config(), &mut stdin.as_bytes())
    }

    /// Adds a user who signs in with `password`, as `hearth user add` does.
    pub fn add_user(&self, username: &str, fhir_user: &str, password: &str) {
        let args = hearth::users::UserArgs {
            command: hearth::users::UserCommand::Add {
                username: username.to_owned(),
                fhir_user: fhir_user.to_owned(),
                password_stdin: true,
            },
            settings: hearth::config::ServeArgs::default(),
        };
        hearth::users::run(
            &args,
            self.config(),
            &mut format!("{password}\n").as_bytes(),
        )
        .expect("a user");
    }

    /// Sends `token` as the bearer token of every later request (`None`:
    /// no Authorization header).
    pub fn use_token(&self, token: Option<&str>) {
        *self.token.lock().unwrap() = token.map(str::to_owned);
    }

    /// The local server's configuration.
    pub fn config(&self) -> &hearth::config::Config {
        self.config.as_ref().expect("a local Hearth")
    }

    /// `url`, a link one node gave, as it would be followed on this node
    /// (the nodes of a test listen on different ports of one host).
    pub fn on_this_node(&self, url: &str) -> String {
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|slash| &rest[slash..]))
            .unwrap_or(url);
        format!("{}{path}", self.base)
    }

    fn remote(base: String) -> Server {
        Server {
            base,
            client: client(),
            _local: None,
            config: None,
            token: std::sync::Mutex::new(None),
        }
    }

    /// The database of a local Hearth.
    pub fn database(&self) -> Option<&TestDatabase> {
        self._local.as_ref().map(|(_, database)| &**database)
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
        let mut inner = self.client.request(method, self.url(path));
        if let Some(token) = self.token.lock().unwrap().as_deref() {
            inner = inner.header("Authorization", format!("Bearer {token}"));
        }
        Request { inner }
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

    /// GETs `path` as FHIR JSON, asserts 200 and returns the body.
    #[track_caller]
    pub fn read_json(&self, path: &str) -> Value {
        let response = self.get(path);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        response.json()
    }

    /// Follows the Bundle link with `relation`, if the Bundle has one.
    #[track_caller]
    pub fn follow(&self, bundle: &Value, relation: &str) -> Option<Value> {
        link(bundle, relation).map(|url| self.read_json(&url))
    }

    /// Sends a request without the `Accept` header that HTTP client
    /// libraries add by default, over a plain HTTP/1.1 connection (only for
    /// `http://` base URLs).
    pub fn send_without_accept(&self, method: &str, path: &str) -> Response {
        let url = reqwest::Url::parse(&self.url(path)).expect("URL");
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.authority()
        );
        self.raw(request.as_bytes())
    }

    /// `host:port` of the server (only for `http://` base URLs).
    pub fn authority(&self) -> String {
        let url = reqwest::Url::parse(&self.base).expect("URL");
        assert_eq!(
            url.scheme(),
            "http",
            "raw requests need an http:// base URL"
        );
        format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port_or_known_default().expect("port")
        )
    }

    /// A connection to the server, for requests written byte by byte.
    pub fn connect(&self) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(self.authority()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        stream
    }

    /// Sends `request` exactly as given (it should ask to close the
    /// connection) and reads the response until the server closes it.
    pub fn raw(&self, request: &[u8]) -> Response {
        use std::io::{Read, Write};
        let mut stream = self.connect();
        stream.write_all(request).expect("request written");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("response read");
        parse_raw_response(&raw)
    }

    /// Creates a resource and returns its server-assigned id.
    pub fn create(&self, resource: &Value) -> String {
        let resource_type = resource["resourceType"].as_str().expect("resourceType");
        let response = self.post(resource_type, resource);
        assert_eq!(
            response.status,
            201,
            "create {resource_type}: {}",
            response.text()
        );
        response.json()["id"]
            .as_str()
            .expect("created id")
            .to_owned()
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
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
            inner: self
                .inner
                .header("Content-Type", content_type)
                .body(body.into()),
        }
    }

    /// A body sent without any `Content-Type` header.
    pub fn body_without_type(self, body: impl Into<Vec<u8>>) -> Request {
        Request {
            inner: self.inner.body(body.into()),
        }
    }

    pub fn send(self) -> Response {
        let response = self.inner.send().expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().expect("response body").to_vec();
        Response {
            status,
            headers,
            body,
        }
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
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The media type of the body without parameters, in lower case.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Response {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        self
    }

    /// Asserts an error response: the status, a JSON Content-Type and an
    /// OperationOutcome with at least one error (or fatal) issue.
    #[track_caller]
    pub fn assert_error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        let content_type = self.content_type();
        assert!(
            content_type == "application/fhir+json" || content_type == "application/json",
            "error Content-Type is '{content_type}', not FHIR JSON"
        );
        let body = self.json();
        assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
        let severe = body["issue"].as_array().is_some_and(|issues| {
            issues
                .iter()
                .any(|i| i["severity"] == "error" || i["severity"] == "fatal")
        });
        assert!(severe, "no error issue: {body}");
        body
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
        assert!(
            codes.contains(&code),
            "issue codes {codes:?} lack '{code}': {body}"
        );
        body
    }
}

/// A response read off a connection.
pub fn parse_raw_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                    .expect("header name"),
                reqwest::header::HeaderValue::from_str(value.trim()).expect("header value"),
            );
        }
    }
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// The URL of the Bundle link with `relation`.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A unique suffix for ids created by a test.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A small valid Patient with the family name `family`.
pub fn patient(family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Ann"]}],
        "birthDate": "1970-01-01",
    })
}

/// The `expression` values of every issue of an OperationOutcome.
pub fn issue_expressions(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["expression"].as_array().into_iter().flatten())
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect()
}

/// Search fixtures for one test: resources PUT with chosen ids, where every
/// `~` in a fixture or a query stands for a per-test unique prefix, so the
/// same tests run against a shared server.
pub struct Fixture<'s> {
    pub server: &'s Server,
    /// Replaces `~` (ends with `-`).
    pub prefix: String,
}

impl<'s> Fixture<'s> {
    pub fn new(server: &'s Server) -> Fixture<'s> {
        Fixture {
            server,
            prefix: format!("{}-", unique("t")),
        }
    }

    /// `text` with every `~` replaced by the prefix.
    pub fn expand(&self, text: &str) -> String {
        text.replace('~', &self.prefix)
    }

    fn expand_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.expand(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.expand_json(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.expand_json(v)),
            _ => {}
        }
    }

    /// PUTs `resource` (its `id` and references written with `~`); returns
    /// the stored resource.
    #[track_caller]
    pub fn put(&self, mut resource: Value) -> Value {
        self.expand_json(&mut resource);
        let path = format!(
            "{}/{}",
            resource["resourceType"].as_str().expect("resourceType"),
            resource["id"].as_str().expect("id")
        );
        let response = self.server.put(&path, &resource);
        assert!(
            response.status == 200 || response.status == 201,
            "PUT {path}: {} {}",
            response.status,
            response.text()
        );
        response.json()
    }

    #[track_caller]
    pub fn put_all(&self, resources: Vec<Value>) {
        for r in resources {
            self.put(r);
        }
    }

    /// Deletes `Type/~id`.
    #[track_caller]
    pub fn delete(&self, path: &str) {
        let response = self.server.delete(&self.expand(path));
        assert!(
            matches!(response.status, 200 | 204),
            "DELETE {path}: {} {}",
            response.status,
            response.text()
        );
    }

    /// The URL of a search: `~` expanded and each value percent-encoded.
    pub fn query_url(&self, query: &str) -> String {
        let query = self.expand(query);
        let Some((path, params)) = query.split_once('?') else {
            return query;
        };
        let params: Vec<String> = params
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, v)) => format!("{k}={}", encode(v)),
                None => p.to_owned(),
            })
            .collect();
        format!("{path}?{}", params.join("&"))
    }

    /// Every page of a search, following `next` links.
    #[track_caller]
    pub fn pages(&self, query: &str) -> Vec<Value> {
        let mut page = self.server.read_json(&self.query_url(query));
        let mut pages = Vec::new();
        loop {
            assert_eq!(page["type"], "searchset", "{query}: {page}");
            let next = link(&page, "next");
            pages.push(page);
            match next {
                Some(url) if pages.len() < 100 => page = self.server.read_json(&url),
                _ => return pages,
            }
        }
    }

    /// (search mode, type/local id) of every entry of every page that is
    /// one of this fixture's resources.
    #[track_caller]
    pub fn entries(&self, query: &str) -> Vec<(String, String)> {
        self.pages(query)
            .iter()
            .flat_map(|b| b["entry"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| {
                let id = e["resource"]["id"].as_str()?;
                let local = id.strip_prefix(&self.prefix)?;
                Some((
                    e["search"]["mode"].as_str().unwrap_or("").to_owned(),
                    local.to_owned(),
                ))
            })
            .collect()
    }

    /// The local ids of the matches, in order.
    #[track_caller]
    pub fn matches(&self, query: &str) -> Vec<String> {
        self.entries(query)
            .into_iter()
            .filter(|(mode, _)| mode == "match")
            .map(|(_, id)| id)
            .collect()
    }

    /// The local ids of the entries with search mode `include`, sorted.
    #[track_caller]
    pub fn included(&self, query: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .entries(query)
            .into_iter()
            .filter(|(mode, _)| mode == "include")
            .map(|(_, id)| id)
            .collect();
        ids.sort();
        ids
    }

    /// Asserts that the search matches exactly `expected` (local ids, in
    /// any order), each once.
    #[track_caller]
    pub fn check(&self, query: &str, expected: &[&str]) {
        let found = self.matches(query);
        let mut sorted = found.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            found.len(),
            "{query}: duplicates in {found:?}"
        );
        let mut expected: Vec<&str> = expected.to_vec();
        expected.sort();
        assert_eq!(sorted, expected, "{query}");
    }

    /// Asserts that the search matches exactly `expected`, in that order.
    #[track_caller]
    pub fn check_order(&self, query: &str, expected: &[&str]) {
        assert_eq!(self.matches(query), expected, "{query}");
    }

    /// GETs a search URL (`~` expanded, values encoded) with extra headers.
    pub fn get(&self, query: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .server
            .request("GET", &self.query_url(query))
            .accept(FHIR_JSON);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    }
}
