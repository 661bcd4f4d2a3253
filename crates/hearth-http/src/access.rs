//! The access decision point. Every handler states what it is about to do
//! and asks the request's [`AccessContext`] before it reads or writes. The
//! policy behind it is pluggable: today it allows everything; SMART-on-FHIR
//! authorization replaces it without touching handlers.

use std::sync::Arc;

use crate::error::ApiError;

/// What a request is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Capabilities,
    Read,
    VRead,
    Create,
    Update,
    Patch,
    Delete,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    SearchType,
    SearchSystem,
    /// An operation (`$reindex`) or its asynchronous status.
    Operation,
}

impl Interaction {
    /// Whether the interaction changes stored data.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Interaction::Create | Interaction::Update | Interaction::Patch | Interaction::Delete
        )
    }
}

/// One access question: an interaction on a resource type or instance.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub interaction: Interaction,
    pub resource_type: Option<&'a str>,
    pub id: Option<&'a str>,
}

/// Who is asking. Authentication fills this in; today every caller is
/// anonymous.
#[derive(Debug, Clone, Default)]
pub enum Principal {
    #[default]
    Anonymous,
}

/// Decides whether a principal may perform a request.
pub trait AccessPolicy: Send + Sync + 'static {
    fn decide(&self, principal: &Principal, request: &AccessRequest<'_>) -> Result<(), String>;
    /// A short description for the CapabilityStatement.
    fn describe(&self) -> &'static str;
}

/// The policy of an open server: everything is allowed.
#[derive(Debug, Default)]
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn decide(&self, _: &Principal, _: &AccessRequest<'_>) -> Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "No authorization: every request is allowed. Run Hearth only where every client is trusted."
    }
}

/// The access context of one request.
#[derive(Clone)]
pub struct AccessContext {
    pub principal: Principal,
    policy: Arc<dyn AccessPolicy>,
}

impl AccessContext {
    pub fn new(principal: Principal, policy: Arc<dyn AccessPolicy>) -> Self {
        AccessContext { principal, policy }
    }

    /// Asks the policy; a refusal becomes a 403 OperationOutcome.
    pub fn require(
        &self,
        interaction: Interaction,
        resource_type: Option<&str>,
        id: Option<&str>,
    ) -> Result<(), ApiError> {
        let request = AccessRequest {
            interaction,
            resource_type,
            id,
        };
        self.policy
            .decide(&self.principal, &request)
            .map_err(ApiError::Forbidden)
    }
}
