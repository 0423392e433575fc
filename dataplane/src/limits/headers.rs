//! Remaining-quota headers, in the names OpenAI and Anthropic clients read.

use http::{HeaderMap, HeaderValue};

/// (limit, remaining, seconds until reset) of the tightest requests and tokens counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub requests: Option<(u64, u64, u64)>,
    pub tokens: Option<(u64, u64, u64)>,
}

/// Writes `x-ratelimit-*` (OpenAI) and, for Anthropic callers, `anthropic-ratelimit-*`.
pub fn quota_headers(quota: &Quota, anthropic: bool, headers: &mut HeaderMap) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    if let Some((limit, remaining, reset)) = quota.requests {
        set("x-ratelimit-limit-requests", limit.to_string());
        set("x-ratelimit-remaining-requests", remaining.to_string());
        set("x-ratelimit-reset-requests", format!("{reset}s"));
        if anthropic {
            set("anthropic-ratelimit-requests-limit", limit.to_string());
            set(
                "anthropic-ratelimit-requests-remaining",
                remaining.to_string(),
            );
            set("anthropic-ratelimit-requests-reset", reset_at(reset));
        }
    }
    if let Some((limit, remaining, reset)) = quota.tokens {
        set("x-ratelimit-limit-tokens", limit.to_string());
        set("x-ratelimit-remaining-tokens", remaining.to_string());
        set("x-ratelimit-reset-tokens", format!("{reset}s"));
        if anthropic {
            set("anthropic-ratelimit-tokens-limit", limit.to_string());
            set(
                "anthropic-ratelimit-tokens-remaining",
                remaining.to_string(),
            );
            set("anthropic-ratelimit-tokens-reset", reset_at(reset));
        }
    }
}

/// Anthropic states resets as an RFC 3339 instant.
fn reset_at(secs_from_now: u64) -> String {
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(secs_from_now);
    humantime::format_rfc3339_seconds(at).to_string()
}
