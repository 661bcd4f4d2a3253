//! `POST [base]` with a batch or transaction Bundle (http.html#transaction).
//!
//! A transaction runs every entry in one database transaction, in the
//! order the specification gives (deletes, creates, updates and patches,
//! reads), after giving each created resource its id so that references to
//! the entries' `fullUrl`s can be rewritten; any failure rolls back every
//! entry and answers with an OperationOutcome naming the entry. A batch
//! runs each entry in a transaction of its own, and answers each entry's
//! outcome, success or failure, in its response entry.

mod entry;
mod load;
mod references;

pub use load::{Loaded, Loader, PendingLoad, PreparedFile};

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use hearth_model::{datetime, resource, IssueCode, OperationOutcome, Severity, Value};
use hearth_store::search::{ParseOptions, SearchPage, SearchQuery, SearchResults};
use hearth_store::{Method, StoreError, StoredVersion, Tx};
use serde_json::json;

use crate::conditional;
use crate::context::{parse_work, Fhir, PreferReturn};
use crate::error::ApiError;
use crate::negotiate::{self, Shape};
use crate::reply::{etag, Reply};
use crate::rest;
use crate::HttpConfig;
use entry::{Action, Entry, Target};
use references::Placeholders;

/// `POST [base]`.
pub async fn submit(fhir: Fhir, payload: web::Payload) -> HttpResponse {
    let reply = async {
        let format = negotiate::body_format(&fhir.req)?;
        let body = fhir.body(payload).await?;
        let bundle = parse_work(body.len(), move || {
            rest::parse_body(&body, format, "Bundle")
        })
        .await??;
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

/// An entry read, with the searches its conditions need parsed.
struct Prepared {
    entry: Entry,
    /// `ifNoneExist`, or the search of a conditional update, patch or delete.
    condition: Option<SearchQuery>,
    /// The search of a read entry.
    search: Option<Search>,
}

/// A search entry's query, the shape of its entries, the page it asks for
/// and its parameters (for the searchset's links).
struct Search {
    query: SearchQuery,
    shape: Shape,
    page: SearchPage,
    params: Vec<(String, String)>,
}

/// What an entry did, for its response entry.
enum Done {
    Written {
        status: StatusCode,
        version: StoredVersion,
    },
    Deleted(Option<StoredVersion>),
    Read(StoredVersion),
    NotModified(StoredVersion),
    Searched(Box<Searched>),
    Failed(ApiError),
}

struct Searched {
    path: String,
    search: Search,
    results: SearchResults,
}

/// The entries of a Bundle, taken out of it.
fn entries(bundle: &mut Value) -> Vec<Value> {
    match bundle.get_mut("entry").map(Value::take) {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    }
}

/// Reads an entry, asks the access decision point about it, and parses its
/// searches.
fn prepare(
    fhir: &Fhir,
    options: &ParseOptions,
    index: usize,
    value: Value,
) -> Result<Prepared, ApiError> {
    let entry = entry::read(index, value, &fhir.base())?;
    let condition = match &entry.action {
        Action::Create {
            resource,
            if_none_exist: Some(params),
        } => Some(conditional::parse_condition(
            options,
            resource::resource_type(resource).unwrap_or_default(),
            params,
        )?),
        Action::Update {
            target: Target::Condition(t, params),
            ..
        }
        | Action::Patch {
            target: Target::Condition(t, params),
            ..
        }
        | Action::Delete {
            target: Target::Condition(t, params),
            ..
        } => Some(conditional::parse_condition(options, t, params)?),
        _ => None,
    };
    let search = match &entry.action {
        Action::Search {
            resource_type,
            params,
        } => {
            let types: Vec<String> = resource_type.iter().cloned().collect();
            let (query, shape, page) = crate::search::prepare(fhir, &types, params, None)?;
            Some(Search {
                query,
                shape,
                page,
                params: params.clone(),
            })
        }
        _ => None,
    };
    Ok(Prepared {
        entry,
        condition,
        search,
    })
}

async fn transaction(fhir: &Fhir, mut bundle: Value) -> Reply {
    let options = conditional::condition_options(fhir);
    let prepared = entries(&mut bundle)
        .into_iter()
        .enumerate()
        .map(|(i, value)| prepare(fhir, &options, i, value).map_err(|e| e.in_entry(i)))
        .collect::<Result<Vec<_>, _>>()?;
    check_full_urls(&prepared)?;
    let count = prepared.len();
    let config = fhir.state.config.clone();
    let done = fhir
        .store
        // Alone in its database transaction, a failure anywhere rolls all
        // of it back, with no savepoint to pay for.
        .write_alone_async(move |tx| execute(tx, prepared, &options, true, &config))
        .await?;
    debug_assert_eq!(done.len(), count);
    respond(fhir, "transaction-response", done)
}

async fn batch(fhir: &Fhir, mut bundle: Value) -> Reply {
    let options = conditional::condition_options(fhir);
    let mut done: Vec<Option<Done>> = Vec::new();
    let mut work: Vec<Prepared> = Vec::new();
    for (i, value) in entries(&mut bundle).into_iter().enumerate() {
        match prepare(fhir, &options, i, value) {
            Ok(p) => {
                done.push(None);
                work.push(p);
            }
            Err(e) => done.push(Some(Done::Failed(e))),
        }
    }
    // Entries are independent: each in its own transaction, in the
    // specification's order.
    work.sort_by_key(|p| (p.entry.phase(), p.entry.index));
    for p in work {
        let index = p.entry.index;
        let options = options.clone();
        let config = fhir.state.config.clone();
        let result = fhir
            .store
            .write_async(move |tx| {
                tx.savepoint(|tx| execute(tx, vec![p], &options, false, &config))
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

/// Two entries may not share a fullUrl: references to it would be ambiguous.
fn check_full_urls(prepared: &[Prepared]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for p in prepared {
        if let Some(url) = &p.entry.full_url {
            if !seen.insert(url.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "the fullUrl {url} is used by more than one entry"
                ))
                .in_entry(p.entry.index));
            }
        }
    }
    Ok(())
}

/// The id a create or update entry writes to, decided before any of them
/// is written so that references to it can be rewritten.
enum Destination {
    /// A new resource, or a new version of one, with this id.
    Write(String),
    /// `ifNoneExist` found this resource: nothing is written.
    Existing(StoredVersion),
}

/// Runs the entries, in the specification's order, inside `tx`. With
/// `rewrite`, references between entries are resolved (a transaction).
fn execute(
    tx: &mut Tx<'_>,
    prepared: Vec<Prepared>,
    options: &ParseOptions,
    rewrite: bool,
    config: &HttpConfig,
) -> Result<Vec<Done>, ApiError> {
    let count = prepared.len();
    let mut order: Vec<Prepared> = prepared;
    order.sort_by_key(|p| (p.entry.phase(), p.entry.index));
    let mut done: Vec<(usize, Done)> = Vec::with_capacity(count);
    // Resources a transaction touches, to refuse touching one twice.
    let mut touched: HashSet<(String, String)> = HashSet::new();
    let mut touch = |index: usize, resource_type: &str, id: &str| -> Result<(), ApiError> {
        if touched.insert((resource_type.to_owned(), id.to_owned())) {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "{resource_type}/{id} is the subject of more than one entry"
            ))
            .in_entry(index))
        }
    };

    // 1. Deletes.
    let mut rest_entries = Vec::with_capacity(order.len());
    for p in order {
        let index = p.entry.index;
        let Action::Delete { target, if_match } = &p.entry.action else {
            rest_entries.push(p);
            continue;
        };
        let targets = match target {
            Target::Id(t, id) => vec![(t.clone(), id.clone())],
            Target::Condition(..) => {
                let query = p.condition.as_ref().expect("a parsed condition");
                conditional::delete_targets(tx, query, config.conditional_delete_multiple)
                    .map_err(|e| e.in_entry(index))?
                    .into_iter()
                    .map(|v| (v.resource_type, v.id))
                    .collect()
            }
        };
        let mut last = None;
        for (t, id) in targets {
            touch(index, &t, &id)?;
            match tx.delete(&t, &id, *if_match) {
                Ok(deleted) => last = deleted.or(last),
                // Deleting what does not exist succeeds.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(ApiError::from(e).in_entry(index)),
            }
        }
        done.push((index, Done::Deleted(last)));
    }

    // 2. Where each create and update writes, and what its fullUrl becomes.
    let mut placeholders = Placeholders::default();
    let mut destinations: HashMap<usize, Destination> = HashMap::new();
    for p in &rest_entries {
        let index = p.entry.index;
        let (resource_type, destination) = match &p.entry.action {
            Action::Create { resource, .. } => {
                let resource_type = resource::resource_type(resource).unwrap_or_default();
                let existing = match &p.condition {
                    Some(query) => {
                        conditional::single_match(tx, query).map_err(|e| e.in_entry(index))?
                    }
                    None => None,
                };
                let destination = match existing {
                    Some(found) => Destination::Existing(found),
                    None => Destination::Write(uuid::Uuid::new_v4().to_string()),
                };
                (resource_type.to_owned(), destination)
            }
            Action::Update {
                target, resource, ..
            } => {
                let id = match target {
                    Target::Id(_, id) => id.clone(),
                    Target::Condition(t, _) => {
                        let query = p.condition.as_ref().expect("a parsed condition");
                        let found =
                            conditional::single_match(tx, query).map_err(|e| e.in_entry(index))?;
                        match (found, resource::id(resource)) {
                            (Some(found), Some(id)) if found.id != id => {
                                return Err(ApiError::bad_request(format!(
                                    "the condition matches {t}/{} but the resource's id is '{id}'",
                                    found.id
                                ))
                                .in_entry(index))
                            }
                            (Some(found), _) => found.id,
                            (None, Some(id)) => id.to_owned(),
                            (None, None) => uuid::Uuid::new_v4().to_string(),
                        }
                    }
                };
                touch(index, target.resource_type(), &id)?;
                (target.resource_type().to_owned(), Destination::Write(id))
            }
            Action::Patch {
                target: Target::Id(t, id),
                ..
            } => {
                touch(index, t, id)?;
                continue;
            }
            _ => continue,
        };
        if let (Some(url), true) = (&p.entry.full_url, rewrite) {
            let id = match &destination {
                Destination::Write(id) => id.as_str(),
                Destination::Existing(found) => found.id.as_str(),
            };
            placeholders.insert(url, &resource_type, id);
        }
        destinations.insert(index, destination);
    }

    // 3. Creates, then updates and patches; reads last.
    let mut resolved: HashMap<String, String> = HashMap::new();
    for p in rest_entries {
        let index = p.entry.index;
        let result = match p.entry.action {
            Action::Create { mut resource, .. } => match destinations.remove(&index) {
                Some(Destination::Existing(found)) => Ok(Done::Written {
                    status: StatusCode::OK,
                    version: found,
                }),
                Some(Destination::Write(id)) => {
                    rewrite_references(tx, &mut resource, &placeholders, options, &mut resolved)
                        .and_then(|()| {
                            let document = tx.document(resource)?;
                            Ok(tx.update(&id, document, None, Method::Post)?)
                        })
                        .map(|written| Done::Written {
                            status: StatusCode::CREATED,
                            version: written.version,
                        })
                }
                None => Err(ApiError::Internal("a create without a destination".into())),
            },
            Action::Update {
                mut resource,
                if_match,
                only_create,
                target,
            } => match destinations.remove(&index) {
                Some(Destination::Write(id)) => {
                    rewrite_references(tx, &mut resource, &placeholders, options, &mut resolved)
                        .and_then(|()| {
                            if only_create {
                                if let Ok(current) = tx.read(target.resource_type(), &id) {
                                    return Err(ApiError::PreconditionFailed(format!(
                                        "{}/{id} exists (version {}) and ifNoneMatch is *",
                                        current.resource_type, current.version_id
                                    )));
                                }
                            }
                            if let Some(obj) = resource.as_object_mut() {
                                obj.insert("id".into(), Value::String(id.clone()));
                            }
                            let document = tx.document(resource)?;
                            Ok(tx.update(&id, document, if_match, Method::Put)?)
                        })
                        .map(|written| Done::Written {
                            status: if written.created {
                                StatusCode::CREATED
                            } else {
                                StatusCode::OK
                            },
                            version: written.version,
                        })
                }
                _ => Err(ApiError::Internal("an update without a destination".into())),
            },
            Action::Patch {
                target,
                patch,
                if_match,
            } => {
                let current = match &target {
                    Target::Id(t, id) => tx.read(t, id).map_err(ApiError::from),
                    Target::Condition(t, _) => {
                        let query = p.condition.as_ref().expect("a parsed condition");
                        conditional::single_match(tx, query).and_then(|found| {
                            found.ok_or_else(|| {
                                ApiError::NotFound(format!("no {t} matches the condition"))
                            })
                        })
                    }
                };
                current
                    .and_then(|current| {
                        if matches!(target, Target::Condition(..)) {
                            touch(index, &current.resource_type, &current.id)?;
                        }
                        rest::patch_version(tx, current, if_match, &patch, config.max_body_bytes)
                    })
                    .map(|written| Done::Written {
                        status: StatusCode::OK,
                        version: written.version,
                    })
            }
            Action::Read {
                resource_type,
                id,
                version,
                if_none_match,
                if_modified_since,
            } => {
                let read = match version {
                    Some(v) => tx.vread(&resource_type, &id, v),
                    None => tx.read(&resource_type, &id),
                };
                read.map_err(ApiError::from).map(|version| {
                    if not_modified(
                        &version,
                        if_none_match.as_deref(),
                        if_modified_since.as_deref(),
                    ) {
                        Done::NotModified(version)
                    } else {
                        Done::Read(version)
                    }
                })
            }
            Action::Search { resource_type, .. } => {
                let search = p.search.expect("a parsed search");
                tx.search(&search.query, &search.page)
                    .map_err(ApiError::from)
                    .map(|results| {
                        Done::Searched(Box::new(Searched {
                            path: resource_type.map_or_else(|| "/".to_owned(), |t| format!("/{t}")),
                            search,
                            results,
                        }))
                    })
            }
            Action::Delete { .. } => Err(ApiError::Internal("a delete after the deletes".into())),
        };
        done.push((index, result.map_err(|e| e.in_entry(index))?));
    }
    done.sort_by_key(|(index, _)| *index);
    Ok(done.into_iter().map(|(_, d)| d).collect())
}

