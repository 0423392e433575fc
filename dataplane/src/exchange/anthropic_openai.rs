//! An Anthropic Messages caller (Claude Code on `/v1/claude`) served by an
//! OpenAI-compatible model (OpenAI, Ollama, vLLM …): the request goes out as a chat
//! completion, the answer and its stream come back as Messages API events.

use super::{Call, Target};
use crate::error::GatewayError;
use crate::translate::to_openai::assistant_message;
use crate::translate::{finish_reasons, SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::Upstream;
use crate::upstream::UpstreamRequest;
use crate::wire::anthropic::{Block, Content, ImageSource, MessagesRequest, Role, ToolChoice};
use crate::wire::openai::{ChatChunk, ChatCompletion};
use ai_gateway_snapshot::ProviderKind;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// How the upstream spells the output-token cap: OpenAI's current models accept only
/// `max_completion_tokens`, while Ollama and most compatible servers know `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

impl MaxTokensField {
    fn of(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Openai | ProviderKind::AzureOpenai => Self::MaxCompletionTokens,
            _ => Self::MaxTokens,
        }
    }
}

/// The chat completion call for a Messages request, and the prompt's estimated tokens
/// (which a translated stream reports before the provider's count arrives).
pub(super) fn upstream_request(
    call: &Call<'_>,
    provider: &Upstream,
    target: &Target<'_>,
) -> Result<(UpstreamRequest, u64), GatewayError> {
    let req: MessagesRequest = super::parse(call)?;
    let out = request(&req, target)?;
    let path = provider.chat_completions_path(target.model);
    let estimate = if req.stream {
        crate::translate::tokens::estimate_messages_input(&req)
    } else {
        0
    };
    Ok((UpstreamRequest::json(path, &out), estimate))
}

/// The usage a whole answer reports.
pub fn usage(answer: &ChatCompletion) -> Option<TokenUsage> {
    answer.usage.as_ref().map(TokenUsage::from_openai)
}

