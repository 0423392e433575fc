//! Gateway keys made without a cluster: `ai-gateway keys create|list|revoke` and the
//! admin API write them to `keys.sqlite` in the data directory; a running gateway reads
//! them within a second and serves them beside its config's keys. Only the key's
//! SHA-256 is kept: the plaintext is shown once, when it is made.

use ai_gateway_snapshot::{key_sha256, new_key, random_hex, ApiKey, Limits, Snapshot};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("key store: cannot create {0}: {1}")]
    Dir(String, std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,
  user TEXT NOT NULL, team TEXT, workspace TEXT, label TEXT,
  requests_per_minute INTEGER, sigv4_secret TEXT,
  created_at INTEGER NOT NULL, revoked_at INTEGER);
";

/// What a new key is for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub user: String,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub workspace: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    /// The key's own requests-per-minute limit.
    #[serde(default)]
    pub rate_limit: Option<u64>,
    /// Also make an AWS-style pair (access key id = the key's id) for SigV4 clients.
    #[serde(default)]
    pub sigv4: bool,
}

/// A key just made: the only time its plaintext (and SigV4 secret) is seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4_secret: Option<String>,
}

/// A key as listed: never its plaintext or secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredKey {
    pub id: String,
    pub user: String,
    pub team: Option<String>,
    pub workspace: Option<String>,
    pub label: Option<String>,
    pub rate_limit: Option<u64>,
    pub sigv4: bool,
    /// Seconds since the epoch.
    pub created_at: u64,
    pub revoked_at: Option<u64>,
}

pub struct KeyStore {
    conn: Connection,
}

