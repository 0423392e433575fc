//! `/v1/bedrock/*`: the Bedrock runtime as boto3 and the aws cli call it
//! (`endpoint_url=http://<gateway>/v1/bedrock`), plus the users' JSON envelope
//! `POST /v1/bedrock/invoke {"model_id", "body"}`. The caller's signature was checked
//! on the way in; the gateway signs the call again with the route's credentials.

use super::{Answer, Inbound};
use crate::context::{Endpoint, RequestContext};
use crate::error::GatewayError;
use crate::exchange::{attempt, Call, Door, Exchange};
use crate::intelligence::system_prompt::SystemPrompt;
use crate::read::{token_count, Count};
use crate::routing::Resolved;
use crate::state::Serving;
use ai_gateway_snapshot::ProviderKind;
use bytes::Bytes;
use http::Method;
use percent_encoding::percent_decode_str;
use serde::Deserialize;

const OPERATIONS: &[&str] = &[
    "invoke",
    "invoke-with-response-stream",
    "converse",
    "converse-stream",
    "count-tokens",
];

#[derive(Deserialize)]
struct Envelope {
    model_id: String,
    body: serde_json::Value,
}

/// Output caps as Anthropic bodies (`max_tokens`) and Converse (`inferenceConfig`) name them.
#[derive(Deserialize, Default)]
struct OutputCap {
    #[serde(default, deserialize_with = "token_count")]
    max_tokens: Option<u64>,
    /// Turns in the conversation, in either body.
    messages: Option<Count>,
    #[serde(rename = "inferenceConfig")]
    inference_config: Option<InferenceConfig>,
}

#[derive(Deserialize, Default)]
struct InferenceConfig {
    #[serde(rename = "maxTokens", default, deserialize_with = "token_count")]
    max_tokens: Option<u64>,
}

pub async fn handle(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    inbound: Inbound<'_>,
) -> Answer {
    let compiled = serving.compiled;
    let not_found = || inbound.not_found("/v1/bedrock");
    if inbound.method != Method::POST {
        return Err(not_found());
    }
    let (model, operation, body) = if inbound.rest == "/invoke" {
        let envelope: Envelope = serde_json::from_slice(&inbound.body).map_err(|e| {
            GatewayError::InvalidRequest(format!("expected {{\"model_id\", \"body\"}}: {e}"))
        })?;
        let body = Bytes::from(serde_json::to_vec(&envelope.body).unwrap_or_default());
        (envelope.model_id, "invoke", body)
    } else {
        let call = inbound.rest.strip_prefix("/model/").ok_or_else(not_found)?;
        let (id, operation) = call.split_once('/').ok_or_else(not_found)?;
        let operation = OPERATIONS
            .iter()
            .find(|o| **o == operation)
            .ok_or_else(not_found)?;
        let id = percent_decode_str(id).decode_utf8_lossy().into_owned();
        (id, *operation, inbound.body.clone())
    };
    let resolved = match compiled
        .routes
        .resolve(&model, crate::resolve::forced_provider(inbound.headers))
    {
        Ok(r) => r,
        // Bedrock ids are many and versioned: an unrouted one goes to the Bedrock provider as is.
        Err(GatewayError::UnknownModel { .. }) => Resolved::unrouted(
            compiled
                .providers
                .values()
                .find(|p| p.kind == ProviderKind::Bedrock)
                .cloned()
                .ok_or_else(|| {
                    GatewayError::unknown_provider("bedrock", compiled.providers.keys())
                })?,
            model.clone(),
        ),
        Err(e) => return Err(e),
    };
    let door = Door::BedrockRuntime { operation };
    Exchange::for_pair(door, &resolved.provider, &resolved.upstream_model)?;
    ctx.calls(Endpoint::BedrockNative);
    ctx.routed(&resolved.provider.name, &resolved.upstream_model);
    ctx.asks_for(model.clone(), operation.ends_with("-stream"));
    let cap: OutputCap = crate::read::read_request(&body)?;
    if let Some(Count(n)) = &cap.messages {
        crate::resolve::within_message_limit(&compiled.snapshot.gateway, *n)?;
    }
    let max_output = cap
        .max_tokens
        .or(cap.inference_config.and_then(|c| c.max_tokens));
    super::admit(serving, ctx, &resolved, &body, max_output).await?;
    // A Converse body keeps its system prompt as blocks of text; InvokeModel's is
    // Claude's Messages body.
    let place = match operation.starts_with("converse") {
        true => SystemPrompt::ConverseSystem,
        false => SystemPrompt::AnthropicSystem,
    };
    let skilled =
        crate::intelligence::skills::native_body(&compiled.skills, inbound.headers, &body, place)?;
    let body = skilled.unwrap_or(body);
    let call = Call {
        method: Method::POST,
        query: None,
        body: &body,
        ..inbound.call(serving, ctx, door, &model)
    };
    attempt(&call, &resolved, ctx, false).await
}
