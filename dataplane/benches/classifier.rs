//! What choosing a tier for `model: "auto"` costs per request: `classify` on a short
//! prompt and on a 200 KB Claude Code-like agent turn (files read through tools, a
//! failing test run).
//!
//! `cargo bench -p ai-gateway-dataplane --bench classifier`

use ai_gateway::intelligence::classify::{classify, Tier};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use std::hint::black_box;

fn short_prompt() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Translate to French: \"The meeting moved to Thursday.\""}
        ]
    }))
    .expect("serializable")
}

fn agent_turn(bytes: usize) -> Vec<u8> {
    let file: String = (0..40)
        .map(|i| {
            format!(
                "pub async fn handler_{i}(State(store): State<Store>, Json(req): Json<Req>) -> Result<Json<Resp>, ApiError> {{\n    let row = store.fetch(&req.key).await?;\n    Ok(Json(Resp {{ value: row.value, version: {i} }}))\n}}\n\n"
            )
        })
        .collect();
    let tools: Vec<_> = ["Bash", "Read", "Edit", "Write", "Glob", "Grep", "LS", "TodoWrite", "WebFetch", "Task"]
        .iter()
        .map(|name| json!({"name": name, "description": "A workspace tool.", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}))
        .collect();
    let mut messages = vec![json!({"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>Project instructions: run the tests before finishing.</system-reminder>"},
        {"type": "text", "text": "Refactor the handlers to share one error type and fix the failing test."}
    ]})];
    let mut i = 0;
    while serde_json::to_vec(&messages).expect("serializable").len() < bytes {
        messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("t{i}"), "name": "Read", "input": {"file_path": format!("src/h{i}.rs")}}]}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("t{i}"), "content": file}]}));
        i += 1;
    }
    messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": "run", "name": "Bash", "input": {"command": "cargo test"}}]}));
    messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "run", "content": "thread 'main' panicked at src/h1.rs:3:5:\nboom"}]}));
    serde_json::to_vec(&json!({
        "model": "auto",
        "max_tokens": 8192,
        "system": [{"type": "text", "text": "You are a coding agent. ".repeat(200)}],
        "tools": tools,
        "messages": messages
    }))
    .expect("serializable")
}

/// One 200 KB user message: a pasted log with the question around it, the worst case
/// for the text scans (all of it is the latest turn).
fn pasted_log(bytes: usize) -> Vec<u8> {
    let mut text = String::from("Why does the checkout service time out? Logs below.\n\n");
    while text.len() < bytes {
        text.push_str(
            "2024-03-11T04:12:09Z api-7f9c WARN upstream timeout after 30000ms path=/v2/checkout\n",
        );
    }
    serde_json::to_vec(&json!({"model": "auto", "messages": [{"role": "user", "content": text}]}))
        .expect("serializable")
}

fn classifier(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify");
    for (name, body, tier) in [
        ("short prompt", short_prompt(), Tier::Simple),
        ("200 KB agent turn", agent_turn(200_000), Tier::Complex),
        ("200 KB pasted log", pasted_log(200_000), Tier::Complex),
    ] {
        assert_eq!(classify(&body).tier, tier, "{name}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("{name} ({} bytes)", body.len()), |b| {
            b.iter(|| classify(black_box(&body)))
        });
    }
    group.finish();
}

criterion_group!(benches, classifier);
criterion_main!(benches);
