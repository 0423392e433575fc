//! Rate limits: which rules apply to a request, admission with a reservation of its
//! estimated tokens and cost, and settlement against what the provider reported.
//!
//! Counters live in a [`Store`] that outlives config swaps, so a `kubectl apply` that
//! changes a limit applies on the next request without resetting anyone's usage.

mod headers;
pub mod journal;
mod memory;
mod redis_store;

pub use headers::{quota_headers, Quota};
pub use journal::Journal;
pub use memory::{Changes, MemoryStore};
pub use redis_store::RedisStore;

use crate::auth::Identity;
use ai_gateway_snapshot::{LimitStoreKind, Limits, RateLimits, Subject};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The rules of one snapshot, ready to match requests.
pub struct LimitPlan {
    rules: Vec<(ai_gateway_snapshot::LimitRule, Option<glob::Pattern>)>,
    pub default_output_tokens: u64,
}

/// One set of counters a request is checked against, with the limits that bind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Counter key, e.g. `user:contractor1` or `user:bob|model:claude-opus-4`.
    pub key: String,
    pub scope: Subject,
    pub limits: Limits,
}

impl LimitPlan {
    pub fn new(config: &RateLimits) -> Self {
        let rules = config
            .all_rules()
            .into_iter()
            .map(|r| {
                let pattern = r.model.as_deref().and_then(|m| glob::Pattern::new(m).ok());
                (r, pattern)
            })
            .collect();
        Self {
            rules,
            default_output_tokens: config.default_output_tokens,
        }
    }

    /// Every counter the request must fit in. Rules on the same counters merge, the
    /// tighter value of each limit winning.
    pub fn checks(&self, id: &Identity, model: &str) -> Vec<Check> {
        self.checks_for(id, model, &[])
    }

    /// Like [`checks`](Self::checks) for a call whose model also goes by other names
    /// (the caller's alias, a `provider/` prefix): a model rule applies when any name
    /// matches, and counts under `model`, so a renamed call cannot dodge it.
    pub fn checks_for(&self, id: &Identity, model: &str, other_names: &[&str]) -> Vec<Check> {
        let mut checks: Vec<Check> = Vec::new();
        for (rule, pattern) in &self.rules {
            let matches =
                |p: &glob::Pattern| p.matches(model) || other_names.iter().any(|n| p.matches(n));
            if rule.model.is_some() && !pattern.as_ref().is_some_and(matches) {
                continue;
            }
            let value = match rule.subject {
                Subject::Global => Some("*"),
                Subject::Key => id.key_id.as_deref(),
                Subject::User => Some(id.user.as_str()),
                Subject::Team => id.team.as_deref(),
                Subject::Workspace => id.workspace.as_deref(),
            };
            let Some(value) = value else { continue };
            let limits = rule.limits_for(value);
            if limits.is_empty() {
                continue;
            }
            let subject = rule.subject.as_str();
            let mut key = String::with_capacity(subject.len() + value.len() + model.len() + 8);
            key.push_str(subject);
            key.push(':');
            key.push_str(value);
            if rule.model.is_some() {
                key.push_str("|model:");
                key.push_str(model);
            }
            // Rules for the same counter merge into their tightest limits.
            match checks.iter_mut().find(|c| c.key == key) {
                Some(c) => c.limits = tighter(&c.limits, &limits),
                None => checks.push(Check {
                    key,
                    scope: rule.subject,
                    limits,
                }),
            }
        }
        checks.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        checks
    }
}

fn tighter(a: &Limits, b: &Limits) -> Limits {
    fn min<T: PartialOrd + Copy>(x: Option<T>, y: Option<T>) -> Option<T> {
        match (x, y) {
            (Some(x), Some(y)) => Some(if y < x { y } else { x }),
            (x, y) => x.or(y),
        }
    }
    Limits {
        requests_per_minute: min(a.requests_per_minute, b.requests_per_minute),
        tokens_per_minute: min(a.tokens_per_minute, b.tokens_per_minute),
        tokens_per_day: min(a.tokens_per_day, b.tokens_per_day),
        concurrent_requests: min(a.concurrent_requests, b.concurrent_requests),
        budget_usd_per_day: min(a.budget_usd_per_day, b.budget_usd_per_day),
    }
}

