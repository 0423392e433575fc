//! `/v1/gemini/*`: the Gemini API as google-genai and curl call it, with the caller's
//! key swapped for the route's. The model named in the path is routed (and aliased)
//! like any other.

use super::proxied;
use crate::body::ResponseBody;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::runtime::Runtime;
use crate::state::Services;
use crate::upstream::{forwardable_headers, StreamProtocol, UpstreamRequest};
use ai_gateway_snapshot::ProviderKind;
use bytes::Bytes;
use http::{HeaderMap, Method, Response};

/// Model methods that generate or count; the rest of the API (files, tuning, caches)
/// would spend the key outside routing and limits.
const METHODS: &[&str] = &[
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
];

/// `/v1beta/models/gemini-2.5-flash:generateContent` → its parts; a path without an
/// API version gets `v1beta`, the version the Gemini docs use.
struct ModelCall<'a> {
    version: &'a str,
    model: &'a str,
    method: &'a str,
}

fn parse(rest: &str) -> Option<ModelCall<'_>> {
    let rest = rest.strip_prefix('/')?;
    let (version, rest) = match rest.split_once('/') {
        Some((v, r)) if v.starts_with('v') && v[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            (v, r)
        }
        _ => ("v1beta", rest),
    };
    let call = rest.strip_prefix("models/")?;
    let (model, method) = call.split_once(':')?;
    if !is_plain_segment(model) || !METHODS.contains(&method) {
        return None;
    }
    Some(ModelCall {
        version,
        model,
        method,
    })
}

/// A model id that can only be one path segment: no separators, escapes or dot-dots,
/// so it cannot steer the call to another Gemini endpoint.
pub fn is_plain_segment(model: &str) -> bool {
    !model.is_empty()
        && model != "."
        && model != ".."
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[allow(clippy::too_many_arguments)]
pub async fn handle(
    rt: &Runtime,
    services: &Services,
    ctx: &mut RequestContext,
    method: Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, GatewayError> {
    let not_found = || GatewayError::NotFound {
        method: method.to_string(),
        path: format!("/v1/gemini{rest}"),
    };
    let call = parse(rest)
        .filter(|_| method == Method::POST)
        .ok_or_else(not_found)?;
    let resolved = rt
        .routes
        .resolve(call.model, super::forced_provider(headers))?;
    super::require_native(&resolved, ProviderKind::Gemini, "the Gemini API")?;
    ctx.endpoint = "gemini.native";
    ctx.routed(&resolved.provider.name, &resolved.upstream_model);
    ctx.model = Some(call.model.to_string());
    ctx.stream = call.method == "streamGenerateContent";
    let doc = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let turns = doc
        .as_ref()
        .and_then(|v| v.get("contents")?.as_array().map(Vec::len));
    if let Some(n) = turns {
        super::within_message_limit(&rt.snapshot.gateway, n)?;
    }
    let max_output = doc.and_then(|v| {
        v.pointer("/generationConfig/maxOutputTokens")
            .and_then(|m| m.as_u64())
    });
    crate::admission::admit(rt, services, ctx, &resolved, body.len(), max_output).await?;

    if !is_plain_segment(&resolved.upstream_model) {
        return Err(GatewayError::InvalidRequest(format!(
            "`{}` is not a Gemini model id",
            resolved.upstream_model
        )));
    }
    let mut path = format!(
        "/{}/models/{}:{}",
        call.version, resolved.upstream_model, call.method
    );
    if let Some(q) = query {
        path = format!("{path}?{q}");
    }
    let req = UpstreamRequest {
        method,
        path_and_query: path,
        headers: forwardable_headers(headers),
        body,
    };
    let resp = resolved.provider.send(req, &ctx.request_id).await?;
    proxied(
        &resolved.provider.name,
        resp,
        StreamProtocol::GeminiSse,
        ctx.usage.clone(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_parse_with_or_without_a_version() {
        let c = parse("/v1beta/models/gemini-2.5-pro:streamGenerateContent").expect("parses");
        assert_eq!(
            (c.version, c.model, c.method),
            ("v1beta", "gemini-2.5-pro", "streamGenerateContent")
        );
        let c = parse("/models/gemini-pro:generateContent").expect("parses");
        assert_eq!((c.version, c.model), ("v1beta", "gemini-pro"));
        assert!(parse("/v1beta/files/abc").is_none());
        assert!(parse("/v1beta/models/x:deleteEverything").is_none());
        assert!(parse("/v1beta/models/../../x:generateContent").is_none());
    }
}
