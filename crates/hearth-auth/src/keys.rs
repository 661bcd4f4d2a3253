//! Hearth's own signing keys: ECDSA P-256 (ES256), generated on first
//! start and kept in the database so every node signs and verifies with
//! the same ones. The newest key signs; the older ones stay published
//! until the tokens they signed have expired.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// The one algorithm Hearth signs its tokens with, and the only one it
/// accepts on a token it issued.
pub const ALGORITHM: Algorithm = Algorithm::ES256;

/// A signing key: its id and its private key (PKCS#8 DER).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    /// The public point's coordinates, base64url.
    x: String,
    y: String,
    /// When the key was made, in milliseconds since the epoch.
    pub created_at: i64,
}

/// A stored key that cannot be read back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("signing key {kid} cannot be read")]
pub struct BadKey {
    pub kid: String,
}

impl std::fmt::Debug for SigningKey {
    // The private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(created_at: i64) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("the system random number generator works");
        Self::from_pkcs8(None, pkcs8.as_ref().to_vec(), created_at)
            .expect("a key ring just made reads back")
    }

    /// A key as stored. `kid` is the key's RFC 7638 thumbprint when `None`.
    pub fn from_pkcs8(
        kid: Option<String>,
        pkcs8: Vec<u8>,
        created_at: i64,
    ) -> Result<SigningKey, BadKey> {
        let bad = || BadKey {
            kid: kid.clone().unwrap_or_default(),
        };
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| bad())?;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(bad());
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        let kid = kid.unwrap_or_else(|| thumbprint(&x, &y));
        Ok(SigningKey {
            kid,
            pkcs8,
            x,
            y,
            created_at,
        })
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK, for the JWKS Hearth publishes.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    pub(crate) fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ec_der(&self.pkcs8)
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ec_components(&self.x, &self.y).expect("coordinates read from a key pair")
    }
}

/// RFC 7638: the SHA-256 of the key's required members, in order.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// A JWKS of the public halves of `keys` and of the id_token key.
pub fn jwks(keys: &[SigningKey], id_key: Option<&IdTokenKey>) -> Value {
    let mut all: Vec<Value> = keys.iter().map(SigningKey::public_jwk).collect();
    all.extend(id_key.map(IdTokenKey::public_jwk));
    json!({ "keys": all })
}

/// The RSA key that signs OpenID Connect id_tokens (RS256: SMART App
/// Launch requires it of id_tokens; access tokens stay ES256).
#[derive(Clone)]
pub struct IdTokenKey {
    pub kid: String,
    /// PKCS#1 DER.
    der: Vec<u8>,
    n: String,
    e: String,
    pub created_at: i64,
}

impl std::fmt::Debug for IdTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IdTokenKey {
    /// A new random 2048-bit key (a second or so: made once per store).
    pub fn generate(created_at: i64) -> IdTokenKey {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .expect("the system random number generator works");
        let der = key
            .to_pkcs1_der()
            .expect("an RSA key encodes")
            .as_bytes()
            .to_vec();
        Self::from_der(None, der, created_at).expect("a key just made reads back")
    }

    /// A key as stored; `kid` is its RFC 7638 thumbprint when `None`.
    pub fn from_der(
        kid: Option<String>,
        der: Vec<u8>,
        created_at: i64,
    ) -> Result<IdTokenKey, BadKey> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let bad = || BadKey {
            kid: kid.clone().unwrap_or_default(),
        };
        let key = rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| bad())?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = kid.unwrap_or_else(|| {
            let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            URL_SAFE_NO_PAD.encode(crate::digest(canonical.as_bytes()))
        });
        Ok(IdTokenKey {
            kid,
            der,
            n,
            e,
            created_at,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn public_jwk(&self) -> Value {
        json!({"kty": "RSA", "n": self.n, "e": self.e, "kid": self.kid, "alg": "RS256", "use": "sig"})
    }

    /// An id_token of `claims`, signed RS256.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&self.der))
            .expect("an RSA key signs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_with_the_same_id_and_public_half() {
        let key = SigningKey::generate(1);
        let again = SigningKey::from_pkcs8(None, key.pkcs8().to_vec(), 1).unwrap();
        assert_eq!(key.kid, again.kid);
        assert_eq!(key.public_jwk(), again.public_jwk());
        assert_eq!(key.kid.len(), 43);
        assert_ne!(SigningKey::generate(1).kid, key.kid);
        let jwk = key.public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert!(jwk.get("d").is_none(), "the private key is never published");
        assert!(!format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode(key.pkcs8())));
        assert!(SigningKey::from_pkcs8(Some("k".into()), b"not a key".to_vec(), 1).is_err());
    }
}
