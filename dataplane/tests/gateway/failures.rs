//! Bad input and failing upstreams: each answered cleanly, in the caller's API format.

use crate::fakes::{client, fixture, sse_data, sse_events, FakeUpstream, Reply, TestGateway};
use serde_json::{json, Value};
use std::time::Duration;

fn config(anthropic: &str, extra: &str) -> String {
    format!(
        r#"
gateway: {{ max_request_bytes: 100000 }}
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real {extra} }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
"#
    )
}

async fn post(url: String, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("error bodies are JSON"))
}

#[tokio::test]
async fn malformed_json_is_a_400_in_each_callers_format() {
    let gw = TestGateway::start(&config("http://127.0.0.1:9", "")).await;
    let (status, body) = post(format!("{}/v1/chat/completions", gw.url), "{\"model\": ").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("not valid JSON"));

    let (status, body) = post(format!("{}/v1/claude/v1/messages", gw.url), "not json").await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        r#"{"model": "claude-x", "messages": [{"role": "wizard", "content": "hi"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("unknown variant `wizard`"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_model_is_a_404_naming_the_routed_models() {
    let gw = TestGateway::start(&config("http://127.0.0.1:9", "")).await;
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        json!({"model": "gpt-9", "messages": []}).to_string(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "model `gpt-9` is not routed; known: claude-*"
    );
    assert_eq!(body["error"]["code"], "model_not_found");
    let (status, body) = post(
        format!("{}/v1/claude/v1/messages", gw.url),
        json!({"model": "gpt-9", "max_tokens": 1, "messages": []}).to_string(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn oversized_body_is_a_413() {
    let gw = TestGateway::start(&config("http://127.0.0.1:9", "")).await;
    let content = "x".repeat(200_000);
    let big = json!({"model": "claude-x", "max_tokens": 1, "messages": [{"role": "user", "content": content}]});
    for (path, kind) in [
        ("/v1/chat/completions", "invalid_request_error"),
        ("/v1/claude/v1/messages", "request_too_large"),
    ] {
        let (status, body) = post(format!("{}{path}", gw.url), big.to_string()).await;
        assert_eq!(status, 413, "{path}");
        assert_eq!(body["error"]["type"], kind, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("100000 bytes"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn refused_upstream_is_a_502() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let gw = TestGateway::start(&config(&format!("http://{addr}"), "")).await;
    let (status, body) = post(
        format!("{}/v1/claude/v1/messages", gw.url),
        json!({"model": "claude-x", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "api_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("could not be reached"),
        "{body}"
    );
}

#[tokio::test]
async fn slow_upstream_is_a_504_after_the_first_byte_timeout() {
    let upstream = FakeUpstream::start(|_| Reply {
        head_delay: Duration::from_secs(3),
        ..Reply::json(200, "{}")
    })
    .await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        ", timeouts: { first_byte_ms: 200 }",
    ))
    .await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    for (path, kind) in [
        ("/v1/chat/completions", "server_error"),
        ("/v1/claude/v1/messages", "timeout_error"),
    ] {
        let started = std::time::Instant::now();
        let (status, body) = post(
            format!("{}{path}", gw.url),
            json!({"model": "claude-x", "max_tokens": 1, "messages": hi}).to_string(),
        )
        .await;
        assert_eq!(status, 504, "{path}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path}");
        assert_eq!(body["error"]["type"], kind, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("within 200 ms"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn upstream_errors_keep_their_message_in_the_callers_format() {
    let upstream = FakeUpstream::start(|_| {
        Reply::json(529, fixture("upstream/anthropic/error_overloaded.json"))
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert_eq!(status, 503, "OpenAI clients know 503, not Anthropic's 529");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("Overloaded"),
        "{body}"
    );
    // Anthropic callers get Anthropic's own answer unchanged.
    let (status, body) = post(
        format!("{}/v1/claude/v1/messages", gw.url),
        json!({"model": "claude-x", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert_eq!(status, 529);
    assert_eq!(body["error"]["type"], "overloaded_error");
}

/// Claude Code on an OpenAI-style model: the model server's error arrives as an
/// Anthropic error with its status and message, so the CLI shows what went wrong.
#[tokio::test]
async fn openai_style_errors_reach_anthropic_callers_in_anthropics_format() {
    let upstream = FakeUpstream::start(|_| {
        Reply::json(400, fixture("upstream/openai/error_invalid_request.json"))
    })
    .await;
    let gw = TestGateway::start(&format!(
        "providers:\n  vllm: {{ type: openai-compatible, base_url: \"{}/v1\", api_key: k }}\nroutes:\n  - {{ models: [\"qwen*\"], provider: vllm }}\n",
        upstream.url()
    ))
    .await;
    for stream in [false, true] {
        let (status, body) = post(
            format!("{}/v1/claude/v1/messages", gw.url),
            json!({"model": "qwen3", "max_tokens": 10, "stream": stream,
                   "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        )
        .await;
        assert_eq!(status, 400, "stream: {stream}");
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("max_completion_tokens"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_error_answer_that_stalls_part_way_is_not_waited_for() {
    // The start of a very long error answer, then nothing for half a minute.
    let start = format!(
        r#"{{"type":"error","error":{{"type":"invalid_request_error","message":"prompt too long: {}"#,
        "x".repeat(100 * 1024)
    );
    let reply = Reply {
        chunks: vec![start.into(), r#""}}"#.into()],
        stall_before_last: Some(Duration::from_secs(30)),
        ..Reply::json(400, "")
    };
    let upstream = FakeUpstream::start(move |_| reply.clone()).await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let started = std::time::Instant::now();
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("prompt too long: xxx"), "{message:.200}");
    assert!(message.len() < 70 * 1024, "kept {} bytes", message.len());
}

#[tokio::test]
async fn truncated_upstream_stream_ends_with_an_error_event() {
    let upstream = FakeUpstream::start(|_| Reply {
        abort: true,
        ..Reply::sse(&fixture("upstream/anthropic/stream_truncated.sse"))
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let body = json!({"model": "claude-x", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    // Passthrough: the caller gets every byte that arrived, then an Anthropic error event.
    let text = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .json(&body)
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("the gateway ends the stream cleanly");
    let fixture_text =
        String::from_utf8(fixture("upstream/anthropic/stream_truncated.sse")).expect("utf8");
    let (forwarded, tail) = text
        .rsplit_once("event: error\n")
        .expect("an error event closes the stream");
    assert!(
        fixture_text.starts_with(forwarded),
        "bytes before the cut pass through unchanged: {text}"
    );
    assert!(
        tail.contains("ended before the response was complete"),
        "{tail}"
    );
    assert_eq!(sse_events(&text).last().map(String::as_str), Some("error"));
    // Translated: the OpenAI caller gets an error chunk and no [DONE].
    let text = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "claude-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("stream");
    assert!(!text.contains("[DONE]"));
    let last = sse_data(&text).pop().expect("events");
    assert!(last["error"]["message"]
        .as_str()
        .expect("message")
        .contains("ended before the response was complete"));
}

#[tokio::test]
async fn bad_requests_do_not_disturb_a_stream_in_flight() {
    let upstream =
        FakeUpstream::start(|_| Reply::sse(&fixture("upstream/anthropic/stream_text.sse"))).await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let url = gw.url.clone();
    let stream = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/claude/v1/messages"))
            .json(&json!({"model": "claude-x", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers")
            .bytes()
            .await
            .expect("stream completes")
    });
    for garbage in ["", "{", "[]", "\u{0}\u{1}", "{\"model\": 5}"] {
        let resp = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .body(garbage)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 400, "{garbage:?}");
    }
    assert_eq!(
        &stream.await.expect("task")[..],
        &fixture("upstream/anthropic/stream_text.sse")[..]
    );
}

#[tokio::test]
async fn surface_paths_cannot_redirect_the_provider_key_elsewhere() {
    let gw = TestGateway::start(&config("http://127.0.0.1:9", "")).await;
    for path in [
        "/v1/claude@127.0.0.1:1/v1/messages",
        "/v1/claude.evil/x",
        "/v1/claude/../admin",
    ] {
        let resp = client()
            .get(format!("{}{path}", gw.url))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_json_array_body_is_a_400_not_a_crash() {
    let gw = TestGateway::start(&config("http://127.0.0.1:9", "")).await;
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        r#"["anthropic/claude-x"]"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("JSON object"));
}

/// A fake that answers from a script, one reply per call, repeating the last.
fn scripted(
    replies: Vec<Reply>,
) -> impl Fn(&crate::fakes::Recorded) -> Reply + Send + Sync + 'static {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    move |_| {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        replies[n.min(replies.len() - 1)].clone()
    }
}

#[tokio::test]
async fn a_failing_upstream_is_retried_before_the_caller_sees_an_error() {
    let upstream = FakeUpstream::start(scripted(vec![
        Reply::json(503, fixture("upstream/anthropic/error_overloaded.json")),
        Reply::json(200, fixture("upstream/anthropic/message_text.json")),
    ]))
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn an_upstream_retry_after_is_honoured() {
    let limited = Reply {
        headers: vec![("retry-after", "1".to_string())],
        ..Reply::json(429, fixture("upstream/anthropic/error_overloaded.json"))
    };
    let upstream = FakeUpstream::start(scripted(vec![
        limited,
        Reply::json(200, fixture("upstream/anthropic/message_text.json")),
    ]))
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let started = std::time::Instant::now();
    let (status, _) = post(
        format!("{}/v1/chat/completions", gw.url),
        json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures_and_says_so() {
    let upstream = FakeUpstream::start(|_| {
        Reply::json(
            500,
            r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
        )
    })
    .await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        ", retries: { attempts: 0 }, circuit_breaker: { failures: 2, open_ms: 60000 }",
    ))
    .await;
    let body = json!({"model": "claude-x", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    for _ in 0..2 {
        let (status, _) = post(format!("{}/v1/claude/v1/messages", gw.url), body.clone()).await;
        assert_eq!(status, 500);
    }
    let (status, err) = post(format!("{}/v1/claude/v1/messages", gw.url), body).await;
    assert_eq!(status, 503);
    assert_eq!(err["error"]["type"], "overloaded_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("is failing"),
        "{err}"
    );
    assert_eq!(
        upstream.received().len(),
        2,
        "an open circuit spares the provider"
    );
    let providers: Value = client()
        .get(format!("{}/v1/providers", gw.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(providers["data"][0]["circuit"], "open");
    let health = client()
        .get(format!("{}/v1/claude/health", gw.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), 503);
    let metrics = crate::fakes::metrics_text(&gw).await;
    assert!(
        metrics.contains("ai_gateway_circuit_open{provider=\"anthropic\"} 1"),
        "{metrics}"
    );
}

/// Anthropic overloaded: the same Claude model is served by Bedrock, translated for it,
/// and the audit record and headers say who served and what was tried.
#[tokio::test]
async fn a_failing_provider_falls_back_to_the_next_for_the_same_model() {
    let anthropic = FakeUpstream::start(|_| {
        Reply::json(529, fixture("upstream/anthropic/error_overloaded.json"))
    })
    .await;
    let bedrock = FakeUpstream::start(|req| {
        if req.path.ends_with("/converse") {
            Reply::json(200, fixture("upstream/bedrock/converse.json"))
        } else {
            Reply::json(200, fixture("upstream/bedrock/invoke_anthropic.json"))
        }
    })
    .await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{}", api_key: k, retries: {{ attempts: 0 }} }}
  bedrock: {{ type: bedrock, base_url: "{}", region: us-east-1, access_key_id: a, secret_access_key: s }}
routes:
  - {{ models: ["claude-*"], provider: anthropic, fallback: [bedrock] }}
  - {{ models: ["claude-sonnet-4-5"], provider: bedrock, priority: 2,
      upstream_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0" }}
audit: {{ sink: file, path: "{}" }}
"#,
        anthropic.url(),
        bedrock.url(),
        audit.display()
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-request-id", "req-fallback-1")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "bedrock");
    assert_eq!(
        resp.headers()["x-ai-gateway-model"],
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    let message: Value = resp.json().await.expect("json");
    assert_eq!(message["type"], "message");
    assert_eq!(anthropic.received().len(), 1);
    assert_eq!(
        bedrock.last().path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    );

    // An OpenAI caller falls back the same way, through Converse.
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(bedrock.last().path.ends_with("/converse"));

    let mut record = None;
    for _ in 0..60 {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        record = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["client_request_id"] == "req-fallback-1");
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = record.expect("audited");
    assert_eq!(record["provider"], "bedrock");
    assert_eq!(record["fallbacks"], json!(["anthropic"]));
    assert_eq!(record["status"], 200);
}

/// A streamed Claude call through a gateway whose provider answers with `reply`, under
/// the provider `timeouts`: how long until the caller's stream ended, and what it read.
async fn stream_cut_short(reply: Reply, timeouts: &str) -> (Duration, String) {
    let upstream = FakeUpstream::start(move |_| reply.clone()).await;
    let gw = TestGateway::start(&config(&upstream.url(), timeouts)).await;
    let started = std::time::Instant::now();
    let text = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .json(&json!({"model": "claude-x", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("the gateway ends the stream");
    (started.elapsed(), text)
}

#[tokio::test]
async fn a_stream_that_goes_silent_is_ended_after_the_idle_timeout() {
    let stalled = Reply {
        chunk_delay: Duration::from_secs(5),
        ..Reply::sse(&fixture("upstream/anthropic/stream_text.sse"))
    };
    let (elapsed, text) = stream_cut_short(stalled, ", timeouts: { idle_ms: 300 }").await;
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(sse_events(&text).last().map(String::as_str), Some("error"));
    assert!(text.contains("sent nothing for"), "{text}");
}

#[tokio::test]
async fn a_stream_that_trickles_past_the_total_timeout_is_ended() {
    // Never silent for long, so only the total timeout can end it.
    let trickling = Reply {
        chunk_delay: Duration::from_millis(250),
        ..Reply::sse(&fixture("upstream/anthropic/stream_text.sse"))
    };
    let (elapsed, text) = stream_cut_short(
        trickling,
        ", timeouts: { first_byte_ms: 400, total_ms: 700, idle_ms: 5000 }",
    )
    .await;
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(sse_events(&text).last().map(String::as_str), Some("error"));
    assert!(text.contains("total timeout"), "{text}");
}

#[tokio::test]
async fn a_model_name_cannot_steer_a_gemini_call_to_another_endpoint() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/gemini/generate_content.json")))
            .await;
    let gw = TestGateway::start(&format!(
        "providers:\n  gemini: {{ type: gemini, base_url: \"{}\", api_key: g }}\n",
        upstream.url()
    ))
    .await;
    for model in [
        "gemini/../../v1beta/cachedContents?x=",
        "gemini/x:predictLongRunning?",
    ] {
        let (status, _) = post(
            format!("{}/v1/chat/completions", gw.url),
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        )
        .await;
        assert_eq!(status, 400, "{model}");
    }
    assert!(upstream.received().is_empty());
}
