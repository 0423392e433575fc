//! An OpenAI Chat Completions caller served by the Gemini API (`generateContent`,
//! `streamGenerateContent?alt=sse`).
//! <https://ai.google.dev/api/generate-content>

use super::{Call, Target};
use crate::error::GatewayError;
use crate::translate::from_openai::{content_parts, PartStyle};
use crate::translate::to_openai::{chat_completion, ChunkWriter};
use crate::translate::{SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::UpstreamRequest;
use crate::wire::gemini::{self, Content, FunctionCallingMode, GenerateContentResponse, Part};
use crate::wire::openai::{ChatRequest, Role};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const STYLE: PartStyle = PartStyle {
    text: |t| json!({"text": t}),
    image: |url| {
        let (mime, data) = url.strip_prefix("data:")?.split_once(";base64,")?;
        Some(json!({"inlineData": {"mimeType": mime, "data": data}}))
    },
    image_rule: "Gemini takes images as base64 data URLs",
};

/// The generateContent call (or its SSE stream) for a chat completion.
pub(super) fn upstream_request(
    call: &Call<'_>,
    target: &Target<'_>,
) -> Result<UpstreamRequest, GatewayError> {
    let req: ChatRequest = super::parse(call)?;
    let model = target.model;
    if !crate::upstream::paths::is_plain_segment(model) {
        return Err(GatewayError::InvalidRequest(format!(
            "`{model}` is not a Gemini model id"
        )));
    }
    let out = request(&req, target)?;
    let method = if req.stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    let mut path = match target.vertex {
        Some(vertex) => vertex.model_path("google", model, method),
        None => format!("/v1beta/models/{model}:{method}"),
    };
    if req.stream {
        path.push_str("?alt=sse");
    }
    Ok(UpstreamRequest::json(path, &out))
}

/// The usage a whole answer reports.
pub fn usage(answer: &GenerateContentResponse) -> Option<TokenUsage> {
    answer.usage_metadata.as_ref().map(TokenUsage::from_gemini)
}

/// Built typed, sent as a `Value`: `UpstreamRequest::json` takes one, and its sorted keys
/// keep the bytes on the wire what they were.
pub fn request(req: &ChatRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    let body = generate_content_request(req, target)?;
    serde_json::to_value(body).map_err(|e| TranslateError::new("body", e.to_string()))
}

fn generate_content_request(
    req: &ChatRequest,
    target: &Target<'_>,
) -> Result<gemini::GenerateContentRequest, TranslateError> {
    req.require_single_choice()?;
    // Gemini answers a function by name; OpenAI tool messages carry only the call id.
    let names: HashMap<&str, &str> = req
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| (c.id.as_str(), c.function.name.as_str()))
        .collect();
    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let parts = typed_parts(content_parts(msg.content.as_ref(), &at, &STYLE)?, &at)?;
        match msg.role {
            Role::System | Role::Developer => system.extend(parts),
            Role::User => push_turn(&mut contents, "user", parts),
            Role::Assistant => {
                let mut parts = parts;
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    let args = call.function.arguments_json().ok_or_else(|| {
                        TranslateError::new(
                            format!("{at}.tool_calls[{j}].function.arguments"),
                            "is not JSON",
                        )
                    })?;
                    parts.push(Part {
                        function_call: Some(gemini::FunctionCall {
                            id: None,
                            name: call.function.name.clone(),
                            args: Some(args),
                            rest: Map::new(),
                        }),
                        // Gemini wants the signature of its own thinking back with each call.
                        thought_signature: call
                            .id
                            .split_once(SIGNATURE_MARK)
                            .map(|(_, signature)| signature.to_string()),
                        ..Part::default()
                    });
                }
                push_turn(&mut contents, "model", parts);
            }
            Role::Tool => {
                let id = msg.tool_call_id.as_deref().unwrap_or_default();
                let name = names.get(id).copied().ok_or_else(|| {
                    TranslateError::new(
                        format!("{at}.tool_call_id"),
                        format!("`{id}` answers no tool call in this conversation"),
                    )
                })?;
                let text: String = parts.iter().filter_map(|p| p.text.as_deref()).collect();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v) if v.is_object() => v,
                    _ => json!({"result": text}),
                };
                let part = Part {
                    function_response: Some(gemini::FunctionResponse {
                        name: name.to_string(),
                        response,
                        rest: Map::new(),
                    }),
                    ..Part::default()
                };
                push_turn(&mut contents, "user", vec![part]);
            }
        }
    }
    let system_instruction = (!system.is_empty()).then(|| Content {
        role: None,
        parts: system,
        rest: Map::new(),
    });
    let config = gemini::GenerationConfig {
        max_output_tokens: req
            .max_completion_tokens
            .or(req.max_tokens)
            .map(|max| target.output_tokens(max)),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop.as_ref().map(|stop| stop.to_vec()),
    };
    let mut tools = None;
    let mut tool_config = None;
    if let Some(declared) = &req.tools {
        let declarations = declared
            .iter()
            .map(|t| gemini::FunctionDeclaration {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                parameters_json_schema: t.function.parameters.clone(),
            })
            .collect();
        tools = Some(vec![gemini::Tool {
            function_declarations: declarations,
        }]);
        let config = |mode, allowed_function_names| gemini::FunctionCallingConfig {
            mode,
            allowed_function_names,
        };
        let calling = match &req.tool_choice {
            Some(Value::String(s)) if s == "none" => Some(config(FunctionCallingMode::None, None)),
            Some(Value::String(s)) if s == "required" => {
                Some(config(FunctionCallingMode::Any, None))
            }
            Some(v) => v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .map(|n| config(FunctionCallingMode::Any, Some(vec![n.to_string()]))),
            None => None,
        };
        tool_config = calling.map(|function_calling_config| gemini::ToolConfig {
            function_calling_config,
        });
    }
    Ok(gemini::GenerateContentRequest {
        contents,
        system_instruction,
        generation_config: (!config.is_empty()).then_some(config),
        tools,
        tool_config,
    })
}

