//! `/v1/bedrock/*`: the Bedrock runtime as boto3 and the aws cli call it
//! (`endpoint_url=http://<gateway>/v1/bedrock`), plus the users' JSON envelope
//! `POST /v1/bedrock/invoke {"model_id", "body"}`. The caller's signature was checked
//! on the way in; the gateway signs the call again with the route's credentials.

use super::proxied;
use crate::body::ResponseBody;
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::routing::Resolved;
use crate::state::Services;
use crate::upstream::{forwardable_headers, StreamProtocol, UpstreamRequest};
use ai_gateway_snapshot::ProviderKind;
use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

/// Model ids are one path segment: `:` and the `/` of an ARN are escaped.
const MODEL_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const OPERATIONS: &[&str] = &[
    "invoke",
    "invoke-with-response-stream",
    "converse",
    "converse-stream",
    "count-tokens",
];

/// A model id as one path segment (`us.anthropic.claude-…-v1%3A0`).
pub fn encode_model_id(id: &str) -> String {
    utf8_percent_encode(id, MODEL_ID).to_string()
}

#[derive(Deserialize)]
struct Envelope {
    model_id: String,
    body: serde_json::Value,
}

/// Output caps as Anthropic bodies (`max_tokens`) and Converse (`inferenceConfig`) name them.
#[derive(Deserialize, Default)]
struct OutputCap {
    #[serde(default, deserialize_with = "super::token_count")]
    max_tokens: Option<u64>,
    /// Turns in the conversation, in either body.
    messages: Option<super::Count>,
    #[serde(rename = "inferenceConfig")]
    inference_config: Option<InferenceConfig>,
}

#[derive(Deserialize, Default)]
struct InferenceConfig {
    #[serde(rename = "maxTokens", default, deserialize_with = "super::token_count")]
    max_tokens: Option<u64>,
}

pub async fn handle(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    method: Method,
    rest: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, GatewayError> {
    let not_found = || GatewayError::NotFound {
        method: method.to_string(),
        path: format!("/v1/bedrock{rest}"),
    };
    if method != Method::POST {
        return Err(not_found());
    }
    let (model, operation, body) = if rest == "/invoke" {
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
            GatewayError::InvalidRequest(format!("expected {{\"model_id\", \"body\"}}: {e}"))
        })?;
        let body = Bytes::from(serde_json::to_vec(&envelope.body).unwrap_or_default());
        (envelope.model_id, "invoke", body)
    } else {
        let call = rest.strip_prefix("/model/").ok_or_else(not_found)?;
        let (id, operation) = call.split_once('/').ok_or_else(not_found)?;
        if !OPERATIONS.contains(&operation) {
            return Err(not_found());
        }
        let id = percent_decode_str(id).decode_utf8_lossy().into_owned();
        (id, operation, body)
    };
    let resolved = match compiled
        .routes
        .resolve(&model, super::forced_provider(headers))
    {
        Ok(r) => r,
        // Bedrock ids are many and versioned: an unrouted one goes to the Bedrock provider as is.
        Err(GatewayError::UnknownModel { .. }) => Resolved {
            provider: compiled
                .providers
                .values()
                .find(|p| p.kind == ProviderKind::Bedrock)
                .cloned()
                .ok_or_else(|| GatewayError::UnknownProvider {
                    name: "bedrock".into(),
                    known: compiled
                        .providers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                })?,
            upstream_model: model.clone(),
            fallback: Vec::new(),
            cache_ttl_seconds: None,
        },
        Err(e) => return Err(e),
    };
    super::require_native(&resolved, ProviderKind::Bedrock, "the Bedrock runtime API")?;
    ctx.endpoint = "bedrock.native";
    ctx.routed(&resolved.provider.name, &resolved.upstream_model);
    ctx.model = Some(model);
    ctx.stream = operation.ends_with("-stream");
    let cap: OutputCap = super::read_request(&body)?;
    if let Some(super::Count(n)) = &cap.messages {
        super::within_message_limit(&compiled.snapshot.gateway, *n)?;
    }
    let max_output = cap
        .max_tokens
        .or(cap.inference_config.and_then(|c| c.max_tokens));
    crate::admission::admit(compiled, services, ctx, &resolved, body.len(), max_output).await?;

    let path = format!(
        "/model/{}/{operation}",
        encode_model_id(&resolved.upstream_model)
    );
    let mut forwarded = forwardable_headers(headers);
    // The caller's signature covered its own request; the gateway signs its own.
    let caller_signing: Vec<_> = forwarded
        .keys()
        .filter(|k| k.as_str().starts_with("x-amz-") || k.as_str().starts_with("amz-sdk-"))
        .cloned()
        .collect();
    for name in caller_signing {
        forwarded.remove(name);
    }
    let req = UpstreamRequest {
        method,
        path_and_query: path,
        headers: forwarded,
        body,
    };
    let resp = resolved.provider.send(req, &ctx.request_id).await?;
    proxied(
        &resolved.provider.name,
        resp,
        StreamProtocol::AwsEventStream,
        ctx.usage.clone(),
    )
    .await
}