/// Resolves the references of a resource about to be written.
fn rewrite_references(
    tx: &mut Tx<'_>,
    resource: &mut Value,
    placeholders: &Placeholders,
    options: &ParseOptions,
    resolved: &mut HashMap<String, String>,
) -> Result<(), ApiError> {
    references::rewrite(resource, placeholders, &mut |reference: &str| {
        if let Some(target) = resolved.get(reference) {
            return Ok(target.clone());
        }
        let (resource_type, query) = reference.split_once('?').unwrap_or((reference, ""));
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let condition = conditional::parse_condition(options, resource_type, &params)?;
        let mut found = tx.find(&condition, 2)?;
        let target = match found.len() {
            1 => found.pop().map(|v| format!("{}/{}", v.resource_type, v.id)),
            0 => None,
            _ => {
                return Err(ApiError::PreconditionFailed(format!(
                    "the conditional reference {reference} matches more than one resource"
                )))
            }
        }
        .ok_or_else(|| {
            ApiError::PreconditionFailed(format!(
                "the conditional reference {reference} matches no resource"
            ))
        })?;
        resolved.insert(reference.to_owned(), target.clone());
        Ok(target)
    })
    .map(|_| ())
    .map_err(ApiError::from)
}

/// `ifNoneMatch` / `ifModifiedSince` of a read entry.
fn not_modified(
    version: &StoredVersion,
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
) -> bool {
    if let Some(tags) = if_none_match {
        return tags
            .split(',')
            .any(|t| t.trim() == "*" || rest::parse_etag(t) == Some(version.version_id));
    }
    if let Some(since) = if_modified_since {
        let since_ms = datetime::range(since).map(|r| r.start).or_else(|| {
            httpdate::parse_http_date(since).ok().and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis() as i64)
            })
        });
        if let Some(since_ms) = since_ms {
            return version.last_updated / 1000 <= since_ms / 1000;
        }
    }
    false
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
fn respond(fhir: &Fhir, kind: &str, done: Vec<Done>) -> Reply {
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

fn response_entry(fhir: &Fhir, base: &str, done: Done) -> Value {
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
                &searched.path,
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
