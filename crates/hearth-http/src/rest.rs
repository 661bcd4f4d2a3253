//! The instance and type interactions: read, vread, create, update, patch
//! and delete.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use hearth_model::{json_patch, resource, structure, Format, Value};
use hearth_store::{Method, StoreError, StoredVersion, Tx, Written};

use crate::context::{parse_work, Fhir};
use crate::error::ApiError;
use crate::negotiate;
use crate::reply::{etag, Reply};

/// `{type}` must name a resource type of FHIR R4.
pub fn check_type(resource_type: &str) -> Result<(), ApiError> {
    if structure::is_resource_type(resource_type) {
        Ok(())
    } else {
        Err(ApiError::UnknownResourceType(resource_type.to_owned()))
    }
}

/// `{id}` must be a FHIR id, and not `.` or `..`: the id type allows
/// them, but as path segments they mean "here" and "up" (RFC 3986), so
/// the resource's URL could not name it.
pub fn check_id(id: &str) -> Result<(), ApiError> {
    if id == "." || id == ".." {
        return Err(ApiError::bad_request(format!(
            "invalid resource id: '{id}' cannot name a resource in a URL"
        )));
    }
    hearth_model::primitives::check("id", &Value::String(id.to_owned()))
        .map_err(|e| ApiError::bad_request(format!("invalid resource id: {e}")))
}

fn check_instance(resource_type: &str, id: &str) -> Result<(), ApiError> {
    check_type(resource_type)?;
    check_id(id)
}

/// Parses `If-Match: W/"3"` into a version id.
pub(crate) fn if_match(fhir: &Fhir) -> Result<Option<i64>, ApiError> {
    let Some(value) = fhir.header(header::IF_MATCH) else {
        return Ok(None);
    };
    parse_etag(value).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!(
            "If-Match must be a version ETag such as W/\"1\", not '{value}'"
        ))
    })
}

/// A version ETag exactly as Hearth writes them, `W/"3"`: a positive
/// version number without sign or leading zeros (so `W/"+1"` and `W/"01"`
/// name no version).
pub(crate) fn parse_etag(value: &str) -> Option<i64> {
    let digits = value.trim().strip_prefix("W/\"")?.strip_suffix('"')?;
    let canonical = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| digits.parse().ok()).flatten()
}

/// Whether `If-None-Match` / `If-Modified-Since` say the client's copy is current.
fn not_modified(fhir: &Fhir, version: &StoredVersion) -> bool {
    if let Some(tags) = fhir.header(header::IF_NONE_MATCH) {
        return tags
            .split(',')
            .any(|t| t.trim() == "*" || parse_etag(t) == Some(version.version_id));
    }
    if let Some(since) = fhir.header(header::IF_MODIFIED_SINCE) {
        if let Ok(since) = httpdate::parse_http_date(since) {
            let since_ms = since
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            // HTTP dates have whole seconds.
            return version.last_updated / 1000 <= since_ms / 1000;
        }
    }
    false
}

fn read_reply(fhir: &Fhir, version: &StoredVersion) -> Reply {
    let shape = negotiate::shape(&fhir.params)?;
    if not_modified(fhir, version) {
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
            None => web::block(move || store.read(&resource_type, &id)).await??,
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
        let version_id: i64 = vid
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| ApiError::NotFound(format!("{resource_type}/{id}/_history/{vid} is not known: version ids are positive integers")))?;
        let store = fhir.store.clone();
        let version = web::block(move || store.vread(&resource_type, &id, version_id)).await??;
        read_reply(&fhir, &version)
    }
    .await;
    fhir.finish(reply)
}

/// Parses a request body as a resource of the type in the URL.
pub(crate) fn parse_body(
    bytes: &[u8],
    format: Format,
    resource_type: &str,
) -> Result<Value, ApiError> {
    let value = hearth_model::parse(bytes, format)?;
    match resource::resource_type(&value) {
        Some(t) if t == resource_type => Ok(value),
        other => Err(ApiError::BadRequest {
            message: format!(
                "the body is a {} but the URL is for {resource_type}",
                other.unwrap_or("resource without a type")
            ),
            expression: vec!["resourceType".into()],
        }),
    }
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
                if let Some(query) = &condition {
                    if let Some(found) = crate::conditional::single_match(tx, query)? {
                        return Ok((None, Some(found)));
                    }
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
                check_body_id(&value, &resource_type, &id)?;
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

/// An update's body must carry the id of the URL.
fn check_body_id(value: &Value, resource_type: &str, id: &str) -> Result<(), ApiError> {
    match resource::id(value) {
        Some(body_id) if body_id == id => Ok(()),
        Some(body_id) => Err(ApiError::BadRequest {
            message: format!(
                "the id in the body ('{body_id}') differs from the id in the URL ('{id}')"
            ),
            expression: vec![format!("{resource_type}.id")],
        }),
        None => Err(ApiError::BadRequest {
            message: format!("an update needs the resource id in the body; expected '{id}'"),
            expression: vec![format!("{resource_type}.id")],
        }),
    }
}

/// A patch document: JSON Patch or FHIRPath Patch (a Parameters resource).
#[derive(Debug)]
pub(crate) enum PatchDocument {
    Json(Value),
    FhirPath(Value),
}

pub(crate) fn patch_document(fhir: &Fhir, body: &[u8]) -> Result<PatchDocument, ApiError> {
    let content_type = fhir.header(header::CONTENT_TYPE).unwrap_or_default();
    let (essence, _) = negotiate::split_media_type(content_type);
    if essence == "application/json-patch+json" {
        let doc = hearth_model::json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the JSON Patch document is not well-formed JSON: {e}"
            ))
        })?;
        return Ok(PatchDocument::Json(doc));
    }
    let format = negotiate::body_format(&fhir.req).map_err(|_| {
        ApiError::UnsupportedMediaType(format!(
            "PATCH takes application/json-patch+json, or a FHIRPath Patch Parameters resource as application/fhir+json or application/fhir+xml; not '{content_type}'"
        ))
    })?;
    Ok(PatchDocument::FhirPath(parse_body(
        body,
        format,
        "Parameters",
    )?))
}

