//! An OpenAI Chat Completions caller served by the Gemini API (`generateContent`,
//! `streamGenerateContent?alt=sse`).
//! <https://ai.google.dev/api/generate-content>

use super::{Call, Target, Translated};
use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::metered::UsageCell;
use crate::translate::from_openai::{content_parts, push_turn, PartStyle};
use crate::translate::to_openai::ChunkWriter;
use crate::translate::{unix_now, SseOut, StreamTranslator, TokenUsage, TranslateError};
use crate::upstream::{UpstreamRequest, UpstreamResponse};
use crate::wire::openai::{ChatRequest, Role};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

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
    let path = if req.stream {
        format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{model}:generateContent")
    };
    Ok(UpstreamRequest::json(path, &out))
}

/// Gemini SSE in, chat completion chunks out.
pub(super) fn stream(
    call: &Call<'_>,
    resp: UpstreamResponse,
    usage: Arc<UsageCell>,
) -> ResponseBody {
    let translator = StreamToOpenAi::new(call.model, call.wants_usage_chunk);
    crate::upstream::translated_body(resp, Box::new(translator), usage)
}

/// A generateContent answer as a chat completion.
pub(super) fn plain(call: &Call<'_>, answer: &[u8]) -> Translated {
    Translated::from_answer(
        answer,
        |a: &Value| a.get("usageMetadata").map(TokenUsage::from_gemini),
        |a| Ok(response(a, call.model)),
    )
}

pub fn request(req: &ChatRequest, target: &Target<'_>) -> Result<Value, TranslateError> {
    req.require_single_choice()?;
    // Gemini answers a function by name; OpenAI tool messages carry only the call id.
    let names: HashMap<&str, &str> = req
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| (c.id.as_str(), c.function.name.as_str()))
        .collect();
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let parts = content_parts(msg.content.as_ref(), &at, &STYLE)?;
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
                    let mut part =
                        json!({"functionCall": {"name": call.function.name, "args": args}});
                    // Gemini wants the signature of its own thinking back with each call.
                    if let Some((_, signature)) = call.id.split_once(SIGNATURE_MARK) {
                        part["thoughtSignature"] = json!(signature);
                    }
                    parts.push(part);
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
                let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v) if v.is_object() => v,
                    _ => json!({"result": text}),
                };
                push_turn(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    if let Some(max) = req.max_completion_tokens.or(req.max_tokens) {
        config.insert("maxOutputTokens".into(), json!(target.output_tokens(max)));
    }
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        config.insert("stopSequences".into(), json!(stop.to_vec()));
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = &req.tools {
        let declarations: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.function.name});
                if let Some(desc) = &t.function.description {
                    d["description"] = json!(desc);
                }
                // Full JSON Schema, as OpenAI tools declare it.
                if let Some(p) = &t.function.parameters {
                    d["parametersJsonSchema"] = p.clone();
                }
                d
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
        let mode = match &req.tool_choice {
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(v) => v
                .pointer("/function/name")
                .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            None => None,
        };
        if let Some(m) = mode {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": m}));
        }
    }
    Ok(Value::Object(body))
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

fn candidate_parts(v: &Value) -> (String, Vec<(Option<String>, String, Value)>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in v
        .pointer("/candidates/0/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            let signature = part.get("thoughtSignature").and_then(Value::as_str);
            let given = call.get("id").and_then(Value::as_str).map(str::to_string);
            calls.push((
                Some(call_id(given, calls.len(), signature)),
                call["name"].as_str().unwrap_or_default().to_string(),
                call.get("args").cloned().unwrap_or_else(|| json!({})),
            ));
        }
    }
    (text, calls)
}

pub fn response(resp: &Value, client_model: &str) -> Value {
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
    let reason = resp
        .pointer("/candidates/0/finishReason")
        .and_then(Value::as_str)
        .unwrap_or("STOP");
    let usage = resp
        .get("usageMetadata")
        .map(TokenUsage::from_gemini)
        .unwrap_or_default();
    json!({
        "id": resp.get("responseId").and_then(Value::as_str).map(|i| format!("chatcmpl-{i}")),
        "object": "chat.completion",
        "created": unix_now(),
        "model": client_model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(reason, !calls.is_empty())}],
        "usage": usage.to_openai(),
    })
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
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(error) = v.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            ChunkWriter::error(out, "server_error", message);
            self.finished = true;
            return;
        }
        if !self.started {
            self.started = true;
            if let Some(id) = v.get("responseId").and_then(Value::as_str) {
                self.writer.id = format!("chatcmpl-{id}");
            }
            self.writer
                .delta(out, json!({"role": "assistant", "content": ""}), None);
        }
        if let Some(u) = v.get("usageMetadata") {
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
        if let Some(reason) = v
            .pointer("/candidates/0/finishReason")
            .and_then(Value::as_str)
        {
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
        let out = response(&answer, "gemini-3-pro");
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
        };
        let body = request(&next, &target).expect("translates");
        let model_turn = &body["contents"][1]["parts"][0];
        assert_eq!(model_turn["thoughtSignature"], "c2lnbmF0dXJl");
        let tool_turn = &body["contents"][2]["parts"][0]["functionResponse"];
        assert_eq!(tool_turn["name"], "get_weather");
        assert_eq!(tool_turn["response"]["temp"], 11);
    }
}
