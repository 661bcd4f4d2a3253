//! `GET /metadata`: the CapabilityStatement, generated from what this build
//! implements. It claims nothing the handlers do not do.

use actix_web::HttpResponse;
use std::sync::{Arc, Mutex};

use hearth_model::search_params::{self, CustomParams, ParamType, SearchParam, Support};
use hearth_model::{structure, Value};
use serde_json::json;

use crate::context::{Fhir, Public};
use crate::error::ApiError;
use crate::negotiate::{self, Shape};

/// The interactions every resource type supports, as the routes in
/// `lib.rs` wire them.
const TYPE_INTERACTIONS: [&str; 9] = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// The `rest.resource` list: the same for every request until the custom
/// search parameters change, so built once per generation of them.
fn resources(custom: &CustomParams, multiple_delete: bool) -> Arc<Vec<Value>> {
    /// (custom parameters' generation, multiple delete) → the list.
    type Cached = ((u64, bool), Arc<Vec<Value>>);
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    let generation = (custom.generation(), multiple_delete);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match cache.as_ref() {
        Some((g, list)) if *g == generation => list.clone(),
        _ => {
            let list = Arc::new(
                structure::resource_types()
                    .map(|t| resource(t, custom, multiple_delete))
                    .collect::<Vec<_>>(),
            );
            *cache = Some((generation, list.clone()));
            list
        }
    }
}

/// `_text` and `_content` have no FHIRPath expression; the full-text index
/// serves them.
fn served(p: &SearchParam, custom: &CustomParams) -> bool {
    (p.support == Support::Supported && custom.is_searchable(p))
        || p.code == "_text"
        || p.code == "_content"
}

fn resource(t: &str, custom: &CustomParams, multiple_delete: bool) -> Value {
    let supported: Vec<&SearchParam> = search_params::for_type(t, custom)
        .filter(|p| served(p, custom))
        .collect();
    let search_params: Vec<Value> = supported
        .iter()
        .map(|p| {
            json!({
                "name": p.code,
                "definition": p.url,
                "type": p.param_type.code(),
                "documentation": p.description,
            })
        })
        .collect();
    let mut includes: Vec<String> = supported
        .iter()
        .filter(|p| p.param_type == ParamType::Reference)
        .map(|p| format!("{t}:{}", p.code))
        .collect();
    if !includes.is_empty() {
        includes.push(format!("{t}:*"));
    }
    let revincludes: Vec<String> = search_params::all()
        .filter(|p| {
            p.param_type == ParamType::Reference
                && p.support == Support::Supported
                && p.targets.iter().any(|target| target == t)
        })
        .map(|p| format!("{}:{}", p.base, p.code))
        .collect();
    let unsupported: Vec<String> = search_params::for_type(t, custom)
        .filter_map(|p| match (&p.support, p.param_type) {
            (Support::Unsupported(reason), _) => Some(format!("{} ({reason})", p.code)),
            (_, ParamType::Composite) => Some(format!(
                "{} (composite parameters are not supported yet)",
                p.code
            )),
            _ => None,
        })
        .collect();
    let mut resource = json!({
        "type": t,
        "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
        "interaction": TYPE_INTERACTIONS.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
        "versioning": "versioned-update",
        "readHistory": true,
        "updateCreate": true,
        "conditionalCreate": true,
        "conditionalRead": "full-support",
        "conditionalUpdate": true,
        "conditionalDelete": if multiple_delete { "multiple" } else { "single" },
    });
    // FHIR has no empty arrays: leave out what a type does not have.
    for (key, list) in [
        ("searchInclude", json!(includes)),
        ("searchRevInclude", json!(revincludes)),
        ("searchParam", json!(search_params)),
    ] {
        if list.as_array().is_some_and(|a| !a.is_empty()) {
            resource[key] = list;
        }
    }
    if t == "Patient" {
        resource["operation"] = json!([{
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            "documentation": "GET Patient/[id]/$everything or Patient/$everything: the patient, their compartment and the resources it refers to, paged; _since, _type, start, end, _count",
        }, {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
            "documentation": "Bulk Data export of the Patient compartment of every patient (Prefer: respond-async)",
        }, {
            // Bulk Data 1.0's name for it, which clients still look for.
            "name": "patient-export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
            "documentation": "The same as export: GET Patient/$export",
        }]);
    }
    if t == "Group" {
        resource["operation"] = json!([{
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
            "documentation": "Bulk Data export of the Patient compartments of the Group's Patient members (Prefer: respond-async)",
        }, {
            "name": "group-export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
            "documentation": "The same as export: GET Group/[id]/$export",
        }]);
    }
    if !unsupported.is_empty() {
        resource["documentation"] = json!(format!(
            "Search parameters not supported: {}.",
            unsupported.join(", ")
        ));
    }
    resource
}

/// The limits a client can run into (README, "Limits").
fn limits(config: &crate::HttpConfig) -> String {
    use hearth_store::search::limits as search;
    format!(
        "Limits, each refused with an OperationOutcome before any work: bodies of at most {} bytes, \
         nesting at most {} levels deep; strings of at most 1 MB; no duplicate JSON members; no XML DOCTYPE; \
         batch and transaction Bundles of at most {} entries; searches of at most {} parameters, {} values, \
         chains of {} links and _has nested {} deep (400 too-costly); _include and _revinclude add at most {} \
         resources to a page (an OperationOutcome entry says when more matched); a request's database work \
         stops after {} s (503 too-costly).",
        config.max_body_bytes,
        hearth_model::limits::MAX_DEPTH,
        config.max_bundle_entries,
        search::MAX_PARAMETERS,
        search::MAX_VALUES,
        search::MAX_CHAIN_LINKS,
        search::MAX_HAS_NESTING,
        config.max_includes,
        config.time_limit.as_secs(),
    )
}