pub fn request(req: &MessagesRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    let mut messages: Vec<Value> = Vec::new();
    if let Some(system) = &req.system {
        let text = system.joined_text();
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, msg) in req.messages.iter().enumerate() {
        match (&msg.content, msg.role) {
            (Content::Text(text), Role::User) => {
                messages.push(json!({"role": "user", "content": text}))
            }
            (Content::Text(text), Role::Assistant) => {
                messages.push(json!({"role": "assistant", "content": text}))
            }
            (Content::Blocks(blocks), Role::User) => user_turn(blocks, i, &mut messages)?,
            (Content::Blocks(blocks), Role::Assistant) => messages.push(assistant_message(blocks)),
            (content, Role::System) => {
                messages.push(json!({"role": "system", "content": content.joined_text()}))
            }
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(max) = req.max_tokens {
        let field = match MaxTokensField::of(target.kind) {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        };
        body.insert(field.into(), json!(target.output_tokens(max)));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &req.stop_sequences {
        if !stop.is_empty() {
            body.insert("stop".into(), json!(stop));
        }
    }
    // Server tools (web search …) have no schema: only Anthropic can run them.
    let tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| {
            let schema = t.input_schema.clone()?;
            let mut function = json!({"name": t.name, "parameters": schema});
            if let Some(d) = &t.description {
                function["description"] = json!(d);
            }
            Some(json!({"type": "function", "function": function}))
        })
        .collect();
    let has_tools = !tools.is_empty();
    if has_tools {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let (Some(choice), true) = (&req.tool_choice, has_tools) {
        let (choice, no_parallel) = match choice {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            } => (json!("auto"), *disable_parallel_tool_use),
            ToolChoice::Any {
                disable_parallel_tool_use,
            } => (json!("required"), *disable_parallel_tool_use),
            ToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (
                json!({"type": "function", "function": {"name": name}}),
                *disable_parallel_tool_use,
            ),
            ToolChoice::None => (json!("none"), false),
        };
        body.insert("tool_choice".into(), choice);
        if no_parallel {
            body.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    if let Some(user) = req.metadata.as_ref().and_then(|m| m.user_id.as_ref()) {
        body.insert("user".into(), json!(user));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        // The gateway meters every stream, so it always asks for the usage chunk.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(body))
}

/// One Anthropic user turn becomes the `tool` messages answering the previous
/// assistant turn (first, as OpenAI requires), then a user message with the rest.
fn user_turn(
    blocks: &[Block],
    turn: usize,
    messages: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let mut parts: Vec<Value> = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block {
            Block::Text { text } => parts.push(json!({"type": "text", "text": text})),
            Block::Image { source } => parts.push(image_part(source).ok_or_else(|| {
                TranslateError::new(
                    format!("messages[{turn}].content[{j}].source"),
                    "only base64 and url image sources can be sent to this model",
                )
            })?),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut text = content
                    .as_ref()
                    .map(Content::joined_text)
                    .unwrap_or_default();
                if *is_error && !text.starts_with("Error") {
                    text = format!("Error: {text}");
                }
                messages
                    .push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
                // Images a tool returned ride along in the user message that follows.
                if let Some(Content::Blocks(inner)) = content {
                    parts.extend(inner.iter().filter_map(|b| match b {
                        Block::Image { source } => image_part(source),
                        _ => None,
                    }));
                }
            }
            Block::ToolUse { .. } | Block::Other => {}
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let only_text = parts.iter().all(|p| p["type"] == "text");
    let content = if only_text {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        json!(texts.join("\n\n"))
    } else {
        Value::Array(parts)
    };
    messages.push(json!({"role": "user", "content": content}));
    Ok(())
}

fn image_part(source: &ImageSource) -> Option<Value> {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url.clone(),
        ImageSource::Other => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Arguments a model produced that are not a JSON object still reach the client, as a
/// string field, instead of being dropped.
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) if v.is_object() => v,
        _ => json!({"arguments": arguments}),
    }
}

pub fn response(resp: &ChatCompletion, client_model: &str) -> Result<Value, TranslateError> {
    let choice = resp
        .choices
        .first()
        .ok_or_else(|| TranslateError::new("choices", "the upstream returned no choices"))?;
    let mut content = Vec::new();
    let text = choice
        .message
        .content
        .as_deref()
        .or(choice.message.refusal.as_deref())
        .unwrap_or("");
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in choice.message.tool_calls.iter().flatten() {
        content.push(json!({
            "type": "tool_use", "id": call.id, "name": call.function.name,
            "input": tool_input(&call.function.arguments),
        }));
    }
    let usage = resp
        .usage
        .as_ref()
        .map(TokenUsage::from_openai)
        .unwrap_or_default();
    let has_tool_calls = choice
        .message
        .tool_calls
        .as_ref()
        .is_some_and(|c| !c.is_empty());
    Ok(json!({
        "id": anthropic_message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": match finish_reasons::openai_to_anthropic(choice.finish_reason.as_deref()) {
            "end_turn" if has_tool_calls => "tool_use",
            reason => reason,
        },
        "stop_sequence": null,
        "usage": usage.to_anthropic(),
    }))
}

fn anthropic_message_id(upstream_id: &str) -> String {
    if upstream_id.is_empty() {
        format!("msg_{}", uuid::Uuid::new_v4().simple())
    } else {
        format!("msg_{upstream_id}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text(u32),
    Tool { block: u32, call: u32 },
}

/// OpenAI `chat.completion.chunk`s in, Anthropic Messages SSE events out.
pub struct StreamToAnthropic {
    client_model: String,
    estimated_input: u64,
    started: bool,
    open: Option<OpenBlock>,
    next_block: u32,
    /// OpenAI tool-call index → Anthropic content-block index, and the call's id.
    tool_blocks: HashMap<u32, u32>,
    tool_ids: HashMap<u32, String>,
    stop_reason: Option<&'static str>,
    usage: Option<TokenUsage>,
    ended: bool,
}

impl StreamToAnthropic {
    /// `estimated_input` fills `message_start`: OpenAI streams report usage only at the end,
    /// where the exact counts follow in `message_delta`.
    pub fn new(client_model: &str, estimated_input: u64) -> Self {
        Self {
            client_model: client_model.to_string(),
            estimated_input,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: HashMap::new(),
            tool_ids: HashMap::new(),
            stop_reason: None,
            usage: None,
            ended: false,
        }
    }

    fn start(&mut self, id: &str, out: &mut SseOut) {
        if self.started {
            return;
        }
        self.started = true;
        out.event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": anthropic_message_id(id),
                "type": "message",
                "role": "assistant",
                "model": self.client_model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": self.estimated_input, "output_tokens": 0},
            }}),
        );
    }

    fn close_open(&mut self, out: &mut SseOut) {
        if let Some(open) = self.open.take() {
            let index = match open {
                OpenBlock::Text(i) | OpenBlock::Tool { block: i, .. } => i,
            };
            out.event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn text(&mut self, text: &str, out: &mut SseOut) {
        let index = match self.open {
            Some(OpenBlock::Text(i)) => i,
            _ => {
                self.close_open(out);
                let i = self.next_block;
                self.next_block += 1;
                self.open = Some(OpenBlock::Text(i));
                out.event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": i,
                            "content_block": {"type": "text", "text": ""}}),
                );
                i
            }
        };
        out.event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn tool_fragment(&mut self, call: &crate::wire::openai::ToolCallDelta, out: &mut SseOut) {
        let function = call.function.as_ref();
        // Some servers give every parallel call index 0: a new id is a new call.
        let known = self.tool_blocks.get(&call.index).copied();
        let is_new = match (known, call.id.as_deref()) {
            (None, _) => true,
            (Some(_), Some(id)) => self
                .tool_ids
                .get(&call.index)
                .is_some_and(|seen| seen != id),
            (Some(_), None) => false,
        };
        let block = match known.filter(|_| !is_new) {
            Some(b) => b,
            None => {
                self.close_open(out);
                let b = self.next_block;
                self.next_block += 1;
                self.tool_blocks.insert(call.index, b);
                self.open = Some(OpenBlock::Tool {
                    block: b,
                    call: call.index,
                });
                let id = call
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("toolu_{}", uuid::Uuid::new_v4().simple()));
                self.tool_ids.insert(call.index, id.clone());
                let name = function.and_then(|f| f.name.clone()).unwrap_or_default();
                out.event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": b,
                            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                );
                b
            }
        };
        if let Some(args) = function.and_then(|f| f.arguments.as_deref()) {
            if !args.is_empty() {
                out.event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": block,
                            "delta": {"type": "input_json_delta", "partial_json": args}}),
                );
            }
        }
    }

    fn end(&mut self, out: &mut SseOut) {
        self.close_open(out);
        // Ollama and others finish tool calls with "stop"; an agent must see tool_use.
        if !self.tool_blocks.is_empty() && self.stop_reason != Some("max_tokens") {
            self.stop_reason = Some("tool_use");
        }
        let usage = self.usage.unwrap_or(TokenUsage {
            input: self.estimated_input,
            ..TokenUsage::default()
        });
        out.event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                    "usage": usage.to_anthropic()}),
        );
        out.event("message_stop", &json!({"type": "message_stop"}));
        self.ended = true;
    }
}

