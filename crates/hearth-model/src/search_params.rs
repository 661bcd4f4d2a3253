//! The registry of R4 search parameters, built from the specification's own
//! SearchParameter definitions (`fhir-profiles/search-parameters.json`).
//!
//! A definition may apply to several resource types with one expression
//! (`AllergyIntolerance.patient | CarePlan.subject.where(resolve() is
//! Patient) | …`). The registry holds one [`SearchParam`] per (definition,
//! base type) whose expression is only the branches of that union starting
//! with the base type, so evaluating it on a resource never wanders into
//! another type's paths. Parameters with base `Resource` or `DomainResource`
//! (`_id`, `_lastUpdated`, …) are shared by every type.
//!
//! Every definition ends up [`Support::Supported`] or with the reason it is
//! not, so the CapabilityStatement and the tests can say exactly what search
//! covers.

use foldhash::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde_json::Value;

use crate::fhirpath::{self, BinaryOp, Expr, Function};

const DEFINITIONS: &str = include_str!("../../../fhir-profiles/search-parameters.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamType {
    fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "number" => Self::Number,
            "date" => Self::Date,
            "string" => Self::String,
            "token" => Self::Token,
            "reference" => Self::Reference,
            "composite" => Self::Composite,
            "quantity" => Self::Quantity,
            "uri" => Self::Uri,
            "special" => Self::Special,
            _ => return None,
        })
    }

    /// The FHIR code (`token`, `reference`, …), e.g. for the
    /// CapabilityStatement.
    pub fn code(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Date => "date",
            Self::String => "string",
            Self::Token => "token",
            Self::Reference => "reference",
            Self::Composite => "composite",
            Self::Quantity => "quantity",
            Self::Uri => "uri",
            Self::Special => "special",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Supported,
    Unsupported(String),
}

/// One part of a composite parameter: the parameter it takes its type from
/// and the expression, evaluated on each item the composite's expression
/// selects.
#[derive(Debug, Clone)]
pub struct Component {
    /// Canonical URL of the component's SearchParameter.
    pub definition: String,
    pub param_type: ParamType,
    pub expression: Expr,
}

/// A search parameter as it applies to one resource type.
#[derive(Debug, Clone)]
pub struct SearchParam {
    pub code: String,
    pub url: String,
    /// The base this entry was made for: a resource type, `Resource` or
    /// `DomainResource`.
    pub base: String,
    pub param_type: ParamType,
    pub description: String,
    /// The definition's expression for all its bases, as written.
    pub source_expression: Option<String>,
    /// The branches of the expression for `base`, compiled; `None` when
    /// unsupported.
    pub expression: Option<Expr>,
    pub targets: Vec<String>,
    pub modifiers: Vec<String>,
    pub comparators: Vec<String>,
    pub components: Vec<Component>,
    pub multiple_or: Option<bool>,
    pub multiple_and: Option<bool>,
    pub support: Support,
    /// Defined by a SearchParameter resource stored on this server.
    pub custom: bool,
    /// For a parameter whose expression is the union of other parameters'
    /// of the same base (`combo-code` = `code` | `component-code`): those
    /// parameters' codes. It has no index rows of its own; searches read
    /// theirs.
    pub stored_as: Vec<String>,
    /// For a composite of the resource's own elements whose components are
    /// other parameters of its base (`code-value-quantity` = `code` and
    /// `value-quantity`): those parameters' codes, one per component. Its
    /// values are every pairing of theirs, so it has no index rows of its
    /// own: a resource matches when it has a matching value of each.
    pub derived_from: Vec<String>,
}

impl SearchParam {
    pub fn is_supported(&self) -> bool {
        self.support == Support::Supported
    }
}

struct Registry {
    /// Parameters of every resource type (base `Resource`).
    resource: Vec<SearchParam>,
    /// Parameters of every type except Bundle, Binary and Parameters (base
    /// `DomainResource`).
    domain_resource: Vec<SearchParam>,
    by_type: HashMap<String, Vec<SearchParam>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| load(DEFINITIONS))
}

/// The custom search parameters of one store: SearchParameter resources
/// stored there. Each is indexed from the moment it is defined; it is
/// searchable (and advertised) once a `$reindex` of its type has covered
/// the resources written before it.
#[derive(Debug, Default)]
pub struct CustomParams {
    by_type: HashMap<String, Vec<SearchParam>>,
    ready: HashSet<(String, String)>,
    generation: u64,
}

