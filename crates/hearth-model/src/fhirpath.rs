//! A small FHIRPath evaluator over resources held as FHIR JSON.
//!
//! It covers what FHIRPath Patch paths and the R4 search parameter
//! expressions need: navigation from the resource type (`Patient.name`),
//! member access that flattens arrays, indexers (`name[0]`), choice elements
//! (`Observation.value` finds `valueQuantity`; the JSON name
//! `Observation.valueQuantity` is accepted too, as many servers do), the
//! functions `where`, `exists`, `empty`, `first`, `last`, `not`, `ofType`,
//! `as`, `is`, `extension(url)` and `resolve()`, the operators `=`, `!=`,
//! `and`, `or`, `|`, `is` and `as`, `%resource`, and string, number and
//! boolean literals. Anything else is rejected when the expression is parsed,
//! so a client learns up front that its path is not supported rather than
//! getting a silently wrong answer.
//!
//! Evaluation returns the selected elements *with their location* in the
//! document (see [`Location`]), because FHIRPath Patch changes the document
//! in place at the places a path selects. Search index extraction
//! ([`crate::index`]) uses the same evaluator and reads values from the
//! selected elements; new operators and functions slot into [`Expr`], the
//! parser's precedence levels and `Evaluator::eval`.
//!
//! Element definitions come from [`crate::structure`]: they say which JSON
//! properties a choice element may use, what type each element has (for
//! `ofType`) and where its children are defined. A primitive element is
//! represented as in FHIR JSON by two properties, `name` for the value and
//! `_name` for its `id` and `extension`; an [`Element`] carries both halves.

use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::limits;
use crate::structure::{self, ElementInfo};

/// A FHIRPath expression that could not be parsed (or uses a feature this
/// evaluator does not support).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} (at character {position})")]
pub struct ParseError {
    /// 0-based character offset in the expression.
    pub position: usize,
    pub message: String,
}

/// An expression that parsed but cannot be evaluated on this resource, e.g.
/// an indexer that is not an integer or `and` applied to several values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// A parsed FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(SystemValue),
    /// `%resource` (and `%rootResource`): the resource the expression was
    /// evaluated on, whatever the current focus.
    Resource,
    /// `{}`, the empty collection.
    Empty,
    /// `$this`: the item currently being looked at (inside `where`) or the
    /// evaluation context.
    This,
    /// A name without a base. At the start of a path a type name that matches
    /// the context (`Patient` in `Patient.name` on a Patient) selects the
    /// context itself; otherwise it is a member of the context
    /// (`use` in `where(use = 'official')`).
    Identifier(String),
    /// `base.name`
    Member(Box<Expr>, String),
    /// `base[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `base.function(...)`, or `function(...)` applied to the context.
    Call(Option<Box<Expr>>, Function),
    Binary(Box<Expr>, BinaryOp, Box<Expr>),
}

/// The supported functions, with their (already parsed) arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Function {
    Where(Box<Expr>),
    Exists(Option<Box<Expr>>),
    Empty,
    First,
    Last,
    Not,
    /// The type name, without a `FHIR.` namespace.
    OfType(String),
    /// `as(T)` and the operator `x as T`. Like `ofType`, it filters rather
    /// than failing on several items: R4 search expressions such as
    /// `Observation.component.value as Quantity` rely on that, as every
    /// server's engine allows.
    As(String),
    /// `is(T)` and the operator `x is T`.
    Is(String),
    /// `extension(url)`: the extensions with that url.
    Extension(String),
    /// `resolve()`. Nothing outside the resource is fetched: a reference
    /// resolves to a contained resource (`#id`) or to a placeholder that
    /// only knows its type, taken from the reference text (`Patient/1`, an
    /// absolute URL ending in `Patient/1`). That is what `resolve() is
    /// Patient` in search expressions needs.
    Resolve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Equal,
    NotEqual,
    And,
    Or,
    /// `|`: both collections, without duplicates.
    Union,
}

/// A value of one of FHIRPath's system types, as produced by literals and
/// operators, or read from a FHIR primitive for comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemValue {
    Boolean(bool),
    String(String),
    Integer(i64),
    /// Kept as text so no precision is lost; compared numerically.
    Decimal(String),
}

impl SystemValue {
    /// Reads a FHIR JSON primitive; `None` for objects, arrays and null.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(Self::Boolean(*b)),
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Number(n) => Some(match n.as_i64() {
                Some(i) => Self::Integer(i),
                None => Self::Decimal(n.to_string()),
            }),
            _ => None,
        }
    }

    /// FHIRPath `=` between two single values. Dates and times are compared
    /// as their text, which is exact for values of equal precision.
    fn equals(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Boolean(a), Self::Boolean(b)) => a == b,
            (Self::String(a), Self::String(b)) => a == b,
            (Self::Integer(a), Self::Integer(b)) => a == b,
            (a, b) => match (a.numeric_text(), b.numeric_text()) {
                (Some(a), Some(b)) => numbers_equal(&a, &b),
                _ => false,
            },
        }
    }

    fn numeric_text(&self) -> Option<String> {
        match self {
            Self::Integer(i) => Some(i.to_string()),
            Self::Decimal(d) => Some(d.clone()),
            _ => None,
        }
    }

    /// The FHIRPath system type name, for `ofType`.
    fn type_name(&self) -> &'static str {
        match self {
            Self::Boolean(_) => "Boolean",
            Self::String(_) => "String",
            Self::Integer(_) => "Integer",
            Self::Decimal(_) => "Decimal",
        }
    }
}

/// Whether a value of FHIR type `actual` is of type `wanted` for `is`, `as`
/// and `ofType`: the same type, a subtype (`Age` is a `Quantity`, every
/// resource a `Resource`), or the FHIRPath system type a FHIR primitive maps
/// to (`dateTime` is a `System.DateTime`, written `DateTime` in some R4
/// search expressions).
fn type_matches(actual: &str, wanted: &str) -> bool {
    let wanted = wanted.strip_prefix("System.").unwrap_or(wanted);
    actual == wanted
        || match wanted {
            "Resource" => structure::is_resource_type(actual),
            "DomainResource" => {
                structure::is_resource_type(actual)
                    && !matches!(actual, "Bundle" | "Binary" | "Parameters")
            }
            "Quantity" => matches!(
                actual,
                "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity"
            ),
            "String" => matches!(
                actual,
                "string"
                    | "code"
                    | "id"
                    | "markdown"
                    | "uri"
                    | "url"
                    | "canonical"
                    | "oid"
                    | "uuid"
                    | "base64Binary"
            ),
            "Boolean" => actual == "boolean",
            "Integer" => matches!(actual, "integer" | "positiveInt" | "unsignedInt"),
            "Decimal" => actual == "decimal",
            "DateTime" => matches!(actual, "dateTime" | "instant"),
            "Date" => actual == "date",
            "Time" => actual == "time",
            _ => false,
        }
}

