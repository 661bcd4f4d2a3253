//! `GET /metadata`: the CapabilityStatement, generated from what this build
//! implements. It claims nothing the handlers do not do.

use actix_web::HttpResponse;
use hearth_model::{structure, Value};
use serde_json::json;

use crate::access::Interaction;
use crate::context::Fhir;
use crate::negotiate::{self, Shape};

/// The interactions every resource type supports, as the routes in
/// `lib.rs` wire them.
const TYPE_INTERACTIONS: [&str; 8] = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

pub fn capability_statement(fhir: &Fhir) -> Value {
    let resources: Vec<Value> = structure::resource_types()
        .map(|t| {
            json!({
                "type": t,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": false,
                "conditionalRead": "full-support",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
            })
        })
        .collect();
    let base = fhir.base();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": fhir.state.started,
        "publisher": "Hearth",
        "kind": "instance",
        "software": {"name": "Hearth", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Hearth FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "documentation": "Read, vread, create, update (also as create), patch (JSON Patch and FHIRPath Patch), delete and history on every R4 resource type. Search is not yet supported.",
            "security": {"description": fhir.state.policy.describe()},
            "resource": resources,
            "interaction": [{"code": "history-system"}],
        }],
    })
}

pub async fn metadata(fhir: Fhir) -> HttpResponse {
    let reply = (|| {
        fhir.access.require(Interaction::Capabilities, None, None)?;
        let shape = match negotiate::param(&fhir.params, "_summary") {
            None | Some("false") => Shape::Full,
            Some(_) => negotiate::shape(&fhir.params)?,
        };
        fhir.value(capability_statement(&fhir), &shape)
    })();
    fhir.finish(reply)
}
