//! Content negotiation: which FHIR format a request body is in (by
//! `Content-Type`) and which one the response should be in (by `_format`,
//! then `Accept`), and rendering a body in the chosen format.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use hearth_model::summary::{self, SummaryMode};
use hearth_model::{Format, OperationOutcome, Value};

use crate::error::ApiError;

/// The media types Hearth speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaType {
    #[default]
    FhirJson,
    Json,
    FhirXml,
    Xml,
    TextXml,
}

impl MediaType {
    fn parse(essence: &str) -> Option<MediaType> {
        Some(match essence {
            "application/fhir+json" | "json" => MediaType::FhirJson,
            "application/json" => MediaType::Json,
            "application/fhir+xml" | "xml" => MediaType::FhirXml,
            "application/xml" => MediaType::Xml,
            "text/xml" => MediaType::TextXml,
            _ => return None,
        })
    }

    pub fn format(self) -> Format {
        match self {
            MediaType::FhirJson | MediaType::Json => Format::Json,
            MediaType::FhirXml | MediaType::Xml | MediaType::TextXml => Format::Xml,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::FhirJson => "application/fhir+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::FhirXml => "application/fhir+xml; charset=utf-8",
            MediaType::Xml => "application/xml; charset=utf-8",
            MediaType::TextXml => "text/xml; charset=utf-8",
        }
    }
}

/// How a response body is to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Representation {
    pub media: MediaType,
    pub pretty: bool,
}

/// Subsetting asked for with `_summary` or `_elements`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Shape {
    #[default]
    Full,
    Summary(SummaryMode),
    Elements(Vec<String>),
}

/// Chooses the response representation from `_format`, `Accept` and `_pretty`.
pub fn representation(
    req: &HttpRequest,
    params: &[(String, String)],
) -> Result<Representation, ApiError> {
    let media = media(req, params)?;
    let pretty = match param(params, "_pretty") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "_pretty must be true or false, not '{other}'"
            )))
        }
    };
    Ok(Representation { media, pretty })
}

/// The representation to write an error in when the request's own
/// representation could not be settled: the negotiated media type if there
/// is one, else FHIR JSON.
pub fn fallback_representation(req: &HttpRequest) -> Representation {
    let params: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    Representation {
        media: media(req, &params).unwrap_or_default(),
        pretty: false,
    }
}

fn media(req: &HttpRequest, params: &[(String, String)]) -> Result<MediaType, ApiError> {
    match param(params, "_format") {
        // A '+' in a query string decodes to a space.
        Some(f) => {
            let f = f.replace(' ', "+");
            let (essence, fhir_version) = split_media_type(&f);
            check_fhir_version(fhir_version, &f)?;
            MediaType::parse(&essence).ok_or_else(|| {
                ApiError::NotAcceptable(format!("_format '{f}' is not supported; use json or xml"))
            })
        }
        None => from_accept(req),
    }
}

fn from_accept(req: &HttpRequest) -> Result<MediaType, ApiError> {
    let Some(accept) = req.headers().get(header::ACCEPT) else {
        return Ok(MediaType::FhirJson);
    };
    let accept = accept
        .to_str()
        .map_err(|_| ApiError::NotAcceptable("the Accept header is not valid text".into()))?;
    if accept.trim().is_empty() {
        return Ok(MediaType::FhirJson);
    }
    let mut best: Option<(f32, MediaType)> = None;
    for range in accept.split(',') {
        let mut q = 1.0_f32;
        let mut fhir_version = None;
        let mut parts = range.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        for p in parts {
            match p.trim().split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("q") => {
                    q = v.trim().parse().unwrap_or(0.0)
                }
                Some((k, v)) if k.trim().eq_ignore_ascii_case("fhirVersion") => {
                    fhir_version = Some(v.trim().to_owned())
                }
                _ => {}
            }
        }
        if q <= 0.0 || !fhir_version_ok(fhir_version.as_deref()) {
            continue;
        }
        let media = match essence.as_str() {
            "*/*" | "application/*" => Some(MediaType::FhirJson),
            "text/*" => Some(MediaType::TextXml),
            e if e == "json" || e == "xml" => None,
            e => MediaType::parse(e),
        };
        if let Some(m) = media {
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, m));
            }
        }
    }
    best.map(|(_, m)| m).ok_or_else(|| {
        ApiError::NotAcceptable(format!(
            "none of the media types in Accept ('{accept}') is supported; use application/fhir+json or application/fhir+xml"
        ))
    })
}

