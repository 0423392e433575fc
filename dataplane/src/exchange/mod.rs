//! The exchange with a provider: one home per (door, provider API) pair.
//!
//! [`Exchange::for_pair`] is the whole matrix of what the gateway can serve. Each pair
//! owns, in its own file, the upstream path and headers, the request body, the plain
//! answer, the stream and the usage it reports; [`attempt`] is the one skeleton every
//! pair runs in, and [`fallback::serve`] the one loop over a route's providers.

mod answer;
pub mod anthropic_bedrock;
pub mod anthropic_openai;
pub mod fallback;
pub mod openai_anthropic;
pub mod openai_bedrock;
pub mod openai_gemini;
pub mod passthrough;
pub mod vertex;

pub use answer::{event_stream_response, json_answer, proxied};

use crate::body::ResponseBody;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::metered::UsageCell;
use crate::routing::Resolved;
use crate::translate::{TokenUsage, TranslateError};
use crate::upstream::paths::{is_google_model, VertexLocation};
use crate::upstream::{
    unless_failing, upstream_error, StreamProtocol, Upstream, UpstreamRequest, UpstreamResponse,
};
use ai_gateway_snapshot::ProviderKind;
use bytes::Bytes;
use http::{HeaderMap, Response};
use std::sync::Arc;

/// The API a caller speaks, named by the door it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door<'a> {
    /// `/v1/chat/completions`: OpenAI chat, served by any provider.
    OpenAiChat,
    /// `/v1/claude/v1/…`: the Anthropic API (Messages, served by Claude anywhere or
    /// translated), at the upstream path the caller's maps to.
    AnthropicMessages { path: &'a str },
    /// `/v1/bedrock/model/{id}/{operation}`: the Bedrock runtime API.
    BedrockRuntime { operation: &'a str },
    /// `/v1/gemini/{version}/models/{model}:{method}`: the Gemini API.
    GeminiApi { version: &'a str, method: &'a str },
    /// `/v1/openai/*` and `/v1/ollama/*`: a provider's own API, at the path the caller used.
    ProviderApi { path: &'a str },
}

impl Door<'_> {
    /// The API's name, as refusals say it.
    fn api(self) -> &'static str {
        match self {
            Self::OpenAiChat => "chat completions",
            Self::AnthropicMessages { .. } => "the Messages API",
            Self::BedrockRuntime { .. } => "the Bedrock runtime API",
            Self::GeminiApi { .. } => "the Gemini API",
            Self::ProviderApi { .. } => "a provider's own API",
        }
    }
}

/// What an attempt needs of the call, whichever provider serves it.
pub struct Call<'a> {
    pub door: Door<'a>,
    pub method: http::Method,
    /// The model the caller named.
    pub model: &'a str,
    pub stream: bool,
    /// An OpenAI caller asked for the final usage chunk itself.
    pub wants_usage_chunk: bool,
    pub headers: &'a HeaderMap,
    /// The query the caller sent, credentials removed.
    pub query: Option<&'a str>,
    pub body: &'a Bytes,
    /// `gateway.default_max_tokens`, for APIs that require an output cap.
    pub default_max_tokens: u32,
    /// The body carries a Vertex caller's `anthropic_version`, dropped for Anthropic.
    pub anthropic_version: bool,
    /// A chat call served by Claude gets prompt-cache breakpoints (`token_reduction`).
    pub cache_breakpoints: bool,
}

/// What a translated request needs to know of the provider that serves it.
pub struct Target<'a> {
    /// The provider's id for the model.
    pub model: &'a str,
    pub kind: ProviderKind,
    /// The output cap an API that requires one gets when the caller set none.
    pub default_max_tokens: u32,
    /// The provider's own ceiling (`max_output_tokens`), applied to every translated call.
    pub max_output_tokens: Option<u32>,
    /// Set when the provider is Vertex AI: the API is reached through its publisher paths.
    pub vertex: Option<VertexLocation<'a>>,
}

impl<'a> Target<'a> {
    pub fn of(call: &Call<'_>, resolved: &'a Resolved) -> Self {
        Self {
            model: &resolved.upstream_model,
            kind: resolved.provider.kind,
            default_max_tokens: call.default_max_tokens,
            max_output_tokens: resolved.provider.config.max_output_tokens,
            vertex: resolved.provider.vertex(),
        }
    }

