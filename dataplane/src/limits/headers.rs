//! Remaining-quota headers, in the names OpenAI and Anthropic clients read.

use crate::header_values::HeaderValueBuf;
use http::{HeaderMap, HeaderName, HeaderValue};

/// (limit, remaining, seconds until reset) of the tightest requests and tokens counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub requests: Option<(u64, u64, u64)>,
    pub tokens: Option<(u64, u64, u64)>,
}

impl Quota {
    /// How many headers [`quota_headers`] writes for this quota, for sizing the map once.
    pub fn header_count(&self, anthropic: bool) -> usize {
        let per_counter = if anthropic { 6 } else { 3 };
        let counters = usize::from(self.requests.is_some()) + usize::from(self.tokens.is_some());
        usize::from(self.requests.is_some()) + counters * per_counter
    }
}

/// Names as constants: a header name given as text is parsed again on every insert.
const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
/// The users' documents' single name: requests left in the tightest window.
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
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
pub fn quota_headers(
    quota: &Quota,
    anthropic: bool,
    headers: &mut HeaderMap,
    values: &mut HeaderValueBuf,
) {
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
    if let Some((_, remaining, _)) = quota.requests {
        headers.insert(REMAINING, values.number(remaining));
    }
    for (counter, [limit_name, remaining_name, reset_name], anthropic_names) in counters {
        let Some((limit, remaining, reset)) = counter else {
            continue;
        };
        let limit = values.number(limit);
        let remaining = values.number(remaining);
        if anthropic {
            let [limit_name, remaining_name, reset_name] = anthropic_names;
            headers.insert(limit_name, limit.clone());
            headers.insert(remaining_name, remaining.clone());
            if let Some(v) = values.text(&reset_at(reset)) {
                headers.insert(reset_name, v);
            }
        }
        headers.insert(limit_name, limit);
        headers.insert(remaining_name, remaining);
        headers.insert(reset_name, seconds(reset));
    }
}

/// `<n>s`: from a table for the minute windows' resets, the common case on every call.
fn seconds(n: u64) -> HeaderValue {
    static WITHIN_A_MINUTE: std::sync::LazyLock<Vec<HeaderValue>> =
        std::sync::LazyLock::new(|| {
            (0..=60)
                .map(|n| {
                    HeaderValue::from_str(&format!("{n}s"))
                        .unwrap_or(HeaderValue::from_static("0s"))
                })
                .collect()
        });
    match WITHIN_A_MINUTE.get(n as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from_str(&format!("{n}s")).unwrap_or(HeaderValue::from_static("0s")),
    }
}

/// Anthropic states resets as an RFC 3339 instant.
fn reset_at(secs_from_now: u64) -> String {
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(secs_from_now);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_as_seconds_within_the_minute_and_beyond() {
        let quota = Quota {
            requests: Some((60, 59, 0)),
            tokens: Some((1000, 10, 3600)),
        };
        let mut headers = HeaderMap::new();
        quota_headers(
            &quota,
            false,
            &mut headers,
            &mut HeaderValueBuf::with_capacity(64),
        );
        assert_eq!(headers[RESET_REQUESTS], "0s");
        assert_eq!(headers[RESET_TOKENS], "3600s");
        assert_eq!(headers[REMAINING_TOKENS], "10");
        for n in [1, 37, 60] {
            assert_eq!(seconds(n), format!("{n}s").as_str());
        }
    }

    #[test]
    fn the_header_count_is_what_is_written() {
        let counter = Some((60, 59, 30));
        for (requests, tokens) in [
            (counter, counter),
            (counter, None),
            (None, counter),
            (None, None),
        ] {
            let quota = Quota { requests, tokens };
            for anthropic in [false, true] {
                let mut headers = HeaderMap::new();
                let mut values = HeaderValueBuf::with_capacity(256);
                quota_headers(&quota, anthropic, &mut headers, &mut values);
                assert_eq!(
                    headers.len(),
                    quota.header_count(anthropic),
                    "{quota:?} anthropic={anthropic}"
                );
            }
        }
    }
}