impl StreamTranslator for StreamToAnthropic {
    fn on_event(&mut self, _event: &str, data: &str, out: &mut SseOut) {
        if self.ended {
            return;
        }
        if data.trim() == "[DONE]" {
            self.start("", out);
            self.end(out);
            return;
        }
        // Every chunk field is optional, so an error document must be recognised first.
        if let Ok(e) = serde_json::from_str::<crate::wire::openai::ErrorEnvelope>(data) {
            self.start("", out);
            out.event(
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": e.error.message()}}),
            );
            self.ended = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChatChunk>(data) else {
            return;
        };
        self.start(&chunk.id, out);
        if let Some(u) = &chunk.usage {
            self.usage = Some(TokenUsage::from_openai(u));
        }
        for choice in &chunk.choices {
            if let Some(delta) = &choice.delta {
                if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
                    self.text(text, out);
                }
                for call in delta.tool_calls.iter().flatten() {
                    self.tool_fragment(call, out);
                }
            }
            if let Some(reason) = &choice.finish_reason {
                self.stop_reason = Some(finish_reasons::openai_to_anthropic(Some(reason)));
            }
        }
    }

    fn finish(&mut self, failure: Option<&str>, out: &mut SseOut) {
        if self.ended {
            return;
        }
        // Some servers close right after the finish reason without `[DONE]`: complete.
        if failure.is_none() && self.stop_reason.is_some() {
            self.end(out);
            return;
        }
        let reason = failure.unwrap_or("the upstream closed the stream early");
        out.event(
            "error",
            &json!({"type": "error", "error": {"type": "api_error",
                    "message": format!("upstream stream ended before the response was complete: {reason}")}}),
        );
        self.ended = true;
    }

    fn usage(&self) -> TokenUsage {
        self.usage.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[Value]) -> Vec<Value> {
        let mut t = StreamToAnthropic::new("m", 1);
        let mut out = SseOut::default();
        for c in chunks {
            t.on_event("", &c.to_string(), &mut out);
        }
        t.on_event("", "[DONE]", &mut out);
        let text = String::from_utf8(out.take().to_vec()).expect("utf8");
        text.split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect()
    }

    #[test]
    fn parallel_calls_that_all_say_index_0_become_separate_tool_uses() {
        let call = |id: &str, name: &str| {
            json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": "{}"}}]}}]})
        };
        let finish =
            json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        let events = run(&[call("call_a", "ls"), call("call_b", "pwd"), finish]);
        let starts: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[1]["content_block"]["id"], "call_b");
        assert_eq!(starts[1]["index"], 1);
        let delta = events
            .iter()
            .find(|e| e["type"] == "message_delta")
            .expect("delta");
        assert_eq!(
            delta["delta"]["stop_reason"], "tool_use",
            "an agent must see tool_use"
        );
    }

    #[test]
    fn an_error_chunk_reaches_the_caller_with_its_message() {
        let events =
            run(&[json!({"error": {"message": "model not loaded", "type": "server_error"}})]);
        let error = events
            .iter()
            .find(|e| e["type"] == "error")
            .expect("error event");
        assert_eq!(error["error"]["message"], "model not loaded");
    }
}
