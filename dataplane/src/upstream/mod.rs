//! Calling a provider: which client headers may travel, the provider's credentials,
//! timeouts, and bodies streamed back as they arrive.

pub mod breaker;
pub mod client;
pub mod google_auth;
pub mod paths;
pub mod retry;
pub(crate) mod stream;

pub use client::UpstreamResponse;
pub use stream::{eventstream_translated, passthrough_body, translated_body, StreamProtocol};

use crate::error::GatewayError;
mod provider;
use ai_gateway_snapshot::{Provider, ProviderKind};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
pub use provider::{ClientPool, Upstream};
use std::time::Duration;

/// Headers never copied from the caller: hop-by-hop ones, the caller's own credentials
/// (the provider's are injected instead), and the gateway's routing headers.
fn caller_only(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "authorization"
            | "x-api-key"
            | "api-key"
            | "x-goog-api-key"
            | "cookie"
            // The gateway's key decides which organisation and project are billed.
            | "openai-organization"
            | "openai-project"
            // The gateway reads usage from the stream, so it must arrive uncompressed.
            | "accept-encoding"
            | "x-provider"
            // Who the caller is, for the gateway: not the provider's business.
            | "x-workspace-id"
            | "x-user-id"
            | "x-team-id"
            | "x-request-id"
    )
}

/// Upstream response headers that describe the upstream connection, not the answer.
const UPSTREAM_ONLY_HEADERS: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::SET_COOKIE,
    header::ALT_SVC,
    header::STRICT_TRANSPORT_SECURITY,
];

/// Query parameters that may carry a caller's credential (any case, any encoding of
/// the name): they never travel to a provider, whose own key the gateway sends.
const CREDENTIAL_PARAMS: [&str; 4] = ["key", "api_key", "api-key", "access_token"];

