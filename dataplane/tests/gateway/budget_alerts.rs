//! Budget alerts: a caller passing 80 % and then 100 % of a daily limit raises each
//! alert once — an audit event, a metric and a Slack-compatible webhook — and calls
//! after that raise no more; with the in-process store (read as the call settles) and
//! with Redis (the counters its settlement script returns).

use crate::fakes::{
    anthropic_reply, audit_records, client, FakeUpstream, RedisServer, Reply, TestGateway,
};
use ai_gateway_snapshot::key_sha256;
use serde_json::json;
use std::time::{Duration, Instant};

const ANA: &str = "gw_alerts_ana";

#[tokio::test]
async fn passing_80_and_100_percent_of_a_daily_limit_alerts_once_each() {
    alerts_once_each("").await;
}

#[tokio::test]
async fn with_redis_passing_each_threshold_alerts_once_too() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    alerts_once_each(&format!(
        "  store: {{ kind: redis, url: \"{}\" }}\n",
        redis.url
    ))
    .await;
}

async fn alerts_once_each(store: &str) {
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let webhook = FakeUpstream::start(|_| Reply::json(200, "ok")).await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
auth:
  mode: keys
  keys: [ {{ id: k-ana, sha256: "{}", user: ana }} ]
rate_limits:
  per_user:
    ana: {{ tokens_per_day: 6000 }}
{}budget_alerts: {{ webhook_url: "{}/hooks/slack" }}
audit: {{ sink: file, path: "{}" }}
"#,
        upstream.url(),
        key_sha256(ANA),
        store,
        webhook.url(),
        audit.display()
    ))
    .await;
    // Each call spends about 2,400 tokens: 40 %, 81 %, 121 %, then refused.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let status = client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .header("x-api-key", ANA)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 32,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers")
            .status()
            .as_u16();
        statuses.push(status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while webhook.received().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posts = webhook.received();
    assert_eq!(posts.len(), 2, "once per threshold");
    assert_eq!(posts[0].path, "/hooks/slack");
    let text = |i: usize| posts[i].json()["text"].as_str().unwrap_or("").to_string();
    assert!(
        text(0).contains("user:ana has used 80% of its daily token limit"),
        "{}",
        text(0)
    );
    assert!(text(1).contains("100%"), "{}", text(1));

    let records = audit_records(&audit, 7).await;
    let alerts: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "budget_alert")
        .collect();
    assert_eq!(alerts.len(), 2, "{records:?}");
    assert_eq!(alerts[0]["threshold_percent"], 80);
    assert_eq!(alerts[0]["subject"], "user:ana");
    let metrics = crate::fakes::metrics_text(&gw).await;
    assert!(
        metrics
            .contains(r#"ai_gateway_budget_alerts_total{kind="tokens_per_day",threshold="100"} 1"#),
        "{metrics}"
    );
}
