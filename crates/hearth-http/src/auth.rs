//! The one point where a request's access is decided: its bearer token
//! (RFC 6750) is verified and becomes the grant the store holds every read
//! and write to (`hearth_store::Access`). Handlers never ask: the store
//! they are given can only reach what the grant allows.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::HttpRequest;
use hearth_auth::{Verified, Verifier};
use hearth_store::Access;

use crate::error::ApiError;

/// How this server authorizes requests.
pub enum Authorization {
    /// Every request may do everything (`auth = "none"`, or a loopback
    /// listener left unconfigured): for trusted networks and development.
    /// `warning` says why it is open when nobody chose it.
    Open { warning: Option<String> },
    /// A SMART-on-FHIR resource server: every request but the public ones
    /// (`/metadata`, `/.well-known/*`, `/health/*`) needs a bearer token.
    Smart(Arc<Verifier>),
}

impl Authorization {
    pub fn is_open(&self) -> bool {
        matches!(self, Authorization::Open { .. })
    }

    /// `rest.security` of the CapabilityStatement; `cors`: whether
    /// browsers may call the API from some origin.
    pub fn security(&self, cors: bool) -> serde_json::Value {
        match self {
            Authorization::Open { warning } => serde_json::json!({
                "cors": cors,
                "description": match warning {
                    Some(w) => format!("No authorization: every request is allowed. {w}"),
                    None => "No authorization (auth = \"none\"): every request is allowed. Run it only where every client is trusted.".to_owned(),
                },
            }),
            Authorization::Smart(_) => serde_json::json!({
                "cors": cors,
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }],
                    "text": "OAuth2 bearer tokens with SMART-on-FHIR scopes (App Launch 2.2)",
                }],
                "description": SMART_RULES,
            }),
        }
    }

    /// The access of `req`, from its `Authorization` header.
    pub fn access(&self, req: &HttpRequest) -> Result<(Access, Option<Arc<Verified>>), ApiError> {
        let Authorization::Smart(verifier) = self else {
            // Open: everything, whatever the request carries.
            return Ok((Access::everything(), None));
        };
        let token = bearer_token(req)?;
        let now = hearth_model::datetime::now_ms() / 1000;
        let verified = verifier
            .verify(token, now)
            .map_err(|e| ApiError::Unauthorized(Some(e.to_string())))?;
        let access = Access::shared(verified.grant.clone(), Some(verified.owner.clone()));
        Ok((access, Some(verified)))
    }
}

/// How SMART scopes are enforced, for the CapabilityStatement.
const SMART_RULES: &str = "Every request but /metadata, /.well-known/* and /health/* needs Authorization: Bearer with a JWT access token signed by this server (issued by its authorization server, described at /.well-known/smart-configuration; its keys at /.well-known/jwks.json) or by a configured issuer, for this server's base URL (aud). Scopes: SMART v1 (patient/Observation.read, user/*.write, system/*.*) and v2 (c, r, u, d, s; granular ?param=value), their union. r: read, vread, instance history; s: search, type and system history, $everything; c, u, d: create, update and patch, delete. A patient/ scope reaches the token's patient: resources in the patient's compartment, and resources of types outside the CompartmentDefinition that refer to the patient (Device.patient); types that never belong to a patient (Practitioner, Organization, Location, Medication, ...) are readable whole. A user/ scope of a Patient user (fhirUser Patient/x) reaches that patient the same way. Searches, totals, includes, chains, _has and history are held to the grant in the database; a resource outside it answers 404; a type or interaction not granted, 403. $export needs the types granted whole (system/ or user/ scopes); its status and files answer only the client that started it. $reindex needs system/*.u (or system/*.cruds, system/*.write); writing a SearchParameter, system/SearchParameter.c, .u or .d.";

/// The token of `Authorization: Bearer <token>`. Tokens in a query string
/// or a form body (RFC 6750 §2.2, §2.3) are not read: they end up in logs.
fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(ApiError::Unauthorized(None));
    };
    if values.next().is_some() {
        return Err(ApiError::Unauthorized(Some(
            "the request has more than one Authorization header".into(),
        )));
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized(Some("the Authorization header is not text".into())))?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(Some(
            "the Authorization header must carry a Bearer token".into(),
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::Unauthorized(Some(
            "the Bearer token is empty".into(),
        )));
    }
    Ok(token)
}

/// `WWW-Authenticate` for a 401 (RFC 6750 §3): no error code when no
/// token was given, `invalid_token` with a description otherwise.
pub(crate) fn challenge(description: Option<&str>) -> String {
    match description {
        None => r#"Bearer realm="hearth""#.to_owned(),
        Some(text) => {
            // The description's characters are limited (§3): no quotes or
            // backslashes, printable ASCII.
            let clean: String = text
                .chars()
                .map(|c| match c {
                    '"' | '\\' => '\'',
                    ' '..='~' => c,
                    _ => '?',
                })
                .collect();
            format!(r#"Bearer realm="hearth", error="invalid_token", error_description="{clean}""#)
        }
    }
}
