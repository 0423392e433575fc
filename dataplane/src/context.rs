//! What the gateway knows about one request as it moves through the stages. Each stage
//! records what it learnt through a method named for it (`identified`, `routed`,
//! `admitted` …); settle reads it all at the end.

use crate::auth::Identity;
use crate::limits::{Quota, Reservation};
use crate::metered::UsageCell;
use crate::translate::TokenUsage;
use ai_gateway_snapshot::ModelPrice;
use bytes::Bytes;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Instant;

pub use crate::header_values::REQUEST_ID;

/// `req_<random per process><counter>`: unique without a random draw per request.
fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_string());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = String::with_capacity(4 + prefix.len() + 12);
    id.push_str("req_");
    id.push_str(prefix);
    // Twelve hex digits of the counter, written directly: `format!` is a measurable
    // share of a call's cost at this rate.
    for shift in (0..12).rev() {
        id.push(char::from(
            b"0123456789abcdef"[(n >> (shift * 4)) as usize & 0xf],
        ));
    }
    id
}

/// The call a request made, as audit records, metrics and cache keys name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    ClaudeMessages,
    ClaudeCountTokens,
    BedrockNative,
    GeminiNative,
    OpenAiNative,
    OllamaNative,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat.completions",
            Self::ClaudeMessages => "claude.messages",
            Self::ClaudeCountTokens => "claude.count_tokens",
            Self::BedrockNative => "bedrock.native",
            Self::GeminiNative => "gemini.native",
            Self::OpenAiNative => "openai.native",
            Self::OllamaNative => "ollama.native",
        }
    }
}

const SESSION_ID: http::HeaderName = http::HeaderName::from_static("x-claude-code-session-id");
const AGENT_ID: http::HeaderName = http::HeaderName::from_static("x-claude-code-agent-id");