/// The shared content reader speaks `Value`; its parts are this file's STYLE, so they
/// read back as parts unless the style and the part type disagree.
fn typed_parts(parts: Vec<Value>, at: &str) -> Result<Vec<Part>, TranslateError> {
    parts
        .into_iter()
        .map(|p| serde_json::from_value(p).map_err(|e| TranslateError::new(at, e.to_string())))
        .collect()
}

/// Appends a turn, merging it into the previous one of the same role, as the shared
/// `push_turn` does for untyped parts: Gemini wants alternating turns.
fn push_turn(contents: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => contents.push(Content {
            role: Some(role.to_string()),
            parts,
            rest: Map::new(),
        }),
    }
}

/// Gemini names no call ids; ours must stay unique across the turns of a conversation,
/// or a later tool result would be matched to an earlier call.
fn new_call_id(index: usize) -> String {
    format!(
        "call_{}_{index}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        // Gemini finishes a function call with STOP.
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// Text and function calls of the first candidate; thought parts are the model's own.
/// Joins a Gemini thought signature to the OpenAI call id, the one field an OpenAI
/// client sends back unchanged with the call; the next turn returns it to Gemini.
const SIGNATURE_MARK: &str = ".sig.";

fn call_id(given: Option<String>, index: usize, signature: Option<&str>) -> String {
    let id = given.unwrap_or_else(|| new_call_id(index));
    match signature {
        Some(sig) => format!("{id}{SIGNATURE_MARK}{sig}"),
        None => id,
    }
}

fn candidate_parts(v: &GenerateContentResponse) -> (String, Vec<(Option<String>, String, Value)>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let parts = v
        .candidates
        .first()
        .and_then(|c| c.content.as_ref())
        .map_or(&[][..], |c| &c.parts[..]);
    for part in parts {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(t) = &part.text {
            text.push_str(t);
        }
        if let Some(call) = &part.function_call {
            calls.push((
                Some(call_id(
                    call.id.clone(),
                    calls.len(),
                    part.thought_signature.as_deref(),
                )),
                call.name.clone(),
                call.args.clone().unwrap_or_else(|| json!({})),
            ));
        }
    }
    (text, calls)
}

/// The first candidate's finish reason, once Gemini has given one.
fn finish_reason_of(v: &GenerateContentResponse) -> Option<&str> {
    v.candidates.first()?.finish_reason.as_deref()
}

pub fn response(
    resp: &GenerateContentResponse,
    client_model: &str,
) -> Result<Value, TranslateError> {
    let (text, calls) = candidate_parts(resp);
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(
            calls
                .iter()
                .enumerate()
                .map(|(i, (id, name, args))| {
                    json!({"id": id.clone().unwrap_or_else(|| new_call_id(i)), "type": "function",
                           "function": {"name": name, "arguments": args.to_string()}})
                })
                .collect(),
        );
    }
    let reason = finish_reason_of(resp).unwrap_or("STOP");
    let usage = resp
        .usage_metadata
        .as_ref()
        .map(TokenUsage::from_gemini)
        .unwrap_or_default();
    let id = resp.response_id.as_ref().map(|i| format!("chatcmpl-{i}"));
    chat_completion(
        id,
        client_model,
        message,
        finish_reason(reason, !calls.is_empty()),
        usage,
    )
}

/// Gemini `alt=sse` chunks in, OpenAI chunks out.
pub struct StreamToOpenAi {
    writer: ChunkWriter,
    include_usage: bool,
    started: bool,
    tool_calls: u32,
    finished: bool,
    usage: TokenUsage,
}

impl StreamToOpenAi {
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(client_model),
            include_usage,
            started: false,
            tool_calls: 0,
            finished: false,
            usage: TokenUsage::default(),
        }
    }
}

