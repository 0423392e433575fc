//! The JSON the data plane answers with where the operator and the CLI read it: the
//! admin config endpoint, `/v1/providers`, `/v1/usage` and `/v1/limits`.
//!
//! Unlike the snapshot, these accept fields they do not know, so a CLI reads a newer
//! data plane's answers.

use crate::{ProviderKind, Subject};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET` and `PUT /admin/v1/config`: the version the data plane serves, and for a
/// refused push why (a document that is no snapshot carries no version).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `GET /v1/providers`, in the OpenAI list shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderList {
    #[serde(default)]
    pub object: ListObject,
    #[serde(default)]
    pub data: Vec<ProviderInfo>,
}

/// The `"object": "list"` of an OpenAI list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListObject {
    #[default]
    #[serde(rename = "list")]
    List,
}

/// What any caller may learn of a provider: never where it is or how it is reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    #[serde(default)]
    pub region: Option<String>,
    pub status: ProviderStatus,
    pub circuit: CircuitState,
    /// Why an inactive provider is inactive.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderStatus {
    Active,
    /// Configured but not callable (e.g. no credentials); `reason` says why.
    Inactive,
}

impl ProviderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }
}

/// A provider's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitState {
    Closed,
    Open,
    /// The open period is over; the next call probes.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

/// `GET /v1/usage`: the caller's usage today (UTC) and what the tightest limit leaves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReply {
    pub user: String,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub workspace: Option<String>,
    /// `YYYY-MM-DD`.
    pub date: String,
    #[serde(default)]
    pub today: Usage,
    #[serde(default)]
    pub models: BTreeMap<String, Usage>,
    /// By Claude Code session, with `?group_by=session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<BTreeMap<String, Usage>>,
    #[serde(default)]
    pub limit: Remaining,
}

/// Calls and tokens counted for one day, in total or for one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub requests: u64,
    /// All prompt tokens, cached ones included.
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    /// Input tokens token reduction took out (estimated).
    pub tokens_saved: u64,
}

impl Usage {
    /// Two counts of the same thing together (two data planes' reports of one day).
    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_usd += other.cost_usd;
        self.tokens_saved += other.tokens_saved;
    }
}

/// What the tightest request and token limits leave; `None` where none applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Remaining {
    pub requests_remaining: Option<u64>,
    pub tokens_remaining: Option<u64>,
}

/// `GET /v1/limits`: every limit that applies to the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsReply {
    pub user: String,
    #[serde(default)]
    pub limits: Vec<LimitStanding>,
}

/// One counter that applies to the caller, per window; `None` where the rule sets no limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitStanding {
    pub scope: Subject,
    /// The counter's key, e.g. `user:contractor1`.
    pub key: String,
    #[serde(default)]
    pub requests_per_minute: Option<WindowUse<u64>>,
    #[serde(default)]
    pub tokens_per_minute: Option<WindowUse<u64>>,
    #[serde(default)]
    pub tokens_per_day: Option<WindowUse<u64>>,
    #[serde(default)]
    pub concurrent_requests: Option<WindowUse<u64>>,
    #[serde(default)]
    pub budget_usd_per_day: Option<WindowUse<f64>>,
}

/// A limit, what is used of it and when the window turns (0: it does not, e.g. concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowUse<T> {
    pub limit: T,
    pub used: T,
    pub remaining: T,
    pub reset_seconds: u64,
}

/// A usage line of a report: a user, team, workspace, key, model, provider or session,
/// and what it used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub group: String,
    pub usage: Usage,
}

/// `GET /admin/v1/usage`: every caller's usage and cost over a range of days (UTC),
/// grouped; rows by cost, then requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdminUsageReply {
    /// `YYYY-MM-DD`, both included.
    pub since: String,
    pub until: String,
    pub group_by: String,
    #[serde(default)]
    pub rows: Vec<UsageRow>,
    #[serde(default)]
    pub total: Usage,
}

