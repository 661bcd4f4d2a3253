//! The authorization code flow (RFC 6749 §4.1 with PKCE, RFC 7636, as SMART
//! App Launch 2.2 profiles it), free of HTTP: checking an authorization
//! request, signing a person in, turning what they approve into a code,
//! and exchanging codes and refresh tokens for tokens.
//!
//! Between the pages an authorization request travels as a ticket (a JWT
//! Hearth signs, bound to the browser's CSRF cookie), so any node serves
//! any step; codes and refresh tokens are in the store, by their SHA-256.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{self, Client};
use crate::oauth::{AuthServer, OAuthError, Params, Registry};
use crate::scope::{Level, Scope, Scopes};
use crate::token::TokenRequest;
use crate::user::User;

/// How long a code may wait for its exchange.
pub const CODE_SECS: i64 = 60;
/// How long a person has for the pages of one authorization.
pub const TICKET_SECS: i64 = 600;
/// An app's access token lives an hour at most.
pub const ACCESS_SECS: i64 = 3600;
/// A refresh token of `offline_access`: 90 days; of `online_access`: 8 hours.
pub const OFFLINE_SECS: i64 = 90 * 86_400;
pub const ONLINE_SECS: i64 = 8 * 3600;
/// Failed sign-ins allowed per account, and per address, in a window.
const ACCOUNT_FAILURES: u32 = 5;
const ADDRESS_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long an EHR launch may wait for the app's authorization request.
pub const LAUNCH_SECS: i64 = 300;

/// The context an EHR opens an app with (SMART App Launch 2.2, "Launch
/// context arrives with your access_token"), for one app.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchContext {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(default, rename = "fhirContext", skip_serializing_if = "Vec::is_empty")]
    pub fhir_context: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_patient_banner: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_style_url: Option<String>,
}

/// An authorization request that passed every check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: String,
    pub code_challenge: String,
    /// An EHR launch's context (taken from the store, so used once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchContext>,
    /// OpenID Connect's `nonce`, echoed in the id_token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The patient a practitioner chose in a standalone launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
}

impl AuthRequest {
    /// Whether `user` must choose a patient before approving: a standalone
    /// launch asks for `launch/patient` and the user is not a patient.
    pub fn needs_patient(&self, user: &User) -> bool {
        user.patient().is_none()
            && self.patient.is_none()
            && self.launch.as_ref().is_none_or(|l| l.patient.is_none())
            && Scopes::parse_strict(&self.scope)
                .unwrap_or_default()
                .contains(&Scope::LaunchContext("patient".into()))
    }
}

/// Why an authorization request gets no code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client or its redirect URI cannot be trusted: said on a page,
    /// never redirected (RFC 6749 §4.1.2.1).
    Page(String),
    /// Sent back to the app's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl Refusal {
    /// The redirect's `Location`, for a refusal sent back to the app.
    pub fn location(&self) -> Option<String> {
        match self {
            Refusal::Page(_) => None,
            Refusal::Redirect {
                redirect_uri,
                state,
                error,
                description,
            } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("error", error);
                query.append_pair("error_description", description);
                if let Some(state) = state {
                    query.append_pair("state", state);
                }
                Some(with_query(redirect_uri, &query.finish()))
            }
        }
    }
}

/// Keeps `context` as a new EHR launch for Hearth at `base`: its `launch`
/// value, and the app's launch URL (`{launch_uri}?iss=…&launch=…`) when it
/// registered one.
pub fn launch(
    base: &str,
    registry: &dyn Registry,
    context: LaunchContext,
    now: i64,
) -> Result<(String, Option<String>), OAuthError> {
    let app = registry
        .client(&context.client_id)
        .map_err(OAuthError::Unavailable)?
        .ok_or_else(|| {
            OAuthError::InvalidRequest(format!("no app {} is registered", context.client_id))
        })?;
    let ids = [&context.patient, &context.encounter];
    if ids
        .iter()
        .any(|id| id.as_deref().is_some_and(|id| !crate::is_fhir_id(id)))
    {
        return Err(OAuthError::InvalidRequest(
            "patient and encounter are FHIR ids".into(),
        ));
    }
    let launch = random_token();
    registry
        .save_launch(
            &hash(&launch),
            &context.client_id,
            &serde_json::to_string(&context).expect("a launch serializes"),
            now + LAUNCH_SECS,
        )
        .map_err(OAuthError::Unavailable)?;
    let url = app.launch_uri.as_ref().map(|uri| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("iss", base.trim_end_matches('/'));
        query.append_pair("launch", &launch);
        with_query(uri, &query.finish())
    });
    Ok((launch, url))
}

