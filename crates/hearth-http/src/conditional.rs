//! Conditional interactions: create with `If-None-Exist`, and update,
//! delete and patch addressed by a search (`PUT [type]?identifier=…`).
//! Each runs its search and its write in one transaction, so two clients
//! racing on the same condition cannot both create.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use hearth_model::resource;
use hearth_store::search::{self, ParseOptions, SearchQuery};
use hearth_store::{Method, StoredVersion, Tx};

use crate::context::{Fhir, PreferReturn};
use crate::error::ApiError;
use crate::negotiate;
use crate::rest::{self, check_type, patch_document};

/// Parameters that shape responses, not the condition.
const NOT_CONDITIONS: [&str; 2] = ["_format", "_pretty"];

/// Parses a condition strictly: an unknown parameter must not silently
/// widen the match to every resource.
pub(crate) fn condition(
    fhir: &Fhir,
    resource_type: &str,
    params: &[(String, String)],
) -> Result<SearchQuery, ApiError> {
    parse_condition(&condition_options(fhir), resource_type, params)
}

/// How conditions are parsed: strictly, for at most two matches.
pub(crate) fn condition_options(fhir: &Fhir) -> ParseOptions {
    ParseOptions {
        strict: true,
        default_count: 2,
        max_count: 2,
        base: Some(fhir.base()),
        custom: fhir.store.custom_params(),
    }
}

/// [`condition`] with the options already made (inside a transaction).
pub(crate) fn parse_condition(
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

/// Zero, one, or "several" (412) matches.
pub(crate) fn single_match(
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

/// What a conditional delete deletes: every match where the server allows
/// several (`conditional_delete_multiple`), else the single one (several
/// are 412).
pub(crate) fn delete_targets(
    tx: &mut Tx<'_>,
    query: &SearchQuery,
    multiple: bool,
) -> Result<Vec<StoredVersion>, ApiError> {
    if multiple {
        Ok(tx.matching(query, i64::MAX)?)
    } else {
        Ok(single_match(tx, query)?.into_iter().collect())
    }
}

/// `If-None-Exist` on create: the query (without `?`) as a condition.
pub(crate) fn if_none_exist(
    fhir: &Fhir,
    resource_type: &str,
) -> Result<Option<SearchQuery>, ApiError> {
    let Some(value) = fhir.header(header::HeaderName::from_static("if-none-exist")) else {
        return Ok(None);
    };
    // Clients send `identifier=x`, some `Patient?identifier=x`.
    let value = value.split_once('?').map_or(value, |(_, query)| query);
    let params: Vec<(String, String)> = form_urlencoded::parse(value.as_bytes())
        .into_owned()
        .collect();
    condition(fhir, resource_type, &params).map(Some)
}

/// `PUT [type]?…`
pub async fn update(fhir: Fhir, path: web::Path<String>, payload: web::Payload) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        let query = condition(&fhir, &resource_type, &fhir.params)?;
        let if_match = rest::if_match(&fhir)?;
        let format = negotiate::body_format(&fhir.req)?;
        let body = fhir.body(payload).await?;
        let store = fhir.store.clone();
        let (document, body_id) = crate::context::parse_work(body.len(), {
            let (store, resource_type) = (store.clone(), resource_type.clone());
            move || -> Result<_, ApiError> {
                let value = rest::parse_body(&body, format, &resource_type)?;
                let body_id = resource::id(&value).map(str::to_owned);
                Ok((store.document(value)?, body_id))
            }
        })
        .await??;
        let written = store
            .write_async(move |tx| -> Result<_, ApiError> {
                let id = match (single_match(tx, &query)?, body_id) {
                    (Some(found), Some(id)) if found.id != id => {
                        return Err(ApiError::bad_request(format!(
                            "the condition matches {resource_type}/{} but the body's id is '{id}'",
                            found.id
                        )))
                    }
                    (Some(found), _) => found.id,
                    (None, Some(id)) => id,
                    (None, None) => return Ok(tx.create(document)?),
                };
                Ok(tx.update(&id, document, if_match, Method::Put)?)
            })
            .await?;
        fhir.updated(&written)
    }
    .await;
    fhir.finish(reply)
}

/// `DELETE [type]?…`: deletes the single match (412 for several).
pub async fn delete(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        let query = condition(&fhir, &resource_type, &fhir.params)?;
        let store = fhir.store.clone();
        let multiple = fhir.state.config.conditional_delete_multiple;
        let deleted = store
            .write_async(move |tx| -> Result<_, ApiError> {
                let targets = delete_targets(tx, &query, multiple)?;
                // Deleting several is several steps: all or none.
                tx.savepoint(|tx| -> Result<_, ApiError> {
                    let mut deleted = Vec::new();
                    for found in targets {
                        deleted.extend(tx.delete(&found.resource_type, &found.id, None)?);
                    }
                    Ok(deleted)
                })
            })
            .await?;
        let message = match deleted.as_slice() {
            [] => "No resource matched the condition; nothing was deleted".to_owned(),
            [v] => format!(
                "Deleted {}/{} (version {})",
                v.resource_type, v.id, v.version_id
            ),
            many => format!("Deleted {} resources", many.len()),
        };
        match fhir.prefer_return {
            PreferReturn::OperationOutcome => fhir.information(StatusCode::OK, message),
            _ => Ok(HttpResponse::NoContent().finish()),
        }
    }
    .await;
    fhir.finish(reply)
}

/// `PATCH [type]?…`: patches the single match (404 for none, 412 for several).
pub async fn patch(fhir: Fhir, path: web::Path<String>, payload: web::Payload) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        let query = condition(&fhir, &resource_type, &fhir.params)?;
        let if_match = rest::if_match(&fhir)?;
        let body = fhir.body(payload).await?;
        let document = patch_document(&fhir, &body)?;
        let store = fhir.store.clone();
        let max_bytes = fhir.state.config.max_body_bytes;
        let written = store
            .write_async(move |tx| -> Result<_, ApiError> {
                let found = single_match(tx, &query)?.ok_or_else(|| {
                    ApiError::NotFound("no resource matches the condition".into())
                })?;
                rest::patch_version(tx, found, if_match, &document, max_bytes)
            })
            .await?;
        fhir.written(StatusCode::OK, &written.version, false)
    }
    .await;
    fhir.finish(reply)
}
