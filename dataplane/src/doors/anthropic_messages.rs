//! `/v1/claude/*`: the Anthropic Messages API (`ANTHROPIC_BASE_URL=…/v1/claude`).
//! Claude models pass through byte for byte; other models are translated.

use super::{serve_routed, Inbound};
use crate::body::{json_response, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::context::{Endpoint, RequestContext};
use crate::error::GatewayError;
use crate::exchange::{attempt, Call, Door, Exchange};
use crate::routing::Resolved;
use crate::state::Services;
use crate::translate::tokens;
use crate::upstream::Upstream;
use crate::wire::anthropic;
use ai_gateway_snapshot::ProviderKind;
use http::{Method, Response, StatusCode};
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
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    inbound: Inbound<'_>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let path = upstream_path(inbound.rest);
    match (&inbound.method, path.as_str()) {
        (&Method::POST, "/v1/messages") => {
            ctx.calls(Endpoint::ClaudeMessages);
            messages(compiled, services, ctx, &path, &inbound).await
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            ctx.calls(Endpoint::ClaudeCountTokens);
            count_tokens(compiled, services, ctx, &path, &inbound).await
        }
        // Model listing goes to an Anthropic provider; batches, files and the admin
        // API would spend the gateway's key outside routing and limits, so they stay closed.
        (&Method::GET, p) if p == "/v1/models" || p.starts_with("/v1/models/") => {
            let provider = default_anthropic(compiled)?.clone();
            ctx.routed(&provider.name, "");
            let listing = Resolved {
                provider,
                upstream_model: String::new(),
                fallback: Vec::new(),
                cache_ttl_seconds: None,
            };
            let call = as_sent(compiled, &path, "", &inbound);
            attempt(&call, &listing, ctx, false).await
        }
        _ => Err(inbound.not_found("/v1/claude")),
    }
}

/// The caller's request as it came: query string, `anthropic-*` headers and unknown
/// body fields travel unchanged.
fn as_sent<'a>(
    compiled: &CompiledConfig,
    path: &'a str,
    model: &'a str,
    inbound: &'a Inbound<'_>,
) -> Call<'a> {
    Call {
        door: Door::AnthropicMessages { path },
        method: inbound.method.clone(),
        model,
        stream: false,
        wants_usage_chunk: false,
        headers: inbound.headers,
        query: inbound.query,
        body: &inbound.body,
        default_max_tokens: compiled.snapshot.gateway.default_max_tokens,
    }
}

fn default_anthropic(compiled: &CompiledConfig) -> Result<&Arc<Upstream>, GatewayError> {
    compiled
        .providers
        .values()
        .filter(|p| p.kind == ProviderKind::Anthropic)
        .min_by_key(|p| p.inactive.is_some())
        .ok_or_else(|| GatewayError::UnknownProvider {
            name: "anthropic".into(),
            known: compiled
                .providers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
}

async fn messages(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    path: &str,
    inbound: &Inbound<'_>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let routed = crate::resolve::by_body(compiled, ctx, inbound.headers, &inbound.body)?;
    crate::admission::admit(
        compiled,
        services,
        ctx,
        &routed.resolved,
        inbound.body.len(),
        routed.max_output_tokens,
    )
    .await?;
    let call = Call {
        stream: ctx.stream(),
        ..as_sent(compiled, path, &routed.model, inbound)
    };
    serve_routed(compiled, services, ctx, &call, &routed).await
}

async fn count_tokens(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    path: &str,
    inbound: &Inbound<'_>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let routed = crate::resolve::by_body(compiled, ctx, inbound.headers, &inbound.body)?;
    crate::admission::admit(
        compiled,
        services,
        ctx,
        &routed.resolved,
        inbound.body.len(),
        routed.max_output_tokens,
    )
    .await?;
    let provider = &routed.resolved.provider;
    // Refuses providers that cannot serve the Messages API at all.
    Exchange::for_pair(Door::AnthropicMessages { path }, provider)?;
    if provider.kind == ProviderKind::Anthropic {
        let call = as_sent(compiled, path, &routed.model, inbound);
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
