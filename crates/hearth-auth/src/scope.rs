//! SMART-on-FHIR scopes (App Launch 2.2, section "Scopes and Launch
//! Context"): `patient/Observation.rs`, `user/*.cruds`,
//! `system/Patient.read` (v1), `patient/Observation.rs?category=…|laboratory`
//! (granular), and the scopes that ask for context or identity
//! (`launch/patient`, `openid`, `fhirUser`, `offline_access`, …).

use std::fmt;

/// Whose data a clinical scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// The patient in context (`patient/`).
    Patient,
    /// What the signed-in user may see (`user/`).
    User,
    /// A backend service, without a user (`system/`).
    System,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "patient",
            Level::User => "user",
            Level::System => "system",
        }
    }
}

/// The SMART v2 permissions, `c` `r` `u` `d` `s`, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

/// One SMART v2 permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `c`: create (and the create of a conditional or upserting update).
    Create,
    /// `r`: read, vread, instance history.
    Read,
    /// `u`: update and patch.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search, type and system history.
    Search,
}

impl Permission {
    const ALL: [Permission; 5] = [
        Permission::Create,
        Permission::Read,
        Permission::Update,
        Permission::Delete,
        Permission::Search,
    ];

    fn bit(self) -> u8 {
        match self {
            Permission::Create => 1,
            Permission::Read => 2,
            Permission::Update => 4,
            Permission::Delete => 8,
            Permission::Search => 16,
        }
    }

    pub fn letter(self) -> char {
        match self {
            Permission::Create => 'c',
            Permission::Read => 'r',
            Permission::Update => 'u',
            Permission::Delete => 'd',
            Permission::Search => 's',
        }
    }
}

impl Permissions {
    pub const ALL: Permissions = Permissions(31);
    /// v1 `read`.
    pub const READ: Permissions = Permissions(2 | 16);
    /// v1 `write`.
    pub const WRITE: Permissions = Permissions(1 | 4 | 8);

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, permission: Permission) -> Permissions {
        Permissions(self.0 | permission.bit())
    }

    /// Whether every permission of `other` is in `self`.
    pub fn covers(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The v2 letters, in `cruds` order.
    pub fn letters(self) -> String {
        Permission::ALL
            .iter()
            .filter(|p| self.contains(**p))
            .map(|p| p.letter())
            .collect()
    }
}

/// A clinical scope: a level, a resource type (or every type), the
/// permissions, and for a granular scope the search it is limited to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub level: Level,
    /// `None` for `*`.
    pub resource_type: Option<String>,
    pub permissions: Permissions,
    /// The granular search parameters (`?category=…`), all of which a
    /// resource must meet; empty for the whole type.
    pub filter: Vec<(String, String)>,
    /// Written in SMART v1 syntax (`.read`, `.write`, `.*`): echoed as such.
    pub v1: bool,
}

impl ResourceScope {
    /// Whether this scope allows `permission` on resources of `resource_type`.
    pub fn allows(&self, resource_type: &str, permission: Permission) -> bool {
        self.permissions.contains(permission)
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| t == resource_type)
    }

    /// Whether everything this scope allows, `wider` allows too: the same
    /// level, its type or every type, at least these permissions, and a
    /// search this scope's own narrows (or none).
    pub fn within(&self, wider: &ResourceScope) -> bool {
        self.level == wider.level
            && wider
                .resource_type
                .as_ref()
                .is_none_or(|t| self.resource_type.as_ref() == Some(t))
            && wider.permissions.covers(self.permissions)
            && wider.filter.iter().all(|f| self.filter.contains(f))
    }
}

/// One scope of a space-separated scope string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Resource(ResourceScope),
    /// `launch`: the EHR launch's context is wanted.
    Launch,
    /// `launch/patient`, `launch/encounter`: a standalone launch asks for
    /// that context to be chosen.
    LaunchContext(String),
    OpenId,
    FhirUser,
    /// `profile` (SMART v1's name for `fhirUser`).
    Profile,
    OfflineAccess,
    OnlineAccess,
}

/// Why a scope string is not a SMART scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope '{scope}' {reason}")]
pub struct ScopeError {
    pub scope: String,
    pub reason: String,
}

