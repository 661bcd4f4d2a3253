//! Batch and transaction entries, run inside one database transaction
//! (http.html#transaction): in the order the specification gives
//! (deletes, creates, updates and patches, reads), after giving each
//! created resource its id so that references to the entries' `fullUrl`s
//! can be rewritten. Each entry's interaction is the one [`crate::write`]
//! decides for REST requests.
//!
//! Searches are the caller's to parse (how their results are shaped is a
//! matter of representation): an entry's search is any [`SearchEntry`].

use std::collections::{HashMap, HashSet};

use hearth_model::{resource, Value};
use hearth_store::search::{ParseOptions, SearchPage, SearchQuery, SearchResults};
use hearth_store::{Method, StoredVersion, Tx};
use http::StatusCode;

use crate::conditional;
use crate::interaction::{Entry, Interaction, Target};
use crate::references::{self, Placeholders};
use crate::write::{self, Deletion};
use crate::ApiError;

/// A search entry as the caller parsed it.
pub trait SearchEntry {
    fn query(&self) -> &SearchQuery;
    fn page(&self) -> &SearchPage;
}

/// An entry read, with its search (if it is one) parsed.
pub struct Prepared<S> {
    pub entry: Entry,
    pub search: Option<S>,
}

/// What an entry did, for its response entry.
pub enum Done<S> {
    Written {
        status: StatusCode,
        version: StoredVersion,
    },
    /// The last tombstone written, if any.
    Deleted(Option<StoredVersion>),
    Read(StoredVersion),
    NotModified(StoredVersion),
    Searched(Box<Searched<S>>),
    Failed(ApiError),
}

pub struct Searched<S> {
    pub search: S,
    pub results: SearchResults,
}

/// The server's limits that writes obey.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest body a client may send: a patch may not grow a
    /// resource past it.
    pub max_body_bytes: usize,
    /// Whether a conditional delete matching several resources deletes
    /// them all (otherwise it answers 412).
    pub conditional_delete_multiple: bool,
}

/// Two entries may not share a fullUrl: references to it would be ambiguous.
pub fn check_full_urls<S>(prepared: &[Prepared<S>]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for p in prepared {
        if let Some(url) = &p.entry.full_url {
            if !seen.insert(url.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "the fullUrl {url} is used by more than one entry"
                ))
                .in_entry(p.entry.index));
            }
        }
    }
    Ok(())
}

/// The id a create or update entry writes to, decided before any of them
/// is written so that references to it can be rewritten.
enum Destination {
    /// A new resource, or a new version of one, with this id.
    Write(String),
    /// `ifNoneExist` found this resource: nothing is written.
    Existing(StoredVersion),
}

