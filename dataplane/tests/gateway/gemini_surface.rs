//! `/v1/gemini/*` as google-genai and curl use it.

use crate::fakes::{client, fixture, sse_data, FakeUpstream, Reply, TestGateway};
use crate::process::{python_has, PythonFake};
use serde_json::{json, Value};

fn config(gemini: &str) -> String {
    format!(
        r#"
providers:
  gemini: {{ type: gemini, base_url: "{gemini}", api_key: gm-real-key }}
routes:
  - {{ models: ["gemini-*"], provider: gemini }}
  - {{ models: ["gemini-pro"], provider: gemini, upstream_model: gemini-2.5-pro }}
"#
    )
}

fn gemini_reply(req: &crate::fakes::Recorded) -> Reply {
    if req.path.contains(":streamGenerateContent") {
        Reply::sse(&fixture("upstream/gemini/stream_generate_content.sse"))
    } else if req.path.contains(":countTokens") {
        Reply::json(200, fixture("upstream/gemini/count_tokens.json"))
    } else {
        Reply::json(200, fixture("upstream/gemini/generate_content.json"))
    }
}

#[tokio::test]
async fn the_callers_key_is_swapped_and_aliases_reach_the_path() {
    let upstream = FakeUpstream::start(gemini_reply).await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let resp = client()
        .post(format!(
            "{}/v1/gemini/v1beta/models/gemini-pro:generateContent?key=caller-key",
            gw.url
        ))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-model"], "gemini-2.5-pro");
    let sent = upstream.last();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-pro:generateContent");
    assert_eq!(sent.header("x-goog-api-key"), Some("gm-real-key"));
    let body: Value = resp.json().await.expect("json");
    assert!(body["candidates"].is_array());

    // Files, tuning and the like are not reachable through the gateway.
    let files = client()
        .post(format!("{}/v1/gemini/v1beta/files", gw.url))
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(files.status(), 404);
    let err: Value = files.json().await.expect("json");
    assert_eq!(
        err["error"]["status"], "NOT_FOUND",
        "errors come in Gemini's shape"
    );
}

#[tokio::test]
async fn sse_streams_pass_through_and_a_cut_stream_ends_with_an_error() {
    let upstream = FakeUpstream::start(gemini_reply).await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let text = client()
        .post(format!(
            "{}/v1/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            gw.url
        ))
        .header("x-goog-api-key", "caller")
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("stream");
    assert_eq!(
        text,
        String::from_utf8(fixture("upstream/gemini/stream_generate_content.sse")).expect("utf8")
    );
    assert_eq!(
        upstream.last().path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );

    // The same stream cut before its finishing chunk.
    let full =
        String::from_utf8(fixture("upstream/gemini/stream_generate_content.sse")).expect("utf8");
    let first_event = full
        .split_inclusive("\r\n\r\n")
        .next()
        .expect("an event")
        .to_string();
    let cut = Reply {
        abort: true,
        ..Reply::sse(first_event.as_bytes())
    };
    let broken = FakeUpstream::start(move |_| cut.clone()).await;
    let gw = TestGateway::start(&config(&broken.url())).await;
    let text = client()
        .post(format!(
            "{}/v1/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            gw.url
        ))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("stream");
    let last = sse_data(&text).pop().expect("events");
    assert_eq!(last["error"]["status"], "UNAVAILABLE", "{text}");
}

/// google-genai, unmodified, through the gateway to a fake Gemini.
#[tokio::test]
async fn google_genai_works_through_the_gateway() {
    if !python_has(&["google.genai"]) {
        return;
    }
    let fake = PythonFake::start("fake_aws_gemini_capture.py", &[]);
    let gw = TestGateway::start(&config(&format!("http://127.0.0.1:{}", fake.port))).await;
    let cases = crate::process::run_client(
        "genai_gemini.py",
        &[
            &format!("{}/v1/gemini", gw.url),
            "gw-test-key",
            "gemini-2.5-flash",
        ],
    )
    .await;
    assert!(cases.len() >= 4, "{cases:?}");
    let requests = fake.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let headers = r["headers"].as_object().expect("headers");
        let key = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-goog-api-key"))
            .map(|(_, v)| v.clone());
        assert_eq!(key, Some(json!("gm-real-key")), "{r}");
    }
}

/// The openai SDK on `/v1/chat/completions`, served by Gemini's generateContent.
#[tokio::test]
async fn openai_sdk_reaches_gemini() {
    if !python_has(&["openai"]) {
        return;
    }
    let fake = PythonFake::start("fake_aws_gemini_capture.py", &[]);
    let gw = TestGateway::start(&config(&format!("http://127.0.0.1:{}", fake.port))).await;
    let cases = crate::process::run_client(
        "openai_sdk.py",
        &[
            &format!("{}/v1", gw.url),
            "gw-test-key",
            "gemini-pro",
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
        let path = r["path"].as_str().expect("path");
        assert!(
            path.starts_with("/v1beta/models/gemini-2.5-pro:"),
            "the alias reached the path: {path}"
        );
    }
}
