use super::*;
use crate::test_keys::{TEST_RSA_DER, TEST_RSA_N};
use jsonwebtoken::EncodingKey;
use serde_json::json;

const BASE: &str = "https://hearth.example/fhir";
const NOW: i64 = 1_800_000_000;
const EXTERNAL: &str = "https://keycloak.example/realms/clinic";

fn key() -> SigningKey {
    SigningKey::generate(1)
}

fn verifier(keys: &[SigningKey]) -> Verifier {
    let external = ExternalIssuer {
        issuer: EXTERNAL.into(),
        jwks_url: "https://keycloak.example/realms/clinic/protocol/openid-connect/certs".into(),
        audience: None,
        algorithms: vec!["RS256".into()],
        scope_claim: "scope".into(),
        patient_claim: "patient_id".into(),
        fhir_user_claim: "fhirUser".into(),
    };
    let v = Verifier::new(BASE, keys, vec![external]).unwrap();
    v.trust_keys(
        EXTERNAL,
        &json!({"keys": [{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig", "n": TEST_RSA_N, "e": "AQAB"}]}),
    )
    .unwrap();
    v
}

fn request(scope: &str) -> TokenRequest {
    TokenRequest {
        scopes: Scopes::parse(scope).unwrap(),
        client_id: Some("app".into()),
        patient: Some("123".into()),
        lifetime_secs: 300,
        ..TokenRequest::default()
    }
}

/// A token with these claims and header, signed by `key` under `alg`.
fn signed(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn own_claims() -> Value {
    json!({"iss": BASE, "aud": BASE, "scope": "patient/*.rs", "patient": "123", "exp": NOW + 60, "iat": NOW})
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_der(
        &base64::engine::general_purpose::STANDARD
            .decode(TEST_RSA_DER)
            .unwrap(),
    )
}

fn external_token(claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa1".into());
    signed(header, &claims, &rsa_key())
}

#[test]
fn a_token_hearth_issued_verifies_with_its_context() {
    let k = key();
    let signer = Signer::new(BASE, std::slice::from_ref(&k)).unwrap();
    let (token, claims) = signer.issue(&request("patient/*.rs launch/patient"), NOW);
    assert_eq!(claims.exp, NOW + 300);
    let principal = verifier(&[k]).verify(&token, NOW + 10).unwrap();
    assert_eq!(principal.patient.as_deref(), Some("123"));
    assert_eq!(principal.client_id.as_deref(), Some("app"));
    assert_eq!(principal.scopes.to_string(), "patient/*.rs launch/patient");
    assert_eq!(principal.token_id.as_deref(), Some(claims.jti.as_str()));
}

#[test]
fn the_newest_key_signs_and_older_ones_still_verify() {
    let old = SigningKey::generate(1);
    let new = SigningKey::generate(2);
    let keys = [old.clone(), new.clone()];
    let (token, _) = Signer::new(BASE, &keys)
        .unwrap()
        .issue(&request("patient/*.rs"), NOW);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new.kid.as_str()));
    let (old_token, _) = Signer::new(BASE, std::slice::from_ref(&old))
        .unwrap()
        .issue(&request("patient/*.rs"), NOW);
    let v = verifier(&keys);
    assert!(v.verify(&token, NOW).is_ok());
    assert!(v.verify(&old_token, NOW).is_ok());
    // Once the old key is retired, its tokens no longer verify.
    let v = verifier(&[new]);
    assert_eq!(
        v.verify(&old_token, NOW).unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn missing_and_malformed_tokens() {
    let v = verifier(&[key()]);
    for bad in [
        "",
        "abc",
        "a.b.c",
        "eyJhbGciOiJFUzI1NiJ9.e30.",
        &"x".repeat(20_000),
    ] {
        assert!(v.verify(bad, NOW).is_err(), "{bad:.20}");
    }
}

#[test]
fn a_bad_signature_is_refused() {
    let k = key();
    let (token, _) = Signer::new(BASE, std::slice::from_ref(&k))
        .unwrap()
        .issue(&request("patient/*.rs"), NOW);
    let v = verifier(std::slice::from_ref(&k));
    // Another patient in the payload, the signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["patient"] = json!("456");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    assert_eq!(v.verify(&tampered, NOW).unwrap_err(), TokenError::Signature);
    // Signed by a key Hearth does not hold, under a kid it does.
    let other = SigningKey::generate(1);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(k.kid.clone());
    let forged = signed(header, &own_claims(), &other.encoding_key());
    assert_eq!(v.verify(&forged, NOW).unwrap_err(), TokenError::Signature);
}

#[test]
fn wrong_audience_expired_and_not_yet_valid() {
    let k = key();
    let v = verifier(std::slice::from_ref(&k));
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(k.kid.clone());
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = own_claims();
        change(&mut claims);
        signed(header.clone(), &claims, &k.encoding_key())
    };
    assert!(v.verify(&with(&|_| {}), NOW).is_ok());
    assert_eq!(
        v.verify(
            &with(&|c| c["aud"] = json!("https://other.example/fhir")),
            NOW
        )
        .unwrap_err(),
        TokenError::Audience
    );
    assert_eq!(
        v.verify(&with(&|c| c["aud"] = json!([])), NOW).unwrap_err(),
        TokenError::Audience
    );
    assert_eq!(
        v.verify(
            &with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            NOW
        )
        .unwrap_err(),
        TokenError::Audience
    );
    assert!(v
        .verify(&with(&|c| c["aud"] = json!(["x", format!("{BASE}/")])), NOW)
        .is_ok());
    assert_eq!(
        v.verify(&with(&|c| c["exp"] = json!(NOW - 31)), NOW)
            .unwrap_err(),
        TokenError::Expired
    );
    assert!(matches!(
        v.verify(
            &with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            NOW
        )
        .unwrap_err(),
        TokenError::Claims(_)
    ));
    assert_eq!(
        v.verify(&with(&|c| c["nbf"] = json!(NOW + 120)), NOW)
            .unwrap_err(),
        TokenError::NotYetValid
    );
    assert!(matches!(
        v.verify(
            &with(&|c| c["scope"] = json!("patient/Observation.xyz")),
            NOW
        )
        .unwrap_err(),
        TokenError::Scope(_)
    ));
    // A remembered token still expires.
    let token = with(&|c| c["exp"] = json!(NOW + 5));
    assert!(v.verify(&token, NOW).is_ok());
    assert_eq!(
        v.verify(&token, NOW + 100).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn unknown_issuers_are_refused() {
    let k = key();
    let v = verifier(std::slice::from_ref(&k));
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(k.kid.clone());
    let mut claims = own_claims();
    claims["iss"] = json!("https://evil.example");
    assert_eq!(
        v.verify(&signed(header.clone(), &claims, &k.encoding_key()), NOW)
            .unwrap_err(),
        TokenError::UnknownIssuer
    );
    claims.as_object_mut().unwrap().remove("iss");
    assert!(matches!(
        v.verify(&signed(header, &claims, &k.encoding_key()), NOW)
            .unwrap_err(),
        TokenError::Claims(_)
    ));
}

#[test]
fn alg_none_is_refused() {
    let v = verifier(&[key()]);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&own_claims()).unwrap());
    assert!(v.verify(&format!("{header}.{payload}."), NOW).is_err());
    let external = {
        let mut c = own_claims();
        c["iss"] = json!(EXTERNAL);
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
    };
    assert!(v.verify(&format!("{header}.{external}."), NOW).is_err());
}

#[test]
fn a_token_signed_with_the_public_key_as_an_hmac_secret_is_refused() {
    let k = key();
    let v = verifier(std::slice::from_ref(&k));
    // The published key, as an attacker would take it from the JWKS.
    let public = serde_json::to_vec(&k.public_jwk()).unwrap();
    for alg in [Algorithm::HS256, Algorithm::HS384] {
        let mut header = Header::new(alg);
        header.kid = Some(k.kid.clone());
        let token = signed(header, &own_claims(), &EncodingKey::from_secret(&public));
        assert!(matches!(
            v.verify(&token, NOW).unwrap_err(),
            TokenError::Algorithm(_)
        ));
    }
    // The same against an external RSA issuer.
    let mut claims = own_claims();
    claims["iss"] = json!(EXTERNAL);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa1".into());
    let token = signed(
        header,
        &claims,
        &EncodingKey::from_secret(TEST_RSA_N.as_bytes()),
    );
    assert!(matches!(
        v.verify(&token, NOW).unwrap_err(),
        TokenError::Algorithm(_)
    ));
}

#[test]
fn external_issuers_with_their_own_claim_names() {
    let v = verifier(&[key()]);
    let token = external_token(json!({
        "iss": EXTERNAL, "aud": BASE, "exp": NOW + 60, "azp": "portal",
        "scope": "openid profile patient/Observation.rs", "patient_id": "p9", "sub": "u1"
    }));
    let principal = v.verify(&token, NOW).unwrap();
    assert_eq!(principal.issuer, EXTERNAL);
    assert_eq!(principal.patient.as_deref(), Some("p9"));
    assert_eq!(principal.client_id.as_deref(), Some("portal"));
    assert_eq!(
        principal.scopes.to_string(),
        "openid profile patient/Observation.rs"
    );
    // Hearth's own issuer name on an external key: refused.
    let forged = external_token(json!({"iss": BASE, "aud": BASE, "exp": NOW + 60}));
    assert!(v.verify(&forged, NOW).is_err());
    // An algorithm the issuer is not configured with.
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some("rsa1".into());
    let token = signed(
        header,
        &json!({"iss": EXTERNAL, "aud": BASE, "exp": NOW + 60}),
        &rsa_key(),
    );
    assert!(matches!(
        v.verify(&token, NOW).unwrap_err(),
        TokenError::Algorithm(_)
    ));
    // A kid the issuer does not publish (no fetch: tests have no network
    // for it, and a failed fetch leaves the key unknown).
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa2".into());
    let token = signed(
        header,
        &json!({"iss": EXTERNAL, "aud": BASE, "exp": NOW + 60}),
        &rsa_key(),
    );
    assert_eq!(v.verify(&token, NOW).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn configuration_refuses_hmac_and_hearth_as_an_external_issuer() {
    let mut issuer = ExternalIssuer {
        issuer: EXTERNAL.into(),
        jwks_url: "https://k/certs".into(),
        audience: None,
        algorithms: vec!["HS256".into()],
        scope_claim: "scope".into(),
        patient_claim: "patient".into(),
        fhir_user_claim: "fhirUser".into(),
    };
    assert!(Verifier::new(BASE, &[], vec![issuer.clone()]).is_err());
    issuer.algorithms = vec!["RS256".into()];
    issuer.issuer = format!("{BASE}/");
    assert!(Verifier::new(BASE, &[], vec![issuer]).is_err());
}

#[test]
fn a_revoked_token_is_refused_even_when_remembered() {
    let k = key();
    let v = verifier(std::slice::from_ref(&k));
    let signer = Signer::new(BASE, std::slice::from_ref(&k)).unwrap();
    let (token, _) = signer.issue(&request("patient/*.rs"), NOW);
    let (other, _) = signer.issue(&request("patient/*.rs"), NOW);
    let verified = v.verify(&token, NOW).unwrap();
    // Named by its issuer and jti, and expiring when the token does.
    let (id, expires_at) = revocation_of(&token, NOW).unwrap();
    assert_eq!(id, verified.revocation_id);
    assert_eq!(
        id,
        format!("{BASE}|{}", verified.token_id.as_deref().unwrap())
    );
    assert_eq!(expires_at, NOW + 300);
    v.set_revoked([id.clone()].into_iter().collect());
    assert_eq!(v.verify(&token, NOW).unwrap_err(), TokenError::Revoked);
    assert!(v.verify(&other, NOW).is_ok());
    v.set_revoked(Default::default());
    assert!(v.verify(&token, NOW).is_ok());
    // Without a jti, a token is named by its SHA-256; an external token by
    // its issuer too.
    let external = signed(
        {
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some("rsa1".into());
            h
        },
        &json!({"iss": EXTERNAL, "aud": BASE, "scope": "user/*.rs", "exp": NOW + 60}),
        &rsa_key(),
    );
    let verified = v.verify(&external, NOW).unwrap();
    let (id, _) = revocation_of(&external, NOW).unwrap();
    assert_eq!(id, verified.revocation_id);
    assert_eq!(id.len(), 64);
    v.set_revoked([id].into_iter().collect());
    assert_eq!(v.verify(&external, NOW).unwrap_err(), TokenError::Revoked);
    assert_eq!(
        revocation_of("no.token", NOW).unwrap_err(),
        TokenError::Malformed
    );
}