impl CustomParams {
    /// `ready` lists the (base, code) pairs searches may use.
    pub fn new(params: Vec<SearchParam>, ready: Vec<(String, String)>) -> CustomParams {
        static GENERATION: AtomicU64 = AtomicU64::new(1);
        let mut by_type: HashMap<String, Vec<SearchParam>> = HashMap::default();
        for param in params {
            by_type.entry(param.base.clone()).or_default().push(param);
        }
        CustomParams {
            by_type,
            ready: ready.into_iter().collect(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Unique to this set of parameters (for caches of the
    /// CapabilityStatement); 0 for the empty set.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether searches may use `param` (always, unless it is a custom
    /// parameter still waiting for its `$reindex`).
    pub fn is_searchable(&self, param: &SearchParam) -> bool {
        !param.custom
            || self
                .ready
                .contains(&(param.base.clone(), param.code.clone()))
    }

    fn of_type(&self, resource_type: &str) -> &[SearchParam] {
        self.by_type.get(resource_type).map_or(&[], Vec::as_slice)
    }
}

/// The parameters that apply to `resource_type`: the shared ones first, then
/// the type's own, in definition order, then the custom ones. This is what
/// the index is built from.
pub fn for_type<'a>(
    resource_type: &str,
    custom: &'a CustomParams,
) -> impl Iterator<Item = &'a SearchParam> + 'a {
    let spec = spec_for_type(resource_type).map(|p| -> &'a SearchParam { p });
    spec.chain(custom.of_type(resource_type))
}

/// The specification's parameters of `resource_type`.
pub fn spec_for_type(resource_type: &str) -> impl Iterator<Item = &'static SearchParam> {
    let r = registry();
    let domain = !matches!(resource_type, "Bundle" | "Binary" | "Parameters");
    let own = r.by_type.get(resource_type).map_or(&[][..], Vec::as_slice);
    r.resource
        .iter()
        .chain(r.domain_resource.iter().filter(move |_| domain))
        .chain(own)
}

/// The parameter `code` of `resource_type` that searches may use: one of the
/// specification's, or a custom one whose `$reindex` has completed.
pub fn get<'a>(
    resource_type: &str,
    code: &str,
    custom: &'a CustomParams,
) -> Option<&'a SearchParam> {
    spec_get(resource_type, code).or_else(|| {
        custom
            .of_type(resource_type)
            .iter()
            .find(|p| p.code == code && custom.is_searchable(p))
    })
}

/// The specification's parameter `code` of `resource_type`.
pub fn spec_get(resource_type: &str, code: &str) -> Option<&'static SearchParam> {
    spec_for_type(resource_type).find(|p| p.code == code)
}

/// Compiles a SearchParameter resource into one parameter per base, or
/// says why it cannot be used.
pub fn compile_custom(definition: &Value) -> Result<Vec<SearchParam>, String> {
    let code = definition["code"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or("a SearchParameter needs a code")?;
    let bases = strings(&definition["base"]);
    if bases.is_empty() {
        return Err("a SearchParameter needs at least one base".into());
    }
    let types_by_url: HashMap<&str, ParamType> =
        all().map(|p| (p.url.as_str(), p.param_type)).collect();
    let mut params = Vec::new();
    for base in bases {
        if !crate::structure::is_resource_type(&base) {
            return Err(format!("base '{base}' is not a resource type"));
        }
        if spec_get(&base, code).is_some() {
            return Err(format!("{base} already has the search parameter '{code}'"));
        }
        let mut param = compile(definition, &base, &types_by_url);
        if let Support::Unsupported(reason) = &param.support {
            return Err(format!(
                "search parameter '{code}' cannot be used: {reason}"
            ));
        }
        param.custom = true;
        params.push(param);
    }
    Ok(params)
}

/// Every entry of the specification's registry: one per (definition, base).
pub fn all() -> impl Iterator<Item = &'static SearchParam> {
    let r = registry();
    let mut types: Vec<_> = r.by_type.iter().collect();
    types.sort_by_key(|(name, _)| name.as_str());
    r.resource
        .iter()
        .chain(&r.domain_resource)
        .chain(types.into_iter().flat_map(|(_, params)| params))
}

