//! FHIRPath Patch (<https://hl7.org/fhir/R4/fhirpatch.html>): a Parameters
//! resource whose `operation` parameters add, insert, delete, replace and
//! move elements located by FHIRPath expressions, used by the FHIR `PATCH`
//! interaction with a FHIR content type.
//!
//! The resource is patched as FHIR JSON. Two JSON details shape the code:
//! repeating elements are arrays, and a primitive keeps its id and
//! extensions in a `_name` companion property (an array parallel to `name`
//! when the element repeats). Every change keeps the two halves aligned, and
//! deleting leaves no empty objects or arrays behind (FHIR forbids them), so
//! removing the last child of an element removes the element too.
//!
//! Error messages are returned to clients inside an OperationOutcome; each
//! names the 0-based index of the failing operation, its type and its path.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::fhirpath::{self, Expr, Item, Location, Pointer};
use crate::json;
use crate::structure::{self, ElementInfo};

/// Why a FHIRPath Patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FhirPathPatchError {
    /// The body is not a Parameters resource of the expected shape.
    #[error("invalid FHIRPath Patch document: {0}")]
    InvalidDocument(String),
    /// An `operation` parameter is malformed: unknown type, missing or
    /// repeated parts, a value part without a value, a negative index.
    #[error("operation {index}: {reason}")]
    InvalidOperation { index: usize, reason: String },
    /// The `path` part is not a FHIRPath expression this server supports.
    #[error("operation {index} ({operation}): invalid path {path:?}: {error}")]
    InvalidPath {
        index: usize,
        operation: &'static str,
        path: String,
        error: fhirpath::ParseError,
    },
    /// The path selects nothing where something is required.
    #[error("operation {index} ({operation}): path {path:?} matches nothing")]
    NoMatch {
        index: usize,
        operation: &'static str,
        path: String,
    },
    /// The path selects several elements where it must select one.
    #[error("operation {index} ({operation}): path {path:?} matches {count} elements, but must match exactly one")]
    MultipleMatches {
        index: usize,
        operation: &'static str,
        path: String,
        count: usize,
    },
    /// The operation does not fit the resource: the element already exists,
    /// an index is out of range, a name or value type is not allowed there.
    #[error("operation {index} ({operation}) at {path:?}: {reason}")]
    CannotApply {
        index: usize,
        operation: &'static str,
        path: String,
        reason: String,
    },
    /// The patched resource would be larger than the limit.
    #[error("the patch would make the resource larger than {limit} bytes")]
    TooLarge { limit: usize },
}

impl FhirPathPatchError {
    /// True when the patch document itself is malformed (a client error
    /// whatever the resource), false when a well-formed patch does not fit
    /// the resource it was applied to.
    pub fn is_invalid_document(&self) -> bool {
        matches!(
            self,
            Self::InvalidDocument(_) | Self::InvalidOperation { .. } | Self::InvalidPath { .. }
        )
    }
}

/// Applies a FHIRPath Patch (a Parameters resource in FHIR JSON) to
/// `resource`; on error `resource` is unchanged.
///
/// The whole document is checked before anything is applied, so a malformed
/// document is reported as such whatever the resource contains. Operations
/// apply in order, each seeing the result of the previous ones.
pub fn apply(
    resource: &mut Value,
    parameters: &Value,
    max_bytes: usize,
) -> Result<(), FhirPathPatchError> {
    let operations = parse_document(parameters)?;
    // A patch is atomic: work on a copy and keep it only if all succeed.
    let mut work = resource.clone();
    for op in &operations {
        op.apply(&mut work)?;
    }
    // No operation copies what the resource holds: each adds at most its
    // own value, once, so the patch grows the resource by at most its own
    // size and one measure at the end is enough (JSON Patch's `copy`
    // needs one per operation).
    if json::encoded_len(&work) > max_bytes {
        return Err(FhirPathPatchError::TooLarge { limit: max_bytes });
    }
    *resource = work;
    Ok(())
}

// ---------------------------------------------------------------------------
// The patch document

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Insert,
    Delete,
    Replace,
    Move,
}

impl Kind {
    fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "add" => Self::Add,
            "insert" => Self::Insert,
            "delete" => Self::Delete,
            "replace" => Self::Replace,
            "move" => Self::Move,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Insert => "insert",
            Self::Delete => "delete",
            Self::Replace => "replace",
            Self::Move => "move",
        }
    }

    /// The parts this operation requires besides `type` and `path`.
    fn required_parts(self) -> &'static [&'static str] {
        match self {
            Self::Add => &["name", "value"],
            Self::Insert => &["index", "value"],
            Self::Delete => &[],
            Self::Replace => &["value"],
            Self::Move => &["source", "destination"],
        }
    }
}

/// One `operation` parameter, checked and with its path parsed.
struct Operation<'p> {
    /// Position among the Parameters' `parameter`s, for messages.
    index: usize,
    kind: Kind,
    path_text: &'p str,
    path: Expr,
    name: Option<&'p str>,
    /// The `value` part itself: it holds `value[x]`, `resource` or `part`s.
    value: Option<&'p Map<String, Value>>,
    position: Option<usize>,
    source: Option<usize>,
    destination: Option<usize>,
}

fn parse_document(parameters: &Value) -> Result<Vec<Operation<'_>>, FhirPathPatchError> {
    let invalid = |reason: &str| FhirPathPatchError::InvalidDocument(reason.to_owned());
    let Some(doc) = parameters.as_object() else {
        return Err(invalid("expected a Parameters resource"));
    };
    if doc.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("expected a Parameters resource"));
    }
    match doc.get("parameter") {
        None => Ok(Vec::new()),
        Some(Value::Array(params)) => params
            .iter()
            .enumerate()
            .map(|(index, param)| parse_operation(index, param))
            .collect(),
        Some(_) => Err(invalid("Parameters.parameter must be an array")),
    }
}

