//! Every failure a caller can see, rendered once per API surface in that API's own
//! error shape, so SDKs raise their usual exception types.

use crate::body::{json_response, ResponseBody};
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

/// The API a request came in by; errors are answered in its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFormat {
    OpenAi,
    Anthropic,
    Ollama,
    Gemini,
    Bedrock,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("request body is larger than the gateway's limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("model `{model}` is not routed; known: {known}")]
    UnknownModel { model: String, known: String },
    #[error("provider `{name}` is not configured; known: {known}")]
    UnknownProvider { name: String, known: String },
    #[error("provider `{name}` is inactive: {reason}")]
    ProviderInactive { name: String, reason: String },
    #[error("{what} is not supported on this surface")]
    Unsupported { what: String },
    #[error("upstream `{provider}` could not be reached: {detail}")]
    UpstreamUnreachable { provider: String, detail: String },
    #[error("upstream `{provider}` did not answer within {ms} ms")]
    UpstreamTimeout { provider: String, ms: u64 },
    #[error("upstream `{provider}` sent a response the gateway could not read: {detail}")]
    UpstreamProtocol { provider: String, detail: String },
    /// The upstream answered with an error of its own; its status and message are kept.
    #[error("upstream `{provider}` answered {status}: {message}")]
    Upstream {
        provider: String,
        status: StatusCode,
        message: String,
    },
    #[error("no such endpoint: {method} {path}")]
    NotFound { method: String, path: String },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// Too many request bodies arriving at once; the caller may retry.
    #[error("the gateway is busy reading other requests; retry shortly")]
    Busy,
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but may not make this call.
    #[error("{0}")]
    Forbidden(String),
    /// Refused by a rate limit; the caller may retry after the window resets.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error("the rate-limit store is unavailable: {0}")]
    LimitStoreUnavailable(String),
    #[error("{0}")]
    AuthUnavailable(String),
    #[error("provider `{provider}` is failing; calls resume in {retry_in_ms} ms")]
    CircuitOpen { provider: String, retry_in_ms: u64 },
}

/// The broad kind of an error, named the way the provider APIs name theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    TooLarge,
    RateLimit,
    Overloaded,
    Timeout,
    Api,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            MalformedJson(_) | InvalidRequest(_) | BodyRead(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnknownModel { .. } | UnknownProvider { .. } | NotFound { .. } => StatusCode::NOT_FOUND,
            ProviderInactive { .. } | ShuttingDown | Busy => StatusCode::SERVICE_UNAVAILABLE,
            Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            UpstreamUnreachable { .. } | UpstreamProtocol { .. } => StatusCode::BAD_GATEWAY,
            UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Upstream { status, .. } => *status,
            Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Forbidden(_) => StatusCode::FORBIDDEN,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            LimitStoreUnavailable(_) | AuthUnavailable(_) | CircuitOpen { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Failures where another provider may still serve the call: nothing has reached
    /// the caller, and the fault is the upstream's, not the request's.
    pub fn allows_fallback(&self) -> bool {
        use GatewayError::*;
        match self {
            UpstreamUnreachable { .. }
            | UpstreamTimeout { .. }
            | CircuitOpen { .. }
            | ProviderInactive { .. } => true,
            Unsupported { .. } => true,
            Upstream { status, .. } => status.as_u16() == 429 || status.is_server_error(),
            _ => false,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self.status().as_u16() {
            400 | 405 | 422 => ErrorClass::InvalidRequest,
            401 => ErrorClass::Authentication,
            403 => ErrorClass::Permission,
            404 => ErrorClass::NotFound,
            413 => ErrorClass::TooLarge,
            429 => ErrorClass::RateLimit,
            503 | 529 => ErrorClass::Overloaded,
            504 => ErrorClass::Timeout,
            _ => ErrorClass::Api,
        }
    }

    /// A short stable name for audit records and metric labels.
    pub fn kind(&self) -> &'static str {
        use GatewayError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            InvalidRequest(_) => "invalid_request",
            BodyTooLarge { .. } => "body_too_large",
            BodyRead(_) => "body_read",
            UnknownModel { .. } => "unknown_model",
            UnknownProvider { .. } => "unknown_provider",
            ProviderInactive { .. } => "provider_inactive",
            Unsupported { .. } => "unsupported",
            UpstreamUnreachable { .. } => "upstream_unreachable",
            UpstreamTimeout { .. } => "upstream_timeout",
            UpstreamProtocol { .. } => "upstream_protocol",
            Upstream { .. } => "upstream_error",
            NotFound { .. } => "not_found",
            ShuttingDown => "shutting_down",
            Busy => "busy",
            Unauthorized(_) => "unauthorized",
            Forbidden(_) => "forbidden",
            RateLimited { .. } => "rate_limited",
            LimitStoreUnavailable(_) => "limit_store_unavailable",
            AuthUnavailable(_) => "auth_unavailable",
            CircuitOpen { .. } => "upstream_circuit_open",
        }
    }

    pub fn render(&self, format: ApiFormat) -> Response<ResponseBody> {
        let status = self.status();
        let message = self.to_string();
        let body = error_body(format, status, self.class(), &message);
        let mut response = json_response(status, &body);
        if format == ApiFormat::Bedrock {
            let amz_type = match self.class() {
                ErrorClass::InvalidRequest | ErrorClass::TooLarge => "ValidationException",
                ErrorClass::Authentication | ErrorClass::Permission => "AccessDeniedException",
                ErrorClass::NotFound => "ResourceNotFoundException",
                ErrorClass::RateLimit => "ThrottlingException",
                ErrorClass::Overloaded => "ServiceUnavailableException",
                ErrorClass::Timeout => "ModelTimeoutException",
                ErrorClass::Api => "InternalServerException",
            };
            response
                .headers_mut()
                .insert("x-amzn-errortype", HeaderValue::from_static(amz_type));
        }
        response
    }
}

