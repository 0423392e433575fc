//! Kubernetes ServiceAccount tokens as caller credentials. A token seen for the first
//! time is checked by a TokenReview (audience `ai-gateway`); the caller is named by
//! labels on its namespace (set by the platform team), and by labels on its
//! ServiceAccount only where the namespace allows it; the answer is cached by the
//! token's hash until the token expires, so the API server sees one review per token.
//! Rejections are remembered briefly and reviews are bounded in time and number, so
//! junk tokens cannot turn the gateway into a load generator against the API server.

use crate::auth::Identity;
use crate::error::GatewayError;
use ai_gateway_snapshot::{TEAM_LABEL, USER_LABEL, WORKSPACE_LABEL};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The audience workspace pods request for their projected tokens.
pub const AUDIENCE: &str = "ai-gateway";
/// On a namespace: its ServiceAccounts' own identity labels count (a namespace shared
/// by several developers, each with a ServiceAccount the platform team labels).
pub const TRUST_SA_LABELS: &str = "ai-gateway.dev/serviceaccount-identity";
/// One review (and its two label reads) may take this long.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// A rejected token is answered from memory for this long.
const REJECTION_MEMORY: Duration = Duration::from_secs(30);
/// Reviews in flight at once; further first-time tokens wait their turn.
const CONCURRENT_REVIEWS: usize = 32;
/// Longest a review is trusted, so a deleted ServiceAccount or a relabelled one takes
/// effect within minutes even for long-lived tokens.
const MAX_TRUST: Duration = Duration::from_secs(600);
/// Tokens new to the gateway one client address may have reviewed per minute; past
/// that its further new tokens wait for the next minute (429), and nobody else's do.
const REVIEWS_PER_CLIENT_MINUTE: u32 = 20;

#[derive(Clone)]
struct Reviewed {
    verdict: Result<Identity, String>,
    until: Instant,
}

/// The Kubernetes API client, made on first use from the in-cluster config or the
/// kubeconfig, or given (tests point it at a fake API server).
#[derive(Default)]
pub struct ClusterClient(tokio::sync::OnceCell<kube::Client>);

impl ClusterClient {
    /// Uses this client instead of the in-cluster or kubeconfig one.
    pub fn set(&self, client: kube::Client) -> bool {
        self.0.set(client).is_ok()
    }

    pub async fn get(&self) -> Result<&kube::Client, kube::Error> {
        self.0.get_or_try_init(kube::Client::try_default).await
    }
}

pub struct TokenReviewer {
    client: ClusterClient,
    cache: moka::sync::Cache<[u8; 32], Reviewed>,
    reviews: tokio::sync::Semaphore,
    /// Reviews asked for by each client address in the current minute.
    per_client: moka::sync::Cache<std::net::IpAddr, Arc<AtomicU32>>,
}

impl Default for TokenReviewer {
    fn default() -> Self {
        Self {
            client: ClusterClient::default(),
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(MAX_TRUST)
                .build(),
            reviews: tokio::sync::Semaphore::new(CONCURRENT_REVIEWS),
            per_client: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }
}

fn unavailable(detail: impl std::fmt::Display) -> GatewayError {
    GatewayError::AuthUnavailable(format!("ServiceAccount tokens cannot be checked: {detail}"))
}

impl TokenReviewer {
    /// Uses this client instead of the in-cluster or kubeconfig one.
    pub fn use_client(&self, client: kube::Client) -> bool {
        self.client.set(client)
    }

    async fn client(&self) -> Result<&kube::Client, GatewayError> {
        self.client.get().await.map_err(unavailable)
    }

    /// The caller a token names. `client` is the address it came from, which bounds
    /// how many new tokens one client can have reviewed.
    pub async fn identify(
        &self,
        token: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Identity, GatewayError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = |cache: &moka::sync::Cache<[u8; 32], Reviewed>| {
            cache
                .get(&digest)
                .filter(|hit| hit.until > Instant::now())
                .map(|hit| hit.verdict.map_err(GatewayError::Unauthorized))
        };
        if let Some(verdict) = cached(&self.cache) {
            return verdict;
        }
        // What the token says of itself is read before the API server is asked: an
        // expired token, one for another audience, or junk is refused here.
        claims_allow_review(token)?;
        if let Some(client) = client {
            let count = self
                .per_client
                .get_with(client, || Arc::new(AtomicU32::new(0)));
            if count.fetch_add(1, Ordering::Relaxed) >= REVIEWS_PER_CLIENT_MINUTE {
                return Err(GatewayError::RateLimited {
                    message: format!(
                        "more than {REVIEWS_PER_CLIENT_MINUTE} new ServiceAccount tokens from this address in a minute; retry in 60 s"
                    ),
                    retry_after_secs: 60,
                });
            }
        }
        let _turn = tokio::time::timeout(REVIEW_TIMEOUT, self.reviews.acquire())
            .await
            .map_err(|_| unavailable("every review slot is busy; retry shortly"))?
            .map_err(|_| unavailable("the reviewer is shutting down"))?;
        // Another caller with the same token may have been reviewed while this one waited.
        if let Some(verdict) = cached(&self.cache) {
            return verdict;
        }
        let reviewed = tokio::time::timeout(REVIEW_TIMEOUT, self.review(token))
            .await
            .map_err(|_| {
                unavailable(format!(
                    "the API server did not answer within {} s",
                    REVIEW_TIMEOUT.as_secs()
                ))
            })?;
        match reviewed {
            Ok((identity, lifetime)) => {
                let until = Instant::now() + lifetime;
                self.cache.insert(
                    digest,
                    Reviewed {
                        verdict: Ok(identity.clone()),
                        until,
                    },
                );
                Ok(identity)
            }
            Err(GatewayError::Unauthorized(why)) => {
                self.cache.insert(
                    digest,
                    Reviewed {
                        verdict: Err(why.clone()),
                        until: Instant::now() + REJECTION_MEMORY,
                    },
                );
                Err(GatewayError::Unauthorized(why))
            }
            Err(e) => Err(e),
        }
    }