fn parse_operation(index: usize, param: &Value) -> Result<Operation<'_>, FhirPathPatchError> {
    let invalid = |reason: String| FhirPathPatchError::InvalidOperation { index, reason };
    let Some(param) = param.as_object() else {
        return Err(invalid("the parameter must be a JSON object".into()));
    };
    match param.get("name").and_then(Value::as_str) {
        Some("operation") => {}
        Some(other) => {
            return Err(invalid(format!(
                "parameter name must be \"operation\", not {other:?}"
            )))
        }
        None => return Err(invalid("the parameter has no name".into())),
    }
    let Some(parts) = param.get("part").and_then(Value::as_array) else {
        return Err(invalid("the operation has no parts".into()));
    };

    let mut kind = None;
    let mut path = None;
    let mut name = None;
    let mut value = None;
    let mut position = None;
    let mut source = None;
    let mut destination = None;
    let mut seen: Vec<&str> = Vec::new();
    for part in parts {
        let part = part
            .as_object()
            .ok_or_else(|| invalid("a part must be a JSON object".into()))?;
        let part_name = part
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a part has no name".into()))?;
        if seen.contains(&part_name) {
            return Err(invalid(format!(
                "part {part_name:?} is given more than once"
            )));
        }
        seen.push(part_name);
        let string = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| part.get(*k).and_then(Value::as_str))
                .ok_or_else(|| invalid(format!("part {part_name:?} must have a {}", keys[0])))
        };
        let integer = || match part.get("valueInteger") {
            Some(Value::Number(n)) => {
                n.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "part {part_name:?} must be a non-negative integer, not {n}"
                        ))
                    })
            }
            _ => Err(invalid(format!(
                "part {part_name:?} must have a valueInteger"
            ))),
        };
        match part_name {
            "type" => {
                let code = string(&["valueCode", "valueString"])?;
                kind = Some(Kind::parse(code).ok_or_else(|| {
                    invalid(format!(
                        "unknown operation type {code:?} (expected add, insert, delete, replace or move)"
                    ))
                })?);
            }
            "path" => path = Some(string(&["valueString"])?),
            "name" => name = Some(string(&["valueString"])?),
            "value" => {
                check_value_shape(part)
                    .map_err(|reason| invalid(format!("part \"value\": {reason}")))?;
                value = Some(part);
            }
            "index" => position = Some(integer()?),
            "source" => source = Some(integer()?),
            "destination" => destination = Some(integer()?),
            other => return Err(invalid(format!("unknown part {other:?}"))),
        }
    }

    let kind = kind.ok_or_else(|| invalid("the operation has no \"type\" part".into()))?;
    let path_text = path.ok_or_else(|| {
        invalid(format!(
            "the {} operation has no \"path\" part",
            kind.name()
        ))
    })?;
    if let Some(missing) = kind.required_parts().iter().find(|p| !seen.contains(p)) {
        return Err(invalid(format!(
            "the {} operation requires a {missing:?} part",
            kind.name()
        )));
    }
    let path = fhirpath::parse(path_text).map_err(|error| FhirPathPatchError::InvalidPath {
        index,
        operation: kind.name(),
        path: path_text.to_owned(),
        error,
    })?;
    Ok(Operation {
        index,
        kind,
        path_text,
        path,
        name,
        value,
        position,
        source,
        destination,
    })
}

/// Checks that a value part (or a nested part) carries exactly one of
/// `value[x]`, `resource` or `part`s, and that nested parts are named. What
/// the value means is only known against the resource, when it is applied.
fn check_value_shape(part: &Map<String, Value>) -> Result<(), String> {
    let mut forms = 0;
    if value_x(part)?.is_some() {
        forms += 1;
    }
    if part.contains_key("resource") {
        forms += 1;
    }
    if let Some(parts) = part.get("part") {
        forms += 1;
        let parts = parts.as_array().ok_or("\"part\" must be an array")?;
        for nested in parts {
            let nested = nested.as_object().ok_or("a part must be a JSON object")?;
            let name = nested
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a nested part has no name")?;
            check_value_shape(nested).map_err(|reason| format!("part {name:?}: {reason}"))?;
        }
    }
    match forms {
        1 => Ok(()),
        0 => Err("no value (expected value[x], resource or part)".into()),
        _ => Err("more than one value (expected one of value[x], resource or part)".into()),
    }
}

/// Finds the `value[x]` of a part: the JSON key (without `_`) and the FHIR
/// type it names. Errors when several differently typed values are given.
fn value_x(part: &Map<String, Value>) -> Result<Option<(&str, String)>, String> {
    let mut found: Option<&str> = None;
    for key in part.keys() {
        let plain = key.strip_prefix('_').unwrap_or(key);
        let Some(suffix) = plain.strip_prefix("value") else {
            continue;
        };
        if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        match found {
            Some(f) if f != plain => return Err(format!("both {f} and {plain} are given")),
            _ => found = Some(plain),
        }
    }
    Ok(found.map(|key| {
        // `valueDate` names the primitive `date`, `valueHumanName` the
        // complex type `HumanName`.
        let suffix = &key["value".len()..];
        let lower = decapitalise(suffix);
        let ty = if structure::is_primitive_type(&lower) {
            lower
        } else {
            suffix.to_owned()
        };
        (key, ty)
    }))
}

// ---------------------------------------------------------------------------
// Values

/// A FHIR value in JSON form, ready to be stored under some property.
#[derive(Debug)]
struct NewValue {
    /// The JSON value; `None` for a primitive that only has extensions.
    json: Option<Value>,
    /// A primitive's `_` companion (id and extensions).
    companion: Option<Value>,
    /// The FHIR type given by `value[x]` or a resource's `resourceType`;
    /// `None` for values built from parts.
    type_name: Option<String>,
}

/// Why an operation failed: the message, and whether it is the document's
/// fault (rather than the resource's).
enum Problem {
    Invalid(String),
    CannotApply(String),
}

