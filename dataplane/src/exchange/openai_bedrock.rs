//! An OpenAI Chat Completions caller served by Bedrock's Converse API (Claude, Nova,
//! Titan and the rest of Bedrock's catalogue), stream included.
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>

use super::{Call, Target};
use crate::error::GatewayError;
use crate::translate::from_openai::{content_parts, PartStyle};
use crate::translate::to_openai::{chat_completion, ChunkWriter};
use crate::translate::{SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::UpstreamRequest;
use crate::wire::bedrock::{self, ContentBlock, ConverseResponse, ToolChoice};
use crate::wire::openai::{ChatRequest, OneOrMany, Role};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const STYLE: PartStyle = PartStyle {
    text: |t| json!({"text": t}),
    image: image_block,
    image_rule: "Bedrock takes images as base64 data URLs (png, jpeg, gif or webp)",
};

/// The Converse call (or its stream) for a chat completion.
pub(super) fn upstream_request(
    call: &Call<'_>,
    target: &Target<'_>,
) -> Result<UpstreamRequest, GatewayError> {
    let req: ChatRequest = super::parse(call)?;
    let mut out = request(&req, target)?;
    if let (true, Value::Object(doc)) = (call.cache_breakpoints, &mut out) {
        crate::intelligence::prompt_cache::mark_converse_request(doc, target.model);
    }
    let operation = if req.stream {
        "converse-stream"
    } else {
        "converse"
    };
    let path = crate::upstream::paths::bedrock_model(target.model, operation);
    Ok(UpstreamRequest::json(path, &out))
}

/// The usage a whole answer reports.
pub fn usage(answer: &ConverseResponse) -> Option<TokenUsage> {
    answer.usage.as_ref().map(TokenUsage::from_bedrock)
}

/// Built typed, sent as a `Value`: `UpstreamRequest::json` takes one, and its sorted keys
/// keep the bytes on the wire what they were.
pub fn request(req: &ChatRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    let body = converse_request(req, target)?;
    serde_json::to_value(body).map_err(|e| TranslateError::new("body", e.to_string()))
}

fn converse_request(
    req: &ChatRequest,
    target: &Target<'_>,
) -> Result<bedrock::ConverseRequest, TranslateError> {
    req.require_single_choice()?;
    let mut system = Vec::new();
    let mut messages: Vec<bedrock::Message> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let blocks = typed_blocks(content_parts(msg.content.as_ref(), &at, &STYLE)?, &at)?;
        match msg.role {
            Role::System | Role::Developer => system.extend(blocks),
            Role::User => push_turn(&mut messages, bedrock::Role::User, blocks),
            Role::Assistant => {
                let mut blocks = blocks;
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    let input = call.function.arguments_json().ok_or_else(|| {
                        TranslateError::new(
                            format!("{at}.tool_calls[{j}].function.arguments"),
                            "is not JSON",
                        )
                    })?;
                    blocks.push(ContentBlock {
                        tool_use: Some(bedrock::ToolUse {
                            tool_use_id: call.id.clone(),
                            name: call.function.name.clone(),
                            input,
                            rest: Map::new(),
                        }),
                        ..ContentBlock::default()
                    });
                }
                push_turn(&mut messages, bedrock::Role::Assistant, blocks);
            }
            Role::Tool => {
                let id = msg.required_tool_call_id(&at)?;
                // A tool result must stay a toolResult for the model to see its call answered.
                // Converse refuses an empty result: say so in text.
                let content = if blocks.is_empty() {
                    vec![ContentBlock::text("")]
                } else {
                    blocks
                };
                let result = ContentBlock {
                    tool_result: Some(bedrock::ToolResult {
                        tool_use_id: id.to_string(),
                        content,
                        rest: Map::new(),
                    }),
                    ..ContentBlock::default()
                };
                push_turn(&mut messages, bedrock::Role::User, vec![result]);
            }
        }
    }
    let inference_config = bedrock::InferenceConfig {
        max_tokens: target.output_tokens(
            req.max_completion_tokens
                .or(req.max_tokens)
                .unwrap_or(target.default_max_tokens),
        ),
        temperature: req.temperature.map(|t| t.min(1.0)),
        top_p: req.top_p,
        stop_sequences: req.stop.as_ref().map(|stop| match stop {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }),
    };
    // Converse refuses a history with tool use unless tools are declared; "none" keeps
    // them declared and only leaves the choice unset.
    let none = matches!(&req.tool_choice, Some(Value::String(s)) if s == "none");
    let mut tool_config = None;
    if req.tools.is_none() {
        let mut names: Vec<&str> = req
            .messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .map(|c| c.function.name.as_str())
            .collect();
        if !names.is_empty() {
            names.sort_unstable();
            names.dedup();
            tool_config = Some(bedrock::ToolConfig {
                tools: names
                    .into_iter()
                    .map(|n| tool(n.to_string(), None, object_schema()))
                    .collect(),
                tool_choice: None,
            });
        }
    }
    if let Some(tools) = &req.tools {
        let tool_choice = match &req.tool_choice {
            _ if none => None,
            Some(Value::String(s)) if s == "required" => Some(ToolChoice::Any {}),
            Some(Value::String(s)) if s == "auto" => Some(ToolChoice::Auto {}),
            Some(v) => v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .map(|name| ToolChoice::Tool {
                    name: name.to_string(),
                }),
            None => None,
        };
        tool_config = Some(bedrock::ToolConfig {
            tools: tools
                .iter()
                .map(|t| {
                    tool(
                        t.function.name.clone(),
                        t.function.description.clone(),
                        t.function.parameters.clone().unwrap_or_else(object_schema),
                    )
                })
                .collect(),
            tool_choice,
        });
    }
    Ok(bedrock::ConverseRequest {
        messages,
        system,
        inference_config,
        tool_config,
    })
}

