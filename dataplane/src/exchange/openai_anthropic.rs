//! An OpenAI Chat Completions caller served by the Anthropic Messages API:
//! the request goes out as a Messages request, the answer (and its stream) comes back
//! as a chat completion.

use super::{Call, Target};
use crate::error::GatewayError;
use crate::translate::from_openai::{content_parts, push_turn, PartStyle};
use crate::translate::to_openai::{assistant_message, chat_completion, ChunkWriter};
use crate::translate::{finish_reasons, SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::UpstreamRequest;
use crate::wire::anthropic::{
    self, Block, Content, ImageSource, Message, MessagesRequest, Metadata, StreamEvent, Tool,
    ToolChoice,
};
use crate::wire::openai::{ChatRequest, ChunkDelta, Role};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::HashMap;

const STYLE: PartStyle<Block> = PartStyle {
    text: |t| Block::Text {
        text: t.to_string(),
    },
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
    let mut body = request(&req, target)?;
    if let (true, Value::Object(doc)) = (call.cache_breakpoints, &mut body) {
        crate::intelligence::prompt_cache::mark_messages_request(doc);
    }
    let Some(vertex) = target.vertex else {
        return Ok(UpstreamRequest::json("/v1/messages".into(), &body));
    };
    let Value::Object(doc) = body else {
        return Err(TranslateError::new("body", "is not a JSON object").into());
    };
    let method = super::vertex::method(req.stream);
    let path = vertex.model_path("anthropic", target.model, method);
    Ok(UpstreamRequest::json(
        path,
        &Value::Object(super::vertex::messages_body(doc)),
    ))
}

/// The usage a whole answer reports.
pub fn usage(answer: &anthropic::MessageResponse) -> Option<TokenUsage> {
    Some(TokenUsage::from_anthropic(&answer.usage))
}

/// Built typed, sent as a `Value`, as `openai_bedrock::request` is.
pub fn request(req: &ChatRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    let body = messages_request(req, target)?;
    serde_json::to_value(body).map_err(|e| TranslateError::new("body", e.to_string()))
}

fn messages_request(
    req: &ChatRequest,
    target: &Target<'_>,
) -> Result<MessagesRequest, TranslateError> {
    req.require_single_choice()?;
    let mut system: Vec<Block> = Vec::new();
    let mut turns: Vec<(anthropic::Role, Vec<Block>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let blocks = || content_parts(msg.content.as_ref(), &at, &STYLE);
        match msg.role {
            Role::System | Role::Developer => {
                let blocks = blocks()?;
                if !blocks.iter().all(|b| matches!(b, Block::Text { .. })) {
                    return Err(TranslateError::new(
                        &at,
                        "system messages may hold text only",
                    ));
                }
                system.extend(blocks);
            }
            Role::User => push_turn(&mut turns, anthropic::Role::User, blocks()?),
            Role::Assistant => {
                let mut blocks = blocks()?;
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
                    blocks.push(Block::ToolUse {
                        id: call.id.clone(),
                        name: call.function.name.clone(),
                        input,
                    });
                }
                push_turn(&mut turns, anthropic::Role::Assistant, blocks);
            }
            Role::Tool => {
                let id = msg.required_tool_call_id(&at)?;
                // Tool results go back as tool_result blocks: flattened into text, an
                // agent never sees its call answered and calls again.
                let result = Block::ToolResult {
                    tool_use_id: id.to_string(),
                    content: Some(Content::Blocks(blocks()?)),
                    is_error: false,
                };
                push_turn(&mut turns, anthropic::Role::User, vec![result]);
            }
        }
    }

    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(target.default_max_tokens);
    let tools = req.tools.as_ref().map(|tools| {
        tools
            .iter()
            .map(|t| Tool {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                input_schema: Some(
                    t.function
                        .parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                ),
            })
            .collect()
    });
    Ok(MessagesRequest {
        model: target.model.to_string(),
        messages: turns
            .into_iter()
            .map(|(role, blocks)| Message {
                role,
                content: Content::Blocks(blocks),
            })
            .collect(),
        system: (!system.is_empty()).then_some(Content::Blocks(system)),
        max_tokens: Some(target.output_tokens(max_tokens)),
        stop_sequences: req.stop.as_ref().map(|stop| stop.to_vec()),
        temperature: req.temperature.map(|t| t.min(ANTHROPIC_MAX_TEMPERATURE)),
        // Current Claude models refuse temperature and top_p together; temperature wins.
        top_p: req.top_p.filter(|_| req.temperature.is_none()),
        stream: req.stream,
        tools,
        tool_choice: tool_choice(req)?,
        metadata: req.user.as_ref().map(|user| Metadata {
            user_id: Some(user.clone()),
        }),
    })
}

fn tool_choice(req: &ChatRequest) -> Result<Option<ToolChoice>, TranslateError> {
    let choice = match &req.tool_choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto {
                disable_parallel_tool_use: false,
            }),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Any {
                disable_parallel_tool_use: false,
            }),
            other => {
                return Err(TranslateError::new(
                    "tool_choice",
                    format!("`{other}` is not one of auto, none, required"),
                ))
            }
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Some(ToolChoice::Tool {
                name: name.to_string(),
                disable_parallel_tool_use: false,
            }),
            None => {
                return Err(TranslateError::new(
                    "tool_choice",
                    "must be a string or {\"type\": \"function\", \"function\": {\"name\": …}}",
                ))
            }
        },
    };
    if req.parallel_tool_calls == Some(false) && req.tools.is_some() {
        let choice = choice.unwrap_or(ToolChoice::Auto {
            disable_parallel_tool_use: false,
        });
        return Ok(Some(choice.one_call_at_a_time()));
    }
    Ok(choice)
}

