//! `/v1/claude/*` as Claude Code and the Anthropic SDK use it.

use crate::fakes::{client, fixture, sse_data, sse_events, FakeUpstream, Reply, TestGateway};
use serde_json::{json, Value};

fn config(anthropic: &str, ollama: &str) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
  local: {{ type: ollama, base_url: "{ollama}", max_output_tokens: 8192 }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["local:*"], provider: local }}
"#
    )
}

#[tokio::test]
async fn claude_code_request_reaches_anthropic_unchanged_and_streams_back_byte_for_byte() {
    let stream = fixture("upstream/anthropic/stream_text.sse");
    let reply = Reply::sse(&stream);
    let upstream = FakeUpstream::start(move |_| reply.clone()).await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;

    let recorded: Value =
        serde_json::from_slice(&fixture("clients/claude_code_request.json")).expect("fixture");
    let body = serde_json::to_vec(&recorded["body"]).expect("body");
    assert!(body.len() > 70_000, "Claude Code sends large bodies");
    let mut req = client().post(format!(
        "{}/v1/claude{}",
        gw.url,
        recorded["path"].as_str().expect("path")
    ));
    for (name, value) in recorded["headers"].as_object().expect("headers") {
        if !["host", "content-length"].contains(&name.to_ascii_lowercase().as_str()) {
            req = req.header(name, value.as_str().expect("header value"));
        }
    }
    let resp = req.body(body.clone()).send().await.expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "anthropic");
    let got = resp.bytes().await.expect("stream");
    assert_eq!(
        &got[..],
        &stream[..],
        "the SSE stream passes through byte for byte"
    );

    let sent = upstream.last();
    assert_eq!(sent.path, "/v1/messages?beta=true");
    assert_eq!(
        sent.body, body,
        "every body field reaches Anthropic unchanged"
    );
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-real"));
    let recorded_headers = recorded["headers"].as_object().expect("headers");
    let beta = recorded_headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("anthropic-beta"))
        .and_then(|(_, v)| v.as_str())
        .expect("Claude Code sends anthropic-beta");
    assert_eq!(sent.header("anthropic-beta"), Some(beta));
    for (name, value) in recorded_headers {
        let name = name.to_ascii_lowercase();
        if name.starts_with("anthropic-") {
            assert_eq!(
                sent.header(&name),
                value.as_str(),
                "{name} reaches Anthropic"
            );
        }
    }
    assert_eq!(sent.header("x-app"), Some("cli"));
}

