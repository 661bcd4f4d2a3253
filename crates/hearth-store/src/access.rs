//! The grant a store handle reads and writes under ([`Access`]), turned
//! into SQL where data is read: a search gets a [`Condition::Granted`]
//! (on its types, on each chain's targets, on each `_has`'s referrers)
//! and its includes are held to what may be read; reads, versions and
//! history are checked per version. Every path of `Store` and `Tx` goes
//! through here, so no caller has to remember to ask.

use std::sync::Arc;

use hearth_auth::{Grant, Permission, TypeAccess};
use hearth_model::search_params::CustomParams;

use crate::search::{self, Condition, GrantGroup, GrantLimit, SearchQuery};
use crate::statement::Sql;
use crate::{Result, StoreError};

/// The grant of a store handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Access {
    grant: Arc<Grant>,
    /// Who the request comes from, as jobs record their owner: a job is
    /// seen and cancelled only by the principal that started it.
    owner: Option<Arc<str>>,
    /// A digest of the grant, made when first needed: a paging snapshot
    /// made under one grant is not paged under another.
    key: Arc<std::sync::OnceLock<Option<String>>>,
}

impl Default for Access {
    fn default() -> Self {
        Access::everything()
    }
}

impl Access {
    /// No limits: an open server, and Hearth's own work.
    pub fn everything() -> Access {
        Access {
            grant: Arc::new(Grant::everything()),
            owner: None,
            key: Default::default(),
        }
    }

    /// The access of a request from `owner` (see `Principal::owner`)
    /// under `grant`.
    pub fn new(grant: Grant, owner: Option<String>) -> Access {
        Access::shared(Arc::new(grant), owner.map(Into::into))
    }

    /// [`Access::new`] of a grant and owner already shared (remembered
    /// with a verified token).
    pub fn shared(grant: Arc<Grant>, owner: Option<Arc<str>>) -> Access {
        Access {
            grant,
            owner,
            key: Default::default(),
        }
    }

    pub(crate) fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    pub fn is_everything(&self) -> bool {
        self.grant.is_everything()
    }

    pub(crate) fn key(&self) -> Option<&str> {
        self.key
            .get_or_init(|| {
                (!self.grant.is_everything()).then(|| ring_digest(&format!("{:?}", self.grant)))
            })
            .as_deref()
    }

    /// Refuses unless `permission` on `resource_type` is granted at all.
    pub fn require(&self, resource_type: &str, permission: Permission) -> Result<()> {
        if self.grant.allows_some(resource_type, permission) {
            Ok(())
        } else {
            Err(forbidden(resource_type, permission))
        }
    }

