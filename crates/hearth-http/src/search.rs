//! The search interactions: `GET [type]?…`, `POST [type]/_search`, system
//! search `GET [base]?_type=…`, and compartment search
//! `GET Patient/123/Observation`, answered with searchset Bundles.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use hearth_model::search_params::ParamType;
use hearth_model::Value;
use hearth_store::search::{
    self, Condition, Modifier, ParseOptions, SearchPage, SearchQuery, SearchResults, SearchValue,
};
use hearth_store::StoredVersion;
use serde_json::{json, Map};

use crate::context::blocking;
use crate::context::Fhir;
use crate::error::ApiError;
use crate::negotiate::{self, Shape};
use crate::reply::Reply;
use crate::spliced::{SplicedBundle, SplicedEntry};
use hearth_api::checks::{check_id, check_type};

/// Parameters that page an existing search; left out of `self` links of a
/// fresh search.
const PAGING_PARAMS: [&str; 3] = ["_snapshot", "_offset", "_cursor"];

pub async fn of_type(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        let params = fhir.params.clone();
        run(&fhir, vec![resource_type], params, None).await
    }
    .await;
    fhir.finish(reply)
}

/// `POST [type]/_search`: the parameters come in a form body (and the URL).
pub async fn of_type_post(
    fhir: Fhir,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        let body = fhir.any_body(payload).await?;
        let params = form_params(&fhir, &body)?;
        run(&fhir, vec![resource_type], params, None).await
    }
    .await;
    fhir.finish(reply)
}

pub async fn system(fhir: Fhir) -> HttpResponse {
    let params = fhir.params.clone();
    let reply = run(&fhir, Vec::new(), params, None).await;
    fhir.finish(reply)
}

pub async fn system_post(fhir: Fhir, payload: web::Payload) -> HttpResponse {
    let reply = async {
        let body = fhir.any_body(payload).await?;
        let params = form_params(&fhir, &body)?;
        run(&fhir, Vec::new(), params, None).await
    }
    .await;
    fhir.finish(reply)
}

/// `GET [compartment type]/[id]/[type]?…`
pub async fn compartment(fhir: Fhir, path: web::Path<(String, String, String)>) -> HttpResponse {
    let (compartment_type, id, resource_type) = path.into_inner();
    let reply = async {
        check_type(&compartment_type)?;
        check_id(&id)?;
        let types = if resource_type == "*" {
            hearth_model::compartments::members(&compartment_type)
                .map(|(t, _)| t.to_owned())
                .collect()
        } else {
            check_type(&resource_type)?;
            vec![resource_type]
        };
        let params = fhir.params.clone();
        run(&fhir, types, params, Some((compartment_type, id))).await
    }
    .await;
    fhir.finish(reply)
}

fn form_params(fhir: &Fhir, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let content_type = fhir.header(header::CONTENT_TYPE).unwrap_or_default();
    if !body.is_empty() && !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "POST _search takes application/x-www-form-urlencoded parameters, not '{content_type}'"
        )));
    }
    let mut params = fhir.params.clone();
    params.extend(form_urlencoded::parse(body).into_owned());
    Ok(params)
}

/// `Prefer: handling=strict` makes unknown parameters errors.
fn strict_handling(fhir: &Fhir) -> bool {
    prefers(fhir, "handling=strict")
}

/// `Prefer: handling=lenient`: what cannot be honoured is passed over
/// (and said), not refused.
pub(crate) fn lenient_handling(fhir: &Fhir) -> bool {
    prefers(fhir, "handling=lenient")
}

fn prefers(fhir: &Fhir, preference: &str) -> bool {
    fhir.req
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|t| t.trim().eq_ignore_ascii_case(preference))
}

async fn run(
    fhir: &Fhir,
    types: Vec<String>,
    params: Vec<(String, String)>,
    compartment: Option<(String, String)>,
) -> Reply {
    let (query, shape, page) = prepare(fhir, &types, &params, compartment)?;
    let store = fhir.store.clone();
    let q = query.clone();
    let results = blocking(move || store.search(&q, &page)).await?;
    fhir.json(&searchset(fhir, fhir.req.path(), &query, &params, &results, &shape).to_json())
}

