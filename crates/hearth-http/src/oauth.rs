//! The authorization server's HTTP endpoints: SMART discovery
//! (`/.well-known/smart-configuration`), the token endpoint, introspection
//! and revocation. What each answers is decided in `hearth_auth::oauth`;
//! this module reads forms and headers and writes RFC 6749 JSON.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use hearth_auth::oauth::{AuthServer, Basic, OAuthError, Params};
use serde_json::{json, Value};

use crate::AppState;

/// The capabilities Hearth's authorization server has, as SMART names
/// them: each is what a route serves.
const CAPABILITIES: [&str; 18] = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
];

/// `GET /.well-known/smart-configuration` (SMART App Launch 2.2 §
/// Discovery): JSON whatever the Accept, absolute URLs. Without an
/// authorization server, 404.
pub async fn configuration(state: web::Data<AppState>) -> HttpResponse {
    let Some(server) = &state.oauth else {
        return error_json(
            404,
            &json!({"error": "not_found", "error_description": "this server has no authorization server (auth = \"smart\" serves one)"}),
        );
    };
    json_response(200, &smart_configuration(server))
}

/// The discovery document: only what this server does.
pub fn smart_configuration(server: &AuthServer) -> Value {
    json!({
        "issuer": server.base(),
        "jwks_uri": format!("{}/.well-known/jwks.json", server.base()),
        "authorization_endpoint": server.endpoint("authorize"),
        "token_endpoint": server.endpoint("token"),
        "introspection_endpoint": server.endpoint("introspect"),
        "revocation_endpoint": server.endpoint("revoke"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "scopes_supported": [
            "openid", "fhirUser", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access",
            "patient/*.cruds", "patient/*.rs", "user/*.cruds", "user/*.rs",
            "system/*.cruds", "system/*.rs", "patient/*.read", "user/*.read", "system/*.read",
        ],
        // PKCE is required, with S256 only (never plain).
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    })
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0).
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let Some(server) = &state.oauth else {
        return error_json(
            404,
            &json!({"error": "not_found", "error_description": "this server has no authorization server (auth = \"smart\" serves one)"}),
        );
    };
    json_response(
        200,
        &json!({
            "issuer": server.base(),
            "authorization_endpoint": server.endpoint("authorize"),
            "token_endpoint": server.endpoint("token"),
            "jwks_uri": format!("{}/.well-known/jwks.json", server.base()),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "fhirUser", "profile", "offline_access", "online_access"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
        }),
    )
}

/// The `oauth-uris` extension of the CapabilityStatement's
/// `rest.security` (SMART App Launch; some clients discover only by it).
pub fn oauth_uris(server: &AuthServer) -> Value {
    json!({
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [
            {"url": "authorize", "valueUri": server.endpoint("authorize")},
            {"url": "token", "valueUri": server.endpoint("token")},
            {"url": "introspect", "valueUri": server.endpoint("introspect")},
            {"url": "revoke", "valueUri": server.endpoint("revoke")},
        ],
    })
}

/// `POST /auth/token`.
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        state,
        &req,
        payload,
        |server, store, params, basic, _, now| server.token(store, params, basic, now),
    )
    .await
}

/// `POST /auth/launch`: an EHR client (registered with `--launches`)
/// creates a launch context for an app: form parameters `app`, `patient`,
/// `encounter`, `fhirContext` (a JSON array), `intent`,
/// `need_patient_banner`, `smart_style_url`; answers `launch`,
/// `expires_in` and, when the app registered a launch URI, `launch_url`.
pub async fn launch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        state,
        &req,
        payload,
        |server, store, params, basic, _, now| server.create_launch(store, params, basic, now),
    )
    .await
}

/// `POST /auth/introspect` (RFC 7662): a confidential client's
/// credentials, or a bearer token of the client whose tokens it asks about.
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        state,
        &req,
        payload,
        |server, store, params, basic, bearer, now| {
            server.introspect(store, params, basic, bearer.as_deref(), now)
        },
    )
    .await
}