/// The format of a request body, from its `Content-Type`.
pub fn body_format(req: &HttpRequest) -> Result<Format, ApiError> {
    let value = req
        .headers()
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType(
                "the request has a body but no Content-Type; use application/fhir+json or application/fhir+xml".into(),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::UnsupportedMediaType("the Content-Type header is not valid text".into()))?;
    let (essence, fhir_version) = split_media_type(value);
    check_fhir_version(fhir_version, value)
        .map_err(|e| ApiError::UnsupportedMediaType(e.to_string()))?;
    if let Some(charset) = media_param(value, "charset") {
        if !charset.eq_ignore_ascii_case("utf-8") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "charset '{charset}' is not supported; FHIR bodies are UTF-8"
            )));
        }
    }
    match MediaType::parse(&essence) {
        Some(m) if essence.contains('/') => Ok(m.format()),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type '{value}' is not supported; use application/fhir+json or application/fhir+xml"
        ))),
    }
}

/// The essence (`type/subtype`, lower case) of a media type and its
/// `fhirVersion` parameter.
pub fn split_media_type(value: &str) -> (String, Option<String>) {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (essence, media_param(value, "fhirVersion"))
}

fn media_param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn fhir_version_ok(version: Option<&str>) -> bool {
    matches!(version, None | Some("4.0") | Some("4.0.1"))
}

fn check_fhir_version(version: Option<String>, media: &str) -> Result<(), ApiError> {
    if fhir_version_ok(version.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::NotAcceptable(format!(
            "'{media}' asks for a FHIR version this server does not speak; it speaks 4.0 (R4)"
        )))
    }
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads `_summary` and `_elements` for a read interaction.
pub fn shape(params: &[(String, String)]) -> Result<Shape, ApiError> {
    let summary = param(params, "_summary");
    let elements = param(params, "_elements");
    match (summary, elements) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "_summary and _elements cannot be used together",
        )),
        (Some(s), None) => Ok(match s {
            "true" => Shape::Summary(SummaryMode::True),
            "text" => Shape::Summary(SummaryMode::Text),
            "data" => Shape::Summary(SummaryMode::Data),
            "false" => Shape::Full,
            "count" => {
                return Err(ApiError::bad_request(
                    "_summary=count applies to searches, not to reads",
                ))
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "_summary must be true, text, data, count or false, not '{other}'"
                )))
            }
        }),
        (None, Some(list)) => Ok(Shape::Elements(
            list.split(',')
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect(),
        )),
        (None, None) => Ok(Shape::Full),
    }
}

/// Renders a resource held as compact JSON bytes. Serves the bytes as they
/// are when the representation allows it (compact JSON, whole resource).
pub fn render_stored(json: &[u8], rep: Representation, shape: &Shape) -> Result<Vec<u8>, ApiError> {
    if *shape == Shape::Full {
        match (rep.media.format(), rep.pretty) {
            (Format::Json, false) => return Ok(json.to_vec()),
            (Format::Xml, false) => return Ok(hearth_model::to_xml(json)?),
            (Format::Xml, true) => return Ok(hearth_model::to_xml_pretty(json)?),
            (Format::Json, true) => {}
        }
    }
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| ApiError::Internal(format!("stored resource: {e}")))?;
    render_value(value, rep, shape)
}

/// Renders a resource built by the server (Bundles, OperationOutcomes,
/// the CapabilityStatement) or reshaped from a stored one.
pub fn render_value(
    mut value: Value,
    rep: Representation,
    shape: &Shape,
) -> Result<Vec<u8>, ApiError> {
    match shape {
        Shape::Full => {}
        Shape::Summary(mode) => summary::summary(&mut value, *mode),
        Shape::Elements(names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            summary::elements(&mut value, &names);
        }
    }
    match rep.media.format() {
        Format::Json => Ok(hearth_model::to_json_bytes(&value, rep.pretty)),
        Format::Xml => Ok(hearth_model::to_xml(&hearth_model::to_json_bytes(
            &value, false,
        ))?),
    }
}

/// An OperationOutcome response; falls back to JSON if XML rendering fails.
pub fn outcome_response(
    status: StatusCode,
    outcome: &OperationOutcome,
    rep: Representation,
) -> HttpResponse {
    let (media, body) = match render_value(outcome.to_value(), rep, &Shape::Full) {
        Ok(body) => (rep.media, body),
        Err(_) => (
            MediaType::FhirJson,
            hearth_model::to_json_bytes(&outcome.to_value(), false),
        ),
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, media.content_type()))
        .body(body)
}
