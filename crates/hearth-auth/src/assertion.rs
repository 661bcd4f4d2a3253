//! Client assertions (RFC 7523 §2.2, as SMART Backend Services profiles
//! them): a client proves who it is with a short-lived JWT signed by one
//! of the keys of its registered JWKS, naming itself as `iss` and `sub`
//! and the token endpoint as `aud`.
//!
//! [`verify`] checks everything an assertion says; that its `jti` was never
//! seen before (within its lifetime) is for the store to refuse, with the
//! [`Assertion`] it answers.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::token::LEEWAY_SECS;

/// The algorithms a client may sign with: SMART Backend Services names
/// RS384 and ES384.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS384, Algorithm::ES384];

/// The furthest ahead an assertion's `exp` may be: five minutes.
pub const MAX_LIFETIME_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    #[error("the client assertion is not a JWT")]
    Malformed,
    #[error("the client assertion is signed with {0}; RS384 and ES384 are accepted")]
    Algorithm(String),
    #[error("the client assertion's header names no key (kid)")]
    NoKeyId,
    #[error("the client assertion's key '{0}' is not one of the client's registered keys")]
    UnknownKey(String),
    #[error("the client assertion's jku is not the client's registered JWKS URL")]
    KeySetUrl,
    #[error("the client assertion's signature is invalid")]
    Signature,
    #[error("the client assertion's iss and sub must both be the client id")]
    Subject,
    #[error("the client assertion's aud must be the token endpoint, {0}")]
    Audience(String),
    #[error("the client assertion has expired")]
    Expired,
    #[error("the client assertion must expire (exp) within five minutes")]
    Lifetime,
    #[error("the client assertion has no jti")]
    NoJti,
}

/// A verified assertion: the client it proves, and the `jti` that must not
/// be accepted again before `expires_at` (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub client_id: String,
    pub jti: String,
    pub expires_at: i64,
}

/// What an assertion is checked against: the client it must prove, the
/// token endpoint's URL, the client's registered JWKS URL (if its keys are
/// published there) and the time.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub client_id: &'a str,
    pub token_url: &'a str,
    pub jwks_url: Option<&'a str>,
    pub now: i64,
}

/// The client an assertion claims to come from (`iss`), read before it is
/// verified: to find the client's keys by.
pub fn claimed_client(assertion: &str) -> Result<String, AssertionError> {
    let claims = crate::token::jwt_claims(assertion).ok_or(AssertionError::Malformed)?;
    claims["iss"]
        .as_str()
        .map(str::to_owned)
        .ok_or(AssertionError::Subject)
}