    /// The output cap a translated request carries: the caller's, within the provider's.
    pub fn output_tokens(&self, asked: u32) -> u32 {
        self.max_output_tokens.map_or(asked, |cap| asked.min(cap))
    }
}

/// One attempt's exchange: passed through, or translated by a pair.
pub enum Exchange {
    /// The provider speaks the caller's API: the answer, stream and errors (when no
    /// fallback is left) go back as the provider sent them, metered as `protocol` says.
    Passthrough {
        protocol: StreamProtocol,
    },
    Translated(Pair),
}

/// A pair of different APIs, and what its answer needs from the request.
pub enum Pair {
    /// OpenAI chat served by the Anthropic Messages API.
    ChatToAnthropic,
    /// OpenAI chat served by Bedrock's Converse API.
    ChatToConverse,
    /// OpenAI chat served by the Gemini API.
    ChatToGemini,
    /// Anthropic Messages served by an OpenAI-compatible chat API; the prompt's estimated
    /// tokens open the translated stream.
    MessagesToChat { input_estimate: u64 },
    /// Anthropic Messages served by Claude on Bedrock's InvokeModel.
    MessagesToInvoke,
}

/// Providers that take OpenAI chat completions.
const OPENAI_LIKE: [ProviderKind; 4] = [
    ProviderKind::Openai,
    ProviderKind::OpenaiCompatible,
    ProviderKind::AzureOpenai,
    ProviderKind::Ollama,
];

impl Exchange {
    /// The matrix: how a door is served by a kind of provider (for Vertex AI, by whose
    /// model it is: Google's or Anthropic's).
    pub fn for_pair(
        door: Door<'_>,
        provider: &Upstream,
        model: &str,
    ) -> Result<Self, GatewayError> {
        use ProviderKind as Kind;
        let openai_like = OPENAI_LIKE.contains(&provider.kind);
        let google_model = is_google_model(model);
        let passthrough = Self::Passthrough {
            protocol: StreamProtocol::OpenAiSse,
        };
        let pair = match (door, provider.kind) {
            (Door::OpenAiChat, _) if openai_like => return Ok(passthrough),
            (Door::OpenAiChat, Kind::Anthropic) => Pair::ChatToAnthropic,
            (Door::OpenAiChat, Kind::Bedrock) => Pair::ChatToConverse,
            (Door::OpenAiChat, Kind::Gemini) => Pair::ChatToGemini,
            (Door::OpenAiChat, Kind::Vertex) if google_model => Pair::ChatToGemini,
            (Door::OpenAiChat, Kind::Vertex) => Pair::ChatToAnthropic,
            (Door::AnthropicMessages { .. }, Kind::Anthropic) => return Ok(passthrough),
            (Door::AnthropicMessages { .. }, Kind::Vertex) if !google_model => {
                return Ok(passthrough)
            }
            (Door::GeminiApi { .. }, Kind::Vertex) if google_model => return Ok(passthrough),
            (Door::AnthropicMessages { .. }, Kind::Bedrock) => Pair::MessagesToInvoke,
            (Door::AnthropicMessages { .. }, _) if openai_like => {
                Pair::MessagesToChat { input_estimate: 0 }
            }
            (Door::BedrockRuntime { .. }, Kind::Bedrock)
            | (Door::GeminiApi { .. }, Kind::Gemini)
            | (Door::ProviderApi { .. }, _) => return Ok(passthrough),
            (door, kind) => {
                return Err(GatewayError::Unsupported {
                    what: format!(
                        "serving {} from a {} provider (`{}`)",
                        door.api(),
                        kind.as_str(),
                        provider.name
                    ),
                })
            }
        };
        Ok(Self::Translated(pair))
    }

    /// The upstream call; a passthrough learns here how its answer is metered.
    fn request(
        &mut self,
        call: &Call<'_>,
        resolved: &Resolved,
    ) -> Result<UpstreamRequest, GatewayError> {
        match self {
            Self::Passthrough { protocol } => {
                let (request, metered_as) = passthrough::request(call, resolved)?;
                *protocol = metered_as;
                Ok(request)
            }
            Self::Translated(pair) => pair.request(call, resolved),
        }
    }
}