/// Compares two decimal numbers given as JSON number text, exactly when
/// possible: `1.50` equals `1.5`, and `-0` equals `0`.
fn numbers_equal(a: &str, b: &str) -> bool {
    match (canonical_decimal(a), canonical_decimal(b)) {
        (Some(a), Some(b)) => a == b,
        // Exponent notation: FHIR JSON does not use it for decimals in
        // practice, so a floating-point comparison is good enough.
        _ => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
    }
}

/// `[-]digits[.digits]` without redundant zeros; `None` for anything else.
fn canonical_decimal(text: &str) -> Option<String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::new();
    if negative && (int != "0" || !frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Locations

/// One step from a JSON value to a value inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path from the resource root to a JSON value inside it. Evaluation
/// borrows the document immutably, so locations are recorded as pointers that
/// the caller follows (mutably) once the evaluation's borrow has ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pointer(Vec<Step>);

impl Pointer {
    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    /// This pointer extended by one step.
    pub fn join(&self, step: Step) -> Self {
        let mut steps = self.0.clone();
        steps.push(step);
        Self(steps)
    }

    /// For a pointer to a value held in an object property (directly or as
    /// an array item), the pointer to that object and the property name.
    /// `None` for the root.
    pub fn owner(&self) -> Option<(Pointer, &str)> {
        let k = self.0.iter().rposition(|s| matches!(s, Step::Key(_)))?;
        match &self.0[k] {
            Step::Key(key) => Some((Pointer(self.0[..k].to_vec()), key.as_str())),
            Step::Index(_) => None,
        }
    }

    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.0.iter().try_fold(root, |v, step| match step {
            Step::Key(k) => v.get(k.as_str()),
            Step::Index(i) => v.get(*i),
        })
    }

    pub fn get_mut<'v>(&self, root: &'v mut Value) -> Option<&'v mut Value> {
        self.0.iter().try_fold(root, |v, step| match step {
            Step::Key(k) => v.get_mut(k.as_str()),
            Step::Index(i) => v.get_mut(*i),
        })
    }
}

impl fmt::Display for Pointer {
    /// JSON Pointer syntax (RFC 6901), for diagnostics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.0 {
            match step {
                Step::Key(k) => write!(f, "/{}", k.replace('~', "~0").replace('/', "~1"))?,
                Step::Index(i) => write!(f, "/{i}")?,
            }
        }
        Ok(())
    }
}

/// Where an element lives: the JSON property `key` of the object at
/// `parent`, and the position in that property's array when the element
/// repeats. A primitive's value is at `key` and its id and extensions at
/// `_key` (same position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub parent: Pointer,
    /// The JSON property name as in the document (`valueQuantity` for
    /// `Observation.value`).
    pub key: String,
    pub index: Option<usize>,
}

impl Location {
    /// Pointer to the element's value (`key`).
    pub fn value_pointer(&self) -> Pointer {
        self.with_key(self.key.clone())
    }

    /// Pointer to a primitive's id/extension object (`_key`).
    pub fn companion_pointer(&self) -> Pointer {
        self.with_key(format!("_{}", self.key))
    }

    fn with_key(&self, key: String) -> Pointer {
        let p = self.parent.join(Step::Key(key));
        match self.index {
            Some(i) => p.join(Step::Index(i)),
            None => p,
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation results

/// An item of a FHIRPath collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A node of the resource.
    Element(Element<'a>),
    /// A value computed by the expression (a literal, a comparison result).
    Value(SystemValue),
}

impl Item<'_> {
    /// The item as a system value, if it is (or holds) a primitive.
    fn as_system(&self) -> Option<SystemValue> {
        match self {
            Item::Value(v) => Some(v.clone()),
            Item::Element(e) => e.value.and_then(SystemValue::from_json),
        }
    }
}

/// A node of the resource: a resource, a complex value or a primitive.
#[derive(Debug, Clone)]
pub struct Element<'a> {
    /// The JSON value; `None` for a primitive that only has an id or
    /// extensions (`"_birthDate": {...}` without `"birthDate"`).
    value: Option<&'a Value>,
    /// A primitive's `_name` object (id and extensions).
    companion: Option<&'a Value>,
    /// FHIR type (`HumanName`, `string`, `BackboneElement`, the resource
    /// type for resources); `None` when the structure table does not know.
    type_name: Option<&'a str>,
    /// Where the children are defined, for [`structure::child`]: a type
    /// name or a backbone element path. `None` means "unknown": children are
    /// then found by plain JSON property name.
    context: Option<&'a str>,
    /// The element's definition and, for a choice element, the chosen type.
    definition: Option<(&'static ElementInfo, Option<&'static str>)>,
    /// `None` for the resource the expression was evaluated on.
    location: Option<Location>,
}

impl<'a> Element<'a> {
    /// The resource an expression is evaluated on.
    pub fn root(resource: &'a Value) -> Self {
        let resource_type = resource.get("resourceType").and_then(Value::as_str);
        Element {
            value: Some(resource),
            companion: None,
            type_name: resource_type,
            context: resource_type,
            definition: None,
            location: None,
        }
    }

    pub fn value(&self) -> Option<&'a Value> {
        self.value
    }

