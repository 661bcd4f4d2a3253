//! A SMART standalone launch through Hearth's own pages, black-box: the
//! authorization request and the token exchange made by the `oauth2`
//! crate, the sign-in and consent forms posted as a browser posts them
//! (with its CSRF cookie); then refresh-token rotation, and one test for
//! each way the flow must fail.

use std::sync::Arc;

use conformance_tests::{both_backends, json, Server, TestDatabase, Value};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};

const REDIRECT: &str = "http://localhost:9/callback";
const PASSWORD: &str = "correct horse battery";
const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

/// A SMART server with a public app, a Patient user (alice) and her
/// records: a lab result, a vital sign, a condition.
struct Setup {
    server: Server,
    patient: String,
}

fn setup() -> Setup {
    let server = Server::smart_on(Arc::new(TestDatabase::new()), |_| {});
    server.use_token(Some(&server.token("system/*.cruds", None, None)));
    let patient = server.create(&conformance_tests::patient("Alice"));
    for category in ["laboratory", "vital-signs"] {
        server.create(&json!({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
            "code": {"text": category}, "subject": {"reference": format!("Patient/{patient}")}}));
    }
    server.create(
        &json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{patient}")},
        "code": {"text": "asthma"}}),
    );
    server.use_token(None);
    server
        .add_client(
            "growth",
            |a| {
                a.name = "Growth <Chart>".into();
                a.redirect_uris = vec![REDIRECT.into()];
            },
            "",
        )
        .unwrap();
    server.add_user("alice", &format!("Patient/{patient}"), PASSWORD);
    Setup { server, patient }
}

fn oauth_client(
    server: &Server,
) -> BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
> {
    BasicClient::new(ClientId::new("growth".into()))
        .set_auth_uri(AuthUrl::new(format!("{}/auth/authorize", server.base)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/auth/token", server.base)).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

fn http() -> oauth2::reqwest::blocking::Client {
    oauth2::reqwest::blocking::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser: it keeps the CSRF cookie and follows no redirect.
struct Browser {
    http: oauth2::reqwest::blocking::Client,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    headers: oauth2::reqwest::header::HeaderMap,
    html: String,
}

impl Page {
    /// The value of the hidden input `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.html))
            + marker.len();
        self.html[start..].split('"').next().unwrap().to_owned()
    }

    fn location(&self) -> String {
        self.headers["location"].to_str().unwrap().to_owned()
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: http(),
            cookie: None,
        }
    }

    fn keep(&mut self, response: oauth2::reqwest::blocking::Response) -> Page {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            if let Some(rest) = text.strip_prefix("hearth_csrf=") {
                self.cookie = Some(rest.split(';').next().unwrap().to_owned());
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        Page {
            status,
            headers,
            html: response.text().unwrap(),
        }
    }

    fn get(&mut self, url: &str) -> Page {
        let response = self.http.get(url).send().unwrap();
        self.keep(response)
    }

    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("hearth_csrf={cookie}"));
        }
        let response = request.send().unwrap();
        self.keep(response)
    }
}

/// An authorization URL for `scopes`, with PKCE; its state and verifier.
fn authorization_url(server: &Server, scopes: &[&str]) -> (String, CsrfToken, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = oauth_client(server);
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_extra_param("aud", server.base.clone())
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).into()));
    }
    let (url, state) = request.url();
    (url.to_string(), state, verifier)
}

/// Signs alice in from the sign-in page; answers the consent page.
fn sign_in(browser: &mut Browser, server: &Server, page: &Page) -> Page {
    sign_in_as(browser, server, page, "alice")
}

fn sign_in_as(browser: &mut Browser, server: &Server, page: &Page, username: &str) -> Page {
    assert_eq!(page.status, 200, "{}", page.html);
    browser.post(
        &format!("{}/auth/sign-in", server.base),
        &[
            ("ticket", &page.hidden("ticket")),
            ("csrf", &page.hidden("csrf")),
            ("username", username),
            ("password", PASSWORD),
        ],
    )
}

