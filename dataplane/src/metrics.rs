//! Prometheus metrics (OpenMetrics text on the admin port's `/metrics`). Names follow
//! the OpenTelemetry gen_ai conventions where one fits.

use crate::translate::TokenUsage;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

type CostCounter = Counter<f64, AtomicU64>;

/// One finished call: what served it, how it ended, and for whom.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub provider: String,
    pub model: String,
    pub endpoint: &'static str,
    pub status: u16,
    pub user: String,
    pub team: String,
}

/// Who was served by what, for the series counted per caller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallerLabels {
    pub provider: String,
    pub model: String,
    pub user: String,
    pub team: String,
}

/// A caller's tokens of one kind (`input`, `output`, `cache_read`, `cache_write`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub gen_ai_token_type: &'static str,
    #[prometheus(flatten)]
    pub caller: CallerLabels,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub provider: String,
    pub model: String,
}

/// A 429: the scope of the limit reached and which of its limits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    pub scope: &'static str,
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub provider: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: &'static str,
}

/// The tier `model: "auto"` chose.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AutoRouteLabels {
    pub tier: &'static str,
}

/// Where a cascade started and ended (`simple` → `complex` when it escalated).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CascadeLabels {
    pub initial_tier: &'static str,
    pub final_tier: &'static str,
}

/// A budget alert: which daily limit, at which share.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetAlertLabels {
    pub kind: &'static str,
    pub threshold: u8,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost_usd: Family<CallerLabels, CostCounter>,
    pub duration: Family<ModelLabels, Histogram>,
    pub ttft: Family<ModelLabels, Histogram>,
    pub rate_limited: Family<RateLimitLabels, Counter>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub config_info: Family<VersionLabels, Gauge>,
    pub circuit_open: Family<ProviderLabels, Gauge>,
    pub cache_lookups: Family<CacheLabels, Counter>,
    pub auto_routes: Family<AutoRouteLabels, Counter>,
    pub cascades: Family<CascadeLabels, Counter>,
    pub budget_alerts: Family<BudgetAlertLabels, Counter>,
    /// Input tokens token reduction took out of requests (estimated).
    pub tokens_saved: Counter,
    pub audit_written: Counter,
    pub audit_failed: Counter,
    /// Requests answered before any provider was chosen (401, 404, 400 …), by status.
    pub refused: Family<StatusLabels, Counter>,
    /// The API listener's caller connections, as its idle sweep last counted them.
    pub open_connections: Gauge,
    pub parked_connections: Gauge,
    pub connections_refused: Counter,
    /// The open-file limit in force: each caller and upstream connection takes one.
    pub max_fds: Gauge,
    pub resident_memory: Gauge,
    current_version: Mutex<Option<String>>,
    calls: RwLock<hashbrown::HashMap<CallKey, Arc<CallSeries>>>,
    models: LabelCap,
    users: LabelCap,
    teams: LabelCap,
}

/// Distinct values a label whose value callers influence may take; past it, new values
/// are counted as `other`, so no caller can grow a scrape without bound.
const MAX_MODEL_LABELS: usize = 256;
const MAX_USER_LABELS: usize = 2_000;
const MAX_TEAM_LABELS: usize = 200;
pub const OTHER_LABEL: &str = "other";

struct LabelCap {
    seen: Mutex<std::collections::HashSet<String, crate::FastHasher>>,
    cap: usize,
}

impl LabelCap {
    fn new(cap: usize) -> Self {
        Self {
            seen: Mutex::default(),
            cap,
        }
    }

    /// `value` while it is one of the first `cap` distinct values seen, else `other`.
    fn bound(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < self.cap {
            seen.insert(value.to_string());
            return value.to_string();
        }
        OTHER_LABEL.to_string()
    }
}

