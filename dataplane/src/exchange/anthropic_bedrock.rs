//! An Anthropic Messages caller (Claude Code on `/v1/claude`) served by Claude on
//! Bedrock's InvokeModel: the body is the Messages body with the model moved to the
//! path and `anthropic_version` / `anthropic_beta` carried as Bedrock expects; the answer
//! is the Messages response, and the stream's `chunk` frames carry the Messages events.
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html>

use super::{Call, Target};
use crate::error::GatewayError;
use crate::translate::usage::{invoke_chunk, meter_claude_event, ClaudeEvent};
use crate::translate::{SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::UpstreamRequest;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Map, Value};

pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The beta flags Claude on Bedrock accepts; any other (Claude Code sends several that
/// only Anthropic's API knows) makes Bedrock refuse the whole call. As the Bedrock user
/// guide lists them ("Anthropic Claude Messages API", request and response, the
/// `anthropic_beta` table, late 2025; compaction from its own page), plus
/// `computer-use-2024-10-22`, which that page's example request uses.
const BEDROCK_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
    "compact-2026-01-12",
];

/// The InvokeModel call (or its stream) for a Messages request.
pub(super) fn upstream_request(
    call: &Call<'_>,
    target: &Target<'_>,
) -> Result<UpstreamRequest, GatewayError> {
    let messages = Messages {
        body: call.body,
        anthropic_beta: call
            .headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok()),
    };
    let invoke = request(&messages, target)?;
    let operation = if call.stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    let mut headers = HeaderMap::new();
    let json = HeaderValue::from_static("application/json");
    headers.insert(http::header::CONTENT_TYPE, json.clone());
    headers.insert(http::header::ACCEPT, json);
    Ok(UpstreamRequest {
        method: Method::POST,
        path_and_query: crate::upstream::paths::bedrock_model(target.model, operation),
        headers,
        body: Bytes::from(invoke),
    })
}

/// A Messages request as it came: its body, and the caller's `anthropic-beta` header.
pub struct Messages<'a> {
    pub body: &'a [u8],
    pub anthropic_beta: Option<&'a str>,
}

/// The InvokeModel body for a Messages request.
pub fn request(messages: &Messages<'_>, target: &Target<'_>) -> Result<Vec<u8>, TranslateError> {
    let mut doc: Map<String, Value> = serde_json::from_slice(messages.body)
        .map_err(|e| TranslateError::new("body", e.to_string()))?;
    // Bedrock takes the model from the path and the stream choice from the operation.
    doc.remove("model");
    doc.remove("stream");
    doc.insert(
        "anthropic_version".into(),
        Value::from(BEDROCK_ANTHROPIC_VERSION),
    );
    if let Some(asked) = doc.get("max_tokens").and_then(Value::as_u64) {
        let capped = target.output_tokens(u32::try_from(asked).unwrap_or(u32::MAX));
        if u64::from(capped) < asked {
            doc.insert("max_tokens".into(), Value::from(capped));
        }
    }
    if let Some(beta) = messages.anthropic_beta {
        // The guide itself capitalises one flag: matched in any case, sent as listed.
        let flags: Vec<Value> = beta
            .split(',')
            .filter_map(|f| {
                let f = f.trim();
                BEDROCK_BETAS
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(f))
            })
            .map(|known| Value::from(*known))
            .collect();
        if !flags.is_empty() {
            doc.insert("anthropic_beta".into(), Value::Array(flags));
        }
    }
    serde_json::to_vec(&doc).map_err(|e| TranslateError::new("body", e.to_string()))
}

/// InvokeModelWithResponseStream frames in, Messages SSE events out: each `chunk` frame
/// carries one Messages event, base64-encoded; any other frame is Bedrock's error.
#[derive(Default)]
pub struct InvokeStreamToMessages {
    usage: TokenUsage,
    complete: bool,
}

impl StreamTranslator for InvokeStreamToMessages {
    fn on_event(&mut self, event: &str, data: &str, out: &mut SseOut) {
        if event != "chunk" {
            let detail = serde_json::from_str::<Value>(data)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "Bedrock ended the stream with an error".into());
            out.event(
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": detail}}),
            );
            self.complete = true;
            return;
        }
        let Some(inner) = invoke_chunk(data.as_bytes()) else {
            return;
        };
        let name = inner
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        out.event(name, &inner);
        self.complete |= meter_claude_event(&inner, &mut self.usage) == ClaudeEvent::End;
    }

    fn finish(&mut self, failure: Option<&str>, out: &mut SseOut) {
        if !self.complete {
            let reason = failure.unwrap_or("the upstream closed the stream early");
            let message =
                format!("upstream stream ended before the response was complete: {reason}");
            out.event(
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            );
        }
    }

    fn usage(&self) -> TokenUsage {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_and_stream_leave_the_body_and_beta_flags_enter_it() {
        let body = json!({"model": "claude-sonnet-4-5", "stream": true, "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled", "budget_tokens": 1024}});
        let body = body.to_string();
        let target = Target {
            model: "anthropic.claude-sonnet-4-5",
            kind: ai_gateway_snapshot::ProviderKind::Bedrock,
            default_max_tokens: 4096,
            max_output_tokens: None,
            vertex: None,
        };
        let messages = Messages {
            body: body.as_bytes(),
            anthropic_beta: Some(
                "claude-code-20250219, Interleaved-thinking-2025-05-14, context-1m-2025-08-07, adaptive-thinking-2026-01-28, effort-2025-11-24",
            ),
        };
        let out: Value = serde_json::from_slice(&request(&messages, &target).expect("translates"))
            .expect("json");
        assert!(out.get("model").is_none() && out.get("stream").is_none());
        assert_eq!(out["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(
            out["anthropic_beta"],
            json!([
                "interleaved-thinking-2025-05-14",
                "context-1m-2025-08-07",
                "effort-2025-11-24"
            ])
        );
        assert_eq!(
            out["thinking"]["budget_tokens"], 1024,
            "unknown fields travel unchanged"
        );
    }
}