/// Reads a search's query, the shape of its entries and the page asked
/// for. (The store holds it to the request's grant.)
pub(crate) fn prepare(
    fhir: &Fhir,
    types: &[String],
    params: &[(String, String)],
    compartment: Option<(String, String)>,
) -> Result<(SearchQuery, Shape, SearchPage), ApiError> {
    let config = &fhir.state.config;
    let options = ParseOptions {
        strict: strict_handling(fhir),
        default_count: config.default_page_size,
        max_count: config.max_page_size,
        base: Some(fhir.base()),
        custom: fhir.store.custom_params(),
    };
    let mut query = search::parse(types, params, &options)?;
    query.max_includes = Some(config.max_includes);
    if let Some((compartment_type, id)) = &compartment {
        restrict_to_compartment(&mut query, compartment_type, id)?;
    }
    let shape = match negotiate::param(params, "_summary") {
        Some("count") => Shape::Full,
        _ => negotiate::shape(params)?,
    };
    let page = SearchPage {
        snapshot: negotiate::param(params, "_snapshot").map(str::to_owned),
        offset: negotiate::param(params, "_offset")
            .map(|o| {
                o.parse::<i64>()
                    .map_err(|_| ApiError::bad_request("_offset must be an integer"))
            })
            .transpose()?
            .unwrap_or(0),
        cursor: negotiate::param(params, "_cursor")
            .map(|c| c.parse::<search::Cursor>().map_err(ApiError::bad_request))
            .transpose()?,
    };
    if page
        .cursor
        .is_some_and(|cursor| !search::pages_by_cursor(&query, cursor))
    {
        return Err(ApiError::BadRequest {
            message: "_cursor pages only the search it was given for (of one type unsorted or \
                      sorted by _lastUpdated, or sorted by a date; without _total=accurate); \
                      start that search again without _cursor"
                .to_owned(),
            expression: vec!["_cursor".to_owned()],
        });
    }
    Ok((query, shape, page))
}

/// A compartment search is the type search restricted to resources that
/// refer to the compartment's owner through the CompartmentDefinition's
/// parameters.
fn restrict_to_compartment(
    query: &mut SearchQuery,
    compartment_type: &str,
    id: &str,
) -> Result<(), ApiError> {
    let mut params = Vec::new();
    for t in &query.types {
        match hearth_model::compartments::params(compartment_type, t) {
            Some(codes) => params.extend(codes.iter().map(|c| format!("{t}.{c}"))),
            None => {
                return Err(ApiError::NotFound(format!(
                    "{t} is not in the {compartment_type} compartment"
                )))
            }
        }
    }
    let condition = Condition::Values {
        params,
        kind: ParamType::Reference,
        modifier: Modifier::None,
        values: vec![SearchValue::Reference {
            resource_type: Some(compartment_type.to_owned()),
            id: Some(id.to_owned()),
            version: None,
            url: None,
        }],
        only_target: None,
    };
    query.conditions.push(condition);
    Ok(())
}

