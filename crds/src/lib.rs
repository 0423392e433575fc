//! The custom resources platform engineers apply (group `ai-gateway.dev`, version
//! `v1alpha1`). Types shared with the config snapshot (provider kinds, limits,
//! timeouts, prices) are the snapshot's own, so each is written once. The YAML in
//! `crds/yaml/` is generated from these types by `crdgen`, never edited by hand.

use ai_gateway_snapshot::{
    AuditSink, AuthMode, AutoRouting, BudgetAlerts, CacheSettings, CascadeMode, CircuitBreaker,
    LimitRule, LimitStoreKind, ModelPrice, ProviderKind, Retries, SkillConfig, Timeouts,
    TokenReduction, UnpricedModels,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const GROUP: &str = "ai-gateway.dev";

/// Longest model name or upstream id a route may name (a Bedrock ARN fits).
const MODEL_NAME_MAX: u32 = 512;

/// One data-plane deployment behind the `ai-gateway` Service.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ai-gateway.dev",
    version = "v1alpha1",
    kind = "AIGateway",
    plural = "aigateways",
    shortname = "aigw",
    namespaced,
    status = "AIGatewayStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Config","type":"string","jsonPath":".status.configVersion"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Applied","type":"integer","jsonPath":".status.appliedReplicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AIGatewaySpec {
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// The data-plane image; the operator's own version when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    #[serde(default)]
    pub service: ServiceSpec,
    #[serde(default)]
    pub auth: AuthSpec,
    #[serde(default)]
    pub audit: AuditSpec,
    #[serde(default)]
    pub rate_limit_store: RateLimitStoreSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_request_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_max_tokens: Option<u32>,
    /// Most messages one request may carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_messages: Option<u32>,
    /// Largest `max_tokens` a request may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens_limit: Option<u64>,
    /// Serve only models a ProviderRoute lists: `X-Provider` and `provider/model` then
    /// choose among the routes and never reach a model no route names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_models_only: Option<bool>,
    /// The model a chat call that names none gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub default_model: Option<String>,
    /// Models (names or globs) local providers (Ollama) may serve; others get a 400.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 256)))]
    pub local_models: Vec<String>,
    /// Browser origins allowed to call the gateway from a web page (CORS), or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 512)))]
    pub cors_origins: Vec<String>,
    /// Response cache for deterministic calls (temperature 0); on, in memory, one hour,
    /// unless set otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSettings>,
    /// `model: "auto"`: the models of the simple and complex tiers (on, Sonnet and Opus,
    /// unless set otherwise), an optional local tier, and the cascade between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_routing: Option<AutoRouting>,
    /// Alerts at shares of a daily limit (80 % and 100 % unless set), with an optional
    /// Slack-compatible webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_alerts: Option<BudgetAlerts>,
    /// Prefix-stable rewrites that cut billed input tokens (file dedupe, IDE
    /// boilerplate, diff-first, prompt-cache breakpoints); all off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reduction: Option<TokenReduction>,
    /// Skills of this gateway's own, by id (`X-Gateway-Skill: <id>`), beside the
    /// built-in ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub skills: BTreeMap<String, SkillConfig>,
}

fn default_replicas() -> i32 {
    2
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default = "default_service_type")]
    pub r#type: String,
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            r#type: default_service_type(),
            port: default_port(),
        }
    }
}

fn default_service_type() -> String {
    "ClusterIP".into()
}

fn default_port() -> i32 {
    8090
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.podIdentity) || !self.podIdentity || self.mode == 'kubernetes'").message("podIdentity needs mode kubernetes")
)]
pub struct AuthSpec {
    #[serde(default = "default_auth_mode")]
    pub mode: AuthMode,
    /// Label selector of the Secrets that hold gateway keys (one key per Secret, with
    /// `user`, `team` and `workspace` labels).
    #[serde(default = "default_key_selector")]
    pub key_selector: String,
    /// `kubernetes` mode: callers with no key or token (the aws cli, boto3) are known
    /// by their pod's address. Sound only behind the gateway's NetworkPolicy, with no
    /// proxy or NAT between workspace pods and the gateway; the data plane needs
    /// `list`/`watch` on pods (chart value `dataplaneIdentity.pods`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_identity: bool,
}