/// Converts a value part (checked by [`check_value_shape`]) to JSON.
/// `context` is where the children of the target element are defined, needed
/// to build values given as `part`s.
fn convert_value(part: &Map<String, Value>, context: Option<&str>) -> Result<NewValue, Problem> {
    if let Some((key, ty)) = value_x(part).map_err(Problem::Invalid)? {
        return Ok(NewValue {
            json: part.get(key).filter(|v| !v.is_null()).cloned(),
            companion: part
                .get(&format!("_{key}"))
                .filter(|v| !v.is_null())
                .cloned(),
            type_name: Some(ty),
        });
    }
    if let Some(resource) = part.get("resource") {
        return Ok(NewValue {
            type_name: resource
                .get("resourceType")
                .and_then(Value::as_str)
                .map(str::to_owned),
            json: Some(resource.clone()),
            companion: None,
        });
    }
    let parts = part
        .get("part")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut object = Map::new();
    for nested in parts {
        let Some(nested) = nested.as_object() else {
            continue; // rejected by check_value_shape
        };
        let name = nested
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (key, info, value) = named_child(context, name, nested)?;
        if !put(&mut object, &key, info, value) {
            return Err(Problem::CannotApply(format!(
                "{name} is given more than once, but does not repeat"
            )));
        }
    }
    Ok(NewValue {
        json: Some(Value::Object(object)),
        companion: None,
        type_name: None,
    })
}

/// Resolves the child `name` of an element whose children are defined in
/// `context`, converting its value (from `part`): the JSON property to store
/// it under, its definition, and the value. Handles choice elements, whose
/// property name depends on the value's type (`value` + `Quantity`).
fn named_child(
    context: Option<&str>,
    name: &str,
    part: &Map<String, Value>,
) -> Result<(String, Option<&'static ElementInfo>, NewValue), Problem> {
    let Some(ctx) = context else {
        // No definitions to go by: store the value under the name given.
        return Ok((name.to_owned(), None, convert_value(part, None)?));
    };
    if let Some((info, chosen)) = structure::child(ctx, name) {
        // A plain element, or a choice named with its type (`valueQuantity`).
        let value = convert_value(part, info.child_context(chosen))?;
        // Named with its type, a choice element takes only that type.
        let allowed = match chosen.and_then(|ty| info.types.iter().position(|t| t == ty)) {
            Some(i) => &info.types[i..=i],
            None => info.types.as_slice(),
        };
        check_type(name, allowed, &value)?;
        return Ok((name.to_owned(), Some(info), value));
    }
    if let Some(info) = structure::children(ctx).find(|e| e.choice && e.name() == name) {
        let value = convert_value(part, None)?;
        let key = choice_key(info, &value)?;
        return Ok((key, Some(info), value));
    }
    Err(Problem::CannotApply(format!(
        "{ctx} has no element {name:?}"
    )))
}

/// The JSON name of choice element `info` holding `value`: the element name
/// followed by the value's type (`value` + `Quantity`).
fn choice_key(info: &ElementInfo, value: &NewValue) -> Result<String, Problem> {
    let name = info.name();
    let Some(ty) = value.type_name.as_deref() else {
        return Err(Problem::CannotApply(format!(
            "{name}[x] is a choice element: give its value as value[x], not as parts"
        )));
    };
    if !info.types.iter().any(|t| t == ty) {
        return Err(Problem::CannotApply(format!(
            "{name}[x] cannot be of type {ty} (allowed: {})",
            info.types.join(", ")
        )));
    }
    Ok(format!("{name}{}", capitalise(ty)))
}

/// Checks that a value of the given type may be stored in an element of one
/// of the `allowed` types, so a patch cannot turn a HumanName into a string.
/// Primitives may stand for any primitive of the same JSON kind (the FHIRPath
/// Patch tests replace an `xhtml` div with a `valueString`); their content is
/// checked when the patched resource is validated.
fn check_type(name: &str, allowed: &[String], value: &NewValue) -> Result<(), Problem> {
    let fits = match value.type_name.as_deref() {
        // Built from parts: fine for any complex element.
        None => allowed.iter().any(|t| !structure::is_primitive_type(t)),
        Some(given) => allowed.iter().any(|t| {
            t == given
                || (t == "Resource" && structure::is_resource_type(given))
                || (t == "Quantity" && QUANTITY_PROFILES.contains(&given))
                || (structure::is_primitive_type(t)
                    && structure::is_primitive_type(given)
                    && json_kind(t) == json_kind(given))
        }),
    };
    if fits || allowed.is_empty() {
        return Ok(());
    }
    let given = value
        .type_name
        .as_deref()
        .unwrap_or("a value given as parts");
    Err(Problem::CannotApply(format!(
        "{name} is of type {}, so it cannot hold {given}",
        allowed.join(" | ")
    )))
}

/// Types that are Quantities on the wire, so may go where a Quantity goes.
const QUANTITY_PROFILES: &[&str] = &[
    "Age",
    "Count",
    "Distance",
    "Duration",
    "MoneyQuantity",
    "SimpleQuantity",
];

