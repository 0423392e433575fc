//! Vertex AI as a provider (Claude through `rawPredict`, Gemini through
//! `generateContent`) and as a door (`/v1/vertex/...`, as Claude Code's Vertex mode, the
//! Anthropic SDK's `AnthropicVertex` and google-genai's `vertexai=True` call it).

use crate::fakes::{anthropic_reply, client, fixture, sse_data, FakeUpstream, Reply, TestGateway};
use serde_json::{json, Value};

const CLAUDE_ON_VERTEX: &str = "claude-sonnet-4-5@20250929";
const RAW_PREDICT: &str =
    "/v1/projects/gw-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929";

/// A fake Vertex AI: Claude answers in the Messages API's shape, Gemini in its own.
pub fn vertex_reply(req: &crate::fakes::Recorded) -> Reply {
    if req.path.contains("/publishers/google/") {
        if req.path.contains(":streamGenerateContent") {
            Reply::sse(&fixture("upstream/gemini/stream_generate_content.sse"))
        } else {
            Reply::json(200, fixture("upstream/gemini/generate_content.json"))
        }
    } else if req.path.contains("count-tokens:rawPredict") {
        Reply::json(200, r#"{"input_tokens": 21}"#)
    } else if req.path.ends_with(":streamRawPredict") {
        Reply::sse(&fixture("upstream/anthropic/stream_text.sse"))
    } else {
        Reply::json(200, fixture("upstream/anthropic/message_text.json"))
    }
}

fn vertex_config(vertex: &str, anthropic: &str) -> String {
    format!(
        r#"
providers:
  vertex: {{ type: vertex, base_url: "{vertex}", project: gw-project, region: us-east5,
            api_key: ya29.test-token }}
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-sonnet-4-5"], provider: vertex, upstream_model: "{CLAUDE_ON_VERTEX}",
      fallback: [anthropic] }}
  - {{ models: ["gemini-*"], provider: vertex }}
  - {{ models: ["claude-*"], provider: anthropic, priority: 2 }}
"#
    )
}

async fn post(url: String, body: Value) -> reqwest::Response {
    client()
        .post(url)
        .header("anthropic-beta", "context-1m-2025-08-07")
        .json(&body)
        .send()
        .await
        .expect("answers")
}

fn messages(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
           "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"}],
           "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn claude_on_vertex_gets_its_model_in_the_path_and_vertexs_anthropic_version() {
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&vertex_config(&vertex.url(), &anthropic.url())).await;

    let resp = post(format!("{}/v1/claude/v1/messages", gw.url), messages(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "vertex");
    let answer: Value = resp.json().await.expect("json");
    assert_eq!(answer["type"], "message");
    let sent = vertex.last();
    assert_eq!(sent.path, format!("{RAW_PREDICT}:rawPredict"));
    assert_eq!(sent.header("authorization"), Some("Bearer ya29.test-token"));
    assert_eq!(sent.header("anthropic-beta"), Some("context-1m-2025-08-07"));
    let body = sent.json();
    assert!(body.get("model").is_none(), "the model is in the path");
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(
        body["system"][0]["text"], "x-anthropic-billing-header: cc_version=2.1",
        "the attribution block travels untouched"
    );

    let resp = post(format!("{}/v1/claude/v1/messages", gw.url), messages(true)).await;
    let text = resp.text().await.expect("stream");
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(
        vertex.last().path,
        format!("{RAW_PREDICT}:streamRawPredict")
    );
    assert!(anthropic.received().is_empty());
}

