//! The Bedrock Converse API wire types the gateway writes and reads.
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//!
//! Documents read from Bedrock keep the fields the gateway does not type in `rest`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The Converse (and ConverseStream) request body.
#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<ContentBlock>,
    pub inference_config: InferenceConfig,
    pub tool_config: Option<ToolConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One content block: exactly one of its members is set. A struct rather than an enum,
/// so blocks the gateway does not know (reasoning, documents) are read, not refused.
#[serde_with::skip_serializing_none]
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlock {
    pub text: Option<String>,
    pub image: Option<ImageBlock>,
    pub tool_use: Option<ToolUse>,
    pub tool_result: Option<ToolResult>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImageBlock {
    pub format: String,
    pub source: ImageSource,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImageSource {
    /// Base64 in JSON, as the data URL carried it.
    pub bytes: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    pub tool_use_id: String,
    pub name: String,
    #[serde(default)]
    pub input: Value,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Vec<ContentBlock>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: Option<Vec<String>>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub tool_spec: ToolSpec,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: InputSchema,
}

#[derive(Debug, Serialize)]
pub struct InputSchema {
    pub json: Value,
}

/// `{"auto": {}}`, `{"any": {}}` or `{"tool": {"name": …}}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    Auto {},
    Any {},
    Tool { name: String },
}

/// The Converse answer.
#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: Option<Output>,
    pub stop_reason: Option<String>,
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
pub struct Output {
    pub message: Option<Message>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Token counts of a Converse answer or a stream's `metadata` event.
#[serde_with::skip_serializing_none]
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_write_input_tokens: Option<u64>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

// ConverseStream event payloads, one per event type the translator acts on.
// <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html>

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart {
    #[serde(default)]
    pub content_block_index: u64,
    pub start: Option<BlockStart>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    pub tool_use: Option<ToolUseStart>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    pub tool_use_id: String,
    pub name: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta {
    #[serde(default)]
    pub content_block_index: u64,
    pub delta: Option<BlockDelta>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta {
    pub text: Option<String>,
    pub tool_use: Option<ToolUseDelta>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ToolUseDelta {
    /// A fragment of the tool input's JSON text.
    pub input: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop {
    pub stop_reason: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
pub struct Metadata {
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Any other event's payload (`messageStart`, the `…Exception` frames): untyped but
/// for the message an exception carries.
#[serde_with::skip_serializing_none]
#[derive(Debug, Serialize, Deserialize)]
pub struct OtherEvent {
    pub message: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