/// The searchset Bundle of a search's results; its links page the search
/// at `path` (below the base).
pub(crate) fn searchset(
    fhir: &Fhir,
    path: &str,
    query: &SearchQuery,
    params: &[(String, String)],
    results: &SearchResults,
    shape: &Shape,
) -> SplicedBundle {
    let base = fhir.base();
    let ignored: Vec<&str> = query.ignored.iter().map(|(k, _)| k.as_str()).collect();
    let kept: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| !PAGING_PARAMS.contains(&k.as_str()) && !ignored.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = |offset: Option<i64>, cursor: Option<search::Cursor>| -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        if let (Some(snapshot), Some(offset)) = (&results.snapshot, offset) {
            q.append_pair("_snapshot", snapshot);
            q.append_pair("_offset", &offset.to_string());
        }
        if let Some(cursor) = cursor {
            q.append_pair("_cursor", &cursor.to_string());
        }
        let q = q.finish();
        if q.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{q}")
        }
    };
    let link = |offset: Option<i64>| url(offset, None);
    let mut links = Vec::new();
    if let Some(keyset) = &results.keyset {
        // Read through the sort index: no offsets, so no previous or last.
        links.push(json!({"relation": "self", "url": url(None, keyset.current)}));
        links.push(json!({"relation": "first", "url": url(None, None)}));
        if let Some(next) = keyset.next {
            links.push(json!({"relation": "next", "url": url(None, Some(next))}));
        }
    } else if results.snapshot.is_some() {
        let count = query.count.max(1);
        links.push(json!({"relation": "self", "url": link(Some(results.offset))}));
        links.push(json!({"relation": "first", "url": link(Some(0))}));
        if results.offset > 0 {
            links.push(
                json!({"relation": "previous", "url": link(Some((results.offset - count).max(0)))}),
            );
        }
        if query.count > 0 && results.offset + query.count < results.total {
            links
                .push(json!({"relation": "next", "url": link(Some(results.offset + query.count))}));
        }
        let last = if results.total == 0 {
            0
        } else {
            (results.total - 1) / count * count
        };
        links.push(json!({"relation": "last", "url": link(Some(last))}));
    } else {
        links.push(json!({"relation": "self", "url": link(None)}));
    }
    let mut bundle = SplicedBundle::new("searchset");
    let entries = &mut bundle.entries;
    let mut issues: Vec<Value> = query
        .ignored
        .iter()
        .map(|(k, reason)| {
            json!({"severity": "warning", "code": "not-supported", "diagnostics": format!("ignored parameter '{k}': {reason}"), "expression": [k]})
        })
        .collect();
    if results.includes_cut {
        issues.push(json!({
            "severity": "warning",
            "code": "incomplete",
            "diagnostics": format!(
                "_include and _revinclude reach more resources than one page may include (at most {}); this page includes {} of them",
                fhir.state.config.max_includes,
                results.included.len()
            ),
            "expression": ["_include", "_revinclude"]
        }));
    }
    if !issues.is_empty() {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": issues});
        entries.push(searchset_entry(
            format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            hearth_model::to_json_bytes(&outcome, false),
            "outcome",
        ));
    }
    for v in &results.matches {
        entries.push(entry(&base, v, "match", shape));
    }
    for v in &results.included {
        entries.push(entry(&base, v, "include", shape));
    }
    let total_known = results.keyset.as_ref().is_none_or(|k| k.total_known);
    if (query.total != search::Total::None && total_known) || query.count_only {
        bundle.shell.insert("total".into(), json!(results.total));
    }
    bundle.shell.insert("link".into(), json!(links));
    bundle
}

/// A searchset entry: its resource as compact JSON (reshaped first for
/// `_summary` and `_elements`) and its search mode.
fn entry(base: &str, version: &StoredVersion, mode: &str, shape: &Shape) -> SplicedEntry {
    let body = version.body.as_deref().unwrap_or(b"null");
    let resource = match shape {
        Shape::Full => body.to_vec(),
        Shape::Summary(_) | Shape::Elements(_) => {
            let mut resource: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            match shape {
                Shape::Summary(mode) => hearth_model::summary::summary(&mut resource, *mode),
                Shape::Elements(names) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    hearth_model::summary::elements(&mut resource, &names);
                }
                Shape::Full => {}
            }
            hearth_model::to_json_bytes(&resource, false)
        }
    };
    searchset_entry(
        format!("{base}/{}/{}", version.resource_type, version.id),
        resource,
        mode,
    )
}

fn searchset_entry(full_url: String, resource: Vec<u8>, mode: &str) -> SplicedEntry {
    let mut rest = Map::new();
    rest.insert("search".into(), json!({"mode": mode}));
    SplicedEntry {
        full_url,
        resource: Some(resource),
        rest,
    }
}
