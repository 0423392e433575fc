//! A bounded soak over loopback: thousands of concurrent calls, streaming and not, in
//! the OpenAI and Anthropic formats, while the primary provider fails every few calls
//! and the config is swapped mid-run. Every call must come back whole and be audited
//! exactly once.

use crate::fakes::{client, fixture, sse_events, FakeUpstream, Reply, TestGateway};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CALLS: usize = 2_000;
const CONCURRENCY: usize = 200;

fn anthropic_reply(req: &crate::fakes::Recorded) -> Reply {
    Reply {
        chunk_delay: Duration::from_millis(1),
        ..crate::fakes::anthropic_reply(req)
    }
}

fn config(primary: &str, backup: &str, audit: &std::path::Path, rpm: u32) -> String {
    format!(
        r#"
providers:
  primary: {{ type: anthropic, base_url: "{primary}", api_key: sk-primary,
             retries: {{ attempts: 1, backoff_ms: 1 }},
             circuit_breaker: {{ failures: 1000000 }} }}
  backup: {{ type: anthropic, base_url: "{backup}", api_key: sk-backup }}
routes:
  - {{ models: ["claude-*"], provider: primary, fallback: [backup] }}
rate_limits:
  default: {{ requests_per_minute: {rpm} }}
audit: {{ sink: file, path: "{}" }}
"#,
        audit.display()
    )
}

/// What a caller checks of its answer; an empty string means it was whole.
fn defect(openai: bool, stream: bool, status: u16, body: &str) -> String {
    if status != 200 {
        return format!("status {status}: {body}");
    }
    match (openai, stream) {
        (true, true) => {
            let done = body.trim_end().ends_with("data: [DONE]");
            let text: String = body
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect();
            if done && !text.is_empty() {
                String::new()
            } else {
                format!("openai stream cut: {body}")
            }
        }
        (true, false) => match serde_json::from_str::<Value>(body) {
            Ok(v) if v["choices"][0]["message"]["content"].is_string() => String::new(),
            _ => format!("openai body broken: {body}"),
        },
        (false, true) => {
            let events = sse_events(body);
            if events.first().map(String::as_str) == Some("message_start")
                && events.last().map(String::as_str) == Some("message_stop")
            {
                String::new()
            } else {
                format!("anthropic stream cut: {events:?}")
            }
        }
        (false, false) => match serde_json::from_str::<Value>(body) {
            Ok(v) if v["content"][0]["text"].is_string() => String::new(),
            _ => format!("anthropic body broken: {body}"),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_calls_through_failures_and_a_config_swap_all_arrive_whole() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    // Every fifth call to the primary fails before its first byte.
    let primary = FakeUpstream::start(move |req| {
        if counter.fetch_add(1, Ordering::Relaxed) % 5 == 4 {
            Reply::json(529, fixture("upstream/anthropic/error_overloaded.json"))
        } else {
            anthropic_reply(req)
        }
    })
    .await;
    let backup = FakeUpstream::start(anthropic_reply).await;
    let dir = crate::process::tempdir();
    let audit = dir.path().join("audit.jsonl");
    let gw = Arc::new(
        TestGateway::start(&config(&primary.url(), &backup.url(), &audit, 1_000_000)).await,
    );
    let swapped = config(&primary.url(), &backup.url(), &audit, 2_000_000);

    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let http = client();
    let mut calls = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        if i == CALLS / 2 {
            let snapshot = ai_gateway_snapshot::parse_document(&swapped, |_| None).expect("valid");
            gw.gateway.apply(snapshot).expect("swap mid-run");
        }
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        let (http, gw) = (http.clone(), gw.clone());
        calls.push(tokio::spawn(async move {
            let _permit = permit;
            let openai = i % 2 == 0;
            let stream = i % 4 < 2;
            let id = format!("soak-{i}");
            let messages = json!([{"role": "user", "content": format!("call {i}")}]);
            let request = if openai {
                http.post(format!("{}/v1/chat/completions", gw.url))
                    .json(&json!({"model": "claude-sonnet-4-5", "stream": stream, "messages": messages}))
            } else {
                http.post(format!("{}/v1/claude/v1/messages", gw.url))
                    .header("anthropic-version", "2023-06-01")
                    .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream, "messages": messages}))
            };
            let resp = request.header("x-request-id", &id).send().await;
            let result = match resp {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.text().await {
                        Ok(body) => defect(openai, stream, status, &body),
                        Err(e) => format!("body failed: {e}"),
                    }
                }
                Err(e) => format!("request failed: {e}"),
            };
            (id, result)
        }));
    }
    let mut defects = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for call in calls {
        let (id, defect) = call.await.expect("task");
        if !defect.is_empty() {
            defects.insert(id.clone(), defect);
        }
        ids.insert(id);
    }
    assert!(
        defects.is_empty(),
        "{} calls came back broken, e.g. {:?}",
        defects.len(),
        defects.iter().next()
    );
    assert_eq!(ids.len(), CALLS);
    // Retries absorb most injected failures; the backup takes the calls whose retry
    // failed too.
    let injected = served.load(Ordering::Relaxed) / 5;
    assert!(
        injected >= CALLS / 5,
        "only {injected} failures were injected"
    );
    assert!(
        !backup.received().is_empty(),
        "no call fell back to the backup"
    );
    assert_eq!(
        gw.gateway
            .compiled()
            .snapshot
            .rate_limits
            .default
            .as_ref()
            .and_then(|l| l.requests_per_minute),
        Some(2_000_000),
        "the swap took effect"
    );

    // Records are written off the response path: wait for all of them.
    let mut audited: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..200 {
        audited.clear();
        for line in std::fs::read_to_string(&audit).unwrap_or_default().lines() {
            if let Ok(record) = serde_json::from_str::<Value>(line) {
                let id = record["client_request_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                *audited.entry(id).or_default() += 1;
            }
        }
        if audited.len() >= CALLS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !audited.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} calls were not audited, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let twice: Vec<(&String, &usize)> = audited.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "calls audited more than once: {twice:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
