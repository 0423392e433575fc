//! `/v1/bedrock/*` as boto3 uses it: the caller's SigV4 signature is checked with a
//! gateway-issued pair, and the call is signed again with the route's AWS credentials.

use crate::fakes::{client, fixture, FakeUpstream, Reply, TestGateway};
use crate::process::{python_has, PythonFake};
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};
use std::time::Duration;

const PROVIDER_AKID: &str = "AKIDPROVIDER";
const PROVIDER_SECRET: &str = "provider/secret+KEY";
const GW_AKID: &str = "GWKEY1";
const GW_SECRET: &str = "gateway-issued-secret";

fn config(bedrock: &str, audit: &str) -> String {
    format!(
        r#"
providers:
  bedrock:
    type: bedrock
    base_url: "{bedrock}"
    region: us-east-1
    access_key_id: {PROVIDER_AKID}
    secret_access_key: "{PROVIDER_SECRET}"
routes:
  - {{ models: ["claude-sonnet-4-5"], provider: bedrock, upstream_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0" }}
  - {{ models: ["us.anthropic.*", "anthropic.*", "amazon.*"], provider: bedrock }}
auth:
  mode: keys
  keys:
    - {{ id: {GW_AKID}, sha256: "{}", user: contractor1, sigv4_secret: "{GW_SECRET}" }}
rate_limits:
  default: {{ requests_per_minute: 100 }}
{audit}
"#,
        key_sha256("gw_contractor1")
    )
}

/// boto3, unmodified, with a gateway-issued key pair: every Bedrock runtime operation
/// reaches a fake Bedrock that checks the gateway's own signature.
#[tokio::test]
async fn boto3_works_through_the_gateway_with_a_gateway_issued_key_pair() {
    if !python_has(&["boto3"]) {
        return;
    }
    let fake = PythonFake::start(
        "fake_aws_gemini_capture.py",
        &[
            "--aws-credentials",
            &format!("{PROVIDER_AKID}:{PROVIDER_SECRET}"),
        ],
    );
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &format!("http://127.0.0.1:{}", fake.port),
        &format!("audit: {{ sink: file, path: \"{}\" }}", audit.display()),
    ))
    .await;
    let cases = crate::process::run_client(
        "boto3_bedrock.py",
        &[
            &format!("{}/v1/bedrock", gw.url),
            GW_AKID,
            GW_SECRET,
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ],
    )
    .await;
    assert!(cases.len() >= 4, "{cases:?}");
    let requests = fake.requests();
    assert!(requests.len() >= 4);
    for r in &requests {
        let sig = &r["sigv4"];
        assert_eq!(
            sig["access_key"], PROVIDER_AKID,
            "signed with the route's key: {r}"
        );
        assert_eq!(
            sig["verified_double_encoded"], true,
            "the gateway's signature verifies as AWS checks it: {r}"
        );
        let path = r["path"].as_str().expect("path");
        assert!(
            path.starts_with("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/"),
            "{path}"
        );
    }
    // Streams were metered from their frames.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&audit).expect("audit");
    let streamed: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["stream"] == true)
        .collect();
    assert!(!streamed.is_empty());
    for r in streamed {
        assert!(r["response_tokens"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(r["request_tokens"].as_u64().unwrap_or(0) > 0, "{r}");
    }
}

#[tokio::test]
async fn a_wrong_secret_or_missing_signature_is_refused_in_bedrocks_format() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/bedrock/converse.json"))).await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let resp = client()
        .post(format!("{}/v1/bedrock/model/amazon.nova-lite-v1%3A0/converse", gw.url))
        .header("authorization", format!("AWS4-HMAC-SHA256 Credential={GW_AKID}/20261126/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"))
        .header("x-amz-date", "20261126T103000Z")
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("x-amzn-errortype"));
    let body: Value = resp.json().await.expect("json");
    assert!(body["message"].is_string(), "{body}");
    assert!(upstream.received().is_empty());

    // Clients that can set a header use the gateway key as a bearer token.
    let resp = client()
        .post(format!(
            "{}/v1/bedrock/model/amazon.nova-lite-v1%3A0/converse",
            gw.url
        ))
        .bearer_auth("gw_contractor1")
        .json(&json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let sent = upstream.last();
    assert_eq!(sent.path, "/model/amazon.nova-lite-v1%3A0/converse");
    let auth = sent.header("authorization").expect("signed");
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={PROVIDER_AKID}/")),
        "{auth}"
    );
    assert!(sent.header("x-amz-date").is_some());
}

