//! Bulk Data Access 2.0 (`$export` at system, `Patient` and `Group/[id]`
//! level): the asynchronous kick-off (`Prefer: respond-async` → 202 with a
//! `Content-Location` to poll at `/_async/{id}`), the manifest once the job
//! has finished, and the NDJSON files at `/_export/{id}/{n}.ndjson`. The job
//! runs in the background (see hearth-store's export.rs).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use hearth_model::{datetime, Value};
use hearth_store::{ExportPart, ExportRequest, Job};
use serde_json::json;

use crate::context::blocking;
use crate::context::{Fhir, Files};
use crate::error::ApiError;
use crate::reply::Reply;
use hearth_api::checks::{check_id, check_type};

/// The kick-off parameters Hearth supports; any other is refused, as the
/// Bulk Data specification asks of a server that does not support it.
const PARAMS: [&str; 6] = [
    "_outputFormat",
    "_since",
    "_type",
    "_typeFilter",
    "_format",
    "_pretty",
];

const NDJSON: &str = "application/fhir+ndjson";

pub async fn system(fhir: Fhir) -> HttpResponse {
    let reply = kick_off(&fhir, false, None).await;
    fhir.finish(reply)
}

pub async fn patients(fhir: Fhir) -> HttpResponse {
    let reply = kick_off(&fhir, true, None).await;
    fhir.finish(reply)
}

pub async fn group(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let reply = async {
        check_id(&id)?;
        let store = fhir.store.clone();
        let lookup = id.clone();
        let group = blocking(move || store.read("Group", &lookup)).await?;
        let value: Value = serde_json::from_slice(group.body.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::Internal(format!("stored Group: {e}")))?;
        // The Group's Patient members (relative references).
        let members: Vec<String> = value["member"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["entity"]["reference"].as_str())
            .filter_map(|r| r.strip_prefix("Patient/"))
            .map(str::to_owned)
            .collect();
        kick_off(&fhir, true, Some(members)).await
    }
    .await;
    fhir.finish(reply)
}

async fn kick_off(fhir: &Fhir, patient_level: bool, patients: Option<Vec<String>>) -> Reply {
    let prefer_async = fhir
        .req
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|t| t.trim().eq_ignore_ascii_case("respond-async"));
    if !prefer_async {
        return Err(ApiError::bad_request(
            "$export runs asynchronously: send Prefer: respond-async",
        ));
    }
    // Under `Prefer: handling=lenient` what cannot be honoured is passed
    // over and reported in the manifest's `error` file instead.
    let lenient = crate::search::lenient_handling(fhir);
    let mut warnings: Vec<String> = Vec::new();
    let mut refuse = |error: ApiError| -> Result<(), ApiError> {
        if lenient {
            warnings.push(error.to_string());
            Ok(())
        } else {
            Err(error)
        }
    };
    for (name, _) in fhir
        .params
        .iter()
        .filter(|(k, _)| !PARAMS.contains(&k.as_str()))
    {
        refuse(ApiError::BadRequest {
            message: format!("$export does not support the parameter '{name}'"),
            expression: vec![name.clone()],
        })?;
    }
    if let Some(format) = fhir.param("_outputFormat") {
        if !matches!(
            format,
            "application/fhir+ndjson" | "application/ndjson" | "ndjson"
        ) {
            return Err(ApiError::bad_request(format!(
                "_outputFormat '{format}' is not supported; use application/fhir+ndjson"
            )));
        }
    }
    let mut types = Vec::new();
    for (_, value) in fhir.params.iter().filter(|(k, _)| k == "_type") {
        for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if check_type(t).is_err() {
                refuse(ApiError::bad_request(format!(
                    "_type '{t}' is not a resource type"
                )))?;
                continue;
            }
            // A patient-level export is of the Patient compartment.
            if patient_level
                && t != "Patient"
                && hearth_model::compartments::params("Patient", t).is_none()
            {
                refuse(ApiError::BadRequest {
                    message: format!(
                        "_type '{t}' is not in the Patient compartment, which a Patient or Group export is of"
                    ),
                    expression: vec!["_type".into()],
                })?;
                continue;
            }
            types.push(t.to_owned());
        }
    }
    if types.is_empty() && fhir.params.iter().any(|(k, _)| k == "_type") {
        return Err(ApiError::bad_request(
            "none of the types of _type can be exported",
        ));
    }
    let since = fhir
        .param("_since")
        .map(|v| {
            datetime::range(v).map(|r| r.start).ok_or_else(|| {
                ApiError::bad_request(format!("_since must be an instant, not '{v}'"))
            })
        })
        .transpose()?;
    let mut type_filters = Vec::new();
    for (_, value) in fhir.params.iter().filter(|(k, _)| k == "_typeFilter") {
        for filter in split_filters(value) {
            match hearth_store::parse_type_filter(&filter, fhir.store.custom_params()) {
                Ok(_) => type_filters.push(filter),
                Err(e) => refuse(ApiError::bad_request(e))?,
            }
        }
    }
    let request = ExportRequest {
        types,
        since,
        type_filters,
        patients,
        patient_level,
        warnings,
        request: format!(
            "{}{}",
            fhir.base(),
            fhir.req.uri().path_and_query().map_or("", |p| p.as_str())
        ),
    };
    let store = fhir.store.clone();
    let id = blocking(move || store.start_export(&request)).await?;
    let mut response = fhir.information(
        StatusCode::ACCEPTED,
        format!(
            "Export queued; poll {}/_async/{id} for its manifest",
            fhir.base()
        ),
    )?;
    if let Ok(location) = header::HeaderValue::from_str(&format!("{}/_async/{id}", fhir.base())) {
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, location);
    }
    Ok(response)
}

