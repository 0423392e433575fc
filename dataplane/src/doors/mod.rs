//! The doors callers come in by, one module per API they speak. Each parses its own
//! paths, resolves and admits the call, and hands it to an exchange.

pub mod account;
pub mod anthropic_messages;
pub mod bedrock_runtime;
pub mod gemini_api;
pub mod info;
pub mod openai_chat;
pub mod provider_api;
pub mod vertex_ai;

use crate::body::ResponseBody;
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::exchange::{fallback, Call, Door, Exchange};
use crate::intelligence::system_prompt::SystemPrompt;
use crate::resolve::Routed;
use crate::routing::Resolved;
use crate::state::Serving;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{HeaderMap, Method, Response};

/// One request as a door takes it: the caller is known and the body read.
pub struct Inbound<'a> {
    pub method: Method,
    /// The path after the door's prefix (`/v1/claude` + `/v1/messages`).
    pub rest: &'a str,
    /// The query, without the caller's credentials.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// What a door answers: the response, or the error to render in its caller's format.
pub type Answer = Result<Response<ResponseBody>, GatewayError>;

impl Inbound<'_> {
    fn not_found(&self, prefix: &str) -> GatewayError {
        GatewayError::NotFound {
            method: self.method.to_string(),
            path: format!("{prefix}{}", self.rest),
        }
    }

    /// The call as an exchange takes it, for `model` through `door`; a door changes
    /// what differs (`stream`, `wants_usage_chunk`, the query it forwards).
    fn call<'a>(
        &'a self,
        serving: Serving<'_>,
        ctx: &RequestContext,
        door: Door<'a>,
        model: &'a str,
    ) -> Call<'a> {
        Call {
            door,
            method: self.method.clone(),
            model,
            stream: ctx.stream(),
            wants_usage_chunk: false,
            headers: self.headers,
            query: self.query,
            body: &self.body,
            default_max_tokens: serving.compiled.snapshot.gateway.default_max_tokens,
            anthropic_version: false,
            cache_breakpoints: false,
        }
    }
}

/// The admit stage for a door's call: the caller's limits must fit its estimate.
async fn admit(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    resolved: &Resolved,
    body: &Bytes,
    max_output_tokens: Option<u64>,
) -> Result<(), GatewayError> {
    let Serving { compiled, services } = serving;
    crate::admission::admit(
        compiled,
        services,
        ctx,
        resolved,
        body.len(),
        max_output_tokens,
    )
    .await
}

/// Routes a call by the model its body names (the body rewritten when the gateway chose
/// the model), then admits it.
async fn route_by_body(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    inbound: &mut Inbound<'_>,
    system_prompt: SystemPrompt,
) -> Result<Routed, GatewayError> {
    let mut routed = crate::resolve::by_body(
        serving.compiled,
        ctx,
        inbound.headers,
        &inbound.body,
        system_prompt,
    )?;
    if let Some(body) = routed.provider_body.take() {
        inbound.body = body;
    }
    reduce_tokens(ctx, inbound, &routed, system_prompt)?;
    admit(
        serving,
        ctx,
        &routed.resolved,
        &inbound.body,
        routed.max_output_tokens,
    )
    .await?;
    Ok(routed)
}

/// The reduce stage: the conversation rewritten as the call's `token_reduction` asks
/// (chat callers; Messages callers only when it says so), before admission counts it.
fn reduce_tokens(
    ctx: &mut RequestContext,
    inbound: &mut Inbound<'_>,
    routed: &Routed,
    system_prompt: SystemPrompt,
) -> Result<(), GatewayError> {
    let settings = &routed.token_reduction;
    let applies = match system_prompt {
        SystemPrompt::OpenAiMessages => true,
        SystemPrompt::AnthropicSystem => settings.messages_api,
        SystemPrompt::ConverseSystem | SystemPrompt::GeminiInstruction => false,
    };
    if !applies {
        return Ok(());
    }
    if let Some((body, done)) =
        crate::intelligence::reduced_body(&inbound.body, settings, system_prompt)?
    {
        ctx.reduced(done.saved_bytes / crate::admission::BYTES_PER_TOKEN);
        inbound.body = body;
    }
    Ok(())
}

/// A routed, admitted call: answered from the cache, or by the route's providers in turn.
async fn serve_routed(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    call: &Call<'_>,
    routed: &Routed,
) -> Answer {
    let Serving { compiled, services } = serving;
    let lookup = crate::cache::lookup_for(
        &compiled.snapshot.cache,
        ctx,
        &routed.resolved,
        routed.temperature,
        call.headers,
        call.body,
    );
    if let Some(lookup) = &lookup {
        let cached =
            crate::cache::answer_from_cache(&services.cache, &services.metrics, ctx, lookup).await;
        if let Some(answer) = cached {
            return Ok(answer);
        }
    }
    let served = match crate::cascade::plan(serving, routed) {
        Some(plan) => crate::cascade::serve(serving, ctx, call, routed, plan).await,
        None => fallback::serve(serving, ctx, call, routed).await,
    };
    crate::cache::into_cache(&services.cache, ctx, lookup.as_ref(), served)
}

/// Every model a caller may name through `door`, with the provider that serves it: the
/// routes' exact names and aliases, and the models providers declare (those a glob
/// route serves), for active providers that can serve the door.
pub fn catalogue(compiled: &CompiledConfig, door: Door<'_>) -> Vec<(String, String)> {
    let serves = |p: &Upstream, model: &str| {
        p.inactive.is_none() && Exchange::for_pair(door, p, model).is_ok()
    };
    let mut entries: Vec<(String, String)> = compiled
        .routes
        .exact_models()
        .filter(|(m, p)| serves(p, m))
        .map(|(m, p)| (m.to_string(), p.name.clone()))
        .collect();
    for p in compiled.providers.values() {
        entries.extend(
            p.config
                .models
                .iter()
                .filter(|m| serves(p, m))
                .map(|m| (m.clone(), p.name.clone())),
        );
    }
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    entries
}
