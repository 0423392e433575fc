//! Where the snapshot comes from standalone: a file (reloaded when it changes), or the
//! environment variables the users already set when no file is named.

use crate::state::Gateway;
use ai_gateway_snapshot::{parse_document, LoadError, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The checked-in example is also the zero-config default: every provider is declared
/// with `${VAR}` credentials, and those whose variables are unset stay inactive.
pub const DEFAULT_DOCUMENT: &str = include_str!("../config/example.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:\n{source}")]
    Load { path: String, source: LoadError },
    #[error("RATE_LIMIT_RPM: `{0}` is not a whole number")]
    RateLimitRpm(String),
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn load_file(path: &Path) -> Result<Snapshot, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_document(&text, env_var)
        .map(with_gateway_api_keys)
        .map_err(|source| ConfigError::Load {
            path: path.display().to_string(),
            source,
        })
}

/// `GATEWAY_API_KEY`, the variable users already set to protect a gateway (one key or
/// a comma-separated list): its keys are accepted, and a gateway that would take
/// anyone (`auth: none`) takes only them.
fn with_gateway_api_keys(mut snapshot: Snapshot) -> Snapshot {
    let Some(keys) = env_var("GATEWAY_API_KEY") else {
        return snapshot;
    };
    let keys: Vec<&str> = keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return snapshot;
    }
    if snapshot.auth.mode == ai_gateway_snapshot::AuthMode::None {
        snapshot.auth.mode = ai_gateway_snapshot::AuthMode::Keys;
    }
    for (n, key) in keys.iter().enumerate() {
        let id = format!("gateway-api-key-{}", n + 1);
        snapshot.auth.keys.push(ai_gateway_snapshot::ApiKey {
            user: Some(id.clone()),
            id,
            sha256: ai_gateway_snapshot::key_sha256(key),
            team: None,
            workspace: None,
            sigv4_secret: None,
        });
    }
    snapshot
}

pub fn from_environment() -> Result<Snapshot, ConfigError> {
    let mut snapshot =
        parse_document(DEFAULT_DOCUMENT, env_var).map_err(|source| ConfigError::Load {
            path: "(built-in default)".into(),
            source,
        })?;
    snapshot = with_gateway_api_keys(snapshot);
    // The users' documents' one switch for shared state: limits (and the response
    // cache) in Redis, so every replica counts alike.
    if let Some(url) = env_var("REDIS_URL").filter(|u| !u.trim().is_empty()) {
        snapshot.rate_limits.store.kind = ai_gateway_snapshot::LimitStoreKind::Redis;
        snapshot.rate_limits.store.url = Some(url.trim().to_string());
        snapshot.cache.store = ai_gateway_snapshot::CacheStoreKind::Redis;
    }
    if let Some(rpm) = env_var("RATE_LIMIT_RPM") {
        let rpm: u64 = rpm
            .trim()
            .parse()
            .map_err(|_| ConfigError::RateLimitRpm(rpm))?;
        snapshot
            .rate_limits
            .default
            .get_or_insert_with(Default::default)
            .requests_per_minute = Some(rpm);
    }
    Ok(snapshot)
}

/// Polls the file and swaps in each valid new version. Polling, not inotify: a mounted
/// Secret or ConfigMap changes by an atomic symlink swap that file watchers miss.
pub fn watch(path: PathBuf, gw: Arc<Gateway>, every: Duration) {
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        loop {
            tokio::time::sleep(every).await;
            let current = match tokio::fs::read(&path).await {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "config file unreadable; keeping current config");
                    continue;
                }
            };
            if current == last {
                continue;
            }
            last = current;
            match load_file(&path) {
                Ok(snapshot) => {
                    if let Err(e) = gw.apply(snapshot) {
                        tracing::error!(error = %e, "config change rejected; keeping current config");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "config change rejected; keeping current config")
                }
            }
        }
    });
}