/// Verifies `assertion` with the client's `keys` (its JWKS).
pub fn verify(
    assertion: &str,
    keys: &JwkSet,
    expected: &Expected<'_>,
) -> Result<Assertion, AssertionError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(AssertionError::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.as_deref().ok_or(AssertionError::NoKeyId)?;
    if let Some(jku) = &header.jku {
        if expected.jwks_url != Some(jku.as_str()) {
            return Err(AssertionError::KeySetUrl);
        }
    }
    let jwk = keys
        .keys
        .iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
        .ok_or_else(|| AssertionError::UnknownKey(kid.to_owned()))?;
    // A key published for one algorithm signs with that one only.
    if let Some(alg) = jwk.common.key_algorithm {
        if crate::token::parse_algorithm(&format!("{alg:?}")) != Some(header.alg) {
            return Err(AssertionError::UnknownKey(kid.to_owned()));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| AssertionError::UnknownKey(kid.to_owned()))?;
    let mut validation = Validation::new(header.alg);
    // Checked below against `expected.now`.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims =
        jsonwebtoken::decode::<serde_json::Map<String, Value>>(assertion, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AssertionError::Signature,
                _ => AssertionError::Malformed,
            })?
            .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(expected.client_id) || text("sub") != Some(expected.client_id) {
        return Err(AssertionError::Subject);
    }
    let token_url = expected.token_url.trim_end_matches('/');
    let names_token_url = |a: &Value| {
        a.as_str()
            .is_some_and(|a| a.trim_end_matches('/') == token_url)
    };
    let audience = match claims.get("aud") {
        Some(Value::Array(all)) => all.iter().any(names_token_url),
        Some(one) => names_token_url(one),
        None => false,
    };
    if !audience {
        return Err(AssertionError::Audience(token_url.to_owned()));
    }
    let leeway = LEEWAY_SECS as i64;
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(AssertionError::Lifetime)?;
    if expires_at + leeway <= expected.now {
        return Err(AssertionError::Expired);
    }
    if expires_at > expected.now + MAX_LIFETIME_SECS + leeway {
        return Err(AssertionError::Lifetime);
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty())
        .ok_or(AssertionError::NoJti)?;
    Ok(Assertion {
        client_id: expected.client_id.to_owned(),
        jti: jti.to_owned(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::{TEST_RSA_DER, TEST_RSA_N};
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
    use serde_json::json;

    const CLIENT: &str = "bulk-client";
    const TOKEN_URL: &str = "https://hearth.example/fhir/auth/token";
    const JWKS_URL: &str = "https://client.example/jwks.json";
    const NOW: i64 = 1_800_000_000;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A P-384 key pair: its signing key and its public JWK.
    fn ec_key(kid: &str) -> (EncodingKey, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // Uncompressed: 0x04, then x and y, 48 bytes each.
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-384", "kid": kid, "alg": "ES384",
            "x": b64(&point[1..49]), "y": b64(&point[49..97])});
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn rsa_key(kid: &str) -> (EncodingKey, Value) {
        let der = base64::engine::general_purpose::STANDARD
            .decode(TEST_RSA_DER)
            .unwrap();
        let jwk = json!({"kty": "RSA", "kid": kid, "n": TEST_RSA_N, "e": "AQAB"});
        (EncodingKey::from_rsa_der(&der), jwk)
    }

    fn set(jwks: &[&Value]) -> JwkSet {
        serde_json::from_value(json!({"keys": jwks})).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": NOW + 240, "jti": "a-1"})
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn expected() -> Expected<'static> {
        Expected {
            client_id: CLIENT,
            token_url: TOKEN_URL,
            jwks_url: Some(JWKS_URL),
            now: NOW,
        }
    }

    #[test]
    fn es384_and_rs384_assertions_prove_their_client() {
        let (ec, ec_jwk) = ec_key("ec1");
        let (rsa, rsa_jwk) = rsa_key("rsa1");
        let keys = set(&[&ec_jwk, &rsa_jwk]);
        for (alg, kid, key) in [
            (Algorithm::ES384, "ec1", &ec),
            (Algorithm::RS384, "rsa1", &rsa),
        ] {
            let assertion = sign(alg, Some(kid), &claims(), key);
            assert_eq!(claimed_client(&assertion).unwrap(), CLIENT);
            assert_eq!(
                verify(&assertion, &keys, &expected()).unwrap(),
                Assertion {
                    client_id: CLIENT.into(),
                    jti: "a-1".into(),
                    expires_at: NOW + 240
                }
            );
        }
        // An audience list naming the token endpoint, and a jku that is the
        // registered JWKS URL.
        let mut listed = claims();
        listed["aud"] = json!(["https://other.example", TOKEN_URL]);
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some("ec1".into());
        header.jku = Some(JWKS_URL.into());
        let assertion = jsonwebtoken::encode(&header, &listed, &ec).unwrap();
        assert!(verify(&assertion, &keys, &expected()).is_ok());
    }

    #[test]
    fn every_claim_and_header_is_checked() {
        let (ec, ec_jwk) = ec_key("ec1");
        let keys = set(&[&ec_jwk]);
        let refused = |assertion: &str| verify(assertion, &keys, &expected()).unwrap_err();
        let with = |change: &dyn Fn(&mut Value)| {
            let mut c = claims();
            change(&mut c);
            sign(Algorithm::ES384, Some("ec1"), &c, &ec)
        };
        assert_eq!(
            refused(&with(&|c| c["sub"] = json!("someone-else"))),
            AssertionError::Subject
        );
        assert_eq!(
            refused(&with(&|c| c["iss"] = json!("someone-else"))),
            AssertionError::Subject
        );
        assert!(matches!(
            refused(&with(&|c| c["aud"] = json!("https://hearth.example/fhir"))),
            AssertionError::Audience(_)
        ));
        assert!(matches!(
            refused(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            AssertionError::Audience(_)
        ));
        assert_eq!(
            refused(&with(&|c| c["exp"] = json!(NOW - 60))),
            AssertionError::Expired
        );
        assert_eq!(
            refused(&with(&|c| c["exp"] = json!(NOW + 600))),
            AssertionError::Lifetime
        );
        assert_eq!(
            refused(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            AssertionError::Lifetime
        );
        assert_eq!(
            refused(&with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            })),
            AssertionError::NoJti
        );
        assert_eq!(
            refused(&with(&|c| c["jti"] = json!(""))),
            AssertionError::NoJti
        );
        // No kid; a kid the client did not register; a jku elsewhere.
        assert_eq!(
            refused(&sign(Algorithm::ES384, None, &claims(), &ec)),
            AssertionError::NoKeyId
        );
        assert_eq!(
            refused(&sign(Algorithm::ES384, Some("other"), &claims(), &ec)),
            AssertionError::UnknownKey("other".into())
        );
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some("ec1".into());
        header.jku = Some("https://evil.example/jwks.json".into());
        assert_eq!(
            refused(&jsonwebtoken::encode(&header, &claims(), &ec).unwrap()),
            AssertionError::KeySetUrl
        );
        // Another key under the registered kid: the signature fails.
        let (impostor, _) = ec_key("ec1");
        assert_eq!(
            refused(&sign(Algorithm::ES384, Some("ec1"), &claims(), &impostor)),
            AssertionError::Signature
        );
        // A tampered payload.
        let good = with(&|_| {});
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut c = claims();
        c["sub"] = json!(CLIENT);
        c["exp"] = json!(NOW + 290);
        parts[1] = b64(c.to_string().as_bytes());
        assert_eq!(refused(&parts.join(".")), AssertionError::Signature);
        assert_eq!(refused("not a jwt"), AssertionError::Malformed);
    }

    #[test]
    fn only_rs384_and_es384_are_accepted() {
        let (rsa, rsa_jwk) = rsa_key("rsa1");
        let keys = set(&[&rsa_jwk]);
        let refused = |assertion: &str| verify(assertion, &keys, &expected()).unwrap_err();
        assert_eq!(
            refused(&sign(Algorithm::RS256, Some("rsa1"), &claims(), &rsa)),
            AssertionError::Algorithm("RS256".into())
        );
        // HMAC keyed with the public modulus, and alg none.
        let hmac = EncodingKey::from_secret(TEST_RSA_N.as_bytes());
        assert_eq!(
            refused(&sign(Algorithm::HS384, Some("rsa1"), &claims(), &hmac)),
            AssertionError::Algorithm("HS384".into())
        );
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","kid":"rsa1"}"#),
            b64(claims().to_string().as_bytes())
        );
        assert_eq!(refused(&none), AssertionError::Malformed);
        // A key registered for ES384 does not verify RS384, nor the reverse.
        let (ec, mut ec_jwk) = ec_key("ec1");
        ec_jwk["alg"] = json!("ES384");
        let keys = set(&[&ec_jwk]);
        let mut header = Header::new(Algorithm::RS384);
        header.kid = Some("ec1".into());
        let rs = jsonwebtoken::encode(&header, &claims(), &rsa).unwrap();
        assert_eq!(
            verify(&rs, &keys, &expected()).unwrap_err(),
            AssertionError::UnknownKey("ec1".into())
        );
        assert!(verify(
            &sign(Algorithm::ES384, Some("ec1"), &claims(), &ec),
            &keys,
            &expected()
        )
        .is_ok());
    }
}