/// How a FHIR primitive is represented in JSON.
fn json_kind(primitive: &str) -> &'static str {
    match primitive {
        "boolean" => "boolean",
        "integer" | "unsignedInt" | "positiveInt" | "decimal" => "number",
        _ => "string",
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn decapitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Applying operations

/// An element a path selected, detached from the borrow of the document so
/// the document can then be changed.
struct Target {
    /// `None` for the resource itself.
    location: Option<Location>,
    definition: Option<(&'static ElementInfo, Option<&'static str>)>,
    /// Where the element's children are defined.
    context: Option<String>,
    primitive: bool,
}

/// The items of one repeating element (one JSON array), as selected by the
/// path of an insert or move.
struct List {
    /// The object holding the array.
    parent: Pointer,
    key: String,
    len: usize,
    definition: Option<&'static ElementInfo>,
    /// Where the items' children are defined.
    context: Option<String>,
}

impl Operation<'_> {
    fn apply(&self, doc: &mut Value) -> Result<(), FhirPathPatchError> {
        let result = match self.kind {
            Kind::Add => self.add(doc),
            Kind::Insert => self.insert(doc),
            Kind::Delete => self.delete(doc),
            Kind::Replace => self.replace(doc),
            Kind::Move => self.move_item(doc),
        };
        result.map_err(|e| match e {
            Failure::Error(e) => e,
            Failure::Problem(Problem::Invalid(reason)) => FhirPathPatchError::InvalidOperation {
                index: self.index,
                reason,
            },
            Failure::Problem(Problem::CannotApply(reason)) => self.cannot_apply(reason),
        })
    }

    fn cannot_apply(&self, reason: String) -> FhirPathPatchError {
        FhirPathPatchError::CannotApply {
            index: self.index,
            operation: self.kind.name(),
            path: self.path_text.to_owned(),
            reason,
        }
    }

    fn no_match(&self) -> Failure {
        Failure::Error(FhirPathPatchError::NoMatch {
            index: self.index,
            operation: self.kind.name(),
            path: self.path_text.to_owned(),
        })
    }

    /// Evaluates the path. Only elements of the resource can be patched, not
    /// values the expression computes (`Patient.active.exists()`).
    fn select(&self, doc: &Value, expr: &Expr) -> Result<Vec<Target>, Failure> {
        let items = fhirpath::evaluate(expr, doc).map_err(|e| Problem::CannotApply(e.0))?;
        items
            .into_iter()
            .map(|item| match item {
                Item::Element(e) => Ok(Target {
                    primitive: e.is_primitive(),
                    location: e.location().cloned(),
                    definition: e.definition(),
                    context: e.context().map(str::to_owned),
                }),
                Item::Value(_) => Err(Failure::Problem(Problem::CannotApply(
                    "the path selects a computed value, not an element of the resource".into(),
                ))),
            })
            .collect()
    }

    /// The one element the path selects.
    fn single(&self, doc: &Value) -> Result<Target, Failure> {
        let mut targets = self.select(doc, &self.path)?;
        match targets.len() {
            0 => Err(self.no_match()),
            1 => Ok(targets.remove(0)),
            count => Err(Failure::Error(FhirPathPatchError::MultipleMatches {
                index: self.index,
                operation: self.kind.name(),
                path: self.path_text.to_owned(),
                count,
            })),
        }
    }

    fn value_part(&self) -> &Map<String, Value> {
        self.value.expect("value part checked when parsed")
    }

    /// add: appends `value` as child `name` of the element at `path`. A
    /// non-repeating child must not exist yet.
    fn add(&self, doc: &mut Value) -> Result<(), Failure> {
        let target = self.single(doc)?;
        let name = self.name.expect("name part checked when parsed");
        if target.primitive && !matches!(name, "id" | "extension") {
            return Err(format!(
                "a primitive element can only have an id or extensions added, not {name:?}"
            )
            .into());
        }
        let (key, info, value) = named_child(target.context.as_deref(), name, self.value_part())?;
        let object = container_mut(doc, &target)?;
        if !put(object, &key, info, value) {
            return Err(
                format!("{key} already has a value and does not repeat (use replace)").into(),
            );
        }
        Ok(())
    }

    /// insert: puts `value` at position `index` of the list at `path`.
    fn insert(&self, doc: &mut Value) -> Result<(), Failure> {
        let list = self.list(doc, true)?;
        let at = self.position.expect("index part checked when parsed");
        if at > list.len {
            return Err(format!(
                "index {at} is out of range: the list has {} items",
                list.len
            )
            .into());
        }
        let value = convert_value(self.value_part(), list.context.as_deref())?;
        if let Some(info) = list.definition {
            check_type(info.name(), &info.types, &value)?;
        }
        insert_item(object_mut(doc, &list.parent)?, &list.key, at, value);
        Ok(())
    }

    /// delete: removes the element at `path`, if there is one.
    fn delete(&self, doc: &mut Value) -> Result<(), Failure> {
        let mut targets = self.select(doc, &self.path)?;
        let target = match targets.len() {
            0 => return Ok(()),
            1 => targets.remove(0),
            count => {
                return Err(Failure::Error(FhirPathPatchError::MultipleMatches {
                    index: self.index,
                    operation: self.kind.name(),
                    path: self.path_text.to_owned(),
                    count,
                }))
            }
        };
        let Some(loc) = target.location else {
            return Err(String::from("the resource itself cannot be deleted").into());
        };
        let object = object_mut(doc, &loc.parent)?;
        match loc.index {
            None => object.retain(|k, _| k != &loc.key && k.strip_prefix('_') != Some(&loc.key)),
            Some(i) => {
                remove_item(object, &loc.key, i);
            }
        }
        tidy(object, &loc.key);
        prune(doc, &loc.parent);
        Ok(())
    }

    /// replace: replaces the element at `path` (value, id and extensions)
    /// with `value`.
    fn replace(&self, doc: &mut Value) -> Result<(), Failure> {
        let target = self.single(doc)?;
        let Some(loc) = target.location else {
            return Err(String::from("the resource itself cannot be replaced (use update)").into());
        };
        let value = convert_value(self.value_part(), target.context.as_deref())?;
        // A choice element may change type, and with it its JSON name.
        let key = match target.definition {
            Some((info, _)) if info.choice => choice_key(info, &value)?,
            Some((info, _)) => {
                check_type(info.name(), &info.types, &value)?;
                loc.key.clone()
            }
            None => loc.key.clone(),
        };
        let object = object_mut(doc, &loc.parent)?;
        match loc.index {
            None => replace_property(object, &loc.key, &key, value),
            Some(i) => replace_item(object, &loc.key, i, value),
        }
        Ok(())
    }

    /// move: moves the item at `source` of the list at `path` to
    /// `destination` (an index in the list as it is without the item).
    fn move_item(&self, doc: &mut Value) -> Result<(), Failure> {
        let list = self.list(doc, false)?;
        let source = self.source.expect("source part checked when parsed");
        let destination = self
            .destination
            .expect("destination part checked when parsed");
        for (what, at) in [("source", source), ("destination", destination)] {
            if at >= list.len {
                return Err(format!(
                    "{what} {at} is out of range: the list has {} items",
                    list.len
                )
                .into());
            }
        }
        let object = object_mut(doc, &list.parent)?;
        let (json, companion) = remove_item(object, &list.key, source);
        let value = NewValue {
            json: Some(json).filter(|v| !v.is_null()),
            companion: Some(companion).filter(|v| !v.is_null()),
            type_name: None,
        };
        insert_item(object, &list.key, destination, value);
        Ok(())
    }

    /// The list (repeating element) the path of an insert or move selects:
    /// all of its items, and nothing else. With `allow_empty`, a path
    /// `base.name` that selects nothing still names a list, an empty one, when
    /// `base` is a single element with a repeating child `name`, so a client
    /// can insert at index 0 of a list that does not exist yet.
    fn list(&self, doc: &Value, allow_empty: bool) -> Result<List, Failure> {
        let targets = self.select(doc, &self.path)?;
        let Some(first) = targets.first() else {
            return if allow_empty {
                self.empty_list(doc)?.ok_or_else(|| self.no_match())
            } else {
                Err(self.no_match())
            };
        };
        let not_a_list = || -> Failure {
            String::from("the path must select the items of a repeating element").into()
        };
        let loc = first.location.as_ref().ok_or_else(not_a_list)?;
        for target in &targets {
            match &target.location {
                Some(l) if l.index.is_some() && l.parent == loc.parent && l.key == loc.key => {}
                Some(l) if l.index.is_some() => {
                    return Err(String::from("the path selects items of more than one list").into())
                }
                _ => return Err(not_a_list()),
            }
        }
        let parent = loc.parent.get(doc).and_then(Value::as_object);
        let len = parent.map_or(0, |p| list_len(p, &loc.key));
        if targets.len() != len {
            return Err(format!(
                "the path selects {} of the {len} items of the list; it must select the whole list",
                targets.len()
            )
            .into());
        }
        Ok(List {
            parent: loc.parent.clone(),
            key: loc.key.clone(),
            len,
            definition: first.definition.map(|(info, _)| info),
            context: first.context.clone(),
        })
    }

    /// See [`Operation::list`].
    fn empty_list(&self, doc: &Value) -> Result<Option<List>, Failure> {
        let (base, name) = match &self.path {
            Expr::Member(base, name) => (self.select(doc, base)?, name),
            Expr::Identifier(name) => (self.select(doc, &Expr::This)?, name),
            _ => return Ok(None),
        };
        let [owner] = base.as_slice() else {
            return Ok(None);
        };
        let Some(ctx) = owner.context.as_deref().filter(|_| !owner.primitive) else {
            return Ok(None);
        };
        let Some((info, None)) = structure::child(ctx, name) else {
            return Ok(None);
        };
        if !info.many {
            return Ok(None);
        }
        Ok(Some(List {
            parent: owner
                .location
                .as_ref()
                .map_or_else(Pointer::default, Location::value_pointer),
            key: name.clone(),
            len: 0,
            definition: Some(info),
            context: info.child_context(None).map(str::to_owned),
        }))
    }
}