fn seconds_histogram() -> Histogram {
    // 5 ms … ~20 min
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

impl Metrics {
    /// The written and failed counts audit writers (the audit log, the outcomes file)
    /// keep.
    pub fn audit_counters(&self) -> crate::audit::AuditCounters {
        crate::audit::AuditCounters {
            written: self.audit_written.clone(),
            failed: self.audit_failed.clone(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost_usd = Family::<CallerLabels, CostCounter>::default();
        let duration = Family::<ModelLabels, Histogram>::new_with_constructor(seconds_histogram);
        let ttft = Family::<ModelLabels, Histogram>::new_with_constructor(seconds_histogram);
        let rate_limited = Family::<RateLimitLabels, Counter>::default();
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let config_info = Family::<VersionLabels, Gauge>::default();
        let circuit_open = Family::<ProviderLabels, Gauge>::default();
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        let auto_routes = Family::<AutoRouteLabels, Counter>::default();
        let cascades = Family::<CascadeLabels, Counter>::default();
        let budget_alerts = Family::<BudgetAlertLabels, Counter>::default();
        let tokens_saved = Counter::default();
        let audit_written = Counter::default();
        let audit_failed = Counter::default();
        let refused = Family::<StatusLabels, Counter>::default();
        registry.register(
            "ai_gateway_refused_requests",
            "Requests answered before a provider was chosen, by status",
            refused.clone(),
        );
        registry.register(
            "ai_gateway_requests",
            "Requests by provider, model, endpoint and status",
            requests.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens by type (input, output, cache_read, cache_write)",
            tokens.clone(),
        );
        registry.register(
            "ai_gateway_cost_usd",
            "Cost of calls in USD",
            cost_usd.clone(),
        );
        registry.register(
            "gen_ai_server_request_duration_seconds",
            "Time from request to last byte",
            duration.clone(),
        );
        registry.register(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from request to first response byte",
            ttft.clone(),
        );
        registry.register(
            "ai_gateway_rate_limited",
            "Requests refused by a rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "ai_gateway_upstream_errors",
            "Failed upstream calls by provider and kind",
            upstream_errors.clone(),
        );
        registry.register(
            "ai_gateway_config",
            "The config version being served (value 1)",
            config_info.clone(),
        );
        registry.register(
            "ai_gateway_circuit_open",
            "1 while a provider's circuit breaker refuses calls",
            circuit_open.clone(),
        );
        registry.register(
            "ai_gateway_cache_lookups",
            "Response cache lookups by result (hit, miss)",
            cache_lookups.clone(),
        );
        registry.register(
            "ai_gateway_auto_routes",
            "Calls naming model auto, by the tier chosen for them",
            auto_routes.clone(),
        );
        registry.register(
            "ai_gateway_cascades",
            "Cascaded auto calls, by the tier they started and ended at",
            cascades.clone(),
        );
        registry.register(
            "ai_gateway_budget_alerts",
            "Budget alerts raised, by daily limit and share reached",
            budget_alerts.clone(),
        );
        registry.register(
            "ai_gateway_tokens_saved",
            "Input tokens token reduction took out of requests (estimated)",
            tokens_saved.clone(),
        );
        registry.register(
            "ai_gateway_audit_records_written",
            "Audit records written",
            audit_written.clone(),
        );
        registry.register(
            "ai_gateway_audit_records_failed",
            "Audit records that could not be written",
            audit_failed.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "ai_gateway_open_connections",
            "Caller connections open on the API listener (counted every few seconds)",
            open_connections.clone(),
        );
        let parked_connections = Gauge::default();
        registry.register(
            "ai_gateway_parked_connections",
            "Of those, idle connections parked: holding only their socket",
            parked_connections.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "ai_gateway_connections_refused",
            "Caller connections closed at accept: the open-connection cap was reached",
            connections_refused.clone(),
        );
        // The standard process metrics' names, which dashboards already chart.
        let max_fds = Gauge::default();
        registry.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            max_fds.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            resident_memory.clone(),
        );
        Self {
            open_connections,
            parked_connections,
            connections_refused,
            max_fds,
            resident_memory,
            registry,
            requests,
            tokens,
            cost_usd,
            duration,
            ttft,
            rate_limited,
            upstream_errors,
            config_info,
            circuit_open,
            cache_lookups,
            auto_routes,
            cascades,
            budget_alerts,
            tokens_saved,
            audit_written,
            audit_failed,
            refused,
            current_version: Mutex::new(None),
            calls: RwLock::default(),
            models: LabelCap::new(MAX_MODEL_LABELS),
            users: LabelCap::new(MAX_USER_LABELS),
            teams: LabelCap::new(MAX_TEAM_LABELS),
        }
    }
}

impl Metrics {
    pub fn config_applied(&self, version: &str) {
        let mut current = self
            .current_version
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(old) = current.take() {
            self.config_info
                .get_or_create(&VersionLabels { version: old })
                .set(0);
        }
        self.config_info
            .get_or_create(&VersionLabels {
                version: version.to_string(),
            })
            .set(1);
        *current = Some(version.to_string());
    }

    /// The series a finished call updates. A family lookup builds, hashes and compares
    /// its whole label set, and a call touches up to eight series: each distinct call
    /// shape is looked up in the families once and its handles kept.
    pub fn call_series(&self, labels: &CallLabels<'_>) -> Arc<CallSeries> {
        let read = self.calls.read().unwrap_or_else(|p| p.into_inner());
        if let Some(series) = read.get(labels) {
            return series.clone();
        }
        drop(read);
        let key = CallKey {
            provider: labels.provider.to_string(),
            model: self.models.bound(labels.model),
            endpoint: labels.endpoint,
            status: labels.status,
            user: self.users.bound(labels.user),
            team: self.teams.bound(labels.team),
        };
        // A value past its cap is counted under `other`, whose series may exist.
        if let Some(series) = self
            .calls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key.labels())
        {
            return series.clone();
        }
        let by_model = ModelLabels {
            provider: key.provider.clone(),
            model: key.model.clone(),
        };
        let series = Arc::new(CallSeries {
            requests: self
                .requests
                .get_or_create(&RequestLabels {
                    provider: key.provider.clone(),
                    model: key.model.clone(),
                    endpoint: key.endpoint,
                    status: key.status,
                    user: key.user.clone(),
                    team: key.team.clone(),
                })
                .clone(),
            duration: self.duration.get_or_create(&by_model).clone(),
            ttft: self.ttft.get_or_create(&by_model).clone(),
            tokens: Default::default(),
            cost: OnceLock::new(),
            key: key.clone(),
        });
        let mut write = self.calls.write().unwrap_or_else(|p| p.into_inner());
        write.entry(key).or_insert(series).clone()
    }

    /// The API listener's counts, for its idle sweep and accept loop to keep; no cap.
    pub fn connection_budget(&self) -> crate::server::ConnectionBudget {
        crate::server::ConnectionBudget {
            max_open: usize::MAX,
            open: self.open_connections.clone(),
            parked: self.parked_connections.clone(),
            refused: self.connections_refused.clone(),
        }
    }

    pub fn render(&self) -> String {
        if let Some(bytes) = resident_bytes() {
            self.resident_memory.set(bytes);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// This process's resident memory, from the kernel's own count (`VmRSS`, in KiB).
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The labels that tell one finished call's series from another's.
#[derive(Debug, Clone, Copy)]
pub struct CallLabels<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub endpoint: &'static str,
    pub status: u16,
    pub user: &'a str,
    pub team: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CallKey {
    provider: String,
    model: String,
    endpoint: &'static str,
    status: u16,
    user: String,
    team: String,
}

impl CallKey {
    /// Who was served by what, for the series counted per caller (tokens, cost).
    fn caller_labels(&self) -> CallerLabels {
        CallerLabels {
            provider: self.provider.clone(),
            model: self.model.clone(),
            user: self.user.clone(),
            team: self.team.clone(),
        }
    }

    fn labels(&self) -> CallLabels<'_> {
        CallLabels {
            provider: &self.provider,
            model: &self.model,
            endpoint: self.endpoint,
            status: self.status,
            user: &self.user,
            team: &self.team,
        }
    }
}

impl CallLabels<'_> {
    fn fields(&self) -> (&str, &str, &'static str, u16, &str, &str) {
        (
            self.provider,
            self.model,
            self.endpoint,
            self.status,
            self.user,
            self.team,
        )
    }
}

// The borrowed labels and the owned key hash alike, so a lookup allocates nothing.
impl Hash for CallLabels<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fields().hash(state);
    }
}

