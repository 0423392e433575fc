//! The OpenAI Chat Completions wire types the gateway reads.
//! <https://platform.openai.com/docs/api-reference/chat>

use super::{unix_now, SseOut, TokenUsage, TranslateError};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<OneOrMany>,
    pub tools: Option<Vec<ChatTool>>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub user: Option<String>,
    pub n: Option<u32>,
}

impl ChatRequest {
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// Providers other than OpenAI give one answer per call.
    pub fn require_single_choice(&self) -> Result<(), TranslateError> {
        if self.n.is_some_and(|n| n > 1) {
            return Err(TranslateError::new(
                "n",
                "only n = 1 is supported for this model",
            ));
        }
        Ok(())
    }
}

impl ChatMessage {
    /// The call a tool message answers; `at` is the message's path, for the error.
    pub fn required_tool_call_id(&self, at: &str) -> Result<&str, TranslateError> {
        self.tool_call_id.as_deref().ok_or_else(|| {
            TranslateError::new(format!("{at}.tool_call_id"), "is required on tool messages")
        })
    }
}

impl FunctionCall {
    /// The arguments as JSON; an empty string is a call without arguments.
    pub fn arguments_json(&self) -> Option<Value> {
        if self.arguments.trim().is_empty() {
            return Some(json!({}));
        }
        serde_json::from_str(&self.arguments).ok()
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, one or many, as the list other APIs take.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    #[serde(default)]
    pub content: Option<ChatContent>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Debug, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub function: FunctionCall,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Deserialize)]
pub struct ChatTool {
    pub function: FunctionDefinition,
}

#[derive(Debug, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    pub choices: Vec<Choice>,
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct Choice {
    pub message: ResponseMessage,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseMessage {
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub delta: Option<ChunkDelta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChunkDelta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// The error document OpenAI-compatible servers send, read to keep their message.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ErrorDetail {
    Object { message: String },
    // Ollama answers `{"error": "message"}`.
    Text(String),
}

impl ErrorDetail {
    pub fn message(&self) -> &str {
        match self {
            Self::Object { message } | Self::Text(message) => message,
        }
    }
}

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

/// A target API's rendering of OpenAI message content: how it writes a text part, how
/// it takes an image URL (None when it cannot), and what to tell a caller then.
pub struct PartStyle {
    pub text: fn(&str) -> Value,
    pub image: fn(&str) -> Option<Value>,
    pub image_rule: &'static str,
}

/// A message's content as the target API's parts, each fault named by its path.
pub fn content_parts(
    content: Option<&ChatContent>,
    at: &str,
    style: &PartStyle,
) -> Result<Vec<Value>, super::TranslateError> {
    use super::TranslateError;
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(s)) if s.is_empty() => Ok(Vec::new()),
        Some(ChatContent::Text(s)) => Ok(vec![(style.text)(s)]),
        Some(ChatContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part {
                ContentPart::Text { text } => Ok((style.text)(text)),
                ContentPart::ImageUrl { image_url } => {
                    (style.image)(&image_url.url).ok_or_else(|| {
                        TranslateError::new(
                            format!("{at}.content[{j}].image_url.url"),
                            style.image_rule,
                        )
                    })
                }
                ContentPart::Unsupported => Err(TranslateError::new(
                    format!("{at}.content[{j}].type"),
                    "only text and image_url parts can be sent to this model",
                )),
            })
            .collect(),
    }
}

/// Appends a turn, merging it into the previous one of the same role: the target APIs
/// want alternating turns, and tool results followed by a note are one user turn.
pub fn push_turn(
    turns: &mut Vec<(&'static str, Vec<Value>)>,
    role: &'static str,
    parts: Vec<Value>,
) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(parts),
        _ => turns.push((role, parts)),
    }
}
