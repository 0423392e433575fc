//! `/v1/openai/*`, `/v1/ollama/*` and the informational endpoints.

use crate::fakes::{client, fixture, FakeUpstream, Reply, TestGateway};
use serde_json::{json, Value};

#[tokio::test]
async fn openai_native_surface_swaps_the_key_and_keeps_the_path() {
    let upstream =
        FakeUpstream::start(|_| Reply::sse(&fixture("upstream/openai/stream_text.sse"))).await;
    let gw = TestGateway::start(&format!(
        "providers: {{ openai: {{ type: openai, base_url: \"{}/v1\", api_key: sk-openai-real }} }}",
        upstream.url()
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/openai/chat/completions", gw.url))
        .bearer_auth("caller")
        .json(
            &json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let got = resp.text().await.expect("body");
    assert_eq!(
        got,
        String::from_utf8(fixture("upstream/openai/stream_text.sse")).expect("utf8")
    );
    let sent = upstream.last();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-openai-real"));
}

#[tokio::test]
async fn ollama_native_api_streams_ndjson_through() {
    let upstream = FakeUpstream::start(|req| match req.path.as_str() {
        "/api/tags" => Reply::json(200, fixture("upstream/ollama/api_tags.json")),
        _ => Reply::ndjson(&fixture("upstream/ollama/api_chat_stream.ndjson")),
    })
    .await;
    let gw = TestGateway::start(&format!(
        "providers: {{ local: {{ type: ollama, base_url: \"{}\" }} }}",
        upstream.url()
    ))
    .await;
    let tags = client()
        .get(format!("{}/v1/ollama/api/tags", gw.url))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    let tags: Value = serde_json::from_str(&tags).expect("json");
    assert!(tags["models"].as_array().is_some_and(|m| !m.is_empty()));
    let resp = client()
        .post(format!("{}/v1/ollama/api/chat", gw.url))
        .json(&json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    let got = resp.bytes().await.expect("body");
    assert_eq!(
        &got[..],
        &fixture("upstream/ollama/api_chat_stream.ndjson")[..]
    );
    assert_eq!(upstream.last().path, "/api/chat");
}

#[tokio::test]
async fn providers_and_health_say_which_providers_serve_and_why_not() {
    let gw = TestGateway::start(
        r#"
providers:
  anthropic: { type: anthropic, api_key: "${ANTHROPIC_API_KEY}" }
  local: { type: ollama }
"#,
    )
    .await;
    let health: Value = client()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["providers"]["active"], 1);
    let providers: Value = client()
        .get(format!("{}/v1/providers", gw.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let anthropic = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["name"] == "anthropic")
        .expect("listed")
        .clone();
    assert_eq!(anthropic["status"], "inactive");
    assert!(anthropic["reason"]
        .as_str()
        .expect("reason")
        .contains("ANTHROPIC_API_KEY"));
    let claude = client()
        .get(format!("{}/v1/claude/health", gw.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(claude.status(), 503);
    let ollama = client()
        .get(format!("{}/v1/ollama/health", gw.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(ollama.status(), 200);
}