impl StreamTranslator for StreamToOpenAi {
    fn on_event(&mut self, _event: &str, data: &str, out: &mut SseOut) {
        // A chunk that does not parse is skipped, as a stream cannot refuse it.
        let Ok(v) = serde_json::from_str::<GenerateContentResponse>(data) else {
            return;
        };
        if let Some(error) = &v.error {
            let message = error.message.as_deref().unwrap_or("upstream error");
            ChunkWriter::error(out, "server_error", message);
            self.finished = true;
            return;
        }
        if !self.started {
            self.started = true;
            if let Some(id) = &v.response_id {
                self.writer.id = format!("chatcmpl-{id}");
            }
            self.writer
                .delta(out, json!({"role": "assistant", "content": ""}), None);
        }
        if let Some(u) = &v.usage_metadata {
            self.usage = TokenUsage::from_gemini(u);
        }
        let (text, calls) = candidate_parts(&v);
        if !text.is_empty() {
            self.writer.delta(out, json!({"content": text}), None);
        }
        for (id, name, args) in calls {
            let index = self.tool_calls;
            self.tool_calls += 1;
            // Gemini sends each call whole: one delta carries it all.
            self.writer.delta(
                out,
                json!({"tool_calls": [{"index": index, "id": id.unwrap_or_else(|| new_call_id(index as usize)),
                        "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}),
                None,
            );
        }
        if let Some(reason) = finish_reason_of(&v) {
            self.writer.delta(
                out,
                json!({}),
                Some(finish_reason(reason, self.tool_calls > 0)),
            );
            self.finished = true;
        }
    }

    fn finish(&mut self, failure: Option<&str>, out: &mut SseOut) {
        if !self.finished || failure.is_some() {
            ChunkWriter::cut_short(out, failure);
            return;
        }
        if self.include_usage {
            self.writer.usage(out, self.usage);
        }
        out.done_marker();
    }

    fn usage(&self) -> TokenUsage {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gemini 3 refuses a function-calling turn whose calls lack their thought
    /// signatures; an OpenAI client only sends back the call id, which carries it.
    #[test]
    fn thought_signatures_travel_through_the_call_id() {
        let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"}
        ]}, "finishReason": "STOP"}]});
        let answer: GenerateContentResponse = serde_json::from_value(answer).expect("answer");
        let out = response(&answer, "gemini-3-pro").expect("translates");
        let call = &out["choices"][0]["message"]["tool_calls"][0];
        let id = call["id"].as_str().expect("id");
        assert!(id.ends_with(".sig.c2lnbmF0dXJl"), "{id}");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");

        let next: ChatRequest =
            serde_json::from_value(json!({"model": "gemini-3-pro", "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": id, "content": "{\"temp\": 11}"}
            ]}))
            .expect("request");
        let target = Target {
            model: "gemini-3-pro",
            kind: ai_gateway_snapshot::ProviderKind::Gemini,
            default_max_tokens: 4096,
            max_output_tokens: None,
            vertex: None,
        };
        let body = request(&next, &target).expect("translates");
        let model_turn = &body["contents"][1]["parts"][0];
        assert_eq!(model_turn["thoughtSignature"], "c2lnbmF0dXJl");
        let tool_turn = &body["contents"][2]["parts"][0]["functionResponse"];
        assert_eq!(tool_turn["name"], "get_weather");
        assert_eq!(tool_turn["response"]["temp"], 11);
    }
}
