//! Cascades: an `auto` call is answered by the cheaper tier first; an answer that fails
//! the quality check is replaced by the next tier's, both attempts are charged, and the
//! outcome is written to the audit record, a metric and the outcomes file.

use crate::fakes::{audit_records, client, get_json, FakeUpstream, Recorded, Reply, TestGateway};
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};

const KEY: &str = "gw_cascade";

/// A Messages answer with `text`, streamed when the call asked for a stream.
fn answer(req: &Recorded, text: &str) -> Reply {
    let model = req.json()["model"].as_str().unwrap_or("").to_string();
    if req.json()["stream"] == true {
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 20, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 30}}),
            json!({"type": "message_stop"}),
        ];
        let sse: String = events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
            .collect();
        return Reply::sse(sse.as_bytes());
    }
    Reply::json(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
               "stop_sequence": null, "usage": {"input_tokens": 20, "output_tokens": 30}})
        .to_string(),
    )
}

/// Sonnet declines, Opus answers; a question about Paris is answered by both.
fn tiers(req: &Recorded) -> Reply {
    let body = req.json();
    let asks_paris = body.to_string().contains("France");
    match body["model"].as_str() {
        _ if asks_paris => answer(req, "Paris."),
        Some("claude-sonnet-4-5") => answer(req, "I'm not sure, I don't have enough information to answer that."),
        Some("claude-opus-4-5") => answer(req, "Use a write-ahead log: append each transfer, fsync, then apply it to both balances in one transaction so a crash replays cleanly."),
        _ => Reply::json(404, r#"{"type":"error","error":{"type":"not_found_error","message":"model"}}"#),
    }
}

fn config(anthropic: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
auth:
  mode: keys
  keys: [ {{ id: k1, sha256: "{}", user: ana }} ]
audit: {{ sink: file, path: "{}" }}
auto_routing:
  cascade: {{ mode: heuristic, outcomes_file: "{}" }}
"#,
        key_sha256(KEY),
        dir.join("audit.jsonl").display(),
        dir.join("outcomes.jsonl").display()
    )
}