/// `uri` with `query` added to its own.
pub fn with_query(uri: &str, query: &str) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

/// What the person approved, kept with a code and then with the refresh
/// tokens it leads to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Approval {
    pub client_id: String,
    pub scope: String,
    pub username: String,
    pub fhir_user: String,
    #[serde(default)]
    pub patient: Option<String>,
    /// An EHR launch's context (its patient is `patient`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchContext>,
    /// The authorization request's OpenID Connect `nonce` (codes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The code's: the exchange must name the same redirect and prove the
    /// challenge.
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub code_challenge: String,
    /// A refresh token family's end (seconds since the epoch).
    #[serde(default)]
    pub refresh_until: i64,
}

/// What a code was found to be, when it is presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// Never used: its approval (the code is now marked used).
    Fresh(String),
    /// Used before: what its first exchange produced, to revoke.
    Reused(Option<String>),
    Unknown,
}

/// What a refresh token was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Current: its family and approval (it is now rotated out).
    Fresh {
        family: String,
        approval: String,
    },
    /// Rotated out already, or revoked: its family.
    Stale {
        family: String,
    },
    Unknown,
}

/// Failed sign-ins by account and by address.
#[derive(Default)]
pub(crate) struct Attempts(Mutex<HashMap<String, (u32, Instant)>>);

impl Attempts {
    fn blocked(&self, key: &str, limit: u32) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .is_some_and(|(n, since)| *n >= limit && since.elapsed() < FAILURE_WINDOW)
    }

    fn fail(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn clear(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Why a sign-in failed: said on the sign-in page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("The username or password is not right.")]
    Wrong,
    #[error("Too many failed sign-ins. Wait 15 minutes and try again.")]
    TooMany,
    #[error("{0}")]
    Unavailable(String),
}

/// The SHA-256 of `text`, base64url: how codes, refresh tokens and CSRF
/// cookies are kept and compared.
pub fn hash(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(crate::digest(text.as_bytes()))
}

