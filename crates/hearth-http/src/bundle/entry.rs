//! One entry of a batch or transaction Bundle, read into the interaction it
//! asks for (`entry.request`: method, url and the conditional headers).

use base64::Engine;
use hearth_model::{resource, Value};

use crate::error::ApiError;
use crate::rest::{self, PatchDocument};

/// What an entry asks for.
#[derive(Debug)]
pub(crate) enum Action {
    Read {
        resource_type: String,
        id: String,
        version: Option<i64>,
        if_none_match: Option<String>,
        if_modified_since: Option<String>,
    },
    Search {
        resource_type: Option<String>,
        params: Vec<(String, String)>,
    },
    Create {
        resource: Value,
        if_none_exist: Option<Vec<(String, String)>>,
    },
    Update {
        target: Target,
        resource: Value,
        if_match: Option<i64>,
        /// `ifNoneMatch: *`: only create; fail if the resource exists.
        only_create: bool,
    },
    Patch {
        target: Target,
        patch: PatchDocument,
        if_match: Option<i64>,
    },
    Delete {
        target: Target,
        if_match: Option<i64>,
    },
}

/// The resource a write is about: by id, or by a search (conditional).
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Id(String, String),
    Condition(String, Vec<(String, String)>),
}

impl Target {
    pub(crate) fn resource_type(&self) -> &str {
        match self {
            Target::Id(t, _) | Target::Condition(t, _) => t,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    /// Its position in the Bundle.
    pub index: usize,
    pub full_url: Option<String>,
    pub action: Action,
}

impl Entry {
    /// The order a transaction processes entries in (http.html#trules):
    /// deletes, creates, updates and patches, then reads.
    pub(crate) fn phase(&self) -> u8 {
        match self.action {
            Action::Delete { .. } => 0,
            Action::Create { .. } => 1,
            Action::Update { .. } | Action::Patch { .. } => 2,
            Action::Read { .. } | Action::Search { .. } => 3,
        }
    }
}

/// Reads `Bundle.entry[index]` (taking its resource); `base` is this
/// server's, which absolute request URLs may start with.
pub(crate) fn read(index: usize, mut entry: Value, base: &str) -> Result<Entry, ApiError> {
    let resource = entry.get_mut("resource").map(Value::take);
    let request = entry
        .get("request")
        .ok_or_else(|| ApiError::bad_request("the entry has no request"))?;
    let method = request["method"].as_str().unwrap_or_default();
    let url = request["url"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("the entry's request has no url"))?;
    let (path, query) = split_url(url, base);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let header = |name: &str| request[name].as_str().map(str::to_owned);
    let if_match = header("ifMatch")
        .map(|v| {
            rest::parse_etag(&v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "ifMatch must be a version ETag such as W/\"1\", not '{v}'"
                ))
            })
        })
        .transpose()?;
    let action = match (method, segments.as_slice()) {
        ("GET" | "HEAD", [t, id]) => {
            check_instance(t, id)?;
            Action::Read {
                resource_type: (*t).to_owned(),
                id: (*id).to_owned(),
                version: None,
                if_none_match: header("ifNoneMatch"),
                if_modified_since: header("ifModifiedSince"),
            }
        }
        ("GET" | "HEAD", [t, id, "_history", vid]) => {
            check_instance(t, id)?;
            let version = vid.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                ApiError::NotFound(format!("{t}/{id}/_history/{vid} is not known"))
            })?;
            Action::Read {
                resource_type: (*t).to_owned(),
                id: (*id).to_owned(),
                version: Some(version),
                if_none_match: header("ifNoneMatch"),
                if_modified_since: header("ifModifiedSince"),
            }
        }
        ("GET" | "HEAD", [t]) => {
            rest::check_type(t)?;
            Action::Search {
                resource_type: Some((*t).to_owned()),
                params: query,
            }
        }
        ("GET" | "HEAD", []) => Action::Search {
            resource_type: None,
            params: query,
        },
        ("POST", [t]) => {
            rest::check_type(t)?;
            let resource = body(resource, t)?;
            let if_none_exist = header("ifNoneExist").map(|v| {
                // Clients send `identifier=x`, some `Patient?identifier=x`.
                let v = v.split_once('?').map_or(v.as_str(), |(_, q)| q).to_owned();
                form_urlencoded::parse(v.as_bytes()).into_owned().collect()
            });
            Action::Create {
                resource,
                if_none_exist,
            }
        }
        ("PUT", [t, id]) => {
            check_instance(t, id)?;
            let resource = body(resource, t)?;
            match resource::id(&resource) {
                Some(body_id) if body_id == *id => {}
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "the resource's id must be '{id}', as in the request url"
                    )))
                }
            }
            Action::Update {
                target: Target::Id((*t).to_owned(), (*id).to_owned()),
                resource,
                if_match,
                only_create: header("ifNoneMatch").as_deref() == Some("*"),
            }
        }
        ("PUT", [t]) if !query.is_empty() => {
            rest::check_type(t)?;
            Action::Update {
                target: Target::Condition((*t).to_owned(), query),
                resource: body(resource, t)?,
                if_match,
                only_create: false,
            }
        }
        ("PATCH", [t, rest @ ..]) if rest.len() == 1 || (rest.is_empty() && !query.is_empty()) => {
            Action::Patch {
                target: target(t, rest.first().copied(), query)?,
                patch: patch_document(resource)?,
                if_match,
            }
        }
        ("DELETE", [t, rest @ ..]) if rest.len() == 1 || (rest.is_empty() && !query.is_empty()) => {
            Action::Delete {
                target: target(t, rest.first().copied(), query)?,
                if_match,
            }
        }
        ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE", _) => {
            return Err(ApiError::bad_request(format!(
                "{method} {url} is not an interaction a Bundle entry can ask for"
            )))
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "the entry's request method '{method}' is not GET, HEAD, POST, PUT, PATCH or DELETE"
            )))
        }
    };
    Ok(Entry {
        index,
        full_url: entry["fullUrl"].as_str().map(str::to_owned),
        action,
    })
}

