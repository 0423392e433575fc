//! Writing OpenAI chat answers from other APIs: stream chunks and assistant messages.

use super::{unix_now, SseOut, TokenUsage, TranslateError};
use crate::wire::anthropic::Block;
use crate::wire::openai::{
    AnswerChoice, AnswerChunkChoice, ChatAnswer, ChatAnswerChunk, ChatMessage, ErrorObject,
    ErrorReply, FunctionCall, ToolCall,
};
use serde::Serialize;
use serde_json::Value;

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

    /// One choice's delta: a typed `ChunkDelta`, or JSON from a translator not yet typed.
    pub fn delta<D: Serialize>(&self, out: &mut SseOut, delta: D, finish_reason: Option<&str>) {
        out.data(&self.chunk(
            vec![AnswerChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            None,
        ));
    }

    /// The final usage chunk callers ask for with `stream_options.include_usage`.
    pub fn usage(&self, out: &mut SseOut, usage: TokenUsage) {
        out.data(&self.chunk::<Value>(Vec::new(), Some(usage.to_openai())));
    }

    fn chunk<'a, D>(
        &'a self,
        choices: Vec<AnswerChunkChoice<'a, D>>,
        usage: Option<Value>,
    ) -> ChatAnswerChunk<'a, D> {
        ChatAnswerChunk {
            id: &self.id,
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }

    /// An error mid-stream, as OpenAI sends one (no `[DONE]` follows).
    pub fn error(out: &mut SseOut, kind: &str, message: &str) {
        out.data(&ErrorReply {
            error: ErrorObject {
                message,
                kind,
                param: None,
                code: None,
            },
        });
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
/// as tool calls.
pub fn assistant_message(blocks: &[Block]) -> ChatMessage {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block {
            Block::Text { text: t } => text.push_str(t),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id: id.clone(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: input.to_string(),
                },
            }),
            _ => {}
        }
    }
    ChatMessage::assistant(text, tool_calls)
}

/// A whole chat completion with one choice, as OpenAI answers one; `message` is a
/// typed `ChatMessage`, or JSON from a translator not yet typed.
pub fn chat_completion<M: Serialize>(
    id: Option<String>,
    client_model: &str,
    message: M,
    finish_reason: &'static str,
    usage: TokenUsage,
) -> Result<Value, TranslateError> {
    let answer = ChatAnswer {
        id,
        created: unix_now(),
        model: client_model.to_string(),
        choices: [AnswerChoice {
            index: 0,
            message,
            logprobs: None,
            finish_reason,
        }],
        usage: usage.to_openai(),
    };
    serde_json::to_value(answer).map_err(|e| TranslateError::new("body", e.to_string()))
}
