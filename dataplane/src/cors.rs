//! CORS for browser front ends (`gateway.cors_origins`): a configured origin gets its
//! preflight answered and the gateway's headers exposed on answers; any other origin
//! gets neither, so a browser keeps the page from calling. Preflights are answered
//! before authentication (a browser sends no credentials with them) and forward
//! nothing, so they are not audited.

use crate::body::{empty, ResponseBody};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

/// Headers a page may send, when its preflight asks for more than this list.
const ALLOWED_HEADERS: &str = "authorization, content-type, x-api-key, anthropic-version, \
    anthropic-beta, x-gateway-skill, x-gateway-smart-routing, x-provider, x-request-id";
/// The gateway's own answer headers a page may read.
const EXPOSED_HEADERS: &str = "x-request-id, x-ai-gateway-provider, x-ai-gateway-model, \
    x-ai-gateway-route-reason, x-cache, x-model-source, x-ratelimit-remaining, \
    x-ratelimit-limit-requests, x-ratelimit-remaining-requests, retry-after";
/// A preflight's own header list is echoed back only when it is this short.
const MAX_ECHOED_HEADERS: usize = 1024;

fn allowed(origins: &[String], origin: &HeaderValue) -> bool {
    origin
        .to_str()
        .is_ok_and(|text| origins.iter().any(|o| o == "*" || o == text))
}

/// Whether `headers` are a CORS preflight's.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight: 204 with what the page may do, or 403 for an origin the
/// gateway does not know.
pub fn preflight(origins: &[String], headers: &HeaderMap) -> Response<ResponseBody> {
    let mut response = Response::new(empty());
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .filter(|o| allowed(origins, o))
    else {
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    };
    *response.status_mut() = StatusCode::NO_CONTENT;
    let asked = headers
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| v.len() <= MAX_ECHOED_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static(ALLOWED_HEADERS));
    let out = response.headers_mut();
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    out.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    out.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked);
    out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    out.insert(VARY, HeaderValue::from_static("Origin"));
    response
}

/// Lets a configured origin's page read the answer to its call.
pub fn expose(origins: &[String], origin: HeaderValue, answer: &mut HeaderMap) {
    if !allowed(origins, &origin) {
        return;
    }
    answer.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    answer.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    answer.append(VARY, HeaderValue::from_static("Origin"));
}
