//! Who a request comes from, as its access token says.

use crate::scope::Scopes;

/// The subject of a verified access token and its launch context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's issuer (`iss`).
    pub issuer: String,
    /// `sub`: the user, or for a backend service the client itself.
    pub subject: Option<String>,
    /// The client the token was issued to (`client_id`, else `azp`).
    pub client_id: Option<String>,
    /// The user as a FHIR reference (`Patient/123`, `Practitioner/9`).
    pub fhir_user: Option<String>,
    /// The patient in context: what `patient/` scopes reach.
    pub patient: Option<String>,
    pub encounter: Option<String>,
    pub scopes: Scopes,
    /// When the token expires, in seconds since the epoch.
    pub expires_at: i64,
    /// The token's id (`jti`), for revocation.
    pub token_id: Option<String>,
}

impl Principal {
    /// The id of a Patient user (`fhirUser` = `Patient/…`): `user/`
    /// scopes reach that patient's data only.
    pub fn patient_user(&self) -> Option<&str> {
        let reference = self.fhir_user.as_deref()?;
        // `Patient/123`, or an absolute URL ending so.
        let path = match reference.split_once("://") {
            Some((_, rest)) => rest.rsplitn(3, '/').collect::<Vec<_>>(),
            None => reference.rsplitn(3, '/').collect::<Vec<_>>(),
        };
        match path.as_slice() {
            [id, "Patient"] if reference.split_once("://").is_none() => Some(*id),
            [id, "Patient", _] if reference.contains("://") => Some(*id),
            _ => None,
        }
        .filter(|id| !id.is_empty())
    }

    /// Who made a request, as a job records its owner: the client, else
    /// the subject.
    pub fn owner(&self) -> String {
        format!(
            "{}|{}",
            self.issuer,
            self.client_id
                .as_deref()
                .or(self.subject.as_deref())
                .unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_user(fhir_user: &str) -> Principal {
        Principal {
            issuer: "https://hearth.example/fhir".into(),
            subject: None,
            client_id: None,
            fhir_user: Some(fhir_user.into()),
            patient: None,
            encounter: None,
            scopes: Scopes::default(),
            expires_at: 0,
            token_id: None,
        }
    }

    #[test]
    fn a_patient_user_is_told_apart_from_other_users() {
        assert_eq!(with_user("Patient/123").patient_user(), Some("123"));
        assert_eq!(
            with_user("https://hearth.example/fhir/Patient/123").patient_user(),
            Some("123")
        );
        assert_eq!(with_user("Practitioner/9").patient_user(), None);
        assert_eq!(with_user("RelatedPerson/Patient/1").patient_user(), None);
        assert_eq!(with_user("Patient/1/_history/2").patient_user(), None);
    }
}
