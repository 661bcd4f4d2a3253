//! Patches: JSON Patch and FHIRPath Patch documents, and applying one to
//! a stored resource as its next version.

use base64::Engine;
use hearth_model::{json_patch, resource, Format, Value};
use hearth_store::{Method, StoreError, StoredVersion, Tx, Written};

use crate::ApiError;

/// A patch document: JSON Patch or FHIRPath Patch (a Parameters resource).
#[derive(Debug)]
pub enum PatchDocument {
    Json(Value),
    FhirPath(Value),
}

impl PatchDocument {
    /// A JSON Patch document (`application/json-patch+json`).
    pub fn json(bytes: &[u8]) -> Result<PatchDocument, ApiError> {
        hearth_model::json::from_slice(bytes)
            .map(PatchDocument::Json)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the JSON Patch document is not well-formed JSON: {e}"
                ))
            })
    }

    /// A FHIRPath Patch: a Parameters resource in `format`.
    pub fn fhirpath(bytes: &[u8], format: Format) -> Result<PatchDocument, ApiError> {
        crate::checks::parse_body(bytes, format, "Parameters").map(PatchDocument::FhirPath)
    }

    /// A PATCH entry's resource: a FHIRPath Patch `Parameters`, or a JSON
    /// Patch carried as a `Binary` (http.html#patch, in a Bundle).
    pub fn of_entry(resource: Option<Value>) -> Result<PatchDocument, ApiError> {
        let resource = resource.ok_or_else(|| {
            ApiError::bad_request("a PATCH entry needs its patch as the resource")
        })?;
        match resource::resource_type(&resource) {
            Some("Parameters") => Ok(PatchDocument::FhirPath(resource)),
            Some("Binary") => {
                let content_type = resource["contentType"].as_str().unwrap_or_default();
                if content_type != "application/json-patch+json" {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "a Binary patch must have contentType application/json-patch+json, not '{content_type}'"
                    )));
                }
                let data = resource["data"].as_str().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "the Binary patch's data is not base64: {e}"
                        ))
                    })?;
                PatchDocument::json(&bytes)
            }
            other => Err(ApiError::bad_request(format!(
                "a PATCH entry's resource is a Parameters (FHIRPath Patch) or a Binary (JSON Patch), not {}",
                other.unwrap_or("a resource without a type")
            ))),
        }
    }

    /// Applies the patch; the result may not be larger than `max_bytes`,
    /// the largest body a client could have sent instead.
    pub fn apply(&self, resource: &mut Value, max_bytes: usize) -> Result<(), ApiError> {
        use hearth_model::fhirpath_patch::FhirPathPatchError;
        use json_patch::JsonPatchError;
        match self {
            PatchDocument::Json(doc) => {
                json_patch::apply(resource, doc, max_bytes).map_err(|e| match e {
                    JsonPatchError::NotAnArray | JsonPatchError::InvalidOperation { .. } => {
                        ApiError::bad_request(format!("invalid JSON Patch document: {e}"))
                    }
                    JsonPatchError::TooLarge { .. } | JsonPatchError::TooDeep { .. } => {
                        ApiError::TooLong(format!("the patch cannot be applied: {e}"))
                    }
                    other => {
                        ApiError::Unprocessable(format!("the patch cannot be applied: {other}"))
                    }
                })
            }
            PatchDocument::FhirPath(params) => hearth_model::fhirpath_patch::apply(
                resource, params, max_bytes,
            )
            .map_err(|e| match e {
                FhirPathPatchError::TooLarge { .. } => {
                    ApiError::TooLong(format!("the patch cannot be applied: {e}"))
                }
                e if e.is_invalid_document() => {
                    ApiError::bad_request(format!("invalid FHIRPath Patch document: {e}"))
                }
                e => ApiError::Unprocessable(format!("the patch cannot be applied: {e}")),
            }),
        }
    }
}

/// Patches `current` and writes the result as the next version, inside the
/// caller's transaction (so no other write slips in between the read and
/// the write).
pub fn patch_version(
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
    document.apply(&mut value, max_bytes)?;
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