    /// One TokenReview and the label reads: the identity and how long to trust it.
    async fn review(&self, token: &str) -> Result<(Identity, Duration), GatewayError> {
        let client = self.client().await?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![AUDIENCE.to_string()]),
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(unavailable)?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let why = status.error.unwrap_or_else(|| "not authenticated".into());
            return Err(GatewayError::Unauthorized(format!(
                "the ServiceAccount token was rejected: {why}"
            )));
        }
        // A reviewer that was asked for an audience must say it matched.
        if !status
            .audiences
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a == AUDIENCE))
        {
            return Err(GatewayError::Unauthorized(format!(
                "the ServiceAccount token is not for audience `{AUDIENCE}`"
            )));
        }
        let username = status.user.and_then(|u| u.username).unwrap_or_default();
        let (namespace, account) = username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .ok_or_else(|| {
                GatewayError::Unauthorized(format!(
                    "`{username}` is not a ServiceAccount; send a projected ServiceAccount token"
                ))
            })?;
        let identity = identity_from_labels(client, namespace, account).await;
        Ok((
            identity,
            token_lifetime(token).unwrap_or(MAX_TRUST).min(MAX_TRUST),
        ))
    }
}

/// User, team and workspace from the namespace's labels; from the ServiceAccount's
/// only where the namespace trusts them (a developer may label their own ServiceAccount
/// but not their namespace). Without labels the caller is `<namespace>/<account>` and
/// the namespace is the workspace.
pub(crate) async fn identity_from_labels(
    client: &kube::Client,
    namespace: &str,
    account: &str,
) -> Identity {
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .get_opt(account)
        .await;
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await;
    let labels = |found: Result<Option<BTreeMap<String, String>>, kube::Error>, what: &str| {
        found.unwrap_or_else(|e| {
            tracing::warn!(error = %e, what, "labels unreadable; grant the data plane get on serviceaccounts and namespaces");
            None
        })
    };
    let sa_labels =
        labels(sa.map(|o| o.map(|s| s.labels().clone())), "serviceaccount").unwrap_or_default();
    let ns_labels =
        labels(ns.map(|o| o.map(|n| n.labels().clone())), "namespace").unwrap_or_default();
    let trust_sa = ns_labels.get(TRUST_SA_LABELS).is_some_and(|v| v == "true");
    let pick = |key: &str| {
        ns_labels
            .get(key)
            .or_else(|| sa_labels.get(key).filter(|_| trust_sa))
            .cloned()
    };
    Identity {
        key_id: Some(format!("serviceaccount:{namespace}/{account}")),
        user: pick(USER_LABEL).unwrap_or_else(|| format!("{namespace}/{account}")),
        team: pick(TEAM_LABEL),
        workspace: pick(WORKSPACE_LABEL).or_else(|| Some(namespace.to_string())),
    }
}

/// Whether a token's own claims, read unverified, leave it worth reviewing: a JWT
/// payload, not expired, for audience `ai-gateway`. The review itself verifies them.
fn claims_allow_review(token: &str) -> Result<(), GatewayError> {
    let refused = |why: &str| {
        GatewayError::Unauthorized(format!("the ServiceAccount token was rejected: {why}"))
    };
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .ok_or_else(|| refused("it is not a JWT with readable claims"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match claims["exp"].as_u64() {
        Some(exp) if exp > now => {}
        Some(_) => return Err(refused("token has expired")),
        None => return Err(refused("it has no expiry")),
    }
    let for_us = match &claims["aud"] {
        serde_json::Value::String(aud) => aud == AUDIENCE,
        serde_json::Value::Array(auds) => auds.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    if !for_us {
        return Err(refused(&format!("it is not for audience `{AUDIENCE}`")));
    }
    Ok(())
}

/// Time left before the token's `exp` claim. The TokenReview has vouched for the token,
/// so reading the claim unverified is safe; it only shortens the cache.
fn token_lifetime(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims["exp"].as_u64()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            enc(b"{\"alg\":\"RS256\"}"),
            enc(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn lifetime_comes_from_the_exp_claim() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let left = token_lifetime(&jwt(serde_json::json!({"exp": now + 120})));
        assert!(
            left.is_some_and(|d| d <= Duration::from_secs(120) && d >= Duration::from_secs(110))
        );
        assert_eq!(
            token_lifetime(&jwt(serde_json::json!({"exp": now - 5}))),
            Some(Duration::ZERO)
        );
        assert_eq!(token_lifetime("opaque-token"), None);
    }
}
