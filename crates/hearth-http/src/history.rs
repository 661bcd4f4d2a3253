//! The history interactions (instance, type, system) and their Bundles.

use actix_web::{web, HttpResponse};
use hearth_model::datetime;
use hearth_store::{HistoryPage, HistoryQuery, HistoryScope, Method, StoredVersion};
use serde_json::{json, Map};

use crate::context::blocking;
use crate::context::Fhir;
use crate::error::ApiError;
use crate::reply::{etag, Reply};
use crate::spliced::{SplicedBundle, SplicedEntry};
use hearth_api::checks::{check_id, check_type};

const PAGING_PARAMS: [&str; 2] = ["_snapshot", "_offset"];

pub async fn system(fhir: Fhir) -> HttpResponse {
    let reply = history(&fhir, HistoryScope::System).await;
    fhir.finish(reply)
}

pub async fn of_type(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let resource_type = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        history(&fhir, HistoryScope::Type(resource_type)).await
    }
    .await;
    fhir.finish(reply)
}

pub async fn instance(fhir: Fhir, path: web::Path<(String, String)>) -> HttpResponse {
    let (resource_type, id) = path.into_inner();
    let reply = async {
        check_type(&resource_type)?;
        check_id(&id)?;
        history(&fhir, HistoryScope::Instance(resource_type, id)).await
    }
    .await;
    fhir.finish(reply)
}

async fn history(fhir: &Fhir, scope: HistoryScope) -> Reply {
    let query = history_query(fhir, scope.clone())?;
    let store = fhir.store.clone();
    let q = query.clone();
    let page = blocking(move || store.history(&q)).await?;
    if let HistoryScope::Instance(t, i) = &scope {
        if page.total == 0 && query.since.is_none() && query.at.is_none() {
            return Err(ApiError::NotFound(format!("{t}/{i} is not known")));
        }
    }
    fhir.json(&bundle(fhir, &query, &page).to_json())
}

fn history_query(fhir: &Fhir, scope: HistoryScope) -> Result<HistoryQuery, ApiError> {
    let config = &fhir.state.config;
    let count = match fhir.param("_count") {
        None => config.default_page_size,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!("_count must be a non-negative integer, not '{c}'"))
            })?
            .min(config.max_page_size),
    };
    let since = fhir
        .param("_since")
        .map(|s| {
            datetime::range(s).map(|r| r.start).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "_since must be an instant such as 2024-01-01T00:00:00Z, not '{s}'"
                ))
            })
        })
        .transpose()?;
    let at = fhir
        .param("_at")
        .map(|s| {
            datetime::range(s).ok_or_else(|| {
                ApiError::bad_request(format!("_at must be a date or dateTime, not '{s}'"))
            })
        })
        .transpose()?;
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        fhir.param(name)
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::bad_request(format!("{name} must be a non-negative integer"))
                })
            })
            .transpose()
    };
    Ok(HistoryQuery {
        scope,
        since,
        at,
        count,
        offset: number("_offset")?.unwrap_or(0),
        snapshot: fhir
            .param("_snapshot")
            .map(|s| {
                s.parse::<hearth_store::HistorySnapshot>()
                    .map_err(ApiError::bad_request)
            })
            .transpose()?,
    })
}

fn bundle(fhir: &Fhir, query: &HistoryQuery, page: &HistoryPage) -> SplicedBundle {
    let base = fhir.base();
    let path = fhir.req.path();
    // The query as the client sent it, without our paging parameters.
    let kept: Vec<(&str, &str)> = fhir
        .params
        .iter()
        .filter(|(k, _)| !PAGING_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let link = |offset: i64| -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("_snapshot", &page.snapshot.to_string());
        q.append_pair("_offset", &offset.to_string());
        format!("{base}{path}?{}", q.finish())
    };
    let count = query.count.max(1);
    let mut links = vec![
        json!({"relation": "self", "url": link(query.offset)}),
        json!({"relation": "first", "url": link(0)}),
    ];
    if query.offset > 0 {
        links.push(json!({"relation": "previous", "url": link((query.offset - count).max(0))}));
    }
    if query.count > 0 && query.offset + query.count < page.total {
        links.push(json!({"relation": "next", "url": link(query.offset + query.count)}));
    }
    let last = if page.total == 0 {
        0
    } else {
        (page.total - 1) / count * count
    };
    links.push(json!({"relation": "last", "url": link(last)}));

    let mut bundle = SplicedBundle::new("history");
    bundle.shell.insert("total".into(), json!(page.total));
    bundle.shell.insert("link".into(), json!(links));
    bundle.entries = page.entries.iter().map(|v| entry(&base, v)).collect();
    bundle
}

fn entry(base: &str, version: &StoredVersion) -> SplicedEntry {
    let url = match version.method {
        Method::Post => version.resource_type.clone(),
        _ => format!("{}/{}", version.resource_type, version.id),
    };
    let status = match version.method {
        Method::Post => "201 Created",
        Method::Delete => "204 No Content",
        Method::Put if version.version_id == 1 => "201 Created",
        _ => "200 OK",
    };
    let mut rest = Map::new();
    rest.insert(
        "request".into(),
        json!({"method": version.method.as_str(), "url": url}),
    );
    rest.insert(
        "response".into(),
        json!({
            "status": status,
            "etag": etag(version.version_id),
            "lastModified": datetime::format_instant(version.last_updated),
        }),
    );
    SplicedEntry {
        full_url: format!("{base}/{}/{}", version.resource_type, version.id),
        resource: version.body.clone(),
        rest,
    }
}
