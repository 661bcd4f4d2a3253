//! From query parameters to a [`SearchQuery`], checked against the R4
//! SearchParameter definitions.

use hearth_model::datetime;
use hearth_model::index::normalise;
use std::sync::Arc;

use crate::full_text::TextQuery;

use hearth_model::search_params::{self, CustomParams, ParamType, SearchParam, Support};

use super::{
    limits, Condition, Include, Modifier, Prefix, SearchError, SearchQuery, SearchValue, SortKey,
    Total,
};

/// Parameters that shape the response rather than select resources; the
/// HTTP layer reads the ones not handled here.
const RESULT_PARAMS: &[&str] = &[
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_total",
    "_summary",
    "_elements",
    "_format",
    "_pretty",
    "_type",
    "_snapshot",
    "_offset",
    "_cursor",
];

#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// `Prefer: handling=strict`: unknown parameters are errors.
    pub strict: bool,
    pub default_count: i64,
    pub max_count: i64,
    pub base: Option<String>,
    /// The store's custom search parameters.
    pub custom: Arc<CustomParams>,
}

fn error(param: &str, message: impl Into<String>) -> SearchError {
    SearchError {
        message: message.into(),
        param: param.to_owned(),
        too_complex: false,
    }
}

fn too_complex(param: &str, message: impl Into<String>) -> SearchError {
    SearchError {
        too_complex: true,
        ..error(param, message)
    }
}

/// Refuses a request past the [`limits`] it can be held to before any of
/// its parameters is read.
fn check_size(params: &[(String, String)]) -> Result<(), SearchError> {
    if params.len() > limits::MAX_PARAMETERS {
        return Err(too_complex(
            "",
            format!(
                "the search has {} parameters; at most {} are allowed",
                params.len(),
                limits::MAX_PARAMETERS
            ),
        ));
    }
    let values: usize = params.iter().map(|(_, v)| v.split(',').count()).sum();
    if values > limits::MAX_VALUES {
        return Err(too_complex(
            "",
            format!(
                "the search's parameters have {values} values together; at most {} are allowed",
                limits::MAX_VALUES
            ),
        ));
    }
    for (key, _) in params {
        let links = key.matches('.').count();
        if links > limits::MAX_CHAIN_LINKS {
            return Err(too_complex(
                key,
                format!(
                    "the chain has {links} links; at most {} are allowed",
                    limits::MAX_CHAIN_LINKS
                ),
            ));
        }
        let nested = key.matches("_has:").count().saturating_sub(1);
        if nested > limits::MAX_HAS_NESTING {
            return Err(too_complex(
                key,
                format!(
                    "_has nests {nested} levels deep; at most {} are allowed",
                    limits::MAX_HAS_NESTING
                ),
            ));
        }
    }
    Ok(())
}

/// The conditions a request may still become (see
/// [`limits::MAX_CONDITIONS`]): a chain names every type its reference
/// may point to, and each of those the next link's, so without a bound a
/// few links could multiply into millions.
struct Room(usize);

impl Room {
    fn take(&mut self, key: &str, n: usize) -> Result<(), SearchError> {
        self.0 = self.0.checked_sub(n).ok_or_else(|| {
            too_complex(
                key,
                format!(
                    "the search becomes more than {} conditions (chains over references to many types multiply); name the target type (subject:Patient.name) or use fewer values",
                    limits::MAX_CONDITIONS
                ),
            )
        })?;
        Ok(())
    }
}

