//! Watching Bedrock's AWS event-stream frames go by: completion and usage, without
//! holding back a byte of the stream.

use crate::metered::UsageCell;
use crate::translate::usage::{invoke_chunk, meter_claude_event, ClaudeEvent};
use crate::translate::{SseOut, TokenUsage};
use aws_smithy_eventstream::frame::{write_message_to, DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
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
                .and_then(|v| v.get("usage").map(TokenUsage::from_bedrock_json))
            {
                usage.report(u);
            }
            true
        }
        // InvokeModelWithResponseStream: each chunk carries one provider event, base64.
        Some("chunk") => invoke_chunk(payload).is_some_and(|inner| {
            let mut event = ClaudeEvent::Other;
            usage.update(|u| event = meter_claude_event(&inner, u));
            if event == ClaudeEvent::Content {
                usage.delta();
            }
            event == ClaudeEvent::End
        }),
        _ => false,
    }
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
