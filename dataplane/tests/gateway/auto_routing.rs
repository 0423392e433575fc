//! `model: "auto"`: the gateway picks the tier's model by the request's complexity,
//! says so in its answer, audit record and metrics, and the provider sees only the
//! model it chose.

use crate::fakes::{anthropic_reply, audit_records, client, get_json, FakeUpstream, TestGateway};
use serde_json::{json, Value};

fn config(anthropic: &str, audit: &std::path::Path) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
audit: {{ sink: file, path: "{}" }}
"#,
        audit.display()
    )
}

fn hard_question() -> String {
    format!(
        "Our payments service deadlocks under load. Review the architecture and design a \
         concurrency-safe refactor; explain the trade-offs and prove the ordering is \
         consistent.\n```rust\n{}\n```\nthread 'main' panicked at src/ledger.rs:88:14:\n\
         called `Result::unwrap()` on an `Err` value: PoisonError\nstack backtrace:\n\
         0: rust_begin_unwind\n1: core::panicking::panic_fmt\n",
        "fn transfer(a: &Mutex<Account>, b: &Mutex<Account>) { let x = a.lock(); let y = b.lock(); }\n"
            .repeat(40)
    )
}

#[tokio::test]
async fn auto_picks_the_tier_says_why_and_the_provider_sees_only_the_chosen_model() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = TestGateway::start(&config(&anthropic.url(), &audit)).await;
    let chat = |content: String, extra: Value| {
        let mut body = json!({"model": "auto", "messages": [{"role": "user", "content": content}]});
        if let Value::Object(fields) = extra {
            body.as_object_mut().expect("object").extend(fields);
        }
        client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&body)
            .send()
    };

    let simple = chat("What is the capital of France?".into(), json!({}))
        .await
        .expect("answers");
    assert_eq!(simple.status(), 200);
    assert_eq!(simple.headers()["x-ai-gateway-model"], "claude-sonnet-4-5");
    let reason = simple.headers()["x-ai-gateway-route-reason"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(reason.starts_with("simple"), "{reason}");
    assert_eq!(anthropic.last().json()["model"], "claude-sonnet-4-5");

    let complex = chat(hard_question(), json!({})).await.expect("answers");
    assert_eq!(complex.status(), 200);
    assert_eq!(complex.headers()["x-ai-gateway-model"], "claude-opus-4-5");
    let reason = complex.headers()["x-ai-gateway-route-reason"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(reason.starts_with("complex: "), "{reason}");

    // Turned off per call: the simple tier, and the switch never reaches the provider.
    let off = chat(hard_question(), json!({"smart_routing": false}))
        .await
        .expect("answers");
    assert_eq!(off.headers()["x-ai-gateway-model"], "claude-sonnet-4-5");
    let off = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .header("x-gateway-smart-routing", "0")
        .json(
            &json!({"model": "auto", "max_tokens": 32, "smart_routing": true,
                      "messages": [{"role": "user", "content": hard_question()}]}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(off.status(), 200);
    assert_eq!(
        off.headers()["x-ai-gateway-route-reason"],
        "simple: smart_routing_off"
    );
    let sent = anthropic.last().json();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert!(sent.get("smart_routing").is_none(), "{sent}");

    // The users' short names work without a route of their own.
    let opus = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "opus", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(opus.status(), 200);
    assert_eq!(opus.headers()["x-ai-gateway-model"], "claude-opus-4-5");

    let records = audit_records(&audit, 5).await;
    let reasons: Vec<&str> = records
        .iter()
        .filter_map(|r| r["route_reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 4, "{records:?}");
    assert!(reasons[1].starts_with("complex"));
    let metrics = crate::fakes::metrics_text(&gw).await;
    assert!(
        metrics.contains(r#"ai_gateway_auto_routes_total{tier="complex"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ai_gateway_auto_routes_total{tier="simple"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_skill_shapes_the_system_prompt_and_may_decide_the_tier() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(&anthropic.url(), &dir.path().join("audit.jsonl"))).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-gateway-skill", "security-audit")
        .json(&json!({"model": "auto", "messages": [
            {"role": "system", "content": "You review our code."},
            {"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-model"], "claude-opus-4-5");
    assert_eq!(
        resp.headers()["x-ai-gateway-route-reason"],
        "complex: skill security-audit"
    );
    let sent = anthropic.last().json();
    let system = sent["system"].to_string();
    assert!(system.contains("Audit for vulnerabilities"), "{system}");
    assert!(system.contains("You review our code."), "{system}");

    // Claude Code's attribution block stays first; the skill field never leaves.
    let attribution = json!({"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"});
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "skill": "quick-fix",
            "system": [attribution.clone(), {"type": "text", "text": "You are Claude Code."}],
            "messages": [{"role": "user", "content": "fix the typo"}]}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let sent = anthropic.last().json();
    assert_eq!(sent["system"][0], attribution);
    assert!(sent["system"][1]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("Make the smallest change")));
    assert!(sent.get("skill").is_none());

    let unknown = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-gateway-skill", "mind-reading")
        .json(
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(unknown.status(), 400);
    let error: Value = unknown.json().await.expect("json");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("mind-reading") && message.contains("brainstorming"),
        "{message}"
    );

    let listed = get_json(format!("{}/v1/skills", gw.url), None).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 8);
    assert!(ids.contains(&"architecture-review"));
    assert!(
        listed["data"][0].get("prompt").is_none(),
        "prompts stay in the gateway"
    );
}

/// The official OpenAI SDK, unmodified: `model="auto"` and a skill header.
#[tokio::test]
async fn the_openai_sdk_names_auto_and_a_skill() {
    if !crate::process::python_has(&["openai"]) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the openai SDK"
        );
        eprintln!("SKIPPED: the openai SDK is not installed");
        return;
    }
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let dir = crate::process::tempdir();
    let gw = TestGateway::start(&config(&anthropic.url(), &dir.path().join("audit.jsonl"))).await;
    let cases = crate::process::run_client(
        "openai_auto_skill.py",
        &[&format!("{}/v1", gw.url), "gw-key"],
    )
    .await;
    let by_case = |name: &str| {
        cases
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or_else(|| panic!("{name} in {cases:?}"))
            .clone()
    };
    let simple = by_case("auto_simple");
    assert_eq!(simple["model_header"], "claude-sonnet-4-5", "{simple}");
    assert!(simple["content"].as_str().is_some_and(|c| !c.is_empty()));
    let skill = by_case("auto_skill");
    assert_eq!(skill["model_header"], "claude-opus-4-5", "{skill}");
    assert_eq!(skill["reason"], "complex: skill architecture-review");
    let off = by_case("auto_off");
    assert_eq!(off["reason"], "simple: smart_routing_off", "{off}");
    let sent: Vec<Value> = anthropic.received().iter().map(|r| r.json()).collect();
    assert!(sent.iter().all(|b| b.get("smart_routing").is_none()));
    assert!(
        sent[1]["system"].to_string().contains("Analyse the design"),
        "{}",
        sent[1]
    );
}

#[tokio::test]
async fn the_users_documents_headers_and_provider_field_work_beside_ours() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let local = crate::fakes::fake_openai().await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{}", api_key: sk-ant-real }}
  local: {{ type: ollama, base_url: "{}" }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["qwen*"], provider: local }}
rate_limits:
  default: {{ requests_per_minute: 50 }}
"#,
        anthropic.url(),
        local.url()
    ))
    .await;
    crate::fakes::within_one_rate_window().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "qwen2.5-coder", "provider": "local",
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gateway"], "ai-gateway");
    assert_eq!(resp.headers()["x-provider"], "local");
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "49");
    let sent = local.last().json();
    assert!(
        sent.get("provider").is_none(),
        "the routing field stays: {sent}"
    );

    // A provider the body names that is not configured is refused, naming those that are.
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "qwen2.5-coder", "provider": "nowhere",
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 404);

    // OpenRouter-style provider preferences are not ours: they travel untouched.
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(
            &json!({"model": "qwen2.5-coder", "provider": {"order": ["x"]},
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(local.last().json()["provider"], json!({"order": ["x"]}));
    assert!(anthropic.received().is_empty());
}

#[tokio::test]
async fn a_gateways_own_skills_reach_the_native_surfaces_too() {
    let gemini = FakeUpstream::start(|_| {
        crate::fakes::Reply::json(
            200,
            crate::fakes::fixture("upstream/gemini/generate_content.json"),
        )
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  gemini: {{ type: gemini, base_url: "{}", api_key: gm-real-key }}
routes:
  - {{ models: ["gemini-*"], provider: gemini }}
skills:
  sql-review: {{ prompt: "Review the SQL for missing indexes.", purpose: "queries", tier: complex }}
"#,
        gemini.url()
    ))
    .await;
    let resp = client()
        .post(format!(
            "{}/v1/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            gw.url
        ))
        .header("x-gateway-skill", "sql-review")
        .json(
            &json!({"contents": [{"role": "user", "parts": [{"text": "SELECT * FROM t"}]}],
                      "systemInstruction": {"parts": [{"text": "Be brief."}]}}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let sent = gemini.last().json();
    assert_eq!(
        sent["systemInstruction"]["parts"],
        json!([{"text": "Review the SQL for missing indexes."}, {"text": "Be brief."}])
    );
    let listed = get_json(format!("{}/v1/skills", gw.url), None).await;
    let ours = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|s| s["id"] == "sql-review")
        .cloned()
        .expect("listed");
    assert_eq!(ours["tier"], "complex");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(9));
}

#[tokio::test]
async fn a_default_model_and_a_local_model_list_as_the_users_documents_describe() {
    let local = crate::fakes::fake_openai().await;
    let gw = TestGateway::start(&format!(
        r#"
gateway:
  default_model: qwen2.5-coder
  local_models: ["qwen2.5-*"]
providers:
  local: {{ type: ollama, base_url: "{}" }}
routes:
  - {{ models: ["qwen*", "llama*"], provider: local }}
"#,
        local.url()
    ))
    .await;
    let chat = |body: Value| {
        client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&body)
            .send()
    };
    // No model named: the default, which the provider sees in the body.
    let resp = chat(json!({"messages": [{"role": "user", "content": "hi"}]}))
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(local.last().json()["model"], "qwen2.5-coder");

    // A local model off the list is refused, naming the list, before any provider call.
    let calls = local.received().len();
    let resp = chat(json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .expect("answers");
    assert_eq!(resp.status(), 400);
    let error: Value = resp.json().await.expect("json");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("llama3.2") && message.contains("qwen2.5-*"),
        "{message}"
    );
    assert_eq!(local.received().len(), calls);
}

#[tokio::test]
async fn a_local_tier_answers_simple_requests_and_says_where_the_model_runs() {
    let anthropic = FakeUpstream::start(anthropic_reply).await;
    let ollama = crate::fakes::fake_openai().await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{}", api_key: sk-ant-real }}
  local: {{ type: ollama, base_url: "{}" }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
auto_routing: {{ local: "local:qwen2.5-coder" }}
"#,
        anthropic.url(),
        ollama.url()
    ))
    .await;
    let ask = |content: String| {
        client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "auto", "messages": [{"role": "user", "content": content}]}))
            .send()
    };
    let simple = ask("What is the capital of France?".into())
        .await
        .expect("answers");
    assert_eq!(simple.status(), 200);
    assert_eq!(simple.headers()["x-model-source"], "local");
    assert_eq!(simple.headers()["x-provider"], "local");
    assert!(simple.headers()["x-ai-gateway-route-reason"]
        .to_str()
        .is_ok_and(|r| r.starts_with("local: ")));
    assert_eq!(ollama.last().json()["model"], "qwen2.5-coder");
    let complex = ask(hard_question()).await.expect("answers");
    assert_eq!(complex.headers()["x-model-source"], "cloud");
    assert_eq!(complex.headers()["x-ai-gateway-model"], "claude-opus-4-5");
}
