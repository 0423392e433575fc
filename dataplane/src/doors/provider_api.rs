//! `/v1/openai/*` and `/v1/ollama/*`: a provider's native API, forwarded as is with the
//! provider's credentials in place of the caller's.

use super::{Answer, Inbound};
use crate::compiled::CompiledConfig;
use crate::context::{Endpoint, RequestContext};
use crate::error::GatewayError;
use crate::exchange::{attempt, Call, Door};
use crate::resolve::{forced_provider, ModelPeek};
use crate::routing::Resolved;
use crate::state::Serving;
use crate::upstream::Upstream;
use ai_gateway_snapshot::ProviderKind;
use http::Method;
use std::sync::Arc;

/// Which providers a native surface reaches.
#[derive(Debug, Clone, Copy)]
pub enum Family {
    OpenAi,
    Ollama,
}

impl Family {
    fn includes(self, kind: ProviderKind) -> bool {
        match self {
            Self::OpenAi => matches!(
                kind,
                ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::AzureOpenai
            ),
            Self::Ollama => kind == ProviderKind::Ollama,
        }
    }

    /// The inference and listing endpoints, each with the one method it takes; the
    /// rest (files, fine-tuning, deleting or pulling models, any other method) would
    /// let callers spend or manage the provider outside routing.
    fn call(self, method: &Method, path: &str) -> Option<NativeCall> {
        let path = path.strip_prefix("/v1").unwrap_or(path);
        let inference = match self {
            Self::OpenAi => matches!(
                path,
                "/chat/completions" | "/completions" | "/embeddings" | "/responses"
            ),
            Self::Ollama => matches!(
                path,
                "/api/chat"
                    | "/api/generate"
                    | "/api/embed"
                    | "/api/embeddings"
                    | "/chat/completions"
                    | "/completions"
                    | "/embeddings"
            ),
        };
        let listing = match self {
            Self::OpenAi => path == "/models" || path.starts_with("/models/"),
            Self::Ollama => matches!(path, "/api/tags" | "/api/version" | "/models"),
        };
        // A model's details, asked by name (`model` or the older `name`).
        let details = matches!(self, Self::Ollama) && path == "/api/show";
        match *method {
            Method::POST if inference => Some(NativeCall::Inference),
            Method::GET if listing => Some(NativeCall::Listing),
            Method::POST if details => Some(NativeCall::Listing),
            _ => None,
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Self::OpenAi => Endpoint::OpenAiNative,
            Self::Ollama => Endpoint::OllamaNative,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Ollama => "ollama",
        }
    }
}

/// What a native call does, and so how it is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NativeCall {
    /// Names a model in a JSON body: routed, admitted for its tokens, metered.
    Inference,
    /// Reads a listing: admitted as a request with no tokens.
    Listing,
}

pub async fn handle(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    family: Family,
    inbound: Inbound<'_>,
) -> Answer {
    let compiled = serving.compiled;
    let Some(kind) = family.call(&inbound.method, inbound.rest) else {
        return Err(inbound.not_found(&format!("/v1/{}", family.name())));
    };
    ctx.calls(family.endpoint());
    // An inference body must be read the way the provider will read it: one the peek
    // cannot parse would otherwise be forwarded unadmitted and unmetered.
    let peek: Option<ModelPeek<'_>> = match kind {
        NativeCall::Inference => Some(crate::resolve::peek_model(&inbound.body)?),
        NativeCall::Listing => None,
    };
    let client_model = match &peek {
        Some(p) => Some(crate::resolve::required_model(p)?.to_string()),
        None => None,
    };
    let (provider, upstream_model) = choose(
        compiled,
        family,
        client_model.as_deref(),
        forced_provider(inbound.headers),
    )?;
    ctx.routed(&provider.name, upstream_model.as_deref().unwrap_or(""));
    if let Some(peek) = &peek {
        crate::resolve::within_request_limits(&compiled.snapshot.gateway, peek)?;
        if let Some(model) = &client_model {
            ctx.asks_for(model.clone(), peek.stream);
        }
    }
    let resolved = Resolved::unrouted(provider, upstream_model.unwrap_or_default());
    let max_output = match &peek {
        Some(peek) => peek.max_output_tokens(),
        None => Some(0),
    };
    super::admit(serving, ctx, &resolved, &inbound.body, max_output).await?;
    let wants_usage_chunk = peek
        .as_ref()
        .and_then(|p| p.stream_options.as_ref())
        .is_some_and(|o| o.include_usage);
    let model = client_model.as_deref().unwrap_or("");
    let call = Call {
        wants_usage_chunk,
        ..inbound.call(
            serving,
            ctx,
            Door::ProviderApi { path: inbound.rest },
            model,
        )
    };
    attempt(&call, &resolved, ctx, false).await
}

fn choose(
    compiled: &CompiledConfig,
    family: Family,
    model: Option<&str>,
    forced: Option<&str>,
) -> Result<(Arc<Upstream>, Option<String>), GatewayError> {
    if let Some(model) = model {
        if let Ok(r) = compiled.routes.resolve(model, forced) {
            if family.includes(r.provider.kind) {
                return Ok((r.provider, Some(r.upstream_model)));
            }
        }
    }
    let candidates = || {
        compiled
            .providers
            .values()
            .filter(|p| family.includes(p.kind))
    };
    let chosen = match forced {
        Some(name) => candidates().find(|p| p.name == name),
        // Prefer an active provider; fall back to an inactive one to say why it is.
        None => candidates()
            .find(|p| p.inactive.is_none())
            .or_else(|| candidates().next()),
    };
    chosen
        .cloned()
        .map(|p| (p, model.map(str::to_string)))
        .ok_or_else(|| {
            let name = forced.unwrap_or(family.name());
            GatewayError::unknown_provider(name, candidates().map(|p| &p.name))
        })
}
