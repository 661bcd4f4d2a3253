//! Search: a parsed query ([`SearchQuery`], built by [`parse`]) and its
//! execution against the index tables ([`crate::Tx::search`]).

mod everything;
mod keyset;
mod parse;
mod plan;
mod referrers;
mod run;
mod sql;

pub use everything::Everything;
pub use keyset::{pages_by_cursor, Cursor, KeysetPage};
pub use parse::{parse, ParseOptions};
pub(crate) use run::Count;
pub use run::{SearchPage, SearchResults};
pub(crate) use sql::filter as filter_sql;
pub(crate) use sql::{groups_clause, Checked};

use hearth_model::datetime::Range;
use hearth_model::search_params::ParamType;

/// A search request, ready to run.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The resource types searched: one for `GET [type]?…`, the `_type`
    /// list (or every type) for a system search.
    pub types: Vec<String>,
    /// All must hold (AND).
    pub conditions: Vec<Condition>,
    pub sort: Vec<SortKey>,
    pub count: i64,
    pub total: Total,
    /// `_summary=count`: only the total is wanted.
    pub count_only: bool,
    pub includes: Vec<Include>,
    pub revincludes: Vec<Include>,
    /// The server's own base URL: absolute references under it are local.
    pub base: Option<String>,
    /// Parameters that were not understood, with the reason (lenient
    /// handling ignores them and says so).
    pub ignored: Vec<(String, String)>,
    /// The most resources `_include` and `_revinclude` add to a page;
    /// `None` for [`DEFAULT_MAX_INCLUDES`].
    pub max_includes: Option<usize>,
    /// What `_include` and `_revinclude` may add under the request's
    /// grant (set by `access.rs`; `None`: anything).
    pub(crate) included_grant: Option<Vec<GrantGroup>>,
}

/// The most resources `_include` and `_revinclude` add to one page unless
/// the query says otherwise.
pub const DEFAULT_MAX_INCLUDES: usize = 1000;

impl SearchQuery {
    /// Whether a condition uses the full-text index (`_text`, `_content`).
    pub(crate) fn uses_full_text(&self) -> bool {
        fn uses(c: &Condition) -> bool {
            match c {
                Condition::Text(_) => true,
                Condition::Chain { targets, .. } => targets.iter().any(|(_, c)| uses(c)),
                Condition::Has { inner, .. } => uses(inner),
                Condition::All(conditions) | Condition::Any(conditions) => {
                    conditions.iter().any(uses)
                }
                Condition::Values { .. } | Condition::Missing { .. } => false,
                Condition::Granted(groups) => groups
                    .iter()
                    .flat_map(|g| g.limits.iter().flatten())
                    .any(|l| l.conditions.iter().any(uses)),
            }
        }
        self.conditions.iter().any(uses)
    }
}

/// One condition on the resources searched.
#[derive(Debug, Clone)]
pub enum Condition {
    /// A parameter matches one of the values (OR).
    Values {
        /// Type-qualified parameters, as the index stores them
        /// (`Patient.family`): one per type searched that has the code.
        params: Vec<String>,
        kind: ParamType,
        modifier: Modifier,
        values: Vec<SearchValue>,
        /// For references given as a bare id: the single target type.
        only_target: Option<String>,
    },
    /// `:missing=true|false`.
    Missing {
        params: Vec<String>,
        kind: ParamType,
        missing: bool,
    },
    /// A chained parameter: the reference `param` points to a resource of
    /// one of the types that satisfies that type's condition.
    Chain {
        params: Vec<String>,
        targets: Vec<(String, Condition)>,
    },
    /// `_has:Source:param:…`: some `source_type` resource refers to this one
    /// through `param` and satisfies `inner`.
    Has {
        source_type: String,
        param: String,
        inner: Box<Condition>,
    },
    /// Conditions that must all hold (`_has` over several values, a
    /// derived composite's parts).
    All(Vec<Condition>),
    /// Conditions of which one must hold (a derived composite's values).
    Any(Vec<Condition>),
    /// `_text` (column `narrative`) or `_content` (column `content`).
    Text(crate::full_text::TextQuery),
    /// What the request's grant lets it see (added by `access.rs`, never
    /// parsed): a resource whose type is in one of the groups and, for a
    /// limited group, is within one of its limits. No group, nothing.
    Granted(Vec<GrantGroup>),
}

