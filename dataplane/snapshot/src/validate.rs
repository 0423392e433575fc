use crate::{LimitRule, Limits, Provider, Snapshot};
use std::collections::BTreeMap;
use std::fmt;

/// One thing wrong with a snapshot, at the path where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every problem found, so a platform engineer fixes a file in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

struct Collector(Vec<Problem>);

impl Collector {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

impl Snapshot {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut found = Collector(Vec::new());
        self.check_providers(&mut found);
        self.check_routes(&mut found);
        self.check_auth(&mut found);
        self.check_limits(&mut found);
        if self.gateway.max_request_bytes == 0 {
            found.add("gateway.max_request_bytes", "must be greater than 0");
        }
        if self.gateway.default_max_tokens == 0 {
            found.add("gateway.default_max_tokens", "must be greater than 0");
        }
        if self.gateway.max_messages == 0 {
            found.add("gateway.max_messages", "must be greater than 0");
        }
        if self.gateway.body_read_timeout_ms == 0 {
            found.add("gateway.body_read_timeout_ms", "must be greater than 0");
        }
        if self.gateway.max_buffered_request_bytes < self.gateway.max_request_bytes {
            found.add(
                "gateway.max_buffered_request_bytes",
                "must be at least max_request_bytes, or no body of the largest size could be read",
            );
        }
        if self.gateway.max_tokens_limit == 0 {
            found.add("gateway.max_tokens_limit", "must be greater than 0");
        }
        if self.cache.enabled
            && self.cache.store == crate::CacheStoreKind::Redis
            && self.cache.redis_url.is_none()
            && self.rate_limits.store.url.is_none()
        {
            found.add(
                "cache.redis_url",
                "required for store redis unless rate_limits.store.url is set",
            );
        }
        if self.audit.sink == crate::AuditSink::File && self.audit.path.is_none() {
            found.add("audit.path", "required when audit.sink is file");
        }
        if found.0.is_empty() {
            Ok(())
        } else {
            Err(Problems(found.0))
        }
    }

    fn check_providers(&self, found: &mut Collector) {
        for (name, p) in &self.providers {
            let at = format!("providers.{name}");
            if name.is_empty() || name.contains(['/', ' ']) {
                found.add(
                    &at,
                    "provider names may not be empty or contain '/' or spaces",
                );
            }
            for problem in p.problems() {
                found.add(format!("{at}.{}", problem.path), problem.message);
            }
        }
    }

    fn check_routes(&self, found: &mut Collector) {
        let known = || {
            let names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            if names.is_empty() {
                "no providers are configured".to_string()
            } else {
                format!("known: {}", names.join(", "))
            }
        };
        // (exact model, priority) -> first route index claiming it
        let mut claimed: BTreeMap<(&str, u32), usize> = BTreeMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            if !self.providers.contains_key(&route.provider) {
                found.add(
                    format!("{at}.provider"),
                    format!("unknown provider `{}`; {}", route.provider, known()),
                );
            }
            for (j, fb) in route.fallback.iter().enumerate() {
                if !self.providers.contains_key(fb) {
                    found.add(
                        format!("{at}.fallback[{j}]"),
                        format!("unknown provider `{fb}`; {}", known()),
                    );
                }
            }
            if route.models.is_empty() {
                found.add(
                    format!("{at}.models"),
                    "needs at least one model name or glob",
                );
            }
            for (j, model) in route.models.iter().enumerate() {
                if model.is_empty() {
                    found.add(format!("{at}.models[{j}]"), "may not be empty");
                } else if is_glob(model) {
                    if let Err(e) = glob::Pattern::new(model) {
                        found.add(
                            format!("{at}.models[{j}]"),
                            format!("bad glob `{model}`: {}", e.msg),
                        );
                    }
                } else if let Some(first) = claimed.insert((model, route.priority), i) {
                    found.add(
                        format!("{at}.models[{j}]"),
                        format!(
                            "`{model}` is already routed by routes[{first}] at priority {}; give one of them another priority",
                            route.priority
                        ),
                    );
                }
            }
            if route.weight == 0 {
                found.add(format!("{at}.weight"), "must be greater than 0");
            }
        }
    }

    fn check_auth(&self, found: &mut Collector) {
        if self.auth.pod_identity && self.auth.mode != crate::AuthMode::Kubernetes {
            found.add("auth.pod_identity", "only with auth.mode kubernetes");
        }
        let mut ids = BTreeMap::new();
        for (i, key) in self.auth.keys.iter().enumerate() {
            let at = format!("auth.keys[{i}]");
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                found.add(
                    format!("{at}.sha256"),
                    "must be the 64-character hex SHA-256 of the key",
                );
            }
            if key
                .sigv4_secret
                .as_deref()
                .is_some_and(|s| s.trim().len() < 16)
            {
                found.add(
                    format!("{at}.sigv4_secret"),
                    "must be at least 16 characters: anyone knowing the key id could sign with a short one",
                );
            }
            if let Some(first) = ids.insert(key.id.as_str(), i) {
                found.add(
                    format!("{at}.id"),
                    format!("`{}` is also the id of auth.keys[{first}]", key.id),
                );
            }
        }
    }

    fn check_limits(&self, found: &mut Collector) {
        let rl = &self.rate_limits;
        let mut scoped: Vec<(String, &Limits)> = Vec::new();
        scoped.extend(
            rl.global
                .iter()
                .map(|l| ("rate_limits.global".to_string(), l)),
        );
        scoped.extend(
            rl.default
                .iter()
                .map(|l| ("rate_limits.default".to_string(), l)),
        );
        for (scope, map) in [
            ("per_user", &rl.per_user),
            ("per_team", &rl.per_team),
            ("per_workspace", &rl.per_workspace),
            ("per_key", &rl.per_key),
        ] {
            scoped.extend(
                map.iter()
                    .map(|(k, l)| (format!("rate_limits.{scope}.{k}"), l)),
            );
        }
        for (i, rule) in rl.rules.iter().enumerate() {
            for problem in rule.problems() {
                found.add(
                    format!("rate_limits.rules[{i}].{}", problem.path),
                    problem.message,
                );
            }
        }
        for (at, limits) in scoped {
            if let Some(problem) = limits.budget_problem() {
                found.add(format!("{at}.{}", problem.path), problem.message);
            }
        }
        if rl.store.kind == crate::LimitStoreKind::Redis
            && rl.store.url.as_deref().is_none_or(str::is_empty)
        {
            found.add(
                "rate_limits.store.url",
                "required when rate_limits.store.kind is redis",
            );
        }
    }
}

