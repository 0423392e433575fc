//! Token reduction through the gateway: what the provider receives turn after turn,
//! what is counted as saved, and what is never touched (Claude Code's passthrough unless
//! asked, its attribution block and `anthropic-*` headers when asked).

use crate::fakes::{anthropic_reply, audit_records, client, get_json, FakeUpstream, TestGateway};
use crate::process::{claude_code_cli, claude_says_hi, recorded_header, PythonFake};
use ai_gateway::intelligence::reduce::DIFF_FIRST;
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};

const KEY: &str = "gw_reduce";

fn config(anthropic: &str, audit: &std::path::Path, messages_api: bool) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
auth:
  mode: keys
  keys: [ {{ id: k1, sha256: "{}", user: ana }} ]
audit: {{ sink: file, path: "{}" }}
token_reduction:
  dedupe_files: true
  strip_boilerplate: true
  diff_first: true
  cache_breakpoints: true
  messages_api: {messages_api}
"#,
        key_sha256(KEY),
        audit.display()
    )
}

fn source_file() -> String {
    (0..60)
        .map(|i| format!("pub fn limit_{i}(window: u64) -> u64 {{ window * {i} }}\n"))
        .collect()
}

/// An agent's conversation after `turns` reads of the same unchanged file.
fn conversation(turns: usize) -> Vec<Value> {
    let mut messages = vec![
        json!({"role": "system", "content": "You are a coding agent working in a Rust repository."}),
        json!({"role": "user", "content": "Find why limit_7 overflows."}),
    ];
    for turn in 0..turns {
        let id = format!("call_{turn}");
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"src/limits.rs\"}"}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": source_file()}));
    }
    messages
}

fn chat(messages: Vec<Value>) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": messages,
           "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]})
}

/// A Messages request with its `cache_control` markers taken out: what a provider's
/// prompt cache compares.
fn without_breakpoints(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.remove("cache_control");
            for v in map.values_mut() {
                *v = without_breakpoints(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_breakpoints(v.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test]
async fn chat_turns_reach_claude_smaller_with_breakpoints_and_each_begins_with_the_last() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(&anthropic.url(), &audit, false)).await;
    let mut sent = Vec::new();
    for turns in [2, 3] {
        let resp = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(KEY)
            .json(&chat(conversation(turns)))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200);
        sent.push(anthropic.last().json());
    }
    let (first, second) = (&sent[0], &sent[1]);
    // The first read stays; every later read of the same file is a reference to it.
    let results = |body: &Value| -> Vec<String> {
        body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "tool_result")
            .map(|b| b["content"].to_string())
            .collect()
    };
    let second_results = results(second);
    assert_eq!(second_results.len(), 3);
    assert!(second_results[0].contains("limit_59"));
    for later in &second_results[1..] {
        assert!(
            later.contains("identical to the result of tool call call_0"),
            "{later}"
        );
    }
    // Diff-first leads the system prompt; breakpoints on system, tools and the last block.
    assert_eq!(second["system"][0]["text"], DIFF_FIRST);
    assert_eq!(second.to_string().matches("cache_control").count(), 3);
    assert!(second["tools"][0]["cache_control"].is_object());
    // Turn 2's request, breakpoints aside, is where turn 3's begins: the cache holds.
    let (first, second) = (
        without_breakpoints(first.clone()),
        without_breakpoints(second.clone()),
    );
    assert_eq!(first["system"], second["system"]);
    assert_eq!(first["tools"], second["tools"]);
    let earlier = first["messages"].as_array().expect("messages");
    assert_eq!(
        earlier[..],
        second["messages"].as_array().expect("messages")[..earlier.len()]
    );

    // Saved tokens are counted per call and per day.
    let records = audit_records(&audit, 2).await;
    let saved: Vec<u64> = records
        .iter()
        .map(|r| r["tokens_saved"].as_u64().unwrap_or(0))
        .collect();
    assert!(saved[0] > 0 && saved[1] > saved[0], "{saved:?}");
    let usage = get_json(format!("{}/v1/usage", gw.url), Some(KEY)).await;
    assert_eq!(
        usage["today"]["tokens_saved"],
        saved[0] + saved[1],
        "{usage}"
    );
    let metrics = crate::fakes::metrics_text(&gw).await;
    assert!(
        metrics.contains(&format!(
            "ai_gateway_tokens_saved_total {}",
            saved[0] + saved[1]
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn messages_callers_pass_through_untouched_unless_asked() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(
        &anthropic.url(),
        &dir.path().join("audit.jsonl"),
        false,
    ))
    .await;
    let file = source_file();
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": file}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": file}]}]});
    let bytes = serde_json::to_vec(&body).expect("json");
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(bytes.clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(anthropic.last().body, bytes, "byte for byte");
}

#[tokio::test]
async fn a_hostile_conversation_of_repeats_is_reduced_without_harm() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(
        &anthropic.url(),
        &dir.path().join("audit.jsonl"),
        false,
    ))
    .await;
    // Thousands of tool results, half of them repeats, unclosed fences and boilerplate.
    let mut messages = vec![json!({"role": "user", "content": "```\n".repeat(2000)})];
    for i in 0..2000 {
        let content = if i % 2 == 0 {
            "x".repeat(600)
        } else {
            format!("{i}").repeat(200)
        };
        messages.push(json!({"role": "tool", "tool_call_id": format!("c{i}"), "content": content}));
    }
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&chat(messages))
        .send()
        .await
        .expect("answers");
    // Tool results without their calls are not a valid conversation: a clear 400 in
    // the caller's format, or an answer; never a failure of the gateway.
    assert!(
        resp.status() == 200 || resp.status() == 400,
        "{}",
        resp.status()
    );
    let health = client()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), 200);
}

/// The Claude Code CLI through `/v1/claude` with token reduction on for Messages
/// callers: it works, its attribution block is still first and unchanged, the
/// diff-first instruction follows it, and its `anthropic-*` headers pass as sent.
#[tokio::test]
async fn claude_code_runs_with_token_reduction_on() {
    let Some(claude) = claude_code_cli() else {
        return;
    };
    let fake = PythonFake::start("fake_anthropic_capture.py", &[]);
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(
        &format!("http://127.0.0.1:{}", fake.port),
        &dir.path().join("audit.jsonl"),
        true,
    ))
    .await;
    let base = format!("{}/v1/claude", gw.url);
    claude_says_hi(
        &claude,
        &[("ANTHROPIC_BASE_URL", &base), ("ANTHROPIC_API_KEY", KEY)],
    )
    .await;
    let requests = fake.requests();
    let turn = requests
        .iter()
        .find(|r| r["path"] == "/v1/messages?beta=true" && r["body"]["tools"].is_array())
        .unwrap_or_else(|| panic!("Claude Code's turn reached Anthropic: {requests:?}"));
    let system = turn["body"]["system"].as_array().expect("system blocks");
    assert!(
        system[0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("x-anthropic-billing-header")),
        "{turn}"
    );
    assert_eq!(system[1]["text"], DIFF_FIRST);
    assert!(recorded_header(turn, "anthropic-beta").is_some_and(|b| b.contains("claude-code")));
    assert!(recorded_header(turn, "anthropic-version").is_some());
}
