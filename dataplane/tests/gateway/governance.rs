//! Keys, limits, usage, cost, audit and metrics, end to end over loopback.

use crate::fakes::{
    client, fake_anthropic, fixture, within_one_rate_window, FakeUpstream, RedisServer, Reply,
    TestGateway,
};
use ai_gateway_snapshot::key_sha256;
use bytes::Bytes;
use serde_json::{json, Value};

use std::time::Duration;

const KEY: &str = "gw_contractor1_secret";
const ADMIN_KEY: &str = "gw_admin_secret";

fn config(anthropic: &str, limits: &str, extra: &str) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
auth:
  mode: keys
  keys:
    - {{ id: k1, sha256: "{}", user: contractor1, team: platform, workspace: ws-abc123 }}
    - {{ id: k2, sha256: "{}", user: admin }}
rate_limits:
{limits}
{extra}
"#,
        key_sha256(KEY),
        key_sha256(ADMIN_KEY)
    )
}

fn message(model: &str) -> Value {
    json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn missing_and_unknown_keys_get_401_in_the_callers_format() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url(), "  {}", "")).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["type"], "authentication_error");
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-api-key", "gw_wrong")
        .json(&message("claude-x"))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["message"], "invalid API key");
    assert!(
        upstream.received().is_empty(),
        "nothing reaches the provider unauthenticated"
    );

    // Claude Code's probe stays open; the key works from x-api-key and as a bearer token.
    assert_eq!(
        client()
            .head(format!("{}/v1/claude", gw.url))
            .send()
            .await
            .expect("answers")
            .status(),
        200
    );
    for auth in [
        ("x-api-key", KEY.to_string()),
        ("authorization", format!("Bearer {KEY}")),
    ] {
        let resp = client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .header(auth.0, auth.1)
            .json(&message("claude-x"))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(upstream.last().header("x-api-key"), Some("sk-ant-real"));
}

/// 40 concurrent calls from one user with 10 requests/minute: exactly 10 get through.
#[tokio::test]
async fn a_burst_from_one_user_is_limited_exactly() {
    within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { requests_per_minute: 10 }\n  per_user: { admin: { requests_per_minute: 200 } }",
        "",
    ))
    .await;
    let statuses = burst(&gw.url, KEY, 40).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 30);
    assert_eq!(
        upstream.received().len(),
        10,
        "refused calls never reach the provider"
    );
    // The admin override is a different subject with a higher limit.
    let admin = burst(&gw.url, ADMIN_KEY, 20).await;
    assert!(admin.iter().all(|s| *s == 200), "{admin:?}");
}

