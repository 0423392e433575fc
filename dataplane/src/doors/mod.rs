//! The doors callers come in by, one module per API they speak. Each parses its own
//! paths, resolves and admits the call, and hands it to an exchange.

pub mod account;
pub mod anthropic_messages;
pub mod bedrock_runtime;
pub mod gemini_api;
pub mod info;
pub mod openai_chat;
pub mod provider_api;

use crate::body::ResponseBody;
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::exchange::{fallback, Call};
use crate::resolve::Routed;
use crate::state::Services;
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

impl Inbound<'_> {
    fn not_found(&self, prefix: &str) -> GatewayError {
        GatewayError::NotFound {
            method: self.method.to_string(),
            path: format!("{prefix}{}", self.rest),
        }
    }
}

/// A routed, admitted call: answered from the cache, or by the route's providers in turn.
async fn serve_routed(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    call: &Call<'_>,
    routed: &Routed,
) -> Result<Response<ResponseBody>, GatewayError> {
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
    let served = fallback::serve(compiled, services, ctx, call, routed).await;
    crate::cache::into_cache(&services.cache, ctx, lookup.as_ref(), served)
}
