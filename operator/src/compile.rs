//! `compile()`: custom resources and the Secrets they name → one gateway's snapshot,
//! plus a verdict for every object. Pure: no I/O, so golden tests cover the logic.
//!
//! Nothing here fails as a whole: an object at fault gets a condition saying why and
//! is left out, and the rest of the gateway keeps working.

use ai_gateway_crds::{AIGateway, ProviderRoute, RateLimitPolicy};
use ai_gateway_snapshot::{
    ApiKey, Audit, Auth, GatewaySettings, LimitStore, Provider, RateLimits, Route, Snapshot,
    UnpricedModels,
};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde::Serialize;
use std::collections::BTreeMap;

/// Labels on a key Secret naming its caller.
pub use ai_gateway_snapshot::{TEAM_LABEL, USER_LABEL, WORKSPACE_LABEL};
/// Data keys of a key Secret: the plaintext key, and optionally the SigV4 secret.
pub const KEY_DATA: &str = "key";
pub const SIGV4_DATA: &str = "sigv4-secret";

/// `spec.auth.keySelector`, as the operator picks key Secrets and the CLI makes them:
/// `label=value`, or `label` alone for any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySelector {
    pub label: String,
    pub value: String,
}

impl KeySelector {
    pub fn parse(selector: &str) -> Self {
        let (label, value) = selector.split_once('=').unwrap_or((selector, ""));
        Self {
            label: label.to_string(),
            value: value.to_string(),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels
            .get(&self.label)
            .is_some_and(|v| self.value.is_empty() || *v == self.value)
    }

    /// The label selector for a list call.
    pub fn query(&self) -> String {
        if self.value.is_empty() {
            self.label.clone()
        } else {
            format!("{}={}", self.label, self.value)
        }
    }
}

impl std::fmt::Display for KeySelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.query())
    }
}

/// A status condition to set on an object, as the reconciler will write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub r#type: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    pub fn ok(r#type: &'static str, reason: &'static str) -> Self {
        Self {
            r#type,
            status: true,
            reason,
            message: String::new(),
        }
    }

    pub fn fail(r#type: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            r#type,
            status: false,
            reason,
            message: message.into(),
        }
    }
}

pub struct Inputs<'a> {
    pub gateway: &'a AIGateway,
    /// Every ProviderRoute and RateLimitPolicy in the namespace; those for other
    /// gateways are ignored.
    pub routes: &'a [ProviderRoute],
    pub policies: &'a [RateLimitPolicy],
    /// Secrets of the namespace by name.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// Secrets matching the gateway's key selector.
    pub key_secrets: &'a [Secret],
}

#[derive(Debug, Serialize)]
pub struct Compiled {
    pub snapshot: Snapshot,
    pub routes: BTreeMap<String, Vec<Verdict>>,
    pub policies: BTreeMap<String, Vec<Verdict>>,
    pub gateway: Vec<Verdict>,
}

/// A Secret's value for `key`, trimmed, from `data` or (as written) `stringData`.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone())
            .ok()
            .map(|s| s.trim().to_string());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.trim().to_string())
}

