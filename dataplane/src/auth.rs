//! Who is calling: gateway API keys (held as SHA-256 hashes), trusted workspace
//! headers, or nobody in particular (local development).

use crate::error::GatewayError;
use ai_gateway_snapshot::{ApiKey, Auth, AuthMode};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The caller of one request, as limits, usage and audit see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub key_id: Option<String>,
    pub user: String,
    pub team: Option<String>,
    pub workspace: Option<String>,
}

impl Identity {
    fn anonymous(headers: &HeaderMap) -> Self {
        Self {
            key_id: None,
            user: header(headers, USER_ID).unwrap_or("anonymous").to_string(),
            team: None,
            workspace: header(headers, WORKSPACE_ID).map(str::to_string),
        }
    }
}

/// Keys by the SHA-256 of their plaintext, built once per snapshot.
pub struct KeyStore {
    mode: AuthMode,
    keys: HashMap<[u8; 32], Arc<ApiKey>>,
    /// Keys issued as AWS-style pairs, by access key id.
    sigv4: HashMap<String, Arc<ApiKey>>,
    pod_identity: bool,
}

/// How far a SigV4 request's clock may be from the gateway's, as AWS allows.
const SIGV4_MAX_SKEW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Who the caller is, or that its SigV4 signature must first be checked against the body.
pub enum Authenticated {
    Caller(Identity),
    PendingSigV4,
    /// A bearer credential that is no gateway key: a ServiceAccount token to review.
    PendingTokenReview(String),
    /// No credential at all, where callers may be known by their pod's address.
    PendingPodLookup,
}