/// Internal error of an operation step: either final, or a [`Problem`] to be
/// turned into an error naming the operation.
enum Failure {
    Error(FhirPathPatchError),
    Problem(Problem),
}

impl From<Problem> for Failure {
    fn from(p: Problem) -> Self {
        Failure::Problem(p)
    }
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Problem(Problem::CannotApply(reason))
    }
}

// ---------------------------------------------------------------------------
// JSON surgery

fn object_mut<'v>(doc: &'v mut Value, at: &Pointer) -> Result<&'v mut Map<String, Value>, Failure> {
    at.get_mut(doc)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("no JSON object at {at}").into())
}

/// The object that children of `target` are added to: the element itself,
/// or for a primitive its `_` companion (created if needed).
fn container_mut<'v>(
    doc: &'v mut Value,
    target: &Target,
) -> Result<&'v mut Map<String, Value>, Failure> {
    let Some(loc) = &target.location else {
        return object_mut(doc, &Pointer::default());
    };
    if !target.primitive {
        return object_mut(doc, &loc.value_pointer());
    }
    let parent = object_mut(doc, &loc.parent)?;
    let companion_key = format!("_{}", loc.key);
    let slot = match loc.index {
        None => parent.entry(companion_key).or_insert(Value::Null),
        Some(i) => {
            let len = list_len(parent, &loc.key);
            let companions = parent
                .entry(companion_key)
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(companions) = companions else {
                return Err(format!("_{} is not an array", loc.key).into());
            };
            companions.resize(len.max(i + 1), Value::Null);
            &mut companions[i]
        }
    };
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| format!("_{} is not a JSON object", loc.key).into())
}

/// Number of items of repeating element `key` (the longer of `key` and
/// `_key`, which should be equally long).
fn list_len(object: &Map<String, Value>, key: &str) -> usize {
    let len = |k: &str| match object.get(k) {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Null) | None => 0,
        Some(_) => 1,
    };
    len(key).max(len(&format!("_{key}")))
}

/// Stores `value` as child `key` (defined by `info`) of `object`: appended
/// when the element repeats, otherwise only if it has no value yet (returns
/// false if it has; for a choice element, a value of any type counts).
fn put(
    object: &mut Map<String, Value>,
    key: &str,
    info: Option<&ElementInfo>,
    value: NewValue,
) -> bool {
    if info.is_some_and(|i| i.many) {
        let end = list_len(object, key);
        insert_item(object, key, end, value);
        return true;
    }
    let taken = |k: &str| object.contains_key(k) || object.contains_key(&format!("_{k}"));
    let occupied = taken(key)
        || info.is_some_and(|i| {
            i.choice
                && i.types
                    .iter()
                    .any(|t| taken(&format!("{}{}", i.name(), capitalise(t))))
        });
    if occupied {
        return false;
    }
    let companion_key = format!("_{key}");
    if let Some(json) = value.json {
        object.insert(key.to_owned(), json);
    }
    if let Some(companion) = value.companion {
        object.insert(companion_key, companion);
    }
    true
}

/// Makes `object[key]` an array of at least `len` items (a single value
/// becomes a one-item array) and returns it.
fn array_mut<'m>(object: &'m mut Map<String, Value>, key: &str, len: usize) -> &'m mut Vec<Value> {
    let slot = object.entry(key).or_insert(Value::Null);
    if !slot.is_array() {
        let single = std::mem::take(slot);
        *slot = Value::Array(if single.is_null() {
            Vec::new()
        } else {
            vec![single]
        });
    }
    let Value::Array(items) = slot else {
        unreachable!("made an array above")
    };
    if items.len() < len {
        items.resize(len, Value::Null);
    }
    items
}