/// A caller-chosen id kept for the record when it is a sane token: short, printable,
/// no spaces.
fn sane_token(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

/// One tier's attempt in a cascade, as the routing outcome records it.
#[derive(Debug, Clone)]
pub struct CascadeAttempt {
    pub tier: &'static str,
    pub model: String,
    pub provider: String,
    pub status: u16,
    pub latency_ms: u64,
    pub usage: TokenUsage,
    pub cost_micros: u64,
}

/// How a cascade went: the tier it started and ended at, whether and why it escalated,
/// and the judged attempt. Written to the audit record and the outcomes file, so a
/// learned router can be trained from it.
#[derive(Debug, Clone)]
pub struct CascadeOutcome {
    pub initial_tier: &'static str,
    pub final_tier: &'static str,
    pub escalated: bool,
    /// What the check found wrong with the cheaper answer (or `error`, `status`).
    pub reasons: Vec<&'static str>,
    pub quality_score: f64,
    /// The cheaper tier's attempt; the final one is the call's own usage.
    pub judged: CascadeAttempt,
    pub outcomes_file: Option<String>,
}

/// Settles and audits a request that ends without an answer reaching its caller.
pub trait Release: Send + Sync {
    fn release(self: Arc<Self>, ctx: RequestContext);
}

pub struct RequestContext {
    request_id: String,
    /// The `x-request-id` the caller sent, if any.
    client_request_id: Option<String>,
    /// Claude Code's session and agent ids, for attribution (never a metric label).
    session_id: Option<String>,
    agent_id: Option<String>,
    started: Instant,
    /// The door the request came in by, named when no endpoint was reached.
    door: &'static str,
    endpoint: Option<Endpoint>,
    identity: Option<Identity>,
    /// The model the caller asked for.
    model: Option<String>,
    stream: bool,
    /// Set once routing chose them; echoed as `x-ai-gateway-provider` / `-model`.
    provider: Option<String>,
    upstream_model: Option<String>,
    /// Whether the provider that answered runs locally (Ollama), for `X-Model-Source`.
    local_model: Option<bool>,
    price: Option<ModelPrice>,
    reservation: Option<Reservation>,
    /// Remaining quota, sent back as `x-ratelimit-*` headers.
    quota: Option<Quota>,
    usage: Arc<UsageCell>,
    /// Providers tried before the one that answered.
    fallbacks: Vec<String>,
    /// For `model: "auto"`: the tier chosen and why (`complex: stack_trace, code`).
    auto_tier: Option<&'static str>,
    route_reason: Option<String>,
    /// Set when the call went through a cascade.
    cascade: Option<Box<CascadeOutcome>>,
    /// The daily limits this call counts against, watched for budget alerts.
    budget_watch: Option<(
        Vec<crate::limits::Check>,
        Arc<ai_gateway_snapshot::BudgetAlerts>,
    )>,
    /// Input tokens token reduction took out of the request (estimated).
    tokens_saved: u64,
    /// For cacheable calls: whether the answer came from the response cache.
    cache_hit: Option<bool>,
    /// The prompt's tokens as admission estimated them: charged when a call ends
    /// without the provider having reported its own count.
    estimated_input_tokens: u64,
    /// Who settles this request if it is dropped unanswered; `None` once a settlement
    /// has taken charge, or for requests that are never audited (`/health`).
    release: Option<Arc<dyn Release>>,
}

/// The status an audit record gives a request whose caller went away before an
/// answer (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

impl Drop for RequestContext {
    /// A caller that hangs up while the gateway waits on the upstream drops the whole
    /// handler: its reservation (and concurrency slot) must still be given back, and
    /// the request audited, as every request is.
    fn drop(&mut self) {
        let Some(release) = self.release.take() else {
            return;
        };
        release.release(std::mem::replace(
            self,
            RequestContext::new(&HeaderMap::new()),
        ));
    }
}

impl RequestContext {
    pub fn new(headers: &HeaderMap) -> Self {
        // The gateway's own id names the request (a caller could reuse or forge one);
        // the caller's, when it is a sane token, is kept beside it so traces join up.
        Self {
            request_id: new_request_id(),
            client_request_id: sane_token(headers, &REQUEST_ID),
            session_id: sane_token(headers, &SESSION_ID),
            agent_id: sane_token(headers, &AGENT_ID),
            started: Instant::now(),
            door: "",
            endpoint: None,
            identity: None,
            model: None,
            stream: false,
            provider: None,
            upstream_model: None,
            local_model: None,
            price: None,
            reservation: None,
            quota: None,
            usage: Arc::default(),
            fallbacks: Vec::new(),
            auto_tier: None,
            route_reason: None,
            cascade: None,
            budget_watch: None,
            tokens_saved: 0,
            cache_hit: None,
            estimated_input_tokens: 0,
            release: None,
        }
    }

    /// The request will be audited under `door`; `release` settles it if it is
    /// dropped unanswered.
    pub fn audited(&mut self, door: &'static str, release: Arc<dyn Release>) {
        self.door = door;
        self.release = Some(release);
    }

    /// A settlement has taken charge of this request: dropping it releases nothing.
    pub fn settling(&mut self) {
        self.release = None;
    }

    pub fn identified(&mut self, identity: Identity) {
        self.identity = Some(identity);
    }

    /// The call is metered and audited as `endpoint`.
    pub fn calls(&mut self, endpoint: Endpoint) {
        self.endpoint = Some(endpoint);
    }

    /// The model the caller named, and whether it asked for a stream.
    pub fn asks_for(&mut self, model: String, stream: bool) {
        self.model = Some(model);
        self.stream = stream;
    }

    pub fn routed(&mut self, provider: &str, upstream_model: &str) {
        self.provider = Some(provider.to_string());
        self.upstream_model = Some(upstream_model.to_string());
    }

    /// The provider that was tried failed before answering; the call moves on to the
    /// next, at that provider's price.
    pub fn failed_over(&mut self, provider: &str, upstream_model: &str, price: Option<ModelPrice>) {
        if let Some(tried) = self.provider.take() {
            self.fallbacks.push(tried);
        }
        self.routed(provider, upstream_model);
        self.price = price;
    }

    /// `model: "auto"` chose `tier` for `reason`.
    pub fn auto_routed(&mut self, tier: &'static str, reason: String) {
        self.auto_tier = Some(tier);
        self.route_reason = Some(reason);
    }

    /// The provider that answered runs locally (`true`) or is a cloud API.
    pub fn served_from(&mut self, local: bool) {
        self.local_model = Some(local);
    }

    /// The cascade's cheaper answer passed its check and is the one the caller gets.
    pub fn cascade_kept(&mut self, outcome: CascadeOutcome) {
        self.cascade = Some(Box::new(outcome));
    }

    /// The cheaper answer failed: the call starts again at `tier`'s `model`, metered
    /// afresh (the judged attempt's usage stays in `outcome`, charged at settlement).
    pub fn cascade_escalated(
        &mut self,
        outcome: CascadeOutcome,
        tier: &'static str,
        reason: String,
    ) {
        self.cascade = Some(Box::new(outcome));
        self.auto_tier = Some(tier);
        self.route_reason = Some(reason);
        self.fallbacks.clear();
        self.usage = Arc::new(match self.usage.bodies().and_then(|b| b.request) {
            Some(request) => UsageCell::capturing(request),
            None => UsageCell::default(),
        });
    }

    /// Token reduction took about `tokens` input tokens out of the request.
    pub fn reduced(&mut self, tokens: u64) {
        self.tokens_saved = tokens;
    }

    /// What the call is charged per token, as admission found it.
    pub fn priced(&mut self, price: Option<ModelPrice>) {
        self.price = price;
    }

    /// The prompt's tokens as admission estimated them.
    pub fn estimated_input(&mut self, tokens: u64) {
        self.estimated_input_tokens = tokens;
    }

    /// The call counts against these daily limits: settlement looks for alerts.
    pub fn watches_budgets(
        &mut self,
        checks: Vec<crate::limits::Check>,
        settings: Arc<ai_gateway_snapshot::BudgetAlerts>,
    ) {
        self.budget_watch = Some((checks, settings));
    }

    /// The daily limits to look at for alerts, taken once.
    pub fn take_budget_watch(
        &mut self,
    ) -> Option<(
        Vec<crate::limits::Check>,
        Arc<ai_gateway_snapshot::BudgetAlerts>,
    )> {
        self.budget_watch.take()
    }

    /// The limits let the call through and hold `reservation` until it settles.
    pub fn admitted(&mut self, reservation: Reservation) {
        self.quota = Some(reservation.quota);
        self.reservation = Some(reservation);
    }

    /// The quota the caller has left, for the `x-ratelimit-*` headers.
    pub fn quota_left(&mut self, quota: Quota) {
        self.quota = Some(quota);
    }

    /// Whether the response cache had the answer.
    pub fn looked_up_cache(&mut self, hit: bool) {
        self.cache_hit = Some(hit);
    }

    /// Keeps the request body (and later the answer) for the audit record.
    pub fn captures_bodies(&mut self, request: Bytes) {
        self.usage = Arc::new(UsageCell::capturing(request));
    }

    /// The reservation to settle, taken so nothing else settles it again.
    pub fn take_reservation(&mut self) -> Option<Reservation> {
        self.reservation.take()
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn client_request_id(&self) -> Option<&str> {
        self.client_request_id.as_deref()
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub fn agent_id(&self) -> Option<&str> {
        self.agent_id.as_deref()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint
    }

    /// What the audit record and metrics call this request: its endpoint, or the door
    /// it came in by when it got no further.
    pub fn call_name(&self) -> &'static str {
        self.endpoint.map_or(self.door, Endpoint::as_str)
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    pub fn upstream_model(&self) -> Option<&str> {
        self.upstream_model.as_deref()
    }

    /// `local` or `cloud`, once a provider was chosen.
    pub fn model_source(&self) -> Option<&'static str> {
        self.local_model
            .map(|local| if local { "local" } else { "cloud" })
    }

    pub fn price(&self) -> Option<ModelPrice> {
        self.price
    }

    pub fn quota(&self) -> Option<&Quota> {
        self.quota.as_ref()
    }

    /// Where the answer's usage is recorded as it streams by.
    pub fn usage(&self) -> &Arc<UsageCell> {
        &self.usage
    }

    pub fn fallbacks(&self) -> &[String] {
        &self.fallbacks
    }

    pub fn auto_tier(&self) -> Option<&'static str> {
        self.auto_tier
    }

    pub fn route_reason(&self) -> Option<&str> {
        self.route_reason.as_deref()
    }

    pub fn cascade(&self) -> Option<&CascadeOutcome> {
        self.cascade.as_deref()
    }

    pub fn tokens_saved(&self) -> u64 {
        self.tokens_saved
    }

    pub fn cache_hit(&self) -> Option<bool> {
        self.cache_hit
    }

    pub fn estimated_input_tokens(&self) -> u64 {
        self.estimated_input_tokens
    }
}