impl Pair {
    fn request(
        &mut self,
        call: &Call<'_>,
        resolved: &Resolved,
    ) -> Result<UpstreamRequest, GatewayError> {
        let target = Target::of(call, resolved);
        match self {
            Self::ChatToAnthropic => openai_anthropic::upstream_request(call, &target),
            Self::ChatToConverse => openai_bedrock::upstream_request(call, &target),
            Self::ChatToGemini => openai_gemini::upstream_request(call, &target),
            Self::MessagesToChat { input_estimate } => {
                let (request, estimate) =
                    anthropic_openai::upstream_request(call, &resolved.provider, &target)?;
                *input_estimate = estimate;
                Ok(request)
            }
            Self::MessagesToInvoke => anthropic_bedrock::upstream_request(call, &target),
        }
    }

    /// The stream, in the caller's API.
    fn stream(
        &self,
        call: &Call<'_>,
        resp: UpstreamResponse,
        usage: Arc<UsageCell>,
    ) -> ResponseBody {
        use crate::upstream::{eventstream_translated, translated_body};
        let (model, usage_chunk) = (call.model, call.wants_usage_chunk);
        match *self {
            Self::ChatToAnthropic => {
                let translator = openai_anthropic::StreamToOpenAi::new(model, usage_chunk);
                translated_body(resp, Box::new(translator), usage)
            }
            Self::ChatToConverse => {
                let translator = openai_bedrock::StreamToOpenAi::new(model, usage_chunk);
                eventstream_translated(resp, Box::new(translator), usage)
            }
            Self::ChatToGemini => {
                let translator = openai_gemini::StreamToOpenAi::new(model, usage_chunk);
                translated_body(resp, Box::new(translator), usage)
            }
            Self::MessagesToChat { input_estimate } => {
                let translator = anthropic_openai::StreamToAnthropic::new(model, input_estimate);
                translated_body(resp, Box::new(translator), usage)
            }
            Self::MessagesToInvoke => {
                let translator = anthropic_bedrock::InvokeStreamToMessages::default();
                eventstream_translated(resp, Box::new(translator), usage)
            }
        }
    }

    /// The whole answer, in the caller's API.
    fn plain(&self, call: &Call<'_>, answer: &Bytes) -> Translated {
        let model = call.model;
        match self {
            Self::ChatToAnthropic => Translated::of(
                answer,
                model,
                openai_anthropic::usage,
                openai_anthropic::response,
            ),
            Self::ChatToConverse => Translated::of(
                answer,
                model,
                openai_bedrock::usage,
                openai_bedrock::response,
            ),
            Self::ChatToGemini => {
                Translated::of(answer, model, openai_gemini::usage, openai_gemini::response)
            }
            Self::MessagesToChat { .. } => Translated::of(
                answer,
                model,
                anthropic_openai::usage,
                anthropic_openai::response,
            ),
            // Claude on Bedrock answers in the Messages API already.
            Self::MessagesToInvoke => Translated {
                usage: crate::translate::usage::usage_from_bytes(answer),
                body: Ok(answer.clone()),
            },
        }
    }
}

/// A whole answer as the caller reads it, and the usage it cost.
pub struct Translated {
    pub usage: Option<TokenUsage>,
    pub body: Result<Bytes, String>,
}

