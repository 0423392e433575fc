//! `/v1/vertex/*`: Vertex AI's publisher model paths as Claude Code
//! (`CLAUDE_CODE_USE_VERTEX=1`, `ANTHROPIC_VERTEX_BASE_URL=…/v1/vertex/v1`), the Anthropic
//! SDK's `AnthropicVertex` and google-genai's `vertexai=True` client call them:
//! `/{v1,v1beta1}/projects/{p}/locations/{l}/publishers/{anthropic,google}/models/{model}:{method}`.
//! The caller's project and location are accepted and not forwarded: the model in the
//! path is routed like any other, so the call may be served by Anthropic, Bedrock,
//! Vertex AI or any provider that speaks the caller's API.

use super::gemini_api::{self, ModelCall};
use super::{anthropic_messages, Answer, Inbound};
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::exchange::vertex;
use crate::state::Serving;
use bytes::Bytes;
use http::Method;
use serde_json::{Map, Value};

/// A publisher model call, parsed from the path after `/v1/vertex`.
#[derive(Debug, PartialEq, Eq)]
struct PublisherCall<'a> {
    publisher: &'a str,
    model: &'a str,
    method: &'a str,
}

const VERSIONS: [&str; 2] = ["v1", "v1beta1"];
const ANTHROPIC_METHODS: [&str; 2] = ["rawPredict", "streamRawPredict"];

fn parse(rest: &str) -> Option<PublisherCall<'_>> {
    let segments: Vec<&str> = rest.strip_prefix('/')?.split('/').collect();
    let [version, "projects", project, "locations", location, "publishers", publisher, "models", call] =
        segments[..]
    else {
        return None;
    };
    if !VERSIONS.contains(&version) || project.is_empty() || location.is_empty() {
        return None;
    }
    let (model, method) = call.split_once(':')?;
    if model.is_empty() {
        return None;
    }
    let known = match publisher {
        "anthropic" => ANTHROPIC_METHODS.contains(&method),
        "google" => gemini_api::METHODS.contains(&method),
        _ => false,
    };
    known.then_some(PublisherCall {
        publisher,
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
        .ok_or_else(|| inbound.not_found("/v1/vertex"))?;
    match call.publisher {
        "google" => {
            let call = ModelCall {
                version: "v1beta",
                model: call.model,
                method: call.method,
            };
            gemini_api::model_call(serving, ctx, &inbound, call).await
        }
        // Vertex counts Claude's tokens at a model of its own; the body names the model.
        _ if call.model == "count-tokens" => {
            let mut inbound = as_messages(&inbound, |doc| {
                doc.remove("anthropic_version");
            })?;
            anthropic_messages::count_tokens(serving, ctx, &mut inbound).await
        }
        _ => {
            let stream = call.method == "streamRawPredict";
            let mut inbound = as_messages(&inbound, |doc| {
                *doc = vertex::from_vertex(std::mem::take(doc), call.model, stream);
            })?;
            anthropic_messages::messages(serving, ctx, &mut inbound).await
        }
    }
}

/// The Vertex caller's request as the Messages API takes it.
fn as_messages<'a>(
    inbound: &Inbound<'a>,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> Result<Inbound<'a>, GatewayError> {
    let mut doc: Map<String, Value> = crate::read::read_request(&inbound.body)?;
    edit(&mut doc);
    Ok(Inbound {
        method: Method::POST,
        rest: "/v1/messages",
        query: None,
        headers: inbound.headers,
        body: Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_paths_parse_as_the_vertex_clients_send_them() {
        let c = parse("/v1/projects/p-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict")
            .expect("parses");
        assert_eq!(
            c,
            PublisherCall {
                publisher: "anthropic",
                model: "claude-sonnet-4-5@20250929",
                method: "streamRawPredict"
            }
        );
        let c = parse("/v1beta1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:generateContent")
            .expect("parses");
        assert_eq!((c.publisher, c.model), ("google", "gemini-2.5-flash"));
        for refused in [
            "/v1/projects/p/locations/l/publishers/anthropic/models/claude:deleteModel",
            "/v1/projects/p/locations/l/publishers/meta/models/llama:rawPredict",
            "/v1/projects/p/locations/l/endpoints/e:predict",
            "/v2/projects/p/locations/l/publishers/google/models/gemini:generateContent",
            "/v1/projects//locations/l/publishers/google/models/gemini:generateContent",
            "/v1/projects/p/locations/l/publishers/google/models/gemini:generateContent/x",
        ] {
            assert!(parse(refused).is_none(), "{refused}");
        }
    }
}