/// Parses the definitions Bundle. It is part of the build, so a malformed
/// file is a build defect and panics (caught by the unit tests).
fn load(json: &str) -> Registry {
    let bundle: Value = serde_json::from_str(json).expect("search-parameters.json is JSON");
    let definitions: Vec<&Value> = bundle["entry"]
        .as_array()
        .expect("a Bundle with entries")
        .iter()
        .map(|e| &e["resource"])
        .collect();
    // Composite components refer to other definitions by URL.
    let types_by_url: HashMap<&str, ParamType> = definitions
        .iter()
        .filter_map(|d| {
            Some((
                d["url"].as_str()?,
                ParamType::from_code(d["type"].as_str()?)?,
            ))
        })
        .collect();
    let mut registry = Registry {
        resource: Vec::new(),
        domain_resource: Vec::new(),
        by_type: HashMap::default(),
    };
    for definition in definitions {
        for base in strings(&definition["base"]) {
            let param = compile(definition, &base, &types_by_url);
            match base.as_str() {
                "Resource" => registry.resource.push(param),
                "DomainResource" => registry.domain_resource.push(param),
                _ => registry.by_type.entry(base).or_default().push(param),
            }
        }
    }
    for (base, code, parts) in DERIVED_COMPOSITES {
        if let Some(param) = registry
            .by_type
            .get_mut(*base)
            .and_then(|params| params.iter_mut().find(|p| p.code == *code))
        {
            param.derived_from = parts.iter().map(|p| p.to_string()).collect();
        }
    }
    for params in registry.by_type.values_mut() {
        // Narrowest first: a union's parts are then known not to be
        // unions themselves, so they own rows.
        let mut order: Vec<usize> = (0..params.len()).collect();
        order.sort_by_key(|&i| branches_of(&params[i]).len());
        for i in order {
            if let Some(codes) = union_of_others(params, i) {
                params[i].stored_as = codes;
            }
        }
    }
    registry
}

/// Composites whose expression is their base resource and whose components
/// are, element for element, other parameters of that base: every pairing
/// of those parameters' values is one of theirs. `tests/index_examples.rs`
/// checks this on every example. `code-value-string` is not one:
/// `value-string` also holds a CodeableConcept's text.
const DERIVED_COMPOSITES: &[(&str, &str, &[&str])] = &[
    (
        "Observation",
        "code-value-quantity",
        &["code", "value-quantity"],
    ),
    (
        "Observation",
        "code-value-concept",
        &["code", "value-concept"],
    ),
    ("Observation", "code-value-date", &["code", "value-date"]),
];

/// The union branches of a parameter's expression for its base.
fn branches_of(param: &SearchParam) -> Vec<Expr> {
    let mut branches = Vec::new();
    if let Some(expression) = &param.expression {
        union_branches(expression.clone(), &mut branches);
    }
    branches
}

