//! A route's providers in order: the next is tried only when an attempt failed before
//! any byte reached the caller ([`GatewayError::allows_fallback`]).

use super::{attempt, Call};
use crate::body::ResponseBody;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::resolve::Routed;
use crate::state::Serving;
use http::Response;

/// Serves a routed call from its provider, then from each fallback in turn; the
/// request is re-pointed (audit, metrics, price) at each provider it moves on to.
pub async fn serve(
    serving: Serving<'_>,
    ctx: &mut RequestContext,
    call: &Call<'_>,
    routed: &Routed,
) -> Result<Response<ResponseBody>, GatewayError> {
    let mut fallbacks = serving
        .compiled
        .routes
        .fallbacks(&routed.model, &routed.resolved)
        .into_iter()
        .peekable();
    let mut target = routed.resolved.clone();
    loop {
        let fallback_left = fallbacks.peek().is_some();
        match attempt(call, &target, ctx, fallback_left).await {
            Err(e) if fallback_left && e.allows_fallback() => {
                tracing::warn!(provider = %target.provider.name, error = %e, "falling back");
                let Some(next) = fallbacks.next() else {
                    return Err(e);
                };
                let price = serving
                    .services
                    .prices
                    .price(&next.provider, &next.upstream_model);
                ctx.failed_over(&next.provider.name, &next.upstream_model, price);
                target = next;
            }
            served => return served,
        }
    }
}