    pub fn companion(&self) -> Option<&'a Value> {
        self.companion
    }

    pub fn type_name(&self) -> Option<&'a str> {
        self.type_name
    }

    /// Context for looking up this element's children in [`structure`].
    pub fn context(&self) -> Option<&'a str> {
        self.context
    }

    pub fn definition(&self) -> Option<(&'static ElementInfo, Option<&'static str>)> {
        self.definition
    }

    /// `None` for the resource itself.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// True for a primitive (its JSON value is not an object).
    pub fn is_primitive(&self) -> bool {
        match self.value {
            Some(v) => !v.is_object(),
            None => self.companion.is_some(),
        }
    }

    /// Pointer to the element's JSON value.
    pub fn value_pointer(&self) -> Pointer {
        self.location
            .as_ref()
            .map_or_else(Pointer::default, Location::value_pointer)
    }

    /// Appends the children called `name` (a FHIRPath element name, so
    /// `value` for `valueQuantity`) to `out`, one per array entry.
    /// `locate`: whether the children get their [`Location`] (a patch needs
    /// them; selecting values does not, and is much cheaper without).
    fn push_children(&self, name: &str, locate: bool, out: &mut Vec<Item<'a>>) {
        // `_x` and `resourceType` are JSON syntax, not element names.
        if name.starts_with('_') || name == "resourceType" {
            return;
        }
        // A primitive's only children, id and extension, live in `_name`.
        let (object, parent) = match (self.value, self.companion) {
            (Some(Value::Object(obj)), _) => (obj, locate.then(|| self.value_pointer())),
            (_, Some(Value::Object(obj))) => match (&self.location, locate) {
                (Some(loc), true) => (obj, Some(loc.companion_pointer())),
                (None, true) => return,
                (_, false) => (obj, None),
            },
            _ => return,
        };
        let parent = parent.as_ref();
        let Some(context) = self.context else {
            // No definitions: plain JSON navigation.
            push_property(object, parent, name, None, out);
            return;
        };
        match structure::child(context, name) {
            Some(def) => push_property(object, parent, name, Some(def), out),
            None => {
                // A choice element: the JSON name is `name` plus a type.
                for key in object.keys() {
                    let is_candidate = key.len() > name.len()
                        && key.starts_with(name)
                        && key.as_bytes()[name.len()].is_ascii_uppercase();
                    if !is_candidate {
                        continue;
                    }
                    if let Some(def @ (info, Some(_))) = structure::child(context, key) {
                        if info.name() == name {
                            push_property(object, parent, key, Some(def), out);
                        }
                    }
                }
            }
        }
    }
}

/// Appends the element(s) stored in JSON property `key` of `object` (at
/// `parent`, when locations are wanted): one per array position, pairing
/// `key` with `_key`.
fn push_property<'a>(
    object: &'a Map<String, Value>,
    parent: Option<&Pointer>,
    key: &str,
    definition: Option<(&'static ElementInfo, Option<&'static str>)>,
    out: &mut Vec<Item<'a>>,
) {
    let values = object.get(key);
    let companions = companion_of(object, key);
    if values.is_none() && companions.is_none() {
        return;
    }
    let (type_name, context) = match definition {
        Some((info, chosen)) => (
            chosen.or(match info.types.as_slice() {
                [t] => Some(t.as_str()),
                _ => None,
            }),
            info.child_context(chosen),
        ),
        None => (None, None),
    };
    let repeats =
        matches!(values, Some(Value::Array(_))) || matches!(companions, Some(Value::Array(_)));
    let values = as_slice(values);
    let companions = as_slice(companions);
    for i in 0..values.len().max(companions.len()) {
        let value = values.get(i).filter(|v| !v.is_null());
        let companion = companions.get(i).filter(|v| !v.is_null());
        if value.is_none() && companion.is_none() {
            continue;
        }
        // A contained or bundled resource is typed by its `resourceType`.
        let resource_type = value
            .and_then(|v| v.get("resourceType"))
            .and_then(Value::as_str);
        out.push(Item::Element(Element {
            value,
            companion,
            type_name: resource_type.or(type_name),
            context: resource_type.or(context),
            definition,
            location: parent.map(|parent| Location {
                parent: parent.clone(),
                key: key.to_owned(),
                index: repeats.then_some(i),
            }),
        }));
    }
}

/// `object["_" + key]`, without building the name on the heap.
fn companion_of<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut name = [0u8; 64];
    if key.len() >= name.len() {
        return object.get(&format!("_{key}"));
    }
    name[0] = b'_';
    name[1..=key.len()].copy_from_slice(key.as_bytes());
    object.get(std::str::from_utf8(&name[..=key.len()]).ok()?)
}

/// An array's items, or a single value as a one-item slice.
fn as_slice(value: Option<&Value>) -> &[Value] {
    match value {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(v) => std::slice::from_ref(v),
    }
}

// ---------------------------------------------------------------------------
// Evaluation

/// Evaluates `expr` with `resource` as the context; every selected element
/// knows its [`Location`].
pub fn evaluate<'a>(expr: &Expr, resource: &'a Value) -> Result<Vec<Item<'a>>, EvalError> {
    evaluate_on(expr, resource, &[Item::Element(Element::root(resource))])
}

/// [`evaluate`] for the values alone: the selected elements have no
/// [`Location`], which saves building a path for each (search indexing).
pub fn select<'a>(expr: &Expr, resource: &'a Value) -> Result<Vec<Item<'a>>, EvalError> {
    select_on(expr, resource, &[Item::Element(Element::root(resource))])
}

/// [`evaluate_on`] for the values alone, as [`select`].
pub fn select_on<'a>(
    expr: &Expr,
    resource: &'a Value,
    focus: &[Item<'a>],
) -> Result<Vec<Item<'a>>, EvalError> {
    Evaluator {
        resource,
        locate: false,
    }
    .eval(expr, focus)
}

/// Evaluates `expr` with `focus` (items of `resource`, e.g. from an earlier
/// evaluation) as the context, as composite search parameters do for their
/// components; `%resource` is still `resource`.
pub fn evaluate_on<'a>(
    expr: &Expr,
    resource: &'a Value,
    focus: &[Item<'a>],
) -> Result<Vec<Item<'a>>, EvalError> {
    Evaluator {
        resource,
        locate: true,
    }
    .eval(expr, focus)
}

/// Walks the expression tree, holding the environment FHIRPath defines
/// (`%resource`; `%context` and friends would go here too).
struct Evaluator<'a> {
    resource: &'a Value,
    /// Whether selected elements get their location.
    locate: bool,
}

