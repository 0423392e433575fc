//! The response cache over loopback: deterministic calls answered once by the
//! provider, per caller, streams replayed as streams, broken answers never kept,
//! and one cache shared by two replicas through a real Redis.

use crate::fakes::{
    client, fake_anthropic, fixture, sse_events, FakeUpstream, RedisServer, Reply, TestGateway,
};
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};

const ALICE: &str = "gw_alice_key_0001";
const BOB: &str = "gw_bob_key_0002";

fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{upstream}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["uncached-*"], provider: anthropic, cache_ttl_seconds: 0 }}
auth:
  mode: keys
  keys:
    - {{ id: alice, sha256: "{}", user: alice }}
    - {{ id: bob, sha256: "{}", user: bob }}
{extra}
"#,
        key_sha256(ALICE),
        key_sha256(BOB)
    )
}

async fn chat(gw: &str, key: &str, body: Value) -> (u16, Option<String>, String) {
    let resp = client()
        .post(format!("{gw}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("answers");
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, cache, resp.text().await.expect("body"))
}

fn request(model: &str, temperature: Option<f64>) -> Value {
    let mut body = json!({"model": model, "max_tokens": 64,
                          "messages": [{"role": "user", "content": "What is 2+2?"}]});
    if let Some(t) = temperature {
        body["temperature"] = json!(t);
    }
    body
}

#[tokio::test]
async fn a_deterministic_call_is_answered_once_per_caller() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;

    let (status, cache, first) =
        chat(&gw.url, ALICE, request("claude-sonnet-4-5", Some(0.0))).await;
    assert_eq!((status, cache.as_deref()), (200, Some("MISS")));
    // The same request with its fields in another order is the same request.
    let reordered = json!({"messages": [{"content": "What is 2+2?", "role": "user"}],
                           "temperature": 0, "max_tokens": 64, "model": "claude-sonnet-4-5"});
    let (status, cache, second) = chat(&gw.url, ALICE, reordered).await;
    assert_eq!((status, cache.as_deref()), (200, Some("HIT")));
    assert_eq!(
        first, second,
        "a hit is the answer the caller got the first time"
    );
    assert_eq!(upstream.received().len(), 1);

    // Another caller never sees alice's answer: it asks the provider itself.
    let (_, cache, _) = chat(&gw.url, BOB, request("claude-sonnet-4-5", Some(0.0))).await;
    assert_eq!(cache.as_deref(), Some("MISS"));
    assert_eq!(upstream.received().len(), 2);

    // Sampled calls and routes with caching off always reach the provider.
    for body in [
        request("claude-sonnet-4-5", Some(0.7)),
        request("claude-sonnet-4-5", None),
        request("uncached-model", Some(0.0)),
    ] {
        for _ in 0..2 {
            let (status, cache, _) = chat(&gw.url, ALICE, body.clone()).await;
            assert_eq!((status, cache), (200, None), "{body}");
        }
    }
    assert_eq!(upstream.received().len(), 8);

    let metrics = client()
        .get(format!("{}/metrics", gw.admin_url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"ai_gateway_cache_lookups_total{result="hit"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ai_gateway_cache_lookups_total{result="miss"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_streamed_answer_is_replayed_as_a_stream_and_audited_as_a_hit() {
    let upstream = fake_anthropic().await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &upstream.url(),
        &format!("audit: {{ sink: file, path: \"{}\" }}", audit.display()),
    ))
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true, "temperature": 0,
                      "messages": [{"role": "user", "content": "Say hi"}]});
    let mut streams = Vec::new();
    for expected in ["MISS", "HIT"] {
        let resp = client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .header("x-api-key", ALICE)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.headers()["x-cache"], expected);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["x-ai-gateway-provider"], "anthropic");
        streams.push(resp.text().await.expect("stream"));
    }
    assert_eq!(streams[0], streams[1]);
    assert_eq!(
        sse_events(&streams[1]).last().map(String::as_str),
        Some("message_stop")
    );
    assert_eq!(upstream.received().len(), 1);

    // Records are written off the response path.
    let mut records: Vec<Value> = Vec::new();
    for _ in 0..50 {
        records = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(records.len(), 2, "every call audited once");
    assert_eq!(records[0]["cache_hit"], false);
    assert!(records[0]["response_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(records[1]["cache_hit"], true);
    assert_eq!(records[1]["response_tokens"], 0, "a hit costs no tokens");
    assert_eq!(records[1]["cost_usd"], 0.0);
}

#[tokio::test]
async fn a_truncated_or_failed_answer_is_never_kept() {
    let upstream = FakeUpstream::start(|req| {
        if req.json()["stream"] == true {
            Reply::sse(&fixture("upstream/anthropic/stream_truncated.sse"))
        } else {
            Reply::json(529, fixture("upstream/anthropic/error_overloaded.json"))
        }
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    for _ in 0..2 {
        let (status, cache, _) =
            chat(&gw.url, ALICE, request("claude-sonnet-4-5", Some(0.0))).await;
        assert_ne!(status, 200);
        assert_eq!(cache.as_deref(), Some("MISS"));
    }
    let mut streamed = request("claude-sonnet-4-5", Some(0.0));
    streamed["stream"] = json!(true);
    for _ in 0..2 {
        let (_, cache, _) = chat(&gw.url, ALICE, streamed.clone()).await;
        assert_eq!(cache.as_deref(), Some("MISS"));
    }
    let calls = upstream.received().len();
    assert!(calls >= 4, "every attempt reached the provider ({calls})");
}

#[tokio::test]
async fn replicas_share_answers_through_redis() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let upstream = fake_anthropic().await;
    let extra = format!("cache: {{ store: redis, redis_url: \"{}\" }}", redis.url);
    let one = TestGateway::start(&config(&upstream.url(), &extra)).await;
    let two = TestGateway::start(&config(&upstream.url(), &extra)).await;
    let body = request("claude-sonnet-4-5", Some(0.0));
    let (_, cache, first) = chat(&one.url, ALICE, body.clone()).await;
    assert_eq!(cache.as_deref(), Some("MISS"));
    // The write to Redis happens once the body has gone out.
    let mut answer = None;
    for _ in 0..50 {
        let (_, cache, text) = chat(&two.url, ALICE, body.clone()).await;
        if cache.as_deref() == Some("HIT") {
            answer = Some(text);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        answer.as_deref(),
        Some(first.as_str()),
        "replica two answered from Redis"
    );
}

#[tokio::test]
async fn an_unreachable_redis_costs_one_connect_attempt_not_one_per_call() {
    let upstream = fake_anthropic().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://{}/0", closed.local_addr().expect("addr"));
    drop(closed);
    let extra = format!("cache: {{ store: redis, redis_url: \"{url}\" }}");
    let gw = TestGateway::start(&config(&upstream.url(), &extra)).await;
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    for i in 0..20 {
        let mut body = request("claude-sonnet-4-5", Some(0.0));
        // Half the calls repeat one request: memory still serves those.
        body["messages"][0]["content"] = json!(format!("question {}", i % 10));
        let (status, cache, _) = chat(&gw.url, ALICE, body).await;
        assert_eq!(status, 200);
        seen.push(cache.unwrap_or_default());
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "20 calls took {:?} with Redis down",
        started.elapsed()
    );
    assert_eq!(seen.iter().filter(|c| *c == "HIT").count(), 10, "{seen:?}");
}
