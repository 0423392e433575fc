//! Real Vertex AI clients, unmodified, through the `/v1/vertex` door: Claude Code in
//! Vertex mode, the Anthropic SDK's `AnthropicVertex` and google-genai with
//! `vertexai=True`, each with a gateway key, each checked by what the fake provider got.
//! `.ci/run` installs the clients; elsewhere a test says it skipped.

use crate::fakes::{anthropic_reply, FakeUpstream, Recorded, TestGateway};
use crate::process::{python_has, run_client};
use crate::vertex_surface::vertex_reply;
use ai_gateway_snapshot::key_sha256;
use serde_json::Value;

const GATEWAY_KEY: &str = "gw-test-key";
const VERTEX_TOKEN: &str = "ya29.provider-token";
const ANTHROPIC_KEY: &str = "sk-ant-real";
/// The caller's project and region, which the gateway replaces with its own.
const CALLERS_PROJECT: &str = "callers-project";
const CALLERS_REGION: &str = "us-east5";
const GATEWAYS_MODELS: &str = "/v1/projects/gw-project/locations/europe-west4/publishers";

/// A Vertex provider and an Anthropic provider behind a gateway that takes one key.
/// Claude Code's Vertex name of Sonnet 4.5 is served by Anthropic under Anthropic's name;
/// the Anthropic SDK's `claude-sonnet-4-5` and Gemini are served by Vertex.
fn config(vertex: &str, anthropic: &str) -> String {
    format!(
        r#"
providers:
  vertex: {{ type: vertex, base_url: "{vertex}", project: gw-project, region: europe-west4,
            api_key: {VERTEX_TOKEN} }}
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: {ANTHROPIC_KEY} }}
routes:
  - {{ models: ["claude-sonnet-4-5@20250929"], provider: anthropic,
      upstream_model: claude-sonnet-4-5-20250929 }}
  - {{ models: ["claude-sonnet-4-5"], provider: vertex, upstream_model: "claude-sonnet-4-5@20250929" }}
  - {{ models: ["gemini-*"], provider: vertex }}
auth:
  mode: keys
  keys:
    - {{ id: k1, sha256: "{}", user: tester }}
"#,
        key_sha256(GATEWAY_KEY)
    )
}

/// No request the provider received carries the caller's gateway key.
fn assert_no_gateway_key(received: &[Recorded]) {
    for r in received {
        for (name, value) in r.headers.iter() {
            assert!(
                !value
                    .as_bytes()
                    .windows(GATEWAY_KEY.len())
                    .any(|w| w == GATEWAY_KEY.as_bytes()),
                "the caller's key reached the provider in {name}: {}",
                r.path
            );
        }
    }
}

