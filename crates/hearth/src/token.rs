//! `hearth token`: an access token signed by this server's key, for an
//! operator or a service account (SMART apps get theirs from an
//! authorization server).

use clap::Args;
use hearth_auth::{Scope, Scopes, Signer, TokenRequest};
use hearth_store::Store;

use crate::config::{Auth, Config, ServeArgs};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The scopes, space-separated (e.g. "patient/*.rs", "system/*.cruds").
    #[arg(long)]
    pub scope: String,
    /// The patient in context: what patient/ scopes reach.
    #[arg(long)]
    pub patient: Option<String>,
    /// The client the token is for.
    #[arg(long)]
    pub client: Option<String>,
    /// The user, as a FHIR reference (Practitioner/9, Patient/123).
    #[arg(long = "fhir-user")]
    pub fhir_user: Option<String>,
    /// Seconds the token is valid [default: 3600].
    #[arg(long = "expires-in", default_value_t = 3600)]
    pub expires_in: i64,
    #[command(flatten)]
    pub settings: ServeArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Scope(#[from] hearth_auth::ScopeError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot open the database: {0}")]
    Store(#[from] hearth_store::StoreError),
}

/// Checks the request and signs the token with the store's newest key.
pub fn issue(args: &TokenArgs, config: &Config) -> Result<String, TokenError> {
    if !matches!(config.auth, Auth::Smart { .. }) {
        return Err(TokenError::Invalid(
            "tokens are for a server with auth = \"smart\" (set it, with base_url, in the settings given here)".into(),
        ));
    }
    let base = config
        .base_url
        .clone()
        .ok_or_else(|| TokenError::Invalid("base_url is not set".into()))?;
    let scopes = Scopes::parse_strict(&args.scope)?;
    if scopes.resource_scopes().next().is_none() {
        return Err(TokenError::Invalid(format!(
            "'{}' grants no access to resources; give patient/, user/ or system/ scopes",
            args.scope
        )));
    }
    let patient_scoped = scopes
        .resource_scopes()
        .any(|s| s.level == hearth_auth::Level::Patient);
    if patient_scoped && args.patient.is_none() {
        return Err(TokenError::Invalid(
            "patient/ scopes reach the patient in context: give --patient".into(),
        ));
    }
    if let Some(reference) = &args.fhir_user {
        let valid = reference.split_once('/').is_some_and(|(t, id)| {
            matches!(
                t,
                "Patient" | "Practitioner" | "PractitionerRole" | "RelatedPerson" | "Person"
            ) && !id.is_empty()
                && !id.contains('/')
        });
        if !valid {
            return Err(TokenError::Invalid(format!(
                "--fhir-user '{reference}' must be Patient/<id>, Practitioner/<id>, PractitionerRole/<id>, RelatedPerson/<id> or Person/<id>"
            )));
        }
    }
    if args.expires_in <= 0 {
        return Err(TokenError::Invalid("--expires-in must be positive".into()));
    }
    let store = Store::open(&config.database(), &config.store)?;
    // A granular scope must be a search the server can run.
    let custom = store.custom_params();
    for scope in scopes.iter() {
        if let Scope::Resource(s) = scope {
            if let (Some(t), false) = (&s.resource_type, s.filter.is_empty()) {
                hearth_store::check_filter(t, &s.filter, &custom)
                    .map_err(|e| TokenError::Invalid(format!("scope '{scope}': {e}")))?;
            }
        }
    }
    let keys = store.signing_keys()?;
    let signer = Signer::new(&base, &keys)
        .ok_or_else(|| TokenError::Invalid("the store has no signing key".into()))?;
    let now = hearth_model::datetime::now_ms() / 1000;
    let (token, _) = signer.issue(
        &TokenRequest {
            scopes,
            subject: args.client.clone(),
            client_id: args.client.clone(),
            patient: args.patient.clone(),
            encounter: None,
            fhir_user: args.fhir_user.clone(),
            lifetime_secs: args.expires_in,
        },
        now,
    );
    Ok(token)
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The access token to revoke (as sent in `Authorization: Bearer`).
    pub token: String,
    #[command(flatten)]
    pub settings: ServeArgs,
}

/// Adds `args.token` to the store's revoked tokens: every server on the
/// store refuses it within 2 s. Answers what it revoked.
pub fn revoke(args: &RevokeArgs, config: &Config) -> Result<String, TokenError> {
    let now = hearth_model::datetime::now_ms() / 1000;
    let (id, expires_at) = hearth_auth::token::revocation_of(args.token.trim(), now)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    if expires_at < now {
        return Ok(format!("{id} has expired already; nothing to revoke"));
    }
    let store = Store::open(&config.database(), &config.store)?;
    store.revoke_token(&id, expires_at)?;
    Ok(format!(
        "revoked {id} (refused by every server on this store within 2 s)"
    ))
}
