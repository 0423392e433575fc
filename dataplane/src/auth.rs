//! Who is calling: gateway API keys (held as SHA-256 hashes), trusted workspace
//! headers, or nobody in particular (local development).

use crate::error::GatewayError;
use ai_gateway_snapshot::{ApiKey, Auth, AuthMode};
use http::HeaderMap;
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
            user: header(headers, "x-user-id")
                .unwrap_or("anonymous")
                .to_string(),
            team: None,
            workspace: header(headers, "x-workspace-id").map(str::to_string),
        }
    }
}

/// Keys by the SHA-256 of their plaintext, built once per snapshot.
pub struct KeyStore {
    mode: AuthMode,
    keys: HashMap<[u8; 32], Arc<ApiKey>>,
}

impl KeyStore {
    pub fn new(auth: &Auth) -> Self {
        let keys = auth
            .keys
            .iter()
            .filter_map(|k| {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(&k.sha256, &mut digest).ok()?;
                Some((digest, Arc::new(k.clone())))
            })
            .collect();
        Self {
            mode: auth.mode,
            keys,
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Identity, GatewayError> {
        match self.mode {
            AuthMode::None => Ok(Identity::anonymous(headers)),
            AuthMode::TrustedHeaders => {
                let workspace = header(headers, "x-workspace-id");
                let user = header(headers, "x-user-id").or(workspace).ok_or_else(|| {
                    GatewayError::Unauthorized(
                        "send X-User-ID or X-Workspace-ID to identify the caller".into(),
                    )
                })?;
                Ok(Identity {
                    key_id: None,
                    user: user.to_string(),
                    team: header(headers, "x-team-id").map(str::to_string),
                    workspace: workspace.map(str::to_string),
                })
            }
            AuthMode::Keys => self.by_key(headers, query),
            AuthMode::Kubernetes => Err(GatewayError::Unauthorized(
                "Kubernetes ServiceAccount tokens are not accepted by this build yet".into(),
            )),
        }
    }

    fn by_key(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Identity, GatewayError> {
        let presented = presented_key(headers, query).ok_or_else(|| {
            GatewayError::Unauthorized(
                "missing API key: send your gateway key (gw_…) as `Authorization: Bearer`, `x-api-key` or `x-goog-api-key`".into(),
            )
        })?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // The map finds the candidate; the byte compare stays constant-time regardless.
        let key = self
            .keys
            .get(&digest)
            .filter(|k| {
                let mut stored = [0u8; 32];
                hex::decode_to_slice(&k.sha256, &mut stored).is_ok()
                    && bool::from(stored.ct_eq(&digest))
            })
            .ok_or_else(|| GatewayError::Unauthorized("invalid API key".into()))?;
        Ok(Identity {
            key_id: Some(key.id.clone()),
            user: key.user.clone().unwrap_or_else(|| key.id.clone()),
            team: key.team.clone(),
            // A key bound to a workspace keeps it; otherwise the workspace header names it.
            workspace: key
                .workspace
                .clone()
                .or_else(|| header(headers, "x-workspace-id").map(str::to_string)),
        })
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
    header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::trim))
        .or_else(|| header(headers, "x-api-key"))
        .or_else(|| header(headers, "x-goog-api-key"))
        .or_else(|| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
                .filter(|k| !k.is_empty())
        })
}

/// The SHA-256 hex a snapshot stores for a key's plaintext.
pub fn key_hash(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyStore {
        KeyStore::new(&Auth {
            mode: AuthMode::Keys,
            keys: vec![ApiKey {
                id: "k1".into(),
                sha256: key_hash("gw_secret"),
                user: Some("contractor1".into()),
                team: Some("platform".into()),
                workspace: None,
            }],
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
            let id = s.authenticate(&h, None).expect("accepted");
            assert_eq!(id.user, "contractor1");
            assert_eq!(id.key_id.as_deref(), Some("k1"));
        }
        let id = s
            .authenticate(&HeaderMap::new(), Some("alt=sse&key=gw_secret"))
            .expect("query key");
        assert_eq!(id.team.as_deref(), Some("platform"));
    }

    #[test]
    fn missing_and_unknown_keys_are_refused() {
        let s = store();
        let missing = s
            .authenticate(&HeaderMap::new(), None)
            .expect_err("refused");
        assert!(missing.to_string().contains("missing API key"));
        let wrong = s
            .authenticate(&headers(&[("x-api-key", "gw_other")]), None)
            .expect_err("refused");
        assert_eq!(wrong.to_string(), "invalid API key");
        assert_eq!(wrong.status(), http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn trusted_headers_name_the_caller() {
        let s = KeyStore::new(&Auth {
            mode: AuthMode::TrustedHeaders,
            keys: vec![],
        });
        let id = s
            .authenticate(&headers(&[("x-workspace-id", "ws-abc123")]), None)
            .expect("accepted");
        assert_eq!(id.user, "ws-abc123");
        assert_eq!(id.workspace.as_deref(), Some("ws-abc123"));
        assert!(s.authenticate(&HeaderMap::new(), None).is_err());
    }
}
