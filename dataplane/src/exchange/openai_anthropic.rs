//! An OpenAI Chat Completions caller served by the Anthropic Messages API:
//! the request goes out as a Messages request, the answer (and its stream) comes back
//! as a chat completion.

use super::{Call, Target};
use crate::error::GatewayError;
use crate::translate::from_openai::{content_parts, push_turn, PartStyle};
use crate::translate::to_openai::{chat_completion, ChunkWriter};
use crate::translate::{finish_reasons, SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::UpstreamRequest;
use crate::wire::anthropic::{self, Block, StreamEvent};
use crate::wire::openai::{ChatRequest, Role};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const STYLE: PartStyle = PartStyle {
    text: |t| json!({"type": "text", "text": t}),
    image: image_block,
    image_rule: "must be an http(s) URL or a base64 data URL",
};

/// Anthropic's sampling temperature tops out at 1.0, OpenAI's at 2.0.
const ANTHROPIC_MAX_TEMPERATURE: f64 = 1.0;

/// The Messages call for a chat completion.
pub(super) fn upstream_request(
    call: &Call<'_>,
    target: &Target<'_>,
) -> Result<UpstreamRequest, GatewayError> {
    let req: ChatRequest = super::parse(call)?;
    Ok(UpstreamRequest::json(
        "/v1/messages".into(),
        &request(&req, target)?,
    ))
}

/// The usage a whole answer reports.
pub fn usage(answer: &anthropic::MessageResponse) -> Option<TokenUsage> {
    Some(TokenUsage::from_anthropic(&answer.usage))
}

pub fn request(req: &ChatRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    req.require_single_choice()?;
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        match msg.role {
            Role::System | Role::Developer => {
                for block in content_parts(msg.content.as_ref(), &at, &STYLE)? {
                    if block["type"] != "text" {
                        return Err(TranslateError::new(
                            &at,
                            "system messages may hold text only",
                        ));
                    }
                    system.push(block);
                }
            }
            Role::User => push_turn(
                &mut turns,
                "user",
                content_parts(msg.content.as_ref(), &at, &STYLE)?,
            ),
            Role::Assistant => {
                let mut blocks = content_parts(msg.content.as_ref(), &at, &STYLE)?;
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    let input = call
                        .function
                        .arguments_json()
                        .filter(Value::is_object)
                        .ok_or_else(|| {
                            TranslateError::new(
                                format!("{at}.tool_calls[{j}].function.arguments"),
                                "is not a JSON object",
                            )
                        })?;
                    blocks.push(json!({
                        "type": "tool_use", "id": call.id, "name": call.function.name, "input": input,
                    }));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool => {
                let id = msg.required_tool_call_id(&at)?;
                let content: Vec<Value> = content_parts(msg.content.as_ref(), &at, &STYLE)?;
                // Tool results go back as tool_result blocks: flattened into text, an
                // agent never sees its call answered and calls again.
                push_turn(
                    &mut turns,
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})],
                );
            }
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(target.default_max_tokens);
    let max_tokens = target.output_tokens(max_tokens);
    body.insert("max_tokens".into(), json!(max_tokens));
    if let Some(t) = req.temperature {
        body.insert(
            "temperature".into(),
            json!(t.min(ANTHROPIC_MAX_TEMPERATURE)),
        );
    }
    // Current Claude models refuse temperature and top_p together; temperature wins.
    if let (Some(p), None) = (req.top_p, req.temperature) {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        body.insert("stop_sequences".into(), json!(stop.to_vec()));
    }
    if let Some(tools) = &req.tools {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut tool = json!({
                    "name": t.function.name,
                    "input_schema": t.function.parameters.clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(d) = &t.function.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice(req)? {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(body))
}

fn tool_choice(req: &ChatRequest) -> Result<Option<Value>, TranslateError> {
    let mut choice = match &req.tool_choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            other => {
                return Err(TranslateError::new(
                    "tool_choice",
                    format!("`{other}` is not one of auto, none, required"),
                ))
            }
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Some(json!({"type": "tool", "name": name})),
            None => {
                return Err(TranslateError::new(
                    "tool_choice",
                    "must be a string or {\"type\": \"function\", \"function\": {\"name\": …}}",
                ))
            }
        },
    };
    if req.parallel_tool_calls == Some(false) && req.tools.is_some() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    Ok(choice)
}

fn image_block(url: &str) -> Option<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,")?;
        return Some(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Some(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    None
}

pub fn response(
    resp: &anthropic::MessageResponse,
    client_model: &str,
) -> Result<Value, TranslateError> {
    let message = crate::translate::to_openai::assistant_message(&resp.content);
    Ok(chat_completion(
        Some(resp.id.clone()),
        client_model,
        message,
        finish_reasons::anthropic_to_openai(resp.stop_reason.as_deref()),
        TokenUsage::from_anthropic(&resp.usage),
    ))
}

/// Anthropic SSE events in, OpenAI `chat.completion.chunk`s out.
pub struct StreamToOpenAi {
    writer: ChunkWriter,
    include_usage: bool,
    /// Anthropic content-block index → OpenAI tool-call index.
    tool_calls: HashMap<u32, u32>,
    usage: TokenUsage,
    finished: bool,
}

impl StreamToOpenAi {
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(client_model),
            include_usage,
            tool_calls: HashMap::new(),
            usage: TokenUsage::default(),
            finished: false,
        }
    }

    fn chunk(&self, out: &mut SseOut, delta: Value, finish_reason: Option<&str>) {
        self.writer.delta(out, delta, finish_reason);
    }
}

impl StreamTranslator for StreamToOpenAi {
    fn on_event(&mut self, _event: &str, data: &str, out: &mut SseOut) {
        let Ok(event) = serde_json::from_str::<StreamEvent>(data) else {
            return;
        };
        match event {
            StreamEvent::MessageStart { message } => {
                self.writer.id = message.id;
                self.usage = TokenUsage::from_anthropic(&message.usage);
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::ToolUse { id, name, .. } => {
                    let call_index = self.tool_calls.len() as u32;
                    self.tool_calls.insert(index, call_index);
                    self.chunk(
                        out,
                        json!({"tool_calls": [{
                            "index": call_index, "id": id, "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }]}),
                        None,
                    );
                }
                Block::Text { text } if !text.is_empty() => {
                    self.chunk(out, json!({"content": text}), None)
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                anthropic::BlockDelta::TextDelta { text } => {
                    self.chunk(out, json!({"content": text}), None)
                }
                anthropic::BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(call_index) = self.tool_calls.get(&index) {
                        self.chunk(
                            out,
                            json!({"tool_calls": [{
                                "index": call_index, "function": {"arguments": partial_json},
                            }]}),
                            None,
                        );
                    }
                }
                anthropic::BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.merge_anthropic(&u);
                }
                let reason = finish_reasons::anthropic_to_openai(delta.stop_reason.as_deref());
                self.chunk(out, json!({}), Some(reason));
            }
            StreamEvent::MessageStop => {
                if self.include_usage {
                    self.writer.usage(out, self.usage);
                }
                out.done_marker();
                self.finished = true;
            }
            StreamEvent::Error { error } => {
                ChunkWriter::error(out, &error.kind, &error.message);
                self.finished = true;
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Other => {}
        }
    }

    fn finish(&mut self, failure: Option<&str>, out: &mut SseOut) {
        if !self.finished {
            ChunkWriter::cut_short(out, failure);
        }
    }

    fn usage(&self) -> TokenUsage {
        self.usage
    }
}
