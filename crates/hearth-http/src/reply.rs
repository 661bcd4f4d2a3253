//! Building FHIR responses: the headers every resource response carries
//! (ETag, Last-Modified, Location, Content-Type) and the body in the
//! negotiated format.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use hearth_model::{datetime, IssueCode, OperationOutcome, Severity};
use hearth_store::{StoredVersion, Written};

use crate::context::{Fhir, PreferReturn};
use crate::error::ApiError;
use crate::negotiate::{self, Shape};

pub type Reply = Result<HttpResponse, ApiError>;

/// The weak ETag of a version: `W/"3"`.
pub fn etag(version_id: i64) -> String {
    format!("W/\"{version_id}\"")
}

/// An HTTP date for `Last-Modified` (second precision).
pub fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(datetime::to_utc(ms).into())
}

impl Fhir {
    /// Turns a handler's result into the response, rendering errors as
    /// OperationOutcome in the negotiated format. Failures are logged here,
    /// once, and without patient data.
    pub fn finish(&self, reply: Reply) -> HttpResponse {
        match reply {
            Ok(response) => response,
            Err(error) => {
                if error.status().is_server_error() {
                    tracing::error!(error = %error, "request failed");
                }
                negotiate::outcome_response(error.status(), &error.outcome(), self.rep)
            }
        }
    }

    /// A stored version as a response: status, ETag, Last-Modified and the
    /// body in the negotiated format and shape.
    pub fn resource(&self, status: StatusCode, version: &StoredVersion, shape: &Shape) -> Reply {
        let body = version.body.as_deref().unwrap_or_default();
        let rendered = negotiate::render_stored(body, self.rep, shape)?;
        Ok(self
            .version_headers(status, version)
            .insert_header((header::CONTENT_TYPE, self.rep.media.content_type()))
            .body(rendered))
    }

    /// The answer to a create, update or patch, as `Prefer: return` asks.
    pub fn written(
        &self,
        status: StatusCode,
        version: &StoredVersion,
        with_location: bool,
    ) -> Reply {
        let mut builder = self.version_headers(status, version);
        if with_location {
            builder.insert_header((header::LOCATION, self.version_url(version)));
        }
        match self.prefer_return {
            PreferReturn::Representation => {
                let body = negotiate::render_stored(
                    version.body.as_deref().unwrap_or_default(),
                    self.rep,
                    &Shape::Full,
                )?;
                Ok(builder
                    .insert_header((header::CONTENT_TYPE, self.rep.media.content_type()))
                    .body(body))
            }
            PreferReturn::Minimal => Ok(builder.finish()),
            PreferReturn::OperationOutcome => {
                let verb = if status == StatusCode::CREATED {
                    "Created"
                } else {
                    "Updated"
                };
                let outcome = OperationOutcome::single(
                    Severity::Information,
                    IssueCode::Informational,
                    format!(
                        "{verb} {}/{} at version {}",
                        version.resource_type, version.id, version.version_id
                    ),
                );
                let body = negotiate::render_value(outcome.to_value(), self.rep, &Shape::Full)?;
                Ok(builder
                    .insert_header((header::CONTENT_TYPE, self.rep.media.content_type()))
                    .body(body))
            }
        }
    }

    /// The answer to an update, which may have created the resource
    /// (201 with `Location`) or written a new version of it (200).
    pub fn updated(&self, written: &Written) -> Reply {
        let status = if written.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        self.written(status, &written.version, written.created)
    }

    /// An informational OperationOutcome with a status (delete, for one).
    pub fn information(&self, status: StatusCode, message: String) -> Reply {
        let outcome =
            OperationOutcome::single(Severity::Information, IssueCode::Informational, message);
        let body = negotiate::render_value(outcome.to_value(), self.rep, &Shape::Full)?;
        Ok(HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, self.rep.media.content_type()))
            .body(body))
    }

    /// A resource the server built (Bundle, CapabilityStatement).
    pub fn value(&self, value: hearth_model::Value, shape: &Shape) -> Reply {
        let body = negotiate::render_value(value, self.rep, shape)?;
        Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, self.rep.media.content_type()))
            .body(body))
    }

    /// A resource the server wrote as compact JSON (searchset Bundles),
    /// served as it is or rendered in the negotiated format.
    pub fn json(&self, json: &[u8]) -> Reply {
        let body = negotiate::render_stored(json, self.rep, &Shape::Full)?;
        Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, self.rep.media.content_type()))
            .body(body))
    }

    pub fn version_url(&self, version: &StoredVersion) -> String {
        format!(
            "{}/{}/{}/_history/{}",
            self.base(),
            version.resource_type,
            version.id,
            version.version_id
        )
    }

    fn version_headers(
        &self,
        status: StatusCode,
        version: &StoredVersion,
    ) -> actix_web::HttpResponseBuilder {
        let mut builder = HttpResponse::build(status);
        builder
            .insert_header((header::ETAG, etag(version.version_id)))
            .insert_header((header::LAST_MODIFIED, http_date(version.last_updated)));
        builder
    }
}
