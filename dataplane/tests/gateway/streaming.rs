//! Streams reach the caller as the upstream sends them, on every surface, translated or
//! not: each fake below holds its last event back for a minute, so a gateway that
//! buffered a stream whole would leave the caller with nothing.

use crate::fakes::{client, fixture, FakeUpstream, Reply, TestGateway};
use serde_json::json;
use std::time::Duration;

const HELD_BACK: Duration = Duration::from_secs(60);
/// Far longer than any chunk takes on loopback, far shorter than `HELD_BACK`.
const PATIENCE: Duration = Duration::from_secs(10);

fn held_back(mut reply: Reply) -> Reply {
    reply.stall_before_last = Some(HELD_BACK);
    reply
}

/// Reads the answer until `needle` shows up; panics if it does not within `PATIENCE`.
async fn arrives_before_the_upstream_ends(
    url: String,
    body: serde_json::Value,
    needle: &str,
) -> String {
    let mut resp = client()
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200, "{url}");
    let mut seen = String::new();
    let read = async {
        while !seen.contains(needle) {
            match resp.chunk().await.expect("stream continues") {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => panic!("{url}: the stream ended early: {seen}"),
            }
        }
    };
    if tokio::time::timeout(PATIENCE, read).await.is_err() {
        panic!(
            "{url}: `{needle}` did not arrive while the upstream held its last event; got: {seen}"
        );
    }
    seen
}

#[tokio::test]
async fn every_surface_forwards_a_stream_as_it_arrives() {
    let anthropic = FakeUpstream::start(|_| {
        held_back(Reply::sse(&fixture("upstream/anthropic/stream_text.sse")))
    })
    .await;
    let compat =
        FakeUpstream::start(|_| held_back(Reply::sse(&fixture("upstream/openai/stream_text.sse"))))
            .await;
    let ollama = FakeUpstream::start(|_| {
        held_back(Reply::ndjson(&fixture(
            "upstream/ollama/api_chat_stream.ndjson",
        )))
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{}", api_key: k }}
  vllm: {{ type: openai-compatible, base_url: "{}/v1", api_key: k }}
  local: {{ type: ollama, base_url: "{}" }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["qwen*"], provider: vllm }}
  - {{ models: ["llama*"], provider: local }}
"#,
        anthropic.url(),
        compat.url(),
        ollama.url()
    ))
    .await;
    let messages = json!([{"role": "user", "content": "hi"}]);

    // Anthropic to an Anthropic caller: passed through.
    arrives_before_the_upstream_ends(
        format!("{}/v1/claude/v1/messages", gw.url),
        json!({"model": "claude-x", "max_tokens": 50, "stream": true, "messages": messages}),
        "text_delta",
    )
    .await;
    // Anthropic to an OpenAI caller: translated event by event.
    let seen = arrives_before_the_upstream_ends(
        format!("{}/v1/chat/completions", gw.url),
        json!({"model": "claude-x", "stream": true, "messages": messages}),
        "\"content\":\"",
    )
    .await;
    assert!(seen.contains("chat.completion.chunk"), "{seen}");
    // An OpenAI-compatible model to an Anthropic caller: translated the other way.
    arrives_before_the_upstream_ends(
        format!("{}/v1/claude/v1/messages", gw.url),
        json!({"model": "qwen3", "max_tokens": 50, "stream": true, "messages": messages}),
        "text_delta",
    )
    .await;
    // Ollama's native NDJSON.
    arrives_before_the_upstream_ends(
        format!("{}/v1/ollama/api/chat", gw.url),
        json!({"model": "llama3.2", "messages": messages}),
        "\"done\":false",
    )
    .await;
}