pub fn compile(inputs: &Inputs<'_>) -> Compiled {
    let gateway_name = inputs.gateway.name_any();
    let spec = &inputs.gateway.spec;
    let mut routes_out = BTreeMap::new();
    let mut policies_out = BTreeMap::new();
    let mut gateway_verdicts = Vec::new();

    let mut mine: Vec<&ProviderRoute> = inputs
        .routes
        .iter()
        .filter(|r| r.spec.gateway_ref == gateway_name)
        .collect();
    mine.sort_by_key(|r| r.name_any());
    let route_names: Vec<String> = mine.iter().map(|r| r.name_any()).collect();

    let mut providers = BTreeMap::new();
    let mut routes = Vec::new();
    // (exact model, priority) → the route that claimed it first.
    let mut claimed: BTreeMap<(String, u32), String> = BTreeMap::new();
    for route in mine {
        let name = route.name_any();
        let s = &route.spec;
        let mut verdicts = Vec::new();
        let bad_glob = s
            .models
            .iter()
            .chain(s.aliases.keys())
            .find(|m| ai_gateway_snapshot::is_glob(m) && glob::Pattern::new(m).is_err());
        if let Some(bad) = bad_glob {
            verdicts.push(Verdict::fail(
                "Accepted",
                "InvalidModelPattern",
                format!("`{bad}` is not a valid glob"),
            ));
            routes_out.insert(name, verdicts);
            continue;
        }
        let conflict = s
            .models
            .iter()
            .chain(s.aliases.keys())
            .filter(|m| !ai_gateway_snapshot::is_glob(m))
            .find_map(|m| {
                claimed
                    .get(&(m.clone(), s.priority))
                    .map(|owner| (m.clone(), owner.clone()))
            });
        if let Some((model, owner)) = conflict {
            verdicts.push(Verdict::fail(
                "Accepted",
                "ModelConflict",
                format!("`{model}` is already routed by ProviderRoute `{owner}` at priority {}; give one of them another priority", s.priority),
            ));
            routes_out.insert(name, verdicts);
            continue;
        }
        let mut provider = Provider::new(s.r#type);
        provider.base_url = s.endpoint.clone();
        provider.region = s.region.clone();
        provider.timeouts = s.timeouts.unwrap_or_default();
        provider.retries = s.retries.unwrap_or_default();
        provider.circuit_breaker = s.circuit_breaker.unwrap_or_default();
        provider.pricing = s.pricing.clone();
        provider.max_output_tokens = s.max_output_tokens;
        let mut unresolved = Vec::new();
        for header in &s.headers {
            let value = match (&header.value, &header.value_from) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(from)) => inputs
                    .secrets
                    .get(&from.name)
                    .and_then(|secret| secret_value(secret, &from.key)),
                (None, None) => None,
            };
            match value {
                Some(v) => {
                    provider.headers.insert(header.name.clone(), v);
                }
                None => unresolved.push(match &header.value_from {
                    Some(from) => format!(
                        "header `{}`: Secret `{}` key `{}` not found",
                        header.name, from.name, from.key
                    ),
                    None => format!("header `{}` has no value", header.name),
                }),
            }
        }
        if !unresolved.is_empty() {
            verdicts.push(Verdict::ok("Accepted", "Accepted"));
            verdicts.push(Verdict::fail(
                "ResolvedRefs",
                "SecretKeyNotFound",
                unresolved.join("; "),
            ));
            routes_out.insert(name, verdicts);
            continue;
        }
        // The snapshot's own checks, per route: the route at fault is left out and the
        // rest of the gateway still compiles.
        let problems = provider.problems();
        if !problems.is_empty() {
            let message = problems
                .iter()
                .map(|p| {
                    let field = if p.path == "base_url" {
                        "endpoint"
                    } else {
                        &p.path
                    };
                    format!("{field}: {}", p.message)
                })
                .collect::<Vec<_>>()
                .join("; ");
            verdicts.push(Verdict::fail("Accepted", "InvalidRoute", message));
            routes_out.insert(name, verdicts);
            continue;
        }
        if let Some(creds) = &s.credentials_ref {
            let Some(secret) = inputs.secrets.get(&creds.secret_name) else {
                verdicts.push(Verdict::ok("Accepted", "Accepted"));
                verdicts.push(Verdict::fail(
                    "ResolvedRefs",
                    "SecretNotFound",
                    format!(
                        "Secret `{}` does not exist in this namespace",
                        creds.secret_name
                    ),
                ));
                routes_out.insert(name, verdicts);
                continue;
            };
            let wanted = [
                (&creds.api_key_key, &mut provider.api_key),
                (&creds.access_key_id_key, &mut provider.access_key_id),
                (
                    &creds.secret_access_key_key,
                    &mut provider.secret_access_key,
                ),
                (&creds.session_token_key, &mut provider.session_token),
            ];
            let mut missing = Vec::new();
            for (key, slot) in wanted {
                if let Some(key) = key {
                    match secret_value(secret, key) {
                        Some(v) => *slot = Some(v),
                        None => missing.push(key.clone()),
                    }
                }
            }
            if !missing.is_empty() {
                verdicts.push(Verdict::ok("Accepted", "Accepted"));
                verdicts.push(Verdict::fail(
                    "ResolvedRefs",
                    "SecretKeyNotFound",
                    format!(
                        "Secret `{}` has no key {}",
                        creds.secret_name,
                        missing.join(", ")
                    ),
                ));
                routes_out.insert(name, verdicts);
                continue;
            }
        }
        let unknown_fallbacks: Vec<&String> = s
            .fallback
            .iter()
            .filter(|f| !route_names.contains(f))
            .collect();
        for model in s.models.iter().chain(s.aliases.keys()) {
            if !ai_gateway_snapshot::is_glob(model) {
                claimed.insert((model.clone(), s.priority), name.clone());
            }
        }
        let fallback: Vec<String> = s
            .fallback
            .iter()
            .filter(|f| route_names.contains(f))
            .cloned()
            .collect();
        if !s.models.is_empty() {
            routes.push(Route {
                models: s.models.clone(),
                provider: name.clone(),
                upstream_model: None,
                priority: s.priority,
                weight: s.weight,
                fallback: fallback.clone(),
                cache_ttl_seconds: s.cache_ttl_seconds,
            });
        }
        for (alias, upstream) in &s.aliases {
            routes.push(Route {
                models: vec![alias.clone()],
                provider: name.clone(),
                upstream_model: Some(upstream.clone()),
                priority: s.priority,
                weight: s.weight,
                fallback: fallback.clone(),
                cache_ttl_seconds: s.cache_ttl_seconds,
            });
        }
        providers.insert(name.clone(), provider);
        verdicts.push(Verdict::ok("Accepted", "Accepted"));
        verdicts.push(if unknown_fallbacks.is_empty() {
            Verdict::ok("ResolvedRefs", "ResolvedRefs")
        } else {
            Verdict::fail(
                "ResolvedRefs",
                "FallbackNotFound",
                format!(
                    "fallback {} names no ProviderRoute of gateway `{gateway_name}`; it is left out",
                    unknown_fallbacks.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                ),
            )
        });
        routes_out.insert(name, verdicts);
    }
    // Fallbacks may only name routes that made it in.
    for route in &mut routes {
        route.fallback.retain(|f| providers.contains_key(f));
    }

    let mut rate_limits = RateLimits::default();
    let mut unpriced: Vec<UnpricedModels> = Vec::new();
    let mut mine: Vec<&RateLimitPolicy> = inputs
        .policies
        .iter()
        .filter(|p| p.spec.gateway_ref == gateway_name)
        .collect();
    mine.sort_by_key(|p| p.name_any());
    for policy in mine {
        let name = policy.name_any();
        let problems: Vec<String> = policy
            .spec
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, rule)| {
                rule.problems()
                    .into_iter()
                    .map(move |p| format!("rules[{i}].{}: {}", p.path, p.message))
            })
            .collect();
        if !problems.is_empty() {
            let message = problems.join("; ");
            policies_out.insert(
                name,
                vec![Verdict::fail("Accepted", "InvalidRule", message)],
            );
            continue;
        }
        rate_limits.rules.extend(policy.spec.rules.iter().cloned());
        if let Some(t) = policy.spec.default_output_tokens {
            rate_limits.default_output_tokens = t;
        }
        unpriced.extend(policy.spec.unpriced_models);
        policies_out.insert(name, vec![Verdict::ok("Accepted", "Accepted")]);
    }
    // Refusing is the safe reading when policies disagree.
    rate_limits.unpriced_models = if unpriced.contains(&UnpricedModels::Refuse) {
        UnpricedModels::Refuse
    } else {
        unpriced.first().copied().unwrap_or_default()
    };
    let store = &spec.rate_limit_store;
    let url = match (&store.url, &store.url_secret_ref) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(r)) => match inputs
            .secrets
            .get(&r.name)
            .and_then(|s| secret_value(s, &r.key))
        {
            Some(u) => Some(u),
            None => {
                gateway_verdicts.push(Verdict::fail(
                    "ResolvedRefs",
                    "SecretKeyNotFound",
                    format!(
                        "rate-limit store URL: Secret `{}` key `{}` not found",
                        r.name, r.key
                    ),
                ));
                None
            }
        },
        (None, None) => None,
    };
    if store.kind == ai_gateway_snapshot::LimitStoreKind::Redis && url.is_none() {
        // Falling back to per-replica memory would multiply every limit by the replica count.
        gateway_verdicts.push(Verdict::fail(
            "Ready",
            "RateLimitStoreUnresolved",
            "rateLimitStore.kind is redis but no URL resolved; limits are per replica until it does",
        ));
    }
    rate_limits.store = LimitStore {
        kind: if url.is_some() {
            store.kind
        } else {
            Default::default()
        },
        url,
        fail_open: store.fail_open,
    };

    let mut keys: Vec<ApiKey> = inputs
        .key_secrets
        .iter()
        .filter_map(|secret| {
            let plaintext = secret_value(secret, KEY_DATA)?;
            let labels = secret.labels();
            Some(ApiKey {
                id: secret.name_any(),
                sha256: ai_gateway_snapshot::key_sha256(&plaintext),
                user: labels.get(USER_LABEL).cloned(),
                team: labels.get(TEAM_LABEL).cloned(),
                workspace: labels.get(WORKSPACE_LABEL).cloned(),
                sigv4_secret: secret_value(secret, SIGV4_DATA),
            })
        })
        .collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    // Two Secrets with one plaintext would make two callers one identity.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    keys.retain(|k| match seen.get(&k.sha256) {
        Some(first) => {
            gateway_verdicts.push(Verdict::fail(
                "ResolvedRefs",
                "DuplicateKey",
                format!(
                    "key Secret `{}` holds the same key as `{first}`; it is left out",
                    k.id
                ),
            ));
            false
        }
        None => {
            seen.insert(k.sha256.clone(), k.id.clone());
            true
        }
    });
    keys.retain(|k| {
        let short = k.sigv4_secret.as_deref().is_some_and(|s| s.len() < 16);
        if short {
            gateway_verdicts.push(Verdict::fail(
                "ResolvedRefs",
                "WeakSigV4Secret",
                format!(
                    "key Secret `{}`: sigv4-secret must be at least 16 characters; it is left out",
                    k.id
                ),
            ));
        }
        !short
    });

    let defaults = GatewaySettings::default();
    let mut snapshot = Snapshot {
        version: None,
        gateway: GatewaySettings {
            max_request_bytes: spec.max_request_bytes.unwrap_or(defaults.max_request_bytes),
            default_max_tokens: spec
                .default_max_tokens
                .unwrap_or(defaults.default_max_tokens),
            log_bodies: spec.audit.log_bodies,
            max_messages: spec.max_messages.unwrap_or(defaults.max_messages),
            max_tokens_limit: spec.max_tokens_limit.unwrap_or(defaults.max_tokens_limit),
            body_read_timeout_ms: defaults.body_read_timeout_ms,
            routed_models_only: spec.routed_models_only.unwrap_or_default(),
            max_buffered_request_bytes: defaults
                .max_buffered_request_bytes
                .max(spec.max_request_bytes.unwrap_or(defaults.max_request_bytes)),
        },
        providers,
        routes,
        auth: Auth {
            mode: spec.auth.mode,
            keys,
            pod_identity: spec.auth.pod_identity,
        },
        rate_limits,
        audit: Audit {
            sink: spec.audit.sink,
            path: spec.audit.path.clone(),
        },
        cache: {
            let mut cache = spec.cache.clone().unwrap_or_default();
            cache.partition.get_or_insert_with(|| {
                format!(
                    "{}/{}",
                    inputs.gateway.namespace().unwrap_or_default(),
                    gateway_name
                )
            });
            cache
        },
    };
    snapshot.version = Some(snapshot.content_hash());
    match snapshot.validate() {
        Ok(()) => gateway_verdicts.push(Verdict::ok("ConfigValid", "Compiled")),
        Err(problems) => gateway_verdicts.push(Verdict::fail(
            "ConfigValid",
            "InvalidSnapshot",
            problems.to_string(),
        )),
    }
    Compiled {
        snapshot,
        routes: routes_out,
        policies: policies_out,
        gateway: gateway_verdicts,
    }
}
