//! OAuth2 access tokens for Google Vertex AI, whose calls carry
//! `Authorization: Bearer <token>`: from a service-account key by the JWT-bearer
//! exchange (yup-oauth2 signs and posts the assertion), or from the metadata server
//! under workload identity.
//!
//! One cache for both sources: a token is served while it has more than
//! [`REFRESH_MARGIN`] left, read without a lock on the hot path; the caller that finds
//! it stale fetches anew while the others wait for that one fetch.

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::{CustomHyperClientBuilder, ServiceAccountAuthenticator, ServiceAccountKey};

/// The one scope Vertex AI needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A token this close to its expiry is fetched anew, so one handed out is still valid
/// when the provider checks it, even after a slow request body.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How long one token fetch may take before the call fails (502) rather than hangs.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer from a token endpoint is a few hundred bytes; more is not one.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How much of an error answer's body an error message quotes.
const QUOTED_BODY_BYTES: usize = 256;

const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Why no access token could be had. Messages name the key's account, the endpoint and
/// what it answered; never the private key.
#[derive(Debug, thiserror::Error)]
pub enum GoogleAuthError {
    #[error("the Google service-account key is not usable: {0}")]
    InvalidKey(String),
    #[error(
        "the service-account key's token_uri `{0}` is not an http(s) URL; \
         Google's keys use https://oauth2.googleapis.com/token"
    )]
    InvalidTokenUri(String),
    #[error("metadata server host `{0}` does not make a valid URL (expected host or host:port)")]
    InvalidMetadataHost(String),
    #[error("could not reach the Google token endpoint {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("the Google token endpoint {endpoint} did not answer within {}s", FETCH_TIMEOUT.as_secs())]
    TimedOut { endpoint: String },
    #[error("the Google token endpoint {endpoint} refused the token request: {reason}")]
    Refused { endpoint: String, reason: String },
    #[error("the Google token endpoint {endpoint} answered HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error(
        "the Google token endpoint {endpoint} answered without a usable access token: {reason}"
    )]
    BadAnswer { endpoint: String, reason: String },
}

/// Where a Vertex provider's access tokens come from.
pub struct GoogleTokens {
    source: Source,
    cached: ArcSwapOption<CachedToken>,
    /// Held while fetching, so concurrent callers share one fetch.
    refresh: tokio::sync::Mutex<()>,
}

struct CachedToken {
    token: Arc<str>,
    /// When the token stops being handed out: its expiry less [`REFRESH_MARGIN`].
    stale_at: Instant,
}

enum Source {
    ServiceAccount {
        // yup-oauth2 keeps a cache of its own; it is bypassed (`force_refreshed_token`)
        // so this module's cache alone decides when to fetch.
        auth: Authenticator<HttpsConnector<HttpConnector>>,
        token_uri: String,
    },
    Metadata {
        host: String,
        // Boxed: the pool is large beside the other source, and made once.
        client: Box<Client<HttpConnector, Empty<Bytes>>>,
    },
}

/// A token as the source handed it out, with its life from now (`None`: unknown).
struct Fetched {
    token: String,
    expires_in: Option<Duration>,
}