impl Scope {
    /// Reads one scope. `Ok(None)` for a scope that is not SMART's (an
    /// authorization server may add its own, like `email`): it grants
    /// nothing here. A scope that starts like a clinical one
    /// (`patient/`, `user/`, `system/`) must be one.
    pub fn parse(text: &str) -> Result<Option<Scope>, ScopeError> {
        let error = |reason: &str| ScopeError {
            scope: text.to_owned(),
            reason: reason.to_owned(),
        };
        let simple = match text {
            "launch" => Some(Scope::Launch),
            "launch/patient" | "launch/encounter" => {
                Some(Scope::LaunchContext(text["launch/".len()..].to_owned()))
            }
            "openid" => Some(Scope::OpenId),
            "fhirUser" => Some(Scope::FhirUser),
            "profile" => Some(Scope::Profile),
            "offline_access" => Some(Scope::OfflineAccess),
            "online_access" => Some(Scope::OnlineAccess),
            _ => None,
        };
        if simple.is_some() {
            return Ok(simple);
        }
        let Some((level, rest)) = text.split_once('/') else {
            return Ok(None);
        };
        let level = match level {
            "patient" => Level::Patient,
            "user" => Level::User,
            "system" => Level::System,
            _ => return Ok(None),
        };
        let (body, query) = match rest.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (rest, None),
        };
        let Some((resource_type, permissions)) = body.split_once('.') else {
            return Err(error(
                "has no permissions: write [level]/[type].[permissions], such as patient/Observation.rs",
            ));
        };
        let resource_type = match resource_type {
            "*" => None,
            t if hearth_model::structure::is_resource_type(t) => Some(t.to_owned()),
            _ => {
                return Err(error(&format!(
                    "names '{resource_type}', which is not an R4 resource type (or *)"
                )))
            }
        };
        let (permissions, v1) = match permissions {
            "read" => (Permissions::READ, true),
            "write" => (Permissions::WRITE, true),
            "*" => (Permissions::ALL, true),
            letters => (parse_letters(letters).map_err(|r| error(&r))?, false),
        };
        let filter = match query {
            None => Vec::new(),
            Some(_) if v1 => {
                return Err(error(
                    "limits a SMART v1 scope to a search; only v2 scopes (.rs, .cruds) may",
                ))
            }
            Some(query) => parse_filter(query).map_err(|r| error(&r))?,
        };
        if !filter.is_empty() && resource_type.is_none() {
            return Err(error("limits every type to one search; name the type"));
        }
        Ok(Some(Scope::Resource(ResourceScope {
            level,
            resource_type,
            permissions,
            filter,
            v1,
        })))
    }
}

/// `cruds` letters: each at most once, in that order (SMART 2.2: "the
/// permissions ... in the order c, r, u, d, s").
fn parse_letters(letters: &str) -> Result<Permissions, String> {
    if letters.is_empty() {
        return Err("has no permissions after the dot".into());
    }
    let mut permissions = Permissions::default();
    let mut next = 0;
    for ch in letters.chars() {
        let Some(at) = Permission::ALL.iter().position(|p| p.letter() == ch) else {
            return Err(format!(
                "has the permission '{ch}'; a SMART v2 scope has c, r, u, d and s, and v1 read, write and *"
            ));
        };
        if at < next {
            return Err(
                "writes its permissions out of order or twice; the order is c, r, u, d, s".into(),
            );
        }
        next = at + 1;
        permissions = permissions.with(Permission::ALL[at]);
    }
    Ok(permissions)
}

/// The search parameters of a granular scope: `name=value` pairs joined by
/// `&`, percent-decoded. Result parameters (`_sort`, `_include`, …) and
/// empty values have no meaning as a limit.
fn parse_filter(query: &str) -> Result<Vec<(String, String)>, String> {
    if query.is_empty() {
        return Err("has an empty search after '?'".into());
    }
    let mut pairs = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name.is_empty() || value.is_empty() {
            return Err("has a search parameter without a name or a value".into());
        }
        if matches!(
            name.split(':').next().unwrap_or_default(),
            "_sort"
                | "_count"
                | "_include"
                | "_revinclude"
                | "_summary"
                | "_elements"
                | "_total"
                | "_contained"
                | "_containedType"
                | "_format"
                | "_pretty"
        ) {
            return Err(format!(
                "limits a search with '{name}', which shapes results rather than selecting them"
            ));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Resource(s) => {
                write!(
                    f,
                    "{}/{}.",
                    s.level.as_str(),
                    s.resource_type.as_deref().unwrap_or("*")
                )?;
                if s.v1 {
                    let p = if s.permissions == Permissions::ALL {
                        "*"
                    } else if s.permissions == Permissions::WRITE {
                        "write"
                    } else {
                        "read"
                    };
                    f.write_str(p)
                } else {
                    f.write_str(&s.permissions.letters())?;
                    for (i, (name, value)) in s.filter.iter().enumerate() {
                        let separator = if i == 0 { '?' } else { '&' };
                        write!(f, "{separator}{}={}", Escaped(name), Escaped(value))?;
                    }
                    Ok(())
                }
            }
            Scope::Launch => f.write_str("launch"),
            Scope::LaunchContext(c) => write!(f, "launch/{c}"),
            Scope::OpenId => f.write_str("openid"),
            Scope::FhirUser => f.write_str("fhirUser"),
            Scope::Profile => f.write_str("profile"),
            Scope::OfflineAccess => f.write_str("offline_access"),
            Scope::OnlineAccess => f.write_str("online_access"),
        }
    }
}