/// The caller's query as a provider may see it: every parameter but credentials.
pub fn forwardable_query(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            !pair.is_empty()
                && !CREDENTIAL_PARAMS
                    .iter()
                    .any(|c| name.trim().eq_ignore_ascii_case(c))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub fn forwardable_headers(caller: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(caller.len());
    for (name, value) in caller {
        if !caller_only(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// The answer's headers, taken from the upstream response, less those about the
/// upstream connection.
pub fn answer_headers(resp: &mut UpstreamResponse) -> HeaderMap {
    let mut headers = std::mem::take(resp.headers_mut());
    for name in &UPSTREAM_ONLY_HEADERS {
        headers.remove(name);
    }
    headers
}

pub struct UpstreamRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl UpstreamRequest {
    /// A JSON POST with none of the caller's headers: used where the body was translated.
    pub fn json(path_and_query: String, body: &serde_json::Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Self {
            method: Method::POST,
            path_and_query,
            headers,
            body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        }
    }
}

/// The headers a provider's calls carry: its key in the header its API reads, then the
/// provider's configured extra headers. Built once per config, not per call.
pub fn provider_headers(config: &Provider) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(1 + config.headers.len());
    // Secrets made with `echo` end in a newline, which no header value may hold.
    let key = config
        .api_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let key = key.map(|k| match config.kind {
        ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), k.to_string()),
        ProviderKind::AzureOpenai => (HeaderName::from_static("api-key"), k.to_string()),
        ProviderKind::Gemini => (HeaderName::from_static("x-goog-api-key"), k.to_string()),
        _ => (header::AUTHORIZATION, format!("Bearer {k}")),
    });
    if let Some((name, Ok(mut value))) = key.map(|(n, v)| (n, HeaderValue::try_from(v))) {
        value.set_sensitive(true);
        out.push((name, value));
    }
    for (name, value) in &config.headers {
        if let (Ok(n), Ok(mut v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            // Often a credential (an access token in front of a self-hosted model).
            v.set_sensitive(true);
            out.push((n, v));
        }
    }
    out
}

const ANTHROPIC_VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");

impl Upstream {
    fn authorize(&self, headers: &mut HeaderMap) {
        if self.kind == ProviderKind::Anthropic && !headers.contains_key(ANTHROPIC_VERSION_HEADER) {
            headers.insert(
                ANTHROPIC_VERSION_HEADER,
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        // Configured headers come last so they can override anything, the version too.
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// Signs a Bedrock call with the route's AWS credentials.
    fn sign_sigv4(
        &self,
        method: &Method,
        url: &str,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), GatewayError> {
        let c = &self.config;
        let signer = crate::sigv4::Signer {
            access_key_id: c.access_key_id.as_deref().unwrap_or_default(),
            secret_access_key: c.secret_access_key.as_deref().unwrap_or_default(),
            session_token: c.session_token.as_deref().filter(|t| !t.is_empty()),
            region: c.region.as_deref().unwrap_or("us-east-1"),
            service: crate::sigv4::BEDROCK_SERVICE,
        };
        signer
            .apply(method, url, headers, body)
            .map_err(|e| GatewayError::UpstreamUnreachable {
                provider: self.name.clone(),
                detail: e.to_string(),
            })
    }

    /// Where this provider takes an OpenAI chat completion for `model`.
    pub fn chat_completions_path(&self, model: &str) -> String {
        match self.kind {
            ProviderKind::Ollama => "/v1/chat/completions".into(),
            ProviderKind::AzureOpenai => format!(
                "/openai/deployments/{}/chat/completions?api-version={}",
                model.replace(
                    |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
                    ""
                ),
                self.config.api_version.as_deref().unwrap_or("2024-10-21")
            ),
            _ => "/chat/completions".into(),
        }
    }

    /// Sends a request with this provider's credentials; waits at most the first-byte
    /// timeout for the response head, and the total timeout for the whole exchange.
    pub async fn send(
        &self,
        mut req: UpstreamRequest,
        request_id: &str,
    ) -> Result<UpstreamResponse, GatewayError> {
        if let Some(reason) = &self.inactive {
            return Err(GatewayError::ProviderInactive {
                name: self.name.clone(),
                reason: reason.clone(),
            });
        }
        if let Some(google) = &self.google {
            let token = google.access_token().await.map_err(|detail| {
                GatewayError::UpstreamUnreachable {
                    provider: self.name.clone(),
                    detail: format!("no Google access token: {detail}"),
                }
            })?;
            if let Ok(mut bearer) = HeaderValue::try_from(format!("Bearer {token}")) {
                bearer.set_sensitive(true);
                req.headers.insert(header::AUTHORIZATION, bearer);
            }
        }
        self.authorize(&mut req.headers);
        if let Ok(v) = HeaderValue::from_str(request_id) {
            req.headers.insert(crate::header_values::REQUEST_ID, v);
        }
        let uri = self
            .uri(&req.path_and_query)
            .map_err(|e| GatewayError::InvalidRequest(format!("bad upstream URL: {e}")))?;
        let breaker_config = self.config.circuit_breaker;
        let probe = match self.breaker.gate(&breaker_config, breaker::now_ms()) {
            breaker::Gate::Open(retry_in_ms) => {
                return Err(GatewayError::CircuitOpen {
                    provider: self.name.clone(),
                    retry_in_ms,
                })
            }
            breaker::Gate::Probe => true,
            breaker::Gate::Closed => false,
        };
        // The total timeout covers every attempt and the waits between them.
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.timeouts.total_ms);
        let plan = retry::RetryPlan::new(self.config.retries, probe, deadline);
        let mut attempt = 0;
        loop {
            // The last attempt takes the headers; earlier ones send a copy.
            let headers = if plan.may_follow(attempt) {
                req.headers.clone()
            } else {
                std::mem::take(&mut req.headers)
            };
            let result = self.send_once(&req, headers, &uri, deadline).await;
            let outcome = retry::Outcome::of(&result);
            if let Some(wait) = plan.wait_after(outcome, attempt, tokio::time::Instant::now()) {
                tracing::debug!(provider = %self.name, attempt, wait_ms = wait.as_millis() as u64, "retrying upstream call");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            let answered = outcome == retry::Outcome::Final && result.is_ok();
            self.breaker
                .record(answered, &breaker_config, breaker::now_ms());
            return result;
        }
    }

    async fn send_once(
        &self,
        req: &UpstreamRequest,
        mut headers: HeaderMap,
        uri: &http::Uri,
        deadline: tokio::time::Instant,
    ) -> Result<UpstreamResponse, GatewayError> {
        let timeouts = self.config.timeouts;
        // Each attempt is signed anew: the signature covers its own timestamp.
        if self.kind == ProviderKind::Bedrock && self.config.api_key.is_none() {
            self.sign_sigv4(&req.method, &uri.to_string(), &mut headers, &req.body)?;
        }
        if let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        }
        let mut request = http::Request::new(http_body_util::Full::new(req.body.clone()));
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let first_byte = Duration::from_millis(timeouts.first_byte_ms).min(left);
        match tokio::time::timeout(first_byte, self.client.request(request)).await {
            Err(_) => Err(GatewayError::UpstreamTimeout {
                provider: self.name.clone(),
                ms: first_byte.as_millis() as u64,
            }),
            Ok(Err(e)) if client::is_timeout(&e) => Err(GatewayError::UpstreamTimeout {
                provider: self.name.clone(),
                ms: timeouts.connect_ms.min(timeouts.total_ms),
            }),
            // Not connected: the request never left, so it may be tried again.
            Ok(Err(e)) if e.is_connect() => Err(GatewayError::UpstreamUnreachable {
                provider: self.name.clone(),
                detail: error_chain(&e),
            }),
            // The upstream may have read (and be acting on) the request: sending it again
            // could do the work, and charge for it, twice.
            Ok(Err(e)) => Err(GatewayError::UpstreamProtocol {
                provider: self.name.clone(),
                detail: format!(
                    "the connection broke after the request was sent: {}",
                    error_chain(&e)
                ),
            }),
            Ok(Ok(mut resp)) => {
                resp.extensions_mut().insert(AnswerTimeouts {
                    idle: Duration::from_millis(timeouts.idle_ms),
                    deadline,
                });
                Ok(resp)
            }
        }
    }
}

/// The time limits on reading an answer's body; set by [`Upstream::send`].
#[derive(Debug, Clone, Copy)]
pub struct AnswerTimeouts {
    /// How long a stream may go silent.
    pub idle: Duration,
    /// When the whole exchange, body included, must be over (the total timeout).
    pub deadline: tokio::time::Instant,
}

/// The largest whole (non-stream) answer the gateway reads; a provider's answers are
/// far smaller, and a larger one must not take the process's memory with it.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A whole (non-stream) answer's body, within the exchange's total timeout and
/// [`MAX_ANSWER_BYTES`].
pub async fn read_body(resp: UpstreamResponse) -> Result<Bytes, String> {
    let too_large = || {
        format!(
            "the answer is larger than the gateway's limit of {} MiB",
            MAX_ANSWER_BYTES >> 20
        )
    };
    // An answer that says it is too large is not read at all.
    if declared_length(&resp).is_some_and(|n| n > MAX_ANSWER_BYTES) {
        return Err(too_large());
    }
    let (frames, received) = frames_up_to(resp, MAX_ANSWER_BYTES + 1).await?;
    if received > MAX_ANSWER_BYTES {
        return Err(too_large());
    }
    Ok(joined(frames, received))
}

/// The body's length as the upstream declared it; read from the body itself, which
/// keeps it when the headers have been taken for the caller's answer.
fn declared_length(resp: &UpstreamResponse) -> Option<usize> {
    use http_body::Body;
    usize::try_from(resp.body().size_hint().exact()?).ok()
}

/// An answer's body up to about `limit` bytes (all of it when shorter), within the
/// exchange's total timeout; the rest is not waited for.
async fn read_body_up_to(resp: UpstreamResponse, limit: usize) -> Result<Bytes, String> {
    let (frames, received) = frames_up_to(resp, limit).await?;
    Ok(joined(frames, received))
}

/// The body's frames until it ends or `limit` bytes have arrived, and how many bytes
/// that is, within the exchange's total timeout. Kept as received (no copy), so an
/// answer found too large is dropped without ever being joined.
async fn frames_up_to(resp: UpstreamResponse, limit: usize) -> Result<(Vec<Bytes>, usize), String> {
    use http_body_util::BodyExt;
    let deadline = resp
        .extensions()
        .get::<AnswerTimeouts>()
        .map(|e| e.deadline);
    let mut body = resp.into_body();
    let read = async move {
        let mut frames = Vec::new();
        let mut received = 0usize;
        while received < limit {
            let Some(frame) = body.frame().await else {
                break;
            };
            if let Ok(data) = frame?.into_data() {
                received += data.len();
                frames.push(data);
            }
        }
        Ok::<_, hyper::Error>((frames, received))
    };
    let read = match deadline {
        Some(at) => tokio::time::timeout_at(at, read)
            .await
            .map_err(|_| "the answer did not complete within the total timeout".to_string())?,
        None => read.await,
    };
    read.map_err(|e| error_chain(&e))
}

/// One buffer of the frames; an answer that arrived in one piece (most do) is not copied.
fn joined(mut frames: Vec<Bytes>, total: usize) -> Bytes {
    if frames.len() <= 1 {
        return frames.pop().unwrap_or_default();
    }
    let mut all = bytes::BytesMut::with_capacity(total);
    for frame in &frames {
        all.extend_from_slice(frame);
    }
    all.freeze()
}

/// The client's top-level message is "client error (Connect)"; the causes say what happened.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An upstream answer to pass through, unless it failed and a fallback remains to try.
pub async fn unless_failing(
    provider: &str,
    resp: UpstreamResponse,
    fallback_left: bool,
) -> Result<UpstreamResponse, GatewayError> {
    if fallback_left && retry::is_retryable(resp.status()) {
        return Err(upstream_error(provider, resp).await);
    }
    Ok(resp)
}

/// Reads the start of an upstream's error answer and keeps its message for the caller:
/// an error body that is endless or stalls costs neither memory nor waiting.
pub async fn upstream_error(provider: &str, resp: UpstreamResponse) -> GatewayError {
    const KEPT: usize = 64 * 1024;
    let status = resp.status();
    let bytes = read_body_up_to(resp, KEPT).await.unwrap_or_default();
    let slice = &bytes[..bytes.len().min(KEPT)];
    let message = extract_error_message(slice)
        .unwrap_or_else(|| String::from_utf8_lossy(slice).trim().to_string());
    GatewayError::Upstream {
        provider: provider.to_string(),
        // Anthropic's 529 "overloaded" is not a status other clients know.
        status: if status.as_u16() == 529 {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            status
        },
        message,
    }
}

fn extract_error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    // `{"error": {"message"}}` (OpenAI, Anthropic, Gemini), `{"error": "…"}` (Ollama),
    // `{"message"}` (Bedrock).
    match v.get("error") {
        Some(error) => error
            .get("message")
            .and_then(|m| m.as_str())
            .or_else(|| error.as_str())
            .map(str::to_string),
        None => v
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string),
    }
}

#[cfg(test)]
mod query_tests {
    use super::forwardable_query;

    #[test]
    fn the_callers_credentials_are_dropped_from_the_query_in_any_spelling() {
        assert_eq!(
            forwardable_query(Some("alt=sse&key=gw_1")).as_deref(),
            Some("alt=sse")
        );
        assert_eq!(forwardable_query(Some("key=gw_1")), None);
        for spelling in [
            "KEY=gw_1",
            "Key=gw_1",
            "%6Bey=gw_1",
            "api_key=gw_1",
            "access_token=t",
        ] {
            assert_eq!(
                forwardable_query(Some(&format!("a=1&{spelling}&b=2"))).as_deref(),
                Some("a=1&b=2"),
                "{spelling}"
            );
        }
        assert_eq!(forwardable_query(Some("keys=1")).as_deref(), Some("keys=1"));
    }
}
