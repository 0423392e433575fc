//! The attacks of a red-team pass, each written as the attack: a caller trying to make
//! the gateway buffer, spend, forward or count what it should not. Every test here
//! failed before its fix.

use crate::fakes::{
    audit_records, client, fake_anthropic, fake_openai, usage_of, FakeUpstream, Reply, TestGateway,
};
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "gw_attacker_key";
const GW_AKID: &str = "GWKEY1";

fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{upstream}", api_key: sk-ant-real }}
  openai: {{ type: openai, base_url: "{upstream}/v1", api_key: sk-openai-real }}
  local: {{ type: ollama, base_url: "{upstream}" }}
  bedrock: {{ type: bedrock, base_url: "{upstream}", region: us-east-1,
             access_key_id: AKIDPROVIDER, secret_access_key: "provider-secret-0123456789" }}
  gemini: {{ type: gemini, base_url: "{upstream}", api_key: g-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["gpt-*"], provider: openai }}
  - {{ models: ["llama*"], provider: local }}
  - {{ models: ["us.anthropic.*"], provider: bedrock }}
  - {{ models: ["gemini-*"], provider: gemini }}
auth:
  mode: keys
  keys:
    - {{ id: {GW_AKID}, sha256: "{}", user: attacker, sigv4_secret: "gateway-issued-secret-0123" }}
{extra}
"#,
        key_sha256(KEY)
    )
}

/// `POST` as the attacker, with its key, a JSON body.
async fn post_as_attacker(gw: &TestGateway, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .expect("answers")
}

/// Sends only a request head announcing `length` body bytes (and none of them), and
/// returns the status line of whatever answers within two seconds.
async fn head_only(gateway_url: &str, head: &str) -> String {
    let addr = gateway_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut answer))
        .await
        .expect("answered before the body was sent")
        .expect("read");
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_stranger_signing_with_sigv4_is_refused_before_sending_its_32_mib_body() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let now = chrono_like_amz_date();
    let head = format!(
        "POST /v1/bedrock/model/us.anthropic.claude-sonnet-4-5-v1:0/invoke HTTP/1.1\r\nhost: gw\r\n\
         authorization: AWS4-HMAC-SHA256 Credential=AKIASTRANGER/20261203/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n\
         x-amz-date: {now}\r\ncontent-type: application/json\r\ncontent-length: 33554427\r\n\r\n"
    );
    let status = head_only(&gw.url, &head).await;
    assert!(status.contains(" 401 "), "{status}");
    assert_eq!(gw.gateway.services.bodies.available_kib(), 128 * 1024);
}

/// `x-amz-date` for now, without a date crate.
fn chrono_like_amz_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z")
}

#[tokio::test]
async fn a_rate_limited_key_is_refused_before_sending_its_large_body() {
    crate::fakes::within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "rate_limits:\n  per_user:\n    attacker: { requests_per_minute: 1 }",
    ))
    .await;
    let first = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(first.status(), 200);
    let head = format!(
        "POST /v1/claude/v1/messages HTTP/1.1\r\nhost: gw\r\nx-api-key: {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 33554427\r\n\r\n"
    );
    let status = head_only(&gw.url, &head).await;
    assert!(status.contains(" 429 "), "{status}");
}

