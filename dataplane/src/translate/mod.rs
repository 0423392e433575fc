//! What every translating pair shares: the stream translator interface and its SSE
//! writer, usage read from every API ([`usage`]), stop reasons ([`finish_reasons`]),
//! token estimates, and OpenAI chat read into ([`from_openai`]) and written from
//! ([`to_openai`]) other APIs. The pairs themselves are in `crate::exchange`.

pub mod finish_reasons;
pub mod from_openai;
pub(crate) mod members;
pub mod to_openai;
pub mod tokens;
pub mod usage;

pub use crate::wire::TranslateError;
pub use usage::TokenUsage;

use serde::Serialize;

/// Turns one upstream SSE stream into the caller's SSE stream, event by event.
pub trait StreamTranslator: Send {
    fn on_event(&mut self, event: &str, data: &str, out: &mut SseOut);
    /// Called once when the upstream stream ends; `failure` says why if it broke.
    /// A stream that ended before its API's final event must end with an error event.
    fn finish(&mut self, failure: Option<&str>, out: &mut SseOut);
    fn usage(&self) -> TokenUsage;
}

/// Bytes of outgoing SSE, written event by event.
#[derive(Default)]
pub struct SseOut {
    buf: Vec<u8>,
    /// What the last batch taken came to: the next starts with that much room rather
    /// than growing from empty, a reallocation every doubling, for every event.
    last_taken: usize,
}

impl SseOut {
    /// Room for about `bytes` of events before the buffer grows.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            last_taken: 0,
        }
    }

    /// Makes the room of the last batch when a new one starts; an idle stream holds none.
    fn start(&mut self) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.last_taken);
        }
    }

    /// `data: <json>` with no event name (the OpenAI layout).
    pub fn data(&mut self, value: &impl Serialize) {
        self.start();
        self.buf.extend_from_slice(b"data: ");
        self.write_json(value);
        self.buf.extend_from_slice(b"\n\n");
    }

    /// `event: <name>` then `data: <json>` (the Anthropic layout).
    pub fn event(&mut self, name: &str, value: &impl Serialize) {
        self.start();
        self.buf.extend_from_slice(b"event: ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\ndata: ");
        self.write_json(value);
        self.buf.extend_from_slice(b"\n\n");
    }

    /// `data: <text>` with the payload as received.
    pub fn raw_data(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(b"data: ");
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\n\n");
    }

    pub fn done_marker(&mut self) {
        self.buf.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn write_json(&mut self, value: &impl Serialize) {
        // Serialising a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, value);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn take(&mut self) -> bytes::Bytes {
        self.last_taken = self.buf.len();
        bytes::Bytes::from(std::mem::take(&mut self.buf))
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
