//! Delivering a snapshot: `PUT /admin/v1/config` on a data plane's admin port, retried
//! until that data plane reports the version as applied.

use ai_gateway_snapshot::replies::ConfigReply;
use ai_gateway_snapshot::Snapshot;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url} refused the snapshot ({status}): {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} applied version {got}, not {want}")]
    WrongVersion {
        url: String,
        got: String,
        want: String,
    },
}

pub struct Pusher {
    client: reqwest::Client,
    token: String,
}

impl Pusher {
    pub fn new(token: impl Into<String>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            token: token.into(),
        })
    }

    /// Shares a connection pool across gateways, each with its own token.
    pub fn with_client(client: reqwest::Client, token: impl Into<String>) -> Self {
        Self {
            client,
            token: token.into(),
        }
    }

    /// Pushes once; the data plane answers with the version it now serves.
    pub async fn push(&self, admin_url: &str, snapshot: &Snapshot) -> Result<String, PushError> {
        let url = format!("{}/admin/v1/config", admin_url.trim_end_matches('/'));
        let resp = self
            .client
            .put(&url)
            .bearer_auth(&self.token)
            .json(snapshot)
            .send()
            .await
            .map_err(|source| PushError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        // A refusal's body may be no reply of ours (a proxy's page): its status still counts.
        let reply: ConfigReply = resp.json().await.unwrap_or_default();
        if status != 200 {
            return Err(PushError::Refused {
                url,
                status,
                message: reply.error.unwrap_or_else(|| "no reason given".into()),
            });
        }
        let got = reply.version.unwrap_or_default();
        let want = snapshot.effective_version();
        if got != want {
            return Err(PushError::WrongVersion { url, got, want });
        }
        Ok(got)
    }

    /// The version a data plane serves now.
    pub async fn current_version(&self, admin_url: &str) -> Result<String, PushError> {
        let url = format!("{}/admin/v1/config", admin_url.trim_end_matches('/'));
        let unreachable = |source| PushError::Unreachable {
            url: url.clone(),
            source,
        };
        let resp = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(unreachable)?
            .error_for_status()
            .map_err(unreachable)?;
        let reply: ConfigReply = resp.json().await.map_err(unreachable)?;
        Ok(reply.version.unwrap_or_default())
    }

    /// Pushes only when the data plane serves another version, so an unchanged config
    /// never rebuilds its connection pools and circuit breakers. Returns whether it pushed.
    pub async fn sync(&self, admin_url: &str, snapshot: &Snapshot) -> Result<bool, PushError> {
        if self.current_version(admin_url).await? == snapshot.effective_version() {
            return Ok(false);
        }
        self.push(admin_url, snapshot).await.map(|_| true)
    }

    /// Pushes until applied, backing off between attempts; a refusal is final (the
    /// snapshot itself is wrong), an unreachable pod is retried.
    pub async fn push_until_applied(
        &self,
        admin_url: &str,
        snapshot: &Snapshot,
        attempts: u32,
    ) -> Result<String, PushError> {
        let mut delay = Duration::from_millis(100);
        let mut last = None;
        for _ in 0..attempts.max(1) {
            match self.push(admin_url, snapshot).await {
                Ok(v) => return Ok(v),
                Err(e @ PushError::Refused { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(last.unwrap_or_else(|| PushError::WrongVersion {
            url: admin_url.to_string(),
            got: String::new(),
            want: snapshot.effective_version(),
        }))
    }
}
