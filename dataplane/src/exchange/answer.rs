//! Answers as the caller receives them: passed through as the provider sent them, or
//! translated (a JSON document or an event stream).

use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::upstream::{
    answer_headers, passthrough_body, read_body, StreamProtocol, UpstreamResponse,
};
use bytes::Bytes;
use http::Response;

/// The upstream's own response, status, headers and body, streamed back unchanged,
/// with the usage it reports recorded in `usage`. A plain (non-stream) answer is read
/// whole first: it is small, and its usage is owed even if the caller never reads it.
pub async fn proxied(
    provider: &str,
    mut resp: UpstreamResponse,
    protocol: StreamProtocol,
    usage: std::sync::Arc<crate::metered::UsageCell>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let status = resp.status();
    let headers = answer_headers(&mut resp);
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Only a stream can end early; a plain JSON answer is forwarded as it is.
    let streams = match protocol {
        StreamProtocol::Ndjson => content_type.starts_with("application/x-ndjson"),
        StreamProtocol::AwsEventStream => {
            content_type.starts_with("application/vnd.amazon.eventstream")
        }
        _ => content_type.starts_with("text/event-stream"),
    };
    let body = if streams {
        passthrough_body(resp, protocol, usage)
    } else {
        let bytes = read_body(resp)
            .await
            .map_err(|e| GatewayError::UpstreamProtocol {
                provider: provider.to_string(),
                detail: format!("the answer broke off: {e}"),
            })?;
        if status.is_success() {
            // Bedrock InvokeModel of non-Anthropic models counts tokens in headers only.
            if let Some(u) = crate::translate::usage::usage_from_bytes(&bytes)
                .or_else(|| crate::translate::usage::usage_from_bedrock_headers(&headers))
            {
                usage.report(u);
            }
        }
        usage.capture_response(&bytes);
        crate::body::full(bytes)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A translated JSON answer, kept for the audit record when bodies are logged.
pub fn json_answer(ctx: &crate::context::RequestContext, bytes: Bytes) -> Response<ResponseBody> {
    ctx.usage().capture_response(&bytes);
    let mut response = Response::new(crate::body::full(bytes));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

pub fn event_stream_response(body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}
