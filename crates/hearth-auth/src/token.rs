//! Bearer access tokens: JWTs signed by Hearth's own keys ([`crate::keys`])
//! or by a configured external issuer (Keycloak, Entra ID, …), verified
//! without a database round trip. A verified token is remembered by its
//! SHA-256 until it expires, so a client's later requests cost a hash and
//! a lookup rather than a signature check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{SigningKey, ALGORITHM};
use crate::principal::Principal;
use crate::scope::{ScopeError, Scopes};

/// The longest an access token Hearth issues may live.
pub const MAX_LIFETIME_SECS: i64 = 3600;
/// The `typ` of a ticket: a JWT by which the authorization server's pages
/// carry an authorization request from one form to the next (never an
/// access token: its `aud` is the authorization endpoint, and its type is
/// refused as a bearer token).
pub const TICKET_TYPE: &str = "hearth-ticket+jwt";
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub(crate) const LEEWAY_SECS: u64 = 30;
/// Verified tokens remembered at most; the memory is emptied when full.
const CACHE_ENTRIES: usize = 100_000;
/// The longest a token may be: a header that big is no token of ours.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a bearer token is refused: each is a 401 with
/// `error="invalid_token"`. The texts name no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is not a JWT")]
    Malformed,
    #[error("the access token's signature algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("the access token's issuer is not trusted")]
    UnknownIssuer,
    #[error("the access token names a key its issuer does not publish")]
    UnknownKey,
    #[error("the access token's signature is invalid")]
    Signature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token is for another audience")]
    Audience,
    #[error("the access token {0}")]
    Claims(String),
    #[error("the access token's {0}")]
    Scope(ScopeError),
    #[error("the access token has been revoked")]
    Revoked,
}

/// The claims of an access token Hearth issues (SMART App Launch 2.2's
/// launch context, as claims).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// An issuer whose tokens Hearth trusts besides its own.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// Where its public keys are published (a JWKS).
    pub jwks_url: String,
    /// The `aud` its tokens must carry; Hearth's base URL when absent.
    #[serde(default)]
    pub audience: Option<String>,
    /// The signature algorithms accepted from it (RS256 when absent).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Claim names, for issuers that do not use SMART's.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    #[serde(default = "default_patient_claim")]
    pub patient_claim: String,
    #[serde(default = "default_fhir_user_claim")]
    pub fhir_user_claim: String,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_scope_claim() -> String {
    "scope".into()
}
fn default_patient_claim() -> String {
    "patient".into()
}
fn default_fhir_user_claim() -> String {
    "fhirUser".into()
}

/// The asymmetric algorithms an external issuer may be configured with.
/// HMAC is never accepted: its key would have to be shared.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "PS256" => Some(Algorithm::PS256),
        "PS384" => Some(Algorithm::PS384),
        "PS512" => Some(Algorithm::PS512),
        "ES256" => Some(Algorithm::ES256),
        "ES384" => Some(Algorithm::ES384),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

struct External {
    config: ExternalIssuer,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    /// When the keys were last fetched, and when they should be again.
    fetched: Mutex<Option<(Instant, Duration)>>,
}

/// A verified token: its principal, and what the request may do, worked
/// out once per token (and remembered with it).
#[derive(Debug)]
pub struct Verified {
    pub principal: Principal,
    pub grant: Arc<crate::Grant>,
    /// `Principal::owner`.
    pub owner: Arc<str>,
    /// What revoking the token names it by ([`revocation_of`]).
    pub revocation_id: String,
}