async fn burst(url: &str, key: &str, n: usize) -> Vec<u16> {
    let calls = (0..n).map(|_| {
        let url = url.to_string();
        let key = key.to_string();
        tokio::spawn(async move {
            client()
                .post(format!("{url}/v1/claude/v1/messages"))
                .header("x-api-key", key)
                .json(&message("claude-x"))
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        })
    });
    let mut out = Vec::new();
    for c in calls.collect::<Vec<_>>() {
        out.push(c.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_429_says_when_to_retry_in_each_callers_format() {
    within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { requests_per_minute: 1 }",
        "",
    ))
    .await;
    let ok = ask_claude(&gw.url, "claude-x").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-ratelimit-limit-requests"], "1");
    assert_eq!(ok.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(ok.headers()["anthropic-ratelimit-requests-remaining"], "0");

    let limited = ask_claude(&gw.url, "claude-x").await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    assert!(limited
        .headers()
        .contains_key("anthropic-ratelimit-requests-reset"));
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("user:contractor1"));

    let openai = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(openai.status(), 429);
    assert!(openai.headers().contains_key("x-ratelimit-reset-requests"));
    assert!(!openai
        .headers()
        .contains_key("anthropic-ratelimit-requests-reset"));
    let body: Value = openai.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

/// Reservations cover `max_tokens`, and settle to what the provider reported: a burst
/// cannot overshoot by more than one request, and small real usage frees the budget.
#[tokio::test]
async fn token_budget_is_reserved_at_admission_and_settled_to_real_usage() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { tokens_per_minute: 2000 }",
        "",
    ))
    .await;
    let big = json!({"model": "claude-x", "max_tokens": 900, "messages": [{"role": "user", "content": "hi"}]});
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let url = gw.url.clone();
            let big = big.clone();
            tokio::spawn(async move {
                client()
                    .post(format!("{url}/v1/claude/v1/messages"))
                    .header("x-api-key", KEY)
                    .json(&big)
                    .send()
                    .await
                    .expect("answers")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut admitted = 0;
    for c in calls {
        if c.await.expect("task") == 200 {
            admitted += 1;
        }
    }
    // Each reserves ~930 tokens: 3 fit under 2000 (the third overshooting by one request).
    assert_eq!(admitted, 3);
    // Settled to the fixture's real usage (a few thousand tokens with cache), the budget
    // is spent: the next call is refused before reaching the provider.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = upstream.received().len();
    let resp = ask_claude(&gw.url, "claude-x").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(upstream.received().len(), before);
    let limits: Value = client()
        .get(format!("{}/v1/limits", gw.url))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let used = limits["limits"][0]["tokens_per_minute"]["used"]
        .as_u64()
        .expect("used");
    let fixture: Value =
        serde_json::from_slice(&fixture("upstream/anthropic/message_text.json")).expect("fixture");
    let u = &fixture["usage"];
    let per_call = [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]
    .iter()
    .map(|k| u[*k].as_u64().unwrap_or(0))
    .sum::<u64>();
    assert_eq!(
        used,
        3 * per_call,
        "reservations were replaced by reported usage"
    );
}

#[tokio::test]
async fn usage_reports_todays_calls_per_model_with_cost_from_streams_and_plain_answers() {
    within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { requests_per_minute: 60, tokens_per_minute: 100000 }",
        "",
    ))
    .await;
    for stream in [false, true] {
        let mut body = message("claude-sonnet-4-5");
        body["stream"] = json!(stream);
        let resp = client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .header("x-api-key", KEY)
            .json(&body)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.expect("body");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let usage = usage_today(&gw.url).await;
    assert_eq!(usage["user"], "contractor1");
    assert_eq!(usage["today"]["requests"], 2);
    let model = &usage["models"]["claude-sonnet-4-5"];
    assert_eq!(model["requests"], 2);
    // Non-stream fixture and stream fixture usage, each counted once.
    let plain: Value =
        serde_json::from_slice(&fixture("upstream/anthropic/message_text.json")).expect("fixture");
    let out_plain = plain["usage"]["output_tokens"].as_u64().expect("tokens");
    let stream_text =
        String::from_utf8(fixture("upstream/anthropic/stream_text.sse")).expect("utf8");
    let delta_line = stream_text
        .lines()
        .find(|l| l.contains("\"message_delta\""))
        .expect("delta");
    let delta: Value = serde_json::from_str(delta_line.trim_start_matches("data: ")).expect("json");
    let out_stream = delta["usage"]["output_tokens"].as_u64().expect("tokens");
    assert_eq!(model["tokens_out"], out_plain + out_stream);
    assert!(
        model["cost_usd"].as_f64().expect("cost") > 0.0,
        "sonnet is priced"
    );
    assert_eq!(usage["limit"]["requests_remaining"], 58);
    assert!(
        usage["limit"]["tokens_remaining"]
            .as_u64()
            .expect("remaining")
            < 100_000
    );
}

