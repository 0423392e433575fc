//! The API surfaces callers use: one module per door.

pub mod account;
pub mod bedrock;
pub mod chat;
pub mod claude;
pub mod gemini;
pub mod info;
pub mod passthrough;

use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::upstream::{
    answer_headers, passthrough_body, read_body, StreamProtocol, UpstreamResponse,
};
use bytes::Bytes;
use http::{HeaderMap, Response};
use serde::Deserialize;
use std::borrow::Cow;

/// Query parameters that may carry a caller's credential (any case, any encoding of
/// the name): they never travel to a provider, whose own key the gateway sends.
const CREDENTIAL_PARAMS: [&str; 4] = ["key", "api_key", "api-key", "access_token"];

/// The caller's query as a provider may see it: every parameter but credentials.
pub fn forwardable_query(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            !pair.is_empty()
                && !CREDENTIAL_PARAMS
                    .iter()
                    .any(|c| name.trim().eq_ignore_ascii_case(c))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The fields routing and admission need, read without building the whole document.
#[derive(Deserialize)]
pub struct ModelPeek<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// `null` is what OpenAI's own SDK sends for "not set".
    #[serde(default, deserialize_with = "null_as_false")]
    pub stream: bool,
    #[serde(default, deserialize_with = "token_count")]
    pub max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub stream_options: Option<StreamOptionsPeek>,
    #[serde(default)]
    pub messages: Option<Count>,
    #[serde(default)]
    pub temperature: Option<f64>,
}

fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// A token count as providers accept it: an integer, or a whole-valued number such as
/// `100.0` (which would otherwise slip past the limits unread).
pub(crate) fn token_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => match (n.as_u64(), n.as_f64()) {
            (Some(whole), _) => Ok(Some(whole)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            _ => Err(D::Error::custom(format!(
                "a token count must be a whole number of 0 or more, not {n}"
            ))),
        },
    }
}

/// The length of a JSON array, counted without building its elements.
pub struct Count(pub usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(Counter)
    }
}

#[derive(Deserialize)]
pub struct StreamOptionsPeek {
    #[serde(default)]
    pub include_usage: bool,
}

/// A request routed and admitted.
pub struct Routed {
    /// The model the caller named.
    pub model: String,
    pub resolved: crate::routing::Resolved,
    /// An OpenAI caller's stream asked for the final usage chunk itself.
    pub wants_usage_chunk: bool,
    pub temperature: Option<f64>,
}

impl ModelPeek<'_> {
    /// The larger of the two fields: an upstream may honour either.
    pub fn max_output_tokens(&self) -> Option<u64> {
        match (self.max_completion_tokens, self.max_tokens) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

pub(crate) fn peek_model(body: &[u8]) -> Result<ModelPeek<'_>, GatewayError> {
    read_request(body)
}

/// A request body as every surface must take it: a JSON object in valid UTF-8, read
/// into `T` strictly (a duplicate key is an error), so that no body the gateway could
/// not read is forwarded unadmitted for a provider to read its own way.
pub(crate) fn read_request<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, GatewayError> {
    // Derived structs also deserialise from JSON arrays; a request must be an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(GatewayError::InvalidRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    // Skipped fields are not checked for UTF-8 by the peek; a provider would refuse them.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(GatewayError::MalformedJson(format!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        )));
    }
    serde_json::from_slice(body).map_err(|e| GatewayError::MalformedJson(e.to_string()))
}

/// Refuses conversations no real client sends: they would only tie up a provider to
/// fail there. (`max_tokens` is held to its limit at admission, on every surface.)
pub(crate) fn within_request_limits(
    settings: &ai_gateway_snapshot::GatewaySettings,
    peek: &ModelPeek<'_>,
) -> Result<(), GatewayError> {
    match &peek.messages {
        Some(Count(n)) => within_message_limit(settings, *n),
        None => Ok(()),
    }
}

/// The message-count limit, for surfaces that count their turns their own way
/// (Gemini's `contents`, Bedrock's `messages`).
pub(crate) fn within_message_limit(
    settings: &ai_gateway_snapshot::GatewaySettings,
    messages: usize,
) -> Result<(), GatewayError> {
    if messages > settings.max_messages as usize {
        return Err(GatewayError::InvalidRequest(format!(
            "messages: {messages} messages exceed this gateway's limit of {}",
            settings.max_messages
        )));
    }
    Ok(())
}

