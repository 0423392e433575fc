//! What the gateway knows about one request as it moves through the stages.

use crate::auth::Identity;
use crate::limits::{Quota, Reservation};
use crate::settle::UsageCell;
use ai_gateway_snapshot::ModelPrice;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Instant;

/// The request id, as callers may send it and as the gateway answers and forwards it.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

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

pub struct RequestContext {
    pub request_id: String,
    /// The `x-request-id` the caller sent, if any.
    pub client_request_id: Option<String>,
    pub started: Instant,
    /// The surface a metered call came in by (`chat.completions`, `claude.messages` …);
    /// empty for requests that are not metered or audited (health, listings).
    pub endpoint: &'static str,
    pub identity: Option<Identity>,
    /// The model the caller asked for.
    pub model: Option<String>,
    pub stream: bool,
    /// Set once routing chose them; echoed as `x-ai-gateway-provider` / `-model`.
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub price: Option<ModelPrice>,
    pub reservation: Option<Reservation>,
    /// Remaining quota, sent back as `x-ratelimit-*` headers.
    pub quota: Option<Quota>,
    pub usage: Arc<UsageCell>,
    /// Providers tried before the one that answered.
    pub fallbacks: Vec<String>,
    /// For cacheable calls: whether the answer came from the response cache.
    pub cache_hit: Option<bool>,
    /// The prompt's tokens as admission estimated them: charged when a call ends
    /// without the provider having reported its own count.
    pub estimated_input_tokens: u64,
    /// For settling and auditing a request dropped before it completed.
    pub store_for_release: Option<Arc<crate::state::Services>>,
    /// Whether a [`crate::settle::Settlement`] has taken charge of settling and
    /// auditing this request (or it is one that is never audited, like `/health`).
    pub settled_elsewhere: bool,
}

/// The status an audit record gives a request whose caller went away before an
/// answer (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

impl Drop for RequestContext {
    /// A caller that hangs up while the gateway waits on the upstream drops the whole
    /// handler: its reservation (and concurrency slot) must still be given back, and
    /// the request audited, as every request is.
    fn drop(&mut self) {
        if self.settled_elsewhere {
            return;
        }
        let Some(services) = self.store_for_release.take() else {
            return;
        };
        let mut ctx = std::mem::replace(self, RequestContext::new(&HeaderMap::new()));
        ctx.store_for_release = None;
        crate::settle::Settlement::new(services, ctx, CLIENT_CLOSED, Some("client_closed"))
            .abandon();
    }
}

impl RequestContext {
    pub fn new(headers: &HeaderMap) -> Self {
        // The gateway's own id names the request (a caller could reuse or forge one);
        // the caller's, when it is a sane token, is kept beside it so traces join up.
        let client_request_id = headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string);
        Self {
            request_id: new_request_id(),
            client_request_id,
            started: Instant::now(),
            endpoint: "",
            identity: None,
            model: None,
            stream: false,
            provider: None,
            upstream_model: None,
            price: None,
            reservation: None,
            quota: None,
            usage: Arc::default(),
            fallbacks: Vec::new(),
            cache_hit: None,
            estimated_input_tokens: 0,
            store_for_release: None,
            settled_elsewhere: false,
        }
    }

    pub fn routed(&mut self, provider: &str, upstream_model: &str) {
        self.provider = Some(provider.to_string());
        self.upstream_model = Some(upstream_model.to_string());
    }
}
