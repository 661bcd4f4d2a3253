//! Hearth's authorization server, black-box over HTTP and driven by a real
//! OAuth 2.0 client (the `oauth2` crate): SMART discovery, Backend
//! Services' client credentials with signed assertions (inline JWKS and
//! JWKS URL), client secrets, introspection (RFC 7662) and revocation
//! (RFC 7009), and one test for each way a token request must fail.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use conformance_tests::{both_backends, json, Server, TestDatabase, Value};
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SECRET: &str = "a client secret long enough";

fn smart() -> Server {
    Server::smart_on(Arc::new(TestDatabase::new()), |_| {})
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A backend client's P-384 key pair.
struct Keys {
    pair: EcdsaKeyPair,
    kid: String,
}

impl Keys {
    fn new(kid: &str) -> Keys {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Keys {
            pair,
            kid: kid.to_owned(),
        }
    }

    fn jwks(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": self.kid, "alg": "ES384", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..49]), "y": URL_SAFE_NO_PAD.encode(&point[49..97])}]})
    }

    /// A JWT with this header and these claims, signed ES384.
    fn sign(&self, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// A valid assertion of `client` for `server`'s token endpoint.
    fn assertion(&self, server: &Server, client: &str) -> String {
        self.sign(header(&self.kid), claims(server, client))
    }
}

fn header(kid: &str) -> Value {
    json!({"alg": "ES384", "typ": "JWT", "kid": kid})
}

fn claims(server: &Server, client: &str) -> Value {
    json!({"iss": client, "sub": client, "aud": token_url(server), "exp": now() + 240,
        "jti": uuid::Uuid::new_v4().to_string()})
}

fn token_url(server: &Server) -> String {
    format!("{}/auth/token", server.base)
}

/// Registers a client as `hearth client add` does; answers what it printed.
fn add_client(
    server: &Server,
    id: &str,
    extra: impl FnOnce(&mut hearth::clients::AddArgs),
    stdin: &str,
) -> String {
    server.add_client(id, extra, stdin).unwrap()
}

/// Registers a backend client whose keys are `keys`, allowed `scope`.
fn add_backend(server: &Server, id: &str, keys: &Keys, scope: &str) {
    let path = std::env::temp_dir().join(format!("hearth-jwks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, keys.jwks().to_string()).unwrap();
    add_client(
        server,
        id,
        |a| {
            a.jwks = Some(path.clone());
            a.scope = Some(scope.to_owned());
        },
        "",
    );
    std::fs::remove_file(path).unwrap();
}

fn add_secret_client(server: &Server, id: &str, scope: &str) {
    add_client(
        server,
        id,
        |a| {
            a.secret_stdin = true;
            a.scope = Some(scope.to_owned());
        },
        &format!("{SECRET}\n"),
    );
}

fn http() -> oauth2::reqwest::blocking::Client {
    oauth2::reqwest::blocking::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Posts `form` to an endpoint of `server`'s authorization server.
fn post_form(
    server: &Server,
    endpoint: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value, reqwest_headers::Headers) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = http()
        .post(format!("{}/auth/{endpoint}", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = reqwest_headers::Headers::of(response.headers());
    let text = response.text().unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, value, headers)
}

mod reqwest_headers {
    /// Response headers, lower-cased names.
    pub struct Headers(pub Vec<(String, String)>);

    impl Headers {
        pub fn of(map: &oauth2::reqwest::header::HeaderMap) -> Headers {
            Headers(
                map.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
            )
        }

        pub fn get(&self, name: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }
}

/// Asks for a token with an assertion; answers the status and body.
fn with_assertion(server: &Server, assertion: &str, scope: &str) -> (u16, Value) {
    let (status, body, headers) = post_form(
        server,
        "token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
        None,
    );
    assert_eq!(headers.get("cache-control"), Some("no-store"));
    assert_eq!(headers.get("pragma"), Some("no-cache"));
    assert!(
        headers
            .get("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{:?}",
        headers.get("content-type")
    );
    (status, body)
}

#[track_caller]
fn refused(answer: (u16, Value), status: u16, error: &str) -> String {
    let (got, body) = answer;
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(error)),
        "{body}"
    );
    body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------
// discovery

#[test]
fn discovery_names_the_endpoints_in_the_well_known_file_and_the_capability_statement() {
    let server = smart();
    let response = server
        .request("GET", ".well-known/smart-configuration")
        .accept("text/html")
        .send();
    response.assert_status(200);
    assert!(response.content_type().starts_with("application/json"));
    let config = response.json();
    assert_eq!(config["issuer"], json!(server.base));
    assert_eq!(config["token_endpoint"], json!(token_url(&server)));
    assert_eq!(
        config["jwks_uri"],
        json!(format!("{}/.well-known/jwks.json", server.base))
    );
    for endpoint in ["introspection_endpoint", "revocation_endpoint"] {
        assert!(
            config[endpoint].as_str().unwrap().starts_with(&server.base),
            "{config}"
        );
    }
    assert_eq!(
        config["grant_types_supported"],
        json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        config["authorization_endpoint"],
        json!(format!("{}/auth/authorize", server.base))
    );
    assert_eq!(config["response_types_supported"], json!(["code"]));
    assert_eq!(config["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        config["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );
    let capabilities = config["capabilities"].as_array().unwrap();
    assert!(capabilities.contains(&json!("client-confidential-asymmetric")));
    for capability in [
        "launch-standalone",
        "client-public",
        "permission-offline",
        "permission-v2",
        "context-standalone-patient",
        "launch-ehr",
        "context-ehr-patient",
        "context-ehr-encounter",
        "sso-openid-connect",
    ] {
        assert!(capabilities.contains(&json!(capability)), "{capability}");
    }
    // Nothing is claimed that is not served.
    for capability in ["context-standalone-encounter", "smart-app-state"] {
        assert!(!capabilities.contains(&json!(capability)), "{capability}");
    }
    // The same endpoints in /metadata, where fhirclient looks for them.
    let statement = server.read_json("metadata");
    let uris = &statement["rest"][0]["security"]["extension"][0];
    assert_eq!(
        uris["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    let named = |name: &str| {
        uris["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == name)
            .map(|e| e["valueUri"].clone())
    };
    assert_eq!(named("token"), Some(json!(token_url(&server))));
    assert_eq!(
        named("authorize"),
        Some(config["authorization_endpoint"].clone())
    );
    assert_eq!(named("revoke"), Some(config["revocation_endpoint"].clone()));
    // Without SMART there is no authorization server.
    let open = Server::local(|_| {});
    open.get(".well-known/smart-configuration")
        .assert_status(404);
    assert!(open.read_json("metadata")["rest"][0]["security"]
        .get("extension")
        .is_none());
}

// ---------------------------------------------------------------------------
// backend services

both_backends! {
    fn a_backend_service_gets_a_token_by_a_signed_assertion_through_the_oauth2_crate() {
        let server = smart();
        let keys = Keys::new("bulk-key-1");
        add_backend(&server, "bulk", &keys, "system/*.rs system/Observation.cruds");
        server.use_token(Some(&server.token("system/*.cruds", None, None)));
        server.create(&conformance_tests::patient("Backend"));
        let client = BasicClient::new(ClientId::new("bulk".into()))
            .set_token_uri(TokenUrl::new(token_url(&server)).unwrap());
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("system/Patient.rs".into()))
            .add_scope(Scope::new("system/Observation.read".into()))
            .add_extra_param("client_assertion_type", JWT_BEARER)
            .add_extra_param("client_assertion", keys.assertion(&server, "bulk"))
            .request(&http())
            .expect("a token");
        let expires = token.expires_in().expect("expires_in").as_secs();
        assert!((1..=300).contains(&expires), "{expires}");
        let scopes: Vec<String> = token.scopes().unwrap().iter().map(|s| s.to_string()).collect();
        // v1 is echoed as v1.
        assert_eq!(scopes, vec!["system/Patient.rs", "system/Observation.read"]);
        let access = token.access_token().secret().clone();
        server.use_token(Some(&access));
        let found = server.read_json("Patient");
        assert_eq!(found["total"], 1, "{found}");
        server.get("Observation").assert_status(200);
        // Granted what it asked for, not all it may have.
        server.get("Encounter").assert_error(403);
        server.post("Patient", &conformance_tests::patient("Denied")).assert_error(403);
    }

    fn a_confidential_client_gets_a_token_with_its_secret_by_basic_or_in_the_form() {
        let server = smart();
        add_secret_client(&server, "reporter", "system/Patient.rs");
        let client = BasicClient::new(ClientId::new("reporter".into()))
            .set_client_secret(ClientSecret::new(SECRET.into()))
            .set_token_uri(TokenUrl::new(token_url(&server)).unwrap());
        for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
            let token = client
                .clone()
                .set_auth_type(auth)
                .exchange_client_credentials()
                .add_scope(Scope::new("system/Patient.rs".into()))
                .request(&http())
                .expect("a token");
            server.use_token(Some(token.access_token().secret()));
            server.get("Patient").assert_status(200);
        }
        // A wrong secret, by either method: 401 invalid_client.
        let (status, body, headers) = post_form(&server, "token",
            &[("grant_type", "client_credentials"), ("scope", "system/Patient.rs")],
            Some(("reporter", "not the secret at all")));
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
        assert_eq!(headers.get("www-authenticate"), Some(r#"Basic realm="hearth""#));
        let (status, body, _) = post_form(&server, "token",
            &[("grant_type", "client_credentials"), ("scope", "system/Patient.rs"),
              ("client_id", "reporter"), ("client_secret", "not the secret at all")], None);
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    }
}

#[test]
fn an_assertion_is_accepted_once() {
    let server = smart();
    let keys = Keys::new("k1");
    add_backend(&server, "bulk", &keys, "system/*.rs");
    let assertion = keys.assertion(&server, "bulk");
    assert_eq!(with_assertion(&server, &assertion, "system/*.rs").0, 200);
    let said = refused(
        with_assertion(&server, &assertion, "system/*.rs"),
        401,
        "invalid_client",
    );
    assert!(said.contains("jti"), "{said}");
}

#[test]
fn an_expired_assertion_is_refused() {
    let server = smart();
    let keys = Keys::new("k1");
    add_backend(&server, "bulk", &keys, "system/*.rs");
    let mut late = claims(&server, "bulk");
    late["exp"] = json!(now() - 120);
    let said = refused(
        with_assertion(&server, &keys.sign(header("k1"), late), "system/*.rs"),
        401,
        "invalid_client",
    );
    assert!(said.contains("expired"), "{said}");
    // Nor one that lives longer than five minutes.
    let mut long = claims(&server, "bulk");
    long["exp"] = json!(now() + 3600);
    refused(
        with_assertion(&server, &keys.sign(header("k1"), long), "system/*.rs"),
        401,
        "invalid_client",
    );
}

#[test]
fn an_assertion_signed_by_another_key_is_refused() {
    let server = smart();
    let keys = Keys::new("k1");
    add_backend(&server, "bulk", &keys, "system/*.rs");
    // Same kid, another key.
    let impostor = Keys::new("k1");
    let said = refused(
        with_assertion(&server, &impostor.assertion(&server, "bulk"), "system/*.rs"),
        401,
        "invalid_client",
    );
    assert!(said.contains("signature"), "{said}");
    // A kid the client did not register.
    let other = Keys::new("k2");
    refused(
        with_assertion(&server, &other.assertion(&server, "bulk"), "system/*.rs"),
        401,
        "invalid_client",
    );
    // Another client's assertion for this one.
    let mut stolen = claims(&server, "bulk");
    stolen["sub"] = json!("someone-else");
    refused(
        with_assertion(&server, &keys.sign(header("k1"), stolen), "system/*.rs"),
        401,
        "invalid_client",
    );
    // Meant for another server.
    let mut elsewhere = claims(&server, "bulk");
    elsewhere["aud"] = json!("https://other.example/auth/token");
    refused(
        with_assertion(&server, &keys.sign(header("k1"), elsewhere), "system/*.rs"),
        401,
        "invalid_client",
    );
}

#[test]
fn an_unsigned_assertion_is_refused() {
    let server = smart();
    let keys = Keys::new("k1");
    add_backend(&server, "bulk", &keys, "system/*.rs");
    let signed = keys.assertion(&server, "bulk");
    let payload = signed.split('.').nth(1).unwrap();
    for alg in ["none", "HS256"] {
        let head = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1"}).to_string());
        let forged = format!("{head}.{payload}.");
        refused(
            with_assertion(&server, &forged, "system/*.rs"),
            401,
            "invalid_client",
        );
    }
}

#[test]
fn an_unknown_client_is_refused() {
    let server = smart();
    let keys = Keys::new("k1");
    refused(
        with_assertion(&server, &keys.assertion(&server, "nobody"), "system/*.rs"),
        401,
        "invalid_client",
    );
    let (status, body, _) = post_form(
        &server,
        "token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
        ],
        Some(("nobody", SECRET)),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
}

#[test]
fn scopes_the_client_may_not_have_are_refused() {
    let server = smart();
    let keys = Keys::new("k1");
    add_backend(&server, "bulk", &keys, "system/Patient.rs");
    for scope in [
        "system/Observation.rs",
        "system/Patient.cruds",
        "system/*.rs",
        "patient/Patient.rs",
        "user/Patient.rs",
        "openid",
        "email",
        "",
    ] {
        refused(
            with_assertion(&server, &keys.assertion(&server, "bulk"), scope),
            400,
            "invalid_scope",
        );
    }
    // The scope it may have still works.
    assert_eq!(
        with_assertion(
            &server,
            &keys.assertion(&server, "bulk"),
            "system/Patient.rs"
        )
        .0,
        200
    );
}

#[test]
fn malformed_token_requests_are_refused_with_the_rfc_6749_codes() {
    let server = smart();
    add_secret_client(&server, "reporter", "system/*.rs");
    add_client(
        &server,
        "public-app",
        |a| a.redirect_uris = vec!["http://localhost:9/cb".into()],
        "",
    );
    let basic = Some(("reporter", SECRET));
    let ask = |form: &[(&str, &str)], basic| post_form(&server, "token", form, basic);
    let code = |answer: (u16, Value, reqwest_headers::Headers)| {
        (answer.0, answer.1["error"].as_str().map(str::to_owned))
    };
    assert_eq!(
        code(ask(&[("scope", "system/*.rs")], basic)),
        (400, Some("invalid_request".into()))
    );
    assert_eq!(
        code(ask(
            &[("grant_type", "password"), ("scope", "system/*.rs")],
            basic
        )),
        (400, Some("unsupported_grant_type".into()))
    );
    assert_eq!(
        code(ask(
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
                ("scope", "system/*.rs")
            ],
            basic
        )),
        (400, Some("invalid_request".into()))
    );
    // Two ways of authenticating at once.
    assert_eq!(
        code(ask(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "system/*.rs"),
                ("client_secret", SECRET)
            ],
            basic
        )),
        (400, Some("invalid_request".into()))
    );
    // A public client has no credentials to use.
    assert_eq!(
        code(ask(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "system/*.rs"),
                ("client_id", "public-app")
            ],
            None
        )),
        (400, Some("unauthorized_client".into()))
    );
    // JSON is not a form.
    let response = http()
        .post(token_url(&server))
        .header("content-type", "application/json")
        .basic_auth("reporter", Some(SECRET))
        .body(r#"{"grant_type":"client_credentials","scope":"system/*.rs"}"#)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], "invalid_request");
    // GET is not how a token is asked for.
    server.get("auth/token").assert_status(405);
}

/// A JWKS served at a URL, counting its fetches.
struct KeyServer {
    url: String,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    fn start(jwks: Value) -> KeyServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                counted.fetch_add(1, Ordering::SeqCst);
                let body = jwks.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=120\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        KeyServer { url, fetches }
    }
}

#[test]
fn a_client_with_a_jwks_url_is_checked_against_the_keys_published_there() {
    let server = smart();
    let keys = Keys::new("url-key");
    let published = KeyServer::start(keys.jwks());
    add_client(
        &server,
        "remote",
        |a| {
            a.jwks_url = Some(published.url.clone());
            a.scope = Some("system/*.rs".into());
        },
        "",
    );
    assert_eq!(
        with_assertion(&server, &keys.assertion(&server, "remote"), "system/*.rs").0,
        200
    );
    // jku naming the registered URL is accepted; the keys are cached.
    let mut with_jku = header("url-key");
    with_jku["jku"] = json!(published.url);
    assert_eq!(
        with_assertion(
            &server,
            &keys.sign(with_jku, claims(&server, "remote")),
            "system/*.rs"
        )
        .0,
        200
    );
    assert_eq!(
        published.fetches.load(Ordering::SeqCst),
        1,
        "the JWKS is kept for its max-age"
    );
    // jku naming any other URL is refused, and not fetched.
    let elsewhere = KeyServer::start(keys.jwks());
    let mut other_jku = header("url-key");
    other_jku["jku"] = json!(elsewhere.url);
    let said = refused(
        with_assertion(
            &server,
            &keys.sign(other_jku, claims(&server, "remote")),
            "system/*.rs",
        ),
        401,
        "invalid_client",
    );
    assert!(said.contains("jku"), "{said}");
    assert_eq!(elsewhere.fetches.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// introspection and revocation

fn secret_token(server: &Server, client: &str, scope: &str) -> String {
    let (status, body, _) = post_form(
        server,
        "token",
        &[("grant_type", "client_credentials"), ("scope", scope)],
        Some((client, SECRET)),
    );
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn introspection_tells_a_confidential_client_what_a_token_is() {
    let server = smart();
    add_secret_client(&server, "reporter", "system/*.rs");
    add_secret_client(&server, "other", "system/*.rs");
    add_client(
        &server,
        "public-app",
        |a| a.redirect_uris = vec!["http://localhost:9/cb".into()],
        "",
    );
    let token = secret_token(&server, "reporter", "system/Patient.rs");
    let (status, about, headers) = post_form(
        &server,
        "introspect",
        &[("token", &token)],
        Some(("other", SECRET)),
    );
    assert_eq!(status, 200, "{about}");
    assert_eq!(headers.get("cache-control"), Some("no-store"));
    assert_eq!(about["active"], true);
    assert_eq!(about["scope"], "system/Patient.rs");
    assert_eq!(about["client_id"], "reporter");
    assert_eq!(about["sub"], "reporter");
    assert_eq!(about["iss"], json!(server.base));
    assert!(about["exp"].as_i64().unwrap() > now());
    for garbage in ["not a token", &format!("{token}x")] {
        let (status, about, _) = post_form(
            &server,
            "introspect",
            &[("token", garbage)],
            Some(("other", SECRET)),
        );
        assert_eq!((status, about), (200, json!({"active": false})));
    }
    // Not for a caller that cannot authenticate.
    let (status, _, _) = post_form(
        &server,
        "introspect",
        &[("token", &token)],
        Some(("other", "wrong secret, sixteen+")),
    );
    assert_eq!(status, 401);
    let (status, body, _) = post_form(
        &server,
        "introspect",
        &[("token", &token), ("client_id", "public-app")],
        None,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // A bearer learns about its own client's tokens only.
    let introspect_as = |bearer: &str| {
        let response = http()
            .post(format!("{}/auth/introspect", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .bearer_auth(bearer)
            .body(format!("token={token}"))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json::<Value>().unwrap()["active"].clone()
    };
    assert_eq!(
        introspect_as(&secret_token(&server, "reporter", "system/Patient.rs")),
        json!(true)
    );
    assert_eq!(
        introspect_as(&secret_token(&server, "other", "system/Patient.rs")),
        json!(false)
    );
}

both_backends! {
    fn a_revoked_token_is_refused_at_once_here_and_within_2_s_on_another_node() {
        let database = Arc::new(TestDatabase::new());
        let first = Server::smart_on(database.clone(), |_| {});
        let base = first.base.clone();
        let second = Server::smart_on(database, |config| config.base_url = Some(base));
        add_secret_client(&first, "reporter", "system/*.rs");
        add_secret_client(&first, "other", "system/*.rs");
        let token = secret_token(&first, "reporter", "system/Patient.rs");
        let kept = secret_token(&first, "reporter", "system/Patient.rs");
        second.use_token(Some(&token));
        second.get("Patient").assert_status(200);
        // Only the client it was issued to may revoke it.
        let (status, body, _) = post_form(&first, "revoke", &[("token", &token)], Some(("other", SECRET)));
        assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
        first.use_token(Some(&token));
        first.get("Patient").assert_status(200);
        let (status, body, headers) = post_form(&first, "revoke", &[("token", &token), ("token_type_hint", "access_token")], Some(("reporter", SECRET)));
        assert_eq!((status, body), (200, Value::Null));
        assert_eq!(headers.get("cache-control"), Some("no-store"));
        first.get("Patient").assert_error(401);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let r = second.get("Patient");
            if r.status == 401 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the revoked token still works on the second node");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let (_, about, _) = post_form(&second, "introspect", &[("token", &token)], Some(("other", SECRET)));
        assert_eq!(about, json!({"active": false}));
        // Another token of the client is untouched; a token that is not
        // valid is "revoked" without error (RFC 7009 §2.2).
        first.use_token(Some(&kept));
        first.get("Patient").assert_status(200);
        let (status, _, _) = post_form(&first, "revoke", &[("token", "no such token")], Some(("reporter", SECRET)));
        assert_eq!(status, 200);
    }
}

#[test]
fn clients_are_listed_and_removed_and_a_removed_client_gets_no_token() {
    let server = smart();
    add_secret_client(&server, "reporter", "system/*.rs");
    let printed = add_client(
        &server,
        "app",
        |a| a.redirect_uris = vec!["https://app.example/cb".into()],
        "",
    );
    assert!(printed.contains("public"), "{printed}");
    let run = |command| {
        let args = hearth::clients::ClientArgs {
            command,
            settings: Default::default(),
        };
        hearth::clients::run(&args, server.config(), &mut std::io::empty())
    };
    let list = run(hearth::clients::ClientCommand::List).unwrap();
    assert!(list.contains("reporter\tconfidential-symmetric"), "{list}");
    assert!(list.contains("app\tpublic"), "{list}");
    assert!(!list.contains(SECRET) && !list.contains("argon2"), "{list}");
    secret_token(&server, "reporter", "system/*.rs");
    run(hearth::clients::ClientCommand::Remove {
        client_id: "reporter".into(),
    })
    .unwrap();
    let (status, body, _) = post_form(
        &server,
        "token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
        ],
        Some(("reporter", SECRET)),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(run(hearth::clients::ClientCommand::Remove {
        client_id: "reporter".into()
    })
    .is_err());
    // A short secret, a bad redirect URI, a taken id: refused.
    let add = |id: &str, extra: fn(&mut hearth::clients::AddArgs), stdin: &str| {
        server.add_client(id, extra, stdin)
    };
    assert!(add("short", |a| a.secret_stdin = true, "tiny\n").is_err());
    assert!(add(
        "redirect",
        |a| a.redirect_uris = vec!["http://app.example/cb".into()],
        ""
    )
    .is_err());
    assert!(add("app", |_| {}, "").is_err());
}

#[test]
fn browsers_at_a_registered_apps_origin_may_call_the_token_endpoint_and_the_api() {
    let server = smart();
    add_client(
        &server,
        "spa",
        |a| a.redirect_uris = vec!["https://spa.example.org/callback".into()],
        "",
    );
    let preflight = |origin: &str, path: &str| {
        http()
            .request(
                oauth2::reqwest::Method::OPTIONS,
                format!("{}/{path}", server.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .unwrap()
    };
    // Registered within 2 s (the nodes read the clients every 2 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let answer = preflight("https://spa.example.org", "auth/token");
        if answer.status().as_u16() == 204 {
            assert_eq!(
                answer.headers()["access-control-allow-origin"],
                "https://spa.example.org"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the app's origin is never allowed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        preflight("https://spa.example.org", "Patient")
            .status()
            .as_u16(),
        204
    );
    // Any other origin: refused; the pages take no cross-origin calls.
    assert_eq!(
        preflight("https://evil.example.org", "auth/token")
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        preflight("https://spa.example.org", "auth/authorize")
            .status()
            .as_u16(),
        403
    );
    // A token request from the app's origin gets the header with its answer.
    let response = http()
        .post(token_url(&server))
        .header("origin", "https://spa.example.org")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&refresh_token=x&client_id=spa")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://spa.example.org"
    );
}

#[test]
fn a_form_that_trickles_in_or_is_too_large_is_refused_in_bounded_time() {
    let server = Server::smart_on(Arc::new(TestDatabase::new()), |c| {
        c.body_timeout = std::time::Duration::from_secs(1)
    });
    let authority = server.base.trim_start_matches("http://").to_owned();
    for path in ["/auth/token", "/auth/sign-in"] {
        let mut stream = server.connect();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type="
        )
        .unwrap();
        let started = std::time::Instant::now();
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .expect("an answer before the read timeout");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{path}"
        );
        let response = conformance_tests::parse_raw_response(&raw);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert!(
            response.text().contains("did not arrive"),
            "{path}: {}",
            response.text()
        );
    }
    // More than 64 KiB: refused before it is read.
    let big = format!(
        "grant_type=client_credentials&scope={}",
        "x".repeat(70 * 1024)
    );
    let (status, body, _) = post_form(
        &server,
        "token",
        &[("grant_type", "client_credentials"), ("scope", &big)],
        None,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("64 KiB"),
        "{body}"
    );
}
