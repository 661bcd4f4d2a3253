//! The people who sign in to Hearth's authorization server: each is a FHIR
//! Patient or Practitioner, and proves who they are with a password kept
//! as an Argon2id hash (`crate::client::hash_secret`).

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    /// `Patient/<id>` or `Practitioner/<id>`.
    pub fhir_user: String,
    pub password_hash: String,
    /// When the user was added, in milliseconds since the epoch.
    pub created_at: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("fhir_user", &self.fhir_user)
            .finish_non_exhaustive()
    }
}

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Checks a username: 1 to 128 characters, no spaces or controls.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 128
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks a `fhirUser` reference a user may be: `Patient/<id>` or
/// `Practitioner/<id>`, the id a FHIR id.
pub fn valid_fhir_user(reference: &str) -> bool {
    reference.split_once('/').is_some_and(|(t, id)| {
        matches!(t, "Patient" | "Practitioner")
            && !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    })
}

impl User {
    /// The patient a Patient user is.
    pub fn patient(&self) -> Option<&str> {
        self.fhir_user.strip_prefix("Patient/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_fhir_users_are_checked() {
        assert!(valid_username("alice@example.org"));
        assert!(!valid_username("al ice"));
        assert!(!valid_username(""));
        assert!(valid_fhir_user("Patient/123"));
        assert!(valid_fhir_user("Practitioner/dr-9"));
        assert!(!valid_fhir_user("Organization/1"));
        assert!(!valid_fhir_user("Patient/"));
        assert!(!valid_fhir_user("Patient/a/b"));
    }
}