/// The query parameters of a redirect to the app.
fn callback(location: &str) -> Vec<(String, String)> {
    assert!(location.starts_with(REDIRECT), "{location}");
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The whole launch for `scopes`, approving all: the code, state and verifier.
fn approved_code(server: &Server, scopes: &[&str]) -> (String, PkceCodeVerifier) {
    let (url, state, verifier) = authorization_url(server, scopes);
    let mut browser = Browser::new();
    let page = browser.get(&url);
    let consent = sign_in(&mut browser, server, &page);
    let indexes: Vec<String> = (0..scopes.len()).map(|i| i.to_string()).collect();
    let mut form = vec![
        ("ticket", consent.hidden("ticket")),
        ("csrf", consent.hidden("csrf")),
        ("decision", "approve".into()),
    ];
    for i in &indexes {
        form.push(("scope", i.clone()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = browser.post(&format!("{}/auth/consent", server.base), &form);
    assert_eq!(done.status, 303, "{}", done.html);
    let back = callback(&done.location());
    assert_eq!(param(&back, "state"), Some(state.secret().as_str()));
    (param(&back, "code").expect("a code").to_owned(), verifier)
}

/// Posts a token request as a form; the status and JSON.
fn token_request(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = http()
        .post(format!("{}/auth/token", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

fn exchange(server: &Server, code: &str, verifier: &str) -> (u16, Value) {
    token_request(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT),
            ("client_id", "growth"),
        ],
    )
}

both_backends! {
    fn a_patient_launches_an_app_approves_some_scopes_and_the_token_holds_to_them() {
        let Setup { server, patient } = setup();
        let scopes = ["launch/patient", "patient/Patient.rs", "patient/Observation.rs", "patient/Condition.rs", "offline_access"];
        let (url, state, verifier) = authorization_url(&server, &scopes);
        let mut browser = Browser::new();
        let page = browser.get(&url);
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("Growth &lt;Chart&gt;"), "the app is named, escaped");
        for name in ["content-security-policy", "x-frame-options", "cache-control"] {
            assert!(!page.header(name).is_empty(), "{name}");
        }
        assert_eq!(page.header("x-frame-options"), "DENY");
        assert!(page.header("content-security-policy").contains("default-src 'none'"));
        assert!(page.html.contains("<label for=\"password\">"));
        let consent = sign_in(&mut browser, &server, &page);
        assert_eq!(consent.status, 200, "{}", consent.html);
        assert!(consent.html.contains("Read your lab results, vital signs and other observations"), "{}", consent.html);
        assert!(consent.html.contains("Only lab results"));
        // Condition (3) unticked; observations narrowed to lab results.
        let narrowed = format!("patient/Observation.rs?category={LAB}");
        let done = browser.post(&format!("{}/auth/consent", server.base), &[
            ("ticket", &consent.hidden("ticket")), ("csrf", &consent.hidden("csrf")), ("decision", "approve"),
            ("scope", "0"), ("scope", "1"), ("scope", "2"), ("scope", "4"), ("narrow-2", &narrowed),
        ]);
        assert_eq!(done.status, 303, "{}", done.html);
        let back = callback(&done.location());
        assert_eq!(param(&back, "state"), Some(state.secret().as_str()));
        let code = param(&back, "code").unwrap().to_owned();
        let token = oauth_client(&server)
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request(&http())
            .expect("a token");
        let granted: Vec<String> = token.scopes().unwrap().iter().map(|s| s.to_string()).collect();
        assert_eq!(granted, vec!["launch/patient".to_owned(), "patient/Patient.rs".into(), narrowed.clone(), "offline_access".into()]);
        assert!(token.expires_in().unwrap().as_secs() <= 3600);
        server.use_token(Some(token.access_token().secret()));
        server.get(&format!("Patient/{patient}")).assert_status(200);
        let labs = server.read_json("Observation");
        assert_eq!(labs["total"], 1, "lab results only: {labs}");
        // The unticked scope: refused.
        server.get("Condition").assert_error(403);
        // Refresh: rotated; the old one then fails and revokes the family.
        let refresh = token.refresh_token().expect("a refresh token").clone();
        let again = oauth_client(&server)
            .exchange_refresh_token(&refresh)
            .request(&http())
            .expect("a refreshed token");
        server.use_token(Some(again.access_token().secret()));
        assert_eq!(server.read_json("Observation")["total"], 1, "the context survives");
        let next = again.refresh_token().expect("the next refresh token").clone();
        let (status, body) = token_request(&server, &[("grant_type", "refresh_token"), ("refresh_token", refresh.secret()), ("client_id", "growth")]);
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let (status, body) = token_request(&server, &[("grant_type", "refresh_token"), ("refresh_token", next.secret()), ("client_id", "growth")]);
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the family is revoked: {body}");
    }
}

#[test]
fn the_token_response_carries_the_launch_context_and_a_narrower_refresh_scope() {
    let Setup { server, patient } = setup();
    let (code, verifier) = approved_code(
        &server,
        &["launch/patient", "patient/*.rs", "online_access"],
    );
    let (status, body) = exchange(&server, &code, verifier.secret());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["patient"], json!(patient));
    assert_eq!(body["need_patient_banner"], true);
    assert_eq!(body["token_type"], "Bearer");
    let refresh = body["refresh_token"].as_str().unwrap();
    // A refresh may ask for less, never more.
    let (status, body) = token_request(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "growth"),
            ("scope", "patient/*.cruds"),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    let (code, verifier) = approved_code(
        &server,
        &["launch/patient", "patient/*.rs", "online_access"],
    );
    let (_, body) = exchange(&server, &code, verifier.secret());
    let (status, body) = token_request(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", "growth"),
            ("scope", "patient/Patient.rs"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "patient/Patient.rs");
    assert_eq!(body["patient"], json!(patient));
}

#[test]
fn a_wrong_or_missing_code_verifier_gets_no_token() {
    let Setup { server, .. } = setup();
    let (code, _) = approved_code(&server, &["patient/*.rs"]);
    let (status, body) = exchange(&server, &code, &"x".repeat(43));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (code, _) = approved_code(&server, &["patient/*.rs"]);
    let (status, body) = token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "growth"),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}

#[test]
fn a_reused_code_fails_and_revokes_the_token_it_gave() {
    let Setup { server, .. } = setup();
    let (code, verifier) = approved_code(&server, &["patient/*.rs"]);
    let (status, first) = exchange(&server, &code, verifier.secret());
    assert_eq!(status, 200, "{first}");
    server.use_token(first["access_token"].as_str());
    server.get("Observation").assert_status(200);
    let (status, body) = exchange(&server, &code, verifier.secret());
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    server.get("Observation").assert_error(401);
}

#[test]
fn a_plain_or_missing_pkce_challenge_is_sent_back_as_an_error() {
    let Setup { server, .. } = setup();
    let (url, _, _) = authorization_url(&server, &["patient/*.rs"]);
    for (from, to) in [
        ("code_challenge_method=S256", "code_challenge_method=plain"),
        ("code_challenge_method=S256", ""),
    ] {
        let page = Browser::new().get(&url.replace(from, to));
        assert_eq!(page.status, 303, "{}", page.html);
        let back = callback(&page.location());
        assert_eq!(param(&back, "error"), Some("invalid_request"));
        assert!(param(&back, "state").is_some(), "state is echoed");
        assert!(param(&back, "code").is_none());
    }
}

#[test]
fn a_wrong_or_missing_aud_gets_no_code() {
    let Setup { server, .. } = setup();
    let (url, _, _) = authorization_url(&server, &["patient/*.rs"]);
    let aud = format!(
        "aud={}",
        form_urlencoded::byte_serialize(server.base.as_bytes()).collect::<String>()
    );
    assert!(url.contains(&aud), "{url}");
    for replacement in ["aud=https%3A%2F%2Fother.example%2Ffhir", "x=1"] {
        let page = Browser::new().get(&url.replace(&aud, replacement));
        assert_eq!(page.status, 303);
        let back = callback(&page.location());
        assert_eq!(param(&back, "error"), Some("invalid_request"));
        assert!(param(&back, "code").is_none());
    }
}

#[test]
fn an_unregistered_redirect_uri_or_unknown_client_is_shown_an_error_never_redirected() {
    let Setup { server, .. } = setup();
    let (url, _, _) = authorization_url(&server, &["patient/*.rs"]);
    let encoded: String = form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
    for (from, to) in [
        (encoded.as_str(), "https%3A%2F%2Fevil.example%2Fcb"),
        ("client_id=growth", "client_id=unknown"),
    ] {
        assert!(url.contains(from), "{url}");
        let page = Browser::new().get(&url.replace(from, to));
        assert_eq!(page.status, 400, "{}", page.html);
        assert!(page.headers.get("location").is_none());
        assert!(page.html.contains("role=\"alert\""));
    }
    // A code exchanged with another redirect URI than its own.
    let (code, verifier) = approved_code(&server, &["patient/*.rs"]);
    let (status, body) = token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", verifier.secret()),
            ("redirect_uri", "http://localhost:9/other"),
            ("client_id", "growth"),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[test]
fn scopes_the_app_may_not_have_are_refused_at_the_authorization_endpoint() {
    let Setup { server, .. } = setup();
    // Not allowed to the app; the EHR launch scope without a launch.
    for (scope, error) in [
        ("system/*.rs", "invalid_scope"),
        ("patient/*.cruds", "invalid_scope"),
        ("launch", "invalid_request"),
    ] {
        let (url, _, _) = authorization_url(&server, &[scope]);
        let page = Browser::new().get(&url);
        assert_eq!(page.status, 303, "{scope}");
        assert_eq!(
            param(&callback(&page.location()), "error"),
            Some(error),
            "{scope}"
        );
    }
}

#[test]
fn denying_sends_access_denied_back_to_the_app() {
    let Setup { server, .. } = setup();
    let (url, state, _) = authorization_url(&server, &["patient/*.rs"]);
    let mut browser = Browser::new();
    let page = browser.get(&url);
    let consent = sign_in(&mut browser, &server, &page);
    let done = browser.post(
        &format!("{}/auth/consent", server.base),
        &[
            ("ticket", &consent.hidden("ticket")),
            ("csrf", &consent.hidden("csrf")),
            ("decision", "deny"),
            ("scope", "0"),
        ],
    );
    assert_eq!(done.status, 303);
    let back = callback(&done.location());
    assert_eq!(param(&back, "error"), Some("access_denied"));
    assert_eq!(param(&back, "state"), Some(state.secret().as_str()));
    assert!(param(&back, "code").is_none());
}

#[test]
fn forms_without_their_csrf_cookie_or_a_valid_ticket_are_refused() {
    let Setup { server, .. } = setup();
    let (url, _, _) = authorization_url(&server, &["patient/*.rs"]);
    let mut browser = Browser::new();
    let page = browser.get(&url);
    let consent = sign_in(&mut browser, &server, &page);
    let (ticket, csrf) = (consent.hidden("ticket"), consent.hidden("csrf"));
    // Another browser (no cookie) posting the same form.
    let stolen = Browser::new().post(
        &format!("{}/auth/consent", server.base),
        &[
            ("ticket", &ticket),
            ("csrf", &csrf),
            ("decision", "approve"),
            ("scope", "0"),
        ],
    );
    assert_eq!(stolen.status, 400);
    assert!(stolen.headers.get("location").is_none());
    // The sign-in ticket cannot skip the sign-in.
    let skipped = browser.post(
        &format!("{}/auth/consent", server.base),
        &[
            ("ticket", &page.hidden("ticket")),
            ("csrf", &csrf),
            ("decision", "approve"),
            ("scope", "0"),
        ],
    );
    assert_eq!(skipped.status, 400);
    // A ticket is no access token.
    server.use_token(Some(&ticket));
    server.get("Observation").assert_error(401);
}

#[test]
fn sign_in_attempts_are_limited_per_account() {
    let Setup { server, .. } = setup();
    let (url, _, _) = authorization_url(&server, &["patient/*.rs"]);
    let mut browser = Browser::new();
    let page = browser.get(&url);
    let form = |password: &'static str| {
        [
            ("ticket", page.hidden("ticket")),
            ("csrf", page.hidden("csrf")),
            ("username", "alice".to_owned()),
            ("password", password.to_owned()),
        ]
    };
    for _ in 0..5 {
        let wrong = form("not the password");
        let answer = browser.post(
            &format!("{}/auth/sign-in", server.base),
            &wrong
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        );
        assert_eq!(answer.status, 401);
        assert!(answer.html.contains("not right"), "{}", answer.html);
    }
    let right = form(PASSWORD);
    let answer = browser.post(
        &format!("{}/auth/sign-in", server.base),
        &right
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(answer.status, 401);
    assert!(answer.html.contains("Too many"), "{}", answer.html);
}

/// The browser driver, or why it cannot run: Debian's Chromium, Node.js
/// and playwright-core (`npm ci` in conformance-tests/browser), which
/// `.ci/run` installs.
fn browser_driver() -> Result<std::path::PathBuf, String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        return Err(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(format!(
            "no playwright-core in {} (npm ci there)",
            dir.display()
        ));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("no node".into());
    }
    Ok(dir)
}

#[test]
fn a_person_launches_the_app_in_chromium_unticks_a_scope_and_the_token_holds_to_it() {
    let dir = match browser_driver() {
        Ok(dir) => dir,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the browser test cannot run: {why}")
        }
        Err(why) => {
            eprintln!("skipped: the browser test needs {why}");
            return;
        }
    };
    let Setup { server, patient } = setup();
    let scopes = [
        "launch/patient",
        "patient/Patient.rs",
        "patient/Observation.rs",
        "patient/Condition.rs",
        "offline_access",
    ];
    let (url, state, verifier) = authorization_url(&server, &scopes);
    let screenshots = std::env::var("HEARTH_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::temp_dir().join(format!("hearth-screens-{}", std::process::id()))
        });
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = std::process::Command::new("node")
        .current_dir(&dir)
        .args([
            "launch.mjs",
            &url,
            REDIRECT,
            screenshots.to_str().unwrap(),
            "alice",
            PASSWORD,
            "Read your conditions and health problems",
        ])
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "the browser run failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("the driver's JSON");
    assert_eq!(result["signInStatus"], 200);
    assert_eq!(result["signInHeaders"]["x-frame-options"], "DENY");
    assert_eq!(
        result["cspViolations"],
        json!([]),
        "the pages break none of their own policy"
    );
    let text = result["consentText"].as_str().unwrap();
    assert!(
        text.contains("Growth <Chart>") && text.contains("Signed in as alice"),
        "{text}"
    );
    let back = callback(result["callback"].as_str().unwrap());
    assert_eq!(param(&back, "state"), Some(state.secret().as_str()));
    let code = param(&back, "code").expect("a code").to_owned();
    let token = oauth_client(&server)
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request(&http())
        .expect("a token");
    let granted: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        !granted.iter().any(|s| s.contains("Condition")),
        "{granted:?}"
    );
    server.use_token(Some(token.access_token().secret()));
    server.get(&format!("Patient/{patient}")).assert_status(200);
    assert_eq!(
        server.read_json("Observation")["total"],
        1,
        "lab results only"
    );
    server.get("Condition").assert_error(403);
    for shot in ["1-sign-in.png", "2-consent.png", "3-consent-chosen.png"] {
        assert!(screenshots.join(shot).exists(), "{shot}");
    }
    eprintln!("screenshots in {}", screenshots.display());
}

