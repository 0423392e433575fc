//! The OpenAI Chat Completions wire types the gateway reads and writes.
//! <https://platform.openai.com/docs/api-reference/chat>
//!
//! The request and its messages serve both ways: read from a chat caller, written for
//! a Messages caller served by an OpenAI-compatible model. Answers, chunks and errors
//! the gateway writes have their own types; fields it does not set are left out.

use super::TranslateError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ChatTool>>,
    /// Kept as JSON: a mode string or a named function, read by each translator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// Written even when None: OpenAI sends `"content": null` beside tool calls.
    #[serde(default)]
    pub content: Option<ChatContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: ChatContent) -> Self {
        Self {
            role,
            content: Some(content),
            tool_calls: None,
            tool_call_id: None,
        }
    }

    /// A message of plain text.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self::new(role, ChatContent::Text(text.into()))
    }

    /// An assistant turn: its text, and its tool calls if any (content is null when
    /// there is only tool use, as OpenAI sends it).
    pub fn assistant(text: String, tool_calls: Vec<ToolCall>) -> Self {
        if tool_calls.is_empty() {
            return Self::text(Role::Assistant, text);
        }
        Self {
            role: Role::Assistant,
            content: (!text.is_empty()).then_some(ChatContent::Text(text)),
            tool_calls: Some(tool_calls),
            tool_call_id: None,
        }
    }

    /// A tool's answer to the call `id`.
    pub fn tool_result(id: impl Into<String>, text: String) -> Self {
        Self {
            tool_call_id: Some(id.into()),
            ..Self::text(Role::Tool, text)
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    /// Read only; the gateway never writes one.
    #[serde(other, skip_serializing)]
    Unsupported,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

/// `type` is written as `function` and not read: a struct tag is ignored when read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename = "function")]
pub struct ToolCall {
    pub id: String,
    pub function: FunctionCall,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// `type` is written as `function` and not read, as on [`ToolCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename = "function")]
pub struct ChatTool {
    pub function: FunctionDefinition,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// A whole `chat.completion` with one choice, as the gateway answers a chat caller.
/// `M` is the message: typed, or JSON from a translator not yet typed.
#[derive(Debug, Serialize)]
#[serde(tag = "object", rename = "chat.completion")]
pub struct ChatAnswer<M = ChatMessage> {
    pub id: Option<String>,
    pub created: u64,
    pub model: String,
    pub choices: [AnswerChoice<M>; 1],
    /// As `TokenUsage::to_openai` writes it.
    pub usage: Value,
}

#[derive(Debug, Serialize)]
pub struct AnswerChoice<M> {
    pub index: u32,
    pub message: M,
    /// The gateway reports no log probabilities: always null.
    pub logprobs: Option<Value>,
    pub finish_reason: &'static str,
}

/// One `chat.completion.chunk` the gateway writes; `D` is its delta, as on
/// [`ChatAnswer`]. The usage chunk has no choices.
#[derive(Debug, Serialize)]
#[serde(tag = "object", rename = "chat.completion.chunk")]
pub struct ChatAnswerChunk<'a, D = ChunkDelta> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<AnswerChunkChoice<'a, D>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct AnswerChunkChoice<'a, D> {
    pub index: u32,
    pub delta: D,
    /// Always null, as on [`AnswerChoice`].
    pub logprobs: Option<Value>,
    /// Null until the last content chunk.
    pub finish_reason: Option<&'a str>,
}

/// An error as OpenAI writes one, mid-stream included.
#[derive(Debug, Serialize)]
pub struct ErrorReply<'a> {
    pub error: ErrorObject<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
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

/// A chunk's delta, read from a server and written to a chat caller; fields not set
/// are left out, and `{}` is the delta that carries only a finish reason.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ChunkDelta {
    /// Written on the first chunk only; not read, so no server's spelling breaks a chunk.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

impl ChunkDelta {
    /// The first delta of an answer: the assistant role, no text yet.
    pub fn opening() -> Self {
        Self {
            role: Some(Role::Assistant),
            content: Some(String::new()),
            tool_calls: None,
        }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: Some(text.into()),
            ..Self::default()
        }
    }

    /// Tool call `index` begins: its id and name, arguments to follow.
    pub fn call_start(index: u32, id: impl Into<String>, name: impl Into<String>) -> Self {
        Self::call(ToolCallDelta {
            index,
            id: Some(id.into()),
            kind: Some("function"),
            function: Some(FunctionDelta {
                name: Some(name.into()),
                arguments: Some(String::new()),
            }),
        })
    }

    /// More of tool call `index`'s JSON arguments.
    pub fn call_arguments(index: u32, arguments: impl Into<String>) -> Self {
        Self::call(ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: Some(FunctionDelta {
                name: None,
                arguments: Some(arguments.into()),
            }),
        })
    }

    fn call(call: ToolCallDelta) -> Self {
        Self {
            tool_calls: Some(vec![call]),
            ..Self::default()
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` on a call's first fragment; written only, as `role` on the delta.
    #[serde(
        rename = "type",
        skip_deserializing,
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<&'static str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_are_read_with_any_type_or_none_and_written_as_function() {
        let read: Vec<ToolCall> = serde_json::from_value(json!([
            {"id": "a", "function": {"name": "ls", "arguments": "{}"}},
            {"id": "b", "type": "custom", "function": {"name": "pwd"}},
        ]))
        .expect("both read");
        assert_eq!(
            serde_json::to_value(&read[1]).expect("writes"),
            json!({"type": "function", "id": "b", "function": {"name": "pwd", "arguments": ""}})
        );
    }

    #[test]
    fn an_assistant_message_with_only_tool_calls_writes_null_content() {
        let call = ToolCall {
            id: "a".into(),
            function: FunctionCall {
                name: "ls".into(),
                arguments: "{}".into(),
            },
        };
        let written = serde_json::to_value(ChatMessage::assistant(String::new(), vec![call]))
            .expect("writes");
        assert_eq!(written["content"], Value::Null);
        assert_eq!(written["tool_calls"][0]["type"], "function");
    }
}
