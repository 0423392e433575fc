//! `/v1/claude/*`: the Anthropic Messages API (`ANTHROPIC_BASE_URL=…/v1/claude`).
//! Claude models pass through byte for byte; other models are translated.

use super::{route_by_body, serve_routed, Answer, Inbound};
use crate::body::json_response;
use crate::context::{Endpoint, RequestContext};
use crate::error::GatewayError;
use crate::exchange::{attempt, Call, Door, Exchange};
use crate::intelligence::system_prompt::SystemPrompt;
use crate::state::Serving;
use crate::translate::tokens;
use crate::wire::anthropic;
use ai_gateway_snapshot::ProviderKind;
use http::{Method, StatusCode};
use serde_json::json;

/// The Messages API path for what follows `/v1/claude`: the SDKs append `/v1/messages`,
/// the users' own scripts call `/v1/claude/messages`.
pub fn upstream_path(rest: &str) -> String {
    if rest.starts_with("/v1/") {
        rest.to_string()
    } else {
        format!("/v1{rest}")
    }
}

pub async fn handle(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    mut inbound: Inbound<'_>,
) -> Answer {
    let path = upstream_path(inbound.rest);
    match (inbound.method.clone(), path.as_str()) {
        (Method::POST, "/v1/messages") => messages(serving, ctx, &mut inbound).await,
        (Method::POST, "/v1/messages/count_tokens") => {
            count_tokens(serving, ctx, &mut inbound).await
        }
        // The gateway's own catalogue, so Claude Code's model picker shows what the
        // platform team routed; batches, files and the admin API would spend the
        // gateway's key outside routing and limits, so they stay closed.
        (Method::GET, "/v1/models") => Ok(json_response(StatusCode::OK, &model_list(serving))),
        (Method::GET, p) if p.starts_with("/v1/models/") => {
            let id = &p["/v1/models/".len()..];
            model_list(serving)
                .data
                .into_iter()
                .find(|m| m.id == id)
                .map(|m| json_response(StatusCode::OK, &m))
                .ok_or_else(|| inbound.not_found("/v1/claude"))
        }
        _ => Err(inbound.not_found("/v1/claude")),
    }
}

/// A Messages call, whichever door it came by (`/v1/claude`, or Vertex AI's path for
/// Anthropic's models).
pub(super) async fn messages(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    inbound: &mut Inbound<'_>,
) -> Answer {
    ctx.calls(Endpoint::ClaudeMessages);
    let routed = route_by_body(serving, ctx, inbound, SystemPrompt::AnthropicSystem).await?;
    let door = Door::AnthropicMessages {
        path: "/v1/messages",
    };
    let call = Call {
        anthropic_version: routed.anthropic_version,
        ..inbound.call(serving, ctx, door, &routed.model)
    };
    serve_routed(serving, ctx, &call, &routed).await
}

/// Every model a caller may name on the Messages API, in Anthropic's list shape.
fn model_list(serving: Serving<'_>) -> AnthropicModelList {
    let door = Door::AnthropicMessages {
        path: "/v1/messages",
    };
    let data: Vec<AnthropicModel> = super::catalogue(serving.compiled, door)
        .into_iter()
        .map(|(id, _)| AnthropicModel {
            kind: "model",
            display_name: display_name(&id),
            created_at: "1970-01-01T00:00:00Z",
            id,
        })
        .collect();
    AnthropicModelList {
        first_id: data.first().map(|m| m.id.clone()),
        last_id: data.last().map(|m| m.id.clone()),
        has_more: false,
        data,
    }
}

/// Anthropic's `GET /v1/models` answer.
#[derive(serde::Serialize)]
struct AnthropicModelList {
    data: Vec<AnthropicModel>,
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

#[derive(serde::Serialize)]
struct AnthropicModel {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    display_name: String,
    created_at: &'static str,
}

/// A readable name for a model id: `claude-sonnet-4-5` → `Claude Sonnet 4.5`.
fn display_name(id: &str) -> String {
    let mut name = String::with_capacity(id.len());
    let mut previous_numeric = false;
    for word in id.split('-').filter(|w| !w.is_empty()) {
        let numeric = word.bytes().all(|b| b.is_ascii_digit());
        if !name.is_empty() {
            name.push(if numeric && previous_numeric {
                '.'
            } else {
                ' '
            });
        }
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(chars.as_str());
        }
        previous_numeric = numeric;
    }
    name
}

/// A token count, whichever door asked (`/v1/claude`, or Vertex AI's
/// `count-tokens:rawPredict`).
pub(super) async fn count_tokens(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    inbound: &mut Inbound<'_>,
) -> Answer {
    ctx.calls(Endpoint::ClaudeCountTokens);
    let door = Door::AnthropicMessages {
        path: "/v1/messages/count_tokens",
    };
    let routed = route_by_body(serving, ctx, inbound, SystemPrompt::AnthropicSystem).await?;
    let provider = &routed.resolved.provider;
    // Refuses providers that cannot serve the Messages API at all.
    Exchange::for_pair(door, provider, &routed.resolved.upstream_model)?;
    // Anthropic and Vertex AI count themselves.
    if matches!(
        provider.kind,
        ProviderKind::Anthropic | ProviderKind::Vertex
    ) {
        let call = Call {
            stream: false,
            ..inbound.call(serving, ctx, door, &routed.model)
        };
        return attempt(&call, &routed.resolved, ctx, false).await;
    }
    // Other providers have no Messages counting endpoint: count with a tokenizer.
    let req: anthropic::MessagesRequest = serde_json::from_slice(&inbound.body)
        .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"input_tokens": tokens::estimate_messages_input(&req)}),
    ))
}
