//! `POST [base]` with a batch or transaction Bundle (http.html#transaction).
//!
//! A transaction runs every entry in one database transaction, in the
//! order the specification gives (deletes, creates, updates and patches,
//! reads), after giving each created resource its id so that references to
//! the entries' `fullUrl`s can be rewritten; any failure rolls back every
//! entry and answers with an OperationOutcome naming the entry. A batch
//! runs each entry in a transaction of its own, and answers each entry's
//! outcome, success or failure, in its response entry.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use hearth_api::checks::parse_body;
use hearth_api::interaction::{Entry, Interaction};
use hearth_api::transaction::{self, Done, Limits, Prepared, SearchEntry};
use hearth_model::{datetime, IssueCode, OperationOutcome, Severity, Value};
use hearth_store::search::{ParseOptions, SearchPage, SearchQuery};
use hearth_store::StoredVersion;
use serde_json::json;

use crate::context::{parse_work, Fhir, PreferReturn};
use crate::error::ApiError;
use crate::negotiate::{self, Shape};
use crate::reply::{etag, Reply};

/// `POST [base]`.
pub async fn submit(fhir: Fhir, payload: web::Payload) -> HttpResponse {
    let reply = async {
        let format = negotiate::body_format(&fhir.req)?;
        let body = fhir.body(payload).await?;
        let bundle = parse_work(body.len(), move || parse_body(&body, format, "Bundle")).await??;
        let count = bundle["entry"].as_array().map_or(0, Vec::len);
        let max = fhir.state.config.max_bundle_entries;
        if count > max {
            return Err(ApiError::TooLong(format!(
                "the Bundle has {count} entries; at most {max} are accepted in one request"
            )));
        }
        match bundle["type"].as_str() {
            Some("transaction") => transaction(&fhir, bundle).await,
            Some("batch") => batch(&fhir, bundle).await,
            other => Err(ApiError::BadRequest {
                message: format!(
                    "POST to the base takes a Bundle of type batch or transaction, not {}",
                    other.unwrap_or("a Bundle without a type")
                ),
                expression: vec!["Bundle.type".into()],
            }),
        }
    }
    .await;
    fhir.finish(reply)
}

/// A search entry's query, the shape of its entries, the page it asks for
/// and its parameters (for the searchset's links).
struct Search {
    path: String,
    query: SearchQuery,
    shape: Shape,
    page: SearchPage,
    params: Vec<(String, String)>,
}

impl SearchEntry for Search {
    fn query(&self) -> &SearchQuery {
        &self.query
    }

    fn page(&self) -> &SearchPage {
        &self.page
    }
}

/// The entries of a Bundle, taken out of it.
fn entries(bundle: &mut Value) -> Vec<Value> {
    match bundle.get_mut("entry").map(Value::take) {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    }
}

/// Reads an entry and parses its conditions and its search.
fn prepare(
    fhir: &Fhir,
    options: &ParseOptions,
    index: usize,
    value: Value,
) -> Result<Prepared<Search>, ApiError> {
    let entry = Entry::read(index, value, &fhir.base(), options)?;
    let search = match &entry.interaction {
        Interaction::Search {
            resource_type,
            params,
        } => {
            let types: Vec<String> = resource_type.iter().cloned().collect();
            let (query, shape, page) = crate::search::prepare(fhir, &types, params, None)
                .map_err(|e| e.in_entry(index))?;
            Some(Search {
                path: resource_type
                    .as_ref()
                    .map_or_else(|| "/".to_owned(), |t| format!("/{t}")),
                query,
                shape,
                page,
                params: params.clone(),
            })
        }
        _ => None,
    };
    Ok(Prepared { entry, search })
}

fn limits(fhir: &Fhir) -> Limits {
    Limits {
        max_body_bytes: fhir.state.config.max_body_bytes,
        conditional_delete_multiple: fhir.state.config.conditional_delete_multiple,
    }
}

async fn transaction(fhir: &Fhir, mut bundle: Value) -> Reply {
    let options = crate::conditional::options(fhir);
    let prepared = entries(&mut bundle)
        .into_iter()
        .enumerate()
        .map(|(i, value)| prepare(fhir, &options, i, value))
        .collect::<Result<Vec<_>, _>>()?;
    transaction::check_full_urls(&prepared)?;
    let count = prepared.len();
    let limits = limits(fhir);
    let done = fhir
        .store
        // Alone in its database transaction, a failure anywhere rolls all
        // of it back, with no savepoint to pay for.
        .write_alone_async(move |tx| transaction::execute(tx, prepared, &options, true, &limits))
        .await?;
    debug_assert_eq!(done.len(), count);
    respond(fhir, "transaction-response", done)
}