#[tokio::test]
async fn slow_uploads_together_cannot_hold_more_than_the_body_budget() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "gateway: { max_request_bytes: 2097152, max_buffered_request_bytes: 3145728, body_read_timeout_ms: 5000 }",
    ))
    .await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /v1/claude/v1/messages HTTP/1.1\r\nhost: gw\r\nx-api-key: {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 2000000\r\n\r\n"
    );
    let chunk = vec![b' '; 1_900_000];
    // Two uploads that never finish hold 3.8 MB between them: the second finds no room.
    let mut first = TcpStream::connect(&addr).await.expect("connect");
    first.write_all(head.as_bytes()).await.expect("head");
    first.write_all(&chunk).await.expect("body");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(gw.gateway.services.bodies.available_kib() < 3 * 1024 - 1800);
    let mut second = TcpStream::connect(&addr).await.expect("connect");
    second.write_all(head.as_bytes()).await.expect("head");
    let _ = second.write_all(&chunk).await;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), second.read(&mut answer))
        .await
        .expect("the second upload is answered")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(first);
    drop(second);
    // The room comes back once the uploads are gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while gw.gateway.services.bodies.available_kib() < 3 * 1024 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "room never returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn native_surfaces_refuse_methods_that_manage_the_provider() {
    let upstream = fake_openai().await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    for method in ["DELETE", "PUT", "PATCH"] {
        for path in [
            "/v1/openai/v1/models/ft:gpt-4o-mini:acme:custom:abc123",
            "/v1/openai/v1/chat/completions",
            "/v1/ollama/api/delete",
            "/v1/ollama/api/tags",
        ] {
            let resp = client()
                .request(method.parse().expect("method"), format!("{}{path}", gw.url))
                .bearer_auth(KEY)
                .body(r#"{"model": "gpt-4o"}"#)
                .send()
                .await
                .expect("answers");
            assert_eq!(resp.status(), 404, "{method} {path}");
        }
    }
    assert!(
        upstream.received().is_empty(),
        "nothing reached the provider with its key"
    );
}

#[tokio::test]
async fn encoded_dot_segments_cannot_climb_out_of_a_surface() {
    let upstream = fake_openai().await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    for path in [
        "/v1/openai/v1/models/%2e%2e/fine_tuning/jobs",
        "/v1/openai/v1/models/%2E%2E/files",
        "/v1/claude/v1/models/%2e%2e/messages/batches",
        "/v1/claude/v1/models/..%2fmessages%2fbatches",
        "/v1/openai/v1/models/.%2e/files",
    ] {
        let resp = client()
            .get(format!("{}{path}", gw.url))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn bodies_the_model_peek_could_not_read_are_admitted_or_refused_never_forwarded_free() {
    crate::fakes::within_one_rate_window().await;
    let upstream = fake_openai().await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &upstream.url(),
        &format!(
            "rate_limits:\n  per_user:\n    attacker: {{ requests_per_minute: 2 }}\naudit: {{ sink: file, path: \"{}\" }}",
            audit.display()
        ),
    ))
    .await;
    let send = |body: &'static str| {
        let url = format!("{}/v1/openai/v1/chat/completions", gw.url);
        async move {
            let resp = client()
                .post(url)
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("answers");
            let status = resp.status().as_u16();
            let _ = resp.bytes().await;
            status
        }
    };
    // OpenAI itself accepts both; they are admitted like any call.
    let stream_null =
        r#"{"model": "gpt-4o", "stream": null, "messages": [{"role": "user", "content": "hi"}]}"#;
    let float_tokens = r#"{"model": "gpt-4o", "max_tokens": 100.0, "messages": [{"role": "user", "content": "hi"}]}"#;
    assert_eq!(send(stream_null).await, 200);
    assert_eq!(send(float_tokens).await, 200);
    // The user is now at its limit: the same bodies are refused, not forwarded free.
    assert_eq!(send(stream_null).await, 429);
    assert_eq!(send(float_tokens).await, 429);
    // A body two parsers could read two ways is refused outright.
    let duplicate = r#"{"model": "gpt-4o", "model": "gpt-4o-mini", "messages": []}"#;
    assert_eq!(send(duplicate).await, 400);
    assert_eq!(
        send(r#"{"model": "gpt-4o", "max_tokens": 1.5, "messages": []}"#).await,
        400
    );
    assert_eq!(
        send(r#"{"messages": []}"#).await,
        400,
        "a model is required"
    );
    assert_eq!(
        upstream.received().len(),
        2,
        "only the admitted calls went up"
    );

    // Each call has its audit record, metered calls with their tokens.
    let records = audit_records(&audit, 7).await;
    let statuses: Vec<u64> = records
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [200, 200, 429, 429, 400, 400, 400], "{records:?}");
    assert!(records[..2]
        .iter()
        .all(|r| r["response_tokens"].as_u64() > Some(0)));
}

