//! Whether a failed upstream call is tried again, and after how long: calls that failed
//! before any byte reached the caller (not connected, timed out, 429 and 5xx), with
//! exponential backoff and jitter or the upstream's own `retry-after`, all within the
//! call's total timeout.

use super::UpstreamResponse;
use crate::error::GatewayError;
use ai_gateway_snapshot::Retries;
use http::{HeaderMap, StatusCode};
use std::time::Duration;
use tokio::time::Instant;

/// Statuses that say "not now" rather than "never": rate limited, overloaded, broken.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504 | 529)
}

/// What an attempt came to, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer the caller gets as it is (success, or an error that is final).
    Final,
    /// "Not now", with the upstream's `retry-after` in milliseconds if it gave one.
    NotNow { retry_after_ms: Option<u64> },
    /// Not connected, or no answer in time: the request did not take effect.
    Unanswered,
}

impl Outcome {
    pub fn of(result: &Result<UpstreamResponse, GatewayError>) -> Self {
        match result {
            Ok(resp) if is_retryable(resp.status()) => Self::NotNow {
                retry_after_ms: retry_after(resp.headers()),
            },
            Err(
                GatewayError::UpstreamUnreachable { .. } | GatewayError::UpstreamTimeout { .. },
            ) => Self::Unanswered,
            _ => Self::Final,
        }
    }
}

/// The retries one call may make.
pub struct RetryPlan {
    retries: Retries,
    /// Further attempts after the first.
    attempts: u32,
    /// The end of the call's total timeout; no wait runs past it.
    deadline: Instant,
}

impl RetryPlan {
    /// A probe of a half-open circuit gets one try: its answer decides the circuit.
    pub fn new(retries: Retries, probe: bool, deadline: Instant) -> Self {
        Self {
            retries,
            attempts: if probe { 0 } else { retries.attempts },
            deadline,
        }
    }

    /// Whether attempt `attempt` (0 for the first) may be followed by another.
    pub fn may_follow(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// The wait before trying again after `attempt` came to `outcome`, or `None` when
    /// that outcome stands: final, no attempts left, or no time left for the wait.
    pub fn wait_after(&self, outcome: Outcome, attempt: u32, now: Instant) -> Option<Duration> {
        let wait = match outcome {
            Outcome::Final => return None,
            Outcome::NotNow {
                retry_after_ms: Some(ms),
            } if ms <= self.retries.max_retry_after_ms => Duration::from_millis(ms),
            Outcome::NotNow { .. } | Outcome::Unanswered => {
                backoff(self.retries.backoff_ms, attempt)
            }
        };
        (self.may_follow(attempt) && now + wait < self.deadline).then_some(wait)
    }
}

/// `retry-after` in seconds (or Anthropic's `retry-after-ms`), in milliseconds.
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    value("retry-after-ms")
        .or_else(|| value("retry-after").map(|s| s * 1000.0))
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| ms as u64)
}

/// Exponential backoff with up to 50% jitter, so retrying callers spread out.
fn backoff(base_ms: u64, attempt: u32) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << attempt.min(10));
    let jitter = super::breaker::now_ms().wrapping_mul(2654435761) % (exp / 2 + 1);
    Duration::from_millis(exp / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(attempts: u32, total: Duration) -> (RetryPlan, Instant) {
        let now = Instant::now();
        let retries = Retries {
            attempts,
            backoff_ms: 100,
            max_retry_after_ms: 2_000,
        };
        (RetryPlan::new(retries, false, now + total), now)
    }

    #[test]
    fn a_final_answer_is_never_retried() {
        let (plan, now) = plan(3, Duration::from_secs(60));
        assert_eq!(plan.wait_after(Outcome::Final, 0, now), None);
    }

    #[test]
    fn the_upstreams_retry_after_is_honoured_up_to_its_limit() {
        let (plan, now) = plan(3, Duration::from_secs(60));
        let told = |ms| Outcome::NotNow {
            retry_after_ms: Some(ms),
        };
        assert_eq!(
            plan.wait_after(told(1_500), 0, now),
            Some(Duration::from_millis(1_500))
        );
        // Longer than the gateway will wait: its own backoff instead.
        let wait = plan.wait_after(told(60_000), 0, now).expect("retried");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
    }

    #[test]
    fn backoff_doubles_with_jitter_below_it() {
        let (plan, now) = plan(5, Duration::from_secs(60));
        for attempt in 0..4 {
            let full = Duration::from_millis(100 << attempt);
            let wait = plan
                .wait_after(Outcome::Unanswered, attempt, now)
                .expect("retried");
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn no_retry_past_the_attempts_the_deadline_or_for_a_probe() {
        let (plan, now) = plan(2, Duration::from_secs(60));
        assert!(plan.wait_after(Outcome::Unanswered, 1, now).is_some());
        assert_eq!(
            plan.wait_after(Outcome::Unanswered, 2, now),
            None,
            "attempts used up"
        );
        let (tight, now) = self::plan(2, Duration::from_millis(50));
        let later = Outcome::NotNow {
            retry_after_ms: Some(1_000),
        };
        assert_eq!(
            tight.wait_after(later, 0, now),
            None,
            "the wait would outlast the call"
        );
        let probe = RetryPlan::new(Retries::default(), true, now + Duration::from_secs(60));
        assert_eq!(probe.wait_after(Outcome::Unanswered, 0, now), None);
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_milliseconds() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().expect("value"));
            }
            h
        };
        assert_eq!(retry_after(&headers(&[("retry-after", "2")])), Some(2_000));
        assert_eq!(retry_after(&headers(&[("retry-after", "0.5")])), Some(500));
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "120"), ("retry-after", "9")])),
            Some(120)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }
}
