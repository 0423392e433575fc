//! The gateway's invariant, tried over every door, method and a set of odd bodies:
//! each request is either refused with a 4xx in the caller's format and audited once,
//! or admitted, forwarded once, metered and audited once. Nothing else.

use crate::fakes::{audit_records, client, fixture, FakeUpstream, Reply, TestGateway};
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const KEY: &str = "gw_invariant_key";

/// Each provider's plain answer, with usage, for whatever it is asked.
fn answer(path: &str) -> Reply {
    let file = if path.contains("/api/") {
        "upstream/ollama/api_chat.json"
    } else if path.contains(":generateContent") {
        "upstream/gemini/generate_content.json"
    } else if path.contains("/model/") {
        "upstream/bedrock/invoke_anthropic.json"
    } else if path.contains("/messages") {
        "upstream/anthropic/message_text.json"
    } else {
        "upstream/openai/chat_text.json"
    };
    Reply::json(200, fixture(file))
}

struct Door {
    name: &'static str,
    path: &'static str,
    valid: Value,
    /// The error shape this door's callers expect.
    error_shape: fn(&Value) -> bool,
}

fn doors() -> Vec<Door> {
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let claude = json!({"model": "claude-sonnet-4-5", "max_tokens": 20,
                        "messages": [{"role": "user", "content": "hi"}]});
    let openai_error = |v: &Value| v["error"]["message"].is_string();
    vec![
        Door {
            name: "chat",
            path: "/v1/chat/completions",
            valid: chat.clone(),
            error_shape: openai_error,
        },
        Door {
            name: "claude",
            path: "/v1/claude/v1/messages",
            valid: claude.clone(),
            error_shape: |v| v["type"] == "error" && v["error"]["message"].is_string(),
        },
        Door {
            name: "openai",
            path: "/v1/openai/v1/chat/completions",
            valid: chat.clone(),
            error_shape: openai_error,
        },
        Door {
            name: "ollama",
            path: "/v1/ollama/api/chat",
            valid: json!({"model": "llama3.2", "stream": false, "messages": [{"role": "user", "content": "hi"}]}),
            error_shape: |v| v["error"].is_string() || v["error"]["message"].is_string(),
        },
        Door {
            name: "gemini",
            path: "/v1/gemini/v1beta/models/gemini-2.5-pro:generateContent",
            valid: json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            error_shape: |v| v["error"]["message"].is_string() && v["error"]["status"].is_string(),
        },
        Door {
            name: "vertex anthropic",
            path: "/v1/vertex/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
            valid: json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 20,
                          "messages": [{"role": "user", "content": "hi"}]}),
            error_shape: |v| v["type"] == "error" && v["error"]["message"].is_string(),
        },
        Door {
            name: "vertex google",
            path: "/v1/vertex/v1beta1/projects/p/locations/us-east5/publishers/google/models/gemini-2.5-pro:generateContent",
            valid: json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            error_shape: |v| v["error"]["message"].is_string() && v["error"]["status"].is_string(),
        },
        Door {
            name: "bedrock",
            path: "/v1/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke",
            valid: json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
                          "messages": [{"role": "user", "content": "hi"}]}),
            error_shape: |v| v["message"].is_string() || v["Message"].is_string(),
        },
    ]
}

/// The odd bodies, made from a door's valid one.
fn bodies(valid: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let text = valid.to_string();
    let mut stream_null = valid.clone();
    stream_null["stream"] = Value::Null;
    let duplicated = format!("{{\"model\": \"gpt-4o\", {}", &text[1..]);
    let mut bad_utf8 = text.clone().into_bytes();
    let at = bad_utf8.len() - 1;
    bad_utf8.splice(at..at, b", \"x\": \"\xff\xfe\"".iter().copied());
    vec![
        ("valid", text.clone().into_bytes()),
        ("stream null", stream_null.to_string().into_bytes()),
        ("duplicate key", duplicated.into_bytes()),
        ("not json", b"model=gpt-4o".to_vec()),
        ("empty", Vec::new()),
        ("array", b"[{\"model\": \"gpt-4o\"}]".to_vec()),
        ("invalid utf-8", bad_utf8),
        (
            "huge model",
            json!({"model": "m".repeat(5000), "messages": []})
                .to_string()
                .into_bytes(),
        ),
    ]
}

#[tokio::test]
async fn every_request_is_refused_in_its_callers_format_or_served_metered_and_audited_once() {
    let upstream = FakeUpstream::start(|req| answer(&req.path)).await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let url = upstream.url();
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{url}", api_key: a }}
  openai: {{ type: openai, base_url: "{url}/v1", api_key: o }}
  local: {{ type: ollama, base_url: "{url}" }}
  gemini: {{ type: gemini, base_url: "{url}", api_key: g }}
  bedrock: {{ type: bedrock, base_url: "{url}", region: us-east-1,
             access_key_id: AKID, secret_access_key: "bedrock-secret-0123456789" }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["gpt-*"], provider: openai }}
  - {{ models: ["llama*"], provider: local }}
  - {{ models: ["gemini-*"], provider: gemini }}
  - {{ models: ["us.anthropic.*"], provider: bedrock }}
auth:
  mode: keys
  keys: [ {{ id: k1, sha256: "{}", user: tester }} ]
audit: {{ sink: file, path: "{}" }}
"#,
        key_sha256(KEY),
        audit.display()
    ))
    .await;

    let mut calls = Vec::new();
    let mut n = 0;
    for door in doors() {
        for method in ["POST", "GET", "PUT", "DELETE", "PATCH"] {
            for (body_name, body) in bodies(&door.valid) {
                n += 1;
                let id = format!("inv-{n}");
                let before = upstream.received().len();
                let resp = client()
                    .request(
                        method.parse().expect("method"),
                        format!("{}{}", gw.url, door.path),
                    )
                    .bearer_auth(KEY)
                    .header("x-request-id", &id)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("answers");
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                let forwarded = upstream.received().len() - before;
                let what = format!("{} {method} {body_name}", door.name);
                match status {
                    200..=299 => assert_eq!(
                        forwarded, 1,
                        "{what}: served but forwarded {forwarded} times"
                    ),
                    400..=499 => {
                        assert_eq!(forwarded, 0, "{what}: refused ({status}) yet forwarded");
                        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
                            panic!("{what}: {status} body is not JSON: {text}")
                        });
                        assert!(
                            (door.error_shape)(&error),
                            "{what}: {status} not in the caller's format: {text}"
                        );
                    }
                    _ => panic!("{what}: unexpected {status}: {text}"),
                }
                calls.push((id, what, status));
            }
        }
    }

    let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in audit_records(&audit, calls.len()).await {
        let id = r["client_request_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        records.entry(id).or_default().push(r);
    }
    let mut served = 0;
    for (id, what, status) in &calls {
        let found = records.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(found.len(), 1, "{what}: {} audit records", found.len());
        let record = &found[0];
        assert_eq!(record["status"], *status, "{what}");
        if (200..300).contains(status) {
            served += 1;
            assert!(
                record["provider"].is_string(),
                "{what}: served by nobody? {record}"
            );
            assert!(
                record["request_tokens"].as_u64() > Some(0)
                    && record["response_tokens"].as_u64() > Some(0),
                "{what}: served but not metered: {record}"
            );
        }
    }
    assert!(served >= 12, "the valid calls were served ({served})");
}
