//! `/v1/claude/*`: the Anthropic Messages API (`ANTHROPIC_BASE_URL=…/v1/claude`).
//! Claude models pass through byte for byte; other models are translated.

use super::{
    event_stream_response, json_answer, proxied, route_by_body, upstream_json, with_model,
};
use crate::body::{json_response, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::state::Services;
use crate::translate::anthropic_openai::{self, MaxTokensField};
use crate::translate::TokenUsage;
use crate::translate::{anthropic, anthropic_bedrock, openai, tokens};
use crate::upstream::Upstream;
use crate::upstream::{
    forwardable_headers, translated_body, unless_failing, upstream_error, StreamProtocol,
    UpstreamRequest,
};
use ai_gateway_snapshot::ProviderKind;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
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

#[allow(clippy::too_many_arguments)]
pub async fn handle(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    method: Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, GatewayError> {
    let path = upstream_path(rest);
    let path_and_query = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    match (&method, path.as_str()) {
        (&Method::POST, "/v1/messages") => {
            ctx.endpoint = "claude.messages";
            messages(compiled, services, ctx, path_and_query, headers, body).await
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            ctx.endpoint = "claude.count_tokens";
            count_tokens(compiled, services, ctx, path_and_query, headers, body).await
        }
        // Model listing goes to an Anthropic provider; batches, files and the admin
        // API would spend the gateway's key outside routing and limits, so they stay closed.
        (&Method::GET, p) if p == "/v1/models" || p.starts_with("/v1/models/") => {
            let upstream = default_anthropic(compiled)?.clone();
            ctx.routed(&upstream.name, "");
            forward(&upstream, ctx, method, path_and_query, headers, body).await
        }
        _ => Err(GatewayError::NotFound {
            method: method.to_string(),
            path: format!("/v1/claude{rest}"),
        }),
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
    path_and_query: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, GatewayError> {
    let routed = route_by_body(compiled, services, ctx, headers, &body).await?;
    let (lookup, cached) =
        super::from_cache(compiled, services, ctx, &routed, headers, &body).await;
    if let Some(answer) = cached {
        return Ok(answer);
    }
    let mut chain = super::FallbackChain::new(compiled, &routed);
    while let Some((target, fallback_left)) = chain.next_target(services, ctx) {
        let served = serve_messages(
            ctx,
            path_and_query.clone(),
            headers,
            body.clone(),
            &routed.model,
            &target,
            fallback_left,
        )
        .await;
        if !super::FallbackChain::fails_over(ctx, &target, fallback_left, &served) {
            return super::into_cache(services, ctx, lookup.as_ref(), served);
        }
    }
    Err(GatewayError::UnknownModel {
        model: routed.model,
        known: String::new(),
    })
}

/// One attempt at one provider: Anthropic as is, Claude on Bedrock, or translated.
async fn serve_messages(
    ctx: &mut RequestContext,
    path_and_query: String,
    headers: &HeaderMap,
    body: Bytes,
    model: &str,
    resolved: &crate::routing::Resolved,
    fallback_left: bool,
) -> Result<Response<ResponseBody>, GatewayError> {
    let upstream = resolved.provider.clone();
    if upstream.kind == ProviderKind::Anthropic {
        let body = with_model(body, model, &resolved.upstream_model)?;
        let req = UpstreamRequest {
            method: Method::POST,
            path_and_query,
            headers: forwardable_headers(headers),
            body,
        };
        let resp = upstream.send(req, &ctx.request_id).await?;
        let resp = unless_failing(&upstream.name, resp, fallback_left).await?;
        return proxied(
            &upstream.name,
            resp,
            StreamProtocol::AnthropicSse,
            ctx.usage.clone(),
        )
        .await;
    }
    if upstream.kind == ProviderKind::Bedrock {
        return claude_on_bedrock(&upstream, ctx, &resolved.upstream_model, headers, &body).await;
    }
    if !upstream.speaks_openai() {
        return Err(unsupported(&upstream));
    }

    let req: anthropic::MessagesRequest =
        serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    let field =
        if upstream.kind == ProviderKind::Openai || upstream.kind == ProviderKind::AzureOpenai {
            MaxTokensField::MaxCompletionTokens
        } else {
            MaxTokensField::MaxTokens
        };
    let mut out = anthropic_openai::request(&req, &resolved.upstream_model, field)
        .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    if let Some(cap) = upstream.config.max_output_tokens {
        for key in ["max_tokens", "max_completion_tokens"] {
            if let Some(asked) = out.get(key).and_then(serde_json::Value::as_u64) {
                out[key] = serde_json::json!(asked.min(u64::from(cap)));
            }
        }
    }
    let path = upstream.chat_completions_path(&resolved.upstream_model);
    let resp = upstream
        .send(UpstreamRequest::json(path, &out), &ctx.request_id)
        .await?;
    if !resp.status().is_success() {
        return Err(upstream_error(&upstream.name, resp).await);
    }
    if req.stream {
        let estimate = tokens::estimate_messages_input(&req);
        let translator = anthropic_openai::StreamToAnthropic::new(model, estimate);
        return Ok(event_stream_response(translated_body(
            resp,
            Box::new(translator),
            ctx.usage.clone(),
        )));
    }
    let completion: openai::ChatCompletion = upstream_json(&upstream.name, resp).await?;
    if let Some(u) = &completion.usage {
        ctx.usage.report(TokenUsage::from_openai(u));
    }
    let message = anthropic_openai::response(&completion, model).map_err(|e| {
        GatewayError::UpstreamProtocol {
            provider: upstream.name.clone(),
            detail: e.to_string(),
        }
    })?;
    Ok(json_answer(ctx, &message))
}

async fn count_tokens(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    path_and_query: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, GatewayError> {
    let super::Routed {
        model, resolved, ..
    } = route_by_body(compiled, services, ctx, headers, &body).await?;
    let upstream = resolved.provider;
    if upstream.kind == ProviderKind::Anthropic {
        let body = with_model(body, &model, &resolved.upstream_model)?;
        return forward(&upstream, ctx, Method::POST, path_and_query, headers, body).await;
    }
    if !upstream.speaks_openai() && upstream.kind != ProviderKind::Bedrock {
        return Err(unsupported(&upstream));
    }
    // Other providers have no Messages counting endpoint: count with a tokenizer.
    let req: anthropic::MessagesRequest =
        serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"input_tokens": tokens::estimate_messages_input(&req)}),
    ))
}

/// Sends the caller's request to Anthropic as it came: query string, `anthropic-*`
/// headers and unknown body fields travel unchanged, and so does the answer.
async fn forward(
    upstream: &Upstream,
    ctx: &RequestContext,
    method: Method,
    path_and_query: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, GatewayError> {
    let req = UpstreamRequest {
        method,
        path_and_query,
        headers: forwardable_headers(headers),
        body,
    };
    let resp = upstream.send(req, &ctx.request_id).await?;
    proxied(
        &upstream.name,
        resp,
        StreamProtocol::AnthropicSse,
        ctx.usage.clone(),
    )
    .await
}

/// Claude on Bedrock: InvokeModel (or its stream, turned back into Messages SSE events).
async fn claude_on_bedrock(
    upstream: &Upstream,
    ctx: &mut RequestContext,
    upstream_model: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<ResponseBody>, GatewayError> {
    let beta = headers.get("anthropic-beta").and_then(|v| v.to_str().ok());
    let invoke = anthropic_bedrock::request(body, beta)
        .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    let operation = if ctx.stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    let req = UpstreamRequest {
        method: Method::POST,
        path_and_query: format!(
            "/model/{}/{operation}",
            super::bedrock::encode_model_id(upstream_model)
        ),
        headers,
        body: Bytes::from(invoke),
    };
    let resp = upstream.send(req, &ctx.request_id).await?;
    if !resp.status().is_success() {
        return Err(upstream_error(&upstream.name, resp).await);
    }
    if ctx.stream {
        return Ok(event_stream_response(
            crate::upstream::bedrock_invoke_as_sse(resp, ctx.usage.clone()),
        ));
    }
    proxied(
        &upstream.name,
        resp,
        StreamProtocol::AnthropicSse,
        ctx.usage.clone(),
    )
    .await
}

fn unsupported(upstream: &Upstream) -> GatewayError {
    GatewayError::Unsupported {
        what: format!(
            "serving the Messages API from a {} provider (`{}`)",
            upstream.kind.as_str(),
            upstream.name
        ),
    }
}
