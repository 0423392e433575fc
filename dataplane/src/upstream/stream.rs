//! Response bodies streamed from an upstream: forwarded byte for byte, or translated
//! event by event. Either way a stream that breaks or ends before its API's final
//! event is closed with an error event the caller's SDK will raise, never silently.

use crate::body::{streaming, ResponseBody};
use crate::metered::UsageCell;
use crate::translate::usage::usage_from_json;
use crate::translate::{SseOut, StreamTranslator, TokenUsage};
use crate::wire::anthropic;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;

use std::sync::Arc;

pub(crate) mod eventstream;
pub(crate) mod sse;

pub use eventstream::translated as eventstream_translated;

/// How a passthrough stream frames its events, and so how its end is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    /// Ends with `event: message_stop`.
    AnthropicSse,
    /// Ends with `data: [DONE]`.
    OpenAiSse,
    /// An OpenAI stream whose usage chunk the gateway asked for and the caller did not:
    /// forwarded event by event without that chunk.
    OpenAiSseWithoutUsage,
    /// Newline-delimited JSON (Ollama); ends with `"done": true`.
    Ndjson,
    /// Gemini `alt=sse`: no end marker, so a chunk carrying `finishReason` completes it.
    GeminiSse,
    /// AWS event-stream frames (Bedrock): complete at `messageStop`/`metadata`, an
    /// Anthropic `message_stop` inside a `chunk`, or an exception frame.
    AwsEventStream,
}

impl StreamProtocol {
    fn completes(self, event: &str, data: &[u8]) -> bool {
        match self {
            Self::AnthropicSse => event == "message_stop" || event == "error",
            Self::OpenAiSse | Self::OpenAiSseWithoutUsage => {
                data.trim_ascii() == b"[DONE]" || data.starts_with(b"{\"error\"")
            }
            Self::GeminiSse => FINISH_REASON.find(data).is_some(),
            Self::Ndjson | Self::AwsEventStream => false,
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
            Self::AwsEventStream => return eventstream::exception_frame(&message),
            Self::GeminiSse => out.data(
                &json!({"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}}),
            ),
            Self::OpenAiSse | Self::OpenAiSseWithoutUsage => out.data(
                &json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}),
            ),
            Self::Ndjson => {
                let mut line = serde_json::to_vec(&json!({"error": message})).unwrap_or_default();
                line.push(b'\n');
                return Bytes::from(line);
            }
        }
        out.take()
    }
}

/// The response body as it arrives, ending with an error if the upstream goes silent
/// for longer than its idle timeout or runs past the total timeout. One timer per
/// stream, reset on every chunk.
pub(crate) fn idle_guarded(
    upstream: super::UpstreamResponse,
) -> impl futures_util::Stream<Item = Result<Bytes, String>> + Send {
    let timeouts = upstream
        .extensions()
        .get::<super::AnswerTimeouts>()
        .copied();
    let idle = timeouts.map_or(std::time::Duration::from_secs(120), |e| e.idle);
    let deadline = timeouts.map(|e| e.deadline);
    let wake_at = move || {
        let quiet = tokio::time::Instant::now() + idle;
        deadline.map_or(quiet, |d| d.min(quiet))
    };
    let mut chunks = http_body_util::BodyDataStream::new(upstream.into_body());
    async_stream::stream! {
        let timer = tokio::time::sleep_until(wake_at());
        tokio::pin!(timer);
        loop {
            tokio::select! {
                next = chunks.next() => match next {
                    Some(Ok(chunk)) => {
                        timer.as_mut().reset(wake_at());
                        yield Ok(chunk);
                    }
                    Some(Err(e)) => {
                        yield Err(e.to_string());
                        break;
                    }
                    None => break,
                },
                _ = &mut timer => {
                    let over = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                    yield Err(if over {
                        "the stream ran past the total timeout".to_string()
                    } else {
                        format!("the upstream sent nothing for {} s", idle.as_secs())
                    });
                    break;
                }
            }
        }
    }
}

