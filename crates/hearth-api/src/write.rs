//! The write interactions, each decided once, inside the caller's
//! transaction: the REST handlers, batch and transaction entries call
//! these, so a conditional update or delete means the same wherever it
//! is asked. (The store holds each to the grant the transaction runs
//! under.)

use hearth_store::search::SearchQuery;
use hearth_store::{StoreError, StoredVersion, Tx, Written};

use crate::conditional::single_match;
use crate::interaction::Target;
use crate::patch::{patch_version, PatchDocument};
use crate::ApiError;

/// What a create's `If-None-Exist` finds: the one resource it matches
/// (then nothing is created), none, or 412 for several.
pub fn existing(
    tx: &mut Tx<'_>,
    if_none_exist: Option<&SearchQuery>,
) -> Result<Option<StoredVersion>, ApiError> {
    match if_none_exist {
        Some(query) => single_match(tx, query),
        None => Ok(None),
    }
}

/// The id an update writes to: its URL's; for a conditional update the
/// single match's (which the body's id may not contradict), else the
/// body's, else `None`: a create with a new id.
pub fn update_id(
    tx: &mut Tx<'_>,
    target: &Target,
    body_id: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let (resource_type, query) = match target {
        Target::Id(_, id) => return Ok(Some(id.clone())),
        Target::Condition(resource_type, query) => (resource_type, query),
    };
    match (single_match(tx, query)?, body_id) {
        (Some(found), Some(id)) if found.id != id => Err(ApiError::bad_request(format!(
            "the condition matches {resource_type}/{} but the resource's id is '{id}'",
            found.id
        ))),
        (Some(found), _) => Ok(Some(found.id)),
        (None, id) => Ok(id.map(str::to_owned)),
    }
}

/// The current version a patch applies to: by id, or the single match of
/// its condition (404 for none, 412 for several).
pub fn patch_target(tx: &mut Tx<'_>, target: &Target) -> Result<StoredVersion, ApiError> {
    match target {
        Target::Id(resource_type, id) => Ok(tx.read(resource_type, id)?),
        Target::Condition(resource_type, query) => single_match(tx, query)?
            .ok_or_else(|| ApiError::NotFound(format!("no {resource_type} matches the condition"))),
    }
}

/// Patch: [`patch_target`], then the patched resource as its next version.
pub fn patch(
    tx: &mut Tx<'_>,
    target: &Target,
    if_match: Option<i64>,
    document: &PatchDocument,
    max_bytes: usize,
) -> Result<Written, ApiError> {
    let current = patch_target(tx, target)?;
    patch_version(tx, current, if_match, document, max_bytes)
}

/// What a delete is about: the resource of its URL, or what its condition
/// matches: every match where the server allows several (`multiple`),
/// else the single one (several are 412).
pub fn delete_targets(
    tx: &mut Tx<'_>,
    target: &Target,
    multiple: bool,
) -> Result<Vec<(String, String)>, ApiError> {
    let found = match target {
        Target::Id(resource_type, id) => return Ok(vec![(resource_type.clone(), id.clone())]),
        Target::Condition(_, query) if multiple => tx.matching(query, i64::MAX)?,
        Target::Condition(_, query) => single_match(tx, query)?.into_iter().collect(),
    };
    Ok(found.into_iter().map(|v| (v.resource_type, v.id)).collect())
}

/// What deleting one resource did.
#[derive(Debug)]
pub enum Deletion {
    /// This tombstone was written.
    Deleted(StoredVersion),
    /// The resource was deleted already: nothing was written.
    AlreadyDeleted,
    /// There is no such resource (or none the grant shows).
    Absent,
}

/// Deletes `targets`, all or none. Deleting what does not exist, or is
/// already deleted, succeeds: the resource is gone either way
/// (http.html#delete).
pub fn delete(
    tx: &mut Tx<'_>,
    targets: &[(String, String)],
    if_match: Option<i64>,
) -> Result<Vec<Deletion>, ApiError> {
    let each = |tx: &mut Tx<'_>| -> Result<Vec<Deletion>, ApiError> {
        let mut done = Vec::with_capacity(targets.len());
        for (resource_type, id) in targets {
            done.push(match tx.delete(resource_type, id, if_match) {
                Ok(Some(version)) => Deletion::Deleted(version),
                Ok(None) => Deletion::AlreadyDeleted,
                Err(StoreError::NotFound { .. }) => Deletion::Absent,
                Err(e) => return Err(e.into()),
            });
        }
        Ok(done)
    };
    if targets.len() > 1 {
        // Several steps: a failure half-way undoes the first ones.
        tx.savepoint(each)
    } else {
        each(tx)
    }
}