impl GoogleTokens {
    /// A service-account key (the JSON file Google issues, as a string): tokens by the
    /// OAuth2 JWT-bearer exchange at the key's `token_uri`.
    pub async fn from_service_account_key(json: &str) -> Result<Self, GoogleAuthError> {
        let key = parse_key(json)?;
        let token_uri = key.token_uri.clone();
        // yup-oauth2 unwraps the request it builds from `token_uri`: check it first.
        match token_uri.parse::<Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("https" | "http"))
                    && uri.authority().is_some() => {}
            _ => return Err(GoogleAuthError::InvalidTokenUri(token_uri)),
        }
        // The gateway's TLS setup (rustls, ring, webpki roots), so the image needs no
        // CA bundle; plain http only where a key names it (a test's loopback fake).
        let https = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new()).build::<_, String>(https);
        let client_email = key.client_email.clone();
        let auth =
            ServiceAccountAuthenticator::with_client(key, CustomHyperClientBuilder::from(client))
                .with_timeout(FETCH_TIMEOUT)
                .build()
                .await
                // The signer's errors say what is wrong with the PEM, not what is in it.
                .map_err(|e| {
                    GoogleAuthError::InvalidKey(format!("private_key of {client_email}: {e}"))
                })?;
        Ok(Self::with_source(Source::ServiceAccount {
            auth,
            token_uri,
        }))
    }

    /// Workload identity: tokens from the metadata server (`GCE_METADATA_HOST` env or
    /// the given host overrides `metadata.google.internal`), `Metadata-Flavor: Google`.
    pub fn from_metadata_server(host: Option<String>) -> Self {
        // An explicit host (configuration) wins over the ambient environment.
        let host = host
            .or_else(|| std::env::var("GCE_METADATA_HOST").ok())
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_owned());
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self::with_source(Source::Metadata {
            host,
            client: Box::new(client),
        })
    }

    fn with_source(source: Source) -> Self {
        GoogleTokens {
            source,
            cached: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// A valid access token, from the cache while it has more than a minute left,
    /// else fetched anew (concurrent callers share one fetch).
    pub async fn access_token(&self) -> Result<Arc<str>, GoogleAuthError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _fetching = self.refresh.lock().await;
        // Whoever held the lock before may just have fetched one.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let fetched = self.source.fetch().await?;
        let token: Arc<str> = fetched.token.into();
        // A token of unknown life is used for this call only, never trusted for later.
        let life = fetched.expires_in.unwrap_or_default();
        self.cached.store(Some(Arc::new(CachedToken {
            token: token.clone(),
            stale_at: Instant::now() + life.saturating_sub(REFRESH_MARGIN),
        })));
        Ok(token)
    }

    fn fresh(&self) -> Option<Arc<str>> {
        let cached = self.cached.load();
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.stale_at)
            .map(|c| c.token.clone())
    }
}

impl Source {
    async fn fetch(&self) -> Result<Fetched, GoogleAuthError> {
        match self {
            Source::ServiceAccount { auth, token_uri } => {
                let answer = auth
                    .force_refreshed_token(&[CLOUD_PLATFORM_SCOPE])
                    .await
                    .map_err(|e| service_account_error(token_uri, e))?;
                let token = answer
                    .token()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| GoogleAuthError::BadAnswer {
                        endpoint: token_uri.clone(),
                        reason: "no access_token".to_owned(),
                    })?
                    .to_owned();
                let expires_in = answer.expiration_time().map(|at| {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let left = at.unix_timestamp().saturating_sub_unsigned(now);
                    Duration::from_secs(u64::try_from(left).unwrap_or(0))
                });
                Ok(Fetched { token, expires_in })
            }
            Source::Metadata { host, client } => metadata_token(host, client).await,
        }
    }
}

fn parse_key(json: &str) -> Result<ServiceAccountKey, GoogleAuthError> {
    let key: ServiceAccountKey = serde_json::from_str(json)
        .map_err(|e| GoogleAuthError::InvalidKey(describe_json_error(&e)))?;
    if let Some(kind) = key.key_type.as_deref().filter(|k| *k != "service_account") {
        return Err(GoogleAuthError::InvalidKey(format!(
            "its `type` is `{kind}`; a service-account key (`service_account`) is needed"
        )));
    }
    Ok(key)
}

/// What is wrong with the key's JSON, without quoting it: serde quotes an offending
/// value, which could be key material, so only a missing field is named.
fn describe_json_error(e: &serde_json::Error) -> String {
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Data => {
            let message = e.to_string();
            if message.starts_with("missing field") {
                message
            } else {
                format!("a field has the wrong type at {at}")
            }
        }
        _ => format!("not valid JSON ({at})"),
    }
}

fn service_account_error(token_uri: &str, e: yup_oauth2::Error) -> GoogleAuthError {
    use yup_oauth2::error::SendError;
    let endpoint = token_uri.to_owned();
    match e {
        yup_oauth2::Error::HttpClientError(SendError::Timeout) => {
            GoogleAuthError::TimedOut { endpoint }
        }
        yup_oauth2::Error::HttpClientError(e) => GoogleAuthError::Unreachable {
            endpoint,
            reason: with_causes(&e),
        },
        yup_oauth2::Error::HttpError(e) => GoogleAuthError::Unreachable {
            endpoint,
            reason: with_causes(&e),
        },
        // Google's `error` and `error_description`, e.g. `invalid_grant`.
        yup_oauth2::Error::AuthError(e) => GoogleAuthError::Refused {
            endpoint,
            reason: e.to_string(),
        },
        // yup-oauth2 reads the body whatever the status, so an error page lands here.
        yup_oauth2::Error::JSONError(e) => GoogleAuthError::BadAnswer {
            endpoint,
            reason: format!("the answer is not a token document ({e})"),
        },
        other => GoogleAuthError::BadAnswer {
            endpoint,
            reason: with_causes(&other),
        },
    }
}

