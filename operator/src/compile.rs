//! `compile()`: custom resources and the Secrets they name → one gateway's snapshot,
//! plus a verdict for every object. Pure: no I/O, so golden tests cover the logic.
//!
//! Nothing here fails as a whole: an object at fault gets a condition saying why and
//! is left out, and the rest of the gateway keeps working.

mod keys;
mod policies;
mod routes;
mod store;

pub use keys::{is_weak_sigv4_secret, KEY_DATA, MIN_SIGV4_SECRET, SIGV4_DATA};

use ai_gateway_crds::{AIGateway, AIGatewaySpec, ProviderRoute, RateLimitPolicy};
use ai_gateway_snapshot::{Audit, Auth, CacheSettings, GatewaySettings, Snapshot};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde::Serialize;
use std::collections::BTreeMap;

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

/// The steps in order: routes, policies, the limit store, keys, then the snapshot they
/// make and whether it validates.
pub fn compile(inputs: &Inputs<'_>) -> Compiled {
    let gateway = inputs.gateway;
    let gateway_name = gateway.name_any();
    let spec = &gateway.spec;
    let mut gateway_verdicts = Vec::new();

    let routes = routes::compile_routes(inputs, &gateway_name);
    let (mut rate_limits, policy_verdicts) =
        policies::compile_policies(inputs.policies, &gateway_name);
    rate_limits.store = store::limit_store(
        &spec.rate_limit_store,
        inputs.secrets,
        &mut gateway_verdicts,
    );
    gateway_verdicts.push(store::shared_or_degraded(spec.replicas, &rate_limits.store));
    let keys = keys::api_keys(inputs.key_secrets, &mut gateway_verdicts);

    let mut snapshot = Snapshot {
        version: None,
        gateway: gateway_settings(spec),
        providers: routes.providers,
        routes: routes.routes,
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
        cache: cache_settings(gateway),
        auto_routing: spec.auto_routing.clone().unwrap_or_default(),
        token_reduction: spec.token_reduction.unwrap_or_default(),
        budget_alerts: spec.budget_alerts.clone().unwrap_or_default(),
        skills: spec.skills.clone(),
    };
    snapshot.version = Some(snapshot.content_hash());
    gateway_verdicts.push(validity(&snapshot));
    Compiled {
        snapshot,
        routes: routes.verdicts,
        policies: policy_verdicts,
        gateway: gateway_verdicts,
    }
}

/// The objects that name `gateway_name`, in name order (which of two conflicting
/// objects wins must not depend on the order the API server lists them in).
fn members_of<'a, K: ResourceExt>(
    objects: &'a [K],
    gateway_name: &str,
    gateway_ref: impl Fn(&K) -> &String,
) -> Vec<&'a K> {
    let mut mine: Vec<&K> = objects
        .iter()
        .filter(|o| gateway_ref(o) == gateway_name)
        .collect();
    mine.sort_by_key(|o| o.name_any());
    mine
}

fn gateway_settings(spec: &AIGatewaySpec) -> GatewaySettings {
    let defaults = GatewaySettings::default();
    let max_request_bytes = spec.max_request_bytes.unwrap_or(defaults.max_request_bytes);
    GatewaySettings {
        max_request_bytes,
        default_max_tokens: spec
            .default_max_tokens
            .unwrap_or(defaults.default_max_tokens),
        log_bodies: spec.audit.log_bodies,
        max_messages: spec.max_messages.unwrap_or(defaults.max_messages),
        max_tokens_limit: spec.max_tokens_limit.unwrap_or(defaults.max_tokens_limit),
        body_read_timeout_ms: defaults.body_read_timeout_ms,
        routed_models_only: spec.routed_models_only.unwrap_or_default(),
        default_model: spec.default_model.clone(),
        local_models: spec.local_models.clone(),
        cors_origins: spec.cors_origins.clone(),
        // Room for at least one request of the largest size.
        max_buffered_request_bytes: defaults.max_buffered_request_bytes.max(max_request_bytes),
    }
}

/// The gateway's cache settings, partitioned by `<namespace>/<name>` unless set.
fn cache_settings(gateway: &AIGateway) -> CacheSettings {
    let mut cache = gateway.spec.cache.clone().unwrap_or_default();
    cache.partition.get_or_insert_with(|| {
        format!(
            "{}/{}",
            gateway.namespace().unwrap_or_default(),
            gateway.name_any()
        )
    });
    cache
}

fn validity(snapshot: &Snapshot) -> Verdict {
    match snapshot.validate() {
        Ok(()) => Verdict::ok("ConfigValid", "Compiled"),
        Err(problems) => Verdict::fail("ConfigValid", "InvalidSnapshot", problems.to_string()),
    }
}