fn tool(name: String, description: Option<String>, schema: Value) -> bedrock::Tool {
    bedrock::Tool {
        tool_spec: bedrock::ToolSpec {
            name,
            description,
            input_schema: bedrock::InputSchema { json: schema },
        },
    }
}

/// The schema of a tool known only by name: any object.
fn object_schema() -> Value {
    json!({"type": "object"})
}

/// The shared content reader speaks `Value`; its parts are this file's STYLE, so they
/// read back as blocks unless a style and the block type disagree.
fn typed_blocks(parts: Vec<Value>, at: &str) -> Result<Vec<ContentBlock>, TranslateError> {
    parts
        .into_iter()
        .map(|p| serde_json::from_value(p).map_err(|e| TranslateError::new(at, e.to_string())))
        .collect()
}

/// Appends a turn, merging it into the previous one of the same role, as the shared
/// `push_turn` does for untyped parts: Converse wants alternating turns.
fn push_turn(messages: &mut Vec<bedrock::Message>, role: bedrock::Role, blocks: Vec<ContentBlock>) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(bedrock::Message {
            role,
            content: blocks,
            rest: Map::new(),
        }),
    }
}

fn image_block(url: &str) -> Option<Value> {
    let (media_type, data) = url.strip_prefix("data:")?.split_once(";base64,")?;
    let format = media_type.strip_prefix("image/")?;
    let format = if format == "jpg" { "jpeg" } else { format };
    ["png", "jpeg", "gif", "webp"]
        .contains(&format)
        .then(|| json!({"image": {"format": format, "source": {"bytes": data}}}))
}

/// Converse `stopReason` → OpenAI `finish_reason`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("tool_use") => "tool_calls",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        _ => "stop",
    }
}