/// What a request is expected to cost, reserved at admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub tokens: u64,
    pub cost_micros: u64,
}

/// The minute and day windows a request was admitted in (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub minute: u64,
    pub day: u64,
    /// Seconds since the epoch at admission.
    pub now: u64,
}

impl Windows {
    pub fn at(time: SystemTime) -> Self {
        let now = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            minute: now / 60,
            day: now / 86_400,
            now,
        }
    }

    pub fn secs_to_next_minute(&self) -> u64 {
        60 - self.now % 60
    }

    pub fn secs_to_next_day(&self) -> u64 {
        86_400 - self.now % 86_400
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    TokensPerDay,
    Concurrent,
    BudgetPerDay,
}

impl LimitKind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::RequestsPerMinute => "requests per minute",
            Self::TokensPerMinute => "tokens per minute",
            Self::TokensPerDay => "tokens per day",
            Self::Concurrent => "concurrent requests",
            Self::BudgetPerDay => "USD per day",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub key: String,
    pub scope: Subject,
    pub kind: LimitKind,
    pub limit: f64,
    pub retry_after_secs: u64,
    pub quota: Quota,
}

/// An admitted request's hold on its counters, released by [`Store::finish`].
#[derive(Debug, Clone)]
pub struct Reservation {
    pub keys: Vec<String>,
    pub windows: Windows,
    pub demand: Demand,
    pub holds_concurrency: bool,
    pub quota: Quota,
}

pub enum Admission {
    Admitted(Reservation),
    Refused(Refusal),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis answered something unexpected: {0}")]
    Protocol(String),
    #[error("embedded store: {0}")]
    Journal(String),
}

/// Counter values of one subject within the current windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests_minute: u64,
    pub tokens_minute: u64,
    pub tokens_day: u64,
    pub cost_micros_day: u64,
    pub concurrent: u64,
}

impl Counters {
    /// The first limit this request would break, if any. Requests and concurrency are
    /// exact; tokens and cost admit while any budget remains, so a burst overshoots by
    /// at most one request's reservation while a single large request is never starved.
    pub fn refusal(&self, limits: &Limits) -> Option<(LimitKind, f64)> {
        let micros = |usd: f64| (usd * 1_000_000.0) as u64;
        if let Some(l) = limits.requests_per_minute {
            if self.requests_minute + 1 > l {
                return Some((LimitKind::RequestsPerMinute, l as f64));
            }
        }
        if let Some(l) = limits.concurrent_requests {
            if self.concurrent + 1 > l {
                return Some((LimitKind::Concurrent, l as f64));
            }
        }
        if let Some(l) = limits.tokens_per_minute {
            if self.tokens_minute >= l {
                return Some((LimitKind::TokensPerMinute, l as f64));
            }
        }
        if let Some(l) = limits.tokens_per_day {
            if self.tokens_day >= l {
                return Some((LimitKind::TokensPerDay, l as f64));
            }
        }
        if let Some(b) = limits.budget_usd_per_day {
            if self.cost_micros_day >= micros(b) {
                return Some((LimitKind::BudgetPerDay, b));
            }
        }
        None
    }
}

impl LimitKind {
    fn retry_after(self, w: &Windows) -> u64 {
        match self {
            Self::RequestsPerMinute | Self::TokensPerMinute => w.secs_to_next_minute(),
            Self::TokensPerDay | Self::BudgetPerDay => w.secs_to_next_day(),
            Self::Concurrent => 1,
        }
    }
}

/// Which of a caller's daily ledgers an entry goes to: usage by model, or by the
/// session it was spent in (Claude Code's `X-Claude-Code-Session-Id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ledger {
    Models,
    Sessions,
    /// Every caller's calls, under [`ALL_CALLERS`], by who, which key, provider, model
    /// and session ([`CallSlice`]): what the admin API's cost reports group.
    Calls,
}

/// The "user" the [`Ledger::Calls`] ledger is kept under: one book for the gateway.
pub const ALL_CALLERS: &str = "*";

/// Distinct slices the calls ledger keeps per day.
pub const MAX_LEDGER_SLICES: usize = 10_000;

