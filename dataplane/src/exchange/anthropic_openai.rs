//! An Anthropic Messages caller (Claude Code on `/v1/claude`) served by an
//! OpenAI-compatible model (OpenAI, Ollama, vLLM …): the request goes out as a chat
//! completion, the answer and its stream come back as Messages API events.

use super::{Call, Target};
use crate::error::GatewayError;
use crate::translate::to_openai::assistant_message;
use crate::translate::{finish_reasons, SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::Upstream;
use crate::upstream::UpstreamRequest;
use crate::wire::anthropic::{
    self, AnswerEvent, AssistantMessage, Block, BlockDelta, Content, ErrorDetail, ImageSource,
    MessageDeltaBody, MessagesRequest, Role, ToolChoice,
};
use crate::wire::openai::{
    self, ChatChunk, ChatCompletion, ChatContent, ChatMessage, ChatRequest, ChatTool, ContentPart,
    FunctionDefinition, ImageUrl, OneOrMany, StreamOptions,
};
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

/// Built typed, sent as a `Value`, as `openai_bedrock::request` is.
pub fn request(req: &MessagesRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    let body = chat_request(req, target)?;
    serde_json::to_value(body).map_err(|e| TranslateError::new("body", e.to_string()))
}

fn chat_request(req: &MessagesRequest, target: &Target<'_>) -> Result<ChatRequest, TranslateError> {
    let mut messages: Vec<ChatMessage> = Vec::new();
    if let Some(system) = &req.system {
        let text = system.joined_text();
        if !text.is_empty() {
            messages.push(ChatMessage::text(openai::Role::System, text));
        }
    }
    for (i, msg) in req.messages.iter().enumerate() {
        match (&msg.content, msg.role) {
            (Content::Text(text), Role::User) => {
                messages.push(ChatMessage::text(openai::Role::User, text))
            }
            (Content::Text(text), Role::Assistant) => {
                messages.push(ChatMessage::text(openai::Role::Assistant, text))
            }
            (Content::Blocks(blocks), Role::User) => user_turn(blocks, i, &mut messages)?,
            (Content::Blocks(blocks), Role::Assistant) => messages.push(assistant_message(blocks)),
            (content, Role::System) => messages.push(ChatMessage::text(
                openai::Role::System,
                content.joined_text(),
            )),
        }
    }

    let max_tokens = req.max_tokens.map(|max| target.output_tokens(max));
    let field = MaxTokensField::of(target.kind);
    // Server tools (web search …) have no schema: only Anthropic can run them.
    let tools: Vec<ChatTool> = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| {
            Some(ChatTool {
                function: FunctionDefinition {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: Some(t.input_schema.clone()?),
                },
            })
        })
        .collect();
    let (tool_choice, no_parallel) = match (&req.tool_choice, tools.is_empty()) {
        (Some(choice), false) => tool_choice(choice),
        _ => (None, false),
    };
    Ok(ChatRequest {
        model: target.model.to_string(),
        messages,
        stream: req.stream,
        // The gateway meters every stream, so it always asks for the usage chunk.
        stream_options: req.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: max_tokens.filter(|_| field == MaxTokensField::MaxTokens),
        max_completion_tokens: max_tokens.filter(|_| field == MaxTokensField::MaxCompletionTokens),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req
            .stop_sequences
            .clone()
            .filter(|stop| !stop.is_empty())
            .map(OneOrMany::Many),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        parallel_tool_calls: no_parallel.then_some(false),
        user: req.metadata.as_ref().and_then(|m| m.user_id.clone()),
        n: None,
    })
}

/// The chat `tool_choice` for a Messages one, and whether it asked for one call at a time.
fn tool_choice(choice: &ToolChoice) -> (Option<Value>, bool) {
    let (choice, no_parallel) = match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use,
        } => (Value::from("auto"), *disable_parallel_tool_use),
        ToolChoice::Any {
            disable_parallel_tool_use,
        } => (Value::from("required"), *disable_parallel_tool_use),
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } => (
            json!({"type": "function", "function": {"name": name}}),
            *disable_parallel_tool_use,
        ),
        ToolChoice::None => (Value::from("none"), false),
    };
    (Some(choice), no_parallel)
}