#[tokio::test]
async fn every_call_is_audited_with_the_users_field_names_and_metrics_count_it() {
    let upstream = fake_anthropic().await;
    let dir = crate::process::tempdir();
    let path = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  {}",
        &format!("audit: {{ sink: file, path: \"{}\" }}", path.display()),
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .header("x-request-id", "req-audit-1")
        // A key's identity is its own: a header cannot move the call to another workspace.
        .header("x-workspace-id", "ws-someone-else")
        .json(&json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "secret prompt"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await;
    let refused = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("gw_nope")
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 401);

    // One record per request, the refused one included; the writer may write them in
    // one batch or two.
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["client_request_id"] == "req-audit-1")
        .expect("the call was audited");
    assert_eq!(record["user"], "contractor1");
    assert_eq!(record["team"], "platform");
    assert_eq!(record["workspace"], "ws-abc123");
    assert_eq!(record["key_id"], "k1");
    assert_eq!(record["provider"], "anthropic");
    assert_eq!(record["model"], "claude-sonnet-4-5");
    assert_eq!(record["endpoint"], "chat.completions");
    assert_eq!(record["status"], 200);
    assert_eq!(record["stream"], false);
    let fixture: Value =
        serde_json::from_slice(&fixture("upstream/anthropic/message_text.json")).expect("fixture");
    assert_eq!(record["response_tokens"], fixture["usage"]["output_tokens"]);
    assert_eq!(
        record["cache_read_tokens"],
        fixture["usage"]["cache_read_input_tokens"]
    );
    assert!(record["cost_usd"].as_f64().expect("cost") > 0.0);
    assert!(record["latency_ms"].is_u64());
    assert!(record["timestamp"]
        .as_str()
        .expect("timestamp")
        .ends_with('Z'));
    assert!(!text.contains("secret prompt"), "prompts are not logged");

    // The written count follows the write it counts.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = crate::fakes::metrics_text(&gw).await;
        if metrics.contains("ai_gateway_audit_records_written_total 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metrics.contains("ai_gateway_requests_total{provider=\"anthropic\",model=\"claude-sonnet-4-5\",endpoint=\"chat.completions\",status=\"200\",user=\"contractor1\",team=\"platform\"} 1"), "{metrics}");
    assert!(
        metrics.contains("gen_ai_client_token_usage_total{gen_ai_token_type=\"output\""),
        "{metrics}"
    );
    assert!(metrics.contains("ai_gateway_config{version="), "{metrics}");
    // The refused call is audited too: one record per request.
    assert!(
        metrics.contains("ai_gateway_audit_records_written_total 2"),
        "{metrics}"
    );
    let refused: Value = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["status"] == 401)
        .expect("the refused call was audited");
    assert_eq!(refused["error"], "unauthorized");
    assert_eq!(refused["endpoint"], "chat.completions");
}

#[tokio::test]
async fn an_abandoned_stream_is_charged_for_what_it_produced() {
    let slow = Reply {
        chunk_delay: Duration::from_millis(100),
        ..Reply::sse(&fixture("upstream/anthropic/stream_text.sse"))
    };
    let upstream = FakeUpstream::start(move |_| slow.clone()).await;
    let dir = crate::process::tempdir();
    let path = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  {}",
        &format!("audit: {{ sink: file, path: \"{}\" }}", path.display()),
    ))
    .await;
    let mut body = message("claude-x");
    body["stream"] = json!(true);
    let mut resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .expect("answers");
    // Read a few events, then hang up.
    for _ in 0..4 {
        let _ = resp.chunk().await;
    }
    drop(resp);
    let mut record = None;
    for _ in 0..60 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        record = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .next();
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = record.expect("the abandoned call was audited");
    assert_eq!(record["abandoned"], true);
    assert!(
        record["request_tokens"].as_u64().expect("tokens") > 0,
        "input usage from message_start"
    );
    assert!(record["response_tokens"].as_u64().expect("tokens") >= 1);
}

#[tokio::test]
async fn a_config_swap_changes_limits_without_resetting_counters() {
    within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { requests_per_minute: 5 }",
        "",
    ))
    .await;
    assert!(burst(&gw.url, KEY, 3).await.iter().all(|s| *s == 200));
    let stricter = ai_gateway_snapshot::parse_document(
        &config(&upstream.url(), "  default: { requests_per_minute: 3 }", ""),
        |_| None,
    )
    .expect("valid");
    gw.gateway.apply(stricter).expect("applies");
    // 3 already used in this minute: the stricter limit refuses the very next call.
    assert_eq!(burst(&gw.url, KEY, 1).await, [429]);
}