/// Forwards upstream bytes untouched, watching the events go by to know whether the
/// stream completed and what usage it reported.
pub fn passthrough_body(
    upstream: super::UpstreamResponse,
    protocol: StreamProtocol,
    usage: Arc<UsageCell>,
) -> ResponseBody {
    let mut chunks = Box::pin(idle_guarded(upstream));
    let body = async_stream::stream! {
        let mut events = sse::SseSplitter::default();
        let mut tail: Vec<u8> = Vec::new();
        let mut frames = eventstream::FrameWatcher::default();
        let mut complete = false;
        let failure = loop {
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    match protocol {
                        StreamProtocol::AnthropicSse
                        | StreamProtocol::OpenAiSse
                        | StreamProtocol::GeminiSse => {
                            events.push(&chunk);
                            while let Some(event) = events.next_event() {
                                let (name, data) = (event.event(), event.data_bytes());
                                complete |= protocol.completes(name, &data);
                                meter_event(protocol, name, &data, &usage);
                            }
                            if events.oversized() {
                                break Some(sse::OVERSIZED_EVENT.into());
                            }
                            yield Ok::<_, crate::body::BoxError>(chunk);
                        }
                        StreamProtocol::OpenAiSseWithoutUsage => {
                            events.push(&chunk);
                            let mut out = SseOut::with_capacity(chunk.len());
                            while let Some(event) = events.next_event() {
                                let (name, data) = (event.event(), event.data_bytes());
                                complete |= protocol.completes(name, &data);
                                if meter_event(protocol, name, &data, &usage) != Metered::UsageOnly {
                                    out.raw_data(&data);
                                }
                            }
                            if events.oversized() {
                                break Some(sse::OVERSIZED_EVENT.into());
                            }
                            if !out.is_empty() {
                                yield Ok(out.take());
                            }
                        }
                        StreamProtocol::Ndjson => {
                            complete |= ndjson_lines(&mut tail, &chunk, &usage);
                            if tail.len() > sse::MAX_EVENT_BYTES {
                                break Some(sse::OVERSIZED_EVENT.into());
                            }
                            yield Ok(chunk);
                        }
                        StreamProtocol::AwsEventStream => {
                            complete |= frames.feed(&chunk, &usage);
                            yield Ok(chunk);
                        }
                    }
                }
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        if !complete {
            let reason = failure.unwrap_or_else(|| "the upstream closed the stream early".into());
            tracing::warn!(%reason, "upstream stream ended incomplete");
            yield Ok(protocol.error_tail(&reason));
        }
    };
    streaming(body)
}

/// Searched for in every Gemini stream event, built once: a searcher costs more to
/// build than an event costs to search.
static FINISH_REASON: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"finishReason\""));

/// Searched for in every OpenAI stream event (built once): a cheap filter before the
/// event is read properly, so it matches the key however the upstream spaces it
/// (`"usage":{`, `"usage": {`); text inside a string has its quotes escaped.
static USAGE_OBJECT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));

/// Whether some `"usage"` key in the event opens an object (`"usage": {`, spaced as
/// the upstream likes): OpenAI sends `"usage":null` on every other chunk, and only the
/// events this finds are read in full.
fn has_usage_object(data: &[u8]) -> bool {
    USAGE_OBJECT.find_iter(data).any(|at| {
        let mut rest = data[at + b"\"usage\"".len()..].trim_ascii_start();
        if rest.first() != Some(&b':') {
            return false;
        }
        rest = rest[1..].trim_ascii_start();
        rest.first() == Some(&b'{')
    })
}

/// Whether an OpenAI chunk's `choices` is empty (or absent): the closing usage chunk.
fn no_choices(chunk: &[u8]) -> bool {
    // Read up to `choices` only: OpenAI puts the usage object after it.
    match crate::translate::members::first_top_level(chunk, "choices") {
        Some(None) => true,
        Some(Some(list)) => list
            .iter()
            .all(|b| matches!(b, b'[' | b']') || b.is_ascii_whitespace()),
        None => false,
    }
}

/// What an event was to the meter.
#[derive(Debug, PartialEq, Eq)]
enum Metered {
    /// OpenAI's closing chunk that reports usage and carries no choices.
    UsageOnly,
    Other,
}