/// One Anthropic user turn becomes the `tool` messages answering the previous
/// assistant turn (first, as OpenAI requires), then a user message with the rest.
fn user_turn(
    blocks: &[Block],
    turn: usize,
    messages: &mut Vec<ChatMessage>,
) -> Result<(), TranslateError> {
    let mut parts: Vec<ContentPart> = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block {
            Block::Text { text } => parts.push(ContentPart::Text { text: text.clone() }),
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
                messages.push(ChatMessage::tool_result(tool_use_id, text));
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
    let texts: Option<Vec<&str>> = parts
        .iter()
        .map(|p| match p {
            ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let content = match texts {
        Some(texts) => ChatContent::Text(texts.join("\n\n")),
        None => ChatContent::Parts(parts),
    };
    messages.push(ChatMessage::new(openai::Role::User, content));
    Ok(())
}

fn image_part(source: &ImageSource) -> Option<ContentPart> {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url.clone(),
        ImageSource::Other => return None,
    };
    Some(ContentPart::ImageUrl {
        image_url: ImageUrl { url },
    })
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
    let mut content: Vec<Block> = Vec::new();
    let text = choice
        .message
        .content
        .as_deref()
        .or(choice.message.refusal.as_deref())
        .unwrap_or("");
    if !text.is_empty() {
        content.push(Block::Text {
            text: text.to_string(),
        });
    }
    for call in choice.message.tool_calls.iter().flatten() {
        content.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input: tool_input(&call.function.arguments),
        });
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
    let stop_reason = match finish_reasons::openai_to_anthropic(choice.finish_reason.as_deref()) {
        "end_turn" if has_tool_calls => "tool_use",
        reason => reason,
    };
    let answer = assistant_answer(
        &resp.id,
        client_model,
        content,
        Some(stop_reason),
        TokenUsage::to_anthropic(usage),
    );
    serde_json::to_value(answer).map_err(|e| TranslateError::new("body", e.to_string()))
}

/// The assistant message of an answer, or (empty, without a stop reason) of a stream's
/// `message_start`.
fn assistant_answer(
    upstream_id: &str,
    client_model: &str,
    content: Vec<Block>,
    stop_reason: Option<&'static str>,
    usage: anthropic::Usage,
) -> AssistantMessage {
    AssistantMessage {
        id: anthropic_message_id(upstream_id),
        role: Role::Assistant,
        model: client_model.to_string(),
        content,
        stop_reason,
        stop_sequence: None,
        usage,
    }
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
        let usage = anthropic::Usage {
            input_tokens: Some(self.estimated_input),
            output_tokens: Some(0),
            ..anthropic::Usage::default()
        };
        let message = assistant_answer(id, &self.client_model, Vec::new(), None, usage);
        emit(out, AnswerEvent::MessageStart { message });
    }

    fn close_open(&mut self, out: &mut SseOut) {
        if let Some(open) = self.open.take() {
            let index = match open {
                OpenBlock::Text(i) | OpenBlock::Tool { block: i, .. } => i,
            };
            emit(out, AnswerEvent::ContentBlockStop { index });
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
                let content_block = Block::Text {
                    text: String::new(),
                };
                emit(
                    out,
                    AnswerEvent::ContentBlockStart {
                        index: i,
                        content_block,
                    },
                );
                i
            }
        };
        let delta = BlockDelta::TextDelta {
            text: text.to_string(),
        };
        emit(out, AnswerEvent::ContentBlockDelta { index, delta });
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
                let content_block = Block::ToolUse {
                    id,
                    name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                    input: Value::Object(Map::new()),
                };
                emit(
                    out,
                    AnswerEvent::ContentBlockStart {
                        index: b,
                        content_block,
                    },
                );
                b
            }
        };
        if let Some(args) = function.and_then(|f| f.arguments.as_deref()) {
            if !args.is_empty() {
                let delta = BlockDelta::InputJsonDelta {
                    partial_json: args.to_string(),
                };
                emit(
                    out,
                    AnswerEvent::ContentBlockDelta {
                        index: block,
                        delta,
                    },
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
        let delta = MessageDeltaBody {
            stop_reason: Some(self.stop_reason.unwrap_or("end_turn").to_string()),
            stop_sequence: None,
        };
        emit(
            out,
            AnswerEvent::MessageDelta {
                delta,
                usage: Some(TokenUsage::to_anthropic(usage)),
            },
        );
        emit(out, AnswerEvent::MessageStop);
        self.ended = true;
    }

    /// Ends the stream with an `error` event; nothing follows it.
    fn fail(&mut self, message: String, out: &mut SseOut) {
        let error = ErrorDetail {
            kind: "api_error".to_string(),
            message,
        };
        emit(out, AnswerEvent::Error { error });
        self.ended = true;
    }
}

/// One event, named by its type as Anthropic names them.
fn emit(out: &mut SseOut, event: AnswerEvent) {
    out.event(event.name(), &event);
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
            self.fail(e.error.message().to_string(), out);
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
        self.fail(
            format!("upstream stream ended before the response was complete: {reason}"),
            out,
        );
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