pub(crate) fn required_model<'a>(peek: &'a ModelPeek<'_>) -> Result<&'a str, GatewayError> {
    let model = peek
        .model
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| GatewayError::InvalidRequest("model: is required".into()))?;
    crate::routing::check_model_name(model)?;
    Ok(model)
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

/// A native surface (Bedrock's runtime API, Gemini's) speaks only to its own kind of
/// provider.
pub fn require_native(
    resolved: &crate::routing::Resolved,
    kind: ai_gateway_snapshot::ProviderKind,
    api: &str,
) -> Result<(), GatewayError> {
    if resolved.provider.kind == kind {
        return Ok(());
    }
    Err(GatewayError::Unsupported {
        what: format!(
            "serving {api} from a {} provider (`{}`)",
            resolved.provider.kind.as_str(),
            resolved.provider.name
        ),
    })
}

/// A cacheable call's key, and the cached answer when there is one.
pub async fn from_cache(
    compiled: &crate::compiled::CompiledConfig,
    services: &crate::state::Services,
    ctx: &mut crate::context::RequestContext,
    routed: &Routed,
    headers: &HeaderMap,
    body: &[u8],
) -> (Option<crate::cache::Lookup>, Option<Response<ResponseBody>>) {
    let Some(lookup) = crate::cache::lookup_for(
        &compiled.snapshot.cache,
        ctx,
        &routed.resolved,
        routed.temperature,
        headers,
        body,
    ) else {
        return (None, None);
    };
    let hit = services.cache.get(&lookup.key, lookup.ttl).await;
    ctx.cache_hit = Some(hit.is_some());
    let result = if hit.is_some() { "hit" } else { "miss" };
    services
        .metrics
        .cache_lookups
        .get_or_create(&vec![("result", result.to_string())])
        .inc();
    let answer = hit.map(|cached| crate::cache::replay(&cached, ctx));
    (Some(lookup), answer)
}

/// Keeps a served answer for the next identical call, once it has reached the caller.
pub fn into_cache(
    services: &crate::state::Services,
    ctx: &crate::context::RequestContext,
    lookup: Option<&crate::cache::Lookup>,
    served: Result<Response<ResponseBody>, GatewayError>,
) -> Result<Response<ResponseBody>, GatewayError> {
    match (served, lookup) {
        (Ok(response), Some(lookup)) => Ok(services.cache.fill(lookup, ctx, response)),
        (served, _) => served,
    }
}

/// Routes a request by the `model` in its JSON body; returns the caller's model name
/// and where it goes, once the caller's rate limits have admitted it.
pub async fn route_by_body(
    compiled: &crate::compiled::CompiledConfig,
    services: &crate::state::Services,
    ctx: &mut crate::context::RequestContext,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Routed, GatewayError> {
    let peek = peek_model(body)?;
    let model = required_model(&peek)?.to_string();
    within_request_limits(&compiled.snapshot.gateway, &peek)?;
    let resolved = compiled.routes.resolve(&model, forced_provider(headers))?;
    ctx.routed(&resolved.provider.name, &resolved.upstream_model);
    ctx.model = Some(model.clone());
    ctx.stream = peek.stream;
    crate::admission::admit(
        compiled,
        services,
        ctx,
        &resolved,
        body.len(),
        peek.max_output_tokens(),
    )
    .await?;
    Ok(Routed {
        model,
        resolved,
        wants_usage_chunk: peek
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage),
        temperature: peek.temperature,
    })
}

/// A routed request's provider, then its fallbacks in order.
pub struct FallbackChain {
    targets: std::vec::IntoIter<crate::routing::Resolved>,
    tried: usize,
}

impl FallbackChain {
    pub fn new(compiled: &crate::compiled::CompiledConfig, routed: &Routed) -> Self {
        let mut targets = vec![routed.resolved.clone()];
        targets.extend(compiled.routes.fallbacks(&routed.model, &routed.resolved));
        Self {
            targets: targets.into_iter(),
            tried: 0,
        }
    }

    /// The next provider to try and whether another is left after it; the request is
    /// re-pointed (audit, metrics, price) at any provider but the first.
    pub fn next_target(
        &mut self,
        services: &crate::state::Services,
        ctx: &mut crate::context::RequestContext,
    ) -> Option<(crate::routing::Resolved, bool)> {
        let target = self.targets.next()?;
        if self.tried > 0 {
            ctx.routed(&target.provider.name, &target.upstream_model);
            ctx.price = services
                .prices
                .price(&target.provider, &target.upstream_model);
        }
        self.tried += 1;
        Some((target, self.targets.len() > 0))
    }

