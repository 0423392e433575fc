//! The config snapshot: the one contract between the operator and the data plane.
//!
//! The operator compiles custom resources into a [`Snapshot`] and pushes it; the data
//! plane standalone reads the same document from a YAML or JSON file. Everything the
//! data plane needs to serve is in it (routes, resolved credentials, key hashes, limits,
//! pricing), so a pod can serve from the snapshot alone.

mod document;
mod keys;
pub mod replies;
mod validate;

pub use document::{expand_env, parse_document, unresolved_reference, LoadError};
pub use keys::{
    key_sha256, new_key, random_hex, KeySelector, DEFAULT_KEY_SELECTOR, KEY_PREFIX, TEAM_LABEL,
    USER_LABEL, WORKSPACE_LABEL,
};
pub use validate::{is_glob, Problem, Problems};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Set by whoever compiled the snapshot; [`Snapshot::effective_version`] falls back
    /// to a content hash so two identical documents always carry the same version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub gateway: GatewaySettings,
    #[serde(default)]
    pub providers: BTreeMap<String, Provider>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default)]
    pub audit: Audit,
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub auto_routing: AutoRouting,
    #[serde(default, skip_serializing_if = "is_default")]
    pub token_reduction: TokenReduction,
    #[serde(default, skip_serializing_if = "is_default")]
    pub budget_alerts: BudgetAlerts,
    /// Skills of this gateway's own, by id, beside the built-in ones (a built-in id
    /// here replaces the built-in skill).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skills: BTreeMap<String, SkillConfig>,
}

/// A skill: a prompt put into a request's system prompt when a caller asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SkillConfig {
    #[cfg_attr(feature = "schema", schemars(length(max = 16384)))]
    pub prompt: String,
    /// What it is for, as `GET /v1/skills` lists it.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(max = 256)))]
    pub purpose: String,
    /// The tier a `model: "auto"` call with this skill takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<SkillTier>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SkillTier {
    /// The local tier when the gateway has one, else the simple tier.
    Local,
    Simple,
    Complex,
}

/// `model: "auto"` (or `"smartroute"`): the gateway scores the request and sends it to
/// the model of its tier, a routed model like any other (limits, fallback and
/// translation apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AutoRouting {
    pub enabled: bool,
    /// The model for requests that look simple.
    #[cfg_attr(feature = "schema", schemars(length(max = 256)))]
    pub simple: String,
    /// The model for complex reasoning, architecture and debugging.
    #[cfg_attr(feature = "schema", schemars(length(max = 256)))]
    pub complex: String,
    /// A local model (Ollama) tried first for requests that look simple; the simple
    /// tier is then what a cascade escalates to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = 256)))]
    pub local: Option<String>,
    /// Try the cheaper tier first and escalate when its answer fails a quality check.
    pub cascade: Cascade,
}

impl Default for AutoRouting {
    fn default() -> Self {
        Self {
            enabled: true,
            simple: "claude-sonnet-4-5".into(),
            complex: "claude-opus-4-5".into(),
            local: None,
            cascade: Cascade::default(),
        }
    }
}

/// A FrugalGPT-style cascade for `auto` calls: the chosen (cheaper) tier answers first;
/// an answer that fails the check is replaced by the next tier's. Off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Cascade {
    pub mode: CascadeMode,
    /// An answer shorter than this (in characters) fails, unless the question was short.
    pub min_response_chars: u32,
    /// Each cascade's outcome is appended here as one JSON line (for training a router).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = 1024)))]
    pub outcomes_file: Option<String>,
}

