//! What Claude Code sends for attribution reaches the provider as sent, and its session
//! is counted per caller — in the audit record and `/v1/usage?group_by=session`, never
//! as a metric label.

use crate::fakes::{anthropic_reply, audit_records, client, get_json, FakeUpstream, TestGateway};
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};

const KEY: &str = "gw_attribution";
const SESSION: &str = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d";
const ATTRIBUTION: &str = "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=sdk-cli";

#[tokio::test]
async fn attribution_travels_untouched_and_sessions_are_counted_per_caller() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
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
  keys: [ {{ id: k1, sha256: "{}", user: ana }} ]
audit: {{ sink: file, path: "{}" }}
"#,
        anthropic.url(),
        key_sha256(KEY),
        audit.display()
    ))
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 32,
        "system": [{"type": "text", "text": ATTRIBUTION},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}]});
    for session in [Some(SESSION), Some(SESSION), None] {
        let mut request = client()
            .post(format!("{}/v1/claude/v1/messages?beta=true", gw.url))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .header(
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14",
            )
            .header("anthropic-workspace-id", "wrkspc_01")
            .json(&body);
        if let Some(session) = session {
            request = request
                .header("x-claude-code-session-id", session)
                .header("x-claude-code-agent-id", "main");
        }
        let resp = request.send().await.expect("answers");
        assert_eq!(resp.status(), 200);
    }

    let sent = anthropic.last();
    assert_eq!(sent.path, "/v1/messages?beta=true");
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("claude-code-20250219,interleaved-thinking-2025-05-14")
    );
    assert_eq!(sent.header("anthropic-workspace-id"), Some("wrkspc_01"));
    assert_eq!(
        sent.json()["system"],
        body["system"],
        "the system blocks as sent"
    );

    let records = audit_records(&audit, 3).await;
    let sessions: Vec<&Value> = records.iter().map(|r| &r["session_id"]).collect();
    assert_eq!(sessions, [&json!(SESSION), &json!(SESSION), &Value::Null]);
    assert_eq!(records[0]["agent_id"], "main");

    let usage = get_json(format!("{}/v1/usage?group_by=session", gw.url), Some(KEY)).await;
    assert_eq!(usage["today"]["requests"], 3);
    assert_eq!(usage["sessions"][SESSION]["requests"], 2, "{usage}");
    assert_eq!(usage["sessions"].as_object().map(|s| s.len()), Some(1));
    let plain = get_json(format!("{}/v1/usage", gw.url), Some(KEY)).await;
    assert!(plain.get("sessions").is_none(), "only when asked for");

    let metrics = crate::fakes::metrics_text(&gw).await;
    assert!(
        !metrics.contains(SESSION),
        "a session is never a metric label"
    );
}