pub fn capability_statement(fhir: &Fhir) -> Value {
    let base = fhir.base();
    let documentation = format!(
        "{} {}",
        "Read, vread, create, update (also as create), patch (JSON Patch and FHIRPath Patch), delete, history and search on every R4 resource type; system and compartment search. Custom SearchParameter resources (status active) are indexed on write and become searchable after $reindex of their base types. Conditional create (If-None-Exist), update, patch and delete (single match; several answer 412). Batch and transaction Bundles (POST to the base). Search parameters come from the R4 SearchParameter definitions; unknown parameters are ignored (reported in an OperationOutcome entry) unless Prefer: handling=strict.",
        limits(&fhir.state.config)
    );
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": fhir.state.started,
        "publisher": "Hearth",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "software": {"name": "Hearth", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Hearth FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "documentation": documentation,
            "security": security(fhir),
            "resource": *resources(
                &fhir.store.custom_params(),
                fhir.state.config.conditional_delete_multiple,
            ),
            "interaction": [
                {"code": "transaction", "documentation": "All or nothing, in the specification's order; fullUrl placeholders (urn:uuid, urn:oid) resolved in references, Attachment.url and narrative links (a urn:uuid or urn:oid reference no entry carries fails the transaction); conditional references (Type?search) resolved to their single match; ifNoneExist, ifMatch, ifNoneMatch and ifModifiedSince on entries; PATCH entries as a Binary JSON Patch or a FHIRPath Patch Parameters"},
                {"code": "batch", "documentation": "Each entry in a transaction of its own; each entry's outcome in its response entry"},
                {"code": "history-system"},
                {"code": "search-system"},
            ],
            "searchParam": [
                {"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"},
                {"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "type": "date"},
                {"name": "_tag", "definition": "http://hl7.org/fhir/SearchParameter/Resource-tag", "type": "token"},
                {"name": "_profile", "definition": "http://hl7.org/fhir/SearchParameter/Resource-profile", "type": "uri"},
                {"name": "_security", "definition": "http://hl7.org/fhir/SearchParameter/Resource-security", "type": "token"},
                {"name": "_source", "definition": "http://hl7.org/fhir/SearchParameter/Resource-source", "type": "uri"},
                {"name": "_content", "definition": "http://hl7.org/fhir/SearchParameter/Resource-content", "type": "string", "documentation": "Full text over every text value (SQLite FTS5 or PostgreSQL tsvector); words are ANDed, OR between words is honoured"},
                {"name": "_text", "definition": "http://hl7.org/fhir/SearchParameter/DomainResource-text", "type": "string", "documentation": "Full text over the narrative (SQLite FTS5 or PostgreSQL tsvector)"},
            ],
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                "documentation": "Bulk Data Access 2.0: GET [base]/$export, Patient/$export, Group/[id]/$export with Prefer: respond-async; _type, _since, _typeFilter, _outputFormat (application/fhir+ndjson); poll the Content-Location for the manifest; DELETE it to cancel",
            }, {
                "name": "reindex",
                "definition": "http://hearth.dev/fhir/OperationDefinition/reindex",
                "documentation": "POST [base]/$reindex or [base]/[type]/$reindex rebuilds the search index (needed for a new SearchParameter to become searchable); answers 202 with Content-Location to poll",
            }],
            "compartment": [
                "http://hl7.org/fhir/CompartmentDefinition/patient",
                "http://hl7.org/fhir/CompartmentDefinition/encounter",
                "http://hl7.org/fhir/CompartmentDefinition/relatedPerson",
                "http://hl7.org/fhir/CompartmentDefinition/practitioner",
                "http://hl7.org/fhir/CompartmentDefinition/device",
            ],
        }],
    })
}

/// `rest.security`, with the authorization server's endpoints when there
/// is one.
fn security(fhir: &Fhir) -> serde_json::Value {
    let mut security = fhir
        .state
        .authorization
        .security(fhir.state.config.cors.any_configured());
    if let Some(server) = &fhir.state.oauth {
        security["extension"] = json!([crate::oauth::oauth_uris(server)]);
    }
    security
}

/// `GET /.well-known/jwks.json`: the public keys of Hearth's own tokens.
pub async fn jwks(Public(fhir): Public) -> HttpResponse {
    match &fhir.state.oauth {
        Some(server) => HttpResponse::Ok()
            .insert_header((actix_web::http::header::CONTENT_TYPE, "application/json"))
            .insert_header((actix_web::http::header::CACHE_CONTROL, "max-age=60"))
            .body(server.jwks().to_string()),
        None => fhir.finish(Err(ApiError::NotFound(
            "this server issues no tokens of its own (auth = \"none\")".into(),
        ))),
    }
}

pub async fn metadata(Public(fhir): Public) -> HttpResponse {
    let reply = (|| {
        let shape = match negotiate::param(&fhir.params, "_summary") {
            None | Some("false") => Shape::Full,
            Some(_) => negotiate::shape(&fhir.params)?,
        };
        fhir.value(capability_statement(&fhir), &shape)
    })();
    fhir.finish(reply)
}
