//! Cross-origin requests (CORS), for SMART apps that run in a browser.
//! Discovery (`/metadata`, `/.well-known/*`) answers any origin; the FHIR
//! API and the token, introspection and revocation endpoints answer the
//! origins configured (`cors_origins`, or any with `*`) and the origins of
//! the registered apps' redirect URIs ([`Registered`]). The authorization
//! pages are navigations, never called across origins.
//! Tokens travel in the `Authorization` header, never in cookies, so no
//! credentials are allowed.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::HttpResponse;

use crate::error::ApiError;

/// Which origins may call the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(Vec<String>);

/// The origins of the registered apps' redirect URIs (lower case), kept
/// current by the binary as apps are registered and removed.
pub type Registered = std::sync::Arc<std::sync::RwLock<std::collections::HashSet<String>>>;

/// Headers a browser may send, besides the CORS-safelisted ones.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, X-Request-Id";
/// Headers a browser script may read, besides the safelisted ones.
const EXPOSE_HEADERS: &str = "Location, Content-Location, ETag, Last-Modified, X-Progress, Retry-After, WWW-Authenticate, X-Request-Id";
const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";

impl Origins {
    /// `origins` as configured: each `scheme://host[:port]`, or `*`.
    pub fn new(origins: Vec<String>) -> Result<Origins, String> {
        for origin in &origins {
            let valid = origin == "*"
                || origin.split_once("://").is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https")
                        && !rest.is_empty()
                        && !rest.contains(['/', '?', '#', ' '])
                });
            if !valid {
                return Err(format!(
                    "CORS origin '{origin}' must be scheme://host[:port] (no path) or *"
                ));
            }
        }
        Ok(Origins(origins))
    }

    /// Whether the FHIR API answers any origin at all (the
    /// CapabilityStatement's `rest.security.cors`).
    pub fn any_configured(&self) -> bool {
        !self.0.is_empty()
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin` to
    /// `path`; `None` when that origin may not call it.
    fn allowed(&self, origin: &str, path: &str, registered: Option<&Registered>) -> Option<String> {
        if is_discovery(path) || self.0.iter().any(|o| o == "*") {
            return Some("*".to_owned());
        }
        let configured = self.0.iter().any(|o| o.eq_ignore_ascii_case(origin));
        let of_an_app = !is_page(path)
            && registered.is_some_and(|r| {
                r.read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&origin.to_ascii_lowercase())
            });
        (configured || of_an_app).then(|| origin.to_owned())
    }
}

/// The authorization server's pages and the EHR's launch endpoint.
fn is_page(path: &str) -> bool {
    matches!(
        path,
        "/auth/authorize" | "/auth/sign-in" | "/auth/patient" | "/auth/consent" | "/auth/launch"
    )
}

fn is_discovery(path: &str) -> bool {
    path == "/metadata" || path.starts_with("/.well-known/")
}

/// A preflight (`OPTIONS` with `Access-Control-Request-Method`): answered
/// here, before routing. `None` for any other request.
pub(crate) fn preflight(
    origins: &Origins,
    registered: Option<&Registered>,
    req: &ServiceRequest,
) -> Option<HttpResponse> {
    if req.method() != Method::OPTIONS
        || !req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    Some(match origins.allowed(origin, req.path(), registered) {
        Some(allow) => HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"))
            .finish(),
        None => {
            let error = ApiError::Forbidden(format!(
                "the origin {origin} may not call this server (cors_origins, or a registered app's redirect URI)"
            ));
            crate::negotiate::outcome_response(
                error.status(),
                &error.outcome(),
                crate::negotiate::Representation::default(),
            )
        }
    })
}

/// Adds the CORS headers to the response of a request from an allowed
/// origin.
pub(crate) fn decorate(
    origins: &Origins,
    registered: Option<&Registered>,
    response: &mut ServiceResponse<BoxBody>,
) {
    let Some(origin) = response
        .request()
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
    else {
        return;
    };
    let path = response.request().path().to_owned();
    let headers = response.headers_mut();
    headers.append(header::VARY, header::HeaderValue::from_static("Origin"));
    let Some(allow) = origins.allowed(&origin, &path, registered) else {
        return;
    };
    if let Ok(value) = header::HeaderValue::from_str(&allow) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_when_configured_and_matched_exactly() {
        assert!(Origins::new(vec!["https://app.example.org/path".into()]).is_err());
        assert!(Origins::new(vec!["app.example.org".into()]).is_err());
        let origins = Origins::new(vec![
            "https://app.example.org".into(),
            "http://localhost:3000".into(),
        ])
        .unwrap();
        assert_eq!(
            origins
                .allowed("https://app.example.org", "/Patient", None)
                .as_deref(),
            Some("https://app.example.org")
        );
        assert_eq!(
            origins.allowed("https://evil.example.org", "/Patient", None),
            None
        );
        assert_eq!(
            origins.allowed("https://app.example.org.evil.com", "/Patient", None),
            None
        );
        // Discovery answers anyone.
        assert_eq!(
            origins
                .allowed("https://evil.example.org", "/metadata", None)
                .as_deref(),
            Some("*")
        );
        assert_eq!(
            origins
                .allowed("https://evil.example.org", "/.well-known/jwks.json", None)
                .as_deref(),
            Some("*")
        );
        assert!(!Origins::default().any_configured());
        assert_eq!(
            Origins::default().allowed("https://a.example", "/Patient", None),
            None
        );
        // A registered app's origin, on the API and the token endpoint
        // but not the pages.
        let registered: Registered = Default::default();
        registered
            .write()
            .unwrap()
            .insert("https://growth.example".into());
        for path in ["/Patient", "/auth/token"] {
            assert_eq!(
                Origins::default()
                    .allowed("https://Growth.example", path, Some(&registered))
                    .as_deref(),
                Some("https://Growth.example")
            );
        }
        assert_eq!(
            Origins::default().allowed(
                "https://growth.example",
                "/auth/authorize",
                Some(&registered)
            ),
            None
        );
        assert_eq!(
            Origins::default().allowed("https://other.example", "/Patient", Some(&registered)),
            None
        );
        let any = Origins::new(vec!["*".into()]).unwrap();
        assert_eq!(
            any.allowed("https://a.example", "/Patient", None)
                .as_deref(),
            Some("*")
        );
    }
}