/// Parses the query of `GET [type]?…` (`types` = `[type]`) or of a system
/// search (`types` empty: `_type` or every type).
pub fn parse(
    types: &[String],
    params: &[(String, String)],
    options: &ParseOptions,
) -> Result<SearchQuery, SearchError> {
    check_size(params)?;
    let mut room = Room(limits::MAX_CONDITIONS);
    let custom: &CustomParams = &options.custom;
    let mut query = SearchQuery {
        count: options.default_count,
        base: options.base.clone(),
        ..SearchQuery::default()
    };
    query.types = if types.is_empty() {
        match params.iter().find(|(k, _)| k == "_type") {
            Some((_, list)) => {
                let mut listed = Vec::new();
                for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !hearth_model::structure::is_resource_type(t) {
                        return Err(error(
                            "_type",
                            format!("_type names an unknown resource type '{t}'"),
                        ));
                    }
                    listed.push(t.to_owned());
                }
                listed
            }
            None => hearth_model::structure::resource_types()
                .map(str::to_owned)
                .collect(),
        }
    } else {
        types.to_vec()
    };
    for (key, value) in params {
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (key.as_str(), None),
        };
        match name {
            "_count" => {
                query.count = value
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| {
                        error(
                            key,
                            format!("_count must be a non-negative integer, not '{value}'"),
                        )
                    })?
                    .min(options.max_count);
            }
            "_total" => {
                query.total = match value.as_str() {
                    "none" => Total::None,
                    "estimate" => Total::Estimate,
                    "accurate" => Total::Accurate,
                    _ => {
                        return Err(error(
                            key,
                            format!("_total must be none, estimate or accurate, not '{value}'"),
                        ))
                    }
                }
            }
            "_summary" => query.count_only = value == "count",
            "_sort" => query.sort = parse_sort(custom, &query.types, value)?,
            "_include" | "_revinclude" => {
                let iterate = match modifier {
                    None => false,
                    Some("iterate") | Some("recurse") => true,
                    Some(other) => {
                        return Err(error(key, format!("unknown modifier ':{other}' on {name}")))
                    }
                };
                for item in value.split(',') {
                    let include = parse_include(custom, item, iterate, key)?;
                    if name == "_include" {
                        query.includes.push(include);
                    } else {
                        query.revincludes.push(include);
                    }
                }
            }
            _ if RESULT_PARAMS.contains(&name) => {}
            "_text" | "_content" => {
                if modifier.is_some() {
                    return Err(error(key, format!("{name} takes no modifier")));
                }
                let column = if name == "_text" {
                    "narrative"
                } else {
                    "content"
                };
                let mut queries = split_unescaped(value, ',')
                    .into_iter()
                    .filter_map(|v| TextQuery::parse(column, &unescape(&v)));
                let Some(mut text) = queries.next() else {
                    return Err(error(key, format!("{name} needs words to search for")));
                };
                // Comma-separated values are alternatives.
                queries.for_each(|q| text.or(q));
                query.conditions.push(Condition::Text(text));
            }
            "_has" => match parse_has(custom, key, value, &mut room) {
                Ok(c) => query.conditions.push(c),
                Err(Unknown::Refused(e)) => return Err(e),
                Err(Unknown::Ignored(reason)) => ignore(&mut query, options, key, reason)?,
            },
            _ => match condition(
                custom,
                &query.types,
                key,
                value,
                options.base.as_deref(),
                &mut room,
            ) {
                // Conditions that must all hold are the query's own.
                Ok(Condition::All(all)) => query.conditions.extend(all),
                Ok(c) => query.conditions.push(c),
                Err(Unknown::Refused(e)) => return Err(e),
                Err(Unknown::Ignored(reason)) => ignore(&mut query, options, key, reason)?,
            },
        }
    }
    Ok(query)
}

fn ignore(
    query: &mut SearchQuery,
    options: &ParseOptions,
    key: &str,
    reason: String,
) -> Result<(), SearchError> {
    if options.strict {
        Err(error(key, reason))
    } else {
        query.ignored.push((key.to_owned(), reason));
        Ok(())
    }
}

/// A parameter that cannot be used: refused outright (a bad value or
/// modifier, always 400) or unknown (400 only under strict handling).
enum Unknown {
    Refused(SearchError),
    Ignored(String),
}

impl From<SearchError> for Unknown {
    fn from(e: SearchError) -> Self {
        Unknown::Refused(e)
    }
}