/// The metadata server's token answer.
#[derive(Deserialize)]
struct MetadataToken {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

async fn metadata_token(
    host: &str,
    client: &Client<HttpConnector, Empty<Bytes>>,
) -> Result<Fetched, GoogleAuthError> {
    let endpoint = format!("http://{host}{METADATA_TOKEN_PATH}");
    let invalid_host = || GoogleAuthError::InvalidMetadataHost(host.to_owned());
    let uri: Uri = format!("{endpoint}?scopes={}", SCOPE_QUERY_VALUE)
        .parse()
        .map_err(|_| invalid_host())?;
    if uri.path() != METADATA_TOKEN_PATH {
        return Err(invalid_host());
    }
    let request = http::Request::get(uri)
        .header("metadata-flavor", "Google")
        .body(Empty::new())
        .map_err(|_| invalid_host())?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| GoogleAuthError::Unreachable {
                endpoint: endpoint.clone(),
                reason: with_causes(&e),
            })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| GoogleAuthError::Unreachable {
                endpoint: endpoint.clone(),
                reason: format!("reading the answer: {e}"),
            })?
            .to_bytes();
        Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| GoogleAuthError::TimedOut {
            endpoint: endpoint.clone(),
        })??;
    if status != StatusCode::OK {
        return Err(GoogleAuthError::Status {
            endpoint,
            status: status.as_u16(),
            body: quoted(&body),
        });
    }
    let answer: MetadataToken =
        serde_json::from_slice(&body).map_err(|e| GoogleAuthError::BadAnswer {
            endpoint: endpoint.clone(),
            reason: format!("the answer is not a token document ({e})"),
        })?;
    if let Some(kind) = answer
        .token_type
        .as_deref()
        .filter(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(GoogleAuthError::BadAnswer {
            endpoint,
            reason: format!("token_type is `{kind}`, not Bearer"),
        });
    }
    if answer.access_token.is_empty() {
        return Err(GoogleAuthError::BadAnswer {
            endpoint,
            reason: "access_token is empty".to_owned(),
        });
    }
    Ok(Fetched {
        token: answer.access_token,
        expires_in: answer.expires_in.map(Duration::from_secs),
    })
}

/// [`CLOUD_PLATFORM_SCOPE`] percent-encoded for a query string.
const SCOPE_QUERY_VALUE: &str = "https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform";

/// The start of an error answer's body, for the message.
fn quoted(body: &[u8]) -> String {
    let start = &body[..body.len().min(QUOTED_BODY_BYTES)];
    String::from_utf8_lossy(start).trim().to_owned()
}

