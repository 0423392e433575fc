//! Writing OpenAI chat answers from other APIs: stream chunks and assistant messages.

use super::{unix_now, SseOut, TokenUsage};
use crate::wire::anthropic::Block;
use serde_json::{json, Value};

/// Writes `chat.completion.chunk` events for one translated stream.
pub struct ChunkWriter {
    pub id: String,
    created: u64,
    model: String,
}

impl ChunkWriter {
    pub fn new(client_model: &str) -> Self {
        Self {
            id: String::new(),
            created: unix_now(),
            model: client_model.to_string(),
        }
    }

    pub fn delta(&self, out: &mut SseOut, delta: Value, finish_reason: Option<&str>) {
        out.data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        }));
    }

    /// The final usage chunk callers ask for with `stream_options.include_usage`.
    pub fn usage(&self, out: &mut SseOut, usage: TokenUsage) {
        out.data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_openai(),
        }));
    }

    /// An error mid-stream, as OpenAI sends one (no `[DONE]` follows).
    pub fn error(out: &mut SseOut, kind: &str, message: &str) {
        out.data(
            &json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        );
    }

    /// A stream that ended before its final event.
    pub fn cut_short(out: &mut SseOut, failure: Option<&str>) {
        let reason = failure.unwrap_or("the upstream closed the stream early");
        Self::error(
            out,
            "server_error",
            &format!("upstream stream ended before the response was complete: {reason}"),
        );
    }
}

/// An Anthropic assistant turn as an OpenAI assistant message: text joined, tool uses
/// as tool calls (content is null when there is only tool use, as OpenAI sends it).
pub fn assistant_message(blocks: &[Block]) -> Value {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block {
            Block::Text { text: t } => text.push_str(t),
            Block::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !tool_calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(tool_calls);
    }
    message
}

/// A whole chat completion with one choice, as OpenAI answers one.
pub fn chat_completion(
    id: Option<String>,
    client_model: &str,
    message: Value,
    finish_reason: &str,
    usage: TokenUsage,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": client_model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": usage.to_openai(),
    })
}