    /// Whether an attempt's outcome moves the request on to the next provider; records
    /// the failover when it does.
    pub fn fails_over(
        ctx: &mut crate::context::RequestContext,
        target: &crate::routing::Resolved,
        fallback_left: bool,
        served: &Result<Response<ResponseBody>, GatewayError>,
    ) -> bool {
        match served {
            Err(e) if fallback_left && e.allows_fallback() => {
                tracing::warn!(provider = %target.provider.name, error = %e, "falling back");
                ctx.fallbacks.push(target.provider.name.clone());
                true
            }
            _ => false,
        }
    }
}

/// Asks an OpenAI-compatible upstream for the usage chunk at the end of a stream, so
/// the call can be metered even when the caller did not ask for it.
pub fn with_stream_usage(body: Bytes) -> Result<Bytes, GatewayError> {
    // Most callers send no `stream_options`: splice the member in after the opening
    // brace rather than re-serialise the whole body (the caller's JSON was already
    // parsed once to route it).
    if memchr::memmem::find(&body, b"\"stream_options\"").is_none() {
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

pub fn forced_provider(headers: &HeaderMap) -> Option<&str> {
    const X_PROVIDER: http::HeaderName = http::HeaderName::from_static("x-provider");
    headers
        .get(X_PROVIDER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The upstream's own response, status, headers and body, streamed back unchanged,
/// with the usage it reports recorded in `usage`. A plain (non-stream) answer is read
/// whole first: it is small, and its usage is owed even if the caller never reads it.
pub async fn proxied(
    provider: &str,
    mut resp: UpstreamResponse,
    protocol: StreamProtocol,
    usage: std::sync::Arc<crate::settle::UsageCell>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let status = resp.status();
    let headers = answer_headers(&mut resp);
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Only a stream can end early; a plain JSON answer is forwarded as it is.
    let streams = match protocol {
        StreamProtocol::Ndjson => content_type.starts_with("application/x-ndjson"),
        StreamProtocol::AwsEventStream => {
            content_type.starts_with("application/vnd.amazon.eventstream")
        }
        _ => content_type.starts_with("text/event-stream"),
    };
    let body = if streams {
        passthrough_body(resp, protocol, usage)
    } else {
        let bytes = read_body(resp)
            .await
            .map_err(|e| GatewayError::UpstreamProtocol {
                provider: provider.to_string(),
                detail: format!("the answer broke off: {e}"),
            })?;
        if status.is_success() {
            // Bedrock InvokeModel of non-Anthropic models counts tokens in headers only.
            if let Some(u) = crate::translate::usage::usage_from_bytes(&bytes)
                .or_else(|| crate::translate::usage::usage_from_bedrock_headers(&headers))
            {
                usage.report(u);
            }
        }
        usage.capture_response(&bytes);
        crate::body::full(bytes)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A translated JSON answer, kept for the audit record when bodies are logged.
pub fn json_answer(
    ctx: &crate::context::RequestContext,
    value: &serde_json::Value,
) -> Response<ResponseBody> {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    ctx.usage.capture_response(&bytes);
    let mut response = Response::new(crate::body::full(bytes));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

pub fn event_stream_response(body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

/// Reads a complete upstream JSON answer into `T`.
pub async fn upstream_json<T: serde::de::DeserializeOwned>(
    provider: &str,
    resp: UpstreamResponse,
) -> Result<T, GatewayError> {
    let bytes = read_body(resp)
        .await
        .map_err(|e| GatewayError::UpstreamProtocol {
            provider: provider.to_string(),
            detail: e,
        })?;
    serde_json::from_slice(&bytes).map_err(|e| GatewayError::UpstreamProtocol {
        provider: provider.to_string(),
        detail: e.to_string(),
    })
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

#[cfg(test)]
mod query_tests {
    use super::forwardable_query;

    #[test]
    fn the_callers_credentials_are_dropped_from_the_query_in_any_spelling() {
        assert_eq!(
            forwardable_query(Some("alt=sse&key=gw_1")).as_deref(),
            Some("alt=sse")
        );
        assert_eq!(forwardable_query(Some("key=gw_1")), None);
        for spelling in [
            "KEY=gw_1",
            "Key=gw_1",
            "%6Bey=gw_1",
            "api_key=gw_1",
            "access_token=t",
        ] {
            assert_eq!(
                forwardable_query(Some(&format!("a=1&{spelling}&b=2"))).as_deref(),
                Some("a=1&b=2"),
                "{spelling}"
            );
        }
        assert_eq!(forwardable_query(Some("keys=1")).as_deref(), Some("keys=1"));
    }
}
