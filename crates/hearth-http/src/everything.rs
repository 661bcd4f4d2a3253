//! `Patient/[id]/$everything` and `Patient/$everything`
//! (patient-operation-everything): the patient record as a searchset
//! Bundle, paged, with `_since`, `_type`, `start`, `end` and `_count`.

use actix_web::{web, HttpResponse};
use hearth_model::datetime;
use hearth_store::search::{Everything, SearchPage, SearchQuery};

use crate::context::blocking;
use crate::context::Fhir;
use crate::error::ApiError;
use crate::negotiate::{self, Shape};
use crate::reply::Reply;
use hearth_api::checks::{check_id, check_type};

/// Parameters of the operation (and of paging); others are refused, as an
/// operation's unknown parameters should be.
const PARAMS: [&str; 9] = [
    "_since",
    "_type",
    "start",
    "end",
    "_count",
    "_snapshot",
    "_offset",
    "_format",
    "_pretty",
];

pub async fn instance(fhir: Fhir, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let reply = async {
        check_id(&id)?;
        // The patient must exist (404) and not be deleted (410).
        let store = fhir.store.clone();
        let lookup = id.clone();
        blocking(move || store.read("Patient", &lookup)).await?;
        run(&fhir, Some(vec![id])).await
    }
    .await;
    fhir.finish(reply)
}

pub async fn type_level(fhir: Fhir) -> HttpResponse {
    let reply = async { run(&fhir, None).await }.await;
    fhir.finish(reply)
}

async fn run(fhir: &Fhir, patients: Option<Vec<String>>) -> Reply {
    let query = parse(fhir, patients)?;
    let page = SearchPage {
        snapshot: fhir.param("_snapshot").map(str::to_owned),
        offset: match fhir.param("_offset") {
            Some(o) => o
                .parse()
                .map_err(|_| ApiError::bad_request("_offset must be an integer"))?,
            None => 0,
        },
        cursor: None,
    };
    let store = fhir.store.clone();
    let everything = query.clone();
    let results = blocking(move || store.everything(&everything, &page)).await?;
    let mut paged = SearchQuery::default();
    paged.count = query.count;
    let bundle = crate::search::searchset(
        fhir,
        fhir.req.path(),
        &paged,
        &fhir.params,
        &results,
        &Shape::Full,
    );
    fhir.json(&bundle.to_json())
}

fn parse(fhir: &Fhir, patients: Option<Vec<String>>) -> Result<Everything, ApiError> {
    if let Some((name, _)) = fhir
        .params
        .iter()
        .find(|(k, _)| !PARAMS.contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest {
            message: format!("$everything takes no parameter '{name}'"),
            expression: vec![name.clone()],
        });
    }
    let instant = |name: &str, end: bool| -> Result<Option<i64>, ApiError> {
        fhir.param(name)
            .map(|v| {
                datetime::range(v)
                    .map(|r| if end { r.end } else { r.start })
                    .ok_or_else(|| ApiError::BadRequest {
                        message: format!("{name} must be a date, dateTime or instant, not '{v}'"),
                        expression: vec![name.to_owned()],
                    })
            })
            .transpose()
    };
    let types: Vec<String> = fhir
        .param("_type")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for t in &types {
        check_type(t)?;
    }
    let config = &fhir.state.config;
    let count = match negotiate::param(&fhir.params, "_count") {
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| ApiError::bad_request("_count must be a non-negative integer"))?
            .min(config.max_page_size),
        None => config.default_page_size,
    };
    Ok(Everything {
        patients,
        since: instant("_since", false)?,
        types,
        start: instant("start", false)?,
        end: instant("end", true)?,
        count,
        base: Some(fhir.base()),
    })
}