fn image_block(url: &str) -> Option<Block> {
    let source = if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,")?;
        ImageSource::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        }
    } else if url.starts_with("https://") || url.starts_with("http://") {
        ImageSource::Url {
            url: url.to_string(),
        }
    } else {
        return None;
    };
    Some(Block::Image { source })
}

pub fn response(
    resp: &anthropic::MessageResponse,
    client_model: &str,
) -> Result<Value, TranslateError> {
    chat_completion(
        Some(resp.id.clone()),
        client_model,
        assistant_message(&resp.content),
        finish_reasons::anthropic_to_openai(resp.stop_reason.as_deref()),
        TokenUsage::from_anthropic(&resp.usage),
    )
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

    fn chunk(&self, out: &mut SseOut, delta: ChunkDelta, finish_reason: Option<&str>) {
        self.writer.delta(out, delta, finish_reason);
    }

    fn block_delta(&self, index: u32, delta: anthropic::BlockDelta, out: &mut SseOut) {
        match delta {
            anthropic::BlockDelta::TextDelta { text } => {
                self.chunk(out, ChunkDelta::text(text), None)
            }
            anthropic::BlockDelta::InputJsonDelta { partial_json } => {
                if let Some(&call_index) = self.tool_calls.get(&index) {
                    let delta = ChunkDelta::call_arguments(call_index, partial_json);
                    self.chunk(out, delta, None);
                }
            }
            anthropic::BlockDelta::Other => {}
        }
    }
}

/// A `content_block_delta`, nearly every event of a stream, read straight into its
/// fields: parsing it as the tagged [`StreamEvent`] first buffers the whole event (and
/// then its delta) to find the tag, several times the work.
#[derive(serde::Deserialize)]
struct BlockDeltaEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    index: u32,
    #[serde(borrow)]
    delta: BlockDeltaFields<'a>,
}

#[derive(serde::Deserialize)]
struct BlockDeltaFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
}

/// The delta of an event named and typed `content_block_delta` with a text or JSON
/// delta; anything else is left to the full parse.
fn read_block_delta(event: &str, data: &str) -> Option<(u32, anthropic::BlockDelta)> {
    if event != "content_block_delta" {
        return None;
    }
    let read: BlockDeltaEvent = serde_json::from_str(data).ok()?;
    if read.kind != "content_block_delta" {
        return None;
    }
    let delta = match (
        read.delta.kind.as_ref(),
        read.delta.text,
        read.delta.partial_json,
    ) {
        ("text_delta", Some(text), _) => anthropic::BlockDelta::TextDelta {
            text: text.into_owned(),
        },
        ("input_json_delta", _, Some(json)) => anthropic::BlockDelta::InputJsonDelta {
            partial_json: json.into_owned(),
        },
        _ => return None,
    };
    Some((read.index, delta))
}

impl StreamTranslator for StreamToOpenAi {
    fn on_event(&mut self, event: &str, data: &str, out: &mut SseOut) {
        if let Some((index, delta)) = read_block_delta(event, data) {
            return self.block_delta(index, delta, out);
        }
        let Ok(event) = serde_json::from_str::<StreamEvent>(data) else {
            return;
        };
        match event {
            StreamEvent::MessageStart { message } => {
                self.writer.id = message.id;
                self.usage = TokenUsage::from_anthropic(&message.usage);
                self.chunk(out, ChunkDelta::opening(), None);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::ToolUse { id, name, .. } => {
                    let call_index = self.tool_calls.len() as u32;
                    self.tool_calls.insert(index, call_index);
                    self.chunk(out, ChunkDelta::call_start(call_index, id, name), None);
                }
                Block::Text { text } if !text.is_empty() => {
                    self.chunk(out, ChunkDelta::text(text), None)
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta, out),
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.merge_anthropic(&u);
                }
                let reason = finish_reasons::anthropic_to_openai(delta.stop_reason.as_deref());
                self.chunk(out, ChunkDelta::default(), Some(reason));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the translator writes for `events` (name, data), with the chunks' fixed
    /// fields blanked so two runs compare.
    fn translated(events: &[(&str, &str)]) -> String {
        let mut translator = StreamToOpenAi::new("gpt-4o", false);
        let mut out = SseOut::default();
        for (name, data) in events {
            translator.on_event(name, data, &mut out);
        }
        let text = String::from_utf8(out.take().to_vec()).expect("utf-8");
        let created = created_field(&text);
        text.replace(&created, "CREATED")
    }

    fn created_field(text: &str) -> String {
        text.split("\"created\":")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map(|n| format!("\"created\":{n}"))
            .unwrap_or_default()
    }

    #[test]
    fn a_delta_read_by_its_fields_translates_as_the_full_parse_does() {
        let start = r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":3,"output_tokens":1}}}"#;
        let tool = r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"look","input":{}}}"#;
        let deltas = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a \"quoted\" \u00e9 line\n"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\":"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            // Named as a delta, typed as the end of the message: the type decides.
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#,
        ];
        let by_name: Vec<(&str, &str)> = [("message_start", start), ("content_block_start", tool)]
            .into_iter()
            .chain(deltas.iter().map(|d| ("content_block_delta", *d)))
            .collect();
        // An event without its name always takes the full parse.
        let unnamed: Vec<(&str, &str)> = by_name.iter().map(|(_, d)| ("", *d)).collect();
        let fast = translated(&by_name);
        assert_eq!(fast, translated(&unnamed));
        assert!(
            fast.contains(r#""content":"a \"quoted\" é line\n""#),
            "{fast}"
        );
        assert!(fast.contains(r#""arguments":"{\"q\":""#), "{fast}");
        assert!(fast.contains(r#""finish_reason":"stop""#), "{fast}");
    }
}
