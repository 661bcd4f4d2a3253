//! Operations and their asynchronous status: `$reindex` at system and type
//! level, answered 202 with a `Content-Location` to poll at `/_async/{id}`
//! (the FHIR asynchronous request pattern).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use hearth_store::JobStatus;

use crate::context::blocking;
use crate::context::Fhir;
use crate::error::ApiError;
use crate::reply::Reply;
use hearth_api::checks::check_type;

pub async fn reindex_system(fhir: Fhir) -> HttpResponse {
    let reply = reindex(&fhir, Vec::new()).await;
    fhir.finish(reply)
}

pub async fn reindex_type(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        reindex(&fhir, vec![resource_type]).await
    }
    .await;
    fhir.finish(reply)
}

async fn reindex(fhir: &Fhir, types: Vec<String>) -> Result<HttpResponse, ApiError> {
    let store = fhir.store.clone();
    let id = blocking(move || store.start_reindex(&types)).await?;
    accepted(fhir, &id, "Reindexing queued", "its progress")
}

/// The 202 of an asynchronous request: `Content-Location` is where to
/// poll job `id` for `what`.
pub(crate) fn accepted(fhir: &Fhir, id: &str, queued: &str, what: &str) -> Reply {
    let status_url = format!("{}/_async/{id}", fhir.base());
    let mut response = fhir.information(
        StatusCode::ACCEPTED,
        format!("{queued}; poll {status_url} for {what}"),
    )?;
    if let Ok(location) = header::HeaderValue::from_str(&status_url) {
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, location);
    }
    Ok(response)
}

/// `DELETE /_async/{id}`: cancels the job and deletes what it wrote (202);
/// its status is then 404.
pub async fn cancel(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let reply = async {
        let store = fhir.store.clone();
        let lookup = id.clone();
        if !blocking(move || store.delete_job(&lookup)).await? {
            return Err(ApiError::NotFound(format!("no asynchronous request {id}")));
        }
        fhir.information(
            StatusCode::ACCEPTED,
            format!("Asynchronous request {id} cancelled"),
        )
    }
    .await;
    fhir.finish(reply)
}

/// `GET /_async/{id}`: 202 with `X-Progress` while the job runs; 200 when
/// it has finished (an export's manifest; an OperationOutcome for others);
/// 500 with one if it failed.
pub async fn status(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let reply = async {
        let store = fhir.store.clone();
        let lookup = id.clone();
        let job = blocking(move || store.job(&lookup))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no asynchronous request {id}")))?;
        match job.status {
            JobStatus::Queued | JobStatus::Running => {
                let mut response = fhir.information(
                    StatusCode::ACCEPTED,
                    format!("{}: {} of {} resources done", job.kind, job.done, job.total),
                )?;
                if let Ok(progress) = header::HeaderValue::from_str(&format!(
                    "{} of {} resources",
                    job.done, job.total
                )) {
                    response
                        .headers_mut()
                        .insert(header::HeaderName::from_static("x-progress"), progress);
                }
                if let Ok(retry) = header::HeaderValue::from_str("1") {
                    response.headers_mut().insert(header::RETRY_AFTER, retry);
                }
                Ok(response)
            }
            JobStatus::Done if job.kind == "export" => {
                let store = fhir.store.clone();
                let lookup = id.clone();
                let parts = blocking(move || store.export_parts(&lookup)).await?;
                crate::export::manifest(&fhir, &job, &parts)
            }
            JobStatus::Done => fhir.information(
                StatusCode::OK,
                format!("{} finished: {} resources", job.kind, job.done),
            ),
            JobStatus::Failed(reason) => {
                Err(ApiError::Internal(format!("{} failed: {reason}", job.kind)))
            }
        }
    }
    .await;
    fhir.finish(reply)
}