/// `Type/id`, or `Type?query` (a conditional write).
fn target(
    resource_type: &str,
    id: Option<&str>,
    query: Vec<(String, String)>,
) -> Result<Target, ApiError> {
    match id {
        Some(id) => {
            check_instance(resource_type, id)?;
            Ok(Target::Id(resource_type.to_owned(), id.to_owned()))
        }
        None => {
            rest::check_type(resource_type)?;
            Ok(Target::Condition(resource_type.to_owned(), query))
        }
    }
}

fn check_instance(resource_type: &str, id: &str) -> Result<(), ApiError> {
    rest::check_type(resource_type)?;
    rest::check_id(id)
}

/// The path (relative to the base) and query of a request url.
fn split_url<'a>(url: &'a str, base: &str) -> (&'a str, Vec<(String, String)>) {
    let relative = url
        .strip_prefix(base)
        .unwrap_or(url)
        .trim_start_matches('/');
    let (path, query) = relative.split_once('?').unwrap_or((relative, ""));
    (
        path,
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    )
}

/// The entry's resource, which must be of the url's type.
fn body(resource: Option<Value>, resource_type: &str) -> Result<Value, ApiError> {
    let resource = resource.ok_or_else(|| {
        ApiError::bad_request(format!(
            "the entry has no resource to write to {resource_type}"
        ))
    })?;
    match resource::resource_type(&resource) {
        Some(t) if t == resource_type => Ok(resource),
        other => Err(ApiError::bad_request(format!(
            "the entry's resource is a {} but its request url is for {resource_type}",
            other.unwrap_or("resource without a type")
        ))),
    }
}

/// A PATCH entry's patch: a FHIRPath Patch `Parameters`, or a JSON Patch
/// carried as a `Binary` (http.html#patch, in a Bundle).
fn patch_document(resource: Option<Value>) -> Result<PatchDocument, ApiError> {
    let resource = resource
        .ok_or_else(|| ApiError::bad_request("a PATCH entry needs its patch as the resource"))?;
    match resource::resource_type(&resource) {
        Some("Parameters") => Ok(PatchDocument::FhirPath(resource)),
        Some("Binary") => {
            let content_type = resource["contentType"].as_str().unwrap_or_default();
            if content_type != "application/json-patch+json" {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "a Binary patch must have contentType application/json-patch+json, not '{content_type}'"
                )));
            }
            let data = resource["data"].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| ApiError::bad_request(format!("the Binary patch's data is not base64: {e}")))?;
            let document = hearth_model::json::from_slice(&bytes).map_err(|e| {
                ApiError::bad_request(format!("the JSON Patch document is not well-formed JSON: {e}"))
            })?;
            Ok(PatchDocument::Json(document))
        }
        other => Err(ApiError::bad_request(format!(
            "a PATCH entry's resource is a Parameters (FHIRPath Patch) or a Binary (JSON Patch), not {}",
            other.unwrap_or("a resource without a type")
        ))),
    }
}
