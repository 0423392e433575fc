//! `/v1/gemini/*`: the Gemini API as google-genai and curl call it, with the caller's
//! key swapped for the route's. The model named in the path is routed (and aliased)
//! like any other.

use super::{Answer, Inbound};
use crate::context::{Endpoint, RequestContext};
use crate::exchange::{attempt, Door, Exchange};
use crate::read::{token_count, Count};
use crate::state::Serving;
use crate::upstream::paths::is_plain_segment;
use http::Method;
use serde::Deserialize;

/// Model methods that generate or count (Vertex AI serves the same ones for Google's
/// models); the rest of the API (files, tuning, caches)
/// would spend the key outside routing and limits.
pub(super) const METHODS: &[&str] = &[
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
];

/// `/v1beta/models/gemini-2.5-flash:generateContent` → its parts; a path without an
/// API version gets `v1beta`, the version the Gemini docs use.
pub(super) struct ModelCall<'a> {
    pub version: &'a str,
    pub model: &'a str,
    pub method: &'a str,
}

/// The fields of a Gemini request the gateway holds to its limits.
#[derive(Deserialize)]
struct RequestLimits {
    #[serde(default)]
    contents: Option<Count>,
    #[serde(rename = "generationConfig", default)]
    generation_config: Option<GenerationLimits>,
}

#[derive(Deserialize)]
struct GenerationLimits {
    /// Protobuf's JSON mapping lets it be a string ("8192"), which Gemini accepts.
    #[serde(
        rename = "maxOutputTokens",
        default,
        deserialize_with = "count_or_text"
    )]
    max_output_tokens: Option<u64>,
}

fn count_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("maxOutputTokens: `{text}` is not a count"))),
        Some(other) => token_count(other).map_err(D::Error::custom),
    }
}

/// The API versions Gemini serves: a path naming another is not passed on.
const VERSIONS: [&str; 3] = ["v1", "v1beta", "v1alpha"];

fn parse(rest: &str) -> Option<ModelCall<'_>> {
    let rest = rest.strip_prefix('/')?;
    let (version, rest) = match rest.split_once('/') {
        Some((v, r)) if VERSIONS.contains(&v) => (v, r),
        Some((v, _)) if v.starts_with('v') && v[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            return None
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

pub async fn handle(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    inbound: Inbound<'_>,
) -> Answer {
    let call = parse(inbound.rest)
        .filter(|_| inbound.method == Method::POST)
        .ok_or_else(|| inbound.not_found("/v1/gemini"))?;
    model_call(serving, ctx, &inbound, call).await
}

/// A Gemini model method, whichever door named it (`/v1/gemini`, or Vertex AI's
/// publisher path for Google's models).
pub(super) async fn model_call(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    inbound: &Inbound<'_>,
    call: ModelCall<'_>,
) -> Answer {
    let resolved = serving
        .compiled
        .routes
        .resolve(call.model, crate::resolve::forced_provider(inbound.headers))?;
    let door = Door::GeminiApi {
        version: call.version,
        method: call.method,
    };
    Exchange::for_pair(door, &resolved.provider, &resolved.upstream_model)?;
    ctx.calls(Endpoint::GeminiNative);
    ctx.routed(&resolved.provider.name, &resolved.upstream_model);
    ctx.asks_for(
        call.model.to_string(),
        call.method == "streamGenerateContent",
    );
    let limits: RequestLimits = crate::read::read_request(&inbound.body)?;
    if let Some(Count(n)) = limits.contents {
        crate::resolve::within_message_limit(&serving.compiled.snapshot.gateway, n)?;
    }
    let max_output = limits.generation_config.and_then(|c| c.max_output_tokens);
    super::admit(serving, ctx, &resolved, &inbound.body, max_output).await?;
    let skilled = crate::intelligence::skills::native_body(
        &serving.compiled.skills,
        inbound.headers,
        &inbound.body,
        crate::intelligence::system_prompt::SystemPrompt::GeminiInstruction,
    )?;
    let call = crate::exchange::Call {
        body: skilled.as_ref().unwrap_or(&inbound.body),
        ..inbound.call(serving, ctx, door, call.model)
    };
    attempt(&call, &resolved, ctx, false).await
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
