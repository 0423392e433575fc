//! `POST /v1/chat/completions` and `GET /v1/models`: the OpenAI-compatible door to
//! every provider.

use super::{
    event_stream_response, json_answer, proxied, route_by_body, upstream_json, with_model,
    with_stream_usage,
};
use crate::body::{json_response, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::state::Services;
use crate::translate::TokenUsage;
use crate::translate::{anthropic, openai, openai_anthropic, openai_bedrock, openai_gemini};
use crate::upstream::{
    eventstream_translated, translated_body, unless_failing, upstream_error, StreamProtocol,
    UpstreamRequest,
};
use ai_gateway_snapshot::ProviderKind;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::json;

pub async fn completions(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, GatewayError> {
    ctx.endpoint = "chat.completions";
    let routed = route_by_body(compiled, services, ctx, headers, &body).await?;
    let (lookup, cached) =
        super::from_cache(compiled, services, ctx, &routed, headers, &body).await;
    if let Some(answer) = cached {
        return Ok(answer);
    }
    let mut chain = super::FallbackChain::new(compiled, &routed);
    while let Some((target, fallback_left)) = chain.next_target(services, ctx) {
        let served = serve(
            compiled,
            ctx,
            headers,
            body.clone(),
            &routed,
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

/// One attempt at one provider.
async fn serve(
    compiled: &CompiledConfig,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Bytes,
    routed: &super::Routed,
    resolved: &crate::routing::Resolved,
    fallback_left: bool,
) -> Result<Response<ResponseBody>, GatewayError> {
    let model = routed.model.as_str();
    let upstream = resolved.provider.clone();

    if upstream.speaks_openai() {
        let path = upstream.chat_completions_path(&resolved.upstream_model);
        let mut body = with_model(body, model, &resolved.upstream_model)?;
        // The usage chunk the gateway asked for is not passed on to a caller who did not.
        let strip_usage = ctx.stream && !routed.wants_usage_chunk;
        if strip_usage {
            body = with_stream_usage(body)?;
        }
        let req = UpstreamRequest {
            method: Method::POST,
            path_and_query: path,
            headers: crate::upstream::forwardable_headers(headers),
            body,
        };
        let resp = upstream.send(req, &ctx.request_id).await?;
        let resp = unless_failing(&upstream.name, resp, fallback_left).await?;
        let protocol = if strip_usage {
            StreamProtocol::OpenAiSseWithoutUsage
        } else {
            StreamProtocol::OpenAiSse
        };
        return proxied(&upstream.name, resp, protocol, ctx.usage.clone()).await;
    }
    if upstream.kind == ProviderKind::Bedrock {
        return converse(
            compiled,
            ctx,
            &upstream,
            model,
            &resolved.upstream_model,
            &body,
        )
        .await;
    }
    if upstream.kind == ProviderKind::Gemini {
        return generate_content(ctx, &upstream, model, &resolved.upstream_model, &body).await;
    }
    if upstream.kind != ProviderKind::Anthropic {
        return Err(GatewayError::Unsupported {
            what: format!(
                "routing chat completions to a {} provider (`{}`)",
                upstream.kind.as_str(),
                upstream.name
            ),
        });
    }

    let req: openai::ChatRequest =
        serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    let out = openai_anthropic::request(
        &req,
        &resolved.upstream_model,
        compiled.snapshot.gateway.default_max_tokens,
    )
    .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    let resp = upstream
        .send(
            UpstreamRequest::json("/v1/messages".into(), &out),
            &ctx.request_id,
        )
        .await?;
    if !resp.status().is_success() {
        return Err(upstream_error(&upstream.name, resp).await);
    }
    if req.stream {
        let translator = openai_anthropic::StreamToOpenAi::new(model, req.include_usage());
        return Ok(event_stream_response(translated_body(
            resp,
            Box::new(translator),
            ctx.usage.clone(),
        )));
    }
    let message: anthropic::MessageResponse = upstream_json(&upstream.name, resp).await?;
    ctx.usage.report(TokenUsage::from_anthropic(&message.usage));
    Ok(json_answer(
        ctx,
        &openai_anthropic::response(&message, model),
    ))
}

/// The models a caller can name: each route's exact names and each provider's listed
/// models, for providers that can serve.
pub fn models(compiled: &CompiledConfig) -> Response<ResponseBody> {
    let mut entries: Vec<(String, String)> = compiled
        .routes
        .exact_models()
        .filter(|(_, p)| p.inactive.is_none())
        .map(|(m, p)| (m.to_string(), p.name.clone()))
        .collect();
    for p in compiled.providers.values().filter(|p| p.inactive.is_none()) {
        entries.extend(p.config.models.iter().map(|m| (m.clone(), p.name.clone())));
    }
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    let data: Vec<_> = entries
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

/// Bedrock's Converse API, for any model in its catalogue.
async fn converse(
    compiled: &CompiledConfig,
    ctx: &mut RequestContext,
    upstream: &crate::upstream::Upstream,
    model: &str,
    upstream_model: &str,
    body: &[u8],
) -> Result<Response<ResponseBody>, GatewayError> {
    let req: openai::ChatRequest =
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    let out = openai_bedrock::request(&req, compiled.snapshot.gateway.default_max_tokens)
        .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    let operation = if req.stream {
        "converse-stream"
    } else {
        "converse"
    };
    let path = format!(
        "/model/{}/{operation}",
        super::bedrock::encode_model_id(upstream_model)
    );
    let resp = upstream
        .send(UpstreamRequest::json(path, &out), &ctx.request_id)
        .await?;
    if !resp.status().is_success() {
        return Err(upstream_error(&upstream.name, resp).await);
    }
    if req.stream {
        let translator = openai_bedrock::StreamToOpenAi::new(model, req.include_usage());
        return Ok(event_stream_response(eventstream_translated(
            resp,
            Box::new(translator),
            ctx.usage.clone(),
        )));
    }
    let answer: serde_json::Value = upstream_json(&upstream.name, resp).await?;
    if let Some(u) = answer.get("usage") {
        ctx.usage.report(TokenUsage::from_bedrock(u));
    }
    Ok(json_answer(ctx, &openai_bedrock::response(&answer, model)))
}

/// The Gemini API's generateContent, streamed over `alt=sse`.
async fn generate_content(
    ctx: &mut RequestContext,
    upstream: &crate::upstream::Upstream,
    model: &str,
    upstream_model: &str,
    body: &[u8],
) -> Result<Response<ResponseBody>, GatewayError> {
    let req: openai::ChatRequest =
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    if !super::gemini::is_plain_segment(upstream_model) {
        return Err(GatewayError::InvalidRequest(format!(
            "`{upstream_model}` is not a Gemini model id"
        )));
    }
    let out =
        openai_gemini::request(&req).map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    let path = if req.stream {
        format!("/v1beta/models/{upstream_model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{upstream_model}:generateContent")
    };
    let resp = upstream
        .send(UpstreamRequest::json(path, &out), &ctx.request_id)
        .await?;
    if !resp.status().is_success() {
        return Err(upstream_error(&upstream.name, resp).await);
    }
    if req.stream {
        let translator = openai_gemini::StreamToOpenAi::new(model, req.include_usage());
        return Ok(event_stream_response(translated_body(
            resp,
            Box::new(translator),
            ctx.usage.clone(),
        )));
    }
    let answer: serde_json::Value = upstream_json(&upstream.name, resp).await?;
    if let Some(u) = answer.get("usageMetadata") {
        ctx.usage.report(TokenUsage::from_gemini(u));
    }
    Ok(json_answer(ctx, &openai_gemini::response(&answer, model)))
}
