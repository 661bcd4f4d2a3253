//! The grant a request runs under: for each resource type and permission,
//! whether it is allowed, and if so whether only within a patient's
//! compartment and only for resources that meet a search. The store turns
//! a grant into SQL (`hearth_store::access`), so what a request may see is
//! decided here once and enforced where the data is read.

use crate::principal::Principal;
use crate::scope::{Level, Permission, Permissions, ResourceScope};

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Everything, without limits: an open server (`auth = "none"`), or
    /// Hearth's own work (import, jobs).
    everything: bool,
    rules: Vec<Rule>,
}

/// One granted scope, as it applies to this request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    resource_type: Option<String>,
    permissions: Permissions,
    level: Level,
    /// The patient whose data the rule reaches; `None` for all patients.
    patient: Option<String>,
    filter: Vec<(String, String)>,
}

/// What a grant allows of one type and permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeAccess<'g> {
    /// Nothing.
    None,
    /// Every resource of the type.
    All,
    /// The resources that meet one of these limits (never empty).
    Limited(Vec<Limit<'g>>),
}

/// A resource is within a limit when it belongs to `patient` (if set) and
/// meets every parameter of `filter` (a granular scope's search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<'g> {
    pub patient: Option<&'g str>,
    pub filter: &'g [(String, String)],
}

impl Limit<'_> {
    /// Whether every resource within `other` is within `self`.
    fn covers(&self, other: &Limit<'_>) -> bool {
        (self.patient.is_none() || self.patient == other.patient)
            && self.filter.iter().all(|p| other.filter.contains(p))
    }
}

impl TypeAccess<'_> {
    pub fn is_none(&self) -> bool {
        matches!(self, TypeAccess::None)
    }
}

impl Grant {
    /// No limits.
    pub fn everything() -> Grant {
        Grant {
            everything: true,
            rules: Vec::new(),
        }
    }

    /// Nothing at all.
    pub fn nothing() -> Grant {
        Grant {
            everything: false,
            rules: Vec::new(),
        }
    }

    /// The grant of a verified token: the union of its clinical scopes.
    /// A `patient/` scope reaches the patient in context, and nothing when
    /// there is none; a `user/` scope reaches what the user may see, which
    /// for a Patient user is that patient's data; a `system/` scope
    /// reaches everything of its type.
    pub fn of(principal: &Principal) -> Grant {
        let rules = principal
            .scopes
            .resource_scopes()
            .filter_map(|scope| {
                let patient = match scope.level {
                    Level::Patient => Some(principal.patient.clone()?),
                    Level::User => principal.patient_user().map(str::to_owned),
                    Level::System => None,
                };
                Some(Rule::new(scope, patient))
            })
            .collect();
        Grant {
            everything: false,
            rules,
        }
    }

    pub fn is_everything(&self) -> bool {
        self.everything
    }

    /// The part of this grant its `system/` scopes give: what a
    /// system-level export reaches (Bulk Data kicks off `/$export` under
    /// `system/` scopes; a user's or a patient's go through `Patient` or
    /// `Group`).
    pub fn system_part(&self) -> Grant {
        Grant {
            everything: self.everything,
            rules: self
                .rules
                .iter()
                .filter(|r| r.level == Level::System)
                .cloned()
                .collect(),
        }
    }

