//! Hearth's OAuth 2.0 authorization server, free of HTTP: the token
//! endpoint (RFC 6749 §3.2, SMART Backend Services' `client_credentials`
//! with `private_key_jwt`), introspection (RFC 7662) and revocation
//! (RFC 7009). `hearth-http` hands it a request's form parameters and its
//! Basic credentials and renders what it answers; the clients and used
//! assertions are in the [`Registry`] (the store).

use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::assertion::{self, AssertionError, Expected};
use crate::authorize::{Approval, Attempts, CodeUse, RefreshUse};
use crate::client::{self, Client, Credentials};
use crate::jwks::RemoteKeySets;
use crate::keys::{IdTokenKey, SigningKey};
use crate::scope::{Level, ResourceScope, Scope, Scopes};
use crate::token::{Signer, TokenRequest, Verifier};

/// The longest a backend service's access token lives (SMART Backend
/// Services recommends five minutes).
pub const BACKEND_TOKEN_SECS: i64 = 300;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Where the authorization server keeps what it needs: the store.
pub trait Registry {
    fn client(&self, id: &str) -> Result<Option<Client>, String>;
    /// Records an assertion's `jti`; `Ok(false)` when it was used before.
    fn use_assertion(&self, client_id: &str, jti: &str, expires_at: i64) -> Result<bool, String>;
    /// Checks that a granular scope's search is one the server can run.
    fn check_filter(&self, scope: &ResourceScope) -> Result<(), String>;
    /// Revokes the token named `id` until `expires_at`.
    fn revoke(&self, id: &str, expires_at: i64) -> Result<(), String>;
    fn user(&self, username: &str) -> Result<Option<crate::user::User>, String>;
    /// Keeps a code (by its hash) with its approval until `expires_at`.
    fn save_code(&self, code_hash: &str, approval: &str, expires_at: i64) -> Result<(), String>;
    /// Marks a code used, answering what it was.
    fn take_code(&self, code_hash: &str, now: i64) -> Result<CodeUse, String>;
    /// Records what a code's exchange issued.
    fn code_issued(&self, code_hash: &str, issued: &str) -> Result<(), String>;
    fn save_refresh(
        &self,
        token_hash: &str,
        family: &str,
        approval: &str,
        expires_at: i64,
    ) -> Result<(), String>;
    /// Rotates a refresh token out, answering what it was.
    fn use_refresh(&self, token_hash: &str, now: i64) -> Result<RefreshUse, String>;
    /// The family and approval of a current refresh token.
    fn refresh_family(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(String, String)>, String>;
    fn revoke_family(&self, family: &str) -> Result<(), String>;
    /// The id_token key, made if there is none.
    fn id_token_key(&self) -> Result<crate::keys::IdTokenKey, String>;
    /// Keeps an EHR launch (by its hash) for `client_id` until `expires_at`.
    fn save_launch(
        &self,
        launch_hash: &str,
        client_id: &str,
        context: &str,
        expires_at: i64,
    ) -> Result<(), String>;
    /// Marks a launch of `client_id` used; its context if it was fresh.
    fn take_launch(
        &self,
        launch_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<String>, String>;
}

/// An error of the token, introspection or revocation endpoint (RFC 6749
/// §5.2): its `error` code and a description that names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    /// The store failed: 503, try again.
    #[error("{0}")]
    Unavailable(String),
}

impl OAuthError {
    /// The RFC 6749 §5.2 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::Unavailable(_) => "temporarily_unavailable",
        }
    }

    /// The HTTP status: 401 for a client that failed to authenticate, 503
    /// when the store failed, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient(_) => 401,
            OAuthError::Unavailable(_) => 503,
            _ => 400,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": self.code(), "error_description": self.to_string()})
    }
}

impl From<AssertionError> for OAuthError {
    fn from(e: AssertionError) -> Self {
        OAuthError::InvalidClient(e.to_string())
    }
}

/// A request's form parameters: each at most once (RFC 6749 §3.2), an
/// empty one as if absent (§3.1).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Result<Params, OAuthError> {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &pairs {
            if !seen.insert(name.as_str()) {
                return Err(OAuthError::InvalidRequest(format!(
                    "the parameter {name} is given more than once"
                )));
            }
        }
        Ok(Params(
            pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("the parameter {name} is missing")))
    }
}