/// The definitions of `code` on each of `types` that has it.
fn definitions<'a>(
    custom: &'a CustomParams,
    types: &[String],
    code: &str,
) -> Vec<(&'a SearchParam, String)> {
    types
        .iter()
        .filter_map(|t| search_params::get(t, code, custom).map(|p| (p, format!("{t}.{code}"))))
        .collect()
}

/// The type-qualified parameters whose index rows hold `param`'s values
/// (`qualified`, or for a union of other parameters, theirs: unions are
/// the specification's, of one resource type).
fn stored_names(param: &SearchParam, qualified: String) -> Vec<String> {
    if param.stored_as.is_empty() {
        return vec![qualified];
    }
    param
        .stored_as
        .iter()
        .map(|code| format!("{}.{code}", param.base))
        .collect()
}

fn usable<'a>(
    custom: &'a CustomParams,
    types: &[String],
    code: &str,
) -> Result<(ParamType, Vec<&'a SearchParam>, Vec<String>), Unknown> {
    let found = definitions(custom, types, code);
    let Some((first, _)) = found.first() else {
        let on = if types.len() == 1 {
            types[0].as_str()
        } else {
            "the types searched"
        };
        return Err(Unknown::Ignored(format!(
            "'{code}' is not a search parameter of {on}"
        )));
    };
    if let Support::Unsupported(reason) = &first.support {
        return Err(Unknown::Ignored(format!(
            "search parameter '{code}' is not supported: {reason}"
        )));
    }
    let kind = first.param_type;
    let found: Vec<_> = found
        .into_iter()
        .filter(|(p, _)| p.param_type == kind)
        .collect();
    let params = found
        .iter()
        .flat_map(|(p, q)| stored_names(p, q.clone()))
        .collect();
    let defs = found.into_iter().map(|(p, _)| p).collect();
    Ok((kind, defs, params))
}

/// One `name[:modifier][.chain…]=value` parameter.
fn condition(
    custom: &CustomParams,
    types: &[String],
    key: &str,
    value: &str,
    base: Option<&str>,
    room: &mut Room,
) -> Result<Condition, Unknown> {
    let (head, rest) = match key.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    let (code, modifier) = match head.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (head, None),
    };
    let (kind, defs, params) = usable(custom, types, code)?;
    if let Some(rest) = rest {
        // A chain: `code[:Type].rest`.
        if kind != ParamType::Reference {
            return Err(error(
                key,
                format!("'{code}' is not a reference parameter, so it cannot be chained"),
            )
            .into());
        }
        let target_types: Vec<String> = match modifier {
            Some(t) if hearth_model::structure::is_resource_type(t) => vec![t.to_owned()],
            Some(m) => {
                return Err(error(
                    key,
                    format!("':{m}' is not a resource type; a chain takes ':[type]'"),
                )
                .into())
            }
            None => reference_targets(&defs),
        };
        let mut targets = Vec::new();
        for t in target_types {
            let one = [t.clone()];
            let next_code = rest.split(['.', ':']).next().unwrap_or_default();
            if definitions(custom, &one, next_code).is_empty() {
                continue;
            }
            room.take(key, 1)?;
            targets.push((t, condition(custom, &one, rest, value, base, room)?));
        }
        if targets.is_empty() {
            return Err(Unknown::Ignored(format!(
                "no resource type that '{code}' refers to has a search parameter '{rest}'"
            )));
        }
        return Ok(Condition::Chain { params, targets });
    }
    let modifier = parse_modifier(kind, modifier, key)?;
    if let Some(m) = &modifier {
        if m == "missing" {
            let missing = match value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(
                        error(key, format!(":missing takes true or false, not '{value}'")).into(),
                    )
                }
            };
            if let (ParamType::Composite, Some(first)) = (kind, defs[0].components.first()) {
                return Ok(composite_missing(custom, params, first.param_type, missing));
            }
            return Ok(Condition::Missing {
                params,
                kind,
                missing,
            });
        }
    }
    let modifier = match modifier.as_deref() {
        None => Modifier::None,
        Some("exact") => Modifier::Exact,
        Some("contains") => Modifier::Contains,
        Some("text") => Modifier::Text,
        Some("not") => Modifier::Not,
        Some("above") => Modifier::Above,
        Some("below") => Modifier::Below,
        Some("of-type") => Modifier::OfType,
        Some("identifier") => Modifier::Identifier,
        Some(t) => Modifier::Type(t.to_owned()),
    };
    let mut values = Vec::new();
    let raws = split_unescaped(value, ',');
    room.take(key, raws.len())?;
    for raw in raws {
        values.push(match kind {
            ParamType::Composite => composite_value(defs[0], &raw, key, base)?,
            _ => parse_value(kind, &modifier, &raw, key, base)?,
        });
    }
    if values.is_empty() {
        return Err(error(key, format!("'{key}' has no value")).into());
    }
    if kind == ParamType::Composite {
        return Ok(composite(custom, params, modifier, values));
    }
    let targets = reference_targets(&defs);
    let only_target = match (&modifier, targets.as_slice()) {
        (Modifier::Type(t), _) => Some(t.clone()),
        (_, [one]) => Some(one.clone()),
        _ => None,
    };
    Ok(Condition::Values {
        params,
        kind,
        modifier,
        values,
        only_target,
    })
}

