//! What a call used, recorded as its answer streams by: the provider's reported usage,
//! a count of content deltas (a floor when a stream is cut short), and, when bodies are
//! audited, the request and answer.

use crate::translate::TokenUsage;
use bytes::Bytes;
use std::sync::Mutex;

/// Usage as the response streams by: what the provider reported, and how many content
/// deltas went out (a floor for output tokens when a stream is cut short).
#[derive(Debug, Default, Clone, Copy)]
pub struct Metered {
    pub usage: TokenUsage,
    pub deltas: u64,
}

#[derive(Debug, Default)]
pub struct UsageCell {
    metered: Mutex<Metered>,
    /// Set when the gateway opted in to logging bodies (`gateway.log_bodies`).
    bodies: Option<Mutex<Bodies>>,
}

/// Request and (non-stream) response bodies, for gateways that audit them.
#[derive(Debug, Default, Clone)]
pub struct Bodies {
    pub request: Option<Bytes>,
    pub response: Option<Bytes>,
}

impl UsageCell {
    /// A cell that also keeps the call's bodies for the audit record.
    pub fn capturing(request: Bytes) -> Self {
        Self {
            metered: Mutex::default(),
            bodies: Some(Mutex::new(Bodies {
                request: Some(request),
                response: None,
            })),
        }
    }

    /// Keeps a complete response body, if this call's bodies are audited.
    pub fn capture_response(&self, body: &Bytes) {
        if let Some(b) = &self.bodies {
            b.lock().unwrap_or_else(|p| p.into_inner()).response = Some(body.clone());
        }
    }

    pub fn bodies(&self) -> Option<Bodies> {
        self.bodies
            .as_ref()
            .map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    pub fn report(&self, usage: TokenUsage) {
        self.lock().usage = usage;
    }

    pub fn update(&self, f: impl FnOnce(&mut TokenUsage)) {
        f(&mut self.lock().usage);
    }

    pub fn delta(&self) {
        self.lock().deltas += 1;
    }

    pub fn get(&self) -> Metered {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Metered> {
        self.metered.lock().unwrap_or_else(|p| p.into_inner())
    }
}