impl std::ops::Deref for Verified {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl Verified {
    fn of(principal: Principal, digest: &[u8; 32]) -> Verified {
        Verified {
            grant: Arc::new(crate::Grant::of(&principal)),
            owner: principal.owner().into(),
            revocation_id: revocation_id(&principal.issuer, principal.token_id.as_deref(), digest),
            principal,
        }
    }
}

/// A token's name in the revocation list: `issuer|jti`, or, for a token
/// without a `jti`, the hex SHA-256 of the token.
fn revocation_id(issuer: &str, jti: Option<&str>, digest: &[u8; 32]) -> String {
    match jti {
        Some(jti) => format!("{}|{jti}", issuer.trim_end_matches('/')),
        None => digest.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The name a token is revoked by, and when it expires (seconds since the
/// epoch; a day from `now` for a token without `exp`), read without
/// verifying it: revoking a token that was never valid changes nothing.
pub fn revocation_of(token: &str, now: i64) -> Result<(String, i64), TokenError> {
    let claims = unverified_claims(token)?;
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| TokenError::Claims("has no issuer (iss)".into()))?;
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(now + 86_400);
    let id = revocation_id(
        issuer,
        claims.get("jti").and_then(Value::as_str),
        &crate::digest(token.as_bytes()),
    );
    Ok((id, expires_at))
}

/// Verifies bearer tokens. One per server, shared by its workers.
pub struct Verifier {
    /// Hearth's base URL: the issuer of its own tokens and their audience.
    base: String,
    own: RwLock<HashMap<String, DecodingKey>>,
    external: Vec<External>,
    cache: Mutex<HashMap<[u8; 32], Arc<Verified>>>,
    /// The revoked tokens' [`Verified::revocation_id`]s.
    revoked: RwLock<std::collections::HashSet<String>>,
    http: Option<reqwest::blocking::Client>,
}

impl Verifier {
    /// A verifier of Hearth's own tokens (signed by `keys`) and those of
    /// `external` issuers. Fails on an issuer with no acceptable algorithm.
    pub fn new(
        base: &str,
        keys: &[SigningKey],
        external: Vec<ExternalIssuer>,
    ) -> Result<Verifier, String> {
        let base = base.trim_end_matches('/').to_owned();
        let external = external
            .into_iter()
            .map(|config| {
                let algorithms = config
                    .algorithms
                    .iter()
                    .map(|a| {
                        parse_algorithm(a).ok_or_else(|| {
                            format!("issuer {}: algorithm {a} is not accepted (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)", config.issuer)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if algorithms.is_empty() {
                    return Err(format!("issuer {}: no algorithms", config.issuer));
                }
                if config.issuer.trim_end_matches('/') == base {
                    return Err(format!("issuer {} is Hearth itself", config.issuer));
                }
                Ok(External {
                    audience: config.audience.clone().unwrap_or_else(|| base.clone()),
                    algorithms,
                    config,
                    keys: RwLock::new(HashMap::new()),
                    fetched: Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let http = (!external.is_empty()).then(crate::jwks::http_client);
        let verifier = Verifier {
            base,
            own: RwLock::new(HashMap::new()),
            external,
            cache: Mutex::new(HashMap::new()),
            revoked: RwLock::new(Default::default()),
            http,
        };
        verifier.set_own_keys(keys);
        Ok(verifier)
    }

    /// Replaces Hearth's own verification keys (after a rotation). The
    /// tokens remembered are verified again: a retired key's stop working.
    pub fn set_own_keys(&self, keys: &[SigningKey]) {
        let map = keys
            .iter()
            .map(|k| (k.kid.clone(), k.decoding_key()))
            .collect();
        *self.own.write().unwrap_or_else(|e| e.into_inner()) = map;
        self.forget();
    }

    /// Verifies `token` at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let digest = crate::digest(token.as_bytes());
        let remembered = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .filter(|principal| principal.expires_at > now - LEEWAY_SECS as i64)
            .cloned();
        if let Some(principal) = remembered {
            self.check_revoked(&principal)?;
            return Ok(principal);
        }
        let principal = Arc::new(Verified::of(self.verify_uncached(token, now)?, &digest));
        self.check_revoked(&principal)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(digest, principal.clone());
        Ok(principal)
    }

    fn check_revoked(&self, verified: &Verified) -> Result<(), TokenError> {
        let revoked = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        if !revoked.is_empty() && revoked.contains(&verified.revocation_id) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }

    /// Replaces the list of revoked tokens (the binary reads it from the
    /// store every 2 s).
    pub fn set_revoked(&self, ids: std::collections::HashSet<String>) {
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = ids;
    }

    /// Refuses the token named `id` from now on (the list read from the
    /// store replaces this at its next reading, which holds it too).
    pub fn revoke_now(&self, id: &str) {
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
    }

    fn verify_uncached(&self, token: &str, now: i64) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let issuer = unverified_issuer(token)?;
        if issuer.trim_end_matches('/') == self.base {
            return self.verify_own(token, &header, now);
        }
        let external = self
            .external
            .iter()
            .find(|e| e.config.issuer == issuer)
            .ok_or(TokenError::UnknownIssuer)?;
        self.verify_external(external, token, &header, now)
    }

    fn verify_own(&self, token: &str, header: &Header, now: i64) -> Result<Principal, TokenError> {
        if header.typ.as_deref() == Some(TICKET_TYPE) {
            return Err(TokenError::Claims("is not an access token".into()));
        }
        let claims = self.decode_own(token, header, &self.base, now)?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Principal {
            issuer: self.base.clone(),
            subject: text("sub"),
            client_id: text("client_id"),
            fhir_user: text("fhirUser"),
            patient: text("patient"),
            encounter: text("encounter"),
            scopes: scopes_claim(claims.get("scope"))?,
            expires_at: claims["exp"].as_i64().unwrap_or(0),
            token_id: text("jti"),
        })
    }

    /// Checks a JWT signed with Hearth's own keys for `audience`.
    fn decode_own(
        &self,
        token: &str,
        header: &Header,
        audience: &str,
        now: i64,
    ) -> Result<serde_json::Map<String, Value>, TokenError> {
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let own = self.own.read().unwrap_or_else(|e| e.into_inner());
        let key = own.get(kid).ok_or(TokenError::UnknownKey)?;
        decode(token, key, ALGORITHM, &self.base, audience, now)
    }

    /// The claims of a ticket ([`TICKET_TYPE`]) Hearth signed for
    /// `audience`, if it is one and has not expired.
    pub fn verify_ticket(
        &self,
        ticket: &str,
        audience: &str,
        now: i64,
    ) -> Result<serde_json::Map<String, Value>, TokenError> {
        if ticket.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(ticket).map_err(|_| TokenError::Malformed)?;
        if header.typ.as_deref() != Some(TICKET_TYPE) {
            return Err(TokenError::Claims("is not a ticket".into()));
        }
        self.decode_own(ticket, &header, audience, now)
    }

    fn verify_external(
        &self,
        external: &External,
        token: &str,
        header: &Header,
        now: i64,
    ) -> Result<Principal, TokenError> {
        if !external.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let found = |external: &External| {
            let keys = external.keys.read().unwrap_or_else(|e| e.into_inner());
            match keys.get(&kid) {
                Some((alg, key)) if *alg == header.alg => Some(key.clone()),
                // Without a kid, the issuer's one key of that algorithm.
                None if kid.is_empty() => {
                    let mut of_alg = keys.values().filter(|(a, _)| *a == header.alg);
                    match (of_alg.next(), of_alg.next()) {
                        (Some((_, key)), None) => Some(key.clone()),
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        let key = match found(external) {
            Some(key) => key,
            None => {
                // A key published since the last fetch.
                self.refresh(external, false);
                found(external).ok_or(TokenError::UnknownKey)?
            }
        };
        let claims = decode(
            token,
            &key,
            header.alg,
            &external.config.issuer,
            &external.audience,
            now,
        )?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Principal {
            issuer: external.config.issuer.clone(),
            subject: text("sub"),
            client_id: text("client_id")
                .or_else(|| text("azp"))
                .or_else(|| text("appid")),
            fhir_user: text(&external.config.fhir_user_claim),
            patient: text(&external.config.patient_claim),
            encounter: text("encounter"),
            scopes: scopes_claim(claims.get(&external.config.scope_claim))?,
            expires_at: claims["exp"].as_i64().unwrap_or(0),
            token_id: text("jti"),
        })
    }

    /// Fetches the external issuers' keys now: at start-up, so the first
    /// requests need not wait.
    pub fn fetch_external_keys(&self) {
        for external in &self.external {
            self.refresh(external, true);
        }
    }

    /// Fetches the keys of each external issuer whose keys have outlived
    /// their cache lifetime: the binary calls this every few seconds from
    /// a thread of its own, so requests seldom wait for a fetch.
    pub fn refresh_stale(&self) {
        for external in &self.external {
            let stale = external
                .fetched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none_or(|(at, lifetime)| at.elapsed() >= lifetime);
            if stale {
                self.refresh(external, true);
            }
        }
    }

    /// Fetches an issuer's JWKS (for an unknown key id, at most once every
    /// 30 seconds), keeping it as long as the response's `Cache-Control:
    /// max-age` says, between 1 minute and 1 day (5 minutes without one).
    fn refresh(&self, external: &External, force: bool) {
        let Some(http) = &self.http else { return };
        {
            let mut fetched = external.fetched.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, _)) = *fetched {
                if !force && at.elapsed() < Duration::from_secs(30) {
                    return;
                }
            }
            // Failed fetches are retried after a minute.
            *fetched = Some((Instant::now(), Duration::from_secs(60)));
        }
        let fetched = crate::jwks::fetch(http, &external.config.jwks_url);
        match fetched {
            Ok((set, lifetime)) => {
                install(external, &set);
                *external.fetched.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), lifetime));
            }
            Err(e) => {
                tracing::warn!(issuer = %external.config.issuer, error = %e, "fetching an external issuer's keys failed");
            }
        }
    }

    /// Installs `jwks` as the keys of the external issuer `issuer`, as a
    /// fetch of its JWKS would (tests serve none).
    pub fn trust_keys(&self, issuer: &str, jwks: &Value) -> Result<(), String> {
        let external = self
            .external
            .iter()
            .find(|e| e.config.issuer == issuer)
            .ok_or_else(|| format!("{issuer} is not a configured issuer"))?;
        let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
        install(external, &set);
        *external.fetched.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), Duration::from_secs(300)));
        Ok(())
    }

    /// Drops remembered verifications (tests, and after keys change).
    pub fn forget(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Makes `set` the keys of `external`: those of its accepted algorithms.
fn install(external: &External, set: &JwkSet) {
    let keys: HashMap<String, (Algorithm, DecodingKey)> = set
        .keys
        .iter()
        .filter_map(|jwk| {
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| parse_algorithm(&format!("{a:?}")))
                .or_else(|| key_family_algorithm(jwk, &external.algorithms))?;
            if !external.algorithms.contains(&alg) {
                return None;
            }
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((jwk.common.key_id.clone().unwrap_or_default(), (alg, key)))
        })
        .collect();
    tracing::info!(issuer = %external.config.issuer, keys = keys.len(), "external issuer keys installed");
    *external.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
}

/// For a JWK without `alg`: the one configured algorithm of its key type.
fn key_family_algorithm(jwk: &jsonwebtoken::jwk::Jwk, accepted: &[Algorithm]) -> Option<Algorithm> {
    use jsonwebtoken::jwk::AlgorithmParameters;
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256, Algorithm::ES384],
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => &[],
    };
    let mut matching = accepted.iter().filter(|a| family.contains(a));
    match (matching.next(), matching.next()) {
        (Some(a), None) => Some(*a),
        _ => None,
    }
}

/// A JWT's claims, not verified (`None`: not a JWT).
pub(crate) fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn unverified_claims(token: &str) -> Result<Value, TokenError> {
    jwt_claims(token).ok_or(TokenError::Malformed)
}

/// The `iss` of a token not yet verified, to choose its keys by.
fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    let claims = unverified_claims(token)?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TokenError::Claims("has no issuer (iss)".into()))
}