/// Two gateway replicas sharing one real Redis enforce one limit between them.
#[tokio::test]
async fn two_replicas_sharing_redis_enforce_one_limit() {
    within_one_rate_window().await;
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let upstream = fake_anthropic().await;
    let limits = format!(
        "  default: {{ requests_per_minute: 12, tokens_per_minute: 1000000 }}\n  store: {{ kind: redis, url: \"{}\" }}",
        redis.url
    );
    let a = TestGateway::start(&config(&upstream.url(), &limits, "")).await;
    let b = TestGateway::start(&config(&upstream.url(), &limits, "")).await;
    // Calls alternating between the replicas draw on one budget …
    for i in 0..6 {
        let url = if i % 2 == 0 { &a.url } else { &b.url };
        assert_eq!(burst(url, KEY, 1).await, [200]);
    }
    // … and a concurrent burst at both gets exactly what remains.
    let (ra, rb) = tokio::join!(burst(&a.url, KEY, 20), burst(&b.url, KEY, 20));
    let admitted = ra.iter().chain(&rb).filter(|s| **s == 200).count();
    assert_eq!(admitted, 6, "a: {ra:?} b: {rb:?}");

    // Usage recorded by one replica is visible from the other.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let usage = usage_today(&a.url).await;
    assert_eq!(usage["today"]["requests"], 12);
    assert_eq!(usage["limit"]["requests_remaining"], 0);

    // Every hash the replicas wrote, counters and ledgers, expires: a shared Redis
    // does not grow day after day.
    let client = redis::Client::open(redis.url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("aigw:*")
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.len() >= 3, "counters and ledgers: {keys:?}");
    for key in keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("ttl");
        assert!(ttl > 0, "{key} never expires (ttl {ttl})");
    }
}

#[tokio::test]
async fn redis_outage_fails_closed_or_open_as_configured() {
    within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let dead = "redis://127.0.0.1:1/0";
    let closed = TestGateway::start(&config(
        &upstream.url(),
        &format!(
            "  default: {{ requests_per_minute: 5 }}\n  store: {{ kind: redis, url: \"{dead}\" }}"
        ),
        "",
    ))
    .await;
    assert_eq!(burst(&closed.url, KEY, 1).await, [503]);
    let open = TestGateway::start(&config(
        &upstream.url(),
        &format!("  default: {{ requests_per_minute: 5 }}\n  store: {{ kind: redis, url: \"{dead}\", fail_open: true }}"),
        "",
    ))
    .await;
    assert_eq!(burst(&open.url, KEY, 1).await, [200]);
}

fn usage_of(body: &str) -> (u64, u64) {
    let v: Value = serde_json::from_str(body).expect("json");
    (
        v["today"]["tokens_in"].as_u64().unwrap_or(0),
        v["today"]["tokens_out"].as_u64().unwrap_or(0),
    )
}

async fn my_usage(url: &str) -> (u64, u64) {
    tokio::time::sleep(Duration::from_millis(150)).await;
    let text = client()
        .get(format!("{url}/v1/usage"))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    usage_of(&text)
}

fn native_config(kind: &str, base: &str) -> String {
    format!(
        r#"
providers:
  up: {{ type: {kind}, base_url: "{base}" }}
routes:
  - {{ models: ["*"], provider: up }}
auth:
  mode: keys
  keys: [ {{ id: k1, sha256: "{}", user: contractor1 }} ]
rate_limits:
  default: {{ requests_per_minute: 100 }}
"#,
        key_sha256(KEY)
    )
}