/// A daily limit a subject has spent much of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStanding {
    /// The counter's subject, e.g. `user:ana` or `team:platform`.
    pub subject: String,
    /// `budget_usd_per_day` or `tokens_per_day`.
    pub kind: String,
    pub used: f64,
    pub limit: f64,
    pub percent: f64,
}

/// A recent request that ended in an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub timestamp: String,
    pub request_id: String,
    pub user: String,
    #[serde(default)]
    pub model: Option<String>,
    pub status: u16,
    pub error: String,
}

/// `GET /admin/v1/overview`: what the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverviewReply {
    pub date: String,
    #[serde(default)]
    pub today: Usage,
    #[serde(default)]
    pub by_team: Vec<UsageRow>,
    #[serde(default)]
    pub by_user: Vec<UsageRow>,
    #[serde(default)]
    pub top_models: Vec<UsageRow>,
    /// Calls refused by a rate limit today, on this replica.
    #[serde(default)]
    pub rate_limited_today: u64,
    #[serde(default)]
    pub providers: Vec<ProviderInfo>,
    #[serde(default)]
    pub budgets: Vec<BudgetStanding>,
    #[serde(default)]
    pub last_errors: Vec<ErrorEntry>,
}

/// `GET /admin/v1/routes`: the routes as compiled, fallbacks included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutesReply {
    #[serde(default)]
    pub routes: Vec<crate::Route>,
}

/// `GET /admin/v1/limits`: the limits in force and where they are counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsInForce {
    pub store: crate::LimitStoreKind,
    #[serde(default)]
    pub rules: Vec<crate::LimitRule>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(wire: Value) {
        let typed: T =
            serde_json::from_value(wire.clone()).unwrap_or_else(|e| panic!("reads {wire}: {e}"));
        let again = serde_json::to_value(&typed).unwrap_or_else(|e| panic!("writes: {e}"));
        assert_eq!(again, wire);
    }

    // The shapes below are the data plane's own `json!` documents, field for field.

    #[test]
    fn admin_config_replies_keep_their_shape() {
        round_trip::<ConfigReply>(json!({"version": "sha256:0123456789abcdef"}));
        round_trip::<ConfigReply>(json!({"error": "routes[0]: no provider", "version": "v1"}));
        round_trip::<ConfigReply>(json!({"error": "not a snapshot document: EOF"}));
    }

    #[test]
    fn the_provider_list_keeps_its_shape() {
        round_trip::<ProviderList>(json!({"object": "list", "data": [
            {"name": "claude", "type": "anthropic", "region": null, "status": "active",
             "circuit": "half-open", "reason": null, "models": []},
            {"name": "bedrock", "type": "bedrock", "region": "us-east-1", "status": "inactive",
             "circuit": "closed", "reason": "no credentials", "models": ["amazon.nova-pro-v1:0"]},
        ]}));
    }

    #[test]
    fn usage_and_limits_keep_their_shape() {
        let usage = json!({"requests": 12, "tokens_in": 3400, "tokens_out": 1200,
            "cache_read_tokens": 0, "cache_write_tokens": 5, "cost_usd": 0.042, "tokens_saved": 96});
        round_trip::<UsageReply>(json!({
            "user": "alice", "team": "platform", "workspace": null, "date": "2025-06-01",
            "today": usage, "models": {"claude-sonnet-4-5": usage},
            "limit": {"requests_remaining": 48, "tokens_remaining": null},
        }));
        round_trip::<LimitsReply>(json!({"user": "alice", "limits": [{
            "scope": "user", "key": "user:alice",
            "requests_per_minute": {"limit": 60, "used": 12, "remaining": 48, "reset_seconds": 31},
            "tokens_per_minute": null, "tokens_per_day": null,
            "concurrent_requests": {"limit": 4, "used": 1, "remaining": 3, "reset_seconds": 0},
            "budget_usd_per_day": {"limit": 5.0, "used": 0.5, "remaining": 4.5, "reset_seconds": 3600},
        }]}));
    }

    #[test]
    fn readers_ignore_fields_they_do_not_know() {
        let reply: ConfigReply =
            serde_json::from_value(json!({"version": "v2", "applied_at": "now"}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.version.as_deref(), Some("v2"));
    }
}
