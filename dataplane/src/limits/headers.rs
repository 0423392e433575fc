//! Remaining-quota headers, in the names OpenAI and Anthropic clients read.

use http::{HeaderMap, HeaderName, HeaderValue};

/// (limit, remaining, seconds until reset) of the tightest requests and tokens counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub requests: Option<(u64, u64, u64)>,
    pub tokens: Option<(u64, u64, u64)>,
}

/// Names as constants: a header name given as text is parsed again on every insert.
const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
const ANTHROPIC_REQUESTS: [HeaderName; 3] = [
    HeaderName::from_static("anthropic-ratelimit-requests-limit"),
    HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
    HeaderName::from_static("anthropic-ratelimit-requests-reset"),
];
const ANTHROPIC_TOKENS: [HeaderName; 3] = [
    HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
];

/// Writes `x-ratelimit-*` (OpenAI) and, for Anthropic callers, `anthropic-ratelimit-*`.
pub fn quota_headers(quota: &Quota, anthropic: bool, headers: &mut HeaderMap) {
    let counters = [
        (
            quota.requests,
            [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS],
            ANTHROPIC_REQUESTS,
        ),
        (
            quota.tokens,
            [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS],
            ANTHROPIC_TOKENS,
        ),
    ];
    for (counter, [limit_name, remaining_name, reset_name], anthropic_names) in counters {
        let Some((limit, remaining, reset)) = counter else {
            continue;
        };
        headers.insert(limit_name, HeaderValue::from(limit));
        headers.insert(remaining_name, HeaderValue::from(remaining));
        if let Ok(v) = HeaderValue::try_from(format!("{reset}s")) {
            headers.insert(reset_name, v);
        }
        if anthropic {
            let [limit_name, remaining_name, reset_name] = anthropic_names;
            headers.insert(limit_name, HeaderValue::from(limit));
            headers.insert(remaining_name, HeaderValue::from(remaining));
            if let Ok(v) = HeaderValue::try_from(reset_at(reset)) {
                headers.insert(reset_name, v);
            }
        }
    }
}

/// Anthropic states resets as an RFC 3339 instant.
fn reset_at(secs_from_now: u64) -> String {
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(secs_from_now);
    humantime::format_rfc3339_seconds(at).to_string()
}