    /// What this grant allows of `resource_type` for `permission`. A
    /// patient limit on a type whose resources never belong to a patient
    /// (Practitioner, Organization, …) is no limit: those are readable
    /// under a `patient/` scope for their type.
    pub fn access(&self, resource_type: &str, permission: Permission) -> TypeAccess<'_> {
        if self.everything {
            return TypeAccess::All;
        }
        let patient_data = hearth_model::compartments::patient_links(resource_type).is_some();
        let mut limits: Vec<Limit<'_>> = Vec::new();
        for rule in &self.rules {
            if !rule.allows(resource_type, permission) {
                continue;
            }
            let limit = Limit {
                patient: rule.patient.as_deref().filter(|_| patient_data),
                filter: &rule.filter,
            };
            if limit.patient.is_none() && limit.filter.is_empty() {
                return TypeAccess::All;
            }
            if !limits.contains(&limit) {
                limits.push(limit);
            }
        }
        if limits.is_empty() {
            return TypeAccess::None;
        }
        // A limit within a broader one adds nothing.
        let all = limits.clone();
        limits.retain(|l| !all.iter().any(|other| other != l && other.covers(l)));
        TypeAccess::Limited(limits)
    }

    /// Whether `permission` is granted on `resource_type` at all, limited
    /// or not.
    pub fn allows_some(&self, resource_type: &str, permission: Permission) -> bool {
        !self.access(resource_type, permission).is_none()
    }

    /// Whether the grant reaches every resource of every type with this
    /// permission at system level: the administrative grant `$reindex`
    /// needs (`system/*.u`, `system/*.cruds`, `system/*.*`, `system/*.write`).
    pub fn is_system_wide(&self, permission: Permission) -> bool {
        self.everything
            || self.rules.iter().any(|r| {
                r.level == Level::System
                    && r.resource_type.is_none()
                    && r.filter.is_empty()
                    && r.permissions.contains(permission)
            })
    }

    /// Whether `permission` on `resource_type` is granted at system level
    /// without limits: what a change to the server's own definitions
    /// (a SearchParameter) needs.
    pub fn is_system_level(&self, resource_type: &str, permission: Permission) -> bool {
        self.everything
            || self.rules.iter().any(|r| {
                r.level == Level::System
                    && r.filter.is_empty()
                    && r.allows(resource_type, permission)
            })
    }

    /// The types with `permission` granted, limited or not; `None` when
    /// every type is.
    pub fn types_with(&self, permission: Permission) -> Option<Vec<&'static str>> {
        if self.everything
            || self
                .rules
                .iter()
                .any(|r| r.resource_type.is_none() && r.permissions.contains(permission))
        {
            return None;
        }
        Some(
            hearth_model::structure::resource_types()
                .filter(|t| self.allows_some(t, permission))
                .collect(),
        )
    }
}

impl Rule {
    fn new(scope: &ResourceScope, patient: Option<String>) -> Rule {
        Rule {
            resource_type: scope.resource_type.clone(),
            permissions: scope.permissions,
            level: scope.level,
            patient,
            filter: scope.filter.clone(),
        }
    }

    fn allows(&self, resource_type: &str, permission: Permission) -> bool {
        self.permissions.contains(permission)
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| t == resource_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scopes;

    fn principal(scopes: &str, patient: Option<&str>, fhir_user: Option<&str>) -> Principal {
        Principal {
            issuer: "https://hearth.example/fhir".into(),
            subject: Some("someone".into()),
            client_id: Some("app".into()),
            fhir_user: fhir_user.map(str::to_owned),
            patient: patient.map(str::to_owned),
            encounter: None,
            scopes: Scopes::parse(scopes).unwrap(),
            expires_at: i64::MAX,
            token_id: None,
        }
    }

    fn grant(scopes: &str, patient: Option<&str>) -> Grant {
        Grant::of(&principal(scopes, patient, None))
    }

    fn only_patient(id: &str) -> TypeAccess<'_> {
        TypeAccess::Limited(vec![Limit {
            patient: Some(id),
            filter: &[],
        }])
    }

    #[test]
    fn patient_scopes_reach_the_patient_in_context() {
        let g = grant("patient/*.rs", Some("a"));
        assert_eq!(
            g.access("Observation", Permission::Search),
            only_patient("a")
        );
        assert_eq!(g.access("Patient", Permission::Read), only_patient("a"));
        assert_eq!(g.access("Device", Permission::Read), only_patient("a"));
        // Not a patient's data: readable whole.
        assert_eq!(g.access("Practitioner", Permission::Read), TypeAccess::All);
        assert_eq!(
            g.access("Organization", Permission::Search),
            TypeAccess::All
        );
        assert_eq!(
            g.access("Observation", Permission::Create),
            TypeAccess::None
        );
        assert_eq!(
            g.access("Observation", Permission::Delete),
            TypeAccess::None
        );
    }