impl Ledger {
    pub const ALL: [Ledger; 3] = [Ledger::Models, Ledger::Sessions, Ledger::Calls];

    /// Distinct names one caller's ledger keeps per day; further ones are summed under
    /// [`OTHER_MODELS`].
    fn most(self) -> usize {
        match self {
            Self::Models => MAX_LEDGER_MODELS,
            Self::Sessions => MAX_LEDGER_SESSIONS,
            Self::Calls => MAX_LEDGER_SLICES,
        }
    }

    /// The journal's number for this ledger.
    pub fn index(self) -> i64 {
        self as i64
    }

    pub fn from_index(index: i64) -> Self {
        match index {
            1 => Self::Sessions,
            2 => Self::Calls,
            _ => Self::Models,
        }
    }
}

/// Who spent a call, as the calls ledger names a line: user, team, workspace, key,
/// provider, model and session, joined by a separator no name carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallSlice {
    pub user: String,
    pub team: String,
    pub workspace: String,
    pub key: String,
    pub provider: String,
    pub model: String,
    pub session: String,
}

const SLICE_SEPARATOR: char = '\u{1f}';

/// A calls-ledger line's name from user, team, workspace, key, provider, model and
/// session, in one allocation (it is made for every call).
pub fn slice_name(parts: [&str; 7]) -> String {
    let mut name = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            name.push(SLICE_SEPARATOR);
        }
        match part.contains(SLICE_SEPARATOR) {
            true => name.push_str(&part.replace(SLICE_SEPARATOR, " ")),
            false => name.push_str(part),
        }
    }
    name
}

impl CallSlice {
    pub fn name(&self) -> String {
        slice_name([
            &self.user,
            &self.team,
            &self.workspace,
            &self.key,
            &self.provider,
            &self.model,
            &self.session,
        ])
    }

    /// A line's name read back; the ledger's overflow line (`other`) is all `other`.
    pub fn parse(name: &str) -> Self {
        let mut parts = name.split(SLICE_SEPARATOR).map(str::to_string);
        let mut next = || parts.next().unwrap_or_else(|| OTHER_MODELS.to_string());
        Self {
            user: next(),
            team: next(),
            workspace: next(),
            key: next(),
            provider: next(),
            model: next(),
            session: next(),
        }
    }
}

/// One call's line in a caller's daily ledger.
#[derive(Debug, Clone, Copy)]
pub struct LedgerEntry<'a> {
    pub ledger: Ledger,
    pub user: &'a str,
    pub day: u64,
    /// The model, or the session.
    pub name: &'a str,
    pub usage: ModelUsage,
}

/// Distinct sessions one caller's ledger keeps per day.
pub const MAX_LEDGER_SESSIONS: usize = 256;

/// Distinct models one caller's ledger keeps per day; further models are summed under
/// [`OTHER_MODELS`], so caller-chosen model names cannot grow it without bound.
pub const MAX_LEDGER_MODELS: usize = 64;
pub const OTHER_MODELS: &str = "other";

/// One model's usage by one caller in one UTC day: what `/v1/usage` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModelUsage {
    pub requests: u64,
    /// All prompt tokens, cached ones included.
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_micros: u64,
    /// Input tokens token reduction took out (estimated).
    pub tokens_saved: u64,
}

impl ModelUsage {
    /// The line as the usage replies (`/v1/usage`, the admin reports) carry it.
    pub fn reply(&self) -> ai_gateway_snapshot::replies::Usage {
        ai_gateway_snapshot::replies::Usage {
            requests: self.requests,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cache_read_tokens: self.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens,
            cost_usd: self.cost_micros as f64 / 1_000_000.0,
            tokens_saved: self.tokens_saved,
        }
    }

    pub fn add(&mut self, other: &ModelUsage) {
        self.requests += other.requests;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_micros += other.cost_micros;
        self.tokens_saved += other.tokens_saved;
    }
}

/// Where counters live: one replica's memory (kept in its data directory by the
/// embedded store's journal), or Redis shared by all replicas.
pub enum Store {
    Memory(Arc<MemoryStore>),
    Embedded(Arc<MemoryStore>, Arc<Journal>),
    Redis(Box<RedisStore>),
}

