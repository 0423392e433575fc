//! `/v1/openai/*`, `/v1/ollama/*` and the informational endpoints.

use crate::fakes::{client, fake_openai, fixture, sse_data, FakeUpstream, Reply, TestGateway};
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

/// Passthrough answers name who served them, and the caller's own credentials never
/// travel upstream in any of the headers a client might put them in.
#[tokio::test]
async fn native_surfaces_say_who_served_and_drop_the_callers_credentials() {
    let openai =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/openai/chat_text.json"))).await;
    let ollama = FakeUpstream::start(|req| match req.path.as_str() {
        "/api/generate" => Reply::json(200, fixture("upstream/ollama/api_generate.json")),
        _ => Reply::sse(&fixture("upstream/ollama/v1_chat_completions_stream.sse")),
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  openai: {{ type: openai, base_url: "{}/v1", api_key: sk-openai-real }}
  local: {{ type: ollama, base_url: "{}" }}
routes:
  - {{ models: ["gpt-*"], provider: openai }}
  - {{ models: ["coder"], provider: local, upstream_model: "qwen2.5-coder:7b" }}
"#,
        openai.url(),
        ollama.url()
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/openai/v1/chat/completions", gw.url))
        .bearer_auth("caller-token")
        .header("x-api-key", "caller-key")
        .header("api-key", "caller-azure-key")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "openai");
    assert_eq!(resp.headers()["x-ai-gateway-model"], "gpt-4o");
    let request_id = resp.headers()["x-request-id"].to_str().expect("ascii");
    assert!(request_id.len() >= 16, "{request_id}");
    let sent = openai.last();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-openai-real"));
    assert_eq!(sent.header("x-api-key"), None);
    assert_eq!(sent.header("api-key"), None);

    // Ollama's native generate endpoint, routed through an alias.
    let resp = client()
        .post(format!("{}/v1/ollama/api/generate", gw.url))
        .bearer_auth("caller-token")
        .json(&json!({"model": "coder", "prompt": "hi", "stream": false}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "local");
    assert_eq!(resp.headers()["x-ai-gateway-model"], "qwen2.5-coder:7b");
    let body: Value = resp.json().await.expect("json");
    assert!(body["response"].is_string(), "{body}");
    let sent = ollama.last();
    assert_eq!(sent.path, "/api/generate");
    assert_eq!(sent.json()["model"], "qwen2.5-coder:7b");
    assert_eq!(sent.header("authorization"), None);

    // Ollama's OpenAI-compatible surface keeps its /v1 path on a base URL without one.
    let resp = client()
        .post(format!("{}/v1/ollama/v1/chat/completions", gw.url))
        .json(&json!({"model": "coder", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("stream");
    assert!(!sse_data(&text).is_empty(), "{text}");
    assert_eq!(ollama.last().path, "/v1/chat/completions");
}

/// Without an Ollama provider the native surface says so in Ollama's own error shape.
#[tokio::test]
async fn ollama_surface_errors_are_in_ollamas_format() {
    let gw = TestGateway::start(
        "providers: { anthropic: { type: anthropic, base_url: \"http://127.0.0.1:9\", api_key: k } }",
    )
    .await;
    let resp = client()
        .post(format!("{}/v1/ollama/api/chat", gw.url))
        .json(&json!({"model": "llama3.2", "messages": []}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    let message = body["error"].as_str().expect("Ollama errors are a string");
    assert!(message.contains("ollama"), "{message}");
}

/// `X-Provider` sends a model to a named provider even when a route says otherwise.
#[tokio::test]
async fn x_provider_header_overrides_the_route() {
    let routed =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/openai/chat_text.json"))).await;
    let forced =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/openai/chat_text.json"))).await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  east: {{ type: openai-compatible, base_url: "{}/v1", api_key: east-key }}
  west: {{ type: openai-compatible, base_url: "{}/v1", api_key: west-key }}
routes:
  - {{ models: ["gpt-*"], provider: east }}
"#,
        routed.url(),
        forced.url()
    ))
    .await;
    let call = |provider: Option<&'static str>| {
        let mut req = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
        if let Some(p) = provider {
            req = req.header("X-Provider", p);
        }
        req.send()
    };
    let resp = call(Some("west")).await.expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "west");
    assert_eq!(
        forced.last().header("authorization"),
        Some("Bearer west-key")
    );
    assert!(routed.received().is_empty());
    let resp = call(None).await.expect("answers");
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "east");
    assert_eq!(routed.received().len(), 1);
    let resp = call(Some("nowhere")).await.expect("answers");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("nowhere") && message.contains("east"),
        "{message}"
    );
}

/// Calls to one provider share its connections instead of opening one per call.
#[tokio::test]
async fn upstream_connections_are_reused() {
    let upstream = fake_openai().await;
    let gw = TestGateway::start(&format!(
        "providers: {{ compat: {{ type: openai-compatible, base_url: \"{}/v1\", api_key: k }} }}\nroutes:\n  - {{ models: [\"*\"], provider: compat }}",
        upstream.url()
    ))
    .await;
    for stream in [false, true, false, true, false, true] {
        let resp = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200);
        resp.bytes().await.expect("body");
    }
    assert_eq!(upstream.received().len(), 6);
    // hyper-util may dial once more while a finished call's connection is on its way
    // back to the pool; without pooling there would be six.
    assert!(
        upstream.connections() <= 2,
        "six calls in a row opened {} connections",
        upstream.connections()
    );
}

#[tokio::test]
async fn configured_provider_headers_reach_the_provider_and_callers_cannot_override_them() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/ollama/api_tags.json"))).await;
    let gw = TestGateway::start(&format!(
        "providers: {{ local: {{ type: ollama, base_url: \"{}\", headers: {{ CF-Access-Client-Id: id.access, CF-Access-Client-Secret: cf-secret }} }} }}",
        upstream.url()
    ))
    .await;
    let resp = client()
        .get(format!("{}/v1/ollama/api/tags", gw.url))
        .header("CF-Access-Client-Secret", "caller-chosen")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let sent = upstream.last();
    assert_eq!(sent.header("cf-access-client-id"), Some("id.access"));
    assert_eq!(sent.header("cf-access-client-secret"), Some("cf-secret"));
}