#[test]
fn the_python_fhirclient_completes_a_standalone_launch_and_reads_the_record() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/standalone_launch.py");
    let ready = std::process::Command::new("python3")
        .args(["-c", "import fhirclient"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        let why =
            "python3 with fhirclient (pip install -r conformance-tests/python/requirements.txt)";
        assert!(
            std::env::var_os("CI").is_none(),
            "the fhirclient test cannot run: it needs {why}"
        );
        eprintln!("skipped: the fhirclient test needs {why}");
        return;
    }
    let Setup { server, patient } = setup();
    let output = std::process::Command::new("python3")
        .arg(&script)
        .args([&server.base, "alice", PASSWORD])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "fhirclient failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    assert_eq!(result["ready"], true, "{result}");
    assert_eq!(result["patient_id"], json!(patient));
    assert_eq!(result["family"], "Alice");
    assert_eq!(result["observations"], 2);
    assert_eq!(result["refresh_token"], true);
    let url = result["authorize_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/auth/authorize?", server.base)),
        "found through discovery: {url}"
    );
    assert!(url.contains("code_challenge_method=S256"), "{url}");
}

// ---------------------------------------------------------------------------
// EHR launch

const LAUNCH_URI: &str = "http://localhost:9/launch";

/// An EHR (a confidential client that may create launches), an app it
/// launches, and a practitioner who uses it.
fn ehr_setup(server: &Server) {
    let add = |id: &str, change: &dyn Fn(&mut hearth::clients::AddArgs), stdin: &str| {
        server.add_client(id, change, stdin).unwrap();
    };
    add(
        "ehr",
        &|a| {
            a.secret_stdin = true;
            a.launches = true;
            a.scope = Some("system/Patient.rs".into());
        },
        "the EHR's own secret\n",
    );
    add(
        "bedside",
        &|a| {
            a.redirect_uris = vec![REDIRECT.into()];
            a.launch_uri = Some(LAUNCH_URI.into());
            a.scope = Some("launch launch/encounter patient/*.rs".into());
        },
        "",
    );
    server.add_user("drsmith", "Practitioner/dr-1", PASSWORD);
}