#[tokio::test]
async fn a_signature_with_credentials_the_gateway_never_issued_is_taken_with_a_gateway_key() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/bedrock/converse.json"))).await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let url = format!(
        "{}/v1/bedrock/model/amazon.nova-lite-v1%3A0/converse",
        gw.url
    );
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).to_string();
    // What boto3 sends when the workspace has AWS credentials of its own.
    let signed = |extra: Option<&str>| {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "host",
            gw.url.trim_start_matches("http://").parse().expect("host"),
        );
        headers.insert("content-type", "application/json".parse().expect("value"));
        if let Some(key) = extra {
            headers.insert("x-api-key", key.parse().expect("value"));
        }
        let signer = ai_gateway::sigv4::Signer {
            access_key_id: "AKIAWORKSPACEOWN",
            secret_access_key: "the-workspaces-own-secret",
            session_token: None,
            region: "us-east-1",
            service: ai_gateway::sigv4::BEDROCK_SERVICE,
        };
        signer
            .apply(&http::Method::POST, &url, &mut headers, body.as_bytes())
            .expect("signs");
        headers
    };
    let send = |headers: http::HeaderMap| {
        client()
            .post(&url)
            .headers(headers)
            .body(body.clone())
            .send()
    };

    let resp = send(signed(Some("gw_contractor1"))).await.expect("answers");
    assert_eq!(resp.status(), 200);
    let sent = upstream.last();
    let auth = sent.header("authorization").expect("signed");
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={PROVIDER_AKID}/")),
        "signed anew with the route's key: {auth}"
    );
    assert!(sent.header("x-api-key").is_none(), "the gateway key stays");

    // Without the key, or with one the gateway does not know, the signature alone decides.
    for key in [None, Some("gw_unknown")] {
        let resp = send(signed(key)).await.expect("answers");
        assert_eq!(resp.status(), 401, "{key:?}");
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn the_users_json_envelope_invokes_the_named_model() {
    let upstream = FakeUpstream::start(|_| {
        Reply::json(200, fixture("upstream/bedrock/invoke_anthropic.json"))
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let resp = client()
        .post(format!("{}/v1/bedrock/invoke", gw.url))
        .bearer_auth("gw_contractor1")
        .header("x-workspace-id", "ws-abc123")
        .json(&json!({
            "model_id": "claude-sonnet-4-5",
            "body": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                     "messages": [{"role": "user", "content": "Hello"}]}
        }))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let sent = upstream.last();
    assert_eq!(
        sent.path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    );
    assert_eq!(sent.json()["anthropic_version"], "bedrock-2023-05-31");
    assert_eq!(sent.header("x-workspace-id"), None);
}

#[tokio::test]
async fn a_cut_event_stream_ends_with_an_exception_frame() {
    let frames = fixture("upstream/bedrock/converse_stream.bin");
    // Keep the first frame only: the stream ends before messageStop.
    let first_len = u32::from_be_bytes([frames[0], frames[1], frames[2], frames[3]]) as usize;
    let cut = Reply {
        status: 200,
        content_type: "application/vnd.amazon.eventstream",
        chunks: vec![bytes::Bytes::copy_from_slice(&frames[..first_len])],
        head_delay: Duration::ZERO,
        chunk_delay: Duration::from_millis(2),
        abort: false,
        stall_before_last: None,
        headers: Vec::new(),
    };
    let upstream = FakeUpstream::start(move |_| cut.clone()).await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let body = client()
        .post(format!(
            "{}/v1/bedrock/model/amazon.nova-lite-v1%3A0/converse-stream",
            gw.url
        ))
        .bearer_auth("gw_contractor1")
        .json(&json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}))
        .send()
        .await
        .expect("answers")
        .bytes()
        .await
        .expect("stream");
    assert_eq!(
        &body[..first_len],
        &frames[..first_len],
        "frames pass through unchanged"
    );
    let tail = &body[first_len..];
    assert!(!tail.is_empty(), "an exception frame follows");
    let tail_text = String::from_utf8_lossy(tail);
    assert!(
        tail_text.contains("exception")
            && tail_text.contains("ended before the response was complete"),
        "{tail_text}"
    );
}

