//! Conditional interactions over HTTP: create with `If-None-Exist`, and
//! update, delete and patch addressed by a search (`PUT [type]?identifier=…`).
//! Each runs its search and its write in one transaction, so two clients
//! racing on the same condition cannot both create; what each means is
//! `hearth_api::write`'s.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use hearth_api::checks::{self, check_type, parse_body};
use hearth_api::conditional;
use hearth_api::interaction::Target;
use hearth_api::write::{self, Deletion};
use hearth_model::resource;
use hearth_store::search::{ParseOptions, SearchQuery};
use hearth_store::Method;

use crate::context::{Fhir, PreferReturn};
use crate::error::ApiError;
use crate::negotiate;
use crate::rest::{self, patch_document};

/// How conditions are parsed for this request.
pub(crate) fn options(fhir: &Fhir) -> ParseOptions {
    conditional::options(&fhir.base(), &fhir.store)
}

/// The request's query as a condition on `resource_type`.
fn condition(fhir: &Fhir, resource_type: &str) -> Result<Target, ApiError> {
    let query = conditional::parse(&options(fhir), resource_type, &fhir.params)?;
    Ok(Target::Condition(resource_type.to_owned(), Box::new(query)))
}

/// `If-None-Exist` on create.
pub(crate) fn if_none_exist(
    fhir: &Fhir,
    resource_type: &str,
) -> Result<Option<SearchQuery>, ApiError> {
    let Some(value) = fhir.header(header::HeaderName::from_static("if-none-exist")) else {
        return Ok(None);
    };
    let params = checks::if_none_exist(value);
    conditional::parse(&options(fhir), resource_type, &params).map(Some)
}

/// `PUT [type]?…`
pub async fn update(fhir: Fhir, path: web::Path<String>, payload: web::Payload) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        let target = condition(&fhir, &resource_type)?;
        let if_match = rest::if_match(&fhir)?;
        let format = negotiate::body_format(&fhir.req)?;
        let body = fhir.body(payload).await?;
        let store = fhir.store.clone();
        let (document, body_id) = crate::context::parse_work(body.len(), {
            let (store, resource_type) = (store.clone(), resource_type.clone());
            move || -> Result<_, ApiError> {
                let value = parse_body(&body, format, &resource_type)?;
                let body_id = resource::id(&value).map(str::to_owned);
                Ok((store.document(value)?, body_id))
            }
        })
        .await??;
        let written = store
            .write_async(move |tx| -> Result<_, ApiError> {
                match write::update_id(tx, &target, body_id.as_deref())? {
                    Some(id) => Ok(tx.update(&id, document, if_match, Method::Put)?),
                    None => Ok(tx.create(document)?),
                }
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
        let target = condition(&fhir, &resource_type)?;
        let store = fhir.store.clone();
        let multiple = fhir.state.config.conditional_delete_multiple;
        let deleted: Vec<_> = store
            .write_async(move |tx| -> Result<_, ApiError> {
                let targets = write::delete_targets(tx, &target, multiple)?;
                write::delete(tx, &targets, None)
            })
            .await?
            .into_iter()
            .filter_map(|d| match d {
                Deletion::Deleted(version) => Some(version),
                _ => None,
            })
            .collect();
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
        let target = condition(&fhir, &resource_type)?;
        let if_match = rest::if_match(&fhir)?;
        let body = fhir.body(payload).await?;
        let document = patch_document(&fhir, &body)?;
        let store = fhir.store.clone();
        let max_bytes = fhir.state.config.max_body_bytes;
        let written = store
            .write_async(move |tx| write::patch(tx, &target, if_match, &document, max_bytes))
            .await?;
        fhir.written(StatusCode::OK, &written.version, false)
    }
    .await;
    fhir.finish(reply)
}