    #[test]
    fn a_patient_scope_without_a_patient_grants_nothing() {
        let g = grant("patient/*.rs", None);
        assert_eq!(g.access("Observation", Permission::Read), TypeAccess::None);
        assert_eq!(g.access("Practitioner", Permission::Read), TypeAccess::None);
    }

    #[test]
    fn every_scope_counts_not_only_the_first() {
        let g = grant(
            "patient/Observation.rs patient/Condition.r user/Practitioner.rs",
            Some("a"),
        );
        assert_eq!(g.access("Observation", Permission::Read), only_patient("a"));
        assert_eq!(g.access("Condition", Permission::Read), only_patient("a"));
        assert_eq!(g.access("Condition", Permission::Search), TypeAccess::None);
        assert_eq!(
            g.access("Practitioner", Permission::Search),
            TypeAccess::All
        );
        assert_eq!(g.access("Encounter", Permission::Read), TypeAccess::None);
        assert_eq!(
            g.types_with(Permission::Search),
            Some(vec!["Observation", "Practitioner"])
        );
    }

    #[test]
    fn the_broadest_scope_wins() {
        let g = grant("patient/Observation.rs user/Observation.rs", Some("a"));
        assert_eq!(g.access("Observation", Permission::Search), TypeAccess::All);
        let g = grant(
            "patient/Observation.rs?category=laboratory patient/Observation.rs",
            Some("a"),
        );
        assert_eq!(
            g.access("Observation", Permission::Search),
            only_patient("a")
        );
    }

    #[test]
    fn granular_scopes_are_a_union_of_searches() {
        let g = grant(
            "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs",
            Some("a"),
        );
        let TypeAccess::Limited(limits) = g.access("Observation", Permission::Search) else {
            panic!()
        };
        assert_eq!(limits.len(), 2);
        assert!(limits.iter().all(|l| l.patient == Some("a")));
        assert_eq!(limits[1].filter[0].1, "vital-signs");
        // A granular scope on a type that is nobody's data keeps its filter.
        let g = grant("patient/Practitioner.rs?active=true", Some("a"));
        let TypeAccess::Limited(limits) = g.access("Practitioner", Permission::Read) else {
            panic!()
        };
        assert_eq!(limits[0].patient, None);
    }

    #[test]
    fn user_scopes_of_a_patient_user_reach_that_patient_only() {
        let g = Grant::of(&principal("user/*.rs", None, Some("Patient/p")));
        assert_eq!(g.access("Observation", Permission::Read), only_patient("p"));
        let g = Grant::of(&principal("user/*.rs", None, Some("Practitioner/d")));
        assert_eq!(g.access("Observation", Permission::Read), TypeAccess::All);
    }

    #[test]
    fn v1_scopes() {
        let g = grant("patient/*.read", Some("a"));
        assert!(g.allows_some("Observation", Permission::Read));
        assert!(g.allows_some("Observation", Permission::Search));
        assert!(!g.allows_some("Observation", Permission::Update));
        let g = grant("user/*.write", None);
        assert!(g.allows_some("Observation", Permission::Create));
        assert!(g.allows_some("Observation", Permission::Delete));
        assert!(!g.allows_some("Observation", Permission::Read));
    }

    #[test]
    fn administrative_grants() {
        assert!(grant("system/*.cruds", None).is_system_wide(Permission::Update));
        assert!(grant("system/*.write", None).is_system_wide(Permission::Update));
        assert!(!grant("user/*.cruds", None).is_system_wide(Permission::Update));
        assert!(!grant("system/Patient.cruds", None).is_system_wide(Permission::Update));
        assert!(grant("system/SearchParameter.cu", None)
            .is_system_level("SearchParameter", Permission::Create));
        assert!(!grant("user/SearchParameter.cu", None)
            .is_system_level("SearchParameter", Permission::Create));
        assert!(Grant::everything().is_system_wide(Permission::Update));
        assert_eq!(
            Grant::nothing().access("Patient", Permission::Read),
            TypeAccess::None
        );
    }
}
