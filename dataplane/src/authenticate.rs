//! The authenticate stage: who is calling, from the request head alone. A SigV4 caller
//! is only claimed here (the key must exist); its signature covers the body, so it is
//! verified once the body is read ([`signed_body`]).

use crate::auth::Authenticated;
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::state::{Gateway, Services};
use bytes::Bytes;

/// The address a request's connection came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

/// Names the caller in `ctx`; true when a SigV4 signature is still to be checked
/// against the body.
pub async fn caller(
    gw: &Gateway,
    ctx: &mut RequestContext,
    parts: &http::request::Parts,
    path: &str,
    query: Option<&str>,
) -> Result<bool, GatewayError> {
    let compiled = gw.compiled();
    let pending_sigv4 = match compiled.keys.authenticate(&parts.headers, query)? {
        Authenticated::Caller(identity) => {
            ctx.identified(identity);
            false
        }
        Authenticated::PendingTokenReview(token) => {
            let client = parts.extensions.get::<Peer>().map(|p| p.0);
            ctx.identified(gw.services.tokens.identify(&token, client).await?);
            false
        }
        Authenticated::PendingPodLookup => {
            let peer = parts.extensions.get::<Peer>().ok_or_else(|| {
                GatewayError::Unauthorized("the caller's address is unknown".into())
            })?;
            ctx.identified(gw.services.pods.identify(peer.0).await?);
            false
        }
        Authenticated::PendingSigV4 if path.starts_with("/v1/bedrock/") => true,
        Authenticated::PendingSigV4 => {
            return Err(GatewayError::Unauthorized(
                "SigV4 signatures are accepted on /v1/bedrock only; send the gateway key as a bearer token".into(),
            ))
        }
    };
    Ok(pending_sigv4)
}

/// Verifies a SigV4 caller's signature over the request as it was sent, and that the
/// signature was not used before.
pub fn signed_body(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    parts: &http::request::Parts,
    body: &Bytes,
) -> Result<(), GatewayError> {
    let path = parts.uri.path();
    // AWS clients sign the request as they sent it: this host and this path.
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(path);
    let url = format!("http://{host}{target}");
    ctx.identified(
        compiled
            .keys
            .authenticate_sigv4(&parts.method, &url, &parts.headers, body)?,
    );
    services.replays.first_use(&parts.headers)?;
    Ok(())
}
