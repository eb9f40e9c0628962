//! `policy.*`: ask what the policy would decide, and show the policy.

use super::sign::SignPduParams;
use super::{Method, NoParams};
use crate::json::Value;
use serde::{Deserialize, Serialize};

/// A policy verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Confirm,
    Deny,
}

/// `policy.check`: the same params as `sign.pdu`; signs nothing, asks no one.
pub struct Check;
impl Method for Check {
    const NAME: &'static str = "policy.check";
    type Params = SignPduParams;
    type Result = CheckResult;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub decision: Verdict,
    /// Every check's finding, strictest first, as `verdict: reason`.
    pub reasons: Vec<String>,
    /// What the event changes, readable (`power level of XGX0JRS2Af3b… 0 → 100`).
    pub changes: Vec<String>,
}

/// `policy.show`: the effective policy (configuration with defaults).
pub struct Show;
impl Method for Show {
    const NAME: &'static str = "policy.show";
    type Params = NoParams;
    type Result = Value;
}
