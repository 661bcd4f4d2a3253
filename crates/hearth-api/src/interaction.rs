//! The interactions a request can ask for, and one entry of a batch or
//! transaction Bundle read into the interaction it asks for
//! (`entry.request`: method, url and the conditional headers), checked as
//! a REST request's URL and headers are.

use hearth_model::Value;
use hearth_store::search::{ParseOptions, SearchQuery};

use crate::checks::{self, ReadConditions};
use crate::patch::PatchDocument;
use crate::{conditional, ApiError};

/// What a request or an entry asks for, its conditions parsed.
#[derive(Debug)]
pub enum Interaction {
    Read {
        resource_type: String,
        id: String,
        version: Option<i64>,
        conditions: ReadConditions,
    },
    Search {
        resource_type: Option<String>,
        params: Vec<(String, String)>,
    },
    Create {
        resource: Value,
        if_none_exist: Option<Box<SearchQuery>>,
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
pub enum Target {
    Id(String, String),
    Condition(String, Box<SearchQuery>),
}

impl Target {
    pub fn resource_type(&self) -> &str {
        match self {
            Target::Id(t, _) | Target::Condition(t, _) => t,
        }
    }
}

/// A Bundle entry.
#[derive(Debug)]
pub struct Entry {
    /// Its position in the Bundle.
    pub index: usize,
    pub full_url: Option<String>,
    pub interaction: Interaction,
}

impl Entry {
    /// The order a transaction processes entries in (http.html#trules):
    /// deletes, creates, updates and patches, then reads.
    pub fn phase(&self) -> u8 {
        match self.interaction {
            Interaction::Delete { .. } => 0,
            Interaction::Create { .. } => 1,
            Interaction::Update { .. } | Interaction::Patch { .. } => 2,
            Interaction::Read { .. } | Interaction::Search { .. } => 3,
        }
    }

    /// Reads `Bundle.entry[index]` (taking its resource); `base` is this
    /// server's, which absolute request URLs may start with, and
    /// `conditions` how its conditions are parsed.
    pub fn read(
        index: usize,
        entry: Value,
        base: &str,
        conditions: &ParseOptions,
    ) -> Result<Entry, ApiError> {
        read(index, entry, base, conditions).map_err(|e| e.in_entry(index))
    }
}

fn read(
    index: usize,
    mut entry: Value,
    base: &str,
    conditions: &ParseOptions,
) -> Result<Entry, ApiError> {
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
    let if_match = checks::if_match(request["ifMatch"].as_str())?;
    let read_conditions = || ReadConditions {
        if_none_match: header("ifNoneMatch"),
        if_modified_since: header("ifModifiedSince"),
    };
    let condition = |t: &str, query: &[(String, String)]| {
        conditional::parse(conditions, t, query).map(Box::new)
    };
    let interaction = match (method, segments.as_slice()) {
        ("GET" | "HEAD", [t, id]) => {
            checks::check_instance(t, id)?;
            Interaction::Read {
                resource_type: (*t).to_owned(),
                id: (*id).to_owned(),
                version: None,
                conditions: read_conditions(),
            }
        }
        ("GET" | "HEAD", [t, id, "_history", vid]) => {
            checks::check_instance(t, id)?;
            Interaction::Read {
                resource_type: (*t).to_owned(),
                id: (*id).to_owned(),
                version: Some(checks::version_id(t, id, vid)?),
                conditions: read_conditions(),
            }
        }
        ("GET" | "HEAD", [t]) => {
            checks::check_type(t)?;
            Interaction::Search {
                resource_type: Some((*t).to_owned()),
                params: query,
            }
        }
        ("GET" | "HEAD", []) => Interaction::Search {
            resource_type: None,
            params: query,
        },
        ("POST", [t]) => {
            checks::check_type(t)?;
            Interaction::Create {
                resource: body(resource, t)?,
                if_none_exist: header("ifNoneExist")
                    .map(|v| condition(t, &checks::if_none_exist(&v)))
                    .transpose()?,
            }
        }
        ("PUT", [t, id]) => {
            checks::check_instance(t, id)?;
            let resource = body(resource, t)?;
            checks::check_body_id(&resource, t, id)?;
            Interaction::Update {
                target: Target::Id((*t).to_owned(), (*id).to_owned()),
                resource,
                if_match,
                only_create: header("ifNoneMatch").as_deref() == Some("*"),
            }
        }
        ("PUT", [t]) if !query.is_empty() => {
            checks::check_type(t)?;
            Interaction::Update {
                target: Target::Condition((*t).to_owned(), condition(t, &query)?),
                resource: body(resource, t)?,
                if_match,
                only_create: false,
            }
        }
        ("PATCH", [t, rest @ ..]) if rest.len() == 1 || (rest.is_empty() && !query.is_empty()) => {
            Interaction::Patch {
                target: target(t, rest.first().copied(), &query, conditions)?,
                patch: PatchDocument::of_entry(resource)?,
                if_match,
            }
        }
        ("DELETE", [t, rest @ ..]) if rest.len() == 1 || (rest.is_empty() && !query.is_empty()) => {
            Interaction::Delete {
                target: target(t, rest.first().copied(), &query, conditions)?,
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
        interaction,
    })
}

/// `Type/id`, or `Type?query` (a conditional write).
fn target(
    resource_type: &str,
    id: Option<&str>,
    query: &[(String, String)],
    conditions: &ParseOptions,
) -> Result<Target, ApiError> {
    match id {
        Some(id) => {
            checks::check_instance(resource_type, id)?;
            Ok(Target::Id(resource_type.to_owned(), id.to_owned()))
        }
        None => {
            checks::check_type(resource_type)?;
            let query = conditional::parse(conditions, resource_type, query)?;
            Ok(Target::Condition(resource_type.to_owned(), Box::new(query)))
        }
    }
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
    checks::check_body_type(&resource, resource_type)?;
    Ok(resource)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "https://fhir.example.org/r4";

    fn conditions() -> ParseOptions {
        ParseOptions {
            strict: true,
            default_count: 2,
            max_count: 2,
            base: Some(BASE.to_owned()),
            custom: Default::default(),
        }
    }

    fn read_entry(entry: serde_json::Value) -> Result<Entry, ApiError> {
        Entry::read(3, entry, BASE, &conditions())
    }

    fn patient(id: Option<&str>) -> serde_json::Value {
        match id {
            Some(id) => json!({"resourceType": "Patient", "id": id}),
            None => json!({"resourceType": "Patient"}),
        }
    }

    #[test]
    fn each_method_and_url_is_the_interaction_it_names() {
        let entry = read_entry(json!({"request": {"method": "GET", "url": "Patient/a/_history/2", "ifNoneMatch": "W/\"2\""}})).unwrap();
        match entry.interaction {
            Interaction::Read {
                resource_type,
                id,
                version,
                conditions,
            } => {
                assert_eq!(
                    (resource_type.as_str(), id.as_str(), version),
                    ("Patient", "a", Some(2))
                );
                assert_eq!(conditions.if_none_match.as_deref(), Some("W/\"2\""));
            }
            other => panic!("{other:?}"),
        }
        // An absolute URL under the server's base is the same request.
        let entry = read_entry(
            json!({"request": {"method": "GET", "url": format!("{BASE}/Observation?code=x")}}),
        )
        .unwrap();
        assert!(
            matches!(&entry.interaction, Interaction::Search { resource_type: Some(t), params } if t == "Observation" && params.len() == 1)
        );
        let entry = read_entry(json!({"fullUrl": "urn:uuid:1", "resource": patient(None), "request": {"method": "POST", "url": "Patient", "ifNoneExist": "Patient?identifier=http://x%7C1"}})).unwrap();
        assert_eq!(entry.full_url.as_deref(), Some("urn:uuid:1"));
        assert_eq!(entry.phase(), 1);
        assert!(
            matches!(&entry.interaction, Interaction::Create { if_none_exist: Some(q), .. } if q.types == ["Patient"])
        );
        let entry =
            read_entry(json!({"request": {"method": "DELETE", "url": "Patient?identifier=x"}}))
                .unwrap();
        assert_eq!(entry.phase(), 0);
        assert!(
            matches!(&entry.interaction, Interaction::Delete { target: Target::Condition(t, _), if_match: None } if t == "Patient")
        );
        let entry = read_entry(json!({"resource": patient(Some("a")), "request": {"method": "PUT", "url": "Patient/a", "ifMatch": "W/\"4\"", "ifNoneMatch": "*"}})).unwrap();
        assert!(
            matches!(&entry.interaction, Interaction::Update { target: Target::Id(_, id), if_match: Some(4), only_create: true, .. } if id == "a")
        );
    }

    #[test]
    fn what_a_url_cannot_mean_is_refused_at_its_entry() {
        let refused = |entry: serde_json::Value, status: u16, says: &str| {
            let error = read_entry(entry).unwrap_err();
            assert_eq!(error.status().as_u16(), status, "{error}");
            let text = error.to_string();
            assert!(text.starts_with("Bundle.entry[3]: "), "{text}");
            assert!(text.contains(says), "{text}");
        };
        refused(
            json!({"request": {"method": "GET", "url": "Nothing/a"}}),
            404,
            "unknown resource type",
        );
        refused(
            json!({"request": {"method": "GET", "url": "Patient/a/_history/0"}}),
            404,
            "not known",
        );
        refused(
            json!({"request": {"method": "TRACE", "url": "Patient"}}),
            400,
            "TRACE",
        );
        refused(
            json!({"request": {"method": "POST", "url": "Patient/a/b"}}),
            400,
            "not an interaction",
        );
        refused(
            json!({"request": {"method": "POST", "url": "Patient"}}),
            400,
            "no resource",
        );
        refused(
            json!({"resource": json!({"resourceType": "Observation"}), "request": {"method": "POST", "url": "Patient"}}),
            400,
            "is a Observation",
        );
        refused(
            json!({"resource": patient(Some("b")), "request": {"method": "PUT", "url": "Patient/a"}}),
            400,
            "differs",
        );
        refused(
            json!({"resource": patient(Some("a")), "request": {"method": "PUT", "url": "Patient/a", "ifMatch": "3"}}),
            400,
            "If-Match",
        );
        // A condition is parsed strictly: an unknown parameter would match
        // every resource.
        refused(
            json!({"request": {"method": "DELETE", "url": "Patient?nonsense=1"}}),
            400,
            "invalid condition",
        );
        refused(
            json!({"resource": patient(None), "request": {"method": "POST", "url": "Patient", "ifNoneExist": "nonsense=1"}}),
            400,
            "invalid condition",
        );
        refused(
            json!({"request": {"method": "PATCH", "url": "Patient/a"}}),
            400,
            "PATCH entry needs",
        );
        refused(
            json!({"resource": {"resourceType": "Binary", "contentType": "text/plain", "data": ""}, "request": {"method": "PATCH", "url": "Patient/a"}}),
            415,
            "json-patch",
        );
    }
}