/// The app's side of an EHR launch: its authorization URL for `launch`.
fn ehr_authorization_url(server: &Server, launch: &str) -> (String, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = BasicClient::new(ClientId::new("bedside".into()))
        .set_auth_uri(AuthUrl::new(format!("{}/auth/authorize", server.base)).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("launch".into()))
        .add_scope(Scope::new("patient/*.rs".into()))
        .add_extra_param("aud", server.base.clone())
        .add_extra_param("launch", launch)
        .set_pkce_challenge(challenge)
        .url();
    (url.to_string(), verifier)
}

both_backends! {
    fn an_ehr_launch_from_the_command_line_gives_the_app_the_patient_and_encounter() {
        let Setup { server, patient } = setup();
        ehr_setup(&server);
        let args = hearth::launch::LaunchArgs {
            client: "bedside".into(), patient: Some(patient.clone()), encounter: Some("enc-1".into()),
            intent: Some("reconcile-medications".into()), need_patient_banner: Some(false), smart_style_url: None,
            settings: Default::default(),
        };
        let launch_url = hearth::launch::run(&args, server.config()).unwrap();
        assert!(launch_url.starts_with(&format!("{LAUNCH_URI}?iss=")), "{launch_url}");
        let query: Vec<(String, String)> = form_urlencoded::parse(launch_url.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
        assert_eq!(param(&query, "iss"), Some(server.base.as_str()));
        let launch = param(&query, "launch").unwrap().to_owned();
        let (url, verifier) = ehr_authorization_url(&server, &launch);
        let mut browser = Browser::new();
        let page = browser.get(&url);
        let consent = sign_in_as(&mut browser, &server, &page, "drsmith");
        assert_eq!(consent.status, 200, "{}", consent.html);
        assert!(consent.html.contains("the patient&#39;s") || consent.html.contains("the patient's"), "{}", consent.html);
        let done = browser.post(&format!("{}/auth/consent", server.base), &[
            ("ticket", &consent.hidden("ticket")), ("csrf", &consent.hidden("csrf")), ("decision", "approve"), ("scope", "0"), ("scope", "1")]);
        assert_eq!(done.status, 303, "{}", done.html);
        let code = param(&callback(&done.location()), "code").unwrap().to_owned();
        let (status, body) = token_request(&server, &[("grant_type", "authorization_code"), ("code", &code),
            ("code_verifier", verifier.secret()), ("redirect_uri", REDIRECT), ("client_id", "bedside")]);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["patient"], json!(patient));
        assert_eq!(body["encounter"], "enc-1");
        assert_eq!(body["intent"], "reconcile-medications");
        assert_eq!(body["need_patient_banner"], false);
        server.use_token(body["access_token"].as_str());
        assert_eq!(server.read_json("Observation")["total"], 2, "the launched patient's record");
        // The launch is used once.
        let (again, _) = ehr_authorization_url(&server, &launch);
        let page = Browser::new().get(&again);
        assert_eq!(page.status, 303);
        assert_eq!(param(&callback(&page.location()), "error"), Some("invalid_request"));
    }
}