/// Inserts `value` at position `at` (at most the list's length) of repeating
/// element `key`, keeping `_key` aligned.
fn insert_item(object: &mut Map<String, Value>, key: &str, at: usize, value: NewValue) {
    let len = list_len(object, key);
    let companion_key = format!("_{key}");
    array_mut(object, key, len).insert(at, value.json.unwrap_or(Value::Null));
    if value.companion.is_some() || object.contains_key(&companion_key) {
        array_mut(object, &companion_key, len).insert(at, value.companion.unwrap_or(Value::Null));
    }
    tidy(object, key);
}

/// Removes position `at` of repeating element `key` (and of `_key`),
/// returning both halves (null where absent). Leaves tidying to the caller.
fn remove_item(object: &mut Map<String, Value>, key: &str, at: usize) -> (Value, Value) {
    let mut take = |k: &str| match object.get_mut(k) {
        Some(Value::Array(items)) if at < items.len() => items.remove(at),
        _ => Value::Null,
    };
    let json = take(key);
    let companion = take(&format!("_{key}"));
    (json, companion)
}

/// Replaces position `at` of repeating element `key` (and of `_key`).
fn replace_item(object: &mut Map<String, Value>, key: &str, at: usize, value: NewValue) {
    let len = list_len(object, key);
    array_mut(object, key, len)[at] = value.json.unwrap_or(Value::Null);
    let companion_key = format!("_{key}");
    if value.companion.is_some() || object.contains_key(&companion_key) {
        array_mut(object, &companion_key, len)[at] = value.companion.unwrap_or(Value::Null);
    }
    tidy(object, key);
}

/// Replaces non-repeating element `old_key` (value and `_` companion) by
/// `value` stored as `new_key`, at the same position in the object so the
/// document keeps its element order.
fn replace_property(
    object: &mut Map<String, Value>,
    old_key: &str,
    new_key: &str,
    value: NewValue,
) {
    let old_companion = format!("_{old_key}");
    let new_companion = format!("_{new_key}");
    let mut pending = Some(value);
    let mut rebuilt = Map::new();
    let mut place = |out: &mut Map<String, Value>| {
        if let Some(value) = pending.take() {
            if let Some(json) = value.json {
                out.insert(new_key.to_owned(), json);
            }
            if let Some(companion) = value.companion {
                out.insert(new_companion.clone(), companion);
            }
        }
    };
    for (k, v) in std::mem::take(object) {
        if k == old_key || k == old_companion {
            place(&mut rebuilt);
        } else if k != new_key && k != new_companion {
            rebuilt.insert(k, v);
        }
    }
    place(&mut rebuilt);
    *object = rebuilt;
}