/// A granular scope's parameter name or value as SMART writes it
/// (`category=http://…|laboratory`): only what a scope token cannot hold
/// (RFC 6749 §3.3: spaces, quotes, backslashes, controls, non-ASCII) and
/// what would change how it reads back (`%`, `&`, `=`, `+`, `#`) is
/// percent-encoded.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.bytes() {
            match byte {
                b'%' | b'&' | b'=' | b'+' | b'#' | b'"' | b'\\' => write!(f, "%{byte:02X}")?,
                0x21..=0x7e => write!(f, "{}", byte as char)?,
                _ => write!(f, "%{byte:02X}")?,
            }
        }
        Ok(())
    }
}

/// A scope string, parsed: the SMART scopes in it, in order, without
/// repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Reads a space-separated scope string (RFC 6749 section 3.3).
    /// Scopes that are not SMART's are passed over; a malformed clinical
    /// scope is an error naming it.
    pub fn parse(text: &str) -> Result<Scopes, ScopeError> {
        let mut scopes: Vec<Scope> = Vec::new();
        for part in text.split(' ').filter(|p| !p.is_empty()) {
            if let Some(scope) = Scope::parse(part)? {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        Ok(Scopes(scopes))
    }

    /// [`Scopes::parse`], refusing scopes that are not SMART's too: for
    /// scopes an operator or a client writes for Hearth.
    pub fn parse_strict(text: &str) -> Result<Scopes, ScopeError> {
        for part in text.split(' ').filter(|p| !p.is_empty()) {
            if Scope::parse(part)?.is_none() {
                return Err(ScopeError {
                    scope: part.to_owned(),
                    reason: "is not a SMART scope".into(),
                });
            }
        }
        Scopes::parse(text)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn resource_scopes(&self) -> impl Iterator<Item = &ResourceScope> {
        self.0.iter().filter_map(|s| match s {
            Scope::Resource(r) => Some(r),
            _ => None,
        })
    }

    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn from_vec(scopes: Vec<Scope>) -> Scopes {
        Scopes(scopes)
    }

    /// The first of these scopes that `allowed` does not cover: a clinical
    /// scope must be [`ResourceScope::within`] one of `allowed`, any other
    /// scope in it.
    pub fn first_outside(&self, allowed: &Scopes) -> Option<&Scope> {
        self.0.iter().find(|scope| match scope {
            Scope::Resource(r) => !allowed.resource_scopes().any(|a| r.within(a)),
            other => !allowed.contains(other),
        })
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(text: &str) -> ResourceScope {
        match Scope::parse(text) {
            Ok(Some(Scope::Resource(r))) => r,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn refused(text: &str) -> String {
        match Scope::parse(text) {
            Err(e) => e.to_string(),
            Ok(s) => panic!("{text} was accepted as {s:?}"),
        }
    }

    #[test]
    fn granular_scopes_are_written_as_smart_writes_them_and_read_back() {
        for text in [
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
            "user/Observation.rs?code=a%2Bb&status=final",
        ] {
            let scope = Scope::parse(text).unwrap().unwrap();
            assert_eq!(scope.to_string(), text);
            assert_eq!(Scope::parse(&scope.to_string()).unwrap().unwrap(), scope);
        }
        let encoded = Scope::parse("patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C8867-4")
            .unwrap()
            .unwrap();
        assert_eq!(
            encoded.to_string(),
            "patient/Observation.rs?code=http://loinc.org|8867-4"
        );
    }

    #[test]
    fn a_clients_allowed_scopes_cap_what_it_asks() {
        let allowed = Scopes::parse(
            "system/*.rs system/Observation.cruds?category=laboratory launch/patient",
        )
        .unwrap();
        let outside = |asked: &str| {
            Scopes::parse(asked)
                .unwrap()
                .first_outside(&allowed)
                .map(|s| s.to_string())
        };
        assert_eq!(outside("system/Patient.rs system/*.r"), None);
        assert_eq!(outside("system/Patient.read"), None, "v1 .read is rs");
        assert_eq!(
            outside("system/Observation.c?category=laboratory&code=1"),
            None
        );
        assert_eq!(
            outside("system/Observation.c").as_deref(),
            Some("system/Observation.c")
        );
        assert_eq!(
            outside("system/Patient.rs system/*.u").as_deref(),
            Some("system/*.u")
        );
        assert_eq!(
            outside("user/Patient.rs").as_deref(),
            Some("user/Patient.rs")
        );
        assert_eq!(outside("launch/patient"), None);
        assert_eq!(outside("openid").as_deref(), Some("openid"));
    }

    #[test]
    fn v2_scopes() {
        let s = resource("patient/Observation.rs");
        assert_eq!(s.level, Level::Patient);
        assert_eq!(s.resource_type.as_deref(), Some("Observation"));
        assert!(s.permissions.contains(Permission::Read));
        assert!(s.permissions.contains(Permission::Search));
        assert!(!s.permissions.contains(Permission::Create));
        assert!(!s.v1);
        let all = resource("system/*.cruds");
        assert_eq!(all.resource_type, None);
        assert_eq!(all.permissions, Permissions::ALL);
        assert!(all.allows("Patient", Permission::Delete));
        let c = resource("user/Patient.c");
        assert!(c.allows("Patient", Permission::Create));
        assert!(!c.allows("Patient", Permission::Read));
        assert!(!c.allows("Observation", Permission::Create));
    }

    #[test]
    fn v1_scopes_map_to_v2_permissions() {
        assert_eq!(
            resource("patient/Observation.read").permissions,
            Permissions::READ
        );
        assert_eq!(resource("user/*.write").permissions, Permissions::WRITE);
        assert_eq!(resource("user/*.*").permissions, Permissions::ALL);
        assert!(resource("patient/*.read").v1);
        // Echoed in the syntax they came in.
        assert_eq!(
            Scopes::parse("patient/*.read user/Observation.write")
                .unwrap()
                .to_string(),
            "patient/*.read user/Observation.write"
        );
    }

    #[test]
    fn granular_scopes() {
        let s = resource(
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        );
        assert_eq!(
            s.filter,
            vec![(
                "category".to_owned(),
                "http://terminology.hl7.org/CodeSystem/observation-category|laboratory".to_owned()
            )]
        );
        let two = resource(
            "patient/Observation.rs?category=vital-signs&code=http%3A%2F%2Floinc.org%7C8867-4",
        );
        assert_eq!(two.filter[1].1, "http://loinc.org|8867-4");
        assert!(refused("patient/Observation.read?category=laboratory").contains("v1"));
        assert!(refused("patient/*.rs?category=laboratory").contains("name the type"));
        assert!(refused("patient/Observation.rs?").contains("empty"));
        assert!(refused("patient/Observation.rs?category=").contains("without a name or a value"));
        assert!(
            refused("patient/Observation.rs?_include=Observation:subject").contains("_include")
        );
    }

    #[test]
    fn malformed_clinical_scopes_are_refused_with_a_reason() {
        assert!(refused("patient/Observation.sr").contains("order"));
        assert!(refused("patient/Observation.rr").contains("order"));
        assert!(refused("patient/Observation.rx").contains("'x'"));
        assert!(refused("patient/Observation.").contains("no permissions"));
        assert!(refused("patient/Observation").contains("no permissions"));
        assert!(refused("patient/Observations.rs").contains("not an R4 resource type"));
        assert!(refused("user/observation.rs").contains("not an R4 resource type"));
        assert!(refused("system/.rs").contains("not an R4 resource type"));
    }

    #[test]
    fn other_scopes() {
        assert_eq!(
            Scope::parse("launch/patient").unwrap(),
            Some(Scope::LaunchContext("patient".into()))
        );
        assert_eq!(Scope::parse("openid").unwrap(), Some(Scope::OpenId));
        assert_eq!(
            Scope::parse("offline_access").unwrap(),
            Some(Scope::OfflineAccess)
        );
        assert_eq!(Scope::parse("email").unwrap(), None);
        assert_eq!(Scope::parse("api://hearth/.default").unwrap(), None);
        let scopes = Scopes::parse("openid  email patient/*.rs patient/*.rs").unwrap();
        assert_eq!(scopes.to_string(), "openid patient/*.rs");
        assert!(Scopes::parse_strict("openid email")
            .unwrap_err()
            .to_string()
            .contains("'email'"));
    }
}
