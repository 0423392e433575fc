//! GET on the data plane through the API server's service proxy, so nothing needs a
//! port-forward.

use super::{ProxyFailure, Session};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The header the admin token travels in through the API server's proxy, which
/// consumes `Authorization` itself.
const ADMIN_TOKEN_HEADER: &str = "x-ai-gateway-admin-token";

impl Session {
    /// GET `path` on the gateway Service's `http` port through the API server. The key
    /// travels as `x-api-key`: the API server consumes `Authorization` itself.
    pub(super) async fn proxy_get<T: DeserializeOwned>(
        &self,
        path: &str,
        key: Option<&str>,
    ) -> Result<T, ProxyFailure> {
        let target = format!("services/{}:http", self.gateway);
        let header = key.map(|k| ("x-api-key", k));
        self.proxy_get_from(&target, path, header).await
    }

    /// GET `path` on one data-plane pod's admin port, with the admin token.
    pub(super) async fn admin_get<T: DeserializeOwned>(
        &self,
        pod: &str,
        path: &str,
        token: &str,
    ) -> Result<T, ProxyFailure> {
        let target = format!("pods/{pod}:8091");
        self.proxy_get_from(&target, path, Some((ADMIN_TOKEN_HEADER, token)))
            .await
    }

    async fn proxy_get_from<T: DeserializeOwned>(
        &self,
        target: &str,
        path: &str,
        header: Option<(&str, &str)>,
    ) -> Result<T, ProxyFailure> {
        let failure = |status: Option<u16>, message: String, from_api_server: bool| ProxyFailure {
            path: path.to_string(),
            status,
            message,
            from_api_server,
        };
        let uri = format!("/api/v1/namespaces/{}/{target}/proxy{path}", self.namespace);
        let mut request = http::Request::get(uri).header(http::header::ACCEPT, "application/json");
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let request = request
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| failure(None, e.to_string(), false))?;
        let no_answer = || {
            failure(
                None,
                format!(
                    "no answer within {} (--request-timeout)",
                    humantime::format_duration(self.request_timeout)
                ),
                false,
            )
        };
        // The client's own read timeout and this deadline are the same length; whichever
        // fires first, the person sees the same sentence.
        let sent_error = |status: Option<u16>, e: &(dyn std::error::Error + 'static)| {
            if timed_out(e) {
                no_answer()
            } else {
                failure(status, e.to_string(), false)
            }
        };
        let call = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| sent_error(None, &e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(|e| sent_error(Some(status.as_u16()), &e))?;
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(self.request_timeout, call)
            .await
            .map_err(|_| no_answer())??;
        if !status.is_success() {
            let (message, from_api_server) = error_message(&body);
            return Err(failure(Some(status.as_u16()), message, from_api_server));
        }
        let status = status.as_u16();
        let reply: Value = serde_json::from_slice(&body)
            .map_err(|e| failure(Some(status), format!("not JSON ({e})"), false))?;
        serde_json::from_value(reply)
            .map_err(|e| failure(Some(status), format!("not the expected reply ({e})"), false))
    }
}

/// Whether an error, or anything it wraps, is an I/O timeout.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The message of an error body: a Kubernetes `Status`, or the data plane's
/// OpenAI/Anthropic/Gemini-shaped error, else the text itself; and whether the API
/// server (not the data plane) said it.
fn error_message(body: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(body).trim().to_string();
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let short: String = text.chars().take(300).collect();
        return (short, false);
    };
    if v["kind"] == "Status" {
        return (v["message"].as_str().unwrap_or(&text).to_string(), true);
    }
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .or_else(|| v["message"].as_str())
        .unwrap_or(&text);
    (message.to_string(), false)
}