/// HTTP Basic credentials (`client_secret_basic`), already decoded.
#[derive(Clone)]
pub struct Basic {
    pub client_id: String,
    pub secret: String,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Basic {
    /// Reads the value of an `Authorization: Basic` header: base64 of the
    /// form-encoded id and secret, joined by a colon (RFC 6749 §2.3.1).
    pub fn parse(value: &str) -> Result<Basic, OAuthError> {
        use base64::Engine;
        let bad = || OAuthError::InvalidClient("the Basic credentials are not readable".into());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let decode = |s: &str| {
            form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(Basic {
            client_id: decode(id),
            secret: decode(secret),
        })
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

impl Issued {
    pub fn body(&self) -> Value {
        json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        })
    }
}

/// The authorization server of one Hearth node.
pub struct AuthServer {
    /// Hearth's FHIR base URL: the tokens' issuer and audience.
    base: String,
    signer: RwLock<Option<Arc<Signer>>>,
    verifier: Arc<Verifier>,
    key_sets: RemoteKeySets,
    pub(crate) attempts: Attempts,
    /// The published keys: the signing keys' and the id_token key's.
    signing_keys: RwLock<Vec<SigningKey>>,
    id_key: RwLock<Option<Arc<IdTokenKey>>>,
    /// The origins of the registered clients' redirect URIs: browsers there
    /// may call the token endpoint and the API (CORS).
    registered_origins: Arc<RwLock<std::collections::HashSet<String>>>,
}

impl AuthServer {
    pub fn new(base: &str, keys: &[SigningKey], verifier: Arc<Verifier>) -> AuthServer {
        let base = base.trim_end_matches('/').to_owned();
        AuthServer {
            signer: RwLock::new(Signer::new(&base, keys).map(Arc::new)),
            base,
            verifier,
            key_sets: RemoteKeySets::default(),
            attempts: Attempts::default(),
            signing_keys: RwLock::new(keys.to_vec()),
            id_key: RwLock::new(None),
            registered_origins: Default::default(),
        }
    }

    /// The registered clients' origins, shared with the CORS layer.
    pub fn registered_origins(&self) -> Arc<RwLock<std::collections::HashSet<String>>> {
        self.registered_origins.clone()
    }

    /// Makes the origins of `clients`' redirect URIs the registered ones.
    pub fn set_clients(&self, clients: &[Client]) {
        let origins = clients
            .iter()
            .flat_map(|c| &c.redirect_uris)
            .filter_map(|uri| client::origin(uri))
            .collect();
        *self
            .registered_origins
            .write()
            .unwrap_or_else(|e| e.into_inner()) = origins;
    }

    /// The JWKS Hearth publishes (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> Value {
        let keys = self.signing_keys.read().unwrap_or_else(|e| e.into_inner());
        let id_key = self.id_key.read().unwrap_or_else(|e| e.into_inner());
        crate::keys::jwks(&keys, id_key.as_deref())
    }

    /// The id_token key, once made (the binary reads it every 2 s).
    pub fn set_id_key(&self, key: Option<IdTokenKey>) {
        if let Some(key) = key {
            *self.id_key.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(key));
        }
    }