/// Checks the signature with `key` under the one algorithm `alg`, then
/// `iss`, `aud`, `exp` and `nbf`.
fn decode(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<serde_json::Map<String, Value>, TokenError> {
    use jsonwebtoken::errors::ErrorKind;
    let mut validation = Validation::new(alg);
    // Checked below against `now`, which tests set.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm(format!("{alg:?}")),
            _ => TokenError::Malformed,
        })?;
    let claims = data.claims;
    let iss = claims.get("iss").and_then(Value::as_str);
    if iss.map(|i| i.trim_end_matches('/')) != Some(issuer.trim_end_matches('/')) {
        return Err(TokenError::UnknownIssuer);
    }
    let audience = audience.trim_end_matches('/');
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a.trim_end_matches('/') == audience,
        Some(Value::Array(all)) => all.iter().any(|a| {
            a.as_str()
                .is_some_and(|a| a.trim_end_matches('/') == audience)
        }),
        _ => false,
    };
    if !aud_ok {
        return Err(TokenError::Audience);
    }
    let time = |name: &str| claims.get(name).map(|v| v.as_i64());
    let leeway = LEEWAY_SECS as i64;
    match time("exp") {
        Some(Some(exp)) if exp + leeway > now => {}
        Some(Some(_)) => return Err(TokenError::Expired),
        _ => return Err(TokenError::Claims("has no expiry (exp)".into())),
    }
    match time("nbf") {
        None => {}
        Some(Some(nbf)) if nbf - leeway <= now => {}
        Some(Some(_)) => return Err(TokenError::NotYetValid),
        Some(None) => return Err(TokenError::Claims("has an nbf that is not a time".into())),
    }
    Ok(claims)
}