/// Runs the entries, in the specification's order, inside `tx`. With
/// `rewrite`, references between entries are resolved (a transaction);
/// `conditions` parses conditional references.
pub fn execute<S: SearchEntry>(
    tx: &mut Tx<'_>,
    prepared: Vec<Prepared<S>>,
    conditions: &ParseOptions,
    rewrite: bool,
    limits: &Limits,
) -> Result<Vec<Done<S>>, ApiError> {
    let count = prepared.len();
    let mut order: Vec<Prepared<S>> = prepared;
    order.sort_by_key(|p| (p.entry.phase(), p.entry.index));
    let mut done: Vec<(usize, Done<S>)> = Vec::with_capacity(count);
    // Resources a transaction touches, to refuse touching one twice.
    let mut touched: HashSet<(String, String)> = HashSet::new();
    let mut touch = |index: usize, resource_type: &str, id: &str| -> Result<(), ApiError> {
        if touched.insert((resource_type.to_owned(), id.to_owned())) {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "{resource_type}/{id} is the subject of more than one entry"
            ))
            .in_entry(index))
        }
    };

    // 1. Deletes.
    let mut rest_entries = Vec::with_capacity(order.len());
    for p in order {
        let index = p.entry.index;
        let Interaction::Delete { target, if_match } = &p.entry.interaction else {
            rest_entries.push(p);
            continue;
        };
        let targets = write::delete_targets(tx, target, limits.conditional_delete_multiple)
            .map_err(|e| e.in_entry(index))?;
        for (t, id) in &targets {
            touch(index, t, id)?;
        }
        let deleted = write::delete(tx, &targets, *if_match).map_err(|e| e.in_entry(index))?;
        let last = deleted.into_iter().rev().find_map(|d| match d {
            Deletion::Deleted(version) => Some(version),
            _ => None,
        });
        done.push((index, Done::Deleted(last)));
    }

    // 2. Where each create and update writes, and what its fullUrl becomes.
    let mut placeholders = Placeholders::default();
    let mut destinations: HashMap<usize, Destination> = HashMap::new();
    for p in &rest_entries {
        let index = p.entry.index;
        let (resource_type, destination) = match &p.entry.interaction {
            Interaction::Create {
                resource,
                if_none_exist,
            } => {
                let resource_type = resource::resource_type(resource).unwrap_or_default();
                let destination = match write::existing(tx, if_none_exist.as_deref())
                    .map_err(|e| e.in_entry(index))?
                {
                    Some(found) => Destination::Existing(found),
                    None => Destination::Write(uuid::Uuid::new_v4().to_string()),
                };
                (resource_type.to_owned(), destination)
            }
            Interaction::Update {
                target, resource, ..
            } => {
                let id = write::update_id(tx, target, resource::id(resource))
                    .map_err(|e| e.in_entry(index))?
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                touch(index, target.resource_type(), &id)?;
                (target.resource_type().to_owned(), Destination::Write(id))
            }
            Interaction::Patch {
                target: Target::Id(t, id),
                ..
            } => {
                touch(index, t, id)?;
                continue;
            }
            _ => continue,
        };
        if let (Some(url), true) = (&p.entry.full_url, rewrite) {
            let id = match &destination {
                Destination::Write(id) => id.as_str(),
                Destination::Existing(found) => found.id.as_str(),
            };
            placeholders.insert(url, &resource_type, id);
        }
        destinations.insert(index, destination);
    }

    // 3. Creates, then updates and patches; reads last.
    let mut resolved: HashMap<String, String> = HashMap::new();
    for p in rest_entries {
        let index = p.entry.index;
        let result = match p.entry.interaction {
            Interaction::Create { mut resource, .. } => match destinations.remove(&index) {
                Some(Destination::Existing(found)) => Ok(Done::Written {
                    status: StatusCode::OK,
                    version: found,
                }),
                Some(Destination::Write(id)) => {
                    rewrite_references(tx, &mut resource, &placeholders, conditions, &mut resolved)
                        .and_then(|()| {
                            let document = tx.document(resource)?;
                            Ok(tx.update(&id, document, None, Method::Post)?)
                        })
                        .map(|written| Done::Written {
                            status: StatusCode::CREATED,
                            version: written.version,
                        })
                }
                None => Err(ApiError::Internal("a create without a destination".into())),
            },
            Interaction::Update {
                mut resource,
                if_match,
                only_create,
                target,
            } => match destinations.remove(&index) {
                Some(Destination::Write(id)) => {
                    rewrite_references(tx, &mut resource, &placeholders, conditions, &mut resolved)
                        .and_then(|()| {
                            if only_create {
                                if let Ok(current) = tx.read(target.resource_type(), &id) {
                                    return Err(ApiError::PreconditionFailed(format!(
                                        "{}/{id} exists (version {}) and ifNoneMatch is *",
                                        current.resource_type, current.version_id
                                    )));
                                }
                            }
                            if let Some(obj) = resource.as_object_mut() {
                                obj.insert("id".into(), Value::String(id.clone()));
                            }
                            let document = tx.document(resource)?;
                            Ok(tx.update(&id, document, if_match, Method::Put)?)
                        })
                        .map(|written| Done::Written {
                            status: if written.created {
                                StatusCode::CREATED
                            } else {
                                StatusCode::OK
                            },
                            version: written.version,
                        })
                }
                _ => Err(ApiError::Internal("an update without a destination".into())),
            },
            Interaction::Patch {
                target,
                patch,
                if_match,
            } => write::patch_target(tx, &target)
                .and_then(|current| {
                    if matches!(target, Target::Condition(..)) {
                        touch(index, &current.resource_type, &current.id)?;
                    }
                    crate::patch::patch_version(
                        tx,
                        current,
                        if_match,
                        &patch,
                        limits.max_body_bytes,
                    )
                })
                .map(|written| Done::Written {
                    status: StatusCode::OK,
                    version: written.version,
                }),
            Interaction::Read {
                resource_type,
                id,
                version,
                conditions,
            } => {
                let read = match version {
                    Some(v) => tx.vread(&resource_type, &id, v),
                    None => tx.read(&resource_type, &id),
                };
                read.map_err(ApiError::from).map(|version| {
                    if conditions.not_modified(&version) {
                        Done::NotModified(version)
                    } else {
                        Done::Read(version)
                    }
                })
            }
            Interaction::Search { .. } => match p.search {
                Some(search) => tx
                    .search(search.query(), search.page())
                    .map_err(ApiError::from)
                    .map(|results| Done::Searched(Box::new(Searched { search, results }))),
                None => Err(ApiError::Internal(
                    "a search entry without its search".into(),
                )),
            },
            Interaction::Delete { .. } => {
                Err(ApiError::Internal("a delete after the deletes".into()))
            }
        };
        done.push((index, result.map_err(|e| e.in_entry(index))?));
    }
    done.sort_by_key(|(index, _)| *index);
    Ok(done.into_iter().map(|(_, d)| d).collect())
}

/// Resolves the references of a resource about to be written.
fn rewrite_references(
    tx: &mut Tx<'_>,
    resource: &mut Value,
    placeholders: &Placeholders,
    conditions: &ParseOptions,
    resolved: &mut HashMap<String, String>,
) -> Result<(), ApiError> {
    references::rewrite(resource, placeholders, &mut |reference: &str| {
        if let Some(target) = resolved.get(reference) {
            return Ok(target.clone());
        }
        let target =
            conditional::resolve_reference(conditions, reference, |query| Ok(tx.find(query, 2)?))?;
        resolved.insert(reference.to_owned(), target.clone());
        Ok(target)
    })
    .map(|_| ())
    .map_err(ApiError::from)
}