impl Hash for CallKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.labels().hash(state);
    }
}

impl hashbrown::Equivalent<CallKey> for CallLabels<'_> {
    fn equivalent(&self, key: &CallKey) -> bool {
        self.fields() == key.labels().fields()
    }
}

/// Handles to one call shape's series. Token and cost series are created on their
/// first non-zero count, so a model that never reads a cache shows no cache series.
pub struct CallSeries {
    pub requests: Counter,
    pub duration: Histogram,
    pub ttft: Histogram,
    tokens: [OnceLock<Counter>; 4],
    cost: OnceLock<CostCounter>,
    key: CallKey,
}

impl CallSeries {
    /// Counts a call's tokens, each kind under its own `gen_ai_token_type`.
    pub fn add_tokens(&self, metrics: &Metrics, usage: &TokenUsage) {
        let counts = [
            ("input", usage.input),
            ("output", usage.output),
            ("cache_read", usage.cache_read),
            ("cache_write", usage.cache_write),
        ];
        for ((name, n), cell) in counts.into_iter().zip(&self.tokens) {
            if n > 0 {
                self.token_counter(metrics, cell, name).inc_by(n);
            }
        }
    }

    fn token_counter<'a>(
        &self,
        metrics: &Metrics,
        cell: &'a OnceLock<Counter>,
        name: &'static str,
    ) -> &'a Counter {
        cell.get_or_init(|| {
            let labels = TokenLabels {
                gen_ai_token_type: name,
                caller: self.key.caller_labels(),
            };
            metrics.tokens.get_or_create(&labels).clone()
        })
    }

    pub fn add_cost(&self, metrics: &Metrics, usd: f64) {
        self.cost
            .get_or_init(|| {
                metrics
                    .cost_usd
                    .get_or_create(&self.key.caller_labels())
                    .clone()
            })
            .inc_by(usd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_of_one_shape_share_series_and_token_kinds_appear_when_first_counted() {
        let m = Metrics::default();
        let ana = CallLabels {
            provider: "openai",
            model: "gpt-x",
            endpoint: "chat.completions",
            status: 200,
            user: "ana",
            team: "",
        };
        for cache_read in [0, 7] {
            let series = m.call_series(&ana);
            series.requests.inc();
            let usage = TokenUsage {
                input: 10,
                output: 3,
                cache_read,
                cache_write: 0,
            };
            series.add_tokens(&m, &usage);
            series.add_cost(&m, 0.25);
        }
        m.call_series(&CallLabels { user: "bo", ..ana })
            .requests
            .inc();

        let text = m.render();
        let has = |line: &str| assert!(text.contains(line), "{line} not in\n{text}");
        has(
            r#"ai_gateway_requests_total{provider="openai",model="gpt-x",endpoint="chat.completions",status="200",user="ana",team=""} 2"#,
        );
        has(
            r#"ai_gateway_requests_total{provider="openai",model="gpt-x",endpoint="chat.completions",status="200",user="bo",team=""} 1"#,
        );
        has(
            r#"gen_ai_client_token_usage_total{gen_ai_token_type="input",provider="openai",model="gpt-x",user="ana",team=""} 20"#,
        );
        has(
            r#"gen_ai_client_token_usage_total{gen_ai_token_type="cache_read",provider="openai",model="gpt-x",user="ana",team=""} 7"#,
        );
        has(r#"ai_gateway_cost_usd_total{provider="openai",model="gpt-x",user="ana",team=""} 0.5"#);
        assert!(
            !text.contains(r#"gen_ai_token_type="cache_write""#),
            "{text}"
        );
        assert!(!text.contains(r#"user="bo",team=""} 0"#), "{text}");
    }
}