/// `scope` as a space-separated string, or (Entra ID's `roles`, some
/// Keycloak mappers) an array of scopes.
fn scopes_claim(claim: Option<&Value>) -> Result<Scopes, TokenError> {
    let text = match claim {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Some(_) => {
            return Err(TokenError::Claims(
                "has a scope claim that is not text".into(),
            ))
        }
    };
    Scopes::parse(&text).map_err(TokenError::Scope)
}

/// Signs access tokens with Hearth's newest key.
pub struct Signer {
    base: String,
    key: SigningKey,
}

/// What an access token Hearth issues says.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub scopes: Scopes,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub patient: Option<String>,
    pub encounter: Option<String>,
    pub fhir_user: Option<String>,
    pub lifetime_secs: i64,
}

impl Signer {
    /// Signs with the newest of `keys`; `None` when there is none.
    pub fn new(base: &str, keys: &[SigningKey]) -> Option<Signer> {
        let key = keys.iter().max_by_key(|k| k.created_at)?.clone();
        Some(Signer {
            base: base.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// An access token for `request`, issued at `now`. The caller holds
    /// the lifetime to what it allows ([`MAX_LIFETIME_SECS`] for apps;
    /// an operator's `hearth token` may ask more for a service account).
    pub fn issue(&self, request: &TokenRequest, now: i64) -> (String, AccessClaims) {
        let claims = AccessClaims {
            iss: self.base.clone(),
            aud: self.base.clone(),
            sub: request
                .subject
                .clone()
                .or_else(|| request.client_id.clone()),
            client_id: request.client_id.clone(),
            scope: request.scopes.to_string(),
            patient: request.patient.clone(),
            encounter: request.encounter.clone(),
            fhir_user: request.fhir_user.clone(),
            iat: now,
            exp: now + request.lifetime_secs.max(1),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.key.kid.clone());
        header.typ = Some("at+jwt".into());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding_key())
            .expect("an ES256 key signs");
        (token, claims)
    }

    /// A ticket ([`TICKET_TYPE`]) holding `claims`, for `audience`, valid
    /// `lifetime_secs` from `now`.
    pub fn ticket(
        &self,
        mut claims: serde_json::Map<String, Value>,
        audience: &str,
        lifetime_secs: i64,
        now: i64,
    ) -> String {
        claims.insert("iss".into(), Value::from(self.base.clone()));
        claims.insert("aud".into(), Value::from(audience));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + lifetime_secs));
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.key.kid.clone());
        header.typ = Some(TICKET_TYPE.into());
        jsonwebtoken::encode(&header, &claims, &self.key.encoding_key())
            .expect("an ES256 key signs")
    }
}

#[cfg(test)]
mod tests;
