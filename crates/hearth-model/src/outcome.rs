//! OperationOutcome: the body of every error response (and of
//! `Prefer: return=OperationOutcome`).

use serde_json::{json, Map, Value};

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The `IssueType` codes Hearth uses (http://hl7.org/fhir/issue-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    NotFound,
    Deleted,
    TooLong,
    Conflict,
    Exception,
    Timeout,
    Transient,
    Informational,
    Incomplete,
    TooCostly,
    BusinessRule,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::Invariant => "invariant",
            IssueCode::Security => "security",
            IssueCode::Login => "login",
            IssueCode::Forbidden => "forbidden",
            IssueCode::Processing => "processing",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Duplicate => "duplicate",
            IssueCode::NotFound => "not-found",
            IssueCode::Deleted => "deleted",
            IssueCode::TooLong => "too-long",
            IssueCode::Conflict => "conflict",
            IssueCode::Exception => "exception",
            IssueCode::Timeout => "timeout",
            IssueCode::Transient => "transient",
            IssueCode::Informational => "informational",
            IssueCode::Incomplete => "incomplete",
            IssueCode::TooCostly => "too-costly",
            IssueCode::BusinessRule => "business-rule",
        }
    }
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    pub diagnostics: String,
    /// FHIRPath expressions of the elements the issue is about.
    pub expression: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationOutcome {
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    pub fn single(severity: Severity, code: IssueCode, diagnostics: impl Into<String>) -> Self {
        OperationOutcome {
            issues: vec![Issue {
                severity,
                code,
                diagnostics: diagnostics.into(),
                expression: Vec::new(),
            }],
        }
    }

    pub fn to_value(&self) -> Value {
        let issues: Vec<Value> = self
            .issues
            .iter()
            .map(|i| {
                let mut m = Map::new();
                m.insert("severity".into(), json!(i.severity.as_str()));
                m.insert("code".into(), json!(i.code.as_str()));
                if !i.diagnostics.is_empty() {
                    m.insert("diagnostics".into(), json!(i.diagnostics));
                }
                if !i.expression.is_empty() {
                    m.insert("expression".into(), json!(i.expression));
                }
                Value::Object(m)
            })
            .collect();
        let issues = if issues.is_empty() {
            // An OperationOutcome needs at least one issue.
            vec![
                json!({"severity": "information", "code": "informational", "diagnostics": "All OK"}),
            ]
        } else {
            issues
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}