/// Resource types a grant treats alike.
#[derive(Debug, Clone)]
pub struct GrantGroup {
    pub types: Vec<String>,
    /// `None`: every resource of these types.
    pub limits: Option<Vec<GrantLimit>>,
}

/// One limit of a grant: resources of a patient (their current version
/// belongs to them: `version_patients`) that meet every condition.
#[derive(Debug, Clone)]
pub struct GrantLimit {
    pub patient: Option<String>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modifier {
    None,
    Exact,
    Contains,
    Text,
    Not,
    Above,
    Below,
    OfType,
    Identifier,
    /// `:[type]` on a reference.
    Type(String),
}

/// The comparison prefix of a number, date or quantity value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// One value of a parameter, parsed for its type.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    /// Normalised for default and `:contains`, as written for `:exact`.
    String {
        normalised: String,
        exact: String,
    },
    /// `system|code`: `system` is `None` when not given, `Some(None)` for
    /// `|code` (no system).
    Token {
        system: Option<Option<String>>,
        code: Option<String>,
    },
    /// `:of-type`: identifier type system, type code, identifier value.
    OfType {
        system: String,
        code: String,
        value: String,
    },
    Reference {
        resource_type: Option<String>,
        id: Option<String>,
        version: Option<String>,
        url: Option<String>,
    },
    Identifier {
        system: Option<String>,
        value: Option<String>,
    },
    Date {
        prefix: Prefix,
        range: Range,
    },
    /// A number with the half-open range its precision implies.
    Number {
        prefix: Prefix,
        value: f64,
        lo: f64,
        hi: f64,
    },
    Quantity {
        prefix: Prefix,
        value: f64,
        lo: f64,
        hi: f64,
        system: Option<String>,
        code: Option<String>,
    },
    Uri(String),
    /// One value per component, each with its component's type.
    Composite(Vec<(ParamType, SearchValue)>),
}

#[derive(Debug, Clone)]
pub struct SortKey {
    /// `_id`, `_lastUpdated`, or type-qualified parameters.
    pub params: Vec<String>,
    pub kind: ParamType,
    pub descending: bool,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Total {
    None,
    Estimate,
    /// Counted, however many the matches (and paged by snapshot).
    Accurate,
    /// No `_total`: counted, except for broad searches sorted by a date,
    /// whose pages are read through the sort index and which give a total
    /// only when the matches fit in one page (see `keyset`).
    #[default]
    Unasked,
}

/// `_include` / `_revinclude`: `Source:param[:Target]`, or every reference
/// parameter of `Source` with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub source_type: String,
    /// Type-qualified reference parameters (`Observation.subject`).
    pub params: Vec<String>,
    pub target_type: Option<String>,
    pub iterate: bool,
}

/// Why a search request is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SearchError {
    pub message: String,
    /// The parameter at fault.
    pub param: String,
    /// The search is well-formed but asks more than one search may (see
    /// [`limits`]), rather than being wrong.
    pub too_complex: bool,
}

/// What one search may ask for: each bound keeps the statement a search
/// becomes within what the database plans quickly (SQLite refuses
/// expressions nested 1,000 deep), and parsing itself from multiplying
/// a chain's targets without end.
pub mod limits {
    /// Parameters in one request, of every kind.
    pub const MAX_PARAMETERS: usize = 100;
    /// Values of all the request's parameters together (`a,b,c` is three).
    pub const MAX_VALUES: usize = 1000;
    /// Links of one chain: `subject.organization.name` has two.
    pub const MAX_CHAIN_LINKS: usize = 4;
    /// `_has` inside `_has`: `_has:A:p:_has:B:q:r` nests two.
    pub const MAX_HAS_NESTING: usize = 4;
    /// Conditions a request's parameters become, counting one per value and
    /// per target type each chain link may name.
    pub const MAX_CONDITIONS: usize = 2000;
}