impl Default for Cascade {
    fn default() -> Self {
        Self {
            mode: CascadeMode::None,
            min_response_chars: 100,
            outcomes_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum CascadeMode {
    /// Answer from the chosen tier only.
    #[default]
    None,
    /// Judge the cheaper answer by heuristics (length, refusals, code asked for and
    /// missing, repetition, truncation) and escalate when it fails.
    Heuristic,
}

/// Alerts when a subject (user, team, workspace, key) has spent a share of a daily
/// limit (tokens or USD): an audit event, a metric and, when set, a webhook, once per
/// threshold per day per subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BudgetAlerts {
    /// Percentages of a daily limit that raise an alert.
    #[cfg_attr(feature = "schema", schemars(length(max = 8)))]
    pub thresholds_percent: Vec<u8>,
    /// A Slack-compatible incoming webhook (`{"text": …}` is POSTed to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = 2048)))]
    pub webhook_url: Option<String>,
}

impl Default for BudgetAlerts {
    fn default() -> Self {
        Self {
            thresholds_percent: vec![80, 100],
            webhook_url: None,
        }
    }
}

/// Rewrites that cut the input tokens a provider bills, each prefix-stable: a turn's
/// rewritten request begins with the previous turn's rewritten request, so provider
/// prompt caches keep hitting. All off unless turned on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenReduction {
    /// A file (tool result or fenced block) repeated unchanged later in a conversation
    /// is replaced by a reference to its first appearance.
    pub dedupe_files: bool,
    /// A paragraph an IDE repeats in every turn (Continue's, Cursor's instructions) is
    /// kept where it first appears and dropped from later messages.
    pub strip_boilerplate: bool,
    /// The system prompt asks for edits as unified diffs rather than whole files.
    pub diff_first: bool,
    /// OpenAI-format calls served by Claude (Anthropic, Vertex, Bedrock) get prompt-cache
    /// breakpoints on the system prompt, the tools and the conversation so far.
    pub cache_breakpoints: bool,
    /// Also rewrite Anthropic Messages callers (Claude Code), whose calls otherwise pass
    /// through untouched. Their system-prompt attribution block and `anthropic-*`
    /// headers are never altered.
    pub messages_api: bool,
}

impl TokenReduction {
    pub fn any(&self) -> bool {
        self.dedupe_files || self.strip_boilerplate || self.diff_first || self.cache_breakpoints
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Snapshot {
    /// The declared version, or `sha256:<16 hex>` of the canonical JSON content.
    pub fn effective_version(&self) -> String {
        match &self.version {
            Some(v) if !v.is_empty() => v.clone(),
            _ => self.content_hash(),
        }
    }

    pub fn content_hash(&self) -> String {
        let mut unversioned = self.clone();
        unversioned.version = None;
        // Serialising plain structs and BTreeMaps is deterministic, so equal content
        // always hashes equal.
        let canonical = serde_json::to_vec(&unversioned).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        format!("sha256:{}", &hex::encode(digest)[..16])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Largest request body accepted, in bytes (Anthropic accepts 32 MB).
    pub max_request_bytes: u64,
    /// `max_tokens` sent to Anthropic when an OpenAI caller sets none (Anthropic requires it).
    pub default_max_tokens: u32,
    /// Log prompts and completions in audit records; off unless a gateway opts in.
    pub log_bodies: bool,
    /// Most messages one request may carry (an agent's long history stays far below).
    pub max_messages: u32,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: u64,
    /// A request body must arrive within this (slow or stalled clients are cut off).
    pub body_read_timeout_ms: u64,
    /// Serve only models a route lists: `X-Provider` and `provider/model` then choose
    /// among the routes, and never reach a model no route names.
    pub routed_models_only: bool,
    /// Request bytes all connections together may hold while their bodies arrive; a
    /// body that finds no room is refused with 503 rather than risk the process's
    /// memory. Set when the gateway starts; a later config does not change it.
    pub max_buffered_request_bytes: u64,
    /// The model a chat call that names none gets (off unless set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
    /// Models (names or globs) local providers (Ollama) may serve; any other is refused
    /// with a 400. Empty: no list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub local_models: Vec<String>,
    /// Browser origins (`https://app.example.com`, or `*`) allowed to call the gateway
    /// from a web page (CORS). Empty: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 32 * 1024 * 1024,
            default_max_tokens: 4096,
            log_bodies: false,
            max_messages: 10_000,
            max_tokens_limit: 1_000_000,
            body_read_timeout_ms: 120_000,
            max_buffered_request_bytes: 128 * 1024 * 1024,
            routed_models_only: false,
            default_model: None,
            local_models: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

/// Responses to deterministic calls, served again without calling the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CacheSettings {
    pub enabled: bool,
    /// How long an answer is served again; a route's `cache_ttl_seconds` overrides it.
    pub ttl_seconds: u64,
    /// Also cache calls that set no temperature (the provider's default, usually not 0).
    pub include_unset_temperature: bool,
    pub store: CacheStoreKind,
    /// Redis for a cache shared by every replica; the rate-limit store's URL when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Memory the in-process cache may hold, in MiB.
    pub max_memory_mb: u64,
    /// Larger answers are not cached, in KiB.
    pub max_entry_kb: u64,
    /// Keeps gateways sharing one Redis apart (the operator sets `<namespace>/<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_seconds: 3600,
            include_unset_temperature: false,
            store: CacheStoreKind::Memory,
            redis_url: None,
            max_memory_mb: 64,
            max_entry_kb: 1024,
            partition: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum CacheStoreKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ProviderKind {
    Anthropic,
    Openai,
    OpenaiCompatible,
    AzureOpenai,
    Ollama,
    Bedrock,
    Gemini,
    /// Google Vertex AI: Claude through Anthropic's publisher models, Gemini through
    /// Google's, in one GCP project and region.
    Vertex,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::Openai => "openai",
            Self::OpenaiCompatible => "openai-compatible",
            Self::AzureOpenai => "azure-openai",
            Self::Ollama => "ollama",
            Self::Bedrock => "bedrock",
            Self::Gemini => "gemini",
            Self::Vertex => "vertex",
        }
    }

    /// Where the provider's API lives when the config names no `base_url`.
    pub fn default_base_url(self, region: Option<&str>) -> Option<String> {
        match self {
            Self::Anthropic => Some("https://api.anthropic.com".into()),
            Self::Openai => Some("https://api.openai.com/v1".into()),
            Self::Ollama => Some("http://127.0.0.1:11434".into()),
            Self::Gemini => Some("https://generativelanguage.googleapis.com".into()),
            Self::Bedrock => Some(format!(
                "https://bedrock-runtime.{}.amazonaws.com",
                region.unwrap_or("us-east-1")
            )),
            Self::Vertex => Some(match region {
                Some("global") | None => "https://aiplatform.googleapis.com".into(),
                Some(region) => format!("https://{region}-aiplatform.googleapis.com"),
            }),
            Self::OpenaiCompatible | Self::AzureOpenai => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// AWS region (Bedrock), or Vertex AI location (`us-east5`, `global`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Google Cloud project (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// A Google service-account key (its JSON) for Vertex AI; without one, tokens come
    /// from the metadata server (workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// Azure OpenAI `api-version` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Extra headers sent upstream on every call (e.g. an organisation id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Models listed by `GET /v1/models` for this provider, besides the routes' exact names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// The most output tokens this provider's models take: translated requests asking
    /// for more (Claude Code asks for 32k–64k) are lowered to it instead of refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// A PEM file of certificate authorities this provider's TLS certificate may chain
    /// to, besides the public roots (webpki's): a provider behind an internal CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The same as `ca_file`, the PEM text itself (what the operator writes from a
    /// ProviderRoute's `tls.caCertificates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Also trust the host's certificate store (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else
    /// the system bundle): an egress proxy that re-signs TLS with a company CA the
    /// image was built with.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_roots: bool,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub retries: Retries,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// Per-model price overrides (USD per million tokens).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pricing: BTreeMap<String, ModelPrice>,
}

impl Provider {
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            base_url: None,
            api_key: None,
            region: None,
            project: None,
            service_account_key: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            api_version: None,
            headers: BTreeMap::new(),
            models: Vec::new(),
            max_output_tokens: None,
            ca_file: None,
            ca_pem: None,
            system_roots: false,
            timeouts: Timeouts::default(),
            retries: Retries::default(),
            circuit_breaker: CircuitBreaker::default(),
            pricing: BTreeMap::new(),
        }
    }

    pub fn base_url(&self) -> Option<String> {
        self.base_url
            .clone()
            .or_else(|| self.kind.default_base_url(self.region.as_deref()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Timeouts {
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub connect_ms: u64,
    /// Until the upstream's response headers arrive.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub first_byte_ms: u64,
    /// The whole call, stream included.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub total_ms: u64,
    /// Longest silence allowed inside a stream (Anthropic pings every ~15 s).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub idle_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        // Long generations are normal (the SDKs wait 10 minutes for a non-streamed
        // answer), and a streamed agent turn can run longer still.
        Self {
            connect_ms: 5_000,
            first_byte_ms: 600_000,
            total_ms: 3_600_000,
            idle_ms: 120_000,
        }
    }
}

/// Retries of a call that failed before any byte reached the caller: connect errors,
/// timeouts, 429 and 5xx. Backoff doubles each time, with jitter; an upstream
/// `retry-after` of up to `max_retry_after_ms` is honoured instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Retries {
    /// Additional attempts after the first.
    pub attempts: u32,
    pub backoff_ms: u64,
    pub max_retry_after_ms: u64,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: 2,
            backoff_ms: 250,
            max_retry_after_ms: 10_000,
        }
    }
}

/// After `failures` consecutive failed calls the provider is skipped for `open_ms`;
/// then one call probes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CircuitBreaker {
    pub failures: u32,
    pub open_ms: u64,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failures: 5,
            open_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ModelPrice {
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub input_per_mtok: f64,
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub output_per_mtok: f64,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub cache_read_per_mtok: Option<f64>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub cache_write_per_mtok: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Exact model names or globs (`claude-*`, `local:*`).
    pub models: Vec<String>,
    pub provider: String,
    /// The id sent upstream, when the client's name is an alias for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Lower is tried first; routes of equal priority prefer an exact name over a glob.
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Providers tried, in order, when this route's provider fails before the first byte.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// Overrides `cache.ttl_seconds` for this route; 0 never caches its answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<u64>,
    /// Overrides the gateway's `token_reduction` for calls this route serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reduction: Option<TokenReduction>,
    /// Overrides `auto_routing.cascade.mode` for `auto` calls whose tier this route serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade: Option<CascadeMode>,
}

fn default_priority() -> u32 {
    1
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AuthMode {
    /// No authentication: local development only.
    #[default]
    None,
    /// Gateway API keys (`gw_…`), held here as SHA-256 hashes.
    Keys,
    /// Identity from `X-Workspace-ID` / `X-User-ID`, for a network only workspaces reach.
    TrustedHeaders,
    /// Projected Kubernetes ServiceAccount tokens, checked by TokenReview.
    Kubernetes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub mode: AuthMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ApiKey>,
    /// `kubernetes` mode: a caller presenting no key or token is identified by the pod
    /// its address belongs to (sound only behind the gateway's NetworkPolicy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_identity: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: String,
    /// Hex SHA-256 of the key's plaintext; the plaintext never enters a snapshot.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The secret of an AWS-style pair (access key id = `id`) for SigV4 clients such as
    /// boto3, which cannot send a bearer token. Verifying a signature needs the secret
    /// itself, so unlike the key it is held as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4_secret: Option<String>,
}

/// Rate limits. The users' own block loads as they wrote it (`global`, `default`,
/// `per_user` or `users`, …); `rules` is the general form a RateLimitPolicy compiles to.
/// Both are enforced: every rule that applies to a request must admit it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Limits>,
    /// Applies to each user; `per_user` entries override it field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Limits>,
    #[serde(default, alias = "users", skip_serializing_if = "BTreeMap::is_empty")]
    pub per_user: BTreeMap<String, Limits>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_team: BTreeMap<String, Limits>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_workspace: BTreeMap<String, Limits>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_key: BTreeMap<String, Limits>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<LimitRule>,
    /// Output tokens reserved for a request that sets no `max_tokens`.
    #[serde(default = "default_output_reservation")]
    pub default_output_tokens: u64,
    #[serde(default)]
    pub store: LimitStore,
    /// What a call to a model with no price does when a USD budget applies to its
    /// caller: refused, or charged at the highest built-in price.
    #[serde(default)]
    pub unpriced_models: UnpricedModels,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum UnpricedModels {
    /// A budget that cannot be metered is not spent: add a price for the model.
    #[default]
    Refuse,
    /// Charged as the most expensive model the gateway knows.
    HighestPrice,
}

fn default_output_reservation() -> u64 {
    4096
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            global: None,
            default: None,
            per_user: BTreeMap::new(),
            per_team: BTreeMap::new(),
            per_workspace: BTreeMap::new(),
            per_key: BTreeMap::new(),
            rules: Vec::new(),
            default_output_tokens: default_output_reservation(),
            unpriced_models: UnpricedModels::default(),
            store: LimitStore::default(),
        }
    }
}

impl RateLimits {
    /// The users' block and the rules as one list of rules.
    pub fn all_rules(&self) -> Vec<LimitRule> {
        let mut rules = Vec::new();
        if let Some(g) = self.global {
            rules.push(LimitRule::new(Subject::Global, g, BTreeMap::new()));
        }
        if self.default.is_some() || !self.per_user.is_empty() {
            let base = self.default.unwrap_or_default();
            rules.push(LimitRule::new(Subject::User, base, self.per_user.clone()));
        }
        for (subject, map) in [
            (Subject::Team, &self.per_team),
            (Subject::Workspace, &self.per_workspace),
            (Subject::Key, &self.per_key),
        ] {
            if !map.is_empty() {
                rules.push(LimitRule::new(subject, Limits::default(), map.clone()));
            }
        }
        rules.extend(self.rules.iter().cloned());
        rules
    }
}

/// Who a rule counts for: each distinct value (each user, each team …) has its own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Subject {
    Global,
    Key,
    User,
    Team,
    Workspace,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Key => "key",
            Self::User => "user",
            Self::Team => "team",
            Self::Workspace => "workspace",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LimitRule {
    pub subject: Subject,
    /// Only requests for models matching this glob count, per model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    /// Per-subject values (e.g. user `admin`), merged field by field over `limits`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, Limits>,
}

impl LimitRule {
    pub fn new(subject: Subject, limits: Limits, overrides: BTreeMap<String, Limits>) -> Self {
        Self {
            subject,
            model: None,
            limits,
            overrides,
        }
    }

