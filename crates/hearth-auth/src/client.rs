//! The clients registered with Hearth's authorization server: SMART apps
//! and backend services (`hearth client add`). What a client is allowed
//! (its scopes) caps what it is ever granted; how it proves who it is
//! decides which token requests it may make.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scope::{ScopeError, Scopes};

/// The longest client id accepted.
const MAX_ID_CHARS: usize = 128;

/// A registered client, as stored (one JSON document per client).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    /// Shown to the person asked to approve it.
    pub name: String,
    /// The redirect URIs an authorization request may name, exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The scopes it may be granted, space-separated.
    pub scope: String,
    /// Where an EHR launches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_uri: Option<String>,
    pub credentials: Credentials,
    /// An EHR: it may create launch contexts for apps (`POST
    /// /auth/launch`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub launches: bool,
    /// When it was registered, in milliseconds since the epoch.
    pub created_at: i64,
}

/// How a client proves who it is (SMART's client types).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credentials {
    /// A public client (a browser or native app): it proves nothing; PKCE
    /// binds its code to it.
    None,
    /// Confidential symmetric: a secret, kept as an Argon2id hash.
    Secret { hash: String },
    /// Confidential asymmetric: signed assertions (`private_key_jwt`),
    /// checked with this JWKS.
    Jwks { jwks: Value },
    /// Confidential asymmetric, its JWKS published at this URL.
    JwksUrl { url: String },
}

impl std::fmt::Debug for Credentials {
    // A secret's hash stays out of logs too.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Credentials {
    /// The SMART capability naming this kind of client.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::None => "public",
            Credentials::Secret { .. } => "confidential-symmetric",
            Credentials::Jwks { .. } | Credentials::JwksUrl { .. } => "confidential-asymmetric",
        }
    }

    /// Whether the client is confidential (may use `client_credentials`).
    pub fn is_confidential(&self) -> bool {
        !matches!(self, Credentials::None)
    }
}

/// Why a client cannot be registered as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the client id must be 1 to 128 letters, digits, '.', '_', '~' or '-'")]
    Id,
    #[error("the client needs a name")]
    Name,
    #[error("redirect URI '{0}' must be an absolute https URL (http only on localhost or a loopback address) without a fragment")]
    RedirectUri(String),
    #[error("{0}")]
    Scope(#[from] ScopeError),
    #[error("the JWKS is not usable: {0}")]
    Jwks(String),
    #[error("only a confidential client (a secret or keys) may create launches")]
    Launches,
    #[error("the JWKS URL '{0}' must be an absolute https URL (http only on localhost or a loopback address)")]
    JwksUrl(String),
}

impl Client {
    /// Checks a client about to be registered.
    pub fn validate(&self) -> Result<(), ClientError> {
        let id_ok = !self.id.is_empty()
            && self.id.chars().count() <= MAX_ID_CHARS
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'));
        if !id_ok {
            return Err(ClientError::Id);
        }
        if self.name.trim().is_empty() {
            return Err(ClientError::Name);
        }
        for uri in self.redirect_uris.iter().chain(&self.launch_uri) {
            if !is_web_url(uri) || uri.contains('#') {
                return Err(ClientError::RedirectUri(uri.clone()));
            }
        }
        Scopes::parse_strict(&self.scope)?;
        if self.launches && !self.credentials.is_confidential() {
            return Err(ClientError::Launches);
        }
        match &self.credentials {
            Credentials::Jwks { jwks } => {
                usable_keys(jwks)?;
            }
            Credentials::JwksUrl { url } if !is_web_url(url) => {
                return Err(ClientError::JwksUrl(url.clone()));
            }
            _ => {}
        }
        Ok(())
    }

    /// The scopes it may be granted.
    pub fn allowed_scopes(&self) -> Scopes {
        // Checked when registered; a document edited by hand that no
        // longer parses allows nothing.
        Scopes::parse_strict(&self.scope).unwrap_or_default()
    }

    /// Its registered JWKS URL, if its keys are published at one.
    pub fn jwks_url(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::JwksUrl { url } => Some(url),
            _ => None,
        }
    }
}