/// Headers whose values the gateway computes per call.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

impl Provider {
    /// What is wrong with this provider on its own, at paths relative to it, so the
    /// operator can refuse the one route at fault and keep the rest of the gateway.
    pub fn problems(&self) -> Vec<Problem> {
        use crate::ProviderKind::*;
        let mut found = Collector(Vec::new());
        if matches!(self.kind, OpenaiCompatible | AzureOpenai) && self.base_url.is_none() {
            found.add(
                "base_url",
                format!("required for type {}", self.kind.as_str()),
            );
        }
        // An unset `${VAR}` leaves the provider inactive rather than the file invalid.
        if let Some(url) = self.base_url.as_deref().filter(|u| !u.contains("${")) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                found.add(
                    "base_url",
                    format!("`{url}` must start with http:// or https://"),
                );
            }
        }
        if self.kind == Vertex {
            for (field, value) in [("project", &self.project), ("region", &self.region)] {
                if value.as_deref().is_none_or(str::is_empty) {
                    found.add(field, "required for type vertex");
                }
            }
        }
        let t = self.timeouts;
        if t.first_byte_ms > t.total_ms {
            found.add("timeouts.first_byte_ms", "may not exceed total_ms");
        }
        for (field, v) in [
            ("connect_ms", t.connect_ms),
            ("first_byte_ms", t.first_byte_ms),
            ("total_ms", t.total_ms),
            ("idle_ms", t.idle_ms),
        ] {
            if v == 0 {
                found.add(format!("timeouts.{field}"), "must be greater than 0");
            }
        }
        for (name, value) in &self.headers {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || !name.bytes().all(token) {
                found.add(format!("headers.{name}"), "is not a valid header name");
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                found.add(
                    format!("headers.{name}"),
                    "is set by the gateway itself and may not be configured",
                );
            }
            // The value is a secret: the problem never repeats it.
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                found.add(
                    format!("headers.{name}"),
                    "value may not hold line breaks or NUL",
                );
            }
        }
        for (model, price) in &self.pricing {
            let prices = [
                Some(price.input_per_mtok),
                Some(price.output_per_mtok),
                price.cache_read_per_mtok,
                price.cache_write_per_mtok,
            ];
            if prices.into_iter().flatten().any(|v| v.is_nan() || v < 0.0) {
                found.add(format!("pricing.{model}"), "prices may not be negative");
            }
        }
        found.0
    }
}

impl LimitRule {
    /// What is wrong with this rule on its own, at paths relative to it.
    pub fn problems(&self) -> Vec<Problem> {
        let mut found = Collector(Vec::new());
        if let Some(model) = &self.model {
            if let Err(e) = glob::Pattern::new(model) {
                found.add("model", format!("bad glob `{model}`: {}", e.msg));
            }
        }
        let scoped = std::iter::once(("limits".to_string(), &self.limits)).chain(
            self.overrides
                .iter()
                .map(|(k, l)| (format!("overrides.{k}"), l)),
        );
        for (at, limits) in scoped {
            if let Some(problem) = limits.budget_problem() {
                found.add(format!("{at}.{}", problem.path), problem.message);
            }
        }
        found.0
    }
}

impl Limits {
    fn budget_problem(&self) -> Option<Problem> {
        let budget = self.budget_usd_per_day?;
        (budget.is_nan() || budget < 0.0).then(|| Problem {
            path: "budget_usd_per_day".into(),
            message: "may not be negative".into(),
        })
    }
}

/// Whether a route's model entry is a pattern rather than an exact name.
pub fn is_glob(model: &str) -> bool {
    model.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use crate::parse_document;

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let doc = r#"
providers:
  anthropic: { type: anthropic }
  compat: { type: openai-compatible }
routes:
  - { models: ["claude-*"], provider: anthropic, fallback: [bedrock] }
  - { models: ["gpt-4o"], provider: openai }
  - { models: ["x"], provider: anthropic }
  - { models: ["x"], provider: compat }
  - { models: ["[oops"], provider: compat }
auth:
  keys: [ { id: k1, sha256: "nothex" } ]
"#;
        let err = parse_document(doc, |_| None).expect_err("invalid");
        let text = err.to_string();
        let expected = [
            "providers.compat.base_url: required for type openai-compatible",
            "routes[0].fallback[0]: unknown provider `bedrock`; known: anthropic, compat",
            "routes[1].provider: unknown provider `openai`; known: anthropic, compat",
            "routes[3].models[0]: `x` is already routed by routes[2] at priority 1",
            "routes[4].models[0]: bad glob `[oops`",
            "auth.keys[0].sha256: must be the 64-character hex SHA-256 of the key",
        ];
        for line in expected {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
        assert_eq!(text.lines().count(), expected.len(), "{text}");
    }
}