fn reference_targets(defs: &[&SearchParam]) -> Vec<String> {
    let mut targets: Vec<String> = defs
        .iter()
        .flat_map(|d| d.targets.iter().cloned())
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// Checks a modifier against the parameter type; `None` for no modifier.
fn parse_modifier(
    kind: ParamType,
    modifier: Option<&str>,
    key: &str,
) -> Result<Option<String>, SearchError> {
    let Some(m) = modifier else { return Ok(None) };
    let allowed = match kind {
        _ if m == "missing" => true,
        ParamType::String => matches!(m, "exact" | "contains"),
        ParamType::Token => matches!(m, "text" | "not" | "of-type"),
        ParamType::Reference => m == "identifier" || hearth_model::structure::is_resource_type(m),
        ParamType::Uri => matches!(m, "above" | "below"),
        _ => false,
    };
    if allowed {
        Ok(Some(m.to_owned()))
    } else {
        Err(error(
            key,
            format!(
                "the modifier ':{m}' is not supported on {} parameters",
                kind.code()
            ),
        ))
    }
}

/// Splits on `sep` where it is not escaped with `\`, and unescapes
/// `\,` `\|` `\$` `\\`.
pub(crate) fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (',' | '|' | '$' | '\\')) if n != sep => {
                    // Keep the escape for a later split on another separator.
                    if let Some(p) = parts.last_mut() {
                        p.push('\\');
                        p.push(n);
                    }
                }
                Some(n) => {
                    if let Some(p) = parts.last_mut() {
                        p.push(n)
                    }
                }
                None => {
                    if let Some(p) = parts.last_mut() {
                        p.push('\\')
                    }
                }
            },
            c if c == sep => parts.push(String::new()),
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c)
                }
            }
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// Removes the remaining escapes.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_value(
    kind: ParamType,
    modifier: &Modifier,
    raw: &str,
    key: &str,
    base: Option<&str>,
) -> Result<SearchValue, SearchError> {
    Ok(match kind {
        ParamType::String => {
            let text = unescape(raw);
            SearchValue::String {
                normalised: normalise(&text),
                exact: text,
            }
        }
        ParamType::Token if *modifier == Modifier::OfType => {
            let parts = split_unescaped(raw, '|');
            match parts.as_slice() {
                [system, code, value] => SearchValue::OfType {
                    system: unescape(system),
                    code: unescape(code),
                    value: unescape(value),
                },
                _ => return Err(error(key, ":of-type takes type-system|type-code|value")),
            }
        }
        ParamType::Token if *modifier == Modifier::Text => SearchValue::String {
            normalised: normalise(&unescape(raw)),
            exact: unescape(raw),
        },
        ParamType::Token => match find_unescaped(raw, '|') {
            None => SearchValue::Token {
                system: None,
                code: Some(unescape(raw)),
            },
            Some(at) => {
                let (system, code) = (&raw[..at], &raw[at + 1..]);
                SearchValue::Token {
                    system: Some((!system.is_empty()).then(|| unescape(system))),
                    code: (!code.is_empty()).then(|| unescape(code)),
                }
            }
        },
        ParamType::Reference if *modifier == Modifier::Identifier => match find_unescaped(raw, '|')
        {
            None => SearchValue::Identifier {
                system: None,
                value: Some(unescape(raw)),
            },
            Some(at) => SearchValue::Identifier {
                system: Some(unescape(&raw[..at])).filter(|s| !s.is_empty()),
                value: Some(unescape(&raw[at + 1..])).filter(|s| !s.is_empty()),
            },
        },
        ParamType::Reference => reference_value(&unescape(raw), base),
        ParamType::Date => {
            let (prefix, rest) = prefix(raw);
            let range = datetime::range(rest).ok_or_else(|| {
                error(
                    key,
                    format!("'{rest}' is not a valid date, dateTime or instant"),
                )
            })?;
            SearchValue::Date { prefix, range }
        }
        ParamType::Number => {
            let (prefix, rest) = prefix(raw);
            let (value, lo, hi) =
                number(rest).ok_or_else(|| error(key, format!("'{rest}' is not a number")))?;
            SearchValue::Number {
                prefix,
                value,
                lo,
                hi,
            }
        }
        ParamType::Quantity => {
            let (prefix, rest) = prefix(raw);
            let parts = split_unescaped_keep_empty(rest, '|');
            let (value, lo, hi) = number(&parts[0])
                .ok_or_else(|| error(key, format!("'{}' is not a number", parts[0])))?;
            let system = parts.get(1).filter(|s| !s.is_empty()).map(|s| unescape(s));
            let code = parts.get(2).filter(|s| !s.is_empty()).map(|s| unescape(s));
            SearchValue::Quantity {
                prefix,
                value,
                lo,
                hi,
                system,
                code,
            }
        }
        ParamType::Uri => SearchValue::Uri(unescape(raw)),
        ParamType::Composite | ParamType::Special => {
            return Err(error(
                key,
                format!("{} parameters are not supported", kind.code()),
            ))
        }
    })
}

