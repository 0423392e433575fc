//! One configured provider, ready to call: its base URL parsed once, credentials
//! resolved, and the HTTP client and circuit breaker it shares across config swaps.

use super::client::{self, Lanes};
use super::google_auth::GoogleTokens;
use ai_gateway_snapshot::{unresolved_reference, Provider, ProviderKind};
use hyper_util::client::proxy::matcher::Matcher;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One configured provider, ready to call.
pub struct Upstream {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash.
    pub base_url: String,
    /// `base_url` parsed once: calls reuse its scheme and host, and add their path to its.
    base_uri: Option<http::Uri>,
    /// The `host` header of every call to a plain-HTTP base URL, made once (the HTTP
    /// client would format it anew for each request). None for HTTPS: ALPN may pick
    /// HTTP/2, where the authority travels as `:authority` and a `host` beside it is a
    /// duplicate that servers such as nginx refuse with 400.
    pub host: Option<http::HeaderValue>,
    pub config: Provider,
    /// Why the provider cannot serve (an unset credential variable, a missing key).
    pub inactive: Option<String>,
    pub client: Arc<Lanes>,
    pub breaker: Arc<super::breaker::Breaker>,
    /// Credentials and configured headers, see [`super::provider_headers`].
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A Vertex AI provider's OAuth2 tokens (none when its `api_key` is a fixed token).
    pub google: Option<Arc<GoogleCredentials>>,
}

/// A Vertex AI provider's token source, made on first use (a service-account key is
/// parsed then) and kept across config swaps while the key stays the same, so its
/// cached token outlives them.
pub struct GoogleCredentials {
    service_account_key: Option<String>,
    tokens: tokio::sync::OnceCell<Result<GoogleTokens, String>>,
}

impl GoogleCredentials {
    /// A valid access token, fetched or from the cache.
    pub async fn access_token(&self) -> Result<Arc<str>, String> {
        let tokens = self
            .tokens
            .get_or_init(|| async {
                match &self.service_account_key {
                    Some(key) => GoogleTokens::from_service_account_key(key)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Ok(GoogleTokens::from_metadata_server(None)),
                }
            })
            .await
            .as_ref()?;
        tokens.access_token().await.map_err(|e| e.to_string())
    }
}

impl Upstream {
    /// The provider as callers and the admin API see it: kind, region, whether it is
    /// active and its breaker's state now.
    pub fn info(&self) -> ai_gateway_snapshot::replies::ProviderInfo {
        use ai_gateway_snapshot::replies::{ProviderInfo, ProviderStatus};
        ProviderInfo {
            name: self.name.clone(),
            kind: self.kind,
            region: self.config.region.clone(),
            status: match self.inactive {
                Some(_) => ProviderStatus::Inactive,
                None => ProviderStatus::Active,
            },
            circuit: self.breaker.state(super::breaker::now_ms()),
            reason: self.inactive.clone(),
            models: self.config.models.clone(),
        }
    }
}

impl Upstream {
    /// A provider ready to call, on the pool's shared client and breaker.
    pub fn new(name: &str, config: &Provider, pool: &ClientPool) -> Self {
        let base_url = config
            .base_url()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let inactive = inactive_reason(config).or_else(|| {
            (!is_http_base(&base_url))
                .then(|| format!("base_url `{base_url}` is not an http(s) URL"))
        });
        let base_uri = http::Uri::try_from(base_url.as_str())
            .ok()
            .filter(|u| u.scheme().is_some() && u.authority().is_some());
        let host = base_uri
            .as_ref()
            .filter(|u| u.scheme_str() == Some("http"))
            .and_then(host_header);
        let address = base_uri.as_ref().map_or_else(String::new, |u| {
            format!(
                "{}://{}",
                u.scheme_str().unwrap_or_default(),
                u.authority().map_or("", |a| a.as_str())
            )
        });
        let (client, untrusted) = pool.client(
            address,
            config.timeouts.connect_ms,
            client::Trust::of(config),
        );
        let inactive = inactive.or(untrusted);
        Self {
            name: name.to_string(),
            kind: config.kind,
            base_uri,
            host,
            base_url,
            inactive,
            client,
            breaker: pool.breaker(name),
            headers: super::provider_headers(config),
            google: (config.kind == ProviderKind::Vertex && config.api_key.is_none())
                .then(|| pool.google(name, config.service_account_key.as_deref())),
            config: config.clone(),
        }
    }

    /// Where a call to `path_and_query` (which starts with `/`) goes: the base URL's
    /// scheme and host are reused rather than parsed again on every call.
    pub fn uri(&self, path_and_query: &str) -> Result<http::Uri, String> {
        let base = self
            .base_uri
            .as_ref()
            .ok_or_else(|| format!("`{}` is not an http(s) URL", self.base_url))?;
        let base_path = base.path().trim_end_matches('/');
        let mut path = String::with_capacity(base_path.len() + path_and_query.len());
        path.push_str(base_path);
        path.push_str(path_and_query);
        let mut parts = http::uri::Parts::default();
        parts.scheme = base.scheme().cloned();
        parts.authority = base.authority().cloned();
        parts.path_and_query = Some(
            http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(path))
                .map_err(|e| format!("`{path_and_query}` is not a valid path: {e}"))?,
        );
        http::Uri::from_parts(parts).map_err(|e| e.to_string())
    }

    /// Where a Vertex AI provider serves its publishers' models.
    pub fn vertex(&self) -> Option<super::paths::VertexLocation<'_>> {
        match (self.kind, &self.config.project, &self.config.region) {
            (ProviderKind::Vertex, Some(project), Some(region)) => {
                Some(super::paths::VertexLocation { project, region })
            }
            _ => None,
        }
    }

    pub fn speaks_openai(&self) -> bool {
        matches!(
            self.kind,
            ProviderKind::Openai
                | ProviderKind::OpenaiCompatible
                | ProviderKind::AzureOpenai
                | ProviderKind::Ollama
        )
    }
}

