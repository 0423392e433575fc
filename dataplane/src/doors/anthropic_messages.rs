//! `/v1/claude/*`: the Anthropic Messages API (`ANTHROPIC_BASE_URL=…/v1/claude`).
//! Claude models pass through byte for byte; other models are translated.

use super::{route_by_body, serve_routed, Answer, Inbound};
use crate::body::json_response;
use crate::compiled::CompiledConfig;
use crate::context::{Endpoint, RequestContext};
use crate::error::GatewayError;
use crate::exchange::{attempt, Call, Door, Exchange};
use crate::routing::Resolved;
use crate::state::Serving;
use crate::translate::tokens;
use crate::upstream::Upstream;
use crate::wire::anthropic;
use ai_gateway_snapshot::ProviderKind;
use http::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

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
    inbound: Inbound<'_>,
) -> Answer {
    let path = upstream_path(inbound.rest);
    let door = Door::AnthropicMessages { path: &path };
    match (&inbound.method, path.as_str()) {
        (&Method::POST, "/v1/messages") => {
            ctx.calls(Endpoint::ClaudeMessages);
            let routed = route_by_body(serving, ctx, &inbound).await?;
            let call = inbound.call(serving, ctx, door, &routed.model);
            serve_routed(serving, ctx, &call, &routed).await
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            ctx.calls(Endpoint::ClaudeCountTokens);
            count_tokens(serving, ctx, door, &inbound).await
        }
        // Model listing goes to an Anthropic provider; batches, files and the admin
        // API would spend the gateway's key outside routing and limits, so they stay closed.
        (&Method::GET, p) if p == "/v1/models" || p.starts_with("/v1/models/") => {
            let provider = default_anthropic(serving.compiled)?.clone();
            ctx.routed(&provider.name, "");
            let listing = Resolved {
                provider,
                upstream_model: String::new(),
                fallback: Vec::new(),
                cache_ttl_seconds: None,
            };
            let call = inbound.call(serving, ctx, door, "");
            attempt(&call, &listing, ctx, false).await
        }
        _ => Err(inbound.not_found("/v1/claude")),
    }
}

fn default_anthropic(compiled: &CompiledConfig) -> Result<&Arc<Upstream>, GatewayError> {
    compiled
        .providers
        .values()
        .filter(|p| p.kind == ProviderKind::Anthropic)
        .min_by_key(|p| p.inactive.is_some())
        .ok_or_else(|| GatewayError::unknown_provider("anthropic", compiled.providers.keys()))
}

async fn count_tokens(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    door: Door<'_>,
    inbound: &Inbound<'_>,
) -> Answer {
    let routed = route_by_body(serving, ctx, inbound).await?;
    let provider = &routed.resolved.provider;
    // Refuses providers that cannot serve the Messages API at all.
    Exchange::for_pair(door, provider)?;
    if provider.kind == ProviderKind::Anthropic {
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
