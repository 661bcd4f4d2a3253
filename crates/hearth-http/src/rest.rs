//! The instance and type interactions: read, vread, create, update, patch
//! and delete.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use hearth_api::checks::{self, check_instance, check_type, parse_body, ReadConditions};
use hearth_api::interaction::Target;
use hearth_api::patch::PatchDocument;
use hearth_api::write::{self, Deletion};
use hearth_store::{Method, StoredVersion};

use crate::context::{blocking, parse_work, Fhir, PreferReturn};
use crate::error::ApiError;
use crate::negotiate;
use crate::reply::{etag, Reply};

/// `If-Match`.
pub(crate) fn if_match(fhir: &Fhir) -> Result<Option<i64>, ApiError> {
    checks::if_match(fhir.header(header::IF_MATCH))
}

/// `If-None-Match` / `If-Modified-Since`.
fn read_conditions(fhir: &Fhir) -> ReadConditions {
    ReadConditions {
        if_none_match: fhir.header(header::IF_NONE_MATCH).map(str::to_owned),
        if_modified_since: fhir.header(header::IF_MODIFIED_SINCE).map(str::to_owned),
    }
}

fn read_reply(fhir: &Fhir, version: &StoredVersion) -> Reply {
    let shape = negotiate::shape(&fhir.params)?;
    if read_conditions(fhir).not_modified(version) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag(version.version_id)))
            .finish());
    }
    fhir.resource(StatusCode::OK, version, &shape)
}

pub async fn read(fhir: Fhir, path: web::Path<(String, String)>) -> HttpResponse {
    let (resource_type, id) = path.into_inner();
    let reply = async {
        check_instance(&resource_type, &id)?;
        let store = fhir.store.clone();
        let version = match store.read_now(&resource_type, &id) {
            Some(version) => version?,
            None => blocking(move || store.read(&resource_type, &id)).await?,
        };
        read_reply(&fhir, &version)
    }
    .await;
    fhir.finish(reply)
}

pub async fn vread(fhir: Fhir, path: web::Path<(String, String, String)>) -> HttpResponse {
    let (resource_type, id, vid) = path.into_inner();
    let reply = async {
        check_instance(&resource_type, &id)?;
        let version_id = checks::version_id(&resource_type, &id, &vid)?;
        let store = fhir.store.clone();
        let version = blocking(move || store.vread(&resource_type, &id, version_id)).await?;
        read_reply(&fhir, &version)
    }
    .await;
    fhir.finish(reply)
}

pub async fn create(fhir: Fhir, path: web::Path<String>, payload: web::Payload) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        let format = negotiate::body_format(&fhir.req)?;
        let body = fhir.body(payload).await?;
        let condition = crate::conditional::if_none_exist(&fhir, &resource_type)?;
        let store = fhir.store.clone();
        // Parse and prepare on the blocking pool; wait for the commit
        // without holding a thread.
        let document = parse_work(body.len(), {
            let store = store.clone();
            move || -> Result<_, ApiError> {
                // The server assigns the id and meta of a created resource
                // (the document leaves out whatever the body says of them).
                Ok(store.document(parse_body(&body, format, &resource_type)?)?)
            }
        })
        .await??;
        let (written, existing) = store
            .write_async(move |tx| -> Result<_, ApiError> {
                if let Some(found) = write::existing(tx, condition.as_ref())? {
                    return Ok((None, Some(found)));
                }
                Ok((Some(tx.create(document)?), None))
            })
            .await?;
        // If-None-Exist matched one resource: nothing is created (200).
        if let Some(found) = existing {
            return fhir.written(StatusCode::OK, &found, true);
        }
        let Some(written) = written else {
            return Err(ApiError::Internal("create wrote nothing".into()));
        };
        fhir.written(StatusCode::CREATED, &written.version, true)
    }
    .await;
    fhir.finish(reply)
}

pub async fn update(
    fhir: Fhir,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> HttpResponse {
    let (resource_type, id) = path.into_inner();
    let reply = async {
        check_instance(&resource_type, &id)?;
        let if_match = if_match(&fhir)?;
        let format = negotiate::body_format(&fhir.req)?;
        let body = fhir.body(payload).await?;
        let store = fhir.store.clone();
        let document = parse_work(body.len(), {
            let store = store.clone();
            move || -> Result<_, ApiError> {
                let value = parse_body(&body, format, &resource_type)?;
                checks::check_body_id(&value, &resource_type, &id)?;
                Ok((store.document(value)?, id))
            }
        })
        .await??;
        let written = store
            .write_async(move |tx| {
                let (document, id) = document;
                tx.update(&id, document, if_match, Method::Put)
            })
            .await?;
        fhir.updated(&written)
    }
    .await;
    fhir.finish(reply)
}

/// A PATCH body: JSON Patch, or a FHIRPath Patch Parameters resource.
pub(crate) fn patch_document(fhir: &Fhir, body: &[u8]) -> Result<PatchDocument, ApiError> {
    let content_type = fhir.header(header::CONTENT_TYPE).unwrap_or_default();
    let (essence, _) = negotiate::split_media_type(content_type);
    if essence == "application/json-patch+json" {
        return PatchDocument::json(body);
    }
    let format = negotiate::body_format(&fhir.req).map_err(|_| {
        ApiError::UnsupportedMediaType(format!(
            "PATCH takes application/json-patch+json, or a FHIRPath Patch Parameters resource as application/fhir+json or application/fhir+xml; not '{content_type}'"
        ))
    })?;
    PatchDocument::fhirpath(body, format)
}

pub async fn patch(
    fhir: Fhir,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> HttpResponse {
    let (resource_type, id) = path.into_inner();
    let reply = async {
        check_instance(&resource_type, &id)?;
        let if_match = if_match(&fhir)?;
        let body = fhir.body(payload).await?;
        let document = patch_document(&fhir, &body)?;
        let store = fhir.store.clone();
        let max_bytes = fhir.state.config.max_body_bytes;
        let target = Target::Id(resource_type, id);
        let written = store
            .write_async(move |tx| write::patch(tx, &target, if_match, &document, max_bytes))
            .await?;
        fhir.written(StatusCode::OK, &written.version, false)
    }
    .await;
    fhir.finish(reply)
}

pub async fn delete(fhir: Fhir, path: web::Path<(String, String)>) -> HttpResponse {
    let (resource_type, id) = path.into_inner();
    let reply = async {
        check_instance(&resource_type, &id)?;
        let if_match = if_match(&fhir)?;
        let store = fhir.store.clone();
        let targets = vec![(resource_type.clone(), id.clone())];
        let mut deleted = store
            .write_async(move |tx| write::delete(tx, &targets, if_match))
            .await?;
        let (message, version) = match deleted.pop() {
            Some(Deletion::Deleted(v)) => (
                format!("Deleted {resource_type}/{id} (version {})", v.version_id),
                Some(v),
            ),
            Some(Deletion::AlreadyDeleted) => {
                (format!("{resource_type}/{id} was already deleted"), None)
            }
            _ => (format!("{resource_type}/{id} does not exist"), None),
        };
        let mut response = match fhir.prefer_return {
            PreferReturn::OperationOutcome => fhir.information(StatusCode::OK, message)?,
            _ => HttpResponse::NoContent().finish(),
        };
        if let Some(v) = version {
            if let Ok(value) = header::HeaderValue::from_str(&etag(v.version_id)) {
                response.headers_mut().insert(header::ETAG, value);
            }
        }
        Ok(response)
    }
    .await;
    fhir.finish(reply)
}