impl<'a> Evaluator<'a> {
    /// Evaluates `expr` with `focus` as the input collection (`$this`).
    fn eval(&self, expr: &Expr, focus: &[Item<'a>]) -> Result<Vec<Item<'a>>, EvalError> {
        Ok(match expr {
            Expr::Literal(v) => vec![Item::Value(v.clone())],
            Expr::Resource => vec![Item::Element(Element::root(self.resource))],
            Expr::Empty => Vec::new(),
            Expr::This => focus.to_vec(),
            Expr::Identifier(name) => {
                let mut out = Vec::new();
                for item in focus {
                    if let Item::Element(e) = item {
                        // Type names start with a capital, element names never do.
                        if name.starts_with(|c: char| c.is_ascii_uppercase())
                            && e.type_name.is_some_and(|t| type_matches(t, name))
                        {
                            out.push(item.clone());
                        } else {
                            e.push_children(name, self.locate, &mut out);
                        }
                    }
                }
                out
            }
            Expr::Member(base, name) => {
                let mut out = Vec::new();
                for item in self.eval(base, focus)? {
                    if let Item::Element(e) = item {
                        e.push_children(name, self.locate, &mut out);
                    }
                }
                out
            }
            Expr::Index(base, index) => {
                let items = self.eval(base, focus)?;
                let index = self.eval(index, focus)?;
                match index.as_slice() {
                    [] => Vec::new(),
                    [i] => match i.as_system() {
                        Some(SystemValue::Integer(i)) => usize::try_from(i)
                            .ok()
                            .and_then(|i| items.into_iter().nth(i))
                            .into_iter()
                            .collect(),
                        _ => return Err(EvalError("an indexer must be an integer".into())),
                    },
                    _ => return Err(EvalError("an indexer must be a single integer".into())),
                }
            }
            Expr::Call(base, function) => {
                let input = match base {
                    Some(base) => self.eval(base, focus)?,
                    None => focus.to_vec(),
                };
                self.call(function, input)?
            }
            Expr::Binary(left, op, right) => {
                let left = self.eval(left, focus)?;
                let right = self.eval(right, focus)?;
                binary(*op, &left, &right)?
            }
        })
    }

    fn call(&self, function: &Function, input: Vec<Item<'a>>) -> Result<Vec<Item<'a>>, EvalError> {
        let boolean = |b: bool| vec![Item::Value(SystemValue::Boolean(b))];
        Ok(match function {
            Function::Where(criteria) => self.filter(criteria, input)?,
            Function::Exists(None) => boolean(!input.is_empty()),
            Function::Exists(Some(criteria)) => boolean(!self.filter(criteria, input)?.is_empty()),
            Function::Empty => boolean(input.is_empty()),
            Function::First => input.into_iter().take(1).collect(),
            Function::Last => input.into_iter().last().into_iter().collect(),
            Function::Not => match singleton_boolean(&input)? {
                Some(b) => boolean(!b),
                None => Vec::new(),
            },
            Function::OfType(wanted) | Function::As(wanted) => input
                .into_iter()
                .filter(|item| item_is(item, wanted))
                .collect(),
            Function::Is(wanted) => match input.as_slice() {
                [] => Vec::new(),
                [item] => boolean(item_is(item, wanted)),
                _ => return Err(EvalError("'is' needs a single item".into())),
            },
            Function::Extension(url) => {
                let mut extensions = Vec::new();
                for item in &input {
                    if let Item::Element(e) = item {
                        e.push_children("extension", self.locate, &mut extensions);
                    }
                }
                extensions
                    .into_iter()
                    .filter(|ext| match ext {
                        Item::Element(e) => {
                            e.value.and_then(|v| v.get("url")).and_then(Value::as_str)
                                == Some(url.as_str())
                        }
                        Item::Value(_) => false,
                    })
                    .collect()
            }
            Function::Resolve => input
                .iter()
                .filter_map(|item| match item {
                    Item::Element(e) => self.resolve(e),
                    Item::Value(_) => None,
                })
                .collect(),
        })
    }

    /// `resolve()` on one Reference, canonical or uri element; see
    /// [`Function::Resolve`].
    fn resolve(&self, element: &Element<'a>) -> Option<Item<'a>> {
        let text = match element.value? {
            Value::String(s) => s.as_str(),
            v => v.get("reference")?.as_str()?,
        };
        if let Some(id) = text.strip_prefix('#') {
            let contained = self.resource.get("contained")?.as_array()?;
            let found = contained
                .iter()
                .find(|r| r.get("id").and_then(Value::as_str) == Some(id))?;
            return Some(Item::Element(Element::root(found)));
        }
        let type_name = reference_type(text)?;
        Some(Item::Element(Element {
            value: None,
            companion: None,
            type_name: Some(type_name),
            context: None,
            definition: None,
            location: None,
        }))
    }

    /// The items of `input` for which `criteria` is true.
    fn filter(&self, criteria: &Expr, input: Vec<Item<'a>>) -> Result<Vec<Item<'a>>, EvalError> {
        let mut out = Vec::new();
        for item in input {
            let result = self.eval(criteria, std::slice::from_ref(&item))?;
            if singleton_boolean(&result)? == Some(true) {
                out.push(item);
            }
        }
        Ok(out)
    }
}

fn item_is(item: &Item<'_>, wanted: &str) -> bool {
    match item {
        Item::Element(e) => e.type_name.is_some_and(|t| type_matches(t, wanted)),
        Item::Value(v) => wanted.strip_prefix("System.").unwrap_or(wanted) == v.type_name(),
    }
}

/// The resource type a literal reference names: `Patient` for `Patient/1`,
/// `Patient/1/_history/2` or `http://example.org/fhir/Patient/1`. `None`
/// for anything else (`urn:uuid:…`, a bare id, an unknown type).
pub fn reference_type(reference: &str) -> Option<&str> {
    let path = reference.split(['?', '#']).next().unwrap_or(reference);
    let segments: Vec<&str> = path.split('/').collect();
    // Type/id, optionally followed by _history/version.
    let n = match segments.as_slice() {
        [.., "_history", _] => segments.len() - 4,
        _ => segments.len().checked_sub(2)?,
    };
    let (type_name, id) = (segments.get(n)?, segments.get(n + 1)?);
    (structure::is_resource_type(type_name) && !id.is_empty()).then_some(type_name)
}

/// FHIRPath's singleton evaluation of collections where a boolean is
/// expected: empty is "unknown", one boolean is itself, any other single
/// item counts as true, and more than one item is an error.
fn singleton_boolean(items: &[Item<'_>]) -> Result<Option<bool>, EvalError> {
    match items {
        [] => Ok(None),
        [item] => Ok(Some(match item.as_system() {
            Some(SystemValue::Boolean(b)) => b,
            _ => true,
        })),
        _ => Err(EvalError(format!(
            "expected a single boolean, found {} items",
            items.len()
        ))),
    }
}

fn binary<'a>(
    op: BinaryOp,
    left: &[Item<'a>],
    right: &[Item<'a>],
) -> Result<Vec<Item<'a>>, EvalError> {
    let result = match op {
        BinaryOp::Equal | BinaryOp::NotEqual => {
            // Comparing with an empty collection gives empty, not false.
            if left.is_empty() || right.is_empty() {
                return Ok(Vec::new());
            }
            let equal =
                left.len() == right.len() && left.iter().zip(right).all(|(a, b)| items_equal(a, b));
            Some(equal == (op == BinaryOp::Equal))
        }
        // Three-valued logic: an empty operand is "unknown".
        BinaryOp::And => match (singleton_boolean(left)?, singleton_boolean(right)?) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        BinaryOp::Or => match (singleton_boolean(left)?, singleton_boolean(right)?) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        BinaryOp::Union => {
            let mut out: Vec<Item<'a>> = Vec::with_capacity(left.len() + right.len());
            for item in left.iter().chain(right) {
                if !out.iter().any(|o| items_equal(o, item)) {
                    out.push(item.clone());
                }
            }
            return Ok(out);
        }
    };
    Ok(result
        .map(|b| Item::Value(SystemValue::Boolean(b)))
        .into_iter()
        .collect())
}

fn items_equal(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a.as_system(), b.as_system()) {
        (Some(a), Some(b)) => a.equals(&b),
        (None, None) => match (a, b) {
            // Complex values are equal when all their children are; JSON
            // object equality ignores property order.
            (Item::Element(a), Item::Element(b)) => {
                a.value == b.value && a.companion == b.companion
            }
            _ => false,
        },
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A name, plain or `delimited`.
    Identifier(String),
    String(String),
    Number(String),
    /// `$this` and friends, without the `$`.
    Variable(String),
    Symbol(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Identifier(s) => write!(f, "'{s}'"),
            Token::String(s) => write!(f, "string '{s}'"),
            Token::Number(s) => write!(f, "number {s}"),
            Token::Variable(s) if s.starts_with('%') => write!(f, "'{s}'"),
            Token::Variable(s) => write!(f, "'${s}'"),
            Token::Symbol(s) => write!(f, "'{s}'"),
        }
    }
}

/// Multi-character symbols first, so `!=` is not read as `!`.
const SYMBOLS: &[&str] = &[
    "!=", "!~", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",", "=", "~", "<", ">", "|", "+",
    "-", "*", "/", "&",
];

fn tokenize(src: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let err = |position: usize, message: String| ParseError { position, message };
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            if i >= chars.len() {
                return Err(err(start, "unterminated comment".into()));
            }
            i += 2;
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((Token::Identifier(chars[start..i].iter().collect()), start));
        } else if c == '`' || c == '\'' {
            let (text, end) = quoted(&chars, i)?;
            i = end;
            let token = if c == '`' {
                Token::Identifier(text)
            } else {
                Token::String(text)
            };
            tokens.push((token, start));
        } else if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            // A '.' belongs to the number only when digits follow
            // (`1.5`, but `1.toString()` would be a call).
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            tokens.push((Token::Number(chars[start..i].iter().collect()), start));
        } else if c == '$' {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            tokens.push((Token::Variable(chars[start + 1..i].iter().collect()), start));
        } else if c == '%' {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let name: String = chars[start + 1..i].iter().collect();
            if !matches!(name.as_str(), "resource" | "rootResource") {
                return Err(err(
                    start,
                    format!("environment variable %{name} is not supported"),
                ));
            }
            tokens.push((Token::Variable("%resource".into()), start));
        } else if c == '@' {
            return Err(err(
                start,
                "date and time literals are not supported".into(),
            ));
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| {
            s.chars()
                .enumerate()
                .all(|(k, sc)| chars.get(i + k) == Some(&sc))
        }) {
            i += symbol.chars().count();
            tokens.push((Token::Symbol(symbol), start));
        } else {
            return Err(err(start, format!("unexpected character '{c}'")));
        }
    }
    Ok(tokens)
}

/// Reads a quoted string or delimited identifier starting at `open`,
/// returning its unescaped text and the index after the closing quote.
fn quoted(chars: &[char], open: usize) -> Result<(String, usize), ParseError> {
    let quote = chars[open];
    let mut text = String::new();
    let mut i = open + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(ParseError {
                position: open,
                message: "unterminated string".into(),
            });
        };
        i += 1;
        if c == quote {
            return Ok((text, i));
        }
        if c != '\\' {
            text.push(c);
            continue;
        }
        let escaped = chars.get(i).copied();
        i += 1;
        match escaped {
            Some('\'') => text.push('\''),
            Some('"') => text.push('"'),
            Some('`') => text.push('`'),
            Some('\\') => text.push('\\'),
            Some('/') => text.push('/'),
            Some('f') => text.push('\u{c}'),
            Some('n') => text.push('\n'),
            Some('r') => text.push('\r'),
            Some('t') => text.push('\t'),
            Some('u') => {
                let hex: String = chars.get(i..i + 4).unwrap_or_default().iter().collect();
                let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                match c {
                    Some(c) if hex.len() == 4 => text.push(c),
                    _ => {
                        return Err(ParseError {
                            position: i - 2,
                            message: "invalid \\u escape".into(),
                        })
                    }
                }
                i += 4;
            }
            _ => {
                return Err(ParseError {
                    position: i - 2,
                    message: "invalid escape sequence".into(),
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Parser

/// Parses a FHIRPath expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    // Each token adds at most one node to the tree, so this bounds the
    // depth of every recursive walk of it (evaluation, dropping it).
    if tokens.len() > limits::MAX_FHIRPATH_TOKENS {
        return Err(ParseError {
            position: 0,
            message: format!(
                "the expression has more than {} tokens",
                limits::MAX_FHIRPATH_TOKENS
            ),
        });
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: src.chars().count(),
        nesting: 0,
    };
    let expr = parser.expression()?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) => Err(parser.error(format!("unexpected {token}"))),
    }
}

/// Recursive descent over FHIRPath's precedence levels, lowest first:
/// `or`, `and`, equality, then invocation (`.`, `[]`) on terms. Operators
/// FHIRPath has but this evaluator lacks are rejected with a clear message.
struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    /// Character count of the source, the position reported at its end.
    end: usize,
    /// Expressions being parsed inside each other (parentheses, brackets,
    /// function arguments): the parser's recursion.
    nesting: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(_, p)| *p)
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            position: self.position(),
            message,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        token
    }

