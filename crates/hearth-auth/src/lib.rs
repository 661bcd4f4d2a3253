//! SMART-on-FHIR authorization for Hearth, free of HTTP: the scopes a
//! token carries ([`scope`]), who it speaks for ([`principal`]), the grant
//! a request runs under ([`grant`]), and the tokens themselves ([`token`],
//! signed with the keys of [`keys`]), the clients registered with Hearth's
//! authorization server ([`client`]) and the assertions by which a client
//! proves who it is ([`assertion`], with keys fetched by [`jwks`]). `hearth-http` reads the bearer token
//! and asks [`token::Verifier`]; `hearth-store` turns the [`grant::Grant`]
//! into SQL.

pub mod assertion;
pub mod authorize;
pub mod client;
pub mod grant;
pub mod jwks;
pub mod keys;
pub mod oauth;
pub mod principal;
pub mod scope;
#[cfg(test)]
mod test_keys;
pub mod token;
pub mod user;

pub use grant::{Grant, Limit, TypeAccess};
pub use keys::SigningKey;
pub use principal::Principal;
pub use scope::{Level, Permission, Permissions, Scope, ScopeError, Scopes};
pub use token::{ExternalIssuer, Signer, TokenError, TokenRequest, Verified, Verifier};

/// Whether `id` is a FHIR id that can name a resource in a URL (not `.`
/// or `..`).
pub(crate) fn is_fhir_id(id: &str) -> bool {
    id != "."
        && id != ".."
        && hearth_model::primitives::check("id", &serde_json::Value::String(id.to_owned())).is_ok()
}

/// SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}