#[tokio::test]
async fn caller_chosen_model_names_cannot_grow_metrics_or_the_usage_ledger() {
    let upstream = fake_openai().await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let client = client();
    for n in 0..400 {
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(KEY)
            .json(&json!({"model": format!("gpt-{n}-{}", "x".repeat(50)),
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await;
    }
    // Refused before routing: no series at all for these names.
    for n in 0..100 {
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("gw_wrong")
            .json(&json!({"model": format!("junk-{n}"), "messages": []}))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 401);
    }
    let metrics = client
        .get(format!("{}/metrics", gw.admin_url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let models: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("ai_gateway_requests_total{"))
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    assert!(models.len() <= 257, "{} model labels", models.len());
    assert!(
        models.contains("other"),
        "names past the cap count as other"
    );
    assert!(
        !metrics.contains("junk-"),
        "unrouted names are never labels"
    );
    assert!(metrics.contains("ai_gateway_refused_requests_total{status=\"401\"} 100"));

    let usage: Value = usage_of(&gw.url, KEY).await;
    let ledger = usage["models"].as_object().expect("models");
    assert!(ledger.len() <= 65, "{} models in the ledger", ledger.len());
    assert_eq!(usage["today"]["requests"], 400, "every call still counted");
}

#[tokio::test]
async fn a_caller_who_hangs_up_before_the_answer_is_still_audited() {
    let slow = FakeUpstream::start(|_| {
        let mut reply = Reply::json(200, r#"{"id": "x"}"#);
        reply.head_delay = Duration::from_secs(5);
        reply
    })
    .await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &slow.url(),
        &format!("audit: {{ sink: file, path: \"{}\" }}", audit.display()),
    ))
    .await;
    let call = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .header("x-request-id", "req-hung-up")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(call.is_err(), "the caller gave up");
    let record = audit_records(&audit, 1)
        .await
        .into_iter()
        .find(|r| r["client_request_id"] == "req-hung-up")
        .expect("audited");
    assert_eq!(record["status"], 499);
    assert_eq!(record["abandoned"], true);
    assert_eq!(record["user"], "attacker");
}

#[tokio::test]
async fn a_key_in_the_query_never_reaches_a_provider_in_any_spelling() {
    let upstream = FakeUpstream::start(|req| {
        if req.path.contains("/api/tags") {
            Reply::json(200, r#"{"models": []}"#)
        } else if req.path.contains("generateContent") {
            Reply::json(
                200,
                r#"{"candidates": [], "usageMetadata": {"promptTokenCount": 1}}"#,
            )
        } else {
            crate::fakes::anthropic_reply(req)
        }
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let message = json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
                         "messages": [{"role": "user", "content": "hi"}]});
    let calls = [
        (
            "POST",
            format!("/v1/claude/v1/messages?key={KEY}&KEY={KEY}&beta=true"),
        ),
        (
            "GET",
            format!("/v1/ollama/api/tags?key={KEY}&Key={KEY}&api_key={KEY}"),
        ),
        (
            "POST",
            format!("/v1/gemini/v1beta/models/gemini-2.5-pro:generateContent?KEY={KEY}&key={KEY}"),
        ),
    ];
    for (method, path) in calls {
        let resp = client()
            .request(method.parse().expect("method"), format!("{}{path}", gw.url))
            .json(&message)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200, "{method} {path}");
        let sent = upstream.last();
        assert!(
            !sent.path.contains(KEY),
            "{} reached the provider",
            sent.path
        );
    }
    let claude = &upstream.received()[0];
    assert!(claude.path.ends_with("?beta=true"), "{}", claude.path);
}

#[tokio::test]
async fn an_edit_that_keeps_the_version_label_still_takes_effect() {
    let upstream = fake_anthropic().await;
    let first = format!("version: v1\n{}", config(&upstream.url(), ""));
    let gw = TestGateway::start(&first).await;
    let call = || async {
        client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .header("x-api-key", KEY)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers")
            .status()
    };
    assert_eq!(call().await, 200);
    // The key is removed, the label left as it was.
    let edited = first.replace(&key_sha256(KEY), &key_sha256("gw_someone_else"));
    let snapshot = ai_gateway_snapshot::parse_document(&edited, |_| None).expect("valid");
    gw.gateway.apply(snapshot).expect("applied");
    assert_eq!(call().await, 401, "the removed key stops working");
}

#[tokio::test]
async fn an_upstream_usage_object_spaced_its_own_way_is_metered_and_kept_from_the_caller() {
    let spaced = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\
                  data: {\"id\":\"c\",\"choices\": [], \"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 3}}\n\n\
                  data: [DONE]\n\n";
    let upstream = FakeUpstream::start(move |_| Reply::sse(spaced.as_bytes())).await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let resp = post_as_attacker(
        &gw,
        "/v1/openai/v1/chat/completions",
        &json!({"model": "gpt-4o", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let body = resp.text().await.expect("body");
    assert!(
        !body.contains("usage"),
        "the caller did not ask for usage: {body}"
    );
    let usage: Value = usage_of(&gw.url, KEY).await;
    assert_eq!(usage["today"]["tokens_in"], 11, "{usage}");
    assert_eq!(usage["today"]["tokens_out"], 3, "{usage}");
}

#[tokio::test]
async fn a_huge_upstream_answer_or_event_is_cut_off_not_held() {
    let mib = bytes::Bytes::from(vec![b' '; 1024 * 1024]);
    let huge_json = mib.clone();
    let upstream = FakeUpstream::start(move |req| {
        let mut reply = if req.path.contains("/api/") {
            // An NDJSON line that never ends.
            Reply::ndjson(b"")
        } else if req.json()["stream"] == true {
            // An SSE event that never ends.
            Reply::sse(b"data: {\"choices\": [")
        } else {
            Reply::json(
                200,
                bytes::Bytes::from_static(b"{\"id\": \"x\", \"pad\": \""),
            )
        };
        reply
            .chunks
            .extend(std::iter::repeat_n(huge_json.clone(), 80));
        reply.chunk_delay = Duration::ZERO;
        reply
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let plain = post_as_attacker(
        &gw,
        "/v1/openai/v1/chat/completions",
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(plain.status(), 502);
    let error: Value = plain.json().await.expect("an error in OpenAI's shape");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than"),
        "{error}"
    );
    let streamed = post_as_attacker(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let text = streamed.text().await.expect("body");
    assert!(
        text.len() < 20 * 1024 * 1024,
        "{} bytes passed on",
        text.len()
    );
    assert!(
        text.contains("larger than 16 MiB"),
        "an error tail ends the stream"
    );
    let ndjson = client()
        .post(format!("{}/v1/ollama/api/chat", gw.url))
        .json(&json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    assert!(
        ndjson.contains("larger than 16 MiB"),
        "{}",
        &ndjson[ndjson.len().saturating_sub(200)..]
    );
}

fn budget_config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
providers:
  openai: {{ type: openai, base_url: "{upstream}/v1", api_key: sk-openai-real }}
routes:
  - {{ models: ["gpt-4o", "o1-pro"], provider: openai }}
auth:
  mode: keys
  keys:
    - {{ id: k1, sha256: "{}", user: attacker }}
rate_limits:
  default: {{ budget_usd_per_day: 0.05 }}
{extra}
"#,
        key_sha256(KEY)
    )
}

async fn chat(gw: &TestGateway, model: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("answers");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_budget_cannot_be_spent_through_a_model_without_a_price() {
    let upstream = fake_openai().await;
    let gw = TestGateway::start(&budget_config(&upstream.url(), "")).await;
    let (status, body) = chat(&gw, "o1-pro", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("has no price"),
        "{body}"
    );
    assert!(upstream.received().is_empty());
    // A priced model is unaffected.
    assert_eq!(chat(&gw, "gpt-4o", &[]).await.0, 200);

    // Configured to charge conservatively instead, the call is served and costs money.
    let upstream = fake_openai().await;
    let gw = TestGateway::start(&budget_config(
        &upstream.url(),
        "  unpriced_models: highest-price",
    ))
    .await;
    assert_eq!(chat(&gw, "o1-pro", &[]).await.0, 200);
    let usage: Value = usage_of(&gw.url, KEY).await;
    assert!(usage["today"]["cost_usd"].as_f64() > Some(0.0), "{usage}");
}

#[tokio::test]
async fn naming_a_provider_reaches_only_routed_models_when_so_configured() {
    let upstream = fake_openai().await;
    let open = TestGateway::start(&budget_config(&upstream.url(), "")).await;
    // By default a provider named outright serves a model no route lists.
    assert_eq!(chat(&open, "openai/gpt-4o-mini", &[]).await.0, 200);
    let closed = TestGateway::start(&format!(
        "gateway: {{ routed_models_only: true }}\n{}",
        budget_config(&upstream.url(), "")
    ))
    .await;
    for (model, headers) in [
        ("openai/gpt-4o-mini", vec![]),
        ("gpt-4o-mini", vec![("x-provider", "openai")]),
    ] {
        let (status, body) = chat(&closed, model, &headers).await;
        assert_eq!(status, 404, "{model}: {body}");
    }
    assert_eq!(
        chat(&closed, "openai/gpt-4o", &[]).await.0,
        200,
        "routed names still work"
    );
}

#[tokio::test]
async fn a_stream_abandoned_before_its_usage_is_still_charged_its_prompt() {
    let slow = FakeUpstream::start(|_| {
        let mut reply = Reply::sse(&crate::fakes::fixture("upstream/openai/stream_text.sse"));
        reply.chunk_delay = Duration::from_millis(300);
        reply
    })
    .await;
    let gw = TestGateway::start(&config(&slow.url(), "")).await;
    let prompt = "tell me about ".repeat(200);
    let mut resp = post_as_attacker(
        &gw,
        "/v1/openai/v1/chat/completions",
        &json!({"model": "gpt-4o", "stream": true,
                "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    let first = resp.chunk().await.expect("a chunk");
    assert!(first.is_some());
    drop(resp);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let usage: Value = usage_of(&gw.url, KEY).await;
        // The estimate: about four bytes of request body per token.
        if usage["today"]["tokens_in"].as_u64() > Some(500) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "charged no prompt: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Bedrock call signed with the gateway-issued pair, as boto3 would sign it.
fn signed_bedrock_call(
    gw: &TestGateway,
    model: &str,
    body: &'static str,
    extra: &[(&'static str, &'static str)],
    unsigned: &[(&'static str, &'static str)],
) -> reqwest::RequestBuilder {
    let url = format!("{}/v1/bedrock/model/{model}/invoke", gw.url);
    let host = gw.url.trim_start_matches("http://").to_string();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host.parse().expect("host"));
    headers.insert("content-type", "application/json".parse().expect("ct"));
    for (name, value) in extra {
        headers.insert(*name, value.parse().expect("value"));
    }
    let signer = ai_gateway::sigv4::Signer {
        access_key_id: GW_AKID,
        secret_access_key: "gateway-issued-secret-0123",
        session_token: None,
        region: "us-east-1",
        service: "bedrock",
    };
    signer
        .apply(&http::Method::POST, &url, &mut headers, body.as_bytes())
        .expect("signs");
    headers.remove("host");
    for (name, value) in unsigned {
        headers.insert(*name, value.parse().expect("value"));
    }
    client().post(url).headers(headers).body(body)
}

const INVOKE: &str = r#"{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}"#;

#[tokio::test]
async fn a_captured_sigv4_request_cannot_be_replayed_nor_its_routing_changed() {
    let upstream = FakeUpstream::start(|_| {
        Reply::json(
            200,
            crate::fakes::fixture("upstream/bedrock/invoke_anthropic.json"),
        )
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let original = signed_bedrock_call(&gw, model, INVOKE, &[], &[]);
    let replay = original.try_clone().expect("clonable");
    assert_eq!(original.send().await.expect("answers").status(), 200);
    let again = replay.send().await.expect("answers");
    assert_eq!(again.status(), 401);
    assert!(again
        .text()
        .await
        .unwrap_or_default()
        .contains("already used"));
    // X-Provider added to a signed request after signing is refused; signed, it is taken.
    let added = signed_bedrock_call(&gw, model, INVOKE, &[], &[("x-provider", "bedrock")]);
    assert_eq!(added.send().await.expect("answers").status(), 401);
    let signed = signed_bedrock_call(&gw, model, INVOKE, &[("x-provider", "bedrock")], &[]);
    assert_eq!(signed.send().await.expect("answers").status(), 200);
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn a_claude_opus_rule_holds_for_bedrock_ids_too() {
    crate::fakes::within_one_rate_window().await;
    let upstream = FakeUpstream::start(|_| {
        Reply::json(
            200,
            crate::fakes::fixture("upstream/bedrock/invoke_anthropic.json"),
        )
    })
    .await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "rate_limits:\n  rules:\n    - { subject: user, model: \"claude-opus-*\", limits: { requests_per_minute: 1 } }",
    ))
    .await;
    let model = "us.anthropic.claude-opus-4-1-20250805-v1:0";
    let call = |body| signed_bedrock_call(&gw, model, body, &[], &[]).send();
    assert_eq!(call(INVOKE).await.expect("answers").status(), 200);
    let second = r#"{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 11, "messages": [{"role": "user", "content": "hi"}]}"#;
    assert_eq!(call(second).await.expect("answers").status(), 429);
}

#[tokio::test]
async fn bodies_no_provider_would_read_the_same_way_are_a_400_on_every_surface() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(
        &upstream.url(),
        "gateway: { max_messages: 5, max_tokens_limit: 1000 }",
    ))
    .await;
    let gemini = format!(
        "{}/v1/gemini/v1beta/models/gemini-2.5-pro:generateContent",
        gw.url
    );
    let bedrock = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let post = |url: String, body: Vec<u8>| {
        client()
            .post(url)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let bad_bodies: [&[u8]; 4] = [
        b"",
        b"not json",
        b"[1, 2]",
        b"{\"contents\": [\"\xff\xfe\"]}",
    ];
    for body in bad_bodies {
        let resp = post(gemini.clone(), body.to_vec()).await.expect("answers");
        assert_eq!(resp.status(), 400, "gemini {body:?}");
        let resp = post(
            format!("{}/v1/bedrock/model/{bedrock}/converse", gw.url),
            body.to_vec(),
        )
        .await
        .expect("answers");
        assert_eq!(resp.status(), 400, "bedrock {body:?}");
        let resp = post(format!("{}/v1/ollama/api/chat", gw.url), body.to_vec())
            .await
            .expect("answers");
        assert_eq!(resp.status(), 400, "ollama {body:?}");
    }
    // Limits read every way the APIs allow a number to be written.
    let as_text = br#"{"contents": [], "generationConfig": {"maxOutputTokens": "900000"}}"#;
    assert_eq!(
        post(gemini.clone(), as_text.to_vec())
            .await
            .expect("answers")
            .status(),
        400
    );
    let twice = br#"{"messages": [], "messages": [{}, {}, {}, {}, {}, {}]}"#;
    let resp = post(
        format!("{}/v1/bedrock/model/{bedrock}/converse", gw.url),
        twice.to_vec(),
    )
    .await
    .expect("answers");
    assert_eq!(resp.status(), 400);
    // Unknown API versions are not passed on.
    let resp = post(
        format!(
            "{}/v1/gemini/v9alpha/models/gemini-2.5-pro:generateContent",
            gw.url
        ),
        br#"{"contents": []}"#.to_vec(),
    )
    .await
    .expect("answers");
    assert_eq!(resp.status(), 404);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn a_huge_model_name_is_refused_not_echoed() {
    let upstream = fake_anthropic().await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(
        &upstream.url(),
        &format!("audit: {{ sink: file, path: \"{}\" }}", audit.display()),
    ))
    .await;
    let name = format!("claude-{}", "x".repeat(200_000));
    for path in [
        "/v1/chat/completions",
        "/v1/claude/v1/messages",
        "/v1/openai/v1/chat/completions",
    ] {
        let resp = post_as_attacker(&gw, path, &json!({"model": name, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(resp.status(), 400, "{path}");
        let header_bytes: usize = resp
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        assert!(
            header_bytes < 4096,
            "{path}: {header_bytes} bytes of headers"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let longest = std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .lines()
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest > 0 && longest < 4096,
        "an audit line of {longest} bytes"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn the_callers_request_id_is_kept_beside_the_gateways_own() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        // Lower case, as some clients write it.
        .header("authorization", format!("bearer {KEY}"))
        .header("x-request-id", "forged-id")
        .header("x-team-id", "someone-elses-team")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200, "a lower-case bearer scheme is accepted");
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_ne!(id, "forged-id");
    let sent = upstream.last();
    assert_eq!(sent.header("x-request-id"), Some(id.as_str()));
    assert_eq!(sent.header("x-team-id"), None, "identity headers stay here");
}

#[tokio::test]
async fn a_cached_answer_is_not_served_for_another_named_provider() {
    let upstream = fake_anthropic().await;
    let gw = TestGateway::start(&config(&upstream.url(), "")).await;
    let ask = |provider: Option<&'static str>| {
        let mut req = client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .header("x-api-key", KEY)
            .json(
                &json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "temperature": 0,
                          "messages": [{"role": "user", "content": "hi"}]}),
            );
        if let Some(p) = provider {
            req = req.header("x-provider", p);
        }
        async move {
            let resp = req.send().await.expect("answers");
            resp.headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap_or_default().to_string())
        }
    };
    assert_eq!(ask(None).await.as_deref(), Some("MISS"));
    assert_eq!(ask(None).await.as_deref(), Some("HIT"));
    assert_eq!(ask(Some("anthropic")).await.as_deref(), Some("MISS"));
}

#[tokio::test]
async fn retries_stay_within_the_total_timeout_and_a_request_the_upstream_read_is_not_resent() {
    // Answers 503 slowly: retrying would run past the total timeout.
    let slow = FakeUpstream::start(|_| {
        let mut reply = Reply::json(503, r#"{"error": {"message": "overloaded"}}"#);
        reply.head_delay = Duration::from_millis(400);
        reply
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{}", api_key: k,
               timeouts: {{ total_ms: 1000, first_byte_ms: 1000 }},
               retries: {{ attempts: 5, backoff_ms: 10 }} }}
routes: [ {{ models: ["claude-*"], provider: anthropic }} ]
"#,
        slow.url()
    ))
    .await;
    let started = std::time::Instant::now();
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert!(resp.status().is_server_error());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );

    // An upstream that reads the whole request, then drops the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = vec![0u8; 65536];
            let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
            drop(stream);
        }
    });
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "http://{addr}", api_key: k, retries: {{ attempts: 2, backoff_ms: 10 }} }}
routes: [ {{ models: ["claude-*"], provider: anthropic }} ]
"#
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 502);
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "sent once"
    );
}