    fn at_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol)
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Identifier(s)) if s == keyword)
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), ParseError> {
        if self.at_symbol(symbol) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{symbol}'")))
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        match self.peek() {
            Some(token) => self.error(format!("expected {expected}, found {token}")),
            None => self.error(format!(
                "expected {expected}, found the end of the expression"
            )),
        }
    }

    fn expression(&mut self) -> Result<Expr, ParseError> {
        if self.nesting >= limits::MAX_FHIRPATH_NESTING {
            return Err(self.error(format!(
                "parentheses, brackets and function arguments nest deeper than {} levels",
                limits::MAX_FHIRPATH_NESTING
            )));
        }
        self.nesting += 1;
        let expr = self.or();
        self.nesting -= 1;
        expr
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.at_keyword("or") {
            self.pos += 1;
            left = Expr::Binary(Box::new(left), BinaryOp::Or, Box::new(self.and()?));
        }
        if self.at_keyword("xor") || self.at_keyword("implies") {
            return Err(self.error(format!(
                "operator {} is not supported",
                self.peek().expect("peeked")
            )));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.equality()?;
        while self.at_keyword("and") {
            self.pos += 1;
            left = Expr::Binary(Box::new(left), BinaryOp::And, Box::new(self.equality()?));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.union()?;
        loop {
            let op = match self.peek() {
                Some(Token::Symbol("=")) => BinaryOp::Equal,
                Some(Token::Symbol("!=")) => BinaryOp::NotEqual,
                Some(Token::Symbol(s))
                    if matches!(
                        *s,
                        "~" | "!~" | "<" | ">" | "<=" | ">=" | "+" | "-" | "*" | "/" | "&"
                    ) =>
                {
                    return Err(self.error(format!("operator '{s}' is not supported")));
                }
                Some(Token::Identifier(k))
                    if matches!(k.as_str(), "in" | "contains" | "div" | "mod") =>
                {
                    return Err(self.error(format!("operator '{k}' is not supported")));
                }
                _ => return Ok(left),
            };
            self.pos += 1;
            left = Expr::Binary(Box::new(left), op, Box::new(self.union()?));
        }
    }

    fn union(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.type_expression()?;
        while self.at_symbol("|") {
            self.pos += 1;
            let right = self.type_expression()?;
            left = Expr::Binary(Box::new(left), BinaryOp::Union, Box::new(right));
        }
        Ok(left)
    }

    /// `x is T` and `x as T`, which bind tighter than `|`; they are the
    /// same as the functions `is(T)` and `as(T)`.
    fn type_expression(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.invocation()?;
        loop {
            let function = if self.at_keyword("is") {
                self.pos += 1;
                Function::Is(self.type_specifier()?)
            } else if self.at_keyword("as") {
                self.pos += 1;
                Function::As(self.type_specifier()?)
            } else {
                return Ok(expr);
            };
            expr = Expr::Call(Some(Box::new(expr)), function);
        }
    }

    /// A term followed by any number of `.member`, `.function()` and `[index]`.
    fn invocation(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.term()?;
        loop {
            if self.at_symbol(".") {
                self.pos += 1;
                let name = match self.next() {
                    Some(Token::Identifier(name)) => name,
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("a name after '.'"));
                    }
                };
                expr = if self.at_symbol("(") {
                    Expr::Call(Some(Box::new(expr)), self.function(&name)?)
                } else {
                    Expr::Member(Box::new(expr), name)
                };
            } else if self.at_symbol("[") {
                self.pos += 1;
                let index = self.expression()?;
                self.expect_symbol("]")?;
                expr = Expr::Index(Box::new(expr), Box::new(index));
            } else {
                return Ok(expr);
            }
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        let token = self.next();
        Ok(match token {
            Some(Token::String(s)) => Expr::Literal(SystemValue::String(s)),
            Some(Token::Number(n)) => Expr::Literal(match n.parse::<i64>() {
                Ok(i) if !n.contains('.') => SystemValue::Integer(i),
                _ => SystemValue::Decimal(n),
            }),
            Some(Token::Identifier(name)) => match name.as_str() {
                "true" => Expr::Literal(SystemValue::Boolean(true)),
                "false" => Expr::Literal(SystemValue::Boolean(false)),
                _ if self.at_symbol("(") => Expr::Call(None, self.function(&name)?),
                _ => Expr::Identifier(name),
            },
            Some(Token::Variable(v)) if v == "this" => Expr::This,
            Some(Token::Variable(v)) if v == "%resource" => Expr::Resource,
            Some(Token::Variable(v)) => {
                self.pos = start;
                return Err(self.error(format!("variable ${v} is not supported")));
            }
            Some(Token::Symbol("(")) => {
                let inner = self.expression()?;
                self.expect_symbol(")")?;
                inner
            }
            Some(Token::Symbol("{")) => {
                self.expect_symbol("}")?;
                Expr::Empty
            }
            _ => {
                self.pos = start;
                return Err(self.unexpected("a path, a literal or '('"));
            }
        })
    }

    /// Parses the parenthesised arguments of function `name`; the current
    /// token is the `(`.
    fn function(&mut self, name: &str) -> Result<Function, ParseError> {
        let position = self.position();
        self.expect_symbol("(")?;
        let function = match name {
            // ofType takes a type specifier, not an expression.
            "ofType" => Function::OfType(self.type_specifier()?),
            "as" => Function::As(self.type_specifier()?),
            "is" => Function::Is(self.type_specifier()?),
            "extension" => match self.next() {
                Some(Token::String(url)) => Function::Extension(url),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("an extension url string"));
                }
            },
            "resolve" => Function::Resolve,
            "where" => Function::Where(Box::new(self.expression()?)),
            "exists" if !self.at_symbol(")") => {
                Function::Exists(Some(Box::new(self.expression()?)))
            }
            "exists" => Function::Exists(None),
            "empty" => Function::Empty,
            "first" => Function::First,
            "last" => Function::Last,
            "not" => Function::Not,
            _ => {
                return Err(ParseError {
                    position,
                    message: format!("function '{name}' is not supported"),
                })
            }
        };
        if !self.at_symbol(")") {
            return Err(self.unexpected(&format!("')' to close {name}(")));
        }
        self.pos += 1;
        Ok(function)
    }

    /// `Quantity`, `FHIR.Quantity` or `System.String`; the `FHIR` namespace
    /// is dropped because element types are FHIR types.
    fn type_specifier(&mut self) -> Result<String, ParseError> {
        let Some(Token::Identifier(first)) = self.peek().cloned() else {
            return Err(self.unexpected("a type name"));
        };
        self.pos += 1;
        if !self.at_symbol(".") {
            return Ok(first);
        }
        self.pos += 1;
        match self.next() {
            Some(Token::Identifier(name)) if first == "FHIR" => Ok(name),
            Some(Token::Identifier(name)) => Ok(format!("{first}.{name}")),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("a type name"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The JSON values an expression selects (computed values as JSON too).
    fn values(expr: &str, resource: &Value) -> Vec<Value> {
        let expr = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        evaluate(&expr, resource)
            .unwrap()
            .into_iter()
            .map(|item| match item {
                Item::Element(e) => e.value().cloned().unwrap_or(Value::Null),
                Item::Value(SystemValue::Boolean(b)) => json!(b),
                Item::Value(SystemValue::String(s)) => json!(s),
                Item::Value(SystemValue::Integer(i)) => json!(i),
                Item::Value(SystemValue::Decimal(d)) => json!(d),
            })
            .collect()
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "identifier": [
                {"use": "official", "system": "urn:a", "value": "1"},
                {"use": "usual", "system": "urn:b", "value": "2"}
            ],
            "name": [
                {"family": "Chalmers", "given": ["Peter", "James"], "_given": [null, {"id": "g2"}]},
                {"given": ["Jim"]}
            ],
            "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "http://x", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
            "deceasedBoolean": false,
            "contained": [{"resourceType": "Organization", "name": "Acme"}]
        })
    }

    #[test]
    fn navigation_flattens_arrays() {
        let p = patient();
        assert_eq!(
            values("Patient.name.given", &p),
            [json!("Peter"), json!("James"), json!("Jim")]
        );
        assert_eq!(values("name.given", &p), values("Patient.name.given", &p));
        assert_eq!(values("Patient.name[0].given[1]", &p), [json!("James")]);
        assert_eq!(values("Patient.name[5]", &p), Vec::<Value>::new());
        assert_eq!(
            values("Patient.name.first().family", &p),
            [json!("Chalmers")]
        );
        assert_eq!(values("Patient.name.last().given", &p), [json!("Jim")]);
        assert!(values("Observation.code", &p).is_empty());
        assert_eq!(values("Patient.contained.name", &p), [json!("Acme")]);
        assert_eq!(
            values("Patient.contained.ofType(Organization).name", &p),
            [json!("Acme")]
        );
    }

    #[test]
    fn where_and_logic() {
        let p = patient();
        assert_eq!(
            values("Patient.identifier.where(use = 'official').value", &p),
            [json!("1")]
        );
        assert_eq!(
            values("Patient.identifier.where(use != 'official').value", &p),
            [json!("2")]
        );
        assert_eq!(
            values(
                "Patient.identifier.where(use = 'usual' or system = 'urn:a').value",
                &p
            ),
            [json!("1"), json!("2")]
        );
        assert_eq!(
            values(
                "Patient.identifier.where(use = 'usual' and system = 'urn:a')",
                &p
            ),
            Vec::<Value>::new()
        );
        assert_eq!(
            values("Patient.identifier.where(period.exists())", &p),
            Vec::<Value>::new()
        );
        assert_eq!(
            values("Patient.name.where(family.empty()).given", &p),
            [json!("Jim")]
        );
        assert_eq!(
            values("Patient.name.exists(given = 'Jim')", &p),
            [json!(true)]
        );
        assert_eq!(values("Patient.active.exists().not()", &p), [json!(true)]);
        assert_eq!(values("Patient.deceased = false", &p), [json!(true)]);
        // Comparison with nothing is empty, not false.
        assert!(values("Patient.active = true", &p).is_empty());
    }

    #[test]
    fn choice_elements_and_types() {
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                         "valueQuantity": {"value": 1.50, "unit": "mg"}});
        assert_eq!(values("Observation.value.unit", &obs), [json!("mg")]);
        assert_eq!(
            values("Observation.value.ofType(Quantity).unit", &obs),
            [json!("mg")]
        );
        assert!(values("Observation.value.ofType(string)", &obs).is_empty());
        // Not FHIRPath proper, but unambiguous and common in patches.
        assert_eq!(
            values("Observation.valueQuantity.unit", &obs),
            [json!("mg")]
        );
        assert!(values("Observation.valueString", &obs).is_empty());
        assert_eq!(values("Observation.value.value = 1.5", &obs), [json!(true)]);
        assert_eq!(
            values("Observation.value.where(value = 1.500).exists()", &obs),
            [json!(true)]
        );
        let expr = parse("Observation.value").unwrap();
        let items = evaluate(&expr, &obs).unwrap();
        let Item::Element(e) = &items[0] else {
            panic!()
        };
        assert_eq!(e.type_name(), Some("Quantity"));
        let loc = e.location().unwrap();
        assert_eq!((loc.key.as_str(), loc.index), ("valueQuantity", None));
        assert_eq!(e.definition().unwrap().0.path, "Observation.value[x]");
    }

    #[test]
    fn primitives_pair_value_and_extensions() {
        let p = patient();
        let expr = parse("Patient.birthDate.extension.url").unwrap();
        assert_eq!(
            values("Patient.birthDate.extension.url", &p),
            [json!("http://x")]
        );
        let items = evaluate(&expr, &p).unwrap();
        let Item::Element(e) = &items[0] else {
            panic!()
        };
        assert_eq!(
            e.location().unwrap().parent.to_string(),
            "/_birthDate/extension/0"
        );
        assert_eq!(values("Patient.name.given.id", &p), [json!("g2")]);
        let expr = parse("Patient.name[0].given[1]").unwrap();
        let items = evaluate(&expr, &p).unwrap();
        let Item::Element(e) = &items[0] else {
            panic!()
        };
        assert!(e.is_primitive());
        assert_eq!(e.companion(), Some(&json!({"id": "g2"})));
        assert_eq!(e.value_pointer().to_string(), "/name/0/given/1");
    }

    #[test]
    fn union_removes_duplicates() {
        let p = patient();
        assert_eq!(
            values("Patient.name.family | Patient.name.given.first()", &p),
            [json!("Chalmers"), json!("Peter")]
        );
        assert_eq!(
            values("Patient.name.given | Patient.name.given", &p),
            [json!("Peter"), json!("James"), json!("Jim")]
        );
        // `|` binds tighter than `=`, `as` tighter than `|`.
        assert_eq!(
            values("Patient.gender | Patient.birthDate = '1974-12-25'", &p),
            [json!(true)]
        );
        assert_eq!(
            values("Patient.deceased as boolean | Patient.birthDate", &p),
            [json!(false), json!("1974-12-25")]
        );
    }

    #[test]
    fn as_is_and_subtypes() {
        let obs = json!({"resourceType": "Observation", "valueQuantity": {"value": 1},
                         "effectiveDateTime": "2020-01-01",
                         "component": [{"valueQuantity": {"value": 2}}, {"valueString": "x"},
                                       {"valueQuantity": {"value": 3}}]});
        assert_eq!(
            values("(Observation.value as Quantity).value", &obs),
            [json!(1)]
        );
        assert_eq!(
            values("Observation.value.as(Quantity).value", &obs),
            [json!(1)]
        );
        assert!(values("Observation.value as string", &obs).is_empty());
        // Filters on several items, as search expressions need.
        assert_eq!(
            values("(Observation.component.value as Quantity).value", &obs),
            [json!(2), json!(3)]
        );
        assert_eq!(values("Observation.value is Quantity", &obs), [json!(true)]);
        assert_eq!(
            values("Observation.value.is(FHIR.string)", &obs),
            [json!(false)]
        );
        assert!(values("Observation.issued is instant", &obs).is_empty());
        // System types and FHIR subtypes.
        assert_eq!(
            values("Observation.effective.as(DateTime)", &obs),
            [json!("2020-01-01")]
        );
        let condition = json!({"resourceType": "Condition", "onsetAge": {"value": 40}});
        assert_eq!(
            values("Condition.onset.as(Age).value", &condition),
            [json!(40)]
        );
        assert_eq!(
            values("Condition.onset.ofType(Quantity).value", &condition),
            [json!(40)]
        );
        assert_eq!(values("Resource.onset.value", &condition), [json!(40)]);
        assert_eq!(
            values("DomainResource.onset.value", &condition),
            [json!(40)]
        );
        assert!(values("Bundle.id", &condition).is_empty());
    }

    #[test]
    fn resolve_knows_the_referenced_type() {
        let obs = json!({"resourceType": "Observation",
            "contained": [{"resourceType": "Device", "id": "d"}],
            "performer": [{"reference": "Patient/1"}, {"reference": "Practitioner/2/_history/3"},
                          {"reference": "http://x.org/fhir/Patient/4"}, {"reference": "urn:uuid:1"},
                          {"display": "x"}, {"reference": "#d"}]});
        let is = |t: &str| {
            values(
                &format!("Observation.performer.where(resolve() is {t}).reference"),
                &obs,
            )
        };
        assert_eq!(
            is("Patient"),
            [json!("Patient/1"), json!("http://x.org/fhir/Patient/4")]
        );
        assert_eq!(is("Practitioner"), [json!("Practitioner/2/_history/3")]);
        assert_eq!(is("Device"), [json!("#d")]);
        assert_eq!(
            values("Observation.performer.last().resolve().id", &obs),
            [json!("d")]
        );
        assert_eq!(reference_type("Patient"), None);
        assert_eq!(reference_type("Unknown/1"), None);
        assert_eq!(reference_type("a/b/Encounter/e?x=1"), Some("Encounter"));
    }

    #[test]
    fn extension_and_resource_variable() {
        let p = json!({"resourceType": "Patient", "id": "p",
            "extension": [{"url": "http://a", "valueString": "A"}, {"url": "http://b", "valueCode": "B"},
                          {"url": "http://a", "valueString": "A2"}],
            "_birthDate": {"extension": [{"url": "http://t", "valueTime": "10:00:00"}]}});
        assert_eq!(
            values("Patient.extension('http://a').value", &p),
            [json!("A"), json!("A2")]
        );
        assert_eq!(
            values("Patient.extension('http://a').value.first()", &p),
            [json!("A")]
        );
        assert_eq!(
            values("Patient.birthDate.extension('http://t').value", &p),
            [json!("10:00:00")]
        );
        assert!(values("Patient.extension('http://none')", &p).is_empty());
        assert_eq!(
            values(
                "Patient.extension.where(%resource.id = 'p').url.first()",
                &p
            ),
            [json!("http://a")]
        );
        let expr = parse("extension('http://b').value").unwrap();
        let root = [Item::Element(Element::root(&p))];
        let items = evaluate_on(&expr, &p, &root).unwrap();
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn numbers_compare_exactly() {
        assert!(numbers_equal("1.50", "1.5"));
        assert!(numbers_equal("-0.0", "0"));
        assert!(numbers_equal("007", "7"));
        assert!(!numbers_equal("1.05", "1.5"));
        assert!(numbers_equal("1e2", "100"));
    }

    #[test]
    fn parse_errors() {
        for (src, message) in [
            ("Patient.name.", "expected a name after '.'"),
            ("Patient.name[0", "expected ']'"),
            (
                "Patient.name.where(use = 'x'",
                "expected ')' to close where(",
            ),
            (
                "Patient.name ~ Patient.address",
                "operator '~' is not supported",
            ),
            ("Patient.name.count()", "function 'count' is not supported"),
            ("'abc", "unterminated string"),
            ("%context.id", "environment variable %context"),
            ("Patient.first(1)", "expected ')' to close first("),
            ("Patient name", "unexpected 'name'"),
        ] {
            let err = parse(src).unwrap_err();
            assert!(err.message.contains(message), "{src}: {err}");
        }
        assert_eq!(
            parse("Patient.`name`.where(given = 'a\\'b')").unwrap(),
            Expr::Call(
                Some(Box::new(Expr::Member(
                    Box::new(Expr::Identifier("Patient".into())),
                    "name".into()
                ))),
                Function::Where(Box::new(Expr::Binary(
                    Box::new(Expr::Identifier("given".into())),
                    BinaryOp::Equal,
                    Box::new(Expr::Literal(SystemValue::String("a'b".into())))
                )))
            )
        );
    }

    #[test]
    fn deep_or_long_expressions_are_refused_before_they_recurse() {
        let nested = |n: usize| format!("{}Patient.active{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(limits::MAX_FHIRPATH_NESTING - 1)).is_ok());
        let e = parse(&nested(limits::MAX_FHIRPATH_NESTING)).unwrap_err();
        assert!(e.message.contains("nest deeper"), "{e}");
        // The 3,000 parentheses that once overflowed the writer's stack.
        assert!(parse(&nested(3000)).is_err());
        let nested_where = format!("Patient{}{}", ".where(active".repeat(100), ")".repeat(100));
        assert!(parse(&nested_where)
            .unwrap_err()
            .message
            .contains("nest deeper"));
        // Long chains build deep trees without recursing in the parser: the
        // token count bounds them.
        let chain = format!("Patient{}", ".name".repeat(limits::MAX_FHIRPATH_TOKENS));
        assert!(parse(&chain).unwrap_err().message.contains("tokens"));
        let ors = vec!["Patient.active"; 400].join(" or ");
        assert!(parse(&ors).unwrap_err().message.contains("tokens"));
        // The longest of the specification's own expressions parse.
        let unions = vec!["Patient.name.where(use = 'official')"; 30].join(" | ");
        assert!(parse(&unions).is_ok());
        let p = patient();
        let chain = format!("Patient{}", ".name".repeat(400));
        assert!(evaluate(&parse(&chain).unwrap(), &p).unwrap().is_empty());
    }

    #[test]
    fn eval_errors() {
        let p = patient();
        let e = evaluate(&parse("Patient.name['a']").unwrap(), &p).unwrap_err();
        assert!(e.0.contains("integer"));
        let e = evaluate(&parse("Patient.name.given and true").unwrap(), &p).unwrap_err();
        assert!(e.0.contains("single boolean"));
    }
}