/// Restores FHIR JSON's rules for element `key` of `object` after a change:
/// no empty objects or arrays, `key` and `_key` arrays of equal length, and
/// no position where both are null.
fn tidy(object: &mut Map<String, Value>, key: &str) {
    let companion_key = format!("_{key}");
    // Take both halves out (leaving null in place, so key order is kept).
    let mut json = object.get_mut(key).map(std::mem::take);
    let mut companion = object.get_mut(&companion_key).map(std::mem::take);
    for half in [&mut json, &mut companion].into_iter().flatten() {
        blank_empty_objects(half);
    }
    match (&mut json, &mut companion) {
        (Some(Value::Array(values)), Some(Value::Array(companions))) => {
            let len = values.len().max(companions.len());
            values.resize(len, Value::Null);
            companions.resize(len, Value::Null);
            let keep: Vec<bool> = values
                .iter()
                .zip(companions.iter())
                .map(|(v, c)| !v.is_null() || !c.is_null())
                .collect();
            let mut k = keep.iter();
            values.retain(|_| *k.next().unwrap_or(&true));
            let mut k = keep.iter();
            companions.retain(|_| *k.next().unwrap_or(&true));
            if companions.iter().all(Value::is_null) {
                companion = None;
            }
        }
        (Some(Value::Array(items)), None) | (None, Some(Value::Array(items))) => {
            items.retain(|v| !v.is_null());
        }
        _ => {}
    }
    let is_blank = |v: &Value| match v {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    let json = json.filter(|v| !is_blank(v));
    let companion = companion.filter(|v| !is_blank(v));
    object.retain(|k, _| {
        (k != key || json.is_some()) && (k != &companion_key || companion.is_some())
    });
    if let Some(json) = json {
        object.insert(key.to_owned(), json);
    }
    if let Some(companion) = companion {
        object.insert(companion_key, companion);
    }
}

/// An empty object (an element left without content) becomes null, also
/// as an array item.
fn blank_empty_objects(value: &mut Value) {
    let is_empty_object = |v: &Value| v.as_object().is_some_and(Map::is_empty);
    match value {
        Value::Array(items) => {
            for item in items.iter_mut().filter(|i| is_empty_object(i)) {
                *item = Value::Null;
            }
        }
        v if is_empty_object(v) => *v = Value::Null,
        _ => {}
    }
}

/// After a deletion inside the object at `at`, removes that object if it was
/// left empty, and so on upwards: an element without content is not allowed
/// in FHIR (deleting `Patient.contact[0].name.text` from a name with only a
/// text removes the name).
fn prune(doc: &mut Value, at: &Pointer) {
    let mut at = at.clone();
    while at
        .get(doc)
        .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        let Some((owner, key)) = at.owner() else {
            return; // the resource itself
        };
        let key = key.strip_prefix('_').unwrap_or(key).to_owned();
        let Some(Value::Object(object)) = owner.get_mut(doc) else {
            return;
        };
        tidy(object, &key);
        at = owner;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMIT: usize = 1 << 20;

    fn apply(resource: &mut Value, parameters: &Value) -> Result<(), FhirPathPatchError> {
        super::apply(resource, parameters, LIMIT)
    }

    #[test]
    fn a_patch_cannot_grow_the_resource_past_the_limit() {
        let big = json!([{"name": "value", "valueString": "x".repeat(LIMIT / 3)}]);
        let add = |n| {
            (0..n)
                .map(|_| {
                    op(
                        "insert",
                        "Patient.name.given",
                        json!([big[0].clone(), {"name": "index", "valueInteger": 0}]),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut p = patient();
        assert!(apply(&mut p, &patch(add(2))).is_ok());
        let original = patient();
        let mut p = original.clone();
        let err = apply(&mut p, &patch(add(4))).unwrap_err();
        assert_eq!(err, FhirPathPatchError::TooLarge { limit: LIMIT });
        assert_eq!(p, original);
    }

    #[test]
    fn deeply_nested_paths_are_invalid_documents_not_crashes() {
        let path = format!("{}Patient.active{}", "(".repeat(3000), ")".repeat(3000));
        let mut p = patient();
        let err = apply(
            &mut p,
            &patch(vec![op(
                "replace",
                &path,
                json!([{"name": "value", "valueBoolean": true}]),
            )]),
        )
        .unwrap_err();
        assert!(err.is_invalid_document(), "{err}");
        let nested = format!("{}Patient.active{}", "(".repeat(100), ")".repeat(100));
        let err = apply(
            &mut p,
            &patch(vec![op(
                "replace",
                &nested,
                json!([{"name": "value", "valueBoolean": true}]),
            )]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nest deeper"), "{err}");
    }

    fn op(kind: &str, path: &str, extra: Value) -> Value {
        let mut parts = vec![
            json!({"name": "type", "valueCode": kind}),
            json!({"name": "path", "valueString": path}),
        ];
        parts.extend(extra.as_array().cloned().unwrap_or_default());
        json!({"name": "operation", "part": parts})
    }

    fn patch(ops: Vec<Value>) -> Value {
        json!({"resourceType": "Parameters", "parameter": ops})
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p",
            "name": [{"family": "Chalmers", "given": ["Peter", "James"], "_given": [{"id": "a"}, null]}],
            "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "http://x", "valueDateTime": "1974-12-25T14:35:45-05:00"}]}
        })
    }

    #[test]
    fn primitive_lists_keep_companions_aligned() {
        let mut p = patient();
        apply(
            &mut p,
            &patch(vec![op("delete", "Patient.name.given[0]", json!([]))]),
        )
        .unwrap();
        assert_eq!(
            p["name"][0],
            json!({"family": "Chalmers", "given": ["James"]})
        );

        let mut p = patient();
        let value = json!([{"name": "index", "valueInteger": 1},
                           {"name": "value", "valueString": "J.", "_valueString": {"id": "b"}}]);
        apply(
            &mut p,
            &patch(vec![op("insert", "Patient.name.given", value)]),
        )
        .unwrap();
        assert_eq!(p["name"][0]["given"], json!(["Peter", "J.", "James"]));
        assert_eq!(
            p["name"][0]["_given"],
            json!([{"id": "a"}, {"id": "b"}, null])
        );

        let mut p = patient();
        let moves = json!([{"name": "source", "valueInteger": 0}, {"name": "destination", "valueInteger": 1}]);
        apply(
            &mut p,
            &patch(vec![op("move", "Patient.name.given", moves)]),
        )
        .unwrap();
        assert_eq!(p["name"][0]["given"], json!(["James", "Peter"]));
        assert_eq!(p["name"][0]["_given"], json!([null, {"id": "a"}]));
    }

    #[test]
    fn primitive_extensions() {
        // Deleting the only extension removes the `_` companion.
        let mut p = patient();
        apply(
            &mut p,
            &patch(vec![op("delete", "Patient.birthDate.extension", json!([]))]),
        )
        .unwrap();
        assert!(p.get("_birthDate").is_none());
        assert_eq!(p["birthDate"], "1974-12-25");

        // Adding an extension to a primitive goes into its companion.
        let mut p = patient();
        let ext = json!([{"name": "name", "valueString": "extension"},
                         {"name": "value", "part": [{"name": "url", "valueUri": "http://y"},
                                                    {"name": "value", "valueCode": "z"}]}]);
        apply(
            &mut p,
            &patch(vec![op("add", "Patient.name.given[1]", ext)]),
        )
        .unwrap();
        assert_eq!(
            p["name"][0]["_given"],
            json!([{"id": "a"}, {"extension": [{"url": "http://y", "valueCode": "z"}]}])
        );

        // Replacing a primitive replaces its extensions too.
        let mut p = patient();
        let value = json!([{"name": "value", "valueDate": "1975-01-01"}]);
        apply(
            &mut p,
            &patch(vec![op("replace", "Patient.birthDate", value)]),
        )
        .unwrap();
        assert_eq!(p["birthDate"], "1975-01-01");
        assert!(p.get("_birthDate").is_none());
    }

    #[test]
    fn choice_elements_change_name_with_type() {
        let mut obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                             "valueString": "high", "note": [{"text": "n"}]});
        let value = json!([{"name": "value", "valueQuantity": {"value": 5, "unit": "mg"}}]);
        apply(
            &mut obs,
            &patch(vec![op("replace", "Observation.value", value)]),
        )
        .unwrap();
        let keys: Vec<_> = obs.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["resourceType", "status", "code", "valueQuantity", "note"]
        );

        let value = json!([{"name": "value", "valueAddress": {"city": "x"}}]);
        let err = apply(
            &mut obs,
            &patch(vec![op("replace", "Observation.value", value)]),
        )
        .unwrap_err();
        assert!(!err.is_invalid_document());
        assert!(
            err.to_string()
                .contains("value[x] cannot be of type Address"),
            "{err}"
        );

        let mut obs =
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "t"}});
        let add = json!([{"name": "name", "valueString": "effective"}, {"name": "value", "valueDateTime": "2020"}]);
        apply(&mut obs, &patch(vec![op("add", "Observation", add)])).unwrap();
        assert_eq!(obs["effectiveDateTime"], "2020");
        let comp = json!([{"name": "name", "valueString": "component"},
                          {"name": "value", "part": [{"name": "code", "valueCodeableConcept": {"text": "c"}},
                                                     {"name": "value", "valueInteger": 3}]}]);
        apply(&mut obs, &patch(vec![op("add", "Observation", comp)])).unwrap();
        assert_eq!(
            obs["component"],
            json!([{"code": {"text": "c"}, "valueInteger": 3}])
        );
    }

    #[test]
    fn parts_follow_cardinality() {
        let mut p = json!({"resourceType": "Patient"});
        let contact = json!([{"name": "name", "valueString": "contact"},
                             {"name": "value", "part": [
                                 {"name": "telecom", "valueContactPoint": {"value": "1"}},
                                 {"name": "gender", "valueCode": "male"}]}]);
        apply(&mut p, &patch(vec![op("add", "Patient", contact)])).unwrap();
        assert_eq!(
            p["contact"],
            json!([{"telecom": [{"value": "1"}], "gender": "male"}])
        );

        let dup = json!([{"name": "name", "valueString": "contact"},
                         {"name": "value", "part": [
                             {"name": "gender", "valueCode": "male"},
                             {"name": "gender", "valueCode": "female"}]}]);
        let err = apply(&mut p, &patch(vec![op("add", "Patient", dup)])).unwrap_err();
        assert!(
            err.to_string().contains("gender is given more than once"),
            "{err}"
        );
    }

    #[test]
    fn insert_into_missing_list() {
        let mut p = json!({"resourceType": "Patient", "name": [{"family": "A"}]});
        let value =
            json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueString": "B"}]);
        apply(
            &mut p,
            &patch(vec![op("insert", "Patient.name[0].given", value.clone())]),
        )
        .unwrap();
        assert_eq!(p["name"][0]["given"], json!(["B"]));
        let bad =
            json!([{"name": "index", "valueInteger": 1}, {"name": "value", "valueString": "B"}]);
        let err = apply(
            &mut p,
            &patch(vec![op("insert", "Patient.identifier", bad)]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("index 1 is out of range"), "{err}");
        // A non-repeating element is not a list.
        let err = apply(
            &mut p,
            &patch(vec![op("insert", "Patient.birthDate", value)]),
        )
        .unwrap_err();
        assert!(matches!(err, FhirPathPatchError::NoMatch { .. }), "{err}");
    }

    #[test]
    fn match_count_rules() {
        let mut p = patient();
        let before = p.clone();
        let value = json!([{"name": "value", "valueString": "X"}]);
        let err = apply(
            &mut p,
            &patch(vec![op("replace", "Patient.name.given", value.clone())]),
        )
        .unwrap_err();
        assert!(
            matches!(err, FhirPathPatchError::MultipleMatches { count: 2, .. }),
            "{err}"
        );
        let err = apply(
            &mut p,
            &patch(vec![op("replace", "Patient.address.city", value)]),
        )
        .unwrap_err();
        assert!(matches!(err, FhirPathPatchError::NoMatch { .. }), "{err}");
        assert!(!err.is_invalid_document());
        let err = apply(
            &mut p,
            &patch(vec![op("delete", "Patient.name.given", json!([]))]),
        )
        .unwrap_err();
        assert!(
            matches!(err, FhirPathPatchError::MultipleMatches { .. }),
            "{err}"
        );
        // Deleting nothing is fine.
        apply(
            &mut p,
            &patch(vec![op("delete", "Patient.address", json!([]))]),
        )
        .unwrap();
        // A failing operation leaves the resource as it was, earlier ones included.
        let ops = vec![
            op("delete", "Patient.birthDate", json!([])),
            op("delete", "Patient.name.given", json!([])),
        ];
        assert!(apply(&mut p, &patch(ops)).is_err());
        assert_eq!(p, before);
        // A subset of a list cannot be reordered.
        let moves = json!([{"name": "source", "valueInteger": 0}, {"name": "destination", "valueInteger": 0}]);
        let err = apply(
            &mut p,
            &patch(vec![op("move", "Patient.name.given.first()", moves)]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("must select the whole list"),
            "{err}"
        );
        // Adding a second value to a non-repeating element.
        let add = json!([{"name": "name", "valueString": "birthDate"}, {"name": "value", "valueDate": "2000"}]);
        let err = apply(&mut p, &patch(vec![op("add", "Patient", add)])).unwrap_err();
        assert!(err.to_string().contains("already has a value"), "{err}");
        // A choice element holds one value, whatever its type.
        let mut p = json!({"resourceType": "Patient", "deceasedBoolean": false});
        let add = json!([{"name": "name", "valueString": "deceased"}, {"name": "value", "valueDateTime": "2020"}]);
        let err = apply(&mut p, &patch(vec![op("add", "Patient", add)])).unwrap_err();
        assert!(
            err.to_string()
                .contains("deceasedDateTime already has a value"),
            "{err}"
        );
    }

    #[test]
    fn invalid_documents() {
        let mut p = patient();
        let cases = [
            (
                json!({"resourceType": "Patient"}),
                "expected a Parameters resource",
            ),
            (
                patch(vec![json!({"name": "op", "part": []})]),
                "must be \"operation\"",
            ),
            (
                patch(vec![op("frobnicate", "Patient", json!([]))]),
                "unknown operation type \"frobnicate\"",
            ),
            (
                patch(vec![op("add", "Patient", json!([]))]),
                "requires a \"name\" part",
            ),
            (
                patch(vec![op(
                    "replace",
                    "Patient.name.",
                    json!([{"name": "value", "valueString": "x"}]),
                )]),
                "invalid path",
            ),
            (
                patch(vec![op(
                    "replace",
                    "Patient.name",
                    json!([{"name": "value"}]),
                )]),
                "no value",
            ),
            (
                patch(vec![op(
                    "move",
                    "Patient.name",
                    json!([{"name": "source", "valueInteger": -1}, {"name": "destination", "valueInteger": 0}]),
                )]),
                "non-negative integer",
            ),
            (
                patch(vec![op(
                    "delete",
                    "Patient.name",
                    json!([{"name": "colour", "valueString": "x"}]),
                )]),
                "unknown part",
            ),
            (
                patch(vec![op(
                    "delete",
                    "Patient.name",
                    json!([{"name": "path", "valueString": "Patient"}]),
                )]),
                "more than once",
            ),
        ];
        for (doc, message) in cases {
            let err = apply(&mut p, &doc).unwrap_err();
            assert!(err.is_invalid_document(), "{err}");
            assert!(
                err.to_string().contains(message),
                "{err} should mention {message}"
            );
        }
        // The document is checked before anything is applied.
        let ops = vec![
            op("delete", "Patient.name.given", json!([])),
            op("bogus", "Patient", json!([])),
        ];
        assert!(apply(&mut p, &patch(ops))
            .unwrap_err()
            .is_invalid_document());
    }
}