/// OpenAI streams report usage only when asked: the gateway asks, meters the chunk, and
/// keeps it from a caller who did not ask for it.
#[tokio::test]
async fn openai_streams_are_metered_from_a_usage_chunk_only_askers_see() {
    let stream = fixture("upstream/openai/stream_text.sse");
    let reply = Reply::sse(&stream);
    let upstream = FakeUpstream::start(move |_| reply.clone()).await;
    let gw = TestGateway::start(&native_config(
        "openai-compatible",
        &format!("{}/v1", upstream.url()),
    ))
    .await;
    let text = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "qwen", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("stream");
    assert_eq!(
        upstream.last().json()["stream_options"]["include_usage"],
        true
    );
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert!(
        !text.contains("\"choices\":[]"),
        "the caller did not ask for the usage chunk:\n{text}"
    );
    let chunk_usage = String::from_utf8(stream.clone())
        .expect("utf8")
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .expect("fixture has a usage chunk")["usage"]
        .clone();
    let (tokens_in, tokens_out) = my_usage(&gw.url).await;
    assert_eq!(
        tokens_in,
        chunk_usage["prompt_tokens"].as_u64().expect("prompt")
    );
    assert_eq!(
        tokens_out,
        chunk_usage["completion_tokens"]
            .as_u64()
            .expect("completion")
    );

    // A caller who asks gets the upstream stream byte for byte, usage chunk included.
    let asked = client()
        .post(format!("{}/v1/openai/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(
            &json!({"model": "qwen", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("stream");
    assert_eq!(asked, String::from_utf8(stream).expect("utf8"));
}

#[tokio::test]
async fn ollama_native_streams_are_metered_from_their_final_line() {
    let upstream =
        FakeUpstream::start(|_| Reply::ndjson(&fixture("upstream/ollama/api_chat_stream.ndjson")))
            .await;
    let gw = TestGateway::start(&native_config("ollama", &upstream.url())).await;
    let resp = client()
        .post(format!("{}/v1/ollama/api/chat", gw.url))
        .header("x-api-key", KEY)
        .json(&json!({"model": "llama3.2", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await;
    let text = String::from_utf8(fixture("upstream/ollama/api_chat_stream.ndjson")).expect("utf8");
    let last: Value =
        serde_json::from_str(text.trim_end().lines().last().expect("lines")).expect("json");
    assert_eq!(
        my_usage(&gw.url).await,
        (
            last["prompt_eval_count"].as_u64().expect("count"),
            last["eval_count"].as_u64().expect("count")
        )
    );
}

/// Two `ai-gateway` processes, as two replicas run, share one limit through Redis.
#[tokio::test]
async fn two_gateway_processes_sharing_redis_enforce_one_limit() {
    within_one_rate_window().await;
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let upstream = fake_anthropic().await;
    let dir = crate::process::tempdir();
    let path = dir.path().join("gateway.yaml");
    let limits = format!(
        "  default: {{ requests_per_minute: 8 }}\n  store: {{ kind: redis, url: \"{}\" }}",
        redis.url
    );
    std::fs::write(
        &path,
        config(&upstream.url(), &limits, "audit: { sink: none }"),
    )
    .expect("write");
    let a = crate::process::Running::start(&path);
    let b = crate::process::Running::start(&path);
    for i in 0..4 {
        let url = if i % 2 == 0 { &a.api } else { &b.api };
        assert_eq!(burst(url, KEY, 1).await, [200]);
    }
    let (ra, rb) = tokio::join!(burst(&a.api, KEY, 10), burst(&b.api, KEY, 10));
    let admitted = ra.iter().chain(&rb).filter(|s| **s == 200).count();
    assert_eq!(admitted, 4, "a: {ra:?} b: {rb:?}");
}

#[tokio::test]
async fn bodies_are_audited_only_when_the_gateway_opts_in() {
    let upstream = fake_anthropic().await;
    let dir = crate::process::tempdir();
    let path = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  {}",
        &format!(
            "audit: {{ sink: file, path: \"{}\" }}\ngateway: {{ log_bodies: true }}",
            path.display()
        ),
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "claude-x", "messages": [{"role": "user", "content": "opted-in prompt"}]}))
        .send()
        .await
        .expect("answers");
    let answer = resp.text().await.expect("body");
    let mut record = None;
    for _ in 0..60 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        record = text
            .lines()
            .find_map(|l| serde_json::from_str::<Value>(l).ok());
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = record.expect("audited");
    assert!(record["request_body"]
        .as_str()
        .expect("request body")
        .contains("opted-in prompt"));
    assert_eq!(
        record["response_body"].as_str().expect("response body"),
        answer
    );
}

/// Every surface refuses in its own API's shape, so each SDK raises its usual error.
#[tokio::test]
async fn every_surface_answers_401_and_429_in_its_own_format() {
    within_one_rate_window().await;
    let upstream = FakeUpstream::start(|_| Reply::json(200, r#"{"ok": true}"#)).await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  gemini: {{ type: gemini, base_url: "{0}", api_key: g }}
  bedrock: {{ type: bedrock, base_url: "{0}", region: us-east-1, access_key_id: a, secret_access_key: s }}
  local: {{ type: ollama, base_url: "{0}" }}
routes:
  - {{ models: ["gemini-*"], provider: gemini }}
  - {{ models: ["amazon.*"], provider: bedrock }}
  - {{ models: ["llama*"], provider: local }}
auth:
  mode: keys
  keys: [ {{ id: k1, sha256: "{1}", user: contractor1 }} ]
rate_limits:
  default: {{ requests_per_minute: 1 }}
"#,
        upstream.url(),
        key_sha256(KEY)
    ))
    .await;
    struct Surface {
        path: &'static str,
        body: Value,
        check_401: fn(&Value, &reqwest::header::HeaderMap),
        check_429: fn(&Value, &reqwest::header::HeaderMap),
    }
    let surfaces = [
        Surface {
            path: "/v1/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            body: json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            check_401: |b, _| assert_eq!(b["error"]["status"], "UNAUTHENTICATED", "{b}"),
            check_429: |b, _| assert_eq!(b["error"]["status"], "RESOURCE_EXHAUSTED", "{b}"),
        },
        Surface {
            path: "/v1/bedrock/model/amazon.nova-lite-v1%3A0/converse",
            body: json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            check_401: |b, h| {
                assert!(b["message"].is_string(), "{b}");
                assert_eq!(h["x-amzn-errortype"], "AccessDeniedException");
            },
            check_429: |b, h| {
                assert!(b["message"].is_string(), "{b}");
                assert_eq!(h["x-amzn-errortype"], "ThrottlingException");
            },
        },
        Surface {
            path: "/v1/ollama/api/chat",
            body: json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
            check_401: |b, _| assert!(b["error"].is_string(), "{b}"),
            check_429: |b, _| {
                assert!(
                    b["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("rate limit")),
                    "{b}"
                )
            },
        },
    ];
    for (i, s) in surfaces.iter().enumerate() {
        let url = format!("{}{}", gw.url, s.path);
        let resp = client()
            .post(&url)
            .json(&s.body)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 401, "{}", s.path);
        let headers = resp.headers().clone();
        (s.check_401)(&resp.json().await.expect("json"), &headers);
        // One request per minute: the first surface's call uses it, the rest are refused.
        let resp = client()
            .post(&url)
            .bearer_auth(KEY)
            .json(&s.body)
            .send()
            .await
            .expect("answers");
        if i == 0 {
            assert_eq!(resp.status(), 200, "{}", s.path);
            let resp = client()
                .post(&url)
                .bearer_auth(KEY)
                .json(&s.body)
                .send()
                .await
                .expect("answers");
            assert_eq!(resp.status(), 429);
            let headers = resp.headers().clone();
            assert!(headers.contains_key("retry-after"));
            (s.check_429)(&resp.json().await.expect("json"), &headers);
        } else {
            assert_eq!(resp.status(), 429, "{}", s.path);
            let headers = resp.headers().clone();
            assert!(headers.contains_key("retry-after"));
            (s.check_429)(&resp.json().await.expect("json"), &headers);
        }
    }
}

#[tokio::test]
async fn a_request_dropped_before_it_completes_gives_its_reservation_back() {
    use ai_gateway::context::RequestContext;
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { concurrent_requests: 1 }",
        "",
    ))
    .await;
    let rt = gw.gateway.compiled();
    let services = gw.gateway.services.clone();
    let mut ctx = RequestContext::new(&http::HeaderMap::new());
    ctx.audited("chat.completions", services.clone());
    ctx.identified(ai_gateway::auth::Identity {
        key_id: Some("k1".into()),
        user: "contractor1".into(),
        team: Some("platform".into()),
        workspace: Some("ws-abc123".into()),
    });
    ctx.asks_for("claude-x".into(), false);
    let resolved = rt.routes.resolve("claude-x", None).expect("routed");
    ai_gateway::admission::admit(&rt, &services, &mut ctx, &resolved, 100, Some(10))
        .await
        .expect("admitted");
    assert_eq!(
        burst(&gw.url, KEY, 1).await,
        [429],
        "the one concurrent slot is held"
    );
    // The caller hangs up while the gateway waits on the upstream: the handler is dropped.
    drop(ctx);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(burst(&gw.url, KEY, 1).await, [200], "the slot came back");
}

#[tokio::test]
async fn an_absurd_max_tokens_cannot_corrupt_the_counters() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { tokens_per_minute: 10000000, budget_usd_per_day: 100 }",
        // A gateway that lifts the request limit still caps what it reserves.
        "gateway: { max_tokens_limit: 18446744073709551615 }",
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": u64::MAX, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let limits: Value = client()
        .get(format!("{}/v1/limits", gw.url))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let fixture: Value =
        serde_json::from_slice(&fixture("upstream/anthropic/message_text.json")).expect("fixture");
    let u = &fixture["usage"];
    let real: u64 = [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]
    .iter()
    .map(|k| u[*k].as_u64().unwrap_or(0))
    .sum();
    let user = &limits["limits"][0];
    assert_eq!(user["tokens_per_minute"]["used"], real, "{limits}");
    let spent = user["budget_usd_per_day"]["used"].as_f64().expect("used");
    assert!(
        spent > 0.0 && spent < 1.0,
        "settled to the real cost: {limits}"
    );
}

#[tokio::test]
async fn a_model_rule_cannot_be_dodged_by_naming_the_model_another_way() {
    within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  rules:\n    - { subject: user, model: \"claude-opus-*\", limits: { requests_per_minute: 1 } }",
        "",
    ))
    .await;
    let call = |model: &'static str| {
        let url = gw.url.clone();
        async move {
            client()
                .post(format!("{url}/v1/claude/v1/messages"))
                .header("x-api-key", KEY)
                .json(&json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        }
    };
    assert_eq!(call("claude-opus-4-1").await, 200);
    assert_eq!(call("anthropic/claude-opus-4-1").await, 429);
    assert_eq!(
        call("claude-sonnet-4-5").await,
        200,
        "other models are not limited by the rule"
    );
}