fn claude_on_bedrock_config(bedrock: &str) -> String {
    format!(
        r#"
providers:
  bedrock:
    type: bedrock
    base_url: "{bedrock}"
    region: us-east-1
    access_key_id: {PROVIDER_AKID}
    secret_access_key: "{PROVIDER_SECRET}"
routes:
  - {{ models: ["claude-*"], provider: bedrock, upstream_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0" }}
"#
    )
}

/// Claude Code's own request, sent to `/v1/claude`, served by Claude on Bedrock: the
/// event stream comes back as the Messages API's SSE events.
#[tokio::test]
async fn claude_code_on_bedrock_gets_messages_events_back() {
    let upstream = FakeUpstream::start(|req| {
        if req.path.ends_with("/invoke-with-response-stream") {
            Reply {
                status: 200,
                content_type: "application/vnd.amazon.eventstream",
                chunks: vec![bytes::Bytes::from(fixture(
                    "upstream/bedrock/invoke_anthropic_stream.bin",
                ))],
                head_delay: Duration::ZERO,
                chunk_delay: Duration::from_millis(2),
                abort: false,
                stall_before_last: None,
                headers: Vec::new(),
            }
        } else {
            Reply::json(200, fixture("upstream/bedrock/invoke_anthropic.json"))
        }
    })
    .await;
    let gw = TestGateway::start(&claude_on_bedrock_config(&upstream.url())).await;
    let recorded: Value =
        serde_json::from_slice(&fixture("clients/claude_code_request.json")).expect("fixture");
    let beta = recorded["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("anthropic-beta"))
        .and_then(|(_, v)| v.as_str())
        .expect("beta")
        .to_string();
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages?beta=true", gw.url))
        .header("x-api-key", "caller")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", &beta)
        .json(&recorded["body"])
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("stream");
    let events = crate::fakes::sse_events(&text);
    assert_eq!(
        events.first().map(String::as_str),
        Some("message_start"),
        "{text}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("message_stop"),
        "{text}"
    );
    let data = crate::fakes::sse_data(&text);
    let said: String = data
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert!(!said.is_empty());

    let sent = upstream.last();
    assert_eq!(
        sent.path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
    );
    assert!(sent
        .header("authorization")
        .expect("signed")
        .starts_with("AWS4-HMAC-SHA256"));
    assert_eq!(sent.header("x-api-key"), None);
    let body = sent.json();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(body.get("model").is_none() && body.get("stream").is_none());
    let flags: Vec<&str> = body["anthropic_beta"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Bedrock refuses Anthropic-only flags: only those it takes are carried.
    assert!(beta.contains("claude-code-20250219"));
    assert!(!flags.contains(&"claude-code-20250219"), "{flags:?}");
    assert!(
        flags.contains(&"context-1m-2025-08-07")
            && flags.contains(&"interleaved-thinking-2025-05-14"),
        "{flags:?}"
    );
    assert_eq!(
        body["tools"], recorded["body"]["tools"],
        "tools travel unchanged"
    );
    assert_eq!(
        body["system"], recorded["body"]["system"],
        "the system blocks, Claude Code's attribution block among them, travel unchanged"
    );

    // count_tokens is answered by the gateway in the Messages format.
    let count: Value = client()
        .post(format!("{}/v1/claude/v1/messages/count_tokens", gw.url))
        .json(&json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert!(count["input_tokens"].as_u64().is_some_and(|n| n > 0));
}

/// The real Claude Code CLI, unmodified, against a Bedrock route.
#[tokio::test]
async fn claude_code_cli_runs_on_a_bedrock_route() {
    let Some(claude) = crate::process::claude_code_cli() else {
        return;
    };
    if !python_has(&["boto3"]) {
        assert!(std::env::var_os("CI").is_none(), "CI must install boto3");
        eprintln!("SKIPPED: boto3 not installed");
        return;
    }
    let fake = PythonFake::start(
        "fake_aws_gemini_capture.py",
        &[
            "--aws-credentials",
            &format!("{PROVIDER_AKID}:{PROVIDER_SECRET}"),
        ],
    );
    let gw = TestGateway::start(&claude_on_bedrock_config(&format!(
        "http://127.0.0.1:{}",
        fake.port
    )))
    .await;
    let base = format!("{}/v1/claude", gw.url);
    crate::process::claude_says_hi(
        &claude,
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_API_KEY", "gw-test-key"),
        ],
    )
    .await;
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("/invoke-with-response-stream"))
        && r["sigv4"]["verified_double_encoded"] == true));
}

/// The real Claude Code CLI in its Bedrock mode (`CLAUDE_CODE_USE_BEDROCK=1`): it signs
/// InvokeModel calls with a gateway-issued pair; the gateway checks that signature, signs
/// again with the route's AWS credentials, and the provider gets Claude Code's body as
/// sent.
#[tokio::test]
async fn claude_code_in_bedrock_mode_signs_with_a_gateway_issued_pair() {
    let Some(claude) = crate::process::claude_code_cli() else {
        return;
    };
    if !python_has(&["boto3"]) {
        assert!(std::env::var_os("CI").is_none(), "CI must install boto3");
        eprintln!("SKIPPED: boto3 not installed");
        return;
    }
    let fake = PythonFake::start(
        "fake_aws_gemini_capture.py",
        &[
            "--aws-credentials",
            &format!("{PROVIDER_AKID}:{PROVIDER_SECRET}"),
        ],
    );
    let gw = TestGateway::start(&config(&format!("http://127.0.0.1:{}", fake.port), "")).await;
    let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let base = format!("{}/v1/bedrock", gw.url);
    crate::process::claude_says_hi(
        &claude,
        &[
            ("CLAUDE_CODE_USE_BEDROCK", "1"),
            ("ANTHROPIC_BEDROCK_BASE_URL", &base),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", GW_AKID),
            ("AWS_SECRET_ACCESS_KEY", GW_SECRET),
            ("ANTHROPIC_MODEL", model),
            ("ANTHROPIC_SMALL_FAST_MODEL", model),
        ],
    )
    .await;
    let requests = fake.requests();
    let turn = requests
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/invoke-with-response-stream"))
        })
        .unwrap_or_else(|| panic!("Claude Code's turn reached Bedrock: {requests:?}"));
    assert_eq!(
        turn["path"],
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
    );
    assert_eq!(turn["sigv4"]["access_key"], PROVIDER_AKID, "{turn}");
    assert_eq!(turn["sigv4"]["verified_double_encoded"], true, "{turn}");
    assert!(
        !turn["headers"].to_string().contains(GW_SECRET)
            && !turn["headers"].to_string().contains(GW_AKID),
        "the caller's credentials stay at the gateway: {turn}"
    );
    let body = &turn["body"];
    assert!(body["anthropic_version"].is_string(), "{body}");
    assert!(
        body["system"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("x-anthropic-billing-header")),
        "Claude Code's attribution block as sent: {body}"
    );
    assert!(body["tools"].as_array().is_some_and(|t| !t.is_empty()));
}

