//! An OpenAI Chat Completions caller served by Bedrock's Converse API (Claude, Nova,
//! Titan and the rest of Bedrock's catalogue), stream included.
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>

use super::{Call, Target, Translated};
use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::metered::UsageCell;
use crate::translate::from_openai::{content_parts, push_turn, PartStyle};
use crate::translate::to_openai::ChunkWriter;
use crate::translate::{unix_now, SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::{UpstreamRequest, UpstreamResponse};
use crate::wire::openai::{ChatRequest, OneOrMany, Role};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

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
    let out = request(&req, target)?;
    let operation = if req.stream {
        "converse-stream"
    } else {
        "converse"
    };
    let path = crate::upstream::paths::bedrock_model(target.model, operation);
    Ok(UpstreamRequest::json(path, &out))
}

/// Converse stream frames in, chat completion chunks out.
pub(super) fn stream(
    call: &Call<'_>,
    resp: UpstreamResponse,
    usage: Arc<UsageCell>,
) -> ResponseBody {
    let translator = StreamToOpenAi::new(call.model, call.wants_usage_chunk);
    crate::upstream::eventstream_translated(resp, Box::new(translator), usage)
}

/// A Converse answer as a chat completion.
pub(super) fn plain(call: &Call<'_>, answer: &[u8]) -> Translated {
    Translated::from_answer(
        answer,
        |a: &Value| a.get("usage").map(TokenUsage::from_bedrock),
        |a| Ok(response(a, call.model)),
    )
}

pub fn request(req: &ChatRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    req.require_single_choice()?;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let blocks = content_parts(msg.content.as_ref(), &at, &STYLE)?;
        match msg.role {
            Role::System | Role::Developer => system.extend(blocks),
            Role::User => push_turn(&mut turns, "user", blocks),
            Role::Assistant => {
                let mut blocks = blocks;
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    let input = call.function.arguments_json().ok_or_else(|| {
                        TranslateError::new(
                            format!("{at}.tool_calls[{j}].function.arguments"),
                            "is not JSON",
                        )
                    })?;
                    blocks.push(json!({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": input}}));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool => {
                let id = msg.required_tool_call_id(&at)?;
                // A tool result must stay a toolResult for the model to see its call answered.
                // Converse refuses an empty result: say so in text.
                let content = if blocks.is_empty() {
                    vec![json!({"text": ""})]
                } else {
                    blocks
                };
                push_turn(
                    &mut turns,
                    "user",
                    vec![json!({"toolResult": {"toolUseId": id, "content": content}})],
                );
            }
        }
    }
    let mut body = Map::new();
    body.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    inference.insert(
        "maxTokens".into(),
        json!(target.output_tokens(
            req.max_completion_tokens
                .or(req.max_tokens)
                .unwrap_or(target.default_max_tokens)
        )),
    );
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), json!(t.min(1.0)));
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        let sequences = match stop {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        inference.insert("stopSequences".into(), json!(sequences));
    }
    body.insert("inferenceConfig".into(), Value::Object(inference));
    // Converse refuses a history with tool use unless tools are declared; "none" keeps
    // them declared and only leaves the choice unset.
    let none = matches!(&req.tool_choice, Some(Value::String(s)) if s == "none");
    let history_tools: Vec<String> = req
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| c.function.name.clone())
        .collect();
    if req.tools.is_none() && !history_tools.is_empty() {
        let mut names = history_tools;
        names.sort();
        names.dedup();
        let specs: Vec<Value> = names
            .iter()
            .map(|n| json!({"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object"}}}}))
            .collect();
        body.insert("toolConfig".into(), json!({"tools": specs}));
    }
    if let Some(tools) = &req.tools {
        let specs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut spec = json!({
                    "name": t.function.name,
                    "inputSchema": {"json": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"}))},
                });
                if let Some(d) = &t.function.description {
                    spec["description"] = json!(d);
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut config = json!({"tools": specs});
        match &req.tool_choice {
            _ if none => {}
            Some(Value::String(s)) if s == "required" => config["toolChoice"] = json!({"any": {}}),
            Some(Value::String(s)) if s == "auto" => config["toolChoice"] = json!({"auto": {}}),
            Some(v) if v.pointer("/function/name").is_some() => {
                config["toolChoice"] = json!({"tool": {"name": v.pointer("/function/name")}})
            }
            _ => {}
        }
        body.insert("toolConfig".into(), config);
    }
    Ok(Value::Object(body))
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

pub fn response(resp: &Value, client_model: &str) -> Value {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in resp
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(u) = block.get("toolUse") {
            tool_calls.push(json!({
                "id": u["toolUseId"], "type": "function",
                "function": {"name": u["name"], "arguments": u["input"].to_string()},
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
        .get("usage")
        .map(TokenUsage::from_bedrock)
        .unwrap_or_default();
    json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": unix_now(),
        "model": client_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(resp.get("stopReason").and_then(Value::as_str)),
        }],
        "usage": usage.to_openai(),
    })
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
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let index = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match event {
            "messageStart" => {
                self.writer
                    .delta(out, json!({"role": "assistant", "content": ""}), None)
            }
            "contentBlockStart" => {
                if let Some(u) = v.pointer("/start/toolUse") {
                    let call = self.tool_calls.len() as u32;
                    self.tool_calls.insert(index, call);
                    self.writer.delta(
                        out,
                        json!({"tool_calls": [{"index": call, "id": u["toolUseId"], "type": "function",
                                "function": {"name": u["name"], "arguments": ""}}]}),
                        None,
                    );
                }
            }
            "contentBlockDelta" => {
                if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                    self.writer.delta(out, json!({"content": t}), None);
                } else if let (Some(args), Some(call)) = (
                    v.pointer("/delta/toolUse/input").and_then(Value::as_str),
                    self.tool_calls.get(&index),
                ) {
                    self.writer.delta(
                        out,
                        json!({"tool_calls": [{"index": call, "function": {"arguments": args}}]}),
                        None,
                    );
                }
            }
            "messageStop" => {
                let reason = finish_reason(v.get("stopReason").and_then(Value::as_str));
                self.finish = Some(reason);
                self.writer.delta(out, json!({}), Some(reason));
            }
            "metadata" => {
                if let Some(u) = v.get("usage") {
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
                let message = v.get("message").and_then(Value::as_str).unwrap_or(other);
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