impl KeyStore {
    pub fn new(auth: &Auth) -> Self {
        let all: Vec<Arc<ApiKey>> = auth.keys.iter().cloned().map(Arc::new).collect();
        let keys = all
            .iter()
            .filter_map(|k| {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(&k.sha256, &mut digest).ok()?;
                Some((digest, k.clone()))
            })
            .collect();
        let sigv4 = all
            .iter()
            .filter(|k| k.sigv4_secret.is_some())
            .map(|k| (k.id.clone(), k.clone()))
            .collect();
        Self {
            mode: auth.mode,
            keys,
            sigv4,
            pod_identity: auth.pod_identity,
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Identifies the caller from its headers; a SigV4-signed call is checked later,
    /// once its body has been read.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Authenticated, GatewayError> {
        let sigv4 =
            header(headers, AUTHORIZATION).is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"));
        if sigv4 && self.mode == AuthMode::Keys {
            // boto3 and the aws cli sign whatever credentials they find: a signature
            // with ones the gateway never issued, beside a gateway key in `x-api-key`,
            // is the key's. A signature from a gateway-issued pair wins when it is one.
            if self.sigv4_claim(headers).is_err() && header(headers, API_KEY).is_some() {
                return self.by_key(headers, query).map(Authenticated::Caller);
            }
            return Ok(Authenticated::PendingSigV4);
        }
        if self.mode == AuthMode::Kubernetes {
            // Gateway keys still work; anything else must be a ServiceAccount token.
            return match self.by_key(headers, query) {
                Ok(identity) => Ok(Authenticated::Caller(identity)),
                Err(e) => match presented_key(headers, query) {
                    // Only a JWT goes to the API server: a mistyped gateway key must not
                    // end up in its audit log.
                    Some(token) if looks_like_jwt(token) => {
                        Ok(Authenticated::PendingTokenReview(token.to_string()))
                    }
                    Some(_) => Err(e),
                    // An AWS signature made with the workspace's own credentials, or
                    // nothing: the pod it comes from says who it is.
                    None if self.pod_identity => Ok(Authenticated::PendingPodLookup),
                    None => Err(GatewayError::Unauthorized(
                        "missing credentials: send a projected ServiceAccount token (audience `ai-gateway`) or a gateway key as `Authorization: Bearer`".into(),
                    )),
                },
            };
        }
        self.identify(headers, query).map(Authenticated::Caller)
    }

    /// Checks a SigV4 signature made with a gateway-issued pair (access key id = key id,
    /// secret = the key's `sigv4_secret`) over the request exactly as it arrived.
    pub fn authenticate_sigv4(
        &self,
        method: &http::Method,
        url: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Identity, GatewayError> {
        use crate::sigv4::{parse_authorization, signature_matches};
        let denied = GatewayError::Unauthorized;
        let key = self.sigv4_claim(headers)?;
        let auth = header(headers, AUTHORIZATION).unwrap_or_default();
        let presented = parse_authorization(auth).map_err(|e| denied(e.to_string()))?;
        // Routing the caller asks for is part of what it signs, or it is not taken.
        if headers.contains_key(X_PROVIDER)
            && !presented.signed_headers.contains(&X_PROVIDER.as_str())
        {
            return Err(denied(
                "x-provider must be among the signed headers of a SigV4 request".into(),
            ));
        }
        let secret = key.sigv4_secret.as_deref().unwrap_or_default();
        match signature_matches(&presented, secret, method, url, headers, body) {
            Ok(true) => Ok(identity_of(key)),
            Ok(false) => Err(denied(
                "the request signature does not match; check the secret access key".into(),
            )),
            Err(e) => Err(denied(e.to_string())),
        }
    }

    /// The gateway key a SigV4 signature claims, checked as far as the headers allow
    /// (a known access key id, service `bedrock`, a current date) so that a stranger is
    /// refused before the body the signature covers is read.
    pub fn sigv4_claim(&self, headers: &HeaderMap) -> Result<&ApiKey, GatewayError> {
        use crate::sigv4::{parse_amz_date, parse_authorization};
        let denied = GatewayError::Unauthorized;
        let auth = header(headers, AUTHORIZATION).unwrap_or_default();
        let presented = parse_authorization(auth).map_err(|e| denied(e.to_string()))?;
        if presented.service != crate::sigv4::BEDROCK_SERVICE {
            return Err(denied(format!(
                "signatures are accepted for service `bedrock` only, not `{}`",
                presented.service
            )));
        }
        let key = self.sigv4.get(presented.access_key_id).ok_or_else(|| {
            denied(format!(
                "access key id `{}` is not a gateway key",
                presented.access_key_id
            ))
        })?;
        let date = header(headers, AMZ_DATE).unwrap_or_default();
        let signed_at = parse_amz_date(date).map_err(|e| denied(e.to_string()))?;
        let now = std::time::SystemTime::now();
        let skew = now
            .duration_since(signed_at)
            .or_else(|_| signed_at.duration_since(now))
            .unwrap_or_default();
        if skew > SIGV4_MAX_SKEW {
            return Err(denied(
                "the request signature is too old or too far in the future".into(),
            ));
        }
        Ok(key)
    }

    fn identify(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Identity, GatewayError> {
        match self.mode {
            AuthMode::None => Ok(Identity::anonymous(headers)),
            AuthMode::TrustedHeaders => {
                let workspace = header(headers, WORKSPACE_ID);
                let user = header(headers, USER_ID).or(workspace).ok_or_else(|| {
                    GatewayError::Unauthorized(
                        "send X-User-ID or X-Workspace-ID to identify the caller".into(),
                    )
                })?;
                Ok(Identity {
                    key_id: None,
                    user: user.to_string(),
                    team: header(headers, TEAM_ID).map(str::to_string),
                    workspace: workspace.map(str::to_string),
                })
            }
            AuthMode::Keys => self.by_key(headers, query),
            AuthMode::Kubernetes => self.by_key(headers, query),
        }
    }

    fn by_key(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Identity, GatewayError> {
        let presented = presented_key(headers, query).ok_or_else(|| {
            GatewayError::Unauthorized(
                "missing API key: send your gateway key (gw_…) as `Authorization: Bearer`, `x-api-key` or `x-goog-api-key`".into(),
            )
        })?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // The map finds the candidate by its decoded digest (decoded once, when the
        // snapshot was built); the byte compare stays constant-time regardless.
        let (_, key) = self
            .keys
            .get_key_value(&digest)
            .filter(|(stored, _)| bool::from(stored.ct_eq(&digest)))
            .ok_or_else(|| GatewayError::Unauthorized("invalid API key".into()))?;
        Ok(identity_of(key))
    }
}

fn identity_of(key: &ApiKey) -> Identity {
    Identity {
        key_id: Some(key.id.clone()),
        user: key.user.clone().unwrap_or_else(|| key.id.clone()),
        team: key.team.clone(),
        // Identity comes from the key alone: a header would let callers pick whose
        // workspace limits and bill they use.
        workspace: key.workspace.clone(),
    }
}

// Names as constants: a name given as text is parsed and checked on every lookup.
const USER_ID: HeaderName = HeaderName::from_static("x-user-id");
const WORKSPACE_ID: HeaderName = HeaderName::from_static("x-workspace-id");
const TEAM_ID: HeaderName = HeaderName::from_static("x-team-id");
const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");
const AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_PROVIDER: HeaderName = HeaderName::from_static("x-provider");

fn header(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The caller's key from whichever header its SDK uses: OpenAI and Claude Code's
/// `ANTHROPIC_AUTH_TOKEN` send a bearer token, Anthropic clients `x-api-key`, Gemini
/// clients `x-goog-api-key` or `?key=`.
fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    header(headers, AUTHORIZATION)
        .and_then(bearer_token)
        .or_else(|| header(headers, API_KEY))
        .or_else(|| header(headers, GOOG_API_KEY))
        .or_else(|| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
                .filter(|k| !k.is_empty())
        })
}

/// Signatures already accepted, for as long as their date would still be: a SigV4
/// request captured on the way (plain HTTP inside the cluster) cannot be sent again.
/// Kept across config swaps. An SDK signs each retry anew, so retries are not replays.
pub struct SigV4Replays(moka::sync::Cache<String, ()>);

impl Default for SigV4Replays {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(SIGV4_MAX_SKEW * 2)
                .build(),
        )
    }
}

impl SigV4Replays {
    /// Records a verified request's signature; refuses one seen before.
    pub fn first_use(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        let signature = header(headers, AUTHORIZATION)
            .and_then(|a| crate::sigv4::parse_authorization(a).ok())
            .map(|p| p.signature.to_string())
            .unwrap_or_default();
        let entry = self.0.entry(signature).or_insert(());
        if entry.is_fresh() {
            Ok(())
        } else {
            Err(GatewayError::Unauthorized(
                "this signed request was already used; sign each request anew".into(),
            ))
        }
    }
}

/// The token of an `Authorization: Bearer …` value; the scheme is case-insensitive.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Three base64url segments, as every ServiceAccount token is.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyStore {
        KeyStore::new(&Auth {
            mode: AuthMode::Keys,
            keys: vec![ApiKey {
                id: "k1".into(),
                sha256: ai_gateway_snapshot::key_sha256("gw_secret"),
                user: Some("contractor1".into()),
                team: Some("platform".into()),
                workspace: None,
                sigv4_secret: None,
            }],
            pod_identity: false,
        })
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn a_key_is_accepted_from_each_header_clients_use() {
        let s = store();
        for h in [
            headers(&[("authorization", "Bearer gw_secret")]),
            headers(&[("x-api-key", "gw_secret")]),
            headers(&[("x-goog-api-key", "gw_secret")]),
        ] {
            let id = s.identify(&h, None).expect("accepted");
            assert_eq!(id.user, "contractor1");
            assert_eq!(id.key_id.as_deref(), Some("k1"));
        }
        let id = s
            .identify(&HeaderMap::new(), Some("alt=sse&key=gw_secret"))
            .expect("query key");
        assert_eq!(id.team.as_deref(), Some("platform"));
    }

    #[test]
    fn missing_and_unknown_keys_are_refused() {
        let s = store();
        let missing = s.identify(&HeaderMap::new(), None).expect_err("refused");
        assert!(missing.to_string().contains("missing API key"));
        let wrong = s
            .identify(&headers(&[("x-api-key", "gw_other")]), None)
            .expect_err("refused");
        assert_eq!(wrong.to_string(), "invalid API key");
        assert_eq!(wrong.status(), http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn trusted_headers_name_the_caller() {
        let s = KeyStore::new(&Auth {
            mode: AuthMode::TrustedHeaders,
            keys: vec![],
            pod_identity: false,
        });
        let id = s
            .identify(&headers(&[("x-workspace-id", "ws-abc123")]), None)
            .expect("accepted");
        assert_eq!(id.user, "ws-abc123");
        assert_eq!(id.workspace.as_deref(), Some("ws-abc123"));
        assert!(s.identify(&HeaderMap::new(), None).is_err());
    }
}
