//! The cascade stage (FrugalGPT style): an `auto` call is answered by the cheaper tier
//! first; the answer is read whole and judged (`intelligence::judge`), and one that
//! fails, or an attempt that errs, is replaced by the next tier's answer.
//!
//! The caller sees one answer. A streamed call's cheaper answer is buffered while it is
//! judged, then sent at once if it passes; the escalated answer streams as usual. Both
//! attempts are metered and charged to the caller; the reservation admission made for
//! the first covers the call, and settlement charges what both really used.

use crate::body::ResponseBody;
use crate::context::{CascadeAttempt, CascadeOutcome, RequestContext};
use crate::error::GatewayError;
use crate::exchange::{fallback, Call, Door};
use crate::intelligence::auto::AutoTier;
use crate::intelligence::judge::{judge, AnswerSeen, Judgement, Question};
use crate::pricing::cost_micros;
use crate::resolve::Routed;
use crate::state::Serving;
use ai_gateway_snapshot::CascadeMode;
use bytes::{Bytes, BytesMut};
use http::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use std::time::Instant;

/// The most of a cheaper answer held for judging; a longer one is passed on unjudged.
const MAX_JUDGED_BYTES: usize = 4 << 20;

/// A cascade the call will go through: from the tier `auto` chose to the next.
pub struct Plan {
    from: AutoTier,
    to: AutoTier,
    model: String,
    min_response_chars: u32,
    outcomes_file: Option<String>,
}

/// The cascade for a routed call, when one applies: an `auto` call on a tier with one
/// above it, with the route's (or else the gateway's) cascade mode on.
pub fn plan(serving: Serving<'_>, routed: &Routed) -> Option<Plan> {
    let from = routed.cascade_from?;
    let settings = &serving.compiled.snapshot.auto_routing;
    let mode = routed.resolved.cascade.unwrap_or(settings.cascade.mode);
    if mode == CascadeMode::None {
        return None;
    }
    let to = from.next()?;
    let model = to.model(settings);
    (model != routed.model).then(|| Plan {
        from,
        to,
        model: model.to_string(),
        min_response_chars: settings.cascade.min_response_chars,
        outcomes_file: settings.cascade.outcomes_file.clone(),
    })
}

/// What became of the cheaper attempt.
enum First {
    /// It passed (or was too long to judge): this is the caller's answer.
    Kept(Response<ResponseBody>, Judgement),
    Failed(Judgement, u16),
}

pub async fn serve(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    call: &Call<'_>,
    routed: &Routed,
    plan: Plan,
) -> Result<Response<ResponseBody>, GatewayError> {
    let started = Instant::now();
    let first = match fallback::serve(serving, ctx, call, routed).await {
        Err(e) if !e.allows_fallback() => return Err(e),
        Err(e) => First::Failed(failing("error"), e.status().as_u16()),
        Ok(answer) if !answer.status().is_success() => {
            First::Failed(failing("status"), answer.status().as_u16())
        }
        Ok(answer) => judged(call, answer, plan.min_response_chars).await,
    };
    let judged_attempt = |ctx: &RequestContext, status: u16| {
        let usage = ctx.usage().get().usage;
        CascadeAttempt {
            tier: plan.from.as_str(),
            model: routed.model.clone(),
            provider: ctx.provider().unwrap_or_default().to_string(),
            status,
            latency_ms: started.elapsed().as_millis() as u64,
            cost_micros: ctx.price().map_or(0, |p| cost_micros(&usage, &p)),
            usage,
        }
    };
    let outcome = |judgement: Judgement, attempt: CascadeAttempt, escalated: bool| CascadeOutcome {
        initial_tier: plan.from.as_str(),
        final_tier: if escalated {
            plan.to.as_str()
        } else {
            plan.from.as_str()
        },
        escalated,
        reasons: judgement.reasons,
        quality_score: judgement.score,
        judged: attempt,
        outcomes_file: plan.outcomes_file.clone(),
    };
    let (judgement, status) = match first {
        First::Kept(answer, judgement) => {
            let attempt = judged_attempt(ctx, answer.status().as_u16());
            ctx.cascade_kept(outcome(judgement, attempt, false));
            return Ok(answer);
        }
        First::Failed(judgement, status) => (judgement, status),
    };
    let attempt = judged_attempt(ctx, status);
    let reason = format!(
        "{}: escalated from {} ({})",
        plan.to.as_str(),
        plan.from.as_str(),
        judgement.reasons.join(", ")
    );
    tracing::info!(request_id = %ctx.request_id(), %reason, "cascade escalated");
    ctx.cascade_escalated(outcome(judgement, attempt, true), plan.to.as_str(), reason);
    escalate(serving, ctx, call, &plan).await
}

fn failing(reason: &'static str) -> Judgement {
    Judgement {
        passed: false,
        score: 0.0,
        reasons: vec![reason],
    }
}

/// The next tier's call: the same request, naming the next tier's model, routed and
/// served like any other.
async fn escalate(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    call: &Call<'_>,
    plan: &Plan,
) -> Result<Response<ResponseBody>, GatewayError> {
    let resolved = serving.compiled.routes.resolve(&plan.model, None)?;
    let price = serving
        .services
        .prices
        .price(&resolved.provider, &resolved.upstream_model);
    ctx.routed(&resolved.provider.name, &resolved.upstream_model);
    ctx.priced(price);
    ctx.asks_for(plan.model.clone(), call.stream);
    let body = crate::intelligence::provider_body(call.body, Some(&plan.model), None, false)?;
    let next = Call {
        door: call.door,
        method: call.method.clone(),
        model: &plan.model,
        stream: call.stream,
        wants_usage_chunk: call.wants_usage_chunk,
        headers: call.headers,
        query: call.query,
        body: &body,
        default_max_tokens: call.default_max_tokens,
        anthropic_version: call.anthropic_version,
        cache_breakpoints: call.cache_breakpoints,
    };
    let routed = Routed::to(plan.model.clone(), resolved);
    fallback::serve(serving, ctx, &next, &routed).await
}