/// `_typeFilter` values are searches separated by commas; a comma inside a
/// search (`code=a,b`) does not start a new one.
fn split_filters(value: &str) -> Vec<String> {
    let mut filters: Vec<String> = Vec::new();
    for piece in value.split(',') {
        let starts_search = piece
            .split_once('?')
            .is_some_and(|(t, _)| hearth_model::structure::is_resource_type(t));
        match filters.last_mut() {
            Some(last) if !starts_search => {
                last.push(',');
                last.push_str(piece);
            }
            _ => filters.push(piece.to_owned()),
        }
    }
    filters
}

/// The name of an export's file of warnings.
const ERRORS: &str = "errors.ndjson";

/// What a lenient kick-off passed over.
fn warnings(job: &Job) -> Vec<String> {
    job.params
        .as_ref()
        .and_then(|p| p["warnings"].as_array())
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The manifest of a finished export.
pub(crate) fn manifest(fhir: &Fhir, job: &Job, parts: &[ExportPart]) -> Reply {
    let base = fhir.base();
    let output: Vec<Value> = parts
        .iter()
        .map(|p| {
            json!({
                "type": p.resource_type,
                "url": format!("{base}/_export/{}/{}.ndjson", job.id, p.n),
                "count": p.resources,
            })
        })
        .collect();
    let request = job
        .params
        .as_ref()
        .and_then(|p| p["request"].as_str())
        .unwrap_or_default();
    let body = json!({
        "transactionTime": datetime::format_instant(job.created),
        "request": request,
        // Under SMART the files are fetched with the token that started
        // the export (they answer only its client).
        "requiresAccessToken": !fhir.state.authorization.is_open(),
        "output": output,
        "error": if warnings(job).is_empty() {
            json!([])
        } else {
            json!([{
                "type": "OperationOutcome",
                "url": format!("{base}/_export/{}/{ERRORS}", job.id),
            }])
        },
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((
            header::EXPIRES,
            crate::reply::http_date(job.created + 24 * 3600 * 1000),
        ))
        .body(body.to_string()))
}

/// `GET /_export/{id}/{n}.ndjson`, whatever the `Accept` (Bulk Data
/// clients ask for `application/fhir+ndjson`).
pub async fn file(Files(fhir): Files, path: web::Path<(String, String)>) -> HttpResponse {
    let (id, name) = path.into_inner();
    let reply = async {
        if name == ERRORS {
            // An OperationOutcome per warning, for the client that asked.
            let store = fhir.store.clone();
            let lookup = id.clone();
            let job = blocking(move || store.job(&lookup))
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no export file {id}/{name}")))?;
            let mut ndjson = String::new();
            for warning in warnings(&job) {
                let outcome = hearth_model::OperationOutcome::single(
                    hearth_model::Severity::Warning,
                    hearth_model::IssueCode::NotSupported,
                    warning,
                );
                ndjson.push_str(&outcome.to_value().to_string());
                ndjson.push('\n');
            }
            return Ok(HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, NDJSON))
                .body(ndjson));
        }
        let n: i64 = name
            .strip_suffix(".ndjson")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiError::NotFound(format!("no export file {name}")))?;
        let store = fhir.store.clone();
        let lookup = id.clone();
        let data = blocking(move || store.export_part(&lookup, n))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no export file {id}/{name}")))?;
        Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, NDJSON))
            .body(data))
    }
    .await;
    fhir.finish(reply)
}
