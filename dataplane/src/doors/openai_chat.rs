//! `POST /v1/chat/completions` and `GET /v1/models`: the OpenAI chat API, served by
//! every provider.

use super::{serve_routed, Inbound};
use crate::body::{json_response, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::context::{Endpoint, RequestContext};
use crate::error::GatewayError;
use crate::exchange::{Call, Door};
use crate::state::Services;
use http::{Method, Response, StatusCode};
use serde_json::json;

pub async fn completions(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    inbound: Inbound<'_>,
) -> Result<Response<ResponseBody>, GatewayError> {
    ctx.calls(Endpoint::ChatCompletions);
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
        door: Door::OpenAiChat,
        method: Method::POST,
        model: &routed.model,
        stream: ctx.stream(),
        wants_usage_chunk: routed.wants_usage_chunk,
        headers: inbound.headers,
        query: None,
        body: &inbound.body,
        default_max_tokens: compiled.snapshot.gateway.default_max_tokens,
    };
    serve_routed(compiled, services, ctx, &call, &routed).await
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