/// A JWKS whose every key can check an assertion (RSA, or EC on P-384),
/// each with a `kid` to be chosen by.
pub fn usable_keys(jwks: &Value) -> Result<JwkSet, ClientError> {
    let set: JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|e| ClientError::Jwks(e.to_string()))?;
    if set.keys.is_empty() {
        return Err(ClientError::Jwks("it holds no key".into()));
    }
    for key in &set.keys {
        if key.common.key_id.as_deref().is_none_or(str::is_empty) {
            return Err(ClientError::Jwks("every key needs a kid".into()));
        }
        let usable = match &key.algorithm {
            AlgorithmParameters::RSA(_) => true,
            AlgorithmParameters::EllipticCurve(ec) => ec.curve == EllipticCurve::P384,
            _ => false,
        };
        if !usable {
            return Err(ClientError::Jwks(
                "keys must be RSA (RS384) or EC P-384 (ES384)".into(),
            ));
        }
        if jwks_private(key) {
            return Err(ClientError::Jwks(
                "it holds a private key; register the public keys only".into(),
            ));
        }
    }
    Ok(set)
}

/// Whether a JWK carries private parts (`d`): a client that registers one
/// has leaked its key.
fn jwks_private(key: &jsonwebtoken::jwk::Jwk) -> bool {
    serde_json::to_value(key)
        .ok()
        .and_then(|v| v.get("d").cloned())
        .is_some()
}

/// The origin (scheme, host and port) of an absolute URL, lower case.
pub fn origin(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}").to_ascii_lowercase())
}

/// An absolute https URL, or http on a loopback host (development).
fn is_web_url(text: &str) -> bool {
    let rest = if let Some(rest) = text.strip_prefix("https://") {
        rest
    } else if let Some(rest) = text.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        if !(name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
        {
            return false;
        }
        rest
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An Argon2id hash (PHC string) of a secret or password.
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("Argon2id hashes any input with the default parameters")
        .to_string()
}

/// Whether `secret` is the one `hash` was made of (in constant time).
pub fn verify_secret(hash: &str, secret: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no secret matches, checked when a client is unknown so that
/// the answer takes as long as for a known one.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_secret(&uuid::Uuid::new_v4().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(credentials: Credentials) -> Client {
        Client {
            id: "growth-chart".into(),
            name: "Growth Chart".into(),
            redirect_uris: vec!["https://app.example/callback".into()],
            scope: "launch/patient patient/*.rs openid fhirUser offline_access".into(),
            launch_uri: None,
            credentials,
            launches: false,
            created_at: 1,
        }
    }

    #[test]
    fn a_client_is_checked_before_it_is_registered() {
        assert_eq!(client(Credentials::None).validate(), Ok(()));
        let mut bad = client(Credentials::None);
        bad.id = "a b".into();
        assert_eq!(bad.validate(), Err(ClientError::Id));
        for uri in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "app.example/cb",
            "https:///cb",
        ] {
            let mut bad = client(Credentials::None);
            bad.redirect_uris = vec![uri.into()];
            assert!(
                matches!(bad.validate(), Err(ClientError::RedirectUri(_))),
                "{uri}"
            );
        }
        for uri in [
            "http://localhost:9/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8/",
        ] {
            let mut ok = client(Credentials::None);
            ok.redirect_uris = vec![uri.into()];
            assert_eq!(ok.validate(), Ok(()), "{uri}");
        }
        let mut bad = client(Credentials::None);
        bad.scope = "patient/*.rs email".into();
        assert!(matches!(bad.validate(), Err(ClientError::Scope(_))));
        let hmac = json!({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]});
        assert!(matches!(
            client(Credentials::Jwks { jwks: hmac }).validate(),
            Err(ClientError::Jwks(_))
        ));
        let p256 = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        assert!(matches!(
            client(Credentials::Jwks { jwks: p256 }).validate(),
            Err(ClientError::Jwks(_))
        ));
        assert!(matches!(
            client(Credentials::JwksUrl {
                url: "http://keys.example/jwks".into()
            })
            .validate(),
            Err(ClientError::JwksUrl(_))
        ));
    }

    #[test]
    fn secrets_are_kept_as_argon2id_hashes() {
        let hash = hash_secret("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_secret(&hash, "correct horse"));
        assert!(!verify_secret(&hash, "correct horsE"));
        assert!(!verify_secret("not a hash", "correct horse"));
        assert!(!verify_secret(dummy_hash(), ""));
        assert_ne!(hash_secret("correct horse"), hash, "salted");
        assert_eq!(
            origin("https://App.example:8443/cb?x=1").as_deref(),
            Some("https://app.example:8443")
        );
        let debug = format!("{:?}", Credentials::Secret { hash: hash.clone() });
        assert!(!debug.contains(&hash));
    }
}
