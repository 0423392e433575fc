//! Prometheus metrics (OpenMetrics text on the admin port's `/metrics`). Names follow
//! the OpenTelemetry gen_ai conventions where one fits.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<Labels, Counter>,
    pub tokens: Family<Labels, Counter>,
    pub cost_usd: Family<Labels, Counter<f64, AtomicU64>>,
    pub duration: Family<Labels, Histogram>,
    pub ttft: Family<Labels, Histogram>,
    pub rate_limited: Family<Labels, Counter>,
    pub upstream_errors: Family<Labels, Counter>,
    pub config_info: Family<Labels, Gauge>,
    pub circuit_open: Family<Labels, Gauge>,
    pub cache_lookups: Family<Labels, Counter>,
    pub audit_written: Counter,
    pub audit_failed: Counter,
    current_version: Mutex<Option<String>>,
}

fn seconds_histogram() -> Histogram {
    // 5 ms … ~20 min
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let tokens = Family::<Labels, Counter>::default();
        let cost_usd = Family::<Labels, Counter<f64, AtomicU64>>::default();
        let duration = Family::<Labels, Histogram>::new_with_constructor(seconds_histogram);
        let ttft = Family::<Labels, Histogram>::new_with_constructor(seconds_histogram);
        let rate_limited = Family::<Labels, Counter>::default();
        let upstream_errors = Family::<Labels, Counter>::default();
        let config_info = Family::<Labels, Gauge>::default();
        let circuit_open = Family::<Labels, Gauge>::default();
        let cache_lookups = Family::<Labels, Counter>::default();
        let audit_written = Counter::default();
        let audit_failed = Counter::default();
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
            "ai_gateway_audit_records_written",
            "Audit records written",
            audit_written.clone(),
        );
        registry.register(
            "ai_gateway_audit_records_failed",
            "Audit records that could not be written",
            audit_failed.clone(),
        );
        Self {
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
            audit_written,
            audit_failed,
            current_version: Mutex::new(None),
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
                .get_or_create(&vec![("version", old)])
                .set(0);
        }
        self.config_info
            .get_or_create(&vec![("version", version.to_string())])
            .set(1);
        *current = Some(version.to_string());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