/// `:missing` of a composite, whose first component (of type `first`) has
/// a row for each of its values; one derived from other parameters has a
/// value when each of them has one.
fn composite_missing(
    custom: &CustomParams,
    params: Vec<String>,
    first: ParamType,
    missing: bool,
) -> Condition {
    let (rows, derived) = derived_parts(custom, params);
    let mut each = Vec::new();
    if !rows.is_empty() {
        each.push(Condition::Missing {
            params: rows.iter().map(|p| format!("{p}$0")).collect(),
            kind: first,
            missing,
        });
    }
    for parts in derived {
        let parts = parts
            .into_iter()
            .map(|(params, kind)| Condition::Missing {
                params,
                kind,
                missing,
            })
            .collect();
        each.push(if missing { any(parts) } else { all(parts) });
    }
    // Missing from every stored name, or present in one.
    if missing {
        all(each)
    } else {
        any(each)
    }
}

/// A composite condition: on its rows, or for one derived from other
/// parameters (`code-value-quantity`), a matching value of each of them.
fn composite(
    custom: &CustomParams,
    params: Vec<String>,
    modifier: Modifier,
    values: Vec<SearchValue>,
) -> Condition {
    let (rows, derived) = derived_parts(custom, params);
    let mut each = Vec::new();
    for parts in derived {
        for value in &values {
            let SearchValue::Composite(components) = value else {
                continue;
            };
            let conditions = parts
                .iter()
                .zip(components)
                .map(|((params, _), (kind, value))| Condition::Values {
                    params: params.clone(),
                    kind: *kind,
                    modifier: Modifier::None,
                    values: vec![value.clone()],
                    only_target: None,
                })
                .collect();
            each.push(all(conditions));
        }
    }
    if !rows.is_empty() {
        each.push(Condition::Values {
            params: rows,
            kind: ParamType::Composite,
            modifier,
            values,
            only_target: None,
        });
    }
    any(each)
}