/// The openai SDK on `/v1/chat/completions`, served by Bedrock's Converse API.
#[tokio::test]
async fn openai_sdk_reaches_bedrock_through_converse() {
    if !python_has(&["openai"]) {
        return;
    }
    let fake = PythonFake::start(
        "fake_aws_gemini_capture.py",
        &[
            "--aws-credentials",
            &format!("{PROVIDER_AKID}:{PROVIDER_SECRET}"),
        ],
    );
    let gw = TestGateway::start(&claude_on_bedrock_config(&format!(
        "http://127.0.0.1:{}",
        fake.port
    )))
    .await;
    let cases = crate::process::run_client(
        "openai_sdk.py",
        &[
            &format!("{}/v1", gw.url),
            "gw-test-key",
            "claude-sonnet-4-5",
            "--only",
            "chat,chat_stream,tool_call",
        ],
    )
    .await;
    assert_eq!(cases.len(), 3, "{cases:?}");
    assert!(
        cases[0]["content"].as_str().is_some_and(|c| !c.is_empty()),
        "{cases:?}"
    );
    assert!(
        cases[1]["usage"]["total_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{cases:?}"
    );
    assert!(
        cases[2]["tool_calls"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{cases:?}"
    );
    for r in fake.requests() {
        assert_eq!(r["sigv4"]["verified_double_encoded"], true, "{r}");
        assert!(
            r["path"].as_str().is_some_and(|p| p.contains("/converse")),
            "{r}"
        );
    }
}