/// Reads usage from the events that carry it; counts the content deltas between.
fn meter_event(protocol: StreamProtocol, event: &str, data: &[u8], usage: &UsageCell) -> Metered {
    match protocol {
        StreamProtocol::AnthropicSse => match event {
            "content_block_delta" => usage.delta(),
            "message_start" | "message_delta" => {
                match serde_json::from_slice::<anthropic::StreamEvent>(data) {
                    Ok(anthropic::StreamEvent::MessageStart { message }) => {
                        usage.report(TokenUsage::from_anthropic(&message.usage))
                    }
                    Ok(anthropic::StreamEvent::MessageDelta { usage: Some(u), .. }) => {
                        usage.update(|t| t.merge_anthropic(&u))
                    }
                    _ => {}
                }
            }
            _ => {}
        },
        StreamProtocol::OpenAiSse | StreamProtocol::OpenAiSseWithoutUsage => {
            // Only the final chunk carries a usage object (others may say `null`); the
            // rest are deltas.
            let reported = has_usage_object(data)
                .then(|| crate::translate::usage::usage_member(data))
                .flatten();
            match reported {
                Some(u) => {
                    usage.report(u);
                    if no_choices(data) {
                        return Metered::UsageOnly;
                    }
                }
                None if data.trim_ascii() != b"[DONE]" => usage.delta(),
                None => {}
            }
        }
        StreamProtocol::GeminiSse => {
            // Every chunk repeats the running usage; the last one is the total.
            if let Some(u) = crate::translate::usage::usage_from_bytes(data) {
                usage.report(u);
            }
            usage.delta();
        }
        StreamProtocol::Ndjson | StreamProtocol::AwsEventStream => {}
    }
    Metered::Other
}

/// Scans NDJSON lines (Ollama) as they complete: each is a delta, the last carries
/// `"done": true` and the token counts.
fn ndjson_lines(tail: &mut Vec<u8>, chunk: &[u8], usage: &UsageCell) -> bool {
    tail.extend_from_slice(chunk);
    let mut done = false;
    while let Some(pos) = tail.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = tail.drain(..=pos).collect();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
            if v.get("done").and_then(|d| d.as_bool()).unwrap_or(false) {
                done = true;
                if let Some(u) = usage_from_json(&v) {
                    usage.report(u);
                }
            } else if v.get("error").is_some() {
                done = true;
            } else {
                usage.delta();
            }
        }
    }
    done
}

/// Parses the upstream SSE stream and writes the caller's API events as each arrives.
pub fn translated_body(
    upstream: super::UpstreamResponse,
    mut translator: Box<dyn StreamTranslator>,
    usage: Arc<UsageCell>,
) -> ResponseBody {
    let mut chunks = Box::pin(idle_guarded(upstream));
    let body = async_stream::stream! {
        let mut events = sse::SseSplitter::default();
        let mut out = SseOut::default();
        let failure = loop {
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    events.push(&chunk);
                    while let Some(event) = events.next_event() {
                        translator.on_event(event.event(), &event.data(), &mut out);
                        usage.delta();
                    }
                    if events.oversized() {
                        break Some(sse::OVERSIZED_EVENT.to_string());
                    }
                    usage.report(translator.usage());
                    if !out.is_empty() {
                        yield Ok::<_, crate::body::BoxError>(out.take());
                    }
                }
                Some(Err(e)) => break Some(e),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_closing_usage_chunk_is_usage_only() {
        let usage = UsageCell::default();
        let meter = |data: &str| {
            meter_event(
                StreamProtocol::OpenAiSseWithoutUsage,
                "",
                data.as_bytes(),
                &usage,
            )
        };
        let closing = r#"{"id":"c1","object":"chat.completion.chunk","choices":[ ],"usage":{"prompt_tokens":9,"completion_tokens":4}}"#;
        assert_eq!(meter(closing), Metered::UsageOnly);
        assert_eq!((usage.get().usage.input, usage.get().usage.output), (9, 4));
        // Some servers send usage on the last content chunk: that chunk still carries text.
        let last_delta = r#"{"choices":[{"delta":{"content":"usage"}}],"usage":{"prompt_tokens":9,"completion_tokens":5}}"#;
        assert_eq!(meter(last_delta), Metered::Other);
        assert_eq!(usage.get().usage.output, 5);
        let delta = r#"{"choices":[{"delta":{"content":"\"usage\":{"}}],"usage":null}"#;
        assert_eq!(meter(delta), Metered::Other);
        assert_eq!(
            usage.get().usage.output,
            5,
            "text that looks like usage is not usage"
        );
        assert_eq!(usage.get().deltas, 1);
    }
}