/// A gateway in a cluster authenticates its callers unless told otherwise.
impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            mode: default_auth_mode(),
            key_selector: default_key_selector(),
            pod_identity: false,
        }
    }
}

fn default_auth_mode() -> AuthMode {
    AuthMode::Keys
}

fn default_key_selector() -> String {
    ai_gateway_snapshot::DEFAULT_KEY_SELECTOR.into()
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditSpec {
    #[serde(default)]
    pub sink: AuditSink,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Record prompts and completions too (off unless a gateway opts in).
    #[serde(default)]
    pub log_bodies: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.kind != 'redis' || has(self.url) || has(self.urlSecretRef)").message("a redis store needs url or urlSecretRef"),
    validation = Rule::new("!(has(self.url) && has(self.urlSecretRef))").message("set url or urlSecretRef, not both")
)]
pub struct RateLimitStoreSpec {
    #[serde(default)]
    pub kind: LimitStoreKind,
    /// `redis://host:6379/0`, or a Secret key holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    #[serde(default)]
    pub fail_open: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIGatewayStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub applied_replicas: i32,
}

/// One upstream provider reachable through a gateway.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ai-gateway.dev",
    version = "v1alpha1",
    kind = "ProviderRoute",
    plural = "providerroutes",
    shortname = "airoute",
    namespaced,
    validation = Rule::new("!has(self.spec.fallback) || !self.spec.fallback.exists(f, f == self.metadata.name)").message("a route cannot fall back to itself").field_path(".spec.fallback"),
    status = "ObjectStatus",
    printcolumn = r#"{"name":"Gateway","type":"string","jsonPath":".spec.gatewayRef"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Refs","type":"string","jsonPath":".status.conditions[?(@.type==\"ResolvedRefs\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.type != 'bedrock' || has(self.region)").message("a bedrock route needs a region"),
    validation = Rule::new("self.type != 'vertex' || (has(self.region) && has(self.project))").message("a vertex route needs a project and a region"),
    validation = Rule::new("(has(self.models) && size(self.models) > 0) || (has(self.aliases) && size(self.aliases) > 0)").message("a route serves at least one model or alias")
)]
pub struct ProviderRouteSpec {
    /// The AIGateway (same namespace) this route belongs to.
    #[schemars(length(max = 253))]
    pub gateway_ref: String,
    pub r#type: ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// AWS region (Bedrock), or Vertex AI location (`us-east5`, `global`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub region: Option<String>,
    /// Google Cloud project (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,
    /// Model names and globs this provider serves (`claude-*`); a route of aliases
    /// alone needs none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = MODEL_NAME_MAX)))]
    pub models: Vec<String>,
    /// Client model name → upstream id (`claude-sonnet-4-5` → a Bedrock inference profile).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 256,
        "additionalProperties" = {"type": "string", "maxLength": MODEL_NAME_MAX},
    ))]
    pub aliases: BTreeMap<String, String>,
    /// Lower is tried first.
    #[serde(default = "default_priority")]
    #[schemars(range(min = 0))]
    pub priority: u32,
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1))]
    pub weight: u32,
    /// Other ProviderRoutes of the same gateway tried when this one fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 253)))]
    pub fallback: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pricing: BTreeMap<String, ModelPrice>,
    /// The most output tokens the provider's models take; translated requests asking
    /// for more are lowered to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_output_tokens: Option<u32>,
    /// How long this route's deterministic answers are served again (the gateway's
    /// cache TTL when unset); 0 never caches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<u64>,
    /// Token reduction for calls this route serves, instead of the gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reduction: Option<TokenReduction>,
    /// The cascade mode for `auto` calls whose tier this route serves, instead of the
    /// gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade: Option<CascadeMode>,
    /// Extra headers sent to the provider on every call, e.g. the Cloudflare Access
    /// service token in front of an Ollama. Values from a Secret are never logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: Vec<RouteHeader>,
    /// Certificate authorities the provider's TLS certificate may chain to, besides
    /// the public roots: a provider behind an internal CA, or an egress proxy that
    /// re-signs TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.caCertificates) || self.caCertificates.contains('-----BEGIN CERTIFICATE-----')").message("caCertificates holds PEM certificates (-----BEGIN CERTIFICATE-----)")
)]
pub struct UpstreamTls {
    /// PEM certificates of the extra certificate authorities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_certificates: Option<String>,
    /// Also trust the data-plane image's own certificate store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_roots: bool,
}