/// `claude -p` in Vertex mode (`CLAUDE_CODE_USE_VERTEX`, Google auth skipped, the gateway
/// key as a custom header) calls `streamRawPredict` under the caller's project and region;
/// the gateway serves that model from Anthropic's own API. The key goes either way the
/// gateway takes one (`Authorization: Bearer` or `x-api-key`).
#[tokio::test]
async fn claude_code_in_vertex_mode_reaches_anthropic_through_the_vertex_door() {
    let Some(claude) = crate::process::claude_code_cli() else {
        return;
    };
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&config(&vertex.url(), &anthropic.url())).await;
    // Either of the gateway's key headers, sent by Claude Code as a custom header.
    for (run, header) in [
        format!("Authorization: Bearer {GATEWAY_KEY}"),
        format!("x-api-key: {GATEWAY_KEY}"),
    ]
    .into_iter()
    .enumerate()
    {
        claude_code_in_vertex_mode(&claude, &gw.url, &header).await;
        assert!(vertex.received().is_empty(), "served by Anthropic alone");
        let received = anthropic.received();
        assert_eq!(received.len(), run + 1, "one turn per run");
        let turn = &received[run];
        assert_eq!(turn.path, "/v1/messages");
        assert_eq!(turn.header("x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(turn.header("authorization"), None);
        let beta = turn.header("anthropic-beta").unwrap_or_default();
        assert!(beta.contains("claude-code-20250219"), "{beta}");
        let body = turn.json();
        assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(body["stream"], true);
        assert!(
            body.get("anthropic_version").is_none(),
            "Vertex's version stays at the door"
        );
        assert!(
            body["tools"].as_array().is_some_and(|t| t.len() > 10),
            "Claude Code's tools reach Anthropic"
        );
        assert!(
            body["system"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("x-anthropic-billing-header: cc_version=")),
            "the attribution block travels untouched: {}",
            body["system"][0]
        );
        assert_no_gateway_key(&received);
    }
}

/// `claude -p "say hi"` in Vertex mode against the gateway.
async fn claude_code_in_vertex_mode(claude: &std::path::Path, gateway: &str, key_header: &str) {
    let base = format!("{gateway}/v1/vertex/v1");
    crate::process::claude_says_hi(
        claude,
        &[
            ("CLAUDE_CODE_USE_VERTEX", "1"),
            ("ANTHROPIC_VERTEX_BASE_URL", &base),
            ("ANTHROPIC_VERTEX_PROJECT_ID", CALLERS_PROJECT),
            ("CLOUD_ML_REGION", CALLERS_REGION),
            ("CLAUDE_CODE_SKIP_VERTEX_AUTH", "1"),
            ("ANTHROPIC_CUSTOM_HEADERS", key_header),
        ],
    )
    .await;
}

/// `AnthropicVertex` with an access token (no Google credentials): a message and a
/// streamed message, served by Vertex under the gateway's project, region and token.
#[tokio::test]
async fn anthropic_vertex_sdk_reaches_claude_on_vertex() {
    if !python_has(&["anthropic"]) {
        return;
    }
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&config(&vertex.url(), &anthropic.url())).await;
    let cases = run_client(
        "anthropic_vertex.py",
        &[
            &format!("{}/v1/vertex/v1", gw.url),
            GATEWAY_KEY,
            "claude-sonnet-4-5",
            CALLERS_PROJECT,
            CALLERS_REGION,
        ],
    )
    .await;
    assert_eq!(cases.len(), 2, "{cases:?}");
    for case in &cases {
        assert!(
            case["content"].as_str().is_some_and(|c| !c.is_empty()),
            "{case}"
        );
        assert!(
            case["usage"]["output_tokens"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{case}"
        );
    }
    assert!(cases[1]["streamed"].as_str().is_some_and(|s| !s.is_empty()));

    assert!(anthropic.received().is_empty(), "served by Vertex alone");
    let received = vertex.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    let model = format!("{GATEWAYS_MODELS}/anthropic/models/claude-sonnet-4-5@20250929");
    assert_eq!(
        paths,
        [
            format!("{model}:rawPredict"),
            format!("{model}:streamRawPredict")
        ],
        "the gateway's project, region and model, not the caller's"
    );
    for (r, stream) in received.iter().zip([false, true]) {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {VERTEX_TOKEN}").as_str())
        );
        let body = r.json();
        // The SDK's own `anthropic_version`, forwarded as sent.
        assert!(
            body["anthropic_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{body}"
        );
        assert!(body.get("model").is_none(), "the model is in the path");
        assert_eq!(body["stream"] == true, stream, "{body}");
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["system"], "You are a terse assistant.");
        assert_eq!(body["messages"][0]["role"], "user");
    }
    assert_no_gateway_key(&received);
}

/// google-genai with `vertexai=True` and offline credentials: generate_content and
/// generate_content_stream, served by Gemini on Vertex under the gateway's project.
#[tokio::test]
async fn genai_vertex_client_reaches_gemini_on_vertex() {
    if !python_has(&["google.genai", "google.oauth2.credentials"]) {
        return;
    }
    let vertex = FakeUpstream::start(vertex_reply).await;
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&config(&vertex.url(), &anthropic.url())).await;
    let cases = run_client(
        "genai_vertex.py",
        &[
            &format!("{}/v1/vertex", gw.url),
            GATEWAY_KEY,
            "gemini-2.5-flash",
            CALLERS_PROJECT,
            "us-central1",
        ],
    )
    .await;
    assert_eq!(cases.len(), 2, "{cases:?}");
    for case in &cases {
        assert!(
            case["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{case}"
        );
        assert!(case["stop_reason"].is_string(), "{case}");
        assert!(
            case["usage"]["total_token_count"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{case}"
        );
    }

    assert!(anthropic.received().is_empty());
    let received = vertex.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    let model = format!("{GATEWAYS_MODELS}/google/models/gemini-2.5-flash");
    assert_eq!(
        paths,
        [
            format!("{model}:generateContent"),
            format!("{model}:streamGenerateContent?alt=sse")
        ],
        "the gateway's project, region and API version, not the caller's v1beta1"
    );
    for r in &received {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {VERTEX_TOKEN}").as_str())
        );
        let body: Value = r.json();
        assert_eq!(
            body["contents"][0]["parts"][0]["text"],
            "Say hello in one short sentence."
        );
        assert_eq!(
            body["systemInstruction"]["parts"][0]["text"],
            "You are a terse assistant."
        );
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 64);
    }
    assert_no_gateway_key(&received);
}