#[test]
fn only_an_ehr_client_creates_launches_and_a_launch_serves_its_own_app() {
    let Setup { server, patient } = setup();
    ehr_setup(&server);
    let post = |basic: Option<(&str, &str)>, form: &[(&str, &str)]| {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = http()
            .post(format!("{}/auth/launch", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().unwrap(),
        )
    };
    let form = [
        ("app", "bedside"),
        ("patient", patient.as_str()),
        ("fhirContext", r#"[{"reference": "Encounter/enc-1"}]"#),
    ];
    let (status, body) = post(Some(("ehr", "the EHR's own secret")), &form);
    assert_eq!(status, 200, "{body}");
    assert!(body["launch_url"].as_str().unwrap().starts_with(LAUNCH_URI));
    assert_eq!(body["expires_in"], 300);
    let launch = body["launch"].as_str().unwrap().to_owned();
    // Not for an app, nor for a client that is no EHR, nor unauthenticated.
    let (status, body) = post(
        None,
        &[
            ("app", "bedside"),
            ("patient", patient.as_str()),
            ("client_id", "growth"),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    let (status, _) = post(Some(("ehr", "a wrong secret, long enough")), &form);
    assert_eq!(status, 401);
    // Another app cannot use this app's launch.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = oauth_client(&server)
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("launch".into()))
        .add_scope(Scope::new("patient/*.rs".into()))
        .add_extra_param("aud", server.base.clone())
        .add_extra_param("launch", launch.clone())
        .set_pkce_challenge(challenge)
        .url();
    let page = Browser::new().get(url.as_str());
    assert_eq!(page.status, 303);
    let error = param(&callback(&page.location()), "error").map(str::to_owned);
    assert!(
        matches!(
            error.as_deref(),
            Some("invalid_scope") | Some("invalid_request")
        ),
        "{error:?}"
    );
    // The launch's own app still may (the other app's attempt did not use it up).
    let (url, _) = ehr_authorization_url(&server, &launch);
    assert_eq!(Browser::new().get(&url).status, 200);
}

// ---------------------------------------------------------------------------
// OpenID Connect

#[test]
fn openid_gives_an_rs256_id_token_naming_the_person_and_their_fhir_user() {
    let Setup { server, patient } = setup();
    let (url, state, verifier) = authorization_url(
        &server,
        &["openid", "fhirUser", "launch/patient", "patient/*.rs"],
    );
    let url = format!("{url}&nonce=n-0S6_WzA2Mj");
    let mut browser = Browser::new();
    let page = browser.get(&url);
    let consent = sign_in(&mut browser, &server, &page);
    assert!(
        consent.html.contains("Know who you are"),
        "{}",
        consent.html
    );
    let done = browser.post(
        &format!("{}/auth/consent", server.base),
        &[
            ("ticket", &consent.hidden("ticket")),
            ("csrf", &consent.hidden("csrf")),
            ("decision", "approve"),
            ("scope", "0"),
            ("scope", "1"),
            ("scope", "2"),
            ("scope", "3"),
        ],
    );
    let back = callback(&done.location());
    assert_eq!(param(&back, "state"), Some(state.secret().as_str()));
    let (status, body) = exchange(&server, param(&back, "code").unwrap(), verifier.secret());
    assert_eq!(status, 200, "{body}");
    let id_token = body["id_token"].as_str().expect("an id_token").to_owned();
    let part = |i: usize| -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(i).unwrap())
            .unwrap()
    };
    let header: Value = serde_json::from_slice(&part(0)).unwrap();
    let claims: Value = serde_json::from_slice(&part(1)).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], json!(server.base));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "growth");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(
        claims["fhirUser"],
        json!(format!("{}/Patient/{patient}", server.base))
    );
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    // Verified with the key the server publishes.
    let jwks = server.read_json(".well-known/jwks.json");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the key is published");
    assert_eq!(key["kty"], "RSA");
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let public = ring::signature::RsaPublicKeyComponents {
        n: b64(&key["n"]),
        e: b64(&key["e"]),
    };
    let (signed, signature) = id_token.rsplit_once('.').unwrap();
    public
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &part(2),
        )
        .expect("the id_token's signature verifies");
    assert!(!signature.is_empty());
    // An id_token is no access token.
    server.use_token(Some(&id_token));
    server.get("Observation").assert_error(401);
    // Discovery for OpenID Connect.
    let response = server
        .request("GET", ".well-known/openid-configuration")
        .accept("text/html")
        .send();
    response.assert_status(200);
    let config = response.json();
    assert_eq!(config["issuer"], json!(server.base));
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(
        config["jwks_uri"],
        json!(format!("{}/.well-known/jwks.json", server.base))
    );
}