#[tokio::test]
async fn openai_chat_reaches_claude_and_gemini_on_vertex() {
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&vertex_config(&vertex.url(), &anthropic.url())).await;
    let chat = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});

    let resp = post(
        format!("{}/v1/chat/completions", gw.url),
        chat("claude-sonnet-4-5", false),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    let sent = vertex.last();
    assert_eq!(sent.path, format!("{RAW_PREDICT}:rawPredict"));
    assert_eq!(sent.json()["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.json().get("model").is_none());

    let resp = post(
        format!("{}/v1/chat/completions", gw.url),
        chat("gemini-2.5-flash", true),
    )
    .await;
    let chunks = sse_data(&resp.text().await.expect("stream"));
    assert!(chunks
        .iter()
        .any(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(
        vertex.last().path,
        "/v1/projects/gw-project/locations/us-east5/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn a_claude_call_falls_back_from_vertex_to_anthropic_for_the_same_model() {
    let vertex = FakeUpstream::start(|_| {
        Reply::json(
            503,
            r#"{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}"#,
        )
    })
    .await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&vertex_config(&vertex.url(), &anthropic.url())).await;
    let resp = post(format!("{}/v1/claude/v1/messages", gw.url), messages(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "anthropic");
    let sent = anthropic.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.json()["model"], "claude-sonnet-4-5");
    assert!(sent.json().get("anthropic_version").is_none());
    assert!(!vertex.received().is_empty());
}

#[tokio::test]
async fn the_vertex_door_routes_the_paths_model_to_whichever_provider_serves_it() {
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&vertex_config(&vertex.url(), &anthropic.url())).await;
    // Claude Code's Vertex mode: the caller's own project and region, Vertex's body.
    let caller_path =
        "/v1/vertex/v1/projects/callers-project/locations/europe-west1/publishers/anthropic/models";
    let body = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});

    // Served by Anthropic: the model comes back into the body, Vertex's version goes.
    let resp = post(
        format!("{}{caller_path}/claude-opus-4-1:streamRawPredict", gw.url),
        body.clone(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.expect("stream").contains("message_stop"));
    let sent = anthropic.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.json()["model"], "claude-opus-4-1");
    assert_eq!(sent.json()["stream"], true);
    assert!(sent.json().get("anthropic_version").is_none());

    // Served by Vertex: the gateway's project and region, not the caller's; the body's
    // fields as the caller sent them.
    let resp = post(
        format!("{}{caller_path}/claude-sonnet-4-5:rawPredict", gw.url),
        json!({"anthropic_version": "vertex-2099-01-01", "max_tokens": 64,
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sent = vertex.last();
    assert_eq!(sent.path, format!("{RAW_PREDICT}:rawPredict"));
    assert_eq!(sent.json()["anthropic_version"], "vertex-2099-01-01");
    assert!(sent.json().get("model").is_none());

    // Google's models through the same door, as google-genai's vertexai client calls them.
    let resp = post(
        format!(
            "{}/v1/vertex/v1beta1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:generateContent",
            gw.url
        ),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("json");
    assert!(answer["candidates"].is_array());
    assert_eq!(
        vertex.last().path,
        "/v1/projects/gw-project/locations/us-east5/publishers/google/models/gemini-2.5-pro:generateContent"
    );

    // Vertex's own token counter for Claude.
    let resp = post(
        format!("{}{caller_path}/count-tokens:rawPredict", gw.url),
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.expect("json");
    assert_eq!(counted["input_tokens"], 21);
    let sent = vertex.last();
    assert_eq!(
        sent.path,
        "/v1/projects/gw-project/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict"
    );
    assert_eq!(sent.json()["model"], CLAUDE_ON_VERTEX);
}

#[tokio::test]
async fn the_vertex_door_opens_nothing_but_publisher_model_calls() {
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&vertex_config(&vertex.url(), &anthropic.url())).await;
    for path in [
        "/v1/vertex/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5:deleteModel",
        "/v1/vertex/v1/projects/p/locations/l/publishers/meta/models/llama:rawPredict",
        "/v1/vertex/v1/projects/p/locations/l/endpoints/123:predict",
        "/v1/vertex/v1/projects/p/locations/l/publishers/anthropic/models/%2e%2e:rawPredict",
        "/v1/vertex/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5:rawPredict/x",
    ] {
        let resp = post(format!("{}{path}", gw.url), messages(false)).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert!(vertex.received().is_empty() && anthropic.received().is_empty());
}

#[tokio::test]
async fn claude_codes_model_picker_sees_the_gateways_own_catalogue() {
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&vertex_config(&vertex.url(), &anthropic.url())).await;
    let list: Value = client()
        .get(format!("{}/v1/claude/v1/models", gw.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["claude-sonnet-4-5"],
        "Gemini cannot serve the Messages API"
    );
    assert_eq!(list["data"][0]["type"], "model");
    assert_eq!(list["data"][0]["display_name"], "Claude Sonnet 4.5");
    assert_eq!(list["has_more"], false);
    let one = client()
        .get(format!("{}/v1/claude/v1/models/claude-sonnet-4-5", gw.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(one.status(), 200);
    let missing = client()
        .get(format!("{}/v1/claude/v1/models/gpt-4o", gw.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status(), 404);
    assert!(vertex.received().is_empty() && anthropic.received().is_empty());
}

/// A gateway whose Vertex provider holds a service-account key issued by `google`.
async fn with_service_account_key(vertex: &FakeUpstream, google: &FakeUpstream) -> TestGateway {
    let key = service_account_key(&format!("{}/token", google.url()));
    TestGateway::start(&format!(
        r#"
providers:
  vertex: {{ type: vertex, base_url: "{}", project: gw-project, region: us-east5,
            service_account_key: '{key}' }}
routes:
  - {{ models: ["claude-*"], provider: vertex }}
"#,
        vertex.url()
    ))
    .await
}

/// A service-account key whose tokens come from `token_uri`.
fn service_account_key(token_uri: &str) -> String {
    let pem = String::from_utf8(fixture("google/test_service_account_key.pem")).expect("pem");
    json!({
        "type": "service_account",
        "project_id": "gw-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "gateway@gw-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    })
    .to_string()
}

#[tokio::test]
async fn a_service_account_key_is_exchanged_for_tokens_that_are_refreshed_before_they_expire() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    // Tokens that live 30 s: inside the refresh margin, so each call needs a new one.
    let google = FakeUpstream::start(move |req| {
        let body = String::from_utf8_lossy(&req.body);
        if !body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
            return Reply::json(400, r#"{"error": "unsupported_grant_type"}"#);
        }
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::json(
            200,
            json!({"access_token": format!("tok-{n}"), "expires_in": 30, "token_type": "Bearer"})
                .to_string(),
        )
    })
    .await;
    let vertex = FakeUpstream::start(vertex_reply).await;
    let gw = with_service_account_key(&vertex, &google).await;
    for expected in ["Bearer tok-1", "Bearer tok-2"] {
        let resp = post(format!("{}/v1/claude/v1/messages", gw.url), messages(false)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(vertex.last().header("authorization"), Some(expected));
    }
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(google.last().path, "/token");
}

#[tokio::test]
async fn a_token_endpoint_that_refuses_is_a_502_naming_the_provider() {
    let google = FakeUpstream::start(|_| {
        Reply::json(
            400,
            r#"{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}"#,
        )
    })
    .await;
    let vertex = FakeUpstream::start(vertex_reply).await;
    let gw = with_service_account_key(&vertex, &google).await;
    let resp = post(format!("{}/v1/claude/v1/messages", gw.url), messages(false)).await;
    assert_eq!(resp.status(), 502);
    let error: Value = resp.json().await.expect("json");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("vertex") && message.contains("invalid_grant"),
        "{message}"
    );
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    assert!(vertex.received().is_empty());
}
