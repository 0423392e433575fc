//! `POST /v1/chat/completions` and `GET /v1/models`: the OpenAI chat API, served by
//! every provider.

use super::{route_by_body, serve_routed, Answer, Inbound};
use crate::body::{json_response, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::context::{Endpoint, RequestContext};
use crate::exchange::{Call, Door};
use crate::intelligence::system_prompt::SystemPrompt;
use crate::state::Serving;
use http::{Response, StatusCode};
use serde_json::json;

pub async fn completions(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    mut inbound: Inbound<'_>,
) -> Answer {
    ctx.calls(Endpoint::ChatCompletions);
    let routed = route_by_body(serving, ctx, &mut inbound, SystemPrompt::OpenAiMessages).await?;
    let call = Call {
        query: None,
        wants_usage_chunk: routed.wants_usage_chunk,
        cache_breakpoints: routed.token_reduction.cache_breakpoints,
        ..inbound.call(serving, ctx, Door::OpenAiChat, &routed.model)
    };
    serve_routed(serving, ctx, &call, &routed).await
}

/// The models a caller can name, in OpenAI's list shape.
pub fn models(compiled: &CompiledConfig) -> Response<ResponseBody> {
    let data: Vec<_> = super::catalogue(compiled, Door::OpenAiChat)
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}