/// A composite's stored names (`Observation.code-value-quantity`) split
/// into those with rows of their own, and for each derived from other
/// parameters, the stored names and type of each of its components.
fn derived_parts(custom: &CustomParams, params: Vec<String>) -> (Vec<String>, Vec<DerivedParts>) {
    let mut rows = Vec::new();
    let mut derived = Vec::new();
    for name in params {
        let parts = name.split_once('.').and_then(|(resource_type, code)| {
            let def = search_params::get(resource_type, code, custom)?;
            if def.derived_from.is_empty() {
                return None;
            }
            def.derived_from
                .iter()
                .zip(&def.components)
                .map(|(code, component)| {
                    let part = search_params::get(resource_type, code, custom)?;
                    let names = stored_names(part, format!("{resource_type}.{code}"));
                    Some((names, component.param_type))
                })
                .collect::<Option<Vec<_>>>()
        });
        match parts {
            Some(parts) => derived.push(parts),
            None => rows.push(name),
        }
    }
    (rows, derived)
}

/// A derived composite's components: each one's stored names and type.
type DerivedParts = Vec<(Vec<String>, ParamType)>;

/// Conditions that must all hold, as one.
fn all(mut conditions: Vec<Condition>) -> Condition {
    match conditions.len() {
        1 => conditions.remove(0),
        _ => Condition::All(conditions),
    }
}

/// Conditions of which one must hold, as one.
fn any(mut conditions: Vec<Condition>) -> Condition {
    match conditions.len() {
        1 => conditions.remove(0),
        _ => Condition::Any(conditions),
    }
}

/// `a$b[$c]`: one value per component of a composite parameter.
fn composite_value(
    def: &SearchParam,
    raw: &str,
    key: &str,
    base: Option<&str>,
) -> Result<SearchValue, SearchError> {
    let parts = split_unescaped_keep_empty(raw, '$');
    if parts.len() != def.components.len() {
        return Err(error(
            key,
            format!(
                "'{key}' takes {} values joined by '$'",
                def.components.len()
            ),
        ));
    }
    let mut values = Vec::new();
    for (component, part) in def.components.iter().zip(parts) {
        values.push((
            component.param_type,
            parse_value(component.param_type, &Modifier::None, &part, key, base)?,
        ));
    }
    Ok(SearchValue::Composite(values))
}

fn find_unescaped(text: &str, sep: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == sep && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn split_unescaped_keep_empty(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = find_unescaped(rest, sep) {
        parts.push(rest[..at].to_owned());
        rest = &rest[at + 1..];
    }
    parts.push(rest.to_owned());
    parts
}

/// A reference value: `Type/id`, `Type/id/_history/v`, a bare `id`, or an
/// absolute or canonical URL (an absolute URL under the server's own base
/// is local).
fn reference_value(text: &str, base: Option<&str>) -> SearchValue {
    let local = base
        .and_then(|b| text.strip_prefix(b.trim_end_matches('/')))
        .and_then(|t| t.strip_prefix('/'))
        .unwrap_or(text);
    let (path, version) = match local.split_once("/_history/") {
        Some((p, v)) => (p, Some(v.to_owned())),
        None => (local, None),
    };
    if !path.contains(':') {
        if let Some((t, id)) = path.split_once('/') {
            if hearth_model::structure::is_resource_type(t) && !id.contains('/') {
                return SearchValue::Reference {
                    resource_type: Some(t.to_owned()),
                    id: Some(id.to_owned()),
                    version,
                    url: None,
                };
            }
        }
        if !path.contains('/') {
            return SearchValue::Reference {
                resource_type: None,
                id: Some(path.to_owned()),
                version: None,
                url: None,
            };
        }
    }
    // Canonical references may carry `|version`; the index keeps the URL.
    let url = text.split('|').next().unwrap_or(text).to_owned();
    SearchValue::Reference {
        resource_type: None,
        id: None,
        version: None,
        url: Some(url),
    }
}

/// Splits a leading comparison prefix off a value.
fn prefix(raw: &str) -> (Prefix, &str) {
    let table = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ];
    for (text, prefix) in table {
        if let Some(rest) = raw.strip_prefix(text) {
            return (prefix, rest);
        }
    }
    (Prefix::Eq, raw)
}