    /// The id_token key: this node's, or the store's (made if needed).
    pub(crate) fn id_key(&self, registry: &dyn Registry) -> Result<Arc<IdTokenKey>, OAuthError> {
        if let Some(key) = self
            .id_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(key);
        }
        let key = Arc::new(registry.id_token_key().map_err(OAuthError::Unavailable)?);
        *self.id_key.write().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
        Ok(key)
    }

    pub(crate) fn signer(&self) -> Option<Arc<Signer>> {
        self.signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs with the newest of `keys` from now on (after a rotation).
    pub fn set_keys(&self, keys: &[SigningKey]) {
        *self.signer.write().unwrap_or_else(|e| e.into_inner()) =
            Signer::new(&self.base, keys).map(Arc::new);
        *self.signing_keys.write().unwrap_or_else(|e| e.into_inner()) = keys.to_vec();
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// An endpoint's absolute URL (`token` → `{base}/auth/token`).
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/auth/{name}", self.base)
    }

    /// The token endpoint: `params` is the form, `basic` the request's
    /// Basic credentials, `now` seconds since the epoch.
    pub fn token(
        &self,
        registry: &dyn Registry,
        params: &Params,
        basic: Option<&Basic>,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let grant_type = params.require("grant_type")?;
        match grant_type {
            "client_credentials" => self
                .client_credentials(registry, params, basic, now)
                .map(|issued| issued.body()),
            "authorization_code" => {
                let client = self.authenticate(registry, params, basic, now)?;
                self.exchange_code(registry, &client, params, now)
            }
            "refresh_token" => {
                let client = self.authenticate(registry, params, basic, now)?;
                self.exchange_refresh(registry, &client, params, now)
            }
            other => Err(OAuthError::UnsupportedGrantType(format!(
                "grant_type {other} is not supported (authorization_code, refresh_token and client_credentials are)"
            ))),
        }
    }

    /// SMART Backend Services: a confidential client's token for `system/`
    /// scopes.
    fn client_credentials(
        &self,
        registry: &dyn Registry,
        params: &Params,
        basic: Option<&Basic>,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let client = self.authenticate(registry, params, basic, now)?;
        if !client.credentials.is_confidential() {
            return Err(OAuthError::UnauthorizedClient(
                "a public client cannot use client_credentials".into(),
            ));
        }
        let asked = params
            .get("scope")
            .ok_or_else(|| OAuthError::InvalidScope("give the scopes wanted (scope)".into()))?;
        let scopes =
            Scopes::parse_strict(asked).map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
        if scopes.is_empty() {
            return Err(OAuthError::InvalidScope(
                "give the scopes wanted (scope)".into(),
            ));
        }
        for scope in scopes.iter() {
            let Scope::Resource(resource) = scope else {
                return Err(OAuthError::InvalidScope(format!(
                    "scope '{scope}' needs a user; a backend service is granted system/ scopes only"
                )));
            };
            if resource.level != Level::System {
                return Err(OAuthError::InvalidScope(format!(
                    "scope '{scope}' needs a user or a patient; a backend service is granted system/ scopes only"
                )));
            }
            if !resource.filter.is_empty() {
                registry
                    .check_filter(resource)
                    .map_err(|e| OAuthError::InvalidScope(format!("scope '{scope}': {e}")))?;
            }
        }
        if let Some(outside) = scopes.first_outside(&client.allowed_scopes()) {
            return Err(OAuthError::InvalidScope(format!(
                "scope '{outside}' is not allowed to client {}",
                client.id
            )));
        }
        let request = TokenRequest {
            scopes,
            subject: Some(client.id.clone()),
            client_id: Some(client.id.clone()),
            lifetime_secs: BACKEND_TOKEN_SECS,
            ..TokenRequest::default()
        };
        let signer = self
            .signer()
            .ok_or_else(|| OAuthError::Unavailable("the server has no signing key".into()))?;
        let (access_token, claims) = signer.issue(&request, now);
        Ok(Issued {
            access_token,
            expires_in: claims.exp - claims.iat,
            scope: claims.scope,
        })
    }

    /// Authenticates the client of a request by the one method it uses
    /// (RFC 6749 §2.3): a JWT assertion, HTTP Basic, a secret in the form,
    /// or for a public client its id alone.
    pub fn authenticate(
        &self,
        registry: &dyn Registry,
        params: &Params,
        basic: Option<&Basic>,
        now: i64,
    ) -> Result<Client, OAuthError> {
        let assertion = params.get("client_assertion");
        let assertion_type = params.get("client_assertion_type");
        let posted_secret = params.get("client_secret");
        let methods = [
            assertion.is_some() || assertion_type.is_some(),
            basic.is_some(),
            posted_secret.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(OAuthError::InvalidRequest(
                "the client authenticates by more than one method".into(),
            ));
        }
        let unknown = || {
            OAuthError::InvalidClient(
                "the client is not known, or its credentials are wrong".into(),
            )
        };
        let lookup = |id: &str| -> Result<Option<Client>, OAuthError> {
            registry.client(id).map_err(OAuthError::Unavailable)
        };
        if assertion.is_some() || assertion_type.is_some() {
            if assertion_type != Some(JWT_BEARER) {
                return Err(OAuthError::InvalidClient(format!(
                    "client_assertion_type must be {JWT_BEARER}"
                )));
            }
            let assertion = params.require("client_assertion")?;
            let claimed = assertion::claimed_client(assertion)?;
            if params.get("client_id").is_some_and(|id| id != claimed) {
                return Err(OAuthError::InvalidClient(
                    "client_id is not the client the assertion names".into(),
                ));
            }
            let client = lookup(&claimed)?.ok_or_else(unknown)?;
            let kid = jsonwebtoken::decode_header(assertion)
                .ok()
                .and_then(|h| h.kid)
                .unwrap_or_default();
            let keys = match &client.credentials {
                Credentials::Jwks { jwks } => client::usable_keys(jwks)
                    .map_err(|e| OAuthError::InvalidClient(e.to_string()))?,
                Credentials::JwksUrl { url } => {
                    let set = self.key_sets.get(url, &kid).map_err(|e| {
                        tracing::warn!(client = %client.id, error = %e, "fetching a client's JWKS failed");
                        OAuthError::InvalidClient(
                            "the client's registered JWKS URL could not be read".into(),
                        )
                    })?;
                    (*set).clone()
                }
                _ => {
                    return Err(OAuthError::InvalidClient(format!(
                        "client {} has no registered keys to sign an assertion with",
                        client.id
                    )))
                }
            };
            let verified = assertion::verify(
                assertion,
                &keys,
                &Expected {
                    client_id: &client.id,
                    token_url: &self.endpoint("token"),
                    jwks_url: client.jwks_url(),
                    now,
                },
            )?;
            if !registry
                .use_assertion(&client.id, &verified.jti, verified.expires_at)
                .map_err(OAuthError::Unavailable)?
            {
                return Err(OAuthError::InvalidClient(
                    "the client assertion was used before (its jti is not new)".into(),
                ));
            }
            return Ok(client);
        }
        let (id, secret) = match (basic, posted_secret) {
            (Some(basic), _) => (basic.client_id.as_str(), Some(basic.secret.as_str())),
            (None, Some(secret)) => (params.require("client_id")?, Some(secret)),
            (None, None) => (params.require("client_id")?, None),
        };
        if params.get("client_id").is_some_and(|posted| posted != id) {
            return Err(OAuthError::InvalidClient(
                "client_id is not the client of the Basic credentials".into(),
            ));
        }
        let client = lookup(id)?;
        match (client, secret) {
            (Some(client), Some(secret)) => match &client.credentials {
                Credentials::Secret { hash } if client::verify_secret(hash, secret) => Ok(client),
                _ => Err(unknown()),
            },
            (None, Some(secret)) => {
                // As long as for a known client: no probing for ids.
                client::verify_secret(client::dummy_hash(), secret);
                Err(unknown())
            }
            (Some(client), None) if matches!(client.credentials, Credentials::None) => Ok(client),
            (Some(client), None) => Err(OAuthError::InvalidClient(format!(
                "client {} is confidential: authenticate it ({})",
                client.id,
                if matches!(client.credentials, Credentials::Secret { .. }) {
                    "client_secret_basic or client_secret_post"
                } else {
                    "private_key_jwt"
                }
            ))),
            (None, None) => Err(unknown()),
        }
    }

    /// RFC 7662: what `params`' `token` is, for a caller that is a
    /// confidential client (`caller_client`) or presents a token of its
    /// own (`caller_token`): any token for a confidential client, the
    /// caller's own client's tokens for a bearer.
    pub fn introspect(
        &self,
        registry: &dyn Registry,
        params: &Params,
        basic: Option<&Basic>,
        caller_token: Option<&str>,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let caller_client = match caller_token {
            Some(token) => {
                let caller = self
                    .verifier
                    .verify(token, now)
                    .map_err(|e| OAuthError::InvalidClient(e.to_string()))?;
                Some(caller.client_id.clone().unwrap_or_default())
            }
            None => {
                let client = self.authenticate(registry, params, basic, now)?;
                if !client.credentials.is_confidential() {
                    return Err(OAuthError::UnauthorizedClient(
                        "only a confidential client may introspect tokens".into(),
                    ));
                }
                None
            }
        };
        let token = params.require("token")?;
        let inactive = json!({"active": false});
        if crate::token::jwt_claims(token).is_none() {
            // Not a JWT: perhaps one of Hearth's refresh tokens.
            let found = registry
                .refresh_family(&crate::authorize::hash(token), now)
                .map_err(OAuthError::Unavailable)?;
            let Some(approval) = found.and_then(|(_, a)| serde_json::from_str::<Approval>(&a).ok())
            else {
                return Ok(inactive);
            };
            if caller_client
                .as_ref()
                .is_some_and(|c| *c != approval.client_id)
            {
                return Ok(inactive);
            }
            let mut answer = json!({
                "active": true,
                "scope": approval.scope,
                "client_id": approval.client_id,
                "token_type": "refresh_token",
                "exp": approval.refresh_until,
                "iss": self.base,
                "sub": approval.username,
                "fhirUser": approval.fhir_user,
            });
            if let Some(patient) = &approval.patient {
                answer["patient"] = json!(patient);
            }
            return Ok(answer);
        }
        let Ok(verified) = self.verifier.verify(token, now) else {
            return Ok(inactive);
        };
        if let Some(caller) = caller_client {
            if verified.client_id.as_deref() != Some(caller.as_str()) || caller.is_empty() {
                return Ok(inactive);
            }
        }
        let mut answer = json!({
            "active": true,
            "scope": verified.scopes.to_string(),
            "token_type": "Bearer",
            "exp": verified.expires_at,
            "iss": verified.issuer,
        });
        for (name, value) in [
            ("client_id", &verified.client_id),
            ("sub", &verified.subject),
            ("fhirUser", &verified.fhir_user),
            ("patient", &verified.patient),
            ("encounter", &verified.encounter),
        ] {
            if let Some(value) = value {
                answer[name] = json!(value);
            }
        }
        Ok(answer)
    }

    /// RFC 7009: revokes `params`' `token` if the authenticated client is
    /// the one it was issued to. A token that is not valid, or not one of
    /// Hearth's, needs no revoking (the answer is the same 200).
    pub fn revoke(
        &self,
        registry: &dyn Registry,
        params: &Params,
        basic: Option<&Basic>,
        now: i64,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate(registry, params, basic, now)?;
        let token = params.require("token")?;
        if let Some(hint) = params.get("token_type_hint") {
            if !matches!(hint, "access_token" | "refresh_token") {
                return Err(OAuthError::InvalidRequest(format!(
                    "token_type_hint {hint} is not access_token or refresh_token"
                )));
            }
        }
        if crate::token::jwt_claims(token).is_none() {
            // Not a JWT: perhaps one of Hearth's refresh tokens.
            let found = registry
                .refresh_family(&crate::authorize::hash(token), now)
                .map_err(OAuthError::Unavailable)?;
            if let Some((family, approval)) = found {
                let approval: Option<Approval> = serde_json::from_str(&approval).ok();
                if approval.is_none_or(|a| a.client_id != client.id) {
                    return Err(OAuthError::UnauthorizedClient(
                        "the token was not issued to this client".into(),
                    ));
                }
                registry
                    .revoke_family(&family)
                    .map_err(OAuthError::Unavailable)?;
            }
            return Ok(());
        }
        let Ok(verified) = self.verifier.verify(token, now) else {
            return Ok(());
        };
        if verified.issuer != self.base {
            return Ok(());
        }
        if verified.client_id.as_deref() != Some(client.id.as_str()) {
            return Err(OAuthError::UnauthorizedClient(
                "the token was not issued to this client".into(),
            ));
        }
        registry
            .revoke(&verified.revocation_id, verified.expires_at)
            .map_err(OAuthError::Unavailable)?;
        // Refused here at once; the other nodes read the list within 2 s.
        self.verifier.revoke_now(&verified.revocation_id);
        Ok(())
    }
}