    /// The groups of `types` under `permission`: `None` when each is seen
    /// whole. A type not granted is in no group.
    pub(crate) fn groups<'t>(
        &self,
        types: impl IntoIterator<Item = &'t str>,
        permission: Permission,
        custom: &Arc<CustomParams>,
        base: Option<&str>,
    ) -> Option<Vec<GrantGroup>> {
        if self.is_everything() {
            return None;
        }
        let mut groups: Vec<(TypeAccess<'_>, GrantGroup)> = Vec::new();
        let mut limited = false;
        for resource_type in types {
            let access = self.grant.access(resource_type, permission);
            match access {
                TypeAccess::None => {
                    limited = true;
                    continue;
                }
                TypeAccess::Limited(_) => limited = true,
                TypeAccess::All => {}
            }
            if let Some((_, group)) = groups.iter_mut().find(|(a, _)| *a == access) {
                group.types.push(resource_type.to_owned());
                continue;
            }
            let limits = match &access {
                TypeAccess::Limited(limits) => Some(
                    limits
                        .iter()
                        .filter_map(|limit| {
                            Some(GrantLimit {
                                patient: limit.patient.map(str::to_owned),
                                conditions: filter_conditions(
                                    resource_type,
                                    limit.filter,
                                    custom,
                                    base,
                                )?,
                            })
                        })
                        .collect(),
                ),
                _ => None,
            };
            groups.push((
                access.clone(),
                GrantGroup {
                    types: vec![resource_type.to_owned()],
                    limits,
                },
            ));
        }
        limited.then(|| groups.into_iter().map(|(_, g)| g).collect())
    }

    /// Holds a search to the grant: its types (a type named but not
    /// granted is refused; of a search of every type, those granted are
    /// searched), what it matches, what its chains and `_has` look at, and
    /// what it includes.
    pub(crate) fn apply(&self, query: &mut SearchQuery, custom: &Arc<CustomParams>) -> Result<()> {
        if self.is_everything() {
            return Ok(());
        }
        let every_type = query.types.len() >= hearth_model::structure::resource_types().count();
        if every_type {
            query
                .types
                .retain(|t| self.grant.allows_some(t, Permission::Search));
            if query.types.is_empty() {
                return Err(StoreError::Forbidden(
                    "the access token grants no search of any resource type".into(),
                ));
            }
        } else if let Some(t) = query
            .types
            .iter()
            .find(|t| !self.grant.allows_some(t, Permission::Search))
        {
            return Err(forbidden(t, Permission::Search));
        }
        let base = query.base.clone();
        for condition in &mut query.conditions {
            self.hold(condition, custom, base.as_deref());
        }
        let types: Vec<&str> = query.types.iter().map(String::as_str).collect();
        if let Some(groups) = self.groups(types, Permission::Search, custom, base.as_deref()) {
            query.conditions.push(Condition::Granted(groups));
        }
        if !query.includes.is_empty() || !query.revincludes.is_empty() {
            query.included_grant = self.groups(
                hearth_model::structure::resource_types(),
                Permission::Read,
                custom,
                base.as_deref(),
            );
        }
        Ok(())
    }

    /// `query` held to the grant (see [`Access::apply`]); itself when
    /// everything is granted.
    pub(crate) fn held<'q>(
        &self,
        query: &'q SearchQuery,
        custom: &Arc<CustomParams>,
    ) -> Result<std::borrow::Cow<'q, SearchQuery>> {
        if self.is_everything() {
            return Ok(std::borrow::Cow::Borrowed(query));
        }
        let mut held = query.clone();
        self.apply(&mut held, custom)?;
        Ok(std::borrow::Cow::Owned(held))
    }

    /// Holds what a chain or `_has` looks at to what the grant lets the
    /// request search: otherwise a condition on hidden data would tell
    /// whether it exists.
    fn hold(&self, condition: &mut Condition, custom: &Arc<CustomParams>, base: Option<&str>) {
        match condition {
            Condition::Chain { targets, .. } => {
                for (target, inner) in targets {
                    self.hold(inner, custom, base);
                    if let Some(groups) =
                        self.groups([target.as_str()], Permission::Search, custom, base)
                    {
                        let held = std::mem::replace(inner, Condition::All(Vec::new()));
                        *inner = Condition::All(vec![held, Condition::Granted(groups)]);
                    }
                }
            }
            Condition::Has {
                source_type, inner, ..
            } => {
                self.hold(inner, custom, base);
                if let Some(groups) =
                    self.groups([source_type.as_str()], Permission::Search, custom, base)
                {
                    let held = std::mem::replace(inner.as_mut(), Condition::All(Vec::new()));
                    **inner = Condition::All(vec![held, Condition::Granted(groups)]);
                }
            }
            Condition::All(conditions) | Condition::Any(conditions) => {
                for c in conditions {
                    self.hold(c, custom, base);
                }
            }
            Condition::Values { .. }
            | Condition::Missing { .. }
            | Condition::Text(_)
            | Condition::Granted(_) => {}
        }
    }

    /// ` AND …` holding the version row `v` (of `resource_resource_type`
    /// types) to the grant: a version is seen when *it* belonged to the
    /// patient; a granular search is met by the current version only (old
    /// versions have no index), so under one only the current version is
    /// seen. Nothing is written when everything is granted.
    pub(crate) fn versions_clause<'t>(
        &self,
        types: impl IntoIterator<Item = &'t str>,
        permission: Permission,
        custom: &Arc<CustomParams>,
        sql: &mut Sql,
    ) {
        let Some(groups) = self.groups(types, permission, custom, None) else {
            return;
        };
        sql.push(" AND ");
        search::groups_clause(&groups, search::Checked::Version, None, sql);
    }
}

/// The conditions of a granular scope's search on `resource_type`; `None`
/// (the limit grants nothing) when they are not a valid search of it: a
/// token Hearth issued never carries one, an external issuer's might.
pub(crate) fn filter_conditions(
    resource_type: &str,
    filter: &[(String, String)],
    custom: &Arc<CustomParams>,
    base: Option<&str>,
) -> Option<Vec<Condition>> {
    if filter.is_empty() {
        return Some(Vec::new());
    }
    let options = search::ParseOptions {
        strict: true,
        default_count: 1,
        max_count: 1,
        base: base.map(str::to_owned),
        custom: custom.clone(),
    };
    match search::parse(&[resource_type.to_owned()], filter, &options) {
        Ok(query) => Some(query.conditions),
        Err(e) => {
            tracing::warn!(resource_type, error = %e, "a granular scope's search is not valid; it grants nothing");
            None
        }
    }
}

/// Checks a granular scope's search: for the scopes an operator or the
/// authorization server writes.
pub fn check_filter(
    resource_type: &str,
    filter: &[(String, String)],
    custom: &Arc<CustomParams>,
) -> std::result::Result<(), String> {
    let options = search::ParseOptions {
        strict: true,
        default_count: 1,
        max_count: 1,
        base: None,
        custom: custom.clone(),
    };
    search::parse(&[resource_type.to_owned()], filter, &options)
        .map(|_| ())
        .map_err(|e| e.message)
}

pub(crate) fn forbidden(resource_type: &str, permission: Permission) -> StoreError {
    let what = match permission {
        Permission::Create => "create",
        Permission::Read => "read",
        Permission::Update => "update",
        Permission::Delete => "delete",
        Permission::Search => "search",
    };
    StoreError::Forbidden(format!(
        "the access token grants no {what} of {resource_type} ('{}' permission)",
        permission.letter()
    ))
}

fn ring_digest(text: &str) -> String {
    use std::fmt::Write;
    let digest = hearth_auth::digest(text.as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