/// A decimal and the range its precision implies: `100` is [99.5, 100.5),
/// `1.50` is [1.495, 1.505), `1e2` is [50, 150).
fn number(text: &str) -> Option<(f64, f64, f64)> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (lower.as_str(), 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i32);
    let half = 0.5 * 10f64.powi(exponent - decimals);
    Some((value, value - half, value + half))
}

fn parse_sort(
    custom: &CustomParams,
    types: &[String],
    value: &str,
) -> Result<Vec<SortKey>, SearchError> {
    let mut keys = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (descending, code) = match item.strip_prefix('-') {
            Some(c) => (true, c),
            None => (false, item),
        };
        let defs = definitions(custom, types, code);
        let Some((first, _)) = defs.first() else {
            return Err(error(
                "_sort",
                format!(
                    "cannot sort by '{code}': it is not a search parameter of the types searched"
                ),
            ));
        };
        let kind = first.param_type;
        if matches!(kind, ParamType::Composite | ParamType::Special)
            || first.support != Support::Supported
        {
            return Err(error("_sort", format!("cannot sort by '{code}'")));
        }
        keys.push(SortKey {
            params: defs
                .into_iter()
                .flat_map(|(p, q)| stored_names(p, q))
                .collect(),
            kind,
            descending,
        });
    }
    Ok(keys)
}

fn parse_include(
    custom: &CustomParams,
    item: &str,
    iterate: bool,
    key: &str,
) -> Result<Include, SearchError> {
    let parts: Vec<&str> = item.split(':').collect();
    let source = parts[0];
    if item == "*" {
        return Err(error(key, "_include=* needs a source type: use Type:*"));
    }
    if !hearth_model::structure::is_resource_type(source) {
        return Err(error(
            key,
            format!("'{item}': '{source}' is not a resource type"),
        ));
    }
    let one = [source.to_owned()];
    let params = match parts.get(1) {
        Some(&"*") => search_params::for_type(source, custom)
            .filter(|p| p.param_type == ParamType::Reference && p.support == Support::Supported)
            .map(|p| format!("{source}.{}", p.code))
            .collect(),
        Some(code) => match definitions(custom, &one, code).first() {
            Some((p, q)) if p.param_type == ParamType::Reference => vec![q.clone()],
            _ => {
                return Err(error(
                    key,
                    format!("'{item}': '{code}' is not a reference parameter of {source}"),
                ))
            }
        },
        None => {
            return Err(error(
                key,
                format!("'{item}' must be Type:parameter[:target]"),
            ))
        }
    };
    let target_type = match parts.get(2) {
        Some(t) if hearth_model::structure::is_resource_type(t) => Some((*t).to_owned()),
        Some(t) => {
            return Err(error(
                key,
                format!("'{item}': '{t}' is not a resource type"),
            ))
        }
        None => None,
    };
    Ok(Include {
        source_type: source.to_owned(),
        params,
        target_type,
        iterate,
    })
}