/// 32 random bytes, base64url: a code, a refresh token, a CSRF cookie.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random number generator works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE code verifier or challenge: 43 to 128 unreserved characters.
fn pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl AuthServer {
    /// Checks an authorization request (`GET` query or `POST` form).
    pub fn authorization_request(
        &self,
        registry: &dyn Registry,
        params: &Params,
        now: i64,
    ) -> Result<(AuthRequest, Client), Refusal> {
        let client_id = params
            .get("client_id")
            .ok_or_else(|| Refusal::Page("The request names no app (client_id).".into()))?;
        let client = registry
            .client(client_id)
            .map_err(|_| Refusal::Page("The server cannot look the app up now; try again.".into()))?
            .ok_or_else(|| Refusal::Page("The app is not registered with this server.".into()))?;
        let redirect_uri = params.get("redirect_uri").ok_or_else(|| {
            Refusal::Page("The request names no redirect URI (redirect_uri).".into())
        })?;
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Err(Refusal::Page(
                "The redirect URI is not one registered for this app.".into(),
            ));
        }
        let state = params.get("state");
        let refuse = |error: &'static str, description: &str| Refusal::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.map(str::to_owned),
            error,
            description: description.to_owned(),
        };
        if params.get("response_type") != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        let state = state.ok_or_else(|| refuse("invalid_request", "state is required"))?;
        if params.get("aud").map(|a| a.trim_end_matches('/')) != Some(self.base()) {
            return Err(refuse(
                "invalid_request",
                "aud must be this server's FHIR base URL",
            ));
        }
        if params.get("code_challenge_method") != Some("S256") {
            return Err(refuse(
                "invalid_request",
                "PKCE is required with code_challenge_method S256",
            ));
        }
        let challenge = params
            .get("code_challenge")
            .filter(|c| pkce_text(c))
            .ok_or_else(|| refuse("invalid_request", "code_challenge is missing or malformed"))?;
        if params.get("request").is_some() || params.get("request_uri").is_some() {
            return Err(refuse(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        let scope_text = params.get("scope").unwrap_or_default();
        let scopes = Scopes::parse_strict(scope_text)
            .map_err(|e| refuse("invalid_scope", &e.to_string()))?;
        if scopes.is_empty() {
            return Err(refuse("invalid_scope", "scope is required"));
        }
        let launch = match (params.get("launch"), scopes.contains(&Scope::Launch)) {
            (None, false) => None,
            (Some(_), false) => {
                return Err(refuse(
                    "invalid_scope",
                    "an EHR launch asks for the launch scope",
                ))
            }
            (None, true) => {
                return Err(refuse(
                    "invalid_request",
                    "the launch scope is for an EHR launch, which gives a launch parameter",
                ))
            }
            (Some(value), true) => {
                let taken = registry
                    .take_launch(&hash(value), &client.id, now)
                    .map_err(|_| {
                        refuse("temporarily_unavailable", "the launch cannot be read now")
                    })?;
                let context = taken
                    .and_then(|doc| serde_json::from_str::<LaunchContext>(&doc).ok())
                    .filter(|c| c.client_id == client.id)
                    .ok_or_else(|| {
                        refuse(
                            "invalid_request",
                            "the launch is not valid for this app, has expired or was used",
                        )
                    })?;
                Some(context)
            }
        };
        for scope in scopes.iter() {
            let unsupported = match scope {
                Scope::Resource(r) => r.level == Level::System,
                Scope::Launch => false,
                Scope::LaunchContext(c) => c != "patient" && launch.is_none(),
                _ => false,
            };
            if unsupported {
                return Err(refuse(
                    "invalid_scope",
                    &format!("scope '{scope}' is not available through this authorization"),
                ));
            }
            if let Scope::Resource(r) = scope {
                if !r.filter.is_empty() {
                    registry
                        .check_filter(r)
                        .map_err(|e| refuse("invalid_scope", &format!("scope '{scope}': {e}")))?;
                }
            }
        }
        if let Some(outside) = scopes.first_outside(&client.allowed_scopes()) {
            return Err(refuse(
                "invalid_scope",
                &format!("scope '{outside}' is not allowed to this app"),
            ));
        }
        Ok((
            AuthRequest {
                client_id: client.id.clone(),
                redirect_uri: redirect_uri.to_owned(),
                scope: scopes.to_string(),
                state: state.to_owned(),
                code_challenge: challenge.to_owned(),
                launch,
                nonce: params.get("nonce").map(|n| n.chars().take(512).collect()),
                patient: None,
            },
            client,
        ))
    }

    /// A ticket carrying `request` (and after sign-in, the user) to the
    /// next page, bound to the browser's CSRF cookie.
    pub fn ticket(
        &self,
        request: &AuthRequest,
        username: Option<&str>,
        csrf_cookie: &str,
        now: i64,
    ) -> String {
        let mut claims = serde_json::Map::new();
        claims.insert("request".into(), json!(request));
        claims.insert("csrf".into(), json!(hash(csrf_cookie)));
        if let Some(name) = username {
            claims.insert("username".into(), json!(name));
        }
        self.signer()
            .map(|s| s.ticket(claims, &self.endpoint("authorize"), TICKET_SECS, now))
            .unwrap_or_default()
    }

    /// The request and user a ticket carries, if Hearth signed it, it has
    /// not expired, and the CSRF cookie and form field are its own.
    pub fn read_ticket(
        &self,
        ticket: &str,
        csrf_cookie: Option<&str>,
        csrf_field: Option<&str>,
        now: i64,
    ) -> Result<(AuthRequest, Option<String>), String> {
        let (Some(cookie), Some(field)) = (csrf_cookie, csrf_field) else {
            return Err("The form is missing its security token; start again from the app.".into());
        };
        if !constant_time_eq(cookie, field) {
            return Err(
                "The form's security token does not match; start again from the app.".into(),
            );
        }
        let claims = self
            .verifier()
            .verify_ticket(ticket, &self.endpoint("authorize"), now)
            .map_err(|_| {
                "This sign-in has expired or is not valid; start again from the app.".to_owned()
            })?;
        if claims
            .get("csrf")
            .and_then(Value::as_str)
            .is_none_or(|c| !constant_time_eq(c, &hash(cookie)))
        {
            return Err(
                "The form's security token does not match; start again from the app.".into(),
            );
        }
        let request: AuthRequest =
            serde_json::from_value(claims.get("request").cloned().unwrap_or_default())
                .map_err(|_| "The sign-in is not valid; start again from the app.".to_owned())?;
        let username = claims
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((request, username))
    }

    /// Checks a person's password, `address` their IP address: at most 5
    /// failures per account and 20 per address in 15 minutes.
    pub fn sign_in(
        &self,
        registry: &dyn Registry,
        username: &str,
        password: &str,
        address: &str,
    ) -> Result<User, SignInError> {
        let (account, from) = (format!("user:{username}"), format!("addr:{address}"));
        if self.attempts.blocked(&account, ACCOUNT_FAILURES)
            || self.attempts.blocked(&from, ADDRESS_FAILURES)
        {
            return Err(SignInError::TooMany);
        }
        let user = registry.user(username).map_err(SignInError::Unavailable)?;
        let matches = match &user {
            Some(user) => client::verify_secret(&user.password_hash, password),
            None => {
                // As long as for a known user: no probing for names.
                client::verify_secret(client::dummy_hash(), password);
                false
            }
        };
        match user {
            Some(user) if matches => {
                self.attempts.clear(&account);
                Ok(user)
            }
            _ => {
                self.attempts.fail(&account);
                self.attempts.fail(&from);
                Err(SignInError::Wrong)
            }
        }
    }

    /// The person approved `granted` (within what was asked): a code for
    /// the app, and where to send the browser with it.
    pub fn approve(
        &self,
        registry: &dyn Registry,
        request: &AuthRequest,
        user: &User,
        granted: &Scopes,
        now: i64,
    ) -> Result<String, Refusal> {
        let refuse = |error: &'static str, description: &str| Refusal::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: Some(request.state.clone()),
            error,
            description: description.to_owned(),
        };
        let asked = Scopes::parse_strict(&request.scope).unwrap_or_default();
        if granted.is_empty() {
            return Err(refuse("access_denied", "nothing was approved"));
        }
        if let Some(outside) = granted.first_outside(&asked) {
            return Err(refuse(
                "invalid_scope",
                &format!("scope '{outside}' was not asked for"),
            ));
        }
        let patient = match &request.launch {
            Some(launch) if launch.patient.is_some() => launch.patient.clone(),
            _ => user
                .patient()
                .map(str::to_owned)
                .or_else(|| request.patient.clone()),
        };
        let needs_patient = granted.contains(&Scope::LaunchContext("patient".into()))
            || granted.resource_scopes().any(|s| s.level == Level::Patient);
        if needs_patient && patient.is_none() {
            return Err(refuse(
                "invalid_scope",
                "patient/ scopes need a patient in context: ask for launch/patient to choose one",
            ));
        }
        for scope in granted.resource_scopes().filter(|s| !s.filter.is_empty()) {
            registry
                .check_filter(scope)
                .map_err(|e| refuse("invalid_scope", &e))?;
        }
        let approval = Approval {
            client_id: request.client_id.clone(),
            scope: granted.to_string(),
            username: user.username.clone(),
            fhir_user: user.fhir_user.clone(),
            patient,
            launch: request.launch.clone(),
            nonce: request.nonce.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            refresh_until: 0,
        };
        let code = random_token();
        registry
            .save_code(
                &hash(&code),
                &serde_json::to_string(&approval).expect("an approval serializes"),
                now + CODE_SECS,
            )
            .map_err(|_| {
                refuse(
                    "temporarily_unavailable",
                    "the server cannot keep the code now",
                )
            })?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("code", &code);
        query.append_pair("state", &request.state);
        Ok(with_query(&request.redirect_uri, &query.finish()))
    }

    /// `POST /auth/launch`: an EHR client (registered with `--launches`)
    /// creates the launch an app is opened with; answers the `launch`
    /// value, and the app's launch URL when it registered one.
    pub fn create_launch(
        &self,
        registry: &dyn Registry,
        params: &Params,
        basic: Option<&crate::oauth::Basic>,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let ehr = self.authenticate(registry, params, basic, now)?;
        if !ehr.launches || !ehr.credentials.is_confidential() {
            return Err(OAuthError::UnauthorizedClient(format!(
                "client {} may not create launches",
                ehr.id
            )));
        }
        let fhir_context = match params.get("fhirContext") {
            None => Vec::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) if items.iter().all(Value::is_object) => items,
                _ => {
                    return Err(OAuthError::InvalidRequest(
                        "fhirContext must be a JSON array of objects".into(),
                    ))
                }
            },
        };
        let need_patient_banner = match params.get("need_patient_banner") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                return Err(OAuthError::InvalidRequest(
                    "need_patient_banner is true or false".into(),
                ))
            }
        };
        let context = LaunchContext {
            client_id: params
                .get("app")
                .ok_or_else(|| {
                    OAuthError::InvalidRequest("app (the app's client id) is missing".into())
                })?
                .to_owned(),
            patient: params.get("patient").map(str::to_owned),
            encounter: params.get("encounter").map(str::to_owned),
            fhir_context,
            intent: params.get("intent").map(str::to_owned),
            need_patient_banner,
            smart_style_url: params.get("smart_style_url").map(str::to_owned),
        };
        let (launch, url) = launch(self.base(), registry, context, now)?;
        let mut answer = json!({"launch": launch, "expires_in": LAUNCH_SECS});
        if let Some(url) = url {
            answer["launch_url"] = json!(url);
        }
        Ok(answer)
    }

    /// The person said no.
    pub fn deny(&self, request: &AuthRequest) -> String {
        Refusal::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: Some(request.state.clone()),
            error: "access_denied",
            description: "the person did not approve the request".into(),
        }
        .location()
        .expect("a redirect")
    }

    /// `grant_type=authorization_code`.
    pub(crate) fn exchange_code(
        &self,
        registry: &dyn Registry,
        client: &Client,
        params: &Params,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let code = params
            .get("code")
            .ok_or_else(|| OAuthError::InvalidRequest("the parameter code is missing".into()))?;
        let verifier = params
            .get("code_verifier")
            .ok_or_else(|| OAuthError::InvalidRequest("code_verifier is required (PKCE)".into()))?;
        let code_hash = hash(code);
        let invalid = |why: &str| OAuthError::InvalidGrant(why.to_owned());
        let approval = match registry
            .take_code(&code_hash, now)
            .map_err(OAuthError::Unavailable)?
        {
            CodeUse::Fresh(document) => serde_json::from_str::<Approval>(&document)
                .map_err(|_| invalid("the code is not valid"))?,
            CodeUse::Reused(issued) => {
                // A code seen twice was stolen or replayed: what it gave is
                // taken back (RFC 6749 §4.1.2).
                if let Some(issued) = issued {
                    self.revoke_issued(registry, &issued);
                }
                return Err(invalid(
                    "the code was used already; what it issued is revoked",
                ));
            }
            CodeUse::Unknown => return Err(invalid("the code is not valid or has expired")),
        };
        if approval.client_id != client.id {
            return Err(invalid("the code was issued to another client"));
        }
        if params.get("redirect_uri") != Some(approval.redirect_uri.as_str()) {
            return Err(invalid(
                "redirect_uri is not the one the code was issued for",
            ));
        }
        if !pkce_text(verifier)
            || !constant_time_eq(
                &URL_SAFE_NO_PAD.encode(crate::digest(verifier.as_bytes())),
                &approval.code_challenge,
            )
        {
            return Err(invalid("code_verifier does not match the code_challenge"));
        }
        let (body, issued) = self.issue_for(registry, approval, None, now)?;
        registry
            .code_issued(&code_hash, &issued)
            .map_err(OAuthError::Unavailable)?;
        Ok(body)
    }

    /// `grant_type=refresh_token`: a new access token and the next refresh
    /// token of the family; a rotated-out token revokes the family.
    pub(crate) fn exchange_refresh(
        &self,
        registry: &dyn Registry,
        client: &Client,
        params: &Params,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let token = params.get("refresh_token").ok_or_else(|| {
            OAuthError::InvalidRequest("the parameter refresh_token is missing".into())
        })?;
        let invalid = |why: &str| OAuthError::InvalidGrant(why.to_owned());
        let (family, approval) = match registry
            .use_refresh(&hash(token), now)
            .map_err(OAuthError::Unavailable)?
        {
            RefreshUse::Fresh { family, approval } => (
                family,
                serde_json::from_str::<Approval>(&approval)
                    .map_err(|_| invalid("the refresh token is not valid"))?,
            ),
            RefreshUse::Stale { family } => {
                registry
                    .revoke_family(&family)
                    .map_err(OAuthError::Unavailable)?;
                return Err(invalid(
                    "the refresh token was used already; its family is revoked",
                ));
            }
            RefreshUse::Unknown => {
                return Err(invalid("the refresh token is not valid or has expired"))
            }
        };
        if approval.client_id != client.id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        let mut approval = approval;
        if let Some(asked) = params.get("scope") {
            let asked =
                Scopes::parse_strict(asked).map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
            let granted = Scopes::parse_strict(&approval.scope).unwrap_or_default();
            if let Some(outside) = asked.first_outside(&granted) {
                return Err(OAuthError::InvalidScope(format!(
                    "scope '{outside}' was not granted to this refresh token"
                )));
            }
            approval.scope = asked.to_string();
        }
        Ok(self.issue_for(registry, approval, Some(family), now)?.0)
    }

    /// The token response for an approval; `issued` names the access token
    /// and refresh family, for revoking them.
    fn issue_for(
        &self,
        registry: &dyn Registry,
        approval: Approval,
        family: Option<String>,
        now: i64,
    ) -> Result<(Value, String), OAuthError> {
        let scopes = Scopes::parse_strict(&approval.scope).unwrap_or_default();
        let request = TokenRequest {
            scopes: scopes.clone(),
            subject: Some(approval.username.clone()),
            client_id: Some(approval.client_id.clone()),
            patient: approval.patient.clone(),
            encounter: approval.launch.as_ref().and_then(|l| l.encounter.clone()),
            fhir_user: Some(approval.fhir_user.clone()),
            lifetime_secs: ACCESS_SECS,
        };
        let signer = self
            .signer()
            .ok_or_else(|| OAuthError::Unavailable("the server has no signing key".into()))?;
        let (access_token, claims) = signer.issue(&request, now);
        let mut body = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": claims.exp - claims.iat,
            "scope": claims.scope,
        });
        if let Some(patient) = &approval.patient {
            body["patient"] = json!(patient);
            body["need_patient_banner"] = json!(true);
        }
        if let Some(launch) = &approval.launch {
            if let Some(encounter) = &launch.encounter {
                body["encounter"] = json!(encounter);
            }
            if !launch.fhir_context.is_empty() {
                body["fhirContext"] = json!(launch.fhir_context);
            }
            if let Some(intent) = &launch.intent {
                body["intent"] = json!(intent);
            }
            if let Some(banner) = launch.need_patient_banner {
                body["need_patient_banner"] = json!(banner);
            }
            if let Some(style) = &launch.smart_style_url {
                body["smart_style_url"] = json!(style);
            }
        }
        if scopes.contains(&Scope::OpenId) {
            body["id_token"] = json!(self.id_token(registry, &approval, &scopes, now)?);
        }
        let revocation = format!("{}|{}", self.base(), claims.jti);
        let mut issued = json!({"access": revocation, "access_exp": claims.exp});
        let lifetime = if scopes.contains(&Scope::OfflineAccess) {
            Some(OFFLINE_SECS)
        } else if scopes.contains(&Scope::OnlineAccess) {
            Some(ONLINE_SECS)
        } else {
            None
        };
        if let Some(lifetime) = lifetime {
            let family = family.unwrap_or_else(random_token);
            let mut kept = approval.clone();
            if kept.refresh_until == 0 {
                kept.refresh_until = now + lifetime;
            }
            let refresh = random_token();
            registry
                .save_refresh(
                    &hash(&refresh),
                    &family,
                    &serde_json::to_string(&kept).expect("an approval serializes"),
                    kept.refresh_until,
                )
                .map_err(OAuthError::Unavailable)?;
            body["refresh_token"] = json!(refresh);
            issued["family"] = json!(family);
        }
        Ok((body, issued.to_string()))
    }

    /// An OpenID Connect id_token (RS256) for the person who approved:
    /// `sub` their username, `aud` the app, and with `fhirUser` (or
    /// `profile`) granted, `fhirUser` as an absolute URL.
    fn id_token(
        &self,
        registry: &dyn Registry,
        approval: &Approval,
        scopes: &Scopes,
        now: i64,
    ) -> Result<String, OAuthError> {
        let key = self.id_key(registry)?;
        let mut claims = json!({
            "iss": self.base(),
            "sub": approval.username,
            "aud": approval.client_id,
            "iat": now,
            "exp": now + ACCESS_SECS,
        });
        if scopes.contains(&Scope::FhirUser) || scopes.contains(&Scope::Profile) {
            claims["fhirUser"] = json!(format!("{}/{}", self.base(), approval.fhir_user));
        }
        if let Some(nonce) = &approval.nonce {
            claims["nonce"] = json!(nonce);
        }
        Ok(key.sign(&claims))
    }

    /// Revokes what a code's exchange issued.
    fn revoke_issued(&self, registry: &dyn Registry, issued: &str) {
        let Ok(issued) = serde_json::from_str::<Value>(issued) else {
            return;
        };
        if let (Some(id), Some(exp)) = (issued["access"].as_str(), issued["access_exp"].as_i64()) {
            if registry.revoke(id, exp).is_ok() {
                self.verifier().revoke_now(id);
            }
        }
        if let Some(family) = issued["family"].as_str() {
            let _ = registry.revoke_family(family);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_and_redirects_are_read_exactly() {
        assert!(pkce_text(&"a".repeat(43)));
        assert!(!pkce_text(&"a".repeat(42)));
        assert!(!pkce_text(&format!("{}+", "a".repeat(43))));
        assert_eq!(
            with_query("https://a.example/cb", "x=1"),
            "https://a.example/cb?x=1"
        );
        assert_eq!(
            with_query("https://a.example/cb?k=v", "x=1"),
            "https://a.example/cb?k=v&x=1"
        );
        let refusal = Refusal::Redirect {
            redirect_uri: "https://a.example/cb".into(),
            state: Some("s t".into()),
            error: "invalid_scope",
            description: "no".into(),
        };
        assert_eq!(
            refusal.location().unwrap(),
            "https://a.example/cb?error=invalid_scope&error_description=no&state=s+t"
        );
        assert!(
            constant_time_eq("abc", "abc")
                && !constant_time_eq("abc", "abd")
                && !constant_time_eq("a", "ab")
        );
    }

    #[test]
    fn failed_sign_ins_are_limited() {
        let attempts = Attempts::default();
        for _ in 0..ACCOUNT_FAILURES {
            assert!(!attempts.blocked("user:a", ACCOUNT_FAILURES));
            attempts.fail("user:a");
        }
        assert!(attempts.blocked("user:a", ACCOUNT_FAILURES));
        assert!(!attempts.blocked("user:b", ACCOUNT_FAILURES));
        attempts.clear("user:a");
        assert!(!attempts.blocked("user:a", ACCOUNT_FAILURES));
    }
}