/// Reads the cheaper answer whole and judges it.
async fn judged(call: &Call<'_>, answer: Response<ResponseBody>, min_chars: u32) -> First {
    let (parts, mut body) = answer.into_parts();
    let mut whole = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return First::Failed(failing("broken"), parts.status.as_u16());
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        whole.extend_from_slice(&data);
        if whole.len() > MAX_JUDGED_BYTES {
            // Too long to hold: a model that wrote this much did not fail by brevity.
            let held = futures_util::stream::once(async move { Ok(whole.freeze()) });
            let rest = body.into_data_stream();
            let answer = crate::body::streaming(futures_util::StreamExt::chain(held, rest));
            let unjudged = Judgement {
                passed: true,
                score: 1.0,
                reasons: vec!["unjudged_long"],
            };
            return First::Kept(Response::from_parts(parts, answer), unjudged);
        }
    }
    let whole = whole.freeze();
    let streamed = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let seen = answer_text(call.door, &whole, streamed);
    let judgement = judge(
        question_of(call.body),
        AnswerSeen {
            text: &seen.text,
            truncated: seen.truncated,
            tool_call: seen.tool_call,
        },
        min_chars,
    );
    if !judgement.passed {
        return First::Failed(judgement, parts.status.as_u16());
    }
    First::Kept(
        Response::from_parts(parts, crate::body::full(whole)),
        judgement,
    )
}

/// The answer's text as the caller would read it, and how it ended.
#[derive(Default)]
struct Seen {
    text: String,
    truncated: bool,
    tool_call: bool,
}

impl Seen {
    fn stop(&mut self, reason: Option<&str>) {
        match reason {
            Some("length" | "max_tokens") => self.truncated = true,
            Some("tool_calls" | "tool_use" | "function_call") => self.tool_call = true,
            _ => {}
        }
    }
}

/// Reads an OpenAI chat or Anthropic Messages answer, whole or as its event stream.
fn answer_text(door: Door<'_>, whole: &Bytes, streamed: bool) -> Seen {
    let mut seen = Seen::default();
    let documents: Vec<Value> = match streamed {
        true => whole
            .split(|&b| b == b'\n')
            .filter_map(|line| line.strip_prefix(b"data:"))
            .filter_map(|data| serde_json::from_slice(data.trim_ascii()).ok())
            .collect(),
        false => serde_json::from_slice(whole).into_iter().collect(),
    };
    for doc in &documents {
        match door {
            Door::OpenAiChat => {
                let choice = &doc["choices"][0];
                let message = match streamed {
                    true => &choice["delta"],
                    false => &choice["message"],
                };
                if let Some(text) = message["content"].as_str() {
                    seen.text.push_str(text);
                }
                if message["tool_calls"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
                {
                    seen.tool_call = true;
                }
                seen.stop(choice["finish_reason"].as_str());
            }
            _ => {
                let blocks = doc["content"].as_array().into_iter().flatten();
                let started = doc["content_block"].as_object().into_iter();
                for block in blocks.chain(started.map(|_| &doc["content_block"])) {
                    match block["type"].as_str() {
                        Some("text") => seen.text.push_str(block["text"].as_str().unwrap_or("")),
                        Some("tool_use") => seen.tool_call = true,
                        _ => {}
                    }
                }
                if let Some(text) = doc["delta"]["text"].as_str() {
                    seen.text.push_str(text);
                }
                seen.stop(doc["stop_reason"].as_str());
                seen.stop(doc["delta"]["stop_reason"].as_str());
            }
        }
    }
    seen
}

/// The question as the last user turn asks it.
fn question_of(body: &[u8]) -> Question {
    let doc: Value = serde_json::from_slice(body).unwrap_or_default();
    let last_user = doc["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| m["role"] == "user");
    let text = match last_user.map(|m| &m["content"]) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    Question::of(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_both_apis_whole_and_streamed() {
        let chat = Bytes::from(
            r#"{"choices":[{"message":{"role":"assistant","content":"Bonjour"},"finish_reason":"length"}]}"#,
        );
        let seen = answer_text(Door::OpenAiChat, &chat, false);
        assert_eq!((seen.text.as_str(), seen.truncated), ("Bonjour", true));
        let chat_stream = Bytes::from(concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Bon\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"jour\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        ));
        let seen = answer_text(Door::OpenAiChat, &chat_stream, true);
        assert_eq!((seen.text.as_str(), seen.truncated), ("Bonjour", false));
        let messages = Door::AnthropicMessages {
            path: "/v1/messages",
        };
        let whole = Bytes::from(
            r#"{"content":[{"type":"text","text":"Hi"},{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use"}"#,
        );
        let seen = answer_text(messages, &whole, false);
        assert_eq!((seen.text.as_str(), seen.tool_call), ("Hi", true));
        let stream = Bytes::from(concat!(
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"}}\n\n"
        ));
        let seen = answer_text(messages, &stream, true);
        assert_eq!((seen.text.as_str(), seen.truncated), ("Hello", true));
    }

    #[test]
    fn the_question_is_the_last_user_turn() {
        let body = br#"{"messages":[{"role":"user","content":"write a function"},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":"now in Rust, please"}]}]}"#;
        let q = question_of(body);
        assert_eq!(q.chars, "now in Rust, please".len());
        assert!(!q.wants_code);
    }
}