/// An error with its causes, `a: b: c`: hyper's top-level messages alone
/// ("client error (Connect)") do not say what failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use http::header;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    /// A throwaway 2048-bit RSA key (`openssl genpkey -algorithm RSA`), made for these
    /// tests only; it signs for no real account.
    const TEST_PRIVATE_KEY: &str =
        include_str!("../../tests/fixtures/google/test_service_account_key.pem");

    const CLIENT_EMAIL: &str = "gateway@test-project.iam.gserviceaccount.com";

    /// One request the fake token endpoint received.
    struct Seen {
        method: http::Method,
        path_and_query: String,
        headers: http::HeaderMap,
        body: Bytes,
    }

    /// A loopback token endpoint: answers the n-th request (from 1) with `answer(n)`.
    struct FakeTokenEndpoint {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl FakeTokenEndpoint {
        async fn start(answer: impl Fn(usize) -> (u16, String) + Send + Sync + 'static) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let answer = Arc::new(answer);
            let recorded = seen.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (seen, answer) = (recorded.clone(), answer.clone());
                    let service =
                        hyper::service::service_fn(move |req: http::Request<Incoming>| {
                            let (seen, answer) = (seen.clone(), answer.clone());
                            async move {
                                let (head, body) = req.into_parts();
                                let body = body.collect().await?.to_bytes();
                                let n = {
                                    let mut seen = seen.lock().unwrap();
                                    seen.push(Seen {
                                        method: head.method,
                                        path_and_query: head
                                            .uri
                                            .path_and_query()
                                            .unwrap()
                                            .to_string(),
                                        headers: head.headers,
                                        body,
                                    });
                                    seen.len()
                                };
                                let (status, json) = answer(n);
                                Ok::<_, hyper::Error>(
                                    http::Response::builder()
                                        .status(status)
                                        .header(header::CONTENT_TYPE, "application/json")
                                        .body(Full::new(Bytes::from(json)))
                                        .unwrap(),
                                )
                            }
                        });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
            FakeTokenEndpoint { addr, seen }
        }

        fn token_uri(&self) -> String {
            format!("http://{}/token", self.addr)
        }

        fn calls(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    fn token_answer(token: &str, expires_in: u64) -> String {
        serde_json::json!({ "access_token": token, "expires_in": expires_in, "token_type": "Bearer" })
            .to_string()
    }

    fn key_json(token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "0123456789abcdef",
            "private_key": TEST_PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn form_field(body: &[u8], name: &str) -> Option<String> {
        std::str::from_utf8(body)
            .unwrap()
            .split('&')
            .find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then(|| {
                    percent_encoding::percent_decode_str(&v.replace('+', " "))
                        .decode_utf8()
                        .unwrap()
                        .into_owned()
                })
            })
    }

    fn jwt_part(part: &str) -> serde_json::Value {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    #[tokio::test]
    async fn service_account_key_gets_a_token_by_jwt_bearer_grant_at_its_token_uri() {
        let fake = FakeTokenEndpoint::start(|_| (200, token_answer("ya29.from-key", 3599))).await;
        let tokens = GoogleTokens::from_service_account_key(&key_json(&fake.token_uri()))
            .await
            .unwrap();

        assert_eq!(&*tokens.access_token().await.unwrap(), "ya29.from-key");

        let seen = fake.seen.lock().unwrap();
        let grant = &seen[0];
        assert_eq!(grant.method, http::Method::POST);
        assert_eq!(grant.path_and_query, "/token");
        assert_eq!(
            grant.headers[header::CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            form_field(&grant.body, "grant_type").as_deref(),
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        );
        let assertion = form_field(&grant.body, "assertion").unwrap();
        let parts: Vec<&str> = assertion.split('.').collect();
        assert_eq!(parts.len(), 3, "a signed JWT: header.claims.signature");
        assert_eq!(jwt_part(parts[0])["alg"], "RS256");
        let claims = jwt_part(parts[1]);
        assert_eq!(claims["iss"], CLIENT_EMAIL);
        assert_eq!(claims["aud"], fake.token_uri());
        assert_eq!(claims["scope"], CLOUD_PLATFORM_SCOPE);
        assert!(!parts[2].is_empty());
    }

    #[tokio::test]
    async fn short_lived_token_is_fetched_anew_and_long_lived_one_served_from_cache() {
        // 30s left is inside the refresh margin: tok-1 is used once, then replaced.
        let fake = FakeTokenEndpoint::start(|n| match n {
            1 => (200, token_answer("tok-1", 30)),
            _ => (200, token_answer("tok-2", 3600)),
        })
        .await;
        let tokens = GoogleTokens::from_service_account_key(&key_json(&fake.token_uri()))
            .await
            .unwrap();

        assert_eq!(&*tokens.access_token().await.unwrap(), "tok-1");
        assert_eq!(&*tokens.access_token().await.unwrap(), "tok-2");
        assert_eq!(&*tokens.access_token().await.unwrap(), "tok-2");
        assert_eq!(fake.calls(), 2, "tok-2 is served from the cache");
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let fake =
            FakeTokenEndpoint::start(|n| (200, token_answer(&format!("tok-{n}"), 3600))).await;
        let tokens = Arc::new(GoogleTokens::from_metadata_server(Some(
            fake.addr.to_string(),
        )));

        let callers: Vec<_> = (0..16)
            .map(|_| {
                let tokens = tokens.clone();
                tokio::spawn(async move { tokens.access_token().await.unwrap() })
            })
            .collect();
        for caller in callers {
            assert_eq!(&*caller.await.unwrap(), "tok-1");
        }
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test]
    async fn metadata_server_flow_asks_with_metadata_flavor_header() {
        let fake =
            FakeTokenEndpoint::start(|_| (200, token_answer("ya29.from-metadata", 3599))).await;
        let tokens = GoogleTokens::from_metadata_server(Some(fake.addr.to_string()));

        assert_eq!(&*tokens.access_token().await.unwrap(), "ya29.from-metadata");
        assert_eq!(&*tokens.access_token().await.unwrap(), "ya29.from-metadata");

        let seen = fake.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "the second token came from the cache");
        assert_eq!(seen[0].method, http::Method::GET);
        assert_eq!(seen[0].headers["metadata-flavor"], "Google");
        assert_eq!(
            seen[0].path_and_query,
            format!("{METADATA_TOKEN_PATH}?scopes={SCOPE_QUERY_VALUE}")
        );
    }

    #[tokio::test]
    async fn token_endpoint_answering_500_is_an_error_and_is_not_cached() {
        let fake = FakeTokenEndpoint::start(|_| {
            (
                500,
                r#"{"error":"internal_failure","error_description":"backend error"}"#.to_owned(),
            )
        })
        .await;

        let metadata = GoogleTokens::from_metadata_server(Some(fake.addr.to_string()));
        let err = metadata.access_token().await.unwrap_err();
        assert!(
            matches!(err, GoogleAuthError::Status { status: 500, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&fake.addr.to_string()), "{err}");

        let key = GoogleTokens::from_service_account_key(&key_json(&fake.token_uri()))
            .await
            .unwrap();
        let err = key.access_token().await.unwrap_err();
        assert!(matches!(err, GoogleAuthError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("internal_failure"), "{err}");

        // A failure is not remembered: the next call asks again.
        assert!(key.access_token().await.is_err());
        assert_eq!(fake.calls(), 3);
    }

    #[tokio::test]
    async fn error_page_instead_of_token_is_an_error() {
        let fake = FakeTokenEndpoint::start(|_| (502, "<html>Bad Gateway</html>".to_owned())).await;
        let key = GoogleTokens::from_service_account_key(&key_json(&fake.token_uri()))
            .await
            .unwrap();
        let err = key.access_token().await.unwrap_err();
        assert!(matches!(err, GoogleAuthError::BadAnswer { .. }), "{err}");
    }

    #[tokio::test]
    async fn unreachable_token_endpoint_is_an_error() {
        // Bound and dropped: nothing listens there any more.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let tokens = GoogleTokens::from_metadata_server(Some(addr.to_string()));
        let err = tokens.access_token().await.unwrap_err();
        assert!(matches!(err, GoogleAuthError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn unusable_keys_are_refused_without_quoting_the_private_key() {
        let broken_pem = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n";
        let mut key: serde_json::Value =
            serde_json::from_str(&key_json("https://oauth2.googleapis.com/token")).unwrap();
        key["private_key"] = broken_pem.into();
        let err = GoogleTokens::from_service_account_key(&key.to_string())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, GoogleAuthError::InvalidKey(_)), "{err}");
        assert!(err.to_string().contains(CLIENT_EMAIL), "{err}");
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");

        // The wrong shape where the key belongs: the message stays about the shape.
        key["private_key"] = serde_json::json!(["c2VjcmV0"]);
        let err = GoogleTokens::from_service_account_key(&key.to_string())
            .await
            .err()
            .unwrap();
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");

        let err = GoogleTokens::from_service_account_key(r#"{"type":"service_account"}"#)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing field"), "{err}");

        key["private_key"] = TEST_PRIVATE_KEY.into();
        key["type"] = "authorized_user".into();
        let err = GoogleTokens::from_service_account_key(&key.to_string())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("authorized_user"), "{err}");

        key["type"] = "service_account".into();
        key["token_uri"] = "not a url".into();
        let err = GoogleTokens::from_service_account_key(&key.to_string())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, GoogleAuthError::InvalidTokenUri(_)), "{err}");
    }

    #[test]
    fn tokens_are_shareable_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<GoogleTokens>();
    }
}