    /// The limits for one subject value: its override's fields, the rule's elsewhere.
    pub fn limits_for(&self, value: &str) -> Limits {
        match self.overrides.get(value) {
            Some(o) => o.or(&self.limits),
            None => self.limits,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitStore {
    #[serde(default)]
    pub kind: LimitStoreKind,
    /// `redis://host:6379/0`; required for `redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When Redis cannot be reached: admit (true) or refuse with 503 (false, the default).
    #[serde(default)]
    pub fail_open: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum LimitStoreKind {
    /// Exact on one replica, and kept in the data directory (`--data-dir`) across
    /// restarts when the process has one.
    #[default]
    Embedded,
    /// Exact on one replica; forgotten on restart.
    Memory,
    /// Exact across replicas.
    Redis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub concurrent_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub budget_usd_per_day: Option<f64>,
}

impl Limits {
    /// Each field from `self` where set, else from `base`.
    pub fn or(&self, base: &Limits) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute.or(base.requests_per_minute),
            tokens_per_minute: self.tokens_per_minute.or(base.tokens_per_minute),
            tokens_per_day: self.tokens_per_day.or(base.tokens_per_day),
            concurrent_requests: self.concurrent_requests.or(base.concurrent_requests),
            budget_usd_per_day: self.budget_usd_per_day.or(base.budget_usd_per_day),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AuditSink {
    #[default]
    Stdout,
    File,
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    #[serde(default)]
    pub sink: AuditSink,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}