impl Translated {
    /// The provider's answer parsed as `T`, with the usage it reports, then translated.
    fn of<T: serde::de::DeserializeOwned>(
        answer: &[u8],
        client_model: &str,
        usage: fn(&T) -> Option<TokenUsage>,
        translate: fn(&T, &str) -> Result<serde_json::Value, TranslateError>,
    ) -> Self {
        match serde_json::from_slice::<T>(answer) {
            Err(e) => Self {
                usage: None,
                body: Err(e.to_string()),
            },
            Ok(parsed) => Self {
                usage: usage(&parsed),
                body: translate(&parsed, client_model)
                    .map(|v| Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
                    .map_err(|e| e.to_string()),
            },
        }
    }
}

/// A request body the pair's API cannot take, named by its field.
pub(crate) fn invalid(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::InvalidRequest(e.to_string())
}

/// The caller's body as the typed request of its API.
pub(crate) fn parse<'a, T: serde::Deserialize<'a>>(call: &'a Call<'_>) -> Result<T, GatewayError> {
    serde_json::from_slice(call.body).map_err(invalid)
}

/// One attempt at one provider: the skeleton every pair runs in.
pub async fn attempt(
    call: &Call<'_>,
    resolved: &Resolved,
    ctx: &RequestContext,
    fallback_left: bool,
) -> Result<Response<ResponseBody>, GatewayError> {
    let provider = &resolved.provider;
    let mut exchange = Exchange::for_pair(call.door, provider, &resolved.upstream_model)?;
    let request = exchange.request(call, resolved)?;
    let resp = provider.send(request, ctx.request_id()).await?;
    let pair = match exchange {
        Exchange::Passthrough { protocol } => {
            let resp = unless_failing(&provider.name, resp, fallback_left).await?;
            return proxied(&provider.name, resp, protocol, ctx.usage().clone()).await;
        }
        Exchange::Translated(pair) => pair,
    };
    if !resp.status().is_success() {
        return Err(upstream_error(&provider.name, resp).await);
    }
    if call.stream {
        return Ok(event_stream_response(pair.stream(
            call,
            resp,
            ctx.usage().clone(),
        )));
    }
    let protocol_error = |detail: String| GatewayError::UpstreamProtocol {
        provider: provider.name.clone(),
        detail,
    };
    let answer = crate::upstream::read_body(resp)
        .await
        .map_err(protocol_error)?;
    let translated = pair.plain(call, &answer);
    if let Some(usage) = translated.usage {
        ctx.usage().report(usage);
    }
    Ok(json_answer(ctx, translated.body.map_err(protocol_error)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The output-token field each translated pair writes, read back from its body.
    fn sent_cap(kind: ProviderKind, chat: bool, asked: u32) -> u64 {
        let target = Target {
            model: "m",
            kind,
            default_max_tokens: 4096,
            max_output_tokens: Some(1000),
            vertex: None,
        };
        let body: Value = if chat {
            let req = json!({"model": "m", "max_tokens": asked, "messages": [{"role": "user", "content": "hi"}]});
            let req = serde_json::from_value(req).expect("chat request");
            match kind {
                ProviderKind::Anthropic => openai_anthropic::request(&req, &target),
                ProviderKind::Bedrock => openai_bedrock::request(&req, &target),
                _ => openai_gemini::request(&req, &target),
            }
            .expect("translates")
        } else {
            let req = json!({"model": "m", "max_tokens": asked, "messages": [{"role": "user", "content": "hi"}]});
            match kind {
                ProviderKind::Bedrock => {
                    let body = req.to_string();
                    let messages = anthropic_bedrock::Messages {
                        body: body.as_bytes(),
                        anthropic_beta: None,
                    };
                    let out = anthropic_bedrock::request(&messages, &target).expect("translates");
                    serde_json::from_slice(&out).expect("json")
                }
                _ => {
                    let req = serde_json::from_value(req).expect("messages request");
                    anthropic_openai::request(&req, &target).expect("translates")
                }
            }
        };
        let sent = [
            body["max_tokens"].as_u64(),
            body["max_completion_tokens"].as_u64(),
            body["inferenceConfig"]["maxTokens"].as_u64(),
            body["generationConfig"]["maxOutputTokens"].as_u64(),
        ];
        sent.into_iter()
            .flatten()
            .next()
            .expect("an output cap is sent")
    }

    #[test]
    fn the_providers_output_ceiling_holds_on_every_translated_pair() {
        let pairs = [
            (ProviderKind::Anthropic, true),
            (ProviderKind::Bedrock, true),
            (ProviderKind::Gemini, true),
            (ProviderKind::Openai, false),
            (ProviderKind::Ollama, false),
            (ProviderKind::Bedrock, false),
        ];
        for (kind, chat) in pairs {
            assert_eq!(sent_cap(kind, chat, 5000), 1000, "{kind:?} chat={chat}");
            assert_eq!(sent_cap(kind, chat, 300), 300, "{kind:?} chat={chat}");
        }
    }
}