/// Applies a patch; the result may not be larger than `max_bytes`, the
/// largest body a client could have sent instead.
pub(crate) fn apply_patch(
    resource: &mut Value,
    document: &PatchDocument,
    max_bytes: usize,
) -> Result<(), ApiError> {
    use hearth_model::fhirpath_patch::FhirPathPatchError;
    use json_patch::JsonPatchError;
    match document {
        PatchDocument::Json(doc) => {
            json_patch::apply(resource, doc, max_bytes).map_err(|e| match e {
                JsonPatchError::NotAnArray | JsonPatchError::InvalidOperation { .. } => {
                    ApiError::bad_request(format!("invalid JSON Patch document: {e}"))
                }
                JsonPatchError::TooLarge { .. } | JsonPatchError::TooDeep { .. } => {
                    ApiError::TooLong(format!("the patch cannot be applied: {e}"))
                }
                other => ApiError::Unprocessable(format!("the patch cannot be applied: {other}")),
            })
        }
        PatchDocument::FhirPath(params) => {
            hearth_model::fhirpath_patch::apply(resource, params, max_bytes).map_err(|e| match e {
                FhirPathPatchError::TooLarge { .. } => {
                    ApiError::TooLong(format!("the patch cannot be applied: {e}"))
                }
                e if e.is_invalid_document() => {
                    ApiError::bad_request(format!("invalid FHIRPath Patch document: {e}"))
                }
                e => ApiError::Unprocessable(format!("the patch cannot be applied: {e}")),
            })
        }
    }
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
        // Read, patch and write in one transaction: no other write can slip
        // in between.
        let written = store
            .write_async(move |tx| -> Result<_, ApiError> {
                let current = tx.read(&resource_type, &id)?;
                patch_version(tx, current, if_match, &document, max_bytes)
            })
            .await?;
        fhir.written(StatusCode::OK, &written.version, false)
    }
    .await;
    fhir.finish(reply)
}

/// Patches `current` and writes the result as the next version, inside the
/// caller's transaction.
pub(crate) fn patch_version(
    tx: &mut Tx<'_>,
    current: StoredVersion,
    if_match: Option<i64>,
    document: &PatchDocument,
    max_bytes: usize,
) -> Result<Written, ApiError> {
    if let Some(expected) = if_match.filter(|v| *v != current.version_id) {
        return Err(StoreError::VersionConflict {
            expected,
            current: Some(current.version_id),
        }
        .into());
    }
    let mut value: Value = serde_json::from_slice(current.body.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::Internal(format!("stored resource: {e}")))?;
    apply_patch(&mut value, document, max_bytes)?;
    let patched = tx.document(revalidate(value, &current.resource_type, &current.id)?)?;
    Ok(tx.update(
        &current.id,
        patched,
        Some(current.version_id),
        Method::Patch,
    )?)
}

/// A patched resource must still be a valid resource of the same identity.
fn revalidate(value: Value, resource_type: &str, id: &str) -> Result<Value, ApiError> {
    let patched = hearth_model::parse(&hearth_model::to_json_bytes(&value, false), Format::Json)
        .map_err(|e| ApiError::Unprocessable(format!("the patched resource is not valid: {e}")))?;
    if resource::resource_type(&patched) != Some(resource_type)
        || resource::id(&patched) != Some(id)
    {
        return Err(ApiError::Unprocessable(
            "a patch may not change the resource's type or id".into(),
        ));
    }
    Ok(patched)
}

pub async fn delete(fhir: Fhir, path: web::Path<(String, String)>) -> HttpResponse {
    let (resource_type, id) = path.into_inner();
    let reply = async {
        check_instance(&resource_type, &id)?;
        let if_match = if_match(&fhir)?;
        let store = fhir.store.clone();
        let (rt, rid) = (resource_type.clone(), id.clone());
        let deleted = store
            .write_async(move |tx| tx.delete(&rt, &rid, if_match))
            .await;
        // Deleting what does not exist, or is already deleted, succeeds: the
        // resource is gone either way (http.html#delete).
        let (message, version) = match deleted {
            Ok(Some(v)) => (
                format!("Deleted {resource_type}/{id} (version {})", v.version_id),
                Some(v),
            ),
            Ok(None) => (format!("{resource_type}/{id} was already deleted"), None),
            Err(StoreError::NotFound { .. }) => {
                (format!("{resource_type}/{id} does not exist"), None)
            }
            Err(e) => return Err(e.into()),
        };
        let mut response = match fhir.prefer_return {
            crate::context::PreferReturn::OperationOutcome => {
                fhir.information(StatusCode::OK, message)?
            }
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
