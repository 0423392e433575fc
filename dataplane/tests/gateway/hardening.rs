//! Requests no real client sends, and upstreams that answer nonsense: each refused or
//! reported cleanly in the caller's format, without disturbing anyone else.

use crate::fakes::{client, fake_anthropic, FakeUpstream, Reply, TestGateway};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(anthropic: &str) -> String {
    format!(
        r#"
gateway: {{ max_messages: 50, max_tokens_limit: 200000, body_read_timeout_ms: 300 }}
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
  openai: {{ type: openai, base_url: "{anthropic}", api_key: sk-openai-real }}
  gemini: {{ type: gemini, base_url: "{anthropic}", api_key: g-real }}
  bedrock: {{ type: bedrock, base_url: "{anthropic}", region: us-east-1,
             access_key_id: AKIDEXAMPLE, secret_access_key: "bedrock-secret-0123456789" }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["gpt-*"], provider: openai }}
  - {{ models: ["gemini-*"], provider: gemini }}
  - {{ models: ["amazon.*"], provider: bedrock }}
"#
    )
}

async fn post(url: String, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = client()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("answers");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or_default(),
    )
}

fn conversation(messages: usize, max_tokens: u64) -> String {
    let turns: Vec<Value> = (0..messages)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "hi"}))
        .collect();
    json!({"model": "claude-sonnet-4-5", "max_tokens": max_tokens, "messages": turns}).to_string()
}

#[tokio::test]
async fn too_many_messages_or_tokens_are_refused_before_the_provider() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let claude = format!("{}/v1/claude/v1/messages", gw.url);
    let openai = format!("{}/v1/chat/completions", gw.url);

    let (status, body) = post(claude.clone(), "application/json", conversation(51, 100)).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("51 messages exceed this gateway's limit of 50"),
        "{body}"
    );

    let (status, body) = post(openai.clone(), "application/json", conversation(1, 300_000)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_tokens: 300000 exceeds"),
        "{body}"
    );

    let (status, _) = post(claude, "application/json", conversation(49, 1000)).await;
    assert_eq!(status, 200);
    assert_eq!(
        upstream.received().len(),
        1,
        "only the acceptable call went upstream"
    );

    // The native passthrough holds to the same limits.
    let native = format!("{}/v1/openai/v1/chat/completions", gw.url);
    for (body, expected) in [
        (conversation(51, 100), "51 messages exceed"),
        (conversation(1, 300_000), "max_tokens: 300000 exceeds"),
    ] {
        let body = body.replace("claude-sonnet-4-5", "gpt-4o");
        let (status, answer) = post(native.clone(), "application/json", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(expected), "{answer}");
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_a_400_in_the_callers_format() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let claude = format!("{}/v1/claude/v1/messages", gw.url);
    // Invalid UTF-8 inside a JSON string.
    let mut bytes =
        br#"{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": ""#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    bytes.extend_from_slice(br#""}]}"#);
    let (status, body) = post(claude.clone(), "application/json", bytes).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // A form post where JSON belongs.
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        "application/x-www-form-urlencoded",
        "model=claude-sonnet-4-5&prompt=hi",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("JSON"),
        "{body}"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn an_oversized_head_is_refused_and_the_gateway_keeps_serving() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-padding", "a".repeat(100 * 1024))
        .body(conversation(1, 10))
        .send()
        .await;
    // hyper answers 431 or closes the connection; either way nothing is served.
    if let Ok(resp) = resp {
        assert_eq!(resp.status().as_u16(), 431);
    }
    let (status, _) = post(
        format!("{}/v1/claude/v1/messages", gw.url),
        "application/json",
        conversation(1, 10),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(upstream.received().len(), 1);

    // The native Gemini and Bedrock surfaces count their own kind of turns.
    let turns = |n: usize, key: &str, turn: Value| json!({ key: vec![turn; n] }).to_string();
    let gemini_turn = json!({"role": "user", "parts": [{"text": "hi"}]});
    let bedrock_turn = json!({"role": "user", "content": [{"text": "hi"}]});
    for (url, body) in [
        (
            format!(
                "{}/v1/gemini/v1beta/models/gemini-2.5-pro:generateContent",
                gw.url
            ),
            turns(51, "contents", gemini_turn),
        ),
        (
            format!(
                "{}/v1/bedrock/model/amazon.nova-lite-v1%3A0/converse",
                gw.url
            ),
            turns(51, "messages", bedrock_turn),
        ),
    ] {
        let (status, answer) = post(url.clone(), "application/json", body).await;
        assert_eq!(status, 400, "{url}: {answer}");
        assert!(
            answer.to_string().contains("51 messages exceed"),
            "{url}: {answer}"
        );
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_is_cut_off_cleanly() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stalled
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"model\":")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the gateway answered a stalled body within its timeout"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("did not arrive within 300 ms"), "{text}");
    // Meanwhile everyone else is served.
    let (status, _) = post(
        format!("{}/v1/claude/v1/messages", gw.url),
        "application/json",
        conversation(1, 10),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn upstream_garbage_is_a_502_not_a_crash() {
    let upstream = FakeUpstream::start(|_| Reply {
        content_type: "text/html",
        ..Reply::json(200, "<html><body>proxy login</body></html>")
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let (status, body) = post(
        format!("{}/v1/chat/completions", gw.url),
        "application/json",
        conversation(1, 10),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("could not read"),
        "{body}"
    );
}
