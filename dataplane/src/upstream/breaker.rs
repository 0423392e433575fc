//! A circuit breaker per upstream provider: after enough consecutive failures calls
//! are refused at once (503) instead of waiting on a provider that is down; when the
//! open period ends, one call probes it. State outlives config swaps.

/// What `/v1/providers` and the `ai_gateway_circuit_open` gauge report.
pub use ai_gateway_snapshot::replies::CircuitState;
use ai_gateway_snapshot::CircuitBreaker;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct Breaker {
    failures: AtomicU32,
    /// Unix ms until which calls are refused; 0 when closed.
    open_until: AtomicU64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Calls flow.
    Closed,
    /// This call is the one probe after an open period.
    Probe,
    /// Refused for this many more milliseconds.
    Open(u64),
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Breaker {
    pub fn gate(&self, config: &CircuitBreaker, now: u64) -> Gate {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Gate::Closed;
        }
        if now < until {
            return Gate::Open(until - now);
        }
        // The first caller after the open period probes; the rest wait for its verdict.
        match self.open_until.compare_exchange(
            until,
            now + config.open_ms,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Gate::Probe,
            Err(_) => Gate::Open(config.open_ms),
        }
    }

    pub fn record(&self, ok: bool, config: &CircuitBreaker, now: u64) {
        if ok {
            self.failures.store(0, Ordering::Release);
            self.open_until.store(0, Ordering::Release);
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if config.failures > 0 && failures >= config.failures {
            self.open_until
                .store(now + config.open_ms, Ordering::Release);
        }
    }

    pub fn state(&self, now: u64) -> CircuitState {
        match self.open_until.load(Ordering::Acquire) {
            0 => CircuitState::Closed,
            until if now < until => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_then_lets_one_probe_through() {
        let config = CircuitBreaker {
            failures: 2,
            open_ms: 1_000,
        };
        let b = Breaker::default();
        b.record(false, &config, 0);
        assert_eq!(b.gate(&config, 1), Gate::Closed);
        b.record(false, &config, 1);
        assert_eq!(b.gate(&config, 2), Gate::Open(999));
        assert_eq!(b.state(2), CircuitState::Open);
        assert_eq!(b.gate(&config, 1_001), Gate::Probe);
        assert!(
            matches!(b.gate(&config, 1_002), Gate::Open(_)),
            "one probe at a time"
        );
        b.record(true, &config, 1_003);
        assert_eq!(b.gate(&config, 1_004), Gate::Closed);
        assert_eq!(b.state(1_004), CircuitState::Closed);
        b.record(false, &config, 2_000);
        b.record(false, &config, 2_001);
        assert_eq!(b.state(3_002), CircuitState::HalfOpen);
    }
}