/// `_has:Source:reference:param=value`, nested `_has:…:_has:…` allowed.
fn parse_has(
    custom: &CustomParams,
    key: &str,
    value: &str,
    room: &mut Room,
) -> Result<Condition, Unknown> {
    let rest = key.strip_prefix("_has:").unwrap_or_default();
    let mut parts = rest.splitn(3, ':');
    let (Some(source), Some(reference), Some(inner_key)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(error(key, "_has takes _has:Type:reference:parameter=value").into());
    };
    if !hearth_model::structure::is_resource_type(source) {
        return Err(error(key, format!("_has: '{source}' is not a resource type")).into());
    }
    let one = [source.to_owned()];
    match definitions(custom, &one, reference).first() {
        Some((p, _)) if p.param_type == ParamType::Reference => {}
        _ => {
            return Err(error(
                key,
                format!("_has: '{reference}' is not a reference parameter of {source}"),
            )
            .into())
        }
    }
    room.take(key, 1)?;
    let inner = if inner_key.starts_with("_has:") {
        parse_has(custom, inner_key, value, room)?
    } else {
        condition(custom, &one, inner_key, value, None, room)?
    };
    Ok(Condition::Has {
        source_type: source.to_owned(),
        param: format!("{source}.{reference}"),
        inner: Box::new(inner),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_split_and_unescape() {
        assert_eq!(split_unescaped(r"a\,b,c", ','), vec![r"a,b", "c"]);
        assert_eq!(split_unescaped(r"x\|y|z", ','), vec![r"x\|y|z"]);
        assert_eq!(unescape(r"x\|y"), "x|y");
    }

    #[test]
    fn numbers_carry_their_precision() {
        assert_eq!(number("100"), Some((100.0, 99.5, 100.5)));
        let (_, lo, hi) = number("1.50").unwrap();
        assert!((lo - 1.495).abs() < 1e-12 && (hi - 1.505).abs() < 1e-12);
        assert_eq!(number("1e2"), Some((100.0, 50.0, 150.0)));
        assert_eq!(number("abc"), None);
    }

    #[test]
    fn references_read_local_absolute_and_bare_forms() {
        let base = Some("http://h/fhir");
        assert_eq!(
            reference_value("http://h/fhir/Patient/1", base),
            SearchValue::Reference {
                resource_type: Some("Patient".into()),
                id: Some("1".into()),
                version: None,
                url: None
            }
        );
        assert_eq!(
            reference_value("123", base),
            SearchValue::Reference {
                resource_type: None,
                id: Some("123".into()),
                version: None,
                url: None
            }
        );
        assert_eq!(
            reference_value("http://other/Patient/1", base),
            SearchValue::Reference {
                resource_type: None,
                id: None,
                version: None,
                url: Some("http://other/Patient/1".into())
            }
        );
    }

    fn parse_one(resource_type: &str, query: &str) -> Result<SearchQuery, SearchError> {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let options = ParseOptions {
            strict: true,
            default_count: 10,
            max_count: 100,
            base: None,
            custom: Arc::new(CustomParams::default()),
        };
        parse(&[resource_type.to_owned()], &params, &options)
    }

    #[test]
    fn searches_past_the_limits_are_too_complex_not_invalid() {
        let many = |n: usize| {
            (0..n)
                .map(|i| format!("v{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        for query in [
            vec!["family=x"; limits::MAX_PARAMETERS + 1].join("&"),
            format!("_id={}", many(limits::MAX_VALUES + 1)),
            format!(
                "subject:Patient{}=x",
                ".organization".repeat(limits::MAX_CHAIN_LINKS + 1)
            ),
            format!(
                "{}code=x",
                "_has:Observation:subject:".repeat(limits::MAX_HAS_NESTING + 2)
            ),
            // A chain over a reference to any type names each type that has
            // the next parameter: a few values multiply past the bound.
            format!("target._id={}", many(20)),
        ] {
            let resource_type = if query.starts_with("target") {
                "Provenance"
            } else {
                "Patient"
            };
            let error = parse_one(resource_type, &query).unwrap_err();
            assert!(error.too_complex, "{query}: {error}");
        }
        // At the limits, the same searches parse.
        for (resource_type, query) in [
            (
                "Patient",
                vec!["family=x"; limits::MAX_PARAMETERS].join("&"),
            ),
            ("Patient", format!("_id={}", many(limits::MAX_VALUES))),
            (
                "Observation",
                "subject:Patient.organization.partof.partof.name=x".to_owned(),
            ),
            ("Provenance", format!("target._id={}", many(3))),
        ] {
            assert!(parse_one(resource_type, &query).is_ok(), "{query}");
        }
        // A bad value is invalid, not too complex.
        assert!(
            !parse_one("Patient", "birthdate=xx2020")
                .unwrap_err()
                .too_complex
        );
    }
}