/// The codes of the other parameters of `params` (one base), none a union
/// itself, whose branches together are exactly those of `params[i]`, when
/// there are such. A composite's parts must also have its components (the
/// same types and expressions), so their rows are the rows it would have.
/// Not for references: they are also named by compartments, includes and
/// chains.
fn union_of_others(params: &[SearchParam], i: usize) -> Option<Vec<String>> {
    let param = &params[i];
    let kind = param.param_type;
    if matches!(kind, ParamType::Reference | ParamType::Special) {
        return None;
    }
    let mut left = branches_of(param);
    if left.len() < 2 {
        return None;
    }
    let same_components = |other: &SearchParam| {
        other.components.len() == param.components.len()
            && other
                .components
                .iter()
                .zip(&param.components)
                .all(|(a, b)| a.param_type == b.param_type && a.expression == b.expression)
    };
    let mut others: Vec<(&SearchParam, Vec<Expr>)> = params
        .iter()
        .enumerate()
        .filter(|(j, p)| {
            *j != i
                && p.param_type == kind
                && p.is_supported()
                && p.stored_as.is_empty()
                && same_components(p)
        })
        .map(|(_, p)| (p, branches_of(p)))
        .filter(|(_, b)| !b.is_empty() && b.len() < left.len())
        .collect();
    // The widest first, so one parameter covers what it can.
    others.sort_by_key(|(_, b)| std::cmp::Reverse(b.len()));
    let mut codes = Vec::new();
    for (other, branches) in others {
        if branches.iter().all(|b| left.contains(b)) {
            left.retain(|b| !branches.contains(b));
            codes.push(other.code.clone());
        }
    }
    (left.is_empty() && codes.len() > 1).then_some(codes)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn compile(definition: &Value, base: &str, types_by_url: &HashMap<&str, ParamType>) -> SearchParam {
    let code = text(&definition["code"]);
    let source_expression = definition["expression"].as_str().map(str::to_owned);
    let param_type = ParamType::from_code(definition["type"].as_str().unwrap_or_default());
    let mut param = SearchParam {
        code,
        url: text(&definition["url"]),
        base: base.to_owned(),
        param_type: param_type.unwrap_or(ParamType::Special),
        description: text(&definition["description"]),
        source_expression,
        expression: None,
        targets: strings(&definition["target"]),
        modifiers: strings(&definition["modifier"]),
        comparators: strings(&definition["comparator"]),
        components: Vec::new(),
        multiple_or: definition["multipleOr"].as_bool(),
        multiple_and: definition["multipleAnd"].as_bool(),
        support: Support::Supported,
        custom: false,
        stored_as: Vec::new(),
        derived_from: Vec::new(),
    };
    let support = match (param_type, definition["expression"].as_str()) {
        (None, _) => Err(format!("unknown type {}", definition["type"])),
        (Some(ParamType::Special), _) => Err(special_reason(&param.code)),
        (_, None) => Err(no_expression_reason(&param.code)),
        (Some(param_type), Some(source)) => {
            compile_expression(source, base).and_then(|expression| {
                narrow_targets(&mut param.targets, &expression);
                param.expression = Some(expression);
                if param_type == ParamType::Composite {
                    param.components = compile_components(definition, types_by_url)?;
                }
                Ok(())
            })
        }
    };
    if let Err(reason) = support {
        param.expression = None;
        param.support = Support::Unsupported(reason);
    }
    param
}

fn special_reason(code: &str) -> String {
    match code {
        "near" => "special: distance from a position needs geographic search".into(),
        _ => "special: needs search logic of its own".into(),
    }
}

fn no_expression_reason(code: &str) -> String {
    match code {
        "_text" | "_content" => "no expression: full-text search, served by the text index".into(),
        "_query" => "no expression: named queries are not supported".into(),
        _ => "no expression".into(),
    }
}

/// Parses `source` and keeps the union branches that start with `base` (or
/// with no type at all, which apply to any resource).
fn compile_expression(source: &str, base: &str) -> Result<Expr, String> {
    let expr = fhirpath::parse(source).map_err(|e| format!("expression: {e}"))?;
    let mut branches = Vec::new();
    union_branches(expr, &mut branches);
    branches
        .into_iter()
        .filter(|branch| match leading_type(branch) {
            Some(name) => name == base,
            None => true,
        })
        .reduce(|a, b| Expr::Binary(Box::new(a), BinaryOp::Union, Box::new(b)))
        .ok_or_else(|| format!("expression has no branch for {base}"))
}

/// A definition's targets are for all its bases; when every branch for this
/// base ends in `where(resolve() is X)`, only those X can be referenced
/// (`CarePlan.subject.where(resolve() is Patient)` of `clinical-patient`,
/// whose targets are Patient and Group). That matters for `patient=123`,
/// which needs a single target type.
fn narrow_targets(targets: &mut Vec<String>, expression: &Expr) {
    let mut branches = Vec::new();
    union_branches(expression.clone(), &mut branches);
    let resolved: Option<Vec<String>> = branches.iter().map(resolved_type).collect();
    if let Some(resolved) = resolved {
        targets.retain(|t| resolved.contains(t));
    }
}

/// X in `….where(resolve() is X)`.
fn resolved_type(expr: &Expr) -> Option<String> {
    let Expr::Call(_, Function::Where(criteria)) = expr else {
        return None;
    };
    match criteria.as_ref() {
        Expr::Call(Some(base), Function::Is(type_name))
            if matches!(base.as_ref(), Expr::Call(None, Function::Resolve)) =>
        {
            Some(type_name.clone())
        }
        _ => None,
    }
}

fn union_branches(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::Binary(left, BinaryOp::Union, right) => {
            union_branches(*left, out);
            union_branches(*right, out);
        }
        other => out.push(other),
    }
}

/// The type name a path starts with (`Patient` in `(Patient.deceased as
/// dateTime)`), if it starts with one: type names are capitalised, element
/// names never are.
fn leading_type(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Identifier(name) => name
            .starts_with(|c: char| c.is_ascii_uppercase())
            .then_some(name.as_str()),
        Expr::Member(base, _) | Expr::Index(base, _) | Expr::Call(Some(base), _) => {
            leading_type(base)
        }
        Expr::Binary(left, _, _) => leading_type(left),
        _ => None,
    }
}

