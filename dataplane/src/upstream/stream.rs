//! Response bodies streamed from an upstream: forwarded byte for byte, or translated
//! event by event. Either way a stream that breaks or ends before its API's final
//! event is closed with an error event the caller's SDK will raise, never silently.

use crate::body::{streaming, ResponseBody};
use crate::translate::{SseOut, StreamTranslator};
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{FutureExt, StreamExt};
use serde_json::json;
use std::convert::Infallible;

/// How a passthrough stream frames its events, and so how its end is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    /// Ends with `event: message_stop`.
    AnthropicSse,
    /// Ends with `data: [DONE]`.
    OpenAiSse,
    /// Newline-delimited JSON (Ollama); ends with `"done": true`.
    Ndjson,
    /// Not an event stream: bytes are forwarded and no end is recognised.
    Opaque,
}

impl StreamProtocol {
    fn completes(self, event: &str, data: &str) -> bool {
        match self {
            Self::AnthropicSse => event == "message_stop" || event == "error",
            Self::OpenAiSse => data.trim() == "[DONE]" || data.starts_with("{\"error\""),
            Self::Ndjson | Self::Opaque => false,
        }
    }

    fn error_tail(self, message: &str) -> Bytes {
        let message = format!("upstream stream ended before the response was complete: {message}");
        let mut out = SseOut::default();
        match self {
            Self::AnthropicSse => out.event(
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            ),
            Self::OpenAiSse => out.data(
                &json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}),
            ),
            Self::Ndjson => {
                let mut line = serde_json::to_vec(&json!({"error": message})).unwrap_or_default();
                line.push(b'\n');
                return Bytes::from(line);
            }
            Self::Opaque => return Bytes::new(),
        }
        out.take()
    }
}

/// Forwards upstream bytes untouched, watching the events go by to know whether the
/// stream completed.
pub fn passthrough_body(upstream: reqwest::Response, protocol: StreamProtocol) -> ResponseBody {
    let mut chunks = upstream.bytes_stream();
    let body = async_stream::stream! {
        let (tx, rx) = futures_channel::mpsc::unbounded::<Result<Bytes, Infallible>>();
        let mut events = rx.eventsource();
        let mut ndjson_tail: Vec<u8> = Vec::new();
        let mut complete = false;
        let failure = loop {
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    match protocol {
                        StreamProtocol::AnthropicSse | StreamProtocol::OpenAiSse => {
                            let _ = tx.unbounded_send(Ok(chunk.clone()));
                            // Every byte is already queued, so parsing never waits.
                            while let Some(Some(Ok(event))) = events.next().now_or_never() {
                                complete |= protocol.completes(&event.event, &event.data);
                            }
                        }
                        StreamProtocol::Ndjson => {
                            complete |= ndjson_done(&mut ndjson_tail, &chunk);
                        }
                        StreamProtocol::Opaque => {}
                    }
                    yield Ok::<_, crate::body::BoxError>(chunk);
                }
                Some(Err(e)) => break Some(e.to_string()),
                None => break None,
            }
        };
        if protocol != StreamProtocol::Opaque && !complete {
            let reason = failure.unwrap_or_else(|| "the upstream closed the stream early".into());
            tracing::warn!(%reason, "upstream stream ended incomplete");
            yield Ok(protocol.error_tail(&reason));
        } else if let Some(reason) = failure {
            // A plain body cut short: end the response abnormally so the caller notices.
            yield Err(reason.into());
        }
    };
    streaming(body)
}

/// Scans NDJSON lines as they complete for Ollama's final `"done": true` object.
fn ndjson_done(tail: &mut Vec<u8>, chunk: &[u8]) -> bool {
    tail.extend_from_slice(chunk);
    let mut done = false;
    while let Some(pos) = tail.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = tail.drain(..=pos).collect();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
            done |= v.get("done").and_then(|d| d.as_bool()).unwrap_or(false)
                || v.get("error").is_some();
        }
    }
    done
}

/// Parses the upstream SSE stream and writes the caller's API events as each arrives.
pub fn translated_body(
    upstream: reqwest::Response,
    mut translator: Box<dyn StreamTranslator>,
) -> ResponseBody {
    let mut events = upstream.bytes_stream().eventsource();
    let body = async_stream::stream! {
        let mut out = SseOut::default();
        let failure = loop {
            match events.next().await {
                Some(Ok(event)) => {
                    translator.on_event(&event.event, &event.data, &mut out);
                    if !out.is_empty() {
                        yield Ok::<_, crate::body::BoxError>(out.take());
                    }
                }
                Some(Err(e)) => break Some(e.to_string()),
                None => break None,
            }
        };
        translator.finish(failure.as_deref(), &mut out);
        if !out.is_empty() {
            yield Ok(out.take());
        }
    };
    streaming(body)
}
