//! Health endpoints for load balancers and orchestrators, outside the FHIR
//! API (they hold no patient data and need no authorization): liveness says
//! the process serves requests; readiness also that its database answers,
//! so a balancer sends traffic only to nodes that can handle it. Bodies are
//! `application/health+json` (draft-inadarei-api-health-check).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::AppState;

const HEALTH_JSON: &str = "application/health+json";

/// `GET /health/live`: 200 while the process answers.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(HEALTH_JSON)
        .body(json!({"status": "pass"}).to_string())
}

/// `GET /health/ready`: 200 when the database answers, 503 when not.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    match web::block(move || store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type(HEALTH_JSON)
            .body(json!({"status": "pass"}).to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            HttpResponse::ServiceUnavailable()
                .content_type(HEALTH_JSON)
                .insert_header(("Retry-After", "1"))
                .body(
                    json!({"status": "fail", "output": "the database does not answer"}).to_string(),
                )
        }
        Err(_) => HttpResponse::ServiceUnavailable()
            .content_type(HEALTH_JSON)
            .body(json!({"status": "fail", "output": "the server is shutting down"}).to_string()),
    }
}