#[tokio::test]
async fn claude_code_probe_and_auth_token_form_work() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/anthropic/message_text.json")))
            .await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;
    let head = client()
        .head(format!("{}/v1/claude", gw.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(head.status(), 200);
    // ANTHROPIC_AUTH_TOKEN sends `Authorization: Bearer`; the users' scripts call /v1/claude/messages.
    let resp = client()
        .post(format!("{}/v1/claude/messages", gw.url))
        .bearer_auth("caller-token")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let sent = upstream.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-real"));
}

#[tokio::test]
async fn count_tokens_goes_to_anthropic_or_is_counted_locally() {
    let upstream = FakeUpstream::start(|_| Reply::json(200, r#"{"input_tokens":42}"#)).await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello there"}]});
    let remote: Value = client()
        .post(format!("{}/v1/claude/v1/messages/count_tokens", gw.url))
        .json(&body)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(remote["input_tokens"], 42);
    assert_eq!(upstream.last().path, "/v1/messages/count_tokens");

    let local: Value = client()
        .post(format!("{}/v1/claude/v1/messages/count_tokens", gw.url))
        .json(&json!({"model": "local:qwen2.5", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let n = local["input_tokens"].as_u64().expect("a count");
    assert!((2..20).contains(&n), "{n}");
}

#[tokio::test]
async fn claude_code_on_an_ollama_model_gets_anthropic_events_with_real_usage() {
    let upstream =
        FakeUpstream::start(|_| Reply::sse(&fixture("upstream/openai/stream_tool_calls.sse")))
            .await;
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &upstream.url())).await;
    let request = json!({
        "model": "local:qwen2.5-coder:7b", "max_tokens": 1024, "stream": true,
        "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}},
                  {"name": "get_time", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search"}]
    });
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages?beta=true", gw.url))
        .header("x-api-key", "caller")
        .header("anthropic-version", "2023-06-01")
        .json(&request)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-model"], "qwen2.5-coder:7b");
    let text = resp.text().await.expect("stream");
    let events = sse_events(&text);
    assert_eq!(events.first().map(String::as_str), Some("message_start"));
    assert_eq!(
        &events[events.len() - 2..],
        ["message_delta", "message_stop"]
    );
    let data = sse_data(&text);
    // OpenAI-style streams report usage only at their end; message_start carries the
    // prompt's own count, the figure count_tokens gives for the same request.
    let counted: Value = client()
        .post(format!("{}/v1/claude/v1/messages/count_tokens", gw.url))
        .header("x-api-key", "caller")
        .json(&request)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let start_usage = &data[0]["message"]["usage"];
    assert!(
        counted["input_tokens"].as_u64().is_some_and(|n| n > 20),
        "{counted}"
    );
    assert_eq!(
        start_usage["input_tokens"], counted["input_tokens"],
        "message_start carries the prompt's counted input tokens"
    );
    let delta = data
        .iter()
        .find(|d| d["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"]["input_tokens"], 256,
        "uncached prompt tokens reported upstream"
    );
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 1280);
    assert_eq!(delta["usage"]["output_tokens"], 58);
    let tools: Vec<&Value> = data
        .iter()
        .filter(|d| d["content_block"]["type"] == "tool_use")
        .collect();
    assert_eq!(tools.len(), 2);

    let sent = upstream.last();
    assert_eq!(sent.path, "/v1/chat/completions");
    let sent = sent.json();
    assert_eq!(sent["model"], "qwen2.5-coder:7b");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(
        sent["max_tokens"], 1024,
        "under the provider's cap: unchanged"
    );
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "You are a coding agent."})
    );
    let names: Vec<&str> = sent["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["get_weather", "get_time"],
        "server tools only Anthropic can run are left out"
    );
}

#[tokio::test]
async fn agent_loop_from_claude_code_to_an_openai_model_keeps_tool_results_as_tool_messages() {
    let upstream = FakeUpstream::start(|req| {
        let tool_msgs = req.json()["messages"].as_array().map(|m| m.iter().filter(|m| m["role"] == "tool").count()).unwrap_or(0);
        let reply = if tool_msgs < 2 {
            json!({"id": format!("c{tool_msgs}"), "object": "chat.completion", "created": 1, "model": "qwen",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                    "tool_calls": [{"id": format!("call_{tool_msgs}"), "type": "function",
                        "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}})
        } else {
            json!({"id": "c2", "object": "chat.completion", "created": 1, "model": "qwen",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Done."}}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}})
        };
        Reply::json(200, reply.to_string())
    })
    .await;
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &upstream.url())).await;
    let mut messages = vec![json!({"role": "user", "content": "list files twice"})];
    let mut answer = None;
    for _ in 0..4 {
        let msg: Value = client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .json(
                &json!({"model": "local:qwen", "max_tokens": 100, "messages": messages,
                "tools": [{"name": "bash", "input_schema": {"type": "object"}}]}),
            )
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        if msg["stop_reason"] == "tool_use" {
            let uses: Vec<Value> = msg["content"]
                .as_array()
                .expect("content")
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .cloned()
                .collect();
            assert_eq!(uses[0]["input"]["command"], "ls");
            messages.push(json!({"role": "assistant", "content": msg["content"]}));
            messages.push(json!({"role": "user", "content": uses.iter().map(|u|
                json!({"type": "tool_result", "tool_use_id": u["id"], "content": "a.txt"})).collect::<Vec<_>>()}));
        } else {
            answer = msg["content"][0]["text"].as_str().map(str::to_string);
            break;
        }
    }
    assert_eq!(answer.as_deref(), Some("Done."));
    let last = upstream.last().json();
    let tool_msgs: Vec<&Value> = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_msgs.len(), 2);
    assert_eq!(tool_msgs[0]["tool_call_id"], "call_0");
    assert_eq!(tool_msgs[1]["tool_call_id"], "call_1");
    assert_eq!(tool_msgs[1]["content"], "a.txt");
}

#[tokio::test]
async fn claude_codes_large_max_tokens_is_lowered_to_the_providers_cap() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/openai/chat_text.json"))).await;
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &upstream.url())).await;
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .json(&json!({"model": "local:qwen", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.last().json()["max_tokens"], 8192);
}

/// OpenAI-style SSE: one chunk per `delta`, then `finish_reason` and a usage chunk.
fn openai_stream(id: &str, deltas: &[Value], finish: &str) -> Vec<u8> {
    let chunk = |choices: Value, usage: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": "qwen",
                   "choices": choices, "usage": usage})
        )
    };
    let mut sse = String::new();
    for delta in deltas {
        sse += &chunk(
            json!([{"index": 0, "delta": delta, "finish_reason": null}]),
            Value::Null,
        );
    }
    sse += &chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
        Value::Null,
    );
    sse += &chunk(
        json!([]),
        json!({"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24}),
    );
    sse += "data: [DONE]\n\n";
    sse.into_bytes()
}

/// Claude Code streams every turn: tool calls arrive as `tool_use` blocks built from
/// `input_json_delta`s, and the results it sends back reach the model as tool messages.
#[tokio::test]
async fn streamed_agent_loop_from_claude_code_to_an_openai_model() {
    let upstream = FakeUpstream::start(|req| {
        let done = req.json()["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["role"] == "tool").count())
            .unwrap_or(0);
        let id = format!("c{done}");
        if done < 2 {
            // Arguments split mid-token, as models stream them.
            Reply::sse(&openai_stream(
                &id,
                &[
                    json!({"role": "assistant", "content": null}),
                    json!({"tool_calls": [{"index": 0, "id": format!("call_{done}"), "type": "function",
                                           "function": {"name": "bash", "arguments": ""}}]}),
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"comm"}}]}),
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "and\":\"ls\"}"}}]}),
                ],
                "tool_calls",
            ))
        } else {
            Reply::sse(&openai_stream(
                &id,
                &[json!({"role": "assistant", "content": "Do"}), json!({"content": "ne."})],
                "stop",
            ))
        }
    })
    .await;
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &upstream.url())).await;
    let mut messages = vec![json!({"role": "user", "content": "list files twice"})];
    let mut answer = String::new();
    for turn in 0..4 {
        let text = client()
            .post(format!("{}/v1/claude/v1/messages?beta=true", gw.url))
            .json(&json!({"model": "local:qwen", "max_tokens": 100, "stream": true, "messages": messages,
                          "tools": [{"name": "bash", "input_schema": {"type": "object"}}]}))
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("stream");
        // Rebuild the assistant turn from the events, as Claude Code does.
        let mut content: Vec<Value> = Vec::new();
        let mut stop_reason = Value::Null;
        for event in sse_data(&text) {
            match event["type"].as_str() {
                Some("content_block_start") => content.push(event["content_block"].clone()),
                Some("content_block_delta") => {
                    let block = content.last_mut().expect("a block is open");
                    match event["delta"]["type"].as_str() {
                        Some("text_delta") => {
                            let t = block["text"].as_str().unwrap_or("").to_string();
                            block["text"] =
                                json!(t + event["delta"]["text"].as_str().unwrap_or(""));
                        }
                        Some("input_json_delta") => {
                            let p = block["partial"].as_str().unwrap_or("").to_string();
                            block["partial"] =
                                json!(p + event["delta"]["partial_json"].as_str().unwrap_or(""));
                        }
                        other => panic!("unexpected delta {other:?}"),
                    }
                }
                Some("message_delta") => stop_reason = event["delta"]["stop_reason"].clone(),
                _ => {}
            }
        }
        for block in &mut content {
            if let Some(partial) = block.as_object_mut().and_then(|b| b.remove("partial")) {
                block["input"] = serde_json::from_str(partial.as_str().expect("text"))
                    .expect("the streamed arguments form JSON");
            }
        }
        if stop_reason == "tool_use" {
            let call = content
                .iter()
                .find(|b| b["type"] == "tool_use")
                .expect("a tool_use block");
            assert_eq!(call["input"], json!({"command": "ls"}), "turn {turn}");
            assert_eq!(call["id"], format!("call_{turn}"));
            let id = call["id"].clone();
            messages.push(json!({"role": "assistant", "content": content}));
            messages.push(json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": "a.txt"}]}]}));
        } else {
            assert_eq!(stop_reason, "end_turn");
            answer = content[0]["text"].as_str().unwrap_or("").to_string();
            break;
        }
    }
    assert_eq!(answer, "Done.");
    assert_eq!(upstream.received().len(), 3);
    let last = upstream.last().json();
    let sent: Vec<&Value> = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .collect();
    let roles: Vec<&str> = sent.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant", "tool"]);
    assert_eq!(sent[1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(
        sent[1]["tool_calls"][0]["function"]["arguments"],
        json!({"command": "ls"}).to_string()
    );
    assert_eq!(sent[2]["tool_call_id"], "call_0");
    assert_eq!(sent[4]["tool_call_id"], "call_1");
    assert_eq!(sent[4]["content"], "a.txt");
}