/// The error document each API uses, so a client's own error handling reads it.
pub fn error_body(
    format: ApiFormat,
    status: StatusCode,
    class: ErrorClass,
    message: &str,
) -> serde_json::Value {
    match format {
        ApiFormat::OpenAi => {
            let kind = match class {
                ErrorClass::InvalidRequest | ErrorClass::TooLarge | ErrorClass::NotFound => {
                    "invalid_request_error"
                }
                ErrorClass::Authentication => "authentication_error",
                ErrorClass::Permission => "permission_error",
                ErrorClass::RateLimit => "rate_limit_error",
                ErrorClass::Overloaded | ErrorClass::Timeout | ErrorClass::Api => "server_error",
            };
            let code = match class {
                ErrorClass::NotFound => json!("model_not_found"),
                ErrorClass::RateLimit => json!("rate_limit_exceeded"),
                _ => serde_json::Value::Null,
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        ApiFormat::Anthropic => {
            let kind = match class {
                ErrorClass::InvalidRequest => "invalid_request_error",
                ErrorClass::Authentication => "authentication_error",
                ErrorClass::Permission => "permission_error",
                ErrorClass::NotFound => "not_found_error",
                ErrorClass::TooLarge => "request_too_large",
                ErrorClass::RateLimit => "rate_limit_error",
                ErrorClass::Overloaded => "overloaded_error",
                ErrorClass::Timeout => "timeout_error",
                ErrorClass::Api => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        ApiFormat::Ollama => json!({"error": message}),
        ApiFormat::Gemini => {
            let grpc = match class {
                ErrorClass::InvalidRequest | ErrorClass::TooLarge => "INVALID_ARGUMENT",
                ErrorClass::Authentication => "UNAUTHENTICATED",
                ErrorClass::Permission => "PERMISSION_DENIED",
                ErrorClass::NotFound => "NOT_FOUND",
                ErrorClass::RateLimit => "RESOURCE_EXHAUSTED",
                ErrorClass::Overloaded => "UNAVAILABLE",
                ErrorClass::Timeout => "DEADLINE_EXCEEDED",
                ErrorClass::Api => "INTERNAL",
            };
            json!({"error": {"code": status.as_u16(), "message": message, "status": grpc}})
        }
        ApiFormat::Bedrock => json!({"message": message}),
    }
}
impl GatewayError {
    /// No provider answers to `name`; the message lists the ones there are.
    pub fn unknown_provider<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> Self {
        let known: Vec<&str> = known.into_iter().map(String::as_str).collect();
        Self::UnknownProvider {
            name: name.to_string(),
            known: known.join(", "),
        }
    }
}

/// A request the provider's API cannot express: the caller's fault, named by its field
/// path (`messages[2].content[0].image_url.url: …`).
impl From<crate::wire::TranslateError> for GatewayError {
    fn from(e: crate::wire::TranslateError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}