/// `POST /auth/revoke` (RFC 7009): 200 with an empty body once the token
/// is revoked, or was not valid anyway.
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        state,
        &req,
        payload,
        |server, store, params, basic, _, now| {
            server
                .revoke(store, params, basic, now)
                .map(|()| Value::Null)
        },
    )
    .await
}

type Endpoint = fn(
    &AuthServer,
    &hearth_store::Store,
    &Params,
    Option<&Basic>,
    Option<String>,
    i64,
) -> Result<Value, OAuthError>;

/// Reads the form and the credentials of `req`, runs `endpoint` off the
/// async workers (Argon2, signatures and the store all block), and answers
/// its JSON or its error.
async fn respond(
    state: web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
) -> HttpResponse {
    let Some(server) = state.oauth.clone() else {
        return error_json(
            404,
            &json!({"error": "invalid_request", "error_description": "this server has no authorization server"}),
        );
    };
    let read = match form(&state, req, payload).await {
        Ok(params) => credentials(req).map(|(basic, bearer)| (params, basic, bearer)),
        Err(e) => Err(e),
    };
    let (params, basic, bearer) = match read {
        Ok(read) => read,
        Err(e) => return oauth_error(&e, false),
    };
    let used_basic = basic.is_some();
    let store = state.store.clone();
    let now = hearth_model::datetime::now_ms() / 1000;
    let answer =
        web::block(move || endpoint(&server, &store, &params, basic.as_ref(), bearer, now)).await;
    match answer {
        Ok(Ok(Value::Null)) => no_store(HttpResponse::Ok()).finish(),
        Ok(Ok(value)) => json_response(200, &value),
        Ok(Err(e)) => {
            tracing::info!(error = e.code(), "oauth request refused");
            oauth_error(&e, used_basic)
        }
        Err(_) => oauth_error(
            &OAuthError::Unavailable("the server is shutting down".into()),
            false,
        ),
    }
}

/// The form parameters of a POST (RFC 6749: form-encoded only, none in
/// the URL).
async fn form(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Params, OAuthError> {
    let pairs = crate::pages::read_form(state, req, payload)
        .await
        .map_err(OAuthError::InvalidRequest)?;
    if !req.query_string().is_empty() {
        return Err(OAuthError::InvalidRequest(
            "parameters go in the request body, not the URL".into(),
        ));
    }
    Params::new(pairs)
}

/// The request's `Authorization`: Basic client credentials, or a bearer
/// token (introspection).
fn credentials(req: &HttpRequest) -> Result<(Option<Basic>, Option<String>), OAuthError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok((None, None));
    };
    if values.next().is_some() {
        return Err(OAuthError::InvalidRequest(
            "the request has more than one Authorization header".into(),
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| OAuthError::InvalidClient("the Authorization header is not text".into()))?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        Ok((Some(Basic::parse(rest)?), None))
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
        Ok((None, Some(rest.trim().to_owned())))
    } else {
        Err(OAuthError::InvalidClient(
            "the Authorization header must be Basic client credentials or a Bearer token".into(),
        ))
    }
}

/// An RFC 6749 §5.2 error; a client that tried Basic gets the challenge
/// (§5.2: `invalid_client` with 401).
fn oauth_error(error: &OAuthError, basic: bool) -> HttpResponse {
    let mut response = error_json(error.status(), &error.body());
    if error.status() == 401 {
        let challenge = if basic {
            r#"Basic realm="hearth""#
        } else {
            r#"Bearer realm="hearth""#
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(challenge),
        );
    }
    response
}

fn error_json(status: u16, body: &Value) -> HttpResponse {
    json_response(status, body)
}

/// JSON that no cache keeps (RFC 6749 §5.1).
fn json_response(status: u16, body: &Value) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    no_store(HttpResponse::build(status))
        .content_type("application/json")
        .body(body.to_string())
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}