pub fn response(resp: &ConverseResponse, client_model: &str) -> Result<Value, TranslateError> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let blocks = resp
        .output
        .as_ref()
        .and_then(|o| o.message.as_ref())
        .map_or(&[][..], |m| &m.content[..]);
    for block in blocks {
        if let Some(t) = &block.text {
            text.push_str(t);
        }
        if let Some(u) = &block.tool_use {
            tool_calls.push(json!({
                "id": u.tool_use_id, "type": "function",
                "function": {"name": u.name, "arguments": u.input.to_string()},
            }));
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !tool_calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let usage = resp
        .usage
        .as_ref()
        .map(TokenUsage::from_bedrock)
        .unwrap_or_default();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    chat_completion(
        Some(id),
        client_model,
        message,
        finish_reason(resp.stop_reason.as_deref()),
        usage,
    )
}

/// Converse-stream events (event type, JSON payload) in, OpenAI chunks out.
pub struct StreamToOpenAi {
    writer: ChunkWriter,
    include_usage: bool,
    /// Converse content-block index → OpenAI tool-call index.
    tool_calls: HashMap<u64, u32>,
    finish: Option<&'static str>,
    usage: TokenUsage,
    finished: bool,
}

impl StreamToOpenAi {
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        let mut writer = ChunkWriter::new(client_model);
        writer.id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
        Self {
            writer,
            include_usage,
            tool_calls: HashMap::new(),
            finish: None,
            usage: TokenUsage::default(),
            finished: false,
        }
    }
}

impl StreamTranslator for StreamToOpenAi {
    fn on_event(&mut self, event: &str, data: &str, out: &mut SseOut) {
        match event {
            "messageStart" if parse::<bedrock::OtherEvent>(data).is_some() => {
                self.writer
                    .delta(out, json!({"role": "assistant", "content": ""}), None)
            }
            "contentBlockStart" => {
                let Some(e) = parse::<bedrock::ContentBlockStart>(data) else {
                    return;
                };
                if let Some(u) = e.start.and_then(|s| s.tool_use) {
                    let call = self.tool_calls.len() as u32;
                    self.tool_calls.insert(e.content_block_index, call);
                    self.writer.delta(
                        out,
                        json!({"tool_calls": [{"index": call, "id": u.tool_use_id, "type": "function",
                                "function": {"name": u.name, "arguments": ""}}]}),
                        None,
                    );
                }
            }
            "contentBlockDelta" => {
                let Some(e) = parse::<bedrock::ContentBlockDelta>(data) else {
                    return;
                };
                let Some(delta) = e.delta else {
                    return;
                };
                if let Some(t) = delta.text {
                    self.writer.delta(out, json!({"content": t}), None);
                } else if let (Some(u), Some(call)) =
                    (delta.tool_use, self.tool_calls.get(&e.content_block_index))
                {
                    self.writer.delta(
                        out,
                        json!({"tool_calls": [{"index": call, "function": {"arguments": u.input}}]}),
                        None,
                    );
                }
            }
            "messageStop" => {
                let Some(e) = parse::<bedrock::MessageStop>(data) else {
                    return;
                };
                let reason = finish_reason(e.stop_reason.as_deref());
                self.finish = Some(reason);
                self.writer.delta(out, json!({}), Some(reason));
            }
            "metadata" => {
                let Some(e) = parse::<bedrock::Metadata>(data) else {
                    return;
                };
                if let Some(u) = &e.usage {
                    self.usage = TokenUsage::from_bedrock(u);
                }
                if self.include_usage {
                    self.writer.usage(out, self.usage);
                }
                out.done_marker();
                self.finished = true;
            }
            // Exception frames: their type is the event name.
            other if other.ends_with("Exception") => {
                let Some(e) = parse::<bedrock::OtherEvent>(data) else {
                    return;
                };
                let message = e.message.as_deref().unwrap_or(other);
                ChunkWriter::error(out, "server_error", message);
                self.finished = true;
            }
            _ => {}
        }
    }

    fn finish(&mut self, failure: Option<&str>, out: &mut SseOut) {
        if self.finished {
            return;
        }
        // A stream that stopped cleanly but sent no metadata frame is still complete.
        if failure.is_none() && self.finish.is_some() {
            out.done_marker();
            return;
        }
        ChunkWriter::cut_short(out, failure);
    }

    fn usage(&self) -> TokenUsage {
        self.usage
    }
}

/// An event payload; one that does not parse is skipped, as a stream cannot refuse it.
fn parse<T: serde::de::DeserializeOwned>(data: &str) -> Option<T> {
    serde_json::from_str(data).ok()
}
