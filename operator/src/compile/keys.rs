//! Key Secrets → the snapshot's API keys (hashes only), leaving out those that would
//! make two callers one or carry a guessable SigV4 secret.

use super::{secret_value, Verdict};
use ai_gateway_snapshot::{key_sha256, ApiKey, TEAM_LABEL, USER_LABEL, WORKSPACE_LABEL};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// Data keys of a key Secret: the plaintext key, and optionally the SigV4 secret.
pub const KEY_DATA: &str = "key";
pub const SIGV4_DATA: &str = "sigv4-secret";

/// Shortest SigV4 secret a key Secret may carry.
pub const MIN_SIGV4_SECRET: usize = 16;

pub(super) fn api_keys(key_secrets: &[Secret], gateway_verdicts: &mut Vec<Verdict>) -> Vec<ApiKey> {
    let mut keys: Vec<ApiKey> = key_secrets.iter().filter_map(api_key).collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    // Two Secrets with one plaintext would make two callers one identity.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    keys.retain(|k| match seen.get(&k.sha256) {
        Some(first) => {
            gateway_verdicts.push(Verdict::fail(
                "ResolvedRefs",
                "DuplicateKey",
                format!(
                    "key Secret `{}` holds the same key as `{first}`; it is left out",
                    k.id
                ),
            ));
            false
        }
        None => {
            seen.insert(k.sha256.clone(), k.id.clone());
            true
        }
    });
    keys.retain(|k| {
        let short = k.sigv4_secret.as_deref().is_some_and(is_weak_sigv4_secret);
        if short {
            gateway_verdicts.push(Verdict::fail(
                "ResolvedRefs",
                "WeakSigV4Secret",
                format!(
                    "key Secret `{}`: sigv4-secret must be at least {MIN_SIGV4_SECRET} characters; it is left out",
                    k.id
                ),
            ));
        }
        !short
    });
    keys
}

pub fn is_weak_sigv4_secret(secret: &str) -> bool {
    secret.len() < MIN_SIGV4_SECRET
}

/// A Secret without the key data is no key.
fn api_key(secret: &Secret) -> Option<ApiKey> {
    let plaintext = secret_value(secret, KEY_DATA)?;
    let labels = secret.labels();
    Some(ApiKey {
        id: secret.name_any(),
        sha256: key_sha256(&plaintext),
        user: labels.get(USER_LABEL).cloned(),
        team: labels.get(TEAM_LABEL).cloned(),
        workspace: labels.get(WORKSPACE_LABEL).cloned(),
        sigv4_secret: secret_value(secret, SIGV4_DATA),
    })
}