/// A name a key may carry: short, printable, no spaces (it becomes a metric label).
fn check_name(what: &str, value: &str) -> Result<(), KeyStoreError> {
    let sane = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    match sane {
        true => Ok(()),
        false => Err(KeyStoreError::Invalid(format!(
            "{what}: `{value}` must be 1-63 characters of letters, digits, `.`, `_`, `-`, `@`"
        ))),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl KeyStore {
    pub fn open(dir: &Path) -> Result<Self, KeyStoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| KeyStoreError::Dir(dir.display().to_string(), e))?;
        let conn = Connection::open(dir.join("keys.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    pub fn create(&self, new: &NewKey) -> Result<CreatedKey, KeyStoreError> {
        check_name("user", &new.user)?;
        for (what, value) in [("team", &new.team), ("workspace", &new.workspace)] {
            if let Some(v) = value {
                check_name(what, v)?;
            }
        }
        if new.label.as_ref().is_some_and(|l| l.chars().count() > 256) {
            return Err(KeyStoreError::Invalid(
                "label: at most 256 characters".into(),
            ));
        }
        if new.rate_limit == Some(0) {
            return Err(KeyStoreError::Invalid(
                "rate limit: at least 1 request a minute".into(),
            ));
        }
        let key = new_key();
        let id = format!("key-{}-{}", new.user, &random_hex()[..8]);
        let sigv4_secret = new.sigv4.then(random_hex);
        self.conn.execute(
            "INSERT INTO keys (id, sha256, user, team, workspace, label, requests_per_minute,
             sigv4_secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                key_sha256(&key),
                new.user,
                new.team,
                new.workspace,
                new.label,
                new.rate_limit.map(|n| n as i64),
                sigv4_secret,
                now() as i64
            ],
        )?;
        Ok(CreatedKey {
            id,
            key,
            sigv4_secret,
        })
    }

    pub fn list(&self) -> Result<Vec<StoredKey>, KeyStoreError> {
        let mut query = self.conn.prepare(
            "SELECT id, user, team, workspace, label, requests_per_minute, sigv4_secret IS NOT NULL,
             created_at, revoked_at FROM keys ORDER BY created_at, id",
        )?;
        let rows = query.query_map([], |r| {
            Ok(StoredKey {
                id: r.get(0)?,
                user: r.get(1)?,
                team: r.get(2)?,
                workspace: r.get(3)?,
                label: r.get(4)?,
                rate_limit: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                sigv4: r.get(6)?,
                created_at: r.get::<_, i64>(7)? as u64,
                revoked_at: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes `id`; `false` when there is no such key, or it was revoked already.
    pub fn revoke(&self, id: &str) -> Result<bool, KeyStoreError> {
        let changed = self.conn.execute(
            "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now() as i64],
        )?;
        Ok(changed > 0)
    }

    /// The keys in force, as a snapshot holds keys, with their own rate limits.
    pub fn active(&self) -> Result<Vec<(ApiKey, Option<u64>)>, KeyStoreError> {
        let mut query = self.conn.prepare(
            "SELECT id, sha256, user, team, workspace, sigv4_secret, requests_per_minute
             FROM keys WHERE revoked_at IS NULL ORDER BY id",
        )?;
        let rows = query.query_map([], |r| {
            Ok((
                ApiKey {
                    id: r.get(0)?,
                    sha256: r.get(1)?,
                    user: Some(r.get(2)?),
                    team: r.get(3)?,
                    workspace: r.get(4)?,
                    sigv4_secret: r.get(5)?,
                },
                r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Changes whenever a key is made or revoked (keys are never deleted): how many
    /// there are, and how many of them are revoked.
    pub fn version(&self) -> Result<(i64, i64), KeyStoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*), count(revoked_at) FROM keys", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?)
    }

    /// Whether any key was ever made here: a gateway that had keys stays closed when
    /// the last one is revoked.
    pub fn ever_had_keys(&self) -> Result<bool, KeyStoreError> {
        Ok(self.version()?.0 > 0)
    }
}

/// The key store as a gateway serves it: the keys in force, and whether it ever held
/// any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredKeys {
    pub keys: Vec<(ApiKey, Option<u64>)>,
    pub ever: bool,
}

impl KeyStore {
    pub fn stored(&self) -> Result<StoredKeys, KeyStoreError> {
        Ok(StoredKeys {
            keys: self.active()?,
            ever: self.ever_had_keys()?,
        })
    }
}

/// `snapshot` with the key store's keys beside its own: key auth turns on when the
/// config had none and the store ever held a key (so revoking the last one never opens
/// the gateway), and a key's own rate limit joins the per-key limits.
pub fn with_stored_keys(mut snapshot: Snapshot, stored: &StoredKeys) -> Snapshot {
    if !stored.ever {
        return snapshot;
    }
    if snapshot.auth.mode == ai_gateway_snapshot::AuthMode::None {
        snapshot.auth.mode = ai_gateway_snapshot::AuthMode::Keys;
    }
    for (key, rate_limit) in &stored.keys {
        if snapshot.auth.keys.iter().any(|k| k.id == key.id) {
            continue;
        }
        if let Some(rpm) = rate_limit {
            snapshot
                .rate_limits
                .per_key
                .entry(key.id.clone())
                .or_insert_with(|| Limits {
                    requests_per_minute: Some(*rpm),
                    ..Limits::default()
                });
        }
        snapshot.auth.keys.push(key.clone());
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_listed_without_secrets_and_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(dir.path()).expect("opens");
        let made = store
            .create(&NewKey {
                user: "ana".into(),
                team: Some("platform".into()),
                rate_limit: Some(100),
                sigv4: true,
                ..NewKey::default()
            })
            .expect("made");
        assert!(made.key.starts_with("gw_") && made.key.len() == 67);
        assert!(made.sigv4_secret.is_some());
        let listed = store.list().expect("lists");
        assert_eq!(listed.len(), 1);
        let text = serde_json::to_string(&listed).expect("json");
        assert!(!text.contains(&made.key) && !text.contains(&key_sha256(&made.key)));
        let active = store.active().expect("active");
        assert_eq!(active[0].0.sha256, key_sha256(&made.key));
        assert_eq!(active[0].1, Some(100));
        assert!(store.revoke(&made.id).expect("revokes"));
        assert!(!store.revoke(&made.id).expect("once"));
        assert!(store.active().expect("active").is_empty());
        assert!(store.list().expect("lists")[0].revoked_at.is_some());
    }

    #[test]
    fn odd_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(dir.path()).expect("opens");
        for user in ["", "a b", "x\ny", &"u".repeat(64)] {
            let refused = store.create(&NewKey {
                user: user.into(),
                ..NewKey::default()
            });
            assert!(refused.is_err(), "{user:?}");
        }
    }

    #[test]
    fn stored_keys_turn_an_open_gateway_to_key_auth() {
        let key = ApiKey {
            id: "key-ana-1".into(),
            sha256: "ab".into(),
            user: Some("ana".into()),
            team: None,
            workspace: None,
            sigv4_secret: None,
        };
        let stored = StoredKeys {
            keys: vec![(key, Some(5))],
            ever: true,
        };
        let merged = with_stored_keys(Snapshot::default(), &stored);
        assert_eq!(merged.auth.mode, ai_gateway_snapshot::AuthMode::Keys);
        assert_eq!(merged.auth.keys.len(), 1);
        assert_eq!(
            merged.rate_limits.per_key["key-ana-1"].requests_per_minute,
            Some(5)
        );
        assert_eq!(
            with_stored_keys(Snapshot::default(), &StoredKeys::default()),
            Snapshot::default()
        );
        let all_revoked = StoredKeys {
            keys: Vec::new(),
            ever: true,
        };
        assert_eq!(
            with_stored_keys(Snapshot::default(), &all_revoked)
                .auth
                .mode,
            ai_gateway_snapshot::AuthMode::Keys,
            "revoking the last key leaves the gateway closed"
        );
    }
}