/// One header for the provider: a literal value, or a Secret's key.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.value) != has(self.valueFrom)").message("set value or valueFrom: one, not both")
)]
pub struct RouteHeader {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<SecretKeyRef>,
}

fn default_priority() -> u32 {
    1
}

fn default_weight() -> u32 {
    1
}

/// Where a route's credentials live: a Secret, and which of its keys hold what.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_key: Option<String>,
    /// The key holding a Google service-account key's JSON (Vertex AI); without it the
    /// data plane asks the metadata server (workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key_key: Option<String>,
}

/// Limits for the callers of a gateway.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ai-gateway.dev",
    version = "v1alpha1",
    kind = "RateLimitPolicy",
    plural = "ratelimitpolicies",
    shortname = "airlp",
    namespaced,
    status = "ObjectStatus",
    printcolumn = r#"{"name":"Gateway","type":"string","jsonPath":".spec.gatewayRef"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(cel, validation = Rule::new("size(self.rules) > 0").message("a policy has at least one rule"))]
pub struct RateLimitPolicySpec {
    #[schemars(length(max = 253))]
    pub gateway_ref: String,
    /// Each rule counts per subject (global, key, user, team, workspace), optionally per
    /// model, with per-subject overrides.
    #[schemars(length(max = 64))]
    pub rules: Vec<LimitRule>,
    /// Output tokens reserved for a request that sets no `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_output_tokens: Option<u64>,
    /// A call to a model with no price, from a caller a USD budget applies to:
    /// `refuse` (the default, and what wins when policies differ) or `highest-price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced_models: Option<UnpricedModels>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The three definitions as the API server takes them: generated from the types, then
/// made acceptable to it (see [`for_the_api_server`]).
pub fn crds() -> Result<Vec<CustomResourceDefinition>, serde_json::Error> {
    use kube::CustomResourceExt;
    [
        AIGateway::crd(),
        ProviderRoute::crd(),
        RateLimitPolicy::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let mut doc = serde_json::to_value(crd)?;
        for_the_api_server(&mut doc);
        serde_json::from_value(doc)
    })
    .collect()
}

/// The three definitions, as `kubectl apply` takes them.
pub fn crd_yaml() -> Result<Vec<(String, String)>, CrdError> {
    crds()?
        .into_iter()
        .map(|crd| {
            let plural = crd.spec.names.plural.clone();
            Ok((
                format!("{GROUP}_{plural}.yaml"),
                serde_yaml::to_string(&crd)?,
            ))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("the generated definition does not round-trip: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the definition cannot be written as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// schemars writes Rust's unsigned widths as `format: uint32` / `uint64`, which the API
/// server does not know and warns about on every apply: the formats go, and a `u32`
/// keeps its range as `maximum`. A string enum gets the `maxLength` of its longest
/// value, so the CEL cost estimator can bound a rule that compares it.
fn for_the_api_server(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(node) => {
            match node.get("format").and_then(Value::as_str) {
                Some("uint32") => {
                    node.remove("format");
                    node.entry("maximum").or_insert(u32::MAX.into());
                }
                Some(f) if f.starts_with("uint") => {
                    node.remove("format");
                }
                _ => {}
            }
            let longest_value = node
                .get("enum")
                .and_then(Value::as_array)
                .and_then(|values| {
                    values
                        .iter()
                        .map(|v| v.as_str().map(str::len))
                        .collect::<Option<Vec<_>>>()
                        .and_then(|lengths| lengths.into_iter().max())
                });
            if let Some(longest) = longest_value {
                node.entry("maxLength").or_insert(longest.into());
            }
            node.values_mut().for_each(for_the_api_server);
        }
        Value::Array(items) => items.iter_mut().for_each(for_the_api_server),
        _ => {}
    }
}
