//! Conditions: the searches that address conditional creates
//! (`If-None-Exist`), updates, patches and deletes, and conditional
//! references. They are parsed strictly (an unknown parameter must not
//! silently widen a match to every resource) and run for at most two
//! matches, which is all it takes to tell none, one and several apart.

use hearth_store::search::{self, ParseOptions, SearchQuery};
use hearth_store::{StoredVersion, Tx};

use crate::ApiError;

/// Parameters that shape responses, not the condition.
const NOT_CONDITIONS: [&str; 2] = ["_format", "_pretty"];

/// How conditions are parsed: strictly, for at most two matches. `base` is
/// the server's (absolute references under it are local).
pub fn options(base: &str, store: &hearth_store::Store) -> ParseOptions {
    ParseOptions {
        strict: true,
        default_count: 2,
        max_count: 2,
        base: Some(base.trim_end_matches('/').to_owned()),
        custom: store.custom_params(),
    }
}

/// Parses the condition `params` on `resource_type`.
pub fn parse(
    options: &ParseOptions,
    resource_type: &str,
    params: &[(String, String)],
) -> Result<SearchQuery, ApiError> {
    let params: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !NOT_CONDITIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    if params.is_empty() {
        return Err(ApiError::bad_request(
            "a conditional interaction needs search parameters that identify the resource",
        ));
    }
    search::parse(&[resource_type.to_owned()], &params, options).map_err(|mut e| {
        e.message = format!("invalid condition: {}", e.message);
        ApiError::from(e)
    })
}

/// Zero, one, or "several" (412) matches, for a write: other conditional
/// writes on the same types wait until the transaction ends (see
/// [`Tx::matching`]).
pub fn single_match(
    tx: &mut Tx<'_>,
    query: &SearchQuery,
) -> Result<Option<StoredVersion>, ApiError> {
    let mut found = tx.matching(query, 2)?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(ApiError::PreconditionFailed(
            "the condition matches more than one resource".into(),
        )),
    }
}

/// A conditional reference (`Organization?identifier=…`) in a resource
/// about to be written: the `Type/id` of the one resource its search
/// finds through `find` (which writes nothing on it, so it takes no lock).
pub fn resolve_reference(
    options: &ParseOptions,
    reference: &str,
    find: impl FnOnce(&SearchQuery) -> Result<Vec<StoredVersion>, ApiError>,
) -> Result<String, ApiError> {
    let (resource_type, query) = reference.split_once('?').unwrap_or((reference, ""));
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let found = find(&parse(options, resource_type, &params)?)?;
    match found.as_slice() {
        [one] => Ok(format!("{}/{}", one.resource_type, one.id)),
        [] => Err(ApiError::PreconditionFailed(format!(
            "the conditional reference {reference} matches no resource"
        ))),
        _ => Err(ApiError::PreconditionFailed(format!(
            "the conditional reference {reference} matches more than one resource"
        ))),
    }
}
