//! Keys without a cluster: `ai-gateway keys create|list|revoke` against the data
//! directory, and the same on the admin API; a running gateway serves a new key, its
//! rate limit and a revocation within a second, and turns an open gateway to key auth.

use crate::fakes::{anthropic_reply, client, get_json, FakeUpstream};
use crate::process::{tempdir, Running};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ai-gateway");
const ADMIN_TOKEN: &str = "admin-s3cret";

fn keys(data_dir: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .args(["keys"])
        .args(args)
        .args(["--data-dir", data_dir])
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn status(gateway: &str, key: Option<&str>) -> u16 {
    let mut request = client()
        .post(format!("{gateway}/v1/chat/completions"))
        .json(
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        );
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("answers").status().as_u16()
}

/// Waits (a second and a half at most) until `key`'s call answers `want`.
async fn becomes(gateway: &str, key: Option<&str>, want: u16) {
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        let got = status(gateway, key).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A config file in `dir` routing `claude-*` to the Anthropic fake at `upstream`.
fn anthropic_config(dir: &std::path::Path, upstream: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "providers:\n  anthropic: {{ type: anthropic, base_url: \"{upstream}\", api_key: sk-ant-real }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: anthropic }}\n"
        ),
    )
    .expect("write");
    path
}

#[tokio::test]
async fn keys_made_by_the_cli_are_served_limited_and_revoked_within_a_second() {
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let dir = tempdir();
    let path = anthropic_config(dir.path(), &upstream.url());
    let data = tempdir();
    let data_dir = data.path().to_str().expect("path").to_string();
    let gw = Running::start_with(&path, &["--data-dir", &data_dir]);
    // Open (auth none, loopback) until a key exists.
    assert_eq!(status(&gw.api, None).await, 200);

    let (ok, out, err) = keys(
        &data_dir,
        &[
            "create",
            "--user",
            "ana",
            "--team",
            "platform",
            "--rate-limit",
            "2",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let made: Value = serde_json::from_str(out.trim()).expect("json");
    let key = made["key"].as_str().expect("key").to_string();
    let id = made["id"].as_str().expect("id").to_string();
    becomes(&gw.api, None, 401).await;
    assert_eq!(status(&gw.api, Some(&key)).await, 200);
    // Its own limit: two a minute.
    assert_eq!(status(&gw.api, Some(&key)).await, 200);
    assert_eq!(status(&gw.api, Some(&key)).await, 429);

    let (ok, listed, _) = keys(&data_dir, &["list", "--json"]);
    assert!(ok);
    assert!(listed.contains(&id) && !listed.contains(&key), "{listed}");
    let (ok, table, _) = keys(&data_dir, &["list"]);
    assert!(
        ok && table.contains("platform") && table.contains("active"),
        "{table}"
    );

    let (ok, _, err) = keys(&data_dir, &["revoke", &id]);
    assert!(ok, "{err}");
    becomes(&gw.api, Some(&key), 401).await;
    let (ok, _, err) = keys(&data_dir, &["revoke", &id]);
    assert!(!ok && err.contains("no active key"), "{err}");
    let (ok, _, err) = keys(&data_dir, &["create", "--user", "a b"]);
    assert!(!ok && err.contains("user"), "{err}");
}

#[tokio::test]
async fn the_admin_api_makes_lists_and_revokes_keys_behind_its_token() {
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let dir = tempdir();
    let path = anthropic_config(dir.path(), &upstream.url());
    let data = tempdir();
    let data_dir = data.path().to_str().expect("path").to_string();
    let gw = Running::start_with(
        &path,
        &["--data-dir", &data_dir, "--admin-token", ADMIN_TOKEN],
    );
    let keys_url = format!("{}/admin/v1/keys", gw.admin);
    let unauthorized = client()
        .post(&keys_url)
        .json(&json!({"user": "bo"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(unauthorized.status(), 401);

    let made: Value = client()
        .post(&keys_url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"user": "bo", "workspace": "ws-7", "sigv4": true}))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let key = made["key"].as_str().expect("key").to_string();
    assert!(made["sigv4_secret"].is_string(), "{made}");
    // Served at once: the admin API does not wait for the poll.
    assert_eq!(status(&gw.api, Some(&key)).await, 200);
    assert_eq!(status(&gw.api, None).await, 401);

    let listed = get_json(keys_url.clone(), Some(ADMIN_TOKEN)).await;
    assert_eq!(listed["keys"][0]["workspace"], "ws-7");
    assert!(!listed.to_string().contains(&key));

    let bad = client()
        .post(&keys_url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"user": "bo", "admin": true}))
        .send()
        .await
        .expect("answers");
    assert_eq!(bad.status(), 400);

    let id = made["id"].as_str().expect("id");
    let revoked = client()
        .delete(format!("{keys_url}/{id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(revoked.status(), 200);
    assert_eq!(status(&gw.api, Some(&key)).await, 401);
}