// ---------------------------------------------------------------------------
// patient picker

#[test]
fn a_practitioner_chooses_the_patient_in_a_standalone_launch() {
    let Setup { server, patient } = setup();
    ehr_setup(&server);
    let (url, _, verifier) = authorization_url(&server, &["launch/patient", "patient/*.rs"]);
    let mut browser = Browser::new();
    let page = browser.get(&url);
    let picker = sign_in_as(&mut browser, &server, &page, "drsmith");
    assert_eq!(picker.status, 200, "{}", picker.html);
    assert!(picker.html.contains("Choose a patient"), "{}", picker.html);
    let post = |browser: &mut Browser, page: &Page, form: &[(&str, &str)]| {
        let (ticket, csrf) = (page.hidden("ticket"), page.hidden("csrf"));
        let mut all = vec![("ticket", ticket.as_str()), ("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        browser.post(&format!("{}/auth/patient", server.base), &all)
    };
    let bad = post(
        &mut browser,
        &picker,
        &[("action", "search"), ("birthdate", "yesterday")],
    );
    assert!(bad.html.contains("YYYY-MM-DD"), "{}", bad.html);
    let none = post(
        &mut browser,
        &picker,
        &[("action", "search"), ("name", "Nobody-by-that-name")],
    );
    assert!(none.html.contains("No patient matches"), "{}", none.html);
    let found = post(
        &mut browser,
        &picker,
        &[("action", "search"), ("name", "Alice")],
    );
    assert!(
        found.html.contains(&format!("value=\"{patient}\"")),
        "{}",
        found.html
    );
    // A patient that does not exist cannot be chosen.
    let missing = post(
        &mut browser,
        &found,
        &[("action", "choose"), ("patient", "no-such-patient")],
    );
    assert_eq!(missing.status, 400);
    let consent = post(
        &mut browser,
        &found,
        &[("action", "choose"), ("patient", &patient)],
    );
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert!(
        consent.html.contains(&format!("For patient {patient}")),
        "{}",
        consent.html
    );
    let done = browser.post(
        &format!("{}/auth/consent", server.base),
        &[
            ("ticket", &consent.hidden("ticket")),
            ("csrf", &consent.hidden("csrf")),
            ("decision", "approve"),
            ("scope", "0"),
            ("scope", "1"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.html);
    let code = param(&callback(&done.location()), "code")
        .unwrap()
        .to_owned();
    let (status, body) = exchange(&server, &code, verifier.secret());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["patient"], json!(patient));
    server.use_token(body["access_token"].as_str());
    assert_eq!(server.read_json("Observation")["total"], 2);
    // Skipping the picker: the sign-in's ticket approves nothing.
    let (url, _, _) = authorization_url(&server, &["launch/patient", "patient/*.rs"]);
    let mut browser = Browser::new();
    let page = browser.get(&url);
    let picker = sign_in_as(&mut browser, &server, &page, "drsmith");
    let skipped = browser.post(
        &format!("{}/auth/consent", server.base),
        &[
            ("ticket", &picker.hidden("ticket")),
            ("csrf", &picker.hidden("csrf")),
            ("decision", "approve"),
            ("scope", "0"),
            ("scope", "1"),
        ],
    );
    assert_eq!(skipped.status, 303);
    assert_eq!(
        param(&callback(&skipped.location()), "error"),
        Some("invalid_scope")
    );
}

#[test]
fn a_refresh_token_serves_only_the_app_it_was_issued_to() {
    let Setup { server, .. } = setup();
    ehr_setup(&server);
    let (code, verifier) = approved_code(&server, &["patient/*.rs", "offline_access"]);
    let (_, body) = exchange(&server, &code, verifier.secret());
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token_request(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "bedside"),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // Revoked by its own app (RFC 7009), it serves no one.
    let (code, verifier) = approved_code(&server, &["patient/*.rs", "offline_access"]);
    let (_, body) = exchange(&server, &code, verifier.secret());
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let revoke = http()
        .post(format!("{}/auth/revoke", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "token={refresh}&token_type_hint=refresh_token&client_id=growth"
        ))
        .send()
        .unwrap();
    assert_eq!(revoke.status().as_u16(), 200);
    let (status, body) = token_request(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "growth"),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[test]
fn introspection_describes_an_apps_access_and_refresh_tokens() {
    let Setup { server, patient } = setup();
    server
        .add_client(
            "resource-server",
            |a| {
                a.secret_stdin = true;
                a.scope = Some("system/Patient.rs".into());
            },
            "a secret of the resource server\n",
        )
        .unwrap();
    let (code, verifier) = approved_code(
        &server,
        &["launch/patient", "patient/*.rs", "offline_access"],
    );
    let (_, tokens) = exchange(&server, &code, verifier.secret());
    let introspect = |token: &str| {
        let response = http()
            .post(format!("{}/auth/introspect", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .basic_auth("resource-server", Some("a secret of the resource server"))
            .body(format!("token={token}"))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json::<Value>().unwrap()
    };
    let access = introspect(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["active"], true);
    assert_eq!(access["client_id"], "growth");
    assert_eq!(access["sub"], "alice");
    assert_eq!(access["patient"], json!(patient));
    assert_eq!(access["fhirUser"], json!(format!("Patient/{patient}")));
    let refresh = introspect(tokens["refresh_token"].as_str().unwrap());
    assert_eq!(refresh["active"], true, "{refresh}");
    assert_eq!(refresh["client_id"], "growth");
    assert_eq!(
        refresh["scope"],
        "launch/patient patient/*.rs offline_access"
    );
    assert_eq!(introspect("not-a-token"), json!({"active": false}));
}