fn compile_components(
    definition: &Value,
    types_by_url: &HashMap<&str, ParamType>,
) -> Result<Vec<Component>, String> {
    let components = definition["component"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if components.is_empty() {
        return Err("composite without components".into());
    }
    components
        .iter()
        .map(|c| {
            let url = text(&c["definition"]);
            let param_type = *types_by_url
                .get(url.as_str())
                .ok_or_else(|| format!("component {url} is not a known definition"))?;
            let source = c["expression"].as_str().unwrap_or_default();
            let expression = fhirpath::parse(source)
                .map_err(|e| format!("component expression {source:?}: {e}"))?;
            Ok(Component {
                definition: url,
                param_type,
                expression,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Definitions that are not supported, by id, with the reason. Any change
    /// in what is supported shows up here.
    const UNSUPPORTED: &[(&str, &str)] = &[
        (
            "DomainResource-text",
            "no expression: full-text search, served by the text index",
        ),
        (
            "Resource-content",
            "no expression: full-text search, served by the text index",
        ),
        (
            "Resource-query",
            "no expression: named queries are not supported",
        ),
        (
            "Location-near",
            "special: distance from a position needs geographic search",
        ),
    ];

    #[test]
    fn every_definition_is_supported_or_has_a_reason() {
        let bundle: Value = serde_json::from_str(DEFINITIONS).unwrap();
        let ids: HashMap<&str, &str> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let r = &e["resource"];
                (r["url"].as_str().unwrap(), r["id"].as_str().unwrap())
            })
            .collect();
        assert_eq!(ids.len(), 1375);
        // A definition is supported when it is for every one of its bases.
        let mut by_definition: BTreeMap<&str, Option<String>> = BTreeMap::new();
        for param in all() {
            let id = ids[param.url.as_str()];
            let entry = by_definition.entry(id).or_insert(None);
            if let Support::Unsupported(reason) = &param.support {
                *entry = Some(reason.clone());
            }
        }
        assert_eq!(by_definition.len(), 1375);
        let unsupported: BTreeMap<&str, &str> = by_definition
            .iter()
            .filter_map(|(id, reason)| Some((*id, reason.as_deref()?)))
            .collect();
        let expected: BTreeMap<&str, &str> = UNSUPPORTED.iter().copied().collect();
        assert_eq!(unsupported, expected);
        assert_eq!(by_definition.len() - unsupported.len(), 1371);
    }

    #[test]
    fn shared_expressions_are_split_per_base() {
        let care_plan = spec_get("CarePlan", "patient").unwrap();
        assert_eq!(
            care_plan.expression,
            Some(fhirpath::parse("CarePlan.subject.where(resolve() is Patient)").unwrap())
        );
        assert_eq!(care_plan.targets, ["Patient"]);
        let observation = spec_get("Observation", "patient").unwrap();
        assert_eq!(observation.targets, ["Patient"]);
        let subject = spec_get("Observation", "subject").unwrap();
        assert!(subject.targets.len() > 1);
        let allergy = spec_get("AllergyIntolerance", "patient").unwrap();
        assert_eq!(
            allergy.expression,
            Some(fhirpath::parse("AllergyIntolerance.patient").unwrap())
        );
        // Several branches for the same base stay a union.
        let value = spec_get("Observation", "value-quantity").unwrap();
        assert_eq!(value.param_type, ParamType::Quantity);
        assert_eq!(
            value.expression,
            Some(
                fhirpath::parse(
                    "(Observation.value as Quantity) | (Observation.value as SampledData)"
                )
                .unwrap()
            )
        );
    }

    #[test]
    fn shared_parameters_apply_to_every_type() {
        for resource_type in ["Patient", "Bundle", "Observation"] {
            let id = spec_get(resource_type, "_id").unwrap();
            assert_eq!(id.param_type, ParamType::Token);
            assert!(id.is_supported());
        }
        assert!(spec_get("Patient", "_text").is_some());
        assert!(spec_get("Bundle", "_text").is_none());
        assert!(spec_get("Patient", "code").is_none());
        let codes: Vec<&str> = spec_for_type("Patient").map(|p| p.code.as_str()).collect();
        for code in [
            "_id",
            "_lastUpdated",
            "family",
            "given",
            "birthdate",
            "identifier",
        ] {
            assert!(codes.contains(&code), "{code}");
        }
    }

    #[test]
    fn composites_know_their_components() {
        let p = spec_get("Observation", "code-value-quantity").unwrap();
        assert_eq!(p.param_type, ParamType::Composite);
        let types: Vec<ParamType> = p.components.iter().map(|c| c.param_type).collect();
        assert_eq!(types, [ParamType::Token, ParamType::Quantity]);
        let p = spec_get("MolecularSequence", "chromosome-variant-coordinate").unwrap();
        assert_eq!(p.components.len(), 3);
        assert!(p.is_supported());
    }
}