#[tokio::test]
async fn a_failing_cheap_answer_escalates_and_both_attempts_are_charged() {
    let anthropic = FakeUpstream::start(tiers).await;
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(&anthropic.url(), dir.path())).await;
    let question = "How do I make balance transfers survive a crash halfway through?";
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": question}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-model"], "claude-opus-4-5");
    assert_eq!(
        resp.headers()["x-ai-gateway-route-reason"],
        "complex: escalated from simple (refusal)"
    );
    let body: Value = resp.json().await.expect("json");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    assert!(content.starts_with("Use a write-ahead log"), "{body}");
    let models: Vec<String> = anthropic
        .received()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(models, ["claude-sonnet-4-5", "claude-opus-4-5"]);

    let records = audit_records(&dir.path().join("audit.jsonl"), 1).await;
    let record = &records[0];
    let cascade = &record["cascade"];
    assert_eq!(cascade["initial_tier"], "simple", "{record}");
    assert_eq!(cascade["final_tier"], "complex");
    assert_eq!(cascade["escalated"], true);
    assert_eq!(cascade["reasons"], json!(["refusal"]));
    assert_eq!(cascade["judged"]["model"], "claude-sonnet-4-5");
    // Both attempts: 20 + 20 prompt tokens, 30 + 30 answer tokens.
    assert_eq!(record["request_tokens"], 40);
    assert_eq!(record["response_tokens"], 60);
    let judged_cost = cascade["judged"]["cost_usd"].as_f64().expect("cost");
    assert!(judged_cost > 0.0);
    assert!(record["cost_usd"].as_f64().expect("cost") > judged_cost);

    let usage = get_json(format!("{}/v1/usage", gw.url), Some(KEY)).await;
    assert_eq!(
        usage["models"]["claude-sonnet-4-5"]["tokens_out"], 30,
        "{usage}"
    );
    assert_eq!(
        usage["models"]["claude-opus-4-5"]["tokens_out"], 30,
        "{usage}"
    );
    assert_eq!(usage["today"]["tokens_out"], 60, "{usage}");

    let outcomes = crate::fakes::audit_records(&dir.path().join("outcomes.jsonl"), 1).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["user"], "ana");
    assert_eq!(outcomes[0]["outcome"]["escalated"], true);
    assert_eq!(outcomes[0]["final_model"], "claude-opus-4-5");
    let metrics = crate::fakes::metrics_text(&gw).await;
    assert!(
        metrics
            .contains(r#"ai_gateway_cascades_total{initial_tier="simple",final_tier="complex"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_passing_cheap_answer_is_kept_and_a_stream_arrives_whole() {
    let anthropic = FakeUpstream::start(tiers).await;
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(&anthropic.url(), dir.path())).await;
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .json(&json!({"model": "auto", "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": "What is the capital of France?"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-model"], "claude-sonnet-4-5");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("body");
    let events = crate::fakes::sse_data(&text);
    assert_eq!(events.last().expect("events")["type"], "message_stop");
    assert!(text.contains("Paris."), "{text}");
    assert_eq!(anthropic.received().len(), 1);
    let records = audit_records(&dir.path().join("audit.jsonl"), 1).await;
    assert_eq!(records[0]["cascade"]["escalated"], false, "{}", records[0]);
    assert_eq!(records[0]["cascade"]["final_tier"], "simple");
    assert_eq!(records[0]["response_tokens"], 30);
}

#[tokio::test]
async fn a_failed_cheap_provider_escalates_and_a_forced_provider_or_named_model_never_cascades() {
    // Sonnet's provider is down (503); Opus is served elsewhere.
    let down = FakeUpstream::start(|_| {
        Reply::json(
            503,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        )
    })
    .await;
    let up = FakeUpstream::start(tiers).await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  cheap: {{ type: anthropic, base_url: "{}", api_key: sk-a, retries: {{ attempts: 0 }} }}
  deep: {{ type: anthropic, base_url: "{}", api_key: sk-b }}
routes:
  - {{ models: ["claude-sonnet-4-5"], provider: cheap }}
  - {{ models: ["claude-opus-4-5"], provider: deep }}
auto_routing:
  cascade: {{ mode: heuristic }}
"#,
        down.url(),
        up.url()
    ))
    .await;
    let ask = |model: &str, provider: Option<&str>| {
        let mut request = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "How do I make transfers survive a crash?"}]}));
        if let Some(p) = provider {
            request = request.header("x-provider", p);
        }
        request.send()
    };
    let resp = ask("auto", None).await.expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "deep");
    let reason = resp.headers()["x-ai-gateway-route-reason"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        reason.starts_with("complex: escalated from simple ("),
        "{reason}"
    );

    // A caller that names its provider, or a model, gets that and nothing else.
    let forced = ask("auto", Some("cheap")).await.expect("answers");
    assert!(forced.status().is_server_error(), "{}", forced.status());
    let named = ask("claude-sonnet-4-5", None).await.expect("answers");
    assert!(named.status().is_server_error(), "{}", named.status());
    assert_eq!(up.received().len(), 1, "only the escalation reached Opus");
}

#[tokio::test]
async fn an_answer_too_long_to_hold_is_passed_on_whole_and_unjudged() {
    // Sonnet writes 5 MiB: more than a cascade holds to judge.
    let long = "word ".repeat(1 << 20);
    let anthropic = FakeUpstream::start(move |req| answer(req, &long)).await;
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(&anthropic.url(), dir.path())).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "Tell me everything."}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    assert_eq!(content.len(), 5 << 20, "the whole answer");
    assert_eq!(anthropic.received().len(), 1, "no escalation");
    let records = audit_records(&dir.path().join("audit.jsonl"), 1).await;
    assert_eq!(records[0]["cascade"]["reasons"], json!(["unjudged_long"]));
    assert_eq!(records[0]["cascade"]["escalated"], false);
}