impl Store {
    /// The configured store; `embedded` is kept in `data_dir` when the process has one
    /// (and is memory only when it has none).
    pub fn from_config(config: &RateLimits, data_dir: Option<&Path>) -> Result<Self, StoreError> {
        Ok(
            match (config.store.kind, config.store.url.as_deref(), data_dir) {
                (LimitStoreKind::Redis, Some(url), _) => {
                    Store::Redis(Box::new(RedisStore::new(url)?))
                }
                (LimitStoreKind::Embedded, _, Some(dir)) => {
                    let journal = Arc::new(Journal::open(dir)?);
                    let memory = Arc::new(MemoryStore::default());
                    let today = Windows::at(SystemTime::now()).day;
                    memory.restore(journal.load(today.saturating_sub(1))?);
                    journal.start_writer(memory.clone());
                    Store::Embedded(memory, journal)
                }
                _ => Store::Memory(Arc::default()),
            },
        )
    }

    /// Keeps a cascade's routing outcome (one JSON line) with the usage ledger, for a
    /// learned router to be trained from; only the embedded store keeps them.
    pub fn keep_outcome(&self, line: &[u8]) {
        if let Store::Embedded(_, journal) = self {
            journal.keep_outcome(line);
        }
    }

    /// Writes out what the embedded store has not yet kept; nothing for the others.
    pub fn close(&self) {
        if let Store::Embedded(_, journal) = self {
            journal.close();
        }
    }

    pub async fn admit(
        &self,
        checks: &[Check],
        demand: Demand,
        windows: Windows,
    ) -> Result<Admission, StoreError> {
        if checks.is_empty() {
            return Ok(Admission::Admitted(Reservation {
                keys: Vec::new(),
                windows,
                demand,
                holds_concurrency: false,
                quota: Quota::default(),
            }));
        }
        match self {
            Store::Memory(m) | Store::Embedded(m, _) => Ok(m.admit(checks, demand, windows)),
            Store::Redis(r) => r.admit(checks, demand, windows).await,
        }
    }