/// What outlives snapshots: HTTP clients (lanes per provider address, connect timeout
/// and trust, so a config swap keeps warm upstream connections) and each provider's
/// circuit state.
pub struct ClientPool {
    /// By provider address (scheme and authority), connect timeout and trusted CAs.
    clients: Mutex<HashMap<(String, u64, client::Trust), Arc<Lanes>>>,
    breakers: Mutex<HashMap<String, Arc<super::breaker::Breaker>>>,
    /// By provider name, with the service-account key it was made from.
    google: Mutex<HashMap<String, Arc<GoogleCredentials>>>,
    proxies: Arc<Matcher>,
}

impl Default for ClientPool {
    fn default() -> Self {
        Self {
            clients: Mutex::default(),
            breakers: Mutex::default(),
            google: Mutex::default(),
            proxies: client::proxies_from_env(),
        }
    }
}

impl ClientPool {
    fn breaker(&self, provider: &str) -> Arc<super::breaker::Breaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers.entry(provider.to_string()).or_default().clone()
    }

    fn google(&self, provider: &str, key: Option<&str>) -> Arc<GoogleCredentials> {
        let mut google = self.google.lock().unwrap_or_else(|p| p.into_inner());
        match google.get(provider) {
            Some(kept) if kept.service_account_key.as_deref() == key => kept.clone(),
            _ => {
                let made = Arc::new(GoogleCredentials {
                    service_account_key: key.map(str::to_string),
                    tokens: tokio::sync::OnceCell::new(),
                });
                google.insert(provider.to_string(), made.clone());
                made
            }
        }
    }

    /// The lanes for a provider address, connect timeout and the CAs it trusts; with
    /// the reason the provider cannot be served when those are unusable (then lanes
    /// that trust only the public roots, which the inactive provider never uses).
    fn client(
        &self,
        address: String,
        connect_ms: u64,
        trust: client::Trust,
    ) -> (Arc<Lanes>, Option<String>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let key = (address, connect_ms, trust);
        if let Some(lanes) = clients.get(&key) {
            return (lanes.clone(), None);
        }
        let connect = Duration::from_millis(connect_ms);
        match client::lanes(connect, self.proxies.clone(), &key.2) {
            Ok(lanes) => {
                let lanes = Arc::new(lanes);
                clients.insert(key, lanes.clone());
                (lanes, None)
            }
            Err(reason) => (
                Arc::new(client::public_lanes(connect, self.proxies.clone())),
                Some(reason),
            ),
        }
    }
}

/// `host[:port]`, the port only when it is not the scheme's default.
fn host_header(uri: &http::Uri) -> Option<http::HeaderValue> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    http::HeaderValue::from_str(&value).ok()
}

/// A base URL calls can extend with a path: scheme, host, and no query or fragment.
fn is_http_base(base_url: &str) -> bool {
    http::Uri::try_from(base_url).is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.host().is_some_and(|h| !h.is_empty())
            && u.query().is_none()
    }) && !base_url.contains('#')
}

fn inactive_reason(p: &Provider) -> Option<String> {
    let credentials = [
        ("api_key", &p.api_key),
        ("access_key_id", &p.access_key_id),
        ("secret_access_key", &p.secret_access_key),
        ("session_token", &p.session_token),
        ("base_url", &p.base_url),
        ("region", &p.region),
        ("project", &p.project),
        ("service_account_key", &p.service_account_key),
    ];
    for (field, value) in credentials {
        if let Some(var) = value.as_deref().and_then(unresolved_reference) {
            return Some(format!(
                "{field} needs environment variable {var}, which is not set"
            ));
        }
    }
    let has_key = p.api_key.as_deref().is_some_and(|k| !k.is_empty());
    match p.kind {
        ProviderKind::Anthropic | ProviderKind::Openai | ProviderKind::AzureOpenai | ProviderKind::Gemini
            if !has_key =>
        {
            Some("no api_key is configured".into())
        }
        ProviderKind::Bedrock if !has_key && (p.access_key_id.is_none() || p.secret_access_key.is_none()) => {
            Some("no AWS credentials (access_key_id and secret_access_key, or api_key) are configured".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::host_header;

    #[test]
    fn the_host_header_names_a_port_only_when_it_is_not_the_default() {
        let host = |url: &str| {
            let uri = http::Uri::try_from(url).expect("uri");
            host_header(&uri)
                .expect("host")
                .to_str()
                .expect("text")
                .to_string()
        };
        assert_eq!(host("http://127.0.0.1:11434/v1"), "127.0.0.1:11434");
        assert_eq!(host("https://api.openai.com/v1"), "api.openai.com");
        assert_eq!(host("https://api.openai.com:443"), "api.openai.com");
        assert_eq!(host("http://ollama:80"), "ollama");
        assert_eq!(host("https://gw.internal:8443"), "gw.internal:8443");
        assert_eq!(host("http://[::1]:8080"), "[::1]:8080");
    }
}
