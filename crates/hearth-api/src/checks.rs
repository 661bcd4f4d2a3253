//! What a request names, checked the same way wherever it comes from (a
//! URL, a Bundle entry's `request`, a file being imported): types, ids,
//! bodies, version ETags and the conditional headers.

use hearth_model::{datetime, resource, Format, Value};
use hearth_store::StoredVersion;

use crate::ApiError;

/// `{type}` must name a resource type of FHIR R4.
pub fn check_type(resource_type: &str) -> Result<(), ApiError> {
    if hearth_model::structure::is_resource_type(resource_type) {
        Ok(())
    } else {
        Err(ApiError::UnknownResourceType(resource_type.to_owned()))
    }
}

/// `{id}` must be a FHIR id, and not `.` or `..`: the id type allows
/// them, but as path segments they mean "here" and "up" (RFC 3986), so
/// the resource's URL could not name it.
pub fn check_id(id: &str) -> Result<(), ApiError> {
    if id == "." || id == ".." {
        return Err(ApiError::bad_request(format!(
            "invalid resource id: '{id}' cannot name a resource in a URL"
        )));
    }
    hearth_model::primitives::check("id", &Value::String(id.to_owned()))
        .map_err(|e| ApiError::bad_request(format!("invalid resource id: {e}")))
}

/// `{type}/{id}`.
pub fn check_instance(resource_type: &str, id: &str) -> Result<(), ApiError> {
    check_type(resource_type)?;
    check_id(id)
}

/// A version id in a URL (`_history/{vid}`): a positive integer, else the
/// version is simply not known.
pub fn version_id(resource_type: &str, id: &str, vid: &str) -> Result<i64, ApiError> {
    vid.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::NotFound(format!(
            "{resource_type}/{id}/_history/{vid} is not known: version ids are positive integers"
        ))
    })
}

/// Parses a request body as a resource of the type its URL names.
pub fn parse_body(bytes: &[u8], format: Format, resource_type: &str) -> Result<Value, ApiError> {
    let value = hearth_model::parse(bytes, format)?;
    check_body_type(&value, resource_type)?;
    Ok(value)
}

/// A body (or an entry's resource) must be of the type its URL names.
pub fn check_body_type(value: &Value, resource_type: &str) -> Result<(), ApiError> {
    match resource::resource_type(value) {
        Some(t) if t == resource_type => Ok(()),
        other => Err(ApiError::BadRequest {
            message: format!(
                "the resource is a {} but its URL is for {resource_type}",
                other.unwrap_or("resource without a type")
            ),
            expression: vec!["resourceType".into()],
        }),
    }
}

/// An update's body must carry the id of its URL.
pub fn check_body_id(value: &Value, resource_type: &str, id: &str) -> Result<(), ApiError> {
    match resource::id(value) {
        Some(body_id) if body_id == id => Ok(()),
        Some(body_id) => Err(ApiError::BadRequest {
            message: format!(
                "the id in the resource ('{body_id}') differs from the id in the URL ('{id}')"
            ),
            expression: vec![format!("{resource_type}.id")],
        }),
        None => Err(ApiError::BadRequest {
            message: format!("an update needs the resource id in the resource; expected '{id}'"),
            expression: vec![format!("{resource_type}.id")],
        }),
    }
}

/// A version ETag exactly as Hearth writes them, `W/"3"`: a positive
/// version number without sign or leading zeros (so `W/"+1"` and `W/"01"`
/// name no version).
pub fn parse_etag(value: &str) -> Option<i64> {
    let digits = value.trim().strip_prefix("W/\"")?.strip_suffix('"')?;
    let canonical = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| digits.parse().ok()).flatten()
}

/// `If-Match` (or an entry's `ifMatch`): a version ETag, or refused.
pub fn if_match(value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    parse_etag(value).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!(
            "If-Match must be a version ETag such as W/\"1\", not '{value}'"
        ))
    })
}

/// `If-None-Exist` (or an entry's `ifNoneExist`): the query of a search,
/// without `?` as the specification writes it, or after it as some
/// clients send it (`Patient?identifier=x`).
pub fn if_none_exist(value: &str) -> Vec<(String, String)> {
    let query = value.split_once('?').map_or(value, |(_, query)| query);
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// What a conditional read sent: `If-None-Match` and `If-Modified-Since`.
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
}

impl ReadConditions {
    /// Whether they say the client's copy of `version` is current.
    /// `If-Modified-Since` is an HTTP date, or in a Bundle entry a FHIR
    /// instant.
    pub fn not_modified(&self, version: &StoredVersion) -> bool {
        if let Some(tags) = &self.if_none_match {
            return tags
                .split(',')
                .any(|t| t.trim() == "*" || parse_etag(t) == Some(version.version_id));
        }
        if let Some(since) = &self.if_modified_since {
            let since_ms = httpdate::parse_http_date(since)
                .ok()
                .map(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64)
                })
                .or_else(|| datetime::range(since).map(|r| r.start));
            if let Some(since_ms) = since_ms {
                // HTTP dates have whole seconds.
                return version.last_updated / 1000 <= since_ms / 1000;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_read_exactly_as_written() {
        assert_eq!(parse_etag("W/\"3\""), Some(3));
        assert_eq!(parse_etag(" W/\"12\" "), Some(12));
        for bad in [
            "3", "\"3\"", "W/\"01\"", "W/\"+1\"", "W/\"\"", "W/\"0\"", "W/\"x\"",
        ] {
            assert_eq!(parse_etag(bad), None, "{bad}");
        }
        assert!(if_match(Some("W/\"x\"")).is_err());
        assert_eq!(if_match(None).unwrap(), None);
    }

    #[test]
    fn if_none_exist_takes_the_query_with_or_without_its_type() {
        let expected = vec![("identifier".to_owned(), "http://x|1".to_owned())];
        assert_eq!(if_none_exist("identifier=http://x%7C1"), expected);
        assert_eq!(if_none_exist("Patient?identifier=http://x%7C1"), expected);
    }

    #[test]
    fn not_modified_reads_etags_http_dates_and_instants() {
        let version = StoredVersion {
            resource_type: "Patient".into(),
            id: "a".into(),
            version_id: 2,
            // 2024-01-01T00:00:10.500Z
            last_updated: 1_704_067_210_500,
            body: None,
            method: hearth_store::Method::Put,
        };
        let with = |none_match: Option<&str>, since: Option<&str>| ReadConditions {
            if_none_match: none_match.map(str::to_owned),
            if_modified_since: since.map(str::to_owned),
        };
        assert!(with(Some("W/\"2\""), None).not_modified(&version));
        assert!(with(Some("W/\"1\", W/\"2\""), None).not_modified(&version));
        assert!(with(Some("*"), None).not_modified(&version));
        assert!(!with(Some("W/\"1\""), None).not_modified(&version));
        assert!(with(None, Some("Mon, 01 Jan 2024 00:00:10 GMT")).not_modified(&version));
        assert!(!with(None, Some("Mon, 01 Jan 2024 00:00:09 GMT")).not_modified(&version));
        assert!(with(None, Some("2024-01-01T00:00:10Z")).not_modified(&version));
        assert!(!with(None, Some("2023-12-31")).not_modified(&version));
        assert!(!with(None, Some("not a date")).not_modified(&version));
        assert!(!with(None, None).not_modified(&version));
    }
}
