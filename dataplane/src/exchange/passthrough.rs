//! The provider speaks the caller's API: the body goes out as it came (the model renamed
//! to the provider's id), with the provider's credentials in place of the caller's, and
//! the answer comes back as the provider sent it.

use super::{vertex, Call, Door};
use crate::error::GatewayError;
use crate::routing::Resolved;
use crate::upstream::{forwardable_headers, paths, StreamProtocol, UpstreamRequest};
use ai_gateway_snapshot::ProviderKind;
use bytes::Bytes;

/// The caller's request as a provider of its own API takes it, and how the answer is
/// metered.
pub fn request(
    call: &Call<'_>,
    resolved: &Resolved,
) -> Result<(UpstreamRequest, StreamProtocol), GatewayError> {
    let provider = &resolved.provider;
    let model = resolved.upstream_model.as_str();
    let mut headers = forwardable_headers(call.headers);
    let (path, mut protocol) = match call.door {
        Door::OpenAiChat => (
            provider.chat_completions_path(model),
            StreamProtocol::OpenAiSse,
        ),
        Door::AnthropicMessages { path } => {
            let path = match provider.vertex() {
                None => with_query(path, call.query),
                Some(vertex) if is_count_tokens(path) => {
                    vertex.model_path("anthropic", "count-tokens", "rawPredict")
                }
                Some(vertex) => vertex.model_path("anthropic", model, vertex::method(call.stream)),
            };
            (path, StreamProtocol::AnthropicSse)
        }
        Door::BedrockRuntime { operation } => {
            // The caller's signature covered its own request; the gateway signs its own.
            let caller_signing: Vec<_> = headers
                .keys()
                .filter(|k| k.as_str().starts_with("x-amz-") || k.as_str().starts_with("amz-sdk-"))
                .cloned()
                .collect();
            for name in caller_signing {
                headers.remove(name);
            }
            (
                paths::bedrock_model(model, operation),
                StreamProtocol::AwsEventStream,
            )
        }
        Door::GeminiApi { version, method } => {
            if !paths::is_plain_segment(model) {
                return Err(GatewayError::InvalidRequest(format!(
                    "`{model}` is not a Gemini model id"
                )));
            }
            let path = match provider.vertex() {
                Some(vertex) => vertex.model_path("google", model, method),
                None => format!("/{version}/models/{model}:{method}"),
            };
            (with_query(&path, call.query), StreamProtocol::GeminiSse)
        }
        Door::ProviderApi { path } => {
            // Clients configured with a base URL ending in /v1 (or not) both work.
            let path = match path.strip_prefix("/v1/") {
                Some(rest) if provider.base_url.ends_with("/v1") => format!("/{rest}"),
                _ => path.to_string(),
            };
            let protocol = if provider.kind == ProviderKind::Ollama && path.starts_with("/api/") {
                StreamProtocol::Ndjson
            } else {
                StreamProtocol::OpenAiSse
            };
            (with_query(&path, call.query), protocol)
        }
    };
    let mut body = match call.door {
        Door::BedrockRuntime { .. } | Door::GeminiApi { .. } => call.body.clone(),
        Door::AnthropicMessages { path }
            if provider.vertex().is_some() && !is_count_tokens(path) =>
        {
            let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(call.body)
                .map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
            Bytes::from(serde_json::to_vec(&vertex::messages_body(doc)).unwrap_or_default())
        }
        Door::AnthropicMessages { .. } if call.anthropic_version => {
            vertex::without_version(with_model(call.body.clone(), call.model, model)?)?
        }
        _ => with_model(call.body.clone(), call.model, model)?,
    };
    // Chat streams are metered from their usage chunk: ask for it, and keep it from a
    // caller who did not.
    let chat = match call.door {
        Door::OpenAiChat => true,
        Door::ProviderApi { path } => path.ends_with("/chat/completions"),
        _ => false,
    };
    if chat && protocol == StreamProtocol::OpenAiSse && call.stream && !call.wants_usage_chunk {
        protocol = StreamProtocol::OpenAiSseWithoutUsage;
        body = with_stream_usage(body)?;
    }
    let request = UpstreamRequest {
        method: call.method.clone(),
        path_and_query: path,
        headers,
        body,
    };
    Ok((request, protocol))
}

fn is_count_tokens(path: &str) -> bool {
    path.ends_with("/count_tokens")
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// The body with `model` replaced by the upstream id; untouched when they are equal,
/// so every field the gateway does not know reaches the provider as the caller sent it.
pub fn with_model(
    body: Bytes,
    client_model: &str,
    upstream_model: &str,
) -> Result<Bytes, GatewayError> {
    if client_model == upstream_model {
        return Ok(body);
    }
    let mut doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
    doc.insert(
        "model".into(),
        serde_json::Value::String(upstream_model.to_string()),
    );
    Ok(Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()))
}

/// Asks an OpenAI-compatible upstream for the usage chunk at the end of a stream, so
/// the call can be metered even when the caller did not ask for it.
pub fn with_stream_usage(body: Bytes) -> Result<Bytes, GatewayError> {
    // Most callers send no `stream_options`: splice the member in after the opening
    // brace rather than re-serialise the whole body (the caller's JSON was already
    // parsed once to route it).
    static STREAM_OPTIONS: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"stream_options\""));
    if STREAM_OPTIONS.find(&body).is_none() {
        let open = body.iter().position(|b| !b.is_ascii_whitespace());
        if let Some(open) = open.filter(|&i| body[i] == b'{') {
            let rest = &body[open + 1..];
            let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
            let mut out = Vec::with_capacity(body.len() + 48);
            out.extend_from_slice(&body[..=open]);
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
            if !empty {
                out.push(b',');
            }
            out.extend_from_slice(rest);
            return Ok(Bytes::from(out));
        }
    }
    let mut doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
    let options = doc
        .entry("stream_options")
        .or_insert_with(|| serde_json::json!({}));
    if !options.is_object() {
        // `null` (or junk) would leave the usage chunk unasked for.
        *options = serde_json::json!({});
    }
    if let Some(o) = options.as_object_mut() {
        o.insert("include_usage".into(), serde_json::Value::Bool(true));
    }
    Ok(Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::with_stream_usage;
    use bytes::Bytes;
    use serde_json::{json, Value};

    fn asked(body: &str) -> Value {
        let out = with_stream_usage(Bytes::from(body.to_string())).expect("rewrites");
        serde_json::from_slice(&out).expect("still JSON")
    }

    #[test]
    fn the_usage_chunk_is_requested_without_changing_the_rest_of_the_body() {
        let body = json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "a \"stream_options\" text"}]});
        let mut expected = body.clone();
        expected["stream_options"] = json!({"include_usage": true});
        assert_eq!(asked(&body.to_string()), expected);
        let plain = json!({"model": "gpt-x", "stream": true, "n": 1});
        let mut expected = plain.clone();
        expected["stream_options"] = json!({"include_usage": true});
        assert_eq!(asked(&format!("  \n{plain}")), expected);
        assert_eq!(
            asked("{ }"),
            json!({"stream_options": {"include_usage": true}})
        );
    }

    #[test]
    fn stream_options_the_caller_sent_are_kept_and_completed() {
        assert_eq!(
            asked(r#"{"stream_options": null, "stream": true}"#)["stream_options"],
            json!({"include_usage": true})
        );
        assert_eq!(
            asked(r#"{"stream_options": {"include_usage": false, "x": 1}}"#)["stream_options"],
            json!({"include_usage": true, "x": 1})
        );
    }
}
