//! The embedded store across a crash: the gateway killed with SIGKILL mid-load and
//! started again on the same data directory has counted every call that finished well
//! before the kill (the journal writes once a second), none twice, and still holds
//! today's daily budgets.

use crate::fakes::{anthropic_reply, client, usage_of, FakeUpstream};
use crate::process::{tempdir, Running};
use ai_gateway_snapshot::key_sha256;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ANA: &str = "gw_durable_ana";
const BO: &str = "gw_durable_bo";

fn config(upstream: &str) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{upstream}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
auth:
  mode: keys
  keys:
    - {{ id: ana, sha256: "{}", user: ana }}
    - {{ id: bo, sha256: "{}", user: bo }}
rate_limits:
  per_user:
    bo: {{ tokens_per_day: 6000 }}
"#,
        key_sha256(ANA),
        key_sha256(BO)
    )
}

async fn call(gateway: &str, key: &str) -> Option<u16> {
    client()
        .post(format!("{gateway}/v1/claude/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 32,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_comes_back_with_its_counts_and_budgets() {
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config(&upstream.url())).expect("write");
    let data = tempdir();
    let data_dir = data.path().to_str().expect("path").to_string();
    let args = ["--data-dir", data_dir.as_str()];

    let first = Running::start_with(&path, &args);
    // Bo spends his daily tokens until he is refused.
    let mut refused = false;
    for _ in 0..10 {
        if call(&first.api, BO).await == Some(429) {
            refused = true;
            break;
        }
    }
    assert!(refused, "bo reaches his daily token limit");

    // Ana's load, four at a time, each success stamped with when it finished.
    let finished: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Instant::now() + Duration::from_millis(4500);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (api, finished) = (first.api.clone(), finished.clone());
            tokio::spawn(async move {
                while Instant::now() < stop {
                    match call(&api, ANA).await {
                        Some(200) => finished.lock().expect("lock").push(Instant::now()),
                        Some(status) => panic!("status {status}"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let killed_at = Instant::now();
    drop(first); // SIGKILL, mid-load
    for worker in workers {
        let _ = worker.await;
    }
    let finished = finished.lock().expect("lock").clone();
    let completed = finished.len() as u64;
    let settled_a_second_before = finished
        .iter()
        // Written within a second of finishing; a second more for a busy machine.
        .filter(|t| killed_at.duration_since(**t) > Duration::from_millis(2000))
        .count() as u64;
    assert!(settled_a_second_before > 0, "load ran long enough");

    let second = Running::start_with(&path, &args);
    let usage = usage_of(&second.api, ANA).await;
    let counted = usage["today"]["requests"].as_u64().expect("requests");
    // At most the four calls in flight at the kill were settled but never heard back.
    assert!(
        counted >= settled_a_second_before && counted <= completed + 4,
        "counted {counted}; finished {completed}, of them {settled_a_second_before} over a second before the kill"
    );
    assert_eq!(
        call(&second.api, BO).await,
        Some(429),
        "bo's daily budget survives the restart"
    );
    // The restarted gateway counts on from there: one more call is one more request.
    assert_eq!(call(&second.api, ANA).await, Some(200));
    let again = usage_of(&second.api, ANA).await;
    assert_eq!(again["today"]["requests"].as_u64(), Some(counted + 1));
}

#[test]
fn a_second_gateway_on_the_same_data_directory_is_refused() {
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config("http://127.0.0.1:9")).expect("write");
    let data = tempdir();
    let data_dir = data.path().to_str().expect("path").to_string();
    let _first = Running::start_with(&path, &["--data-dir", &data_dir]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ai-gateway"))
        .args([
            "--config",
            path.to_str().expect("path"),
            "--data-dir",
            &data_dir,
        ])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another gateway process"),
        "{stderr}"
    );
}
