//! Watching Bedrock's AWS event-stream frames go by: completion and usage, without
//! holding back a byte of the stream.

use crate::settle::UsageCell;
use crate::translate::{anthropic, SseOut, TokenUsage};
use aws_smithy_eventstream::frame::{write_message_to, DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};

#[derive(Default)]
pub struct FrameWatcher {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

impl FrameWatcher {
    /// Reads every frame `chunk` completes; true once the stream has reached its end.
    pub fn feed(&mut self, chunk: &[u8], usage: &UsageCell) -> bool {
        self.buf.extend_from_slice(chunk);
        let mut complete = false;
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(message)) => complete |= observe(&message, usage),
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => {
                    // Unreadable bytes still go to the caller; stop watching them.
                    tracing::warn!(error = %e, "undecodable event-stream frame");
                    self.buf.advance(self.buf.remaining());
                    break;
                }
            }
        }
        complete
    }
}

fn observe(message: &Message, usage: &UsageCell) -> bool {
    if header(message, ":message-type") != Some("event") {
        return true; // exception or error frames end the stream
    }
    let payload = message.payload();
    match header(message, ":event-type") {
        Some("contentBlockDelta") => {
            usage.delta();
            false
        }
        Some("messageStop") => true,
        Some("metadata") => {
            if let Some(u) = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("usage").map(TokenUsage::from_bedrock))
            {
                usage.report(u);
            }
            true
        }
        // InvokeModelWithResponseStream: each chunk carries one provider event, base64.
        Some("chunk") => chunk_event(payload, usage),
        _ => false,
    }
}

/// The provider event inside an InvokeModelWithResponseStream `chunk` frame.
fn chunk_inner(payload: &Bytes) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("bytes").and_then(|b| b.as_str()).map(str::to_string))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
}

fn chunk_event(payload: &Bytes, usage: &UsageCell) -> bool {
    chunk_inner(payload).is_some_and(|inner| meter_anthropic(inner, usage))
}

/// Meters one Anthropic Messages event carried by Bedrock; true at `message_stop`.
fn meter_anthropic(inner: serde_json::Value, usage: &UsageCell) -> bool {
    if let Some(metrics) = inner.get("amazon-bedrock-invocationMetrics") {
        usage.report(TokenUsage::from_bedrock(metrics));
    }
    match serde_json::from_value::<anthropic::StreamEvent>(inner) {
        Ok(anthropic::StreamEvent::MessageStart { message }) => {
            usage.report(TokenUsage::from_anthropic(&message.usage));
            false
        }
        Ok(anthropic::StreamEvent::MessageDelta { usage: Some(u), .. }) => {
            usage.update(|t| t.merge_anthropic(&u));
            false
        }
        Ok(anthropic::StreamEvent::ContentBlockDelta { .. }) => {
            usage.delta();
            false
        }
        Ok(anthropic::StreamEvent::MessageStop) => true,
        _ => false,
    }
}

/// Claude on Bedrock streamed back as the Messages API's own SSE events, one per frame.
pub fn invoke_as_sse(
    upstream: crate::upstream::UpstreamResponse,
    usage: std::sync::Arc<UsageCell>,
) -> crate::body::ResponseBody {
    let mut chunks = Box::pin(super::idle_guarded(upstream));
    let body = async_stream::stream! {
        let mut buf = BytesMut::new();
        let mut decoder = MessageFrameDecoder::new();
        let mut complete = false;
        let mut failure = None;
        'read: while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            buf.extend_from_slice(&chunk);
            let mut out = SseOut::default();
            loop {
                match decoder.decode_frame(&mut buf) {
                    Ok(DecodedFrame::Complete(message)) => {
                        if header(&message, ":message-type") != Some("event") {
                            let detail = serde_json::from_slice::<serde_json::Value>(message.payload())
                                .ok()
                                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
                                .unwrap_or_else(|| "Bedrock ended the stream with an error".into());
                            out.event("error", &serde_json::json!({"type": "error",
                                "error": {"type": "api_error", "message": detail}}));
                            complete = true;
                        } else if let Some(inner) = chunk_inner(message.payload()) {
                            let name = inner.get("type").and_then(|t| t.as_str()).unwrap_or("message").to_string();
                            out.event(&name, &inner);
                            complete |= meter_anthropic(inner, &usage);
                        }
                    }
                    Ok(DecodedFrame::Incomplete) => break,
                    Err(e) => {
                        failure = Some(format!("undecodable event-stream frame: {e}"));
                        if !out.is_empty() {
                            yield Ok::<_, crate::body::BoxError>(out.take());
                        }
                        break 'read;
                    }
                }
            }
            if !out.is_empty() {
                yield Ok(out.take());
            }
        }
        if !complete {
            let reason = failure.unwrap_or_else(|| "the upstream closed the stream early".into());
            yield Ok(super::StreamProtocol::AnthropicSse.error_tail(&reason));
        }
    };
    crate::body::streaming(body)
}

/// An AWS event stream translated frame by frame: each event's type and JSON payload
/// go to the translator (exceptions under their exception type).
pub fn translated(
    upstream: crate::upstream::UpstreamResponse,
    mut translator: Box<dyn crate::translate::StreamTranslator>,
    usage: std::sync::Arc<UsageCell>,
) -> crate::body::ResponseBody {
    let mut chunks = Box::pin(super::idle_guarded(upstream));
    let body = async_stream::stream! {
        let mut buf = BytesMut::new();
        let mut decoder = MessageFrameDecoder::new();
        let mut out = SseOut::default();
        let mut failure = None;
        'read: while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
            match chunk {
                Ok(c) => buf.extend_from_slice(&c),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            loop {
                match decoder.decode_frame(&mut buf) {
                    Ok(DecodedFrame::Complete(message)) => {
                        let name = header(&message, ":event-type")
                            .or_else(|| header(&message, ":exception-type"))
                            .unwrap_or("")
                            .to_string();
                        let data = String::from_utf8_lossy(message.payload()).into_owned();
                        translator.on_event(&name, &data, &mut out);
                        usage.delta();
                        usage.report(translator.usage());
                    }
                    Ok(DecodedFrame::Incomplete) => break,
                    Err(e) => {
                        failure = Some(format!("undecodable event-stream frame: {e}"));
                        break 'read;
                    }
                }
            }
            if !out.is_empty() {
                yield Ok::<_, crate::body::BoxError>(out.take());
            }
        }
        translator.finish(failure.as_deref(), &mut out);
        if !out.is_empty() {
            yield Ok(out.take());
        }
    };
    crate::body::streaming(body)
}

/// The exception frame boto3 raises when a stream broke before its end.
pub fn exception_frame(message: &str) -> Bytes {
    let payload = serde_json::json!({"message": message}).to_string();
    let frame = Message::new_from_parts(
        vec![
            Header::new(":message-type", HeaderValue::String("exception".into())),
            Header::new(
                ":exception-type",
                HeaderValue::String("internalServerException".into()),
            ),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
        ],
        Bytes::from(payload),
    );
    let mut out = Vec::new();
    if write_message_to(&frame, &mut out).is_err() {
        return Bytes::new();
    }
    Bytes::from(out)
}
