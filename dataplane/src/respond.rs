//! The respond stage: the answer, or the error in the caller's API format, with the
//! gateway's own headers (request id, route, cache, quota); an audited request's body
//! is watched so the call settles when it ends, and a stream is charged for what it
//! produced.

use crate::body::ResponseBody;
use crate::context::RequestContext;
use crate::error::{ApiFormat, GatewayError};
use crate::header_values::{HeaderValueBuf, REQUEST_ID};
use crate::limits::quota_headers;
use crate::settle::{Metering, Settlement};
use crate::state::Services;
use http::{HeaderValue, Response};
use std::sync::Arc;

const ROUTED_PROVIDER: http::HeaderName = http::HeaderName::from_static("x-ai-gateway-provider");
const ROUTED_MODEL: http::HeaderName = http::HeaderName::from_static("x-ai-gateway-model");
const VIA_GATEWAY: http::HeaderName = http::HeaderName::from_static("x-gateway");
const X_PROVIDER: http::HeaderName = http::HeaderName::from_static("x-provider");
const MODEL_SOURCE: http::HeaderName = http::HeaderName::from_static("x-model-source");
/// The most headers `respond` writes besides the quota's: request id, `x-gateway`, the
/// provider twice, model source, model, route reason and cache.
const GATEWAY_HEADERS: usize = 8;
/// Why `model: "auto"` chose the model it did.
const ROUTE_REASON: http::HeaderName = http::HeaderName::from_static("x-ai-gateway-route-reason");

pub fn respond(
    services: &Arc<Services>,
    ctx: RequestContext,
    served: Result<Response<ResponseBody>, GatewayError>,
    format: ApiFormat,
    audited: bool,
) -> Response<ResponseBody> {
    let (mut response, error) = match served {
        Ok(r) => (r, None),
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(request_id = %ctx.request_id(), error = %e, "request failed");
            }
            let mut r = e.render(format);
            if let GatewayError::RateLimited {
                retry_after_secs, ..
            } = e
            {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from(retry_after_secs));
            }
            (r, Some(e.kind()))
        }
    };
    let headers = response.headers_mut();
    // Room for the headers below up front, not grown (and rehashed) in steps, and no
    // more: hyper keeps this map for the connection's life, every open stream included.
    let quota_count = ctx
        .quota()
        .map_or(0, |q| q.header_count(format == ApiFormat::Anthropic));
    headers.reserve(GATEWAY_HEADERS + quota_count);
    let mut values = HeaderValueBuf::with_capacity(192);
    if let Some(quota) = ctx.quota() {
        quota_headers(quota, format == ApiFormat::Anthropic, headers, &mut values);
    }
    if let Some(v) = values.text(ctx.request_id()) {
        headers.insert(REQUEST_ID, v);
    }
    // The users' documents' names for the gateway's own headers, beside ours.
    headers.insert(VIA_GATEWAY, HeaderValue::from_static("ai-gateway"));
    if let Some(p) = ctx.provider().and_then(|p| values.text(p)) {
        headers.insert(ROUTED_PROVIDER, p.clone());
        headers.insert(X_PROVIDER, p);
    }
    if let Some(source) = ctx.model_source() {
        headers.insert(MODEL_SOURCE, HeaderValue::from_static(source));
    }
    if let Some(m) = ctx
        .upstream_model()
        .filter(|m| !m.is_empty())
        .and_then(|m| values.text(m))
    {
        headers.insert(ROUTED_MODEL, m);
    }
    if let Some(reason) = ctx.route_reason().and_then(|r| values.text(r)) {
        headers.insert(ROUTE_REASON, reason);
    }
    if let Some(hit) = ctx.cache_hit() {
        headers.insert(
            "x-cache",
            HeaderValue::from_static(if hit { "HIT" } else { "MISS" }),
        );
    }
    // Calls settle their reservation and write their audit record when the body ends,
    // so a stream is charged for what it produced.
    if !audited {
        return response;
    }
    let status = response.status().as_u16();
    // A provider's own 5xx passed through is still a failure the record should name.
    let error = error.or((status >= 500).then_some("upstream_status"));
    let (parts, body) = response.into_parts();
    let settlement = Settlement::new(services.clone(), ctx, status, error);
    Response::from_parts(
        parts,
        crate::body::observed(body, Metering::new(settlement)),
    )
}
