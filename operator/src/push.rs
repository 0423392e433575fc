//! Delivering a snapshot: `PUT /admin/v1/config` on a data plane's admin port, retried
//! until that data plane reports the version as applied.

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
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status != 200 {
            return Err(PushError::Refused {
                url,
                status,
                message: body["error"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_string(),
            });
        }
        let got = body["version"].as_str().unwrap_or_default().to_string();
        let want = snapshot.effective_version();
        if got != want {
            return Err(PushError::WrongVersion { url, got, want });
        }
        Ok(got)
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