#[tokio::test]
async fn a_sigv4_header_is_only_taken_on_the_bedrock_surface() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url(), "  {}", "")).await;
    let resp = client()
        .get(format!("{}/v1/models", gw.url))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=k1/20261126/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn an_answer_that_arrives_in_pieces_is_forwarded_whole_and_metered() {
    within_one_rate_window().await;
    let answer = fixture("upstream/anthropic/message_text.json");
    let pieces: Vec<Bytes> = answer
        .chunks(answer.len() / 3 + 1)
        .map(Bytes::copy_from_slice)
        .collect();
    assert_eq!(pieces.len(), 3);
    let upstream = FakeUpstream::start(move |_| Reply {
        chunks: pieces.clone(),
        chunk_delay: Duration::from_millis(20),
        ..Reply::json(200, Bytes::new())
    })
    .await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "  default: { requests_per_minute: 60, tokens_per_minute: 100000 }",
        "",
    ))
    .await;
    let resp = ask_claude(&gw.url, "claude-sonnet-4-5").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.expect("body")[..], &answer[..]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let usage = usage_today(&gw.url).await;
    let parsed: Value = serde_json::from_slice(&answer).expect("fixture");
    assert_eq!(
        usage["models"]["claude-sonnet-4-5"]["tokens_out"],
        parsed["usage"]["output_tokens"]
    );
}

/// The caller's `/v1/usage` answer.
async fn usage_today(gateway_url: &str) -> Value {
    client()
        .get(format!("{gateway_url}/v1/usage"))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json")
}

/// A plain Messages call to `model` with the caller's key.
async fn ask_claude(gateway_url: &str, model: &str) -> reqwest::Response {
    client()
        .post(format!("{gateway_url}/v1/claude/v1/messages"))
        .header("x-api-key", KEY)
        .json(&message(model))
        .send()
        .await
        .expect("answers")
}