async fn batch(fhir: &Fhir, mut bundle: Value) -> Reply {
    let options = crate::conditional::options(fhir);
    let mut done: Vec<Option<Done<Search>>> = Vec::new();
    let mut work: Vec<Prepared<Search>> = Vec::new();
    for (i, value) in entries(&mut bundle).into_iter().enumerate() {
        match prepare(fhir, &options, i, value) {
            Ok(p) => {
                done.push(None);
                work.push(p);
            }
            Err(e) => done.push(Some(Done::Failed(match e {
                ApiError::InEntry { error, .. } => *error,
                other => other,
            }))),
        }
    }
    // Entries are independent: each in its own transaction, in the
    // specification's order.
    work.sort_by_key(|p| (p.entry.phase(), p.entry.index));
    for p in work {
        let index = p.entry.index;
        let options = options.clone();
        let limits = limits(fhir);
        let result = fhir
            .store
            .write_async(move |tx| {
                tx.savepoint(|tx| transaction::execute(tx, vec![p], &options, false, &limits))
            })
            .await;
        done[index] = Some(match result {
            Ok(mut one) => one.pop().unwrap_or(Done::Failed(ApiError::Internal(
                "the entry did nothing".into(),
            ))),
            Err(e) => Done::Failed(match e {
                ApiError::InEntry { error, .. } => *error,
                other => other,
            }),
        });
    }
    let done = done
        .into_iter()
        .map(|d| {
            d.unwrap_or(Done::Failed(ApiError::Internal(
                "the entry was not run".into(),
            )))
        })
        .collect();
    respond(fhir, "batch-response", done)
}

fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

fn body_value(version: &StoredVersion) -> Value {
    version
        .body
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null)
}

/// The response Bundle: an entry per request entry, in their order.
fn respond(fhir: &Fhir, kind: &str, done: Vec<Done<Search>>) -> Reply {
    let base = fhir.base();
    let entries: Vec<Value> = done
        .into_iter()
        .map(|d| response_entry(fhir, &base, d))
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": datetime::format_instant(datetime::now_ms())},
        "type": kind,
        "entry": entries,
    });
    fhir.value(bundle, &Shape::Full)
}

fn response_entry(fhir: &Fhir, base: &str, done: Done<Search>) -> Value {
    let outcome_of = |severity, code, message: String| {
        OperationOutcome::single(severity, code, message).to_value()
    };
    match done {
        Done::Written { status, version } => {
            let mut response = json!({
                "status": status_text(status),
                "location": format!("{}/{}/_history/{}", version.resource_type, version.id, version.version_id),
                "etag": etag(version.version_id),
                "lastModified": datetime::format_instant(version.last_updated),
            });
            let mut entry =
                json!({"fullUrl": format!("{base}/{}/{}", version.resource_type, version.id)});
            match fhir.prefer_return {
                PreferReturn::Representation => entry["resource"] = body_value(&version),
                PreferReturn::Minimal => {}
                PreferReturn::OperationOutcome => {
                    response["outcome"] = outcome_of(
                        Severity::Information,
                        IssueCode::Informational,
                        format!(
                            "{} {}/{} at version {}",
                            if status == StatusCode::CREATED {
                                "Created"
                            } else {
                                "Wrote"
                            },
                            version.resource_type,
                            version.id,
                            version.version_id
                        ),
                    )
                }
            }
            entry["response"] = response;
            entry
        }
        Done::Deleted(version) => {
            let mut response = json!({"status": status_text(StatusCode::NO_CONTENT)});
            if let Some(v) = version {
                response["etag"] = json!(etag(v.version_id));
            }
            json!({"response": response})
        }
        Done::Read(version) => json!({
            "fullUrl": format!("{base}/{}/{}", version.resource_type, version.id),
            "resource": body_value(&version),
            "response": {
                "status": status_text(StatusCode::OK),
                "etag": etag(version.version_id),
                "lastModified": datetime::format_instant(version.last_updated),
            },
        }),
        Done::NotModified(version) => json!({
            "response": {
                "status": status_text(StatusCode::NOT_MODIFIED),
                "etag": etag(version.version_id),
            },
        }),
        Done::Searched(searched) => json!({
            "resource": crate::search::searchset(
                fhir,
                &searched.search.path,
                &searched.search.query,
                &searched.search.params,
                &searched.results,
                &searched.search.shape,
            )
            .into_value(),
            "response": {"status": status_text(StatusCode::OK)},
        }),
        Done::Failed(error) => json!({
            "response": {
                "status": status_text(error.status()),
                "outcome": error.outcome().to_value(),
            },
        }),
    }
}