    /// [`Store::finish`] done at once when the counters are in memory; `false` (nothing
    /// done) when they are in Redis, for the caller to await it off its path.
    pub fn finish_at_once(
        &self,
        reservation: Option<&Reservation>,
        actual: Demand,
        ledger: &[LedgerEntry<'_>],
    ) -> bool {
        let (Store::Memory(m) | Store::Embedded(m, _)) = self else {
            return false;
        };
        if let Some(reservation) = reservation {
            m.settle(reservation, actual);
        }
        for entry in ledger {
            m.record_usage(entry);
        }
        true
    }

    /// A finished call: its reservation replaced with what it really used (and its
    /// concurrency slot released), and its lines added to the usage ledgers. From
    /// Redis, the day's tokens and cost of the reservation's keys after it, in its
    /// order; an in-process store's counters are read with [`Store::local_counters`].
    pub async fn finish(
        &self,
        reservation: Option<&Reservation>,
        actual: Demand,
        ledger: &[LedgerEntry<'_>],
    ) -> Result<Vec<Counters>, StoreError> {
        match self {
            Store::Redis(r) => r.finish(reservation, actual, ledger).await,
            Store::Memory(_) | Store::Embedded(..) => {
                self.finish_at_once(reservation, actual, ledger);
                Ok(Vec::new())
            }
        }
    }

    pub async fn usage_day(
        &self,
        ledger: Ledger,
        user: &str,
        day: u64,
    ) -> Result<BTreeMap<String, ModelUsage>, StoreError> {
        match self {
            // Memory holds today and yesterday; the journal every day before.
            Store::Embedded(_, journal) if day + 1 < Windows::at(SystemTime::now()).day => {
                journal.usage_day(ledger, user, day)
            }
            Store::Memory(m) | Store::Embedded(m, _) => Ok(m.usage_day(ledger, user, day)),
            Store::Redis(r) => r.usage_day(ledger, user, day).await,
        }
    }

    /// The first of `checks` that is already at its limit, read without reserving:
    /// a caller who could not be admitted is told so before its body is read.
    pub async fn first_refusal(
        &self,
        checks: &[Check],
        windows: Windows,
    ) -> Result<Option<Refusal>, StoreError> {
        let counters = self.counters(checks, windows).await?;
        Ok(checks
            .iter()
            .zip(&counters)
            .find_map(|(check, c)| refusal_for(check, c, &windows)))
    }

    pub async fn counters(
        &self,
        checks: &[Check],
        windows: Windows,
    ) -> Result<Vec<Counters>, StoreError> {
        match self {
            Store::Memory(_) | Store::Embedded(..) => {
                Ok(self.local_counters(checks, windows).unwrap_or_default())
            }
            Store::Redis(r) => r.counters(checks, windows).await,
        }
    }

    /// The counters when they are in this process (no waiting), else `None`.
    pub fn local_counters(&self, checks: &[Check], windows: Windows) -> Option<Vec<Counters>> {
        match self {
            Store::Memory(m) | Store::Embedded(m, _) => {
                Some(checks.iter().map(|c| m.counters(&c.key, windows)).collect())
            }
            Store::Redis(_) => None,
        }
    }
}

/// The quota figures of the tightest counters, for response headers and `/v1/limits`.
pub fn tightest_quota(checks: &[Check], counters: &[Counters], windows: &Windows) -> Quota {
    let mut quota = Quota::default();
    for (check, c) in checks.iter().zip(counters) {
        if let Some(l) = check.limits.requests_per_minute {
            let remaining = l.saturating_sub(c.requests_minute);
            if quota.requests.is_none_or(|(_, r, _)| remaining < r) {
                quota.requests = Some((l, remaining, windows.secs_to_next_minute()));
            }
        }
        if let Some(l) = check.limits.tokens_per_minute {
            let remaining = l.saturating_sub(c.tokens_minute);
            if quota.tokens.is_none_or(|(_, r, _)| remaining < r) {
                quota.tokens = Some((l, remaining, windows.secs_to_next_minute()));
            }
        }
    }
    quota
}

/// Builds the refusal for the check at `index` that `counters` breaks.
fn refusal_for(check: &Check, counters: &Counters, windows: &Windows) -> Option<Refusal> {
    let (kind, limit) = counters.refusal(&check.limits)?;
    Some(Refusal {
        key: check.key.clone(),
        scope: check.scope,
        kind,
        limit,
        retry_after_secs: kind.retry_after(windows),
        quota: tightest_quota(
            std::slice::from_ref(check),
            std::slice::from_ref(counters),
            windows,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users_policy() -> RateLimits {
        ai_gateway_snapshot::parse_document(
            r#"
rate_limits:
  global: { requests_per_minute: 1000, tokens_per_minute: 1000000 }
  default: { requests_per_minute: 60, tokens_per_minute: 100000 }
  per_user:
    contractor1: { requests_per_minute: 100 }
    admin: { requests_per_minute: 200 }
  rules:
    - { subject: team, model: "claude-opus-*", limits: { tokens_per_day: 500000 } }
"#,
            |_| None,
        )
        .expect("valid")
        .rate_limits
    }

    fn id(user: &str, team: Option<&str>) -> Identity {
        Identity {
            key_id: None,
            user: user.into(),
            team: team.map(str::to_string),
            workspace: None,
        }
    }

    #[test]
    fn the_users_policy_applies_as_written() {
        let plan = LimitPlan::new(&users_policy());
        let checks = plan.checks(&id("contractor1", None), "claude-sonnet-4-5");
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].key, "global:*");
        assert_eq!(checks[0].limits.requests_per_minute, Some(1000));
        assert_eq!(checks[1].key, "user:contractor1");
        assert_eq!(checks[1].limits.requests_per_minute, Some(100));
        assert_eq!(
            checks[1].limits.tokens_per_minute,
            Some(100_000),
            "overrides merge over the default"
        );
        let bob = plan.checks(&id("bob", Some("ml")), "claude-opus-4-1");
        let find = |key: &str| bob.iter().find(|c| c.key == key).expect(key).limits;
        assert_eq!(find("user:bob").requests_per_minute, Some(60));
        assert_eq!(
            find("team:ml|model:claude-opus-4-1").tokens_per_day,
            Some(500_000)
        );
        assert_eq!(
            plan.checks(&id("bob", Some("ml")), "claude-sonnet-4-5")
                .len(),
            2
        );
    }
}
