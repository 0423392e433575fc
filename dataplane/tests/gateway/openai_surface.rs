//! `POST /v1/chat/completions` from OpenAI callers to Anthropic and OpenAI-compatible upstreams.

use crate::fakes::{client, fixture, sse_data, FakeUpstream, Reply, TestGateway};
use serde_json::{json, Value};

fn config(anthropic: &str, compat: &str) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{anthropic}", api_key: sk-ant-real }}
  vllm: {{ type: openai-compatible, base_url: "{compat}/v1", api_key: sk-vllm-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["fast"], provider: anthropic, upstream_model: claude-haiku-4-5 }}
  - {{ models: ["qwen*"], provider: vllm }}
"#
    )
}

#[tokio::test]
async fn openai_client_reaches_claude_with_the_gateway_key_and_translated_body() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/anthropic/message_text.json")))
            .await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("caller-key")
        .json(&json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"}
            ]
        }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ai-gateway-provider"], "anthropic");
    assert_eq!(resp.headers()["x-ai-gateway-model"], "claude-sonnet-4-5");
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let expected: Value =
        serde_json::from_slice(&fixture("upstream/anthropic/message_text.json")).expect("fixture");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        expected["content"][0]["text"]
    );
    let u = &expected["usage"];
    let prompt = u["input_tokens"].as_u64().unwrap_or(0)
        + u["cache_read_input_tokens"].as_u64().unwrap_or(0)
        + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    assert_eq!(body["usage"]["prompt_tokens"], prompt);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        u["cache_read_input_tokens"]
    );

    let sent = upstream.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(
        sent.header("host"),
        Some(upstream.addr.to_string().as_str()),
        "the provider's host, not the gateway's"
    );
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-real"));
    assert_eq!(
        sent.header("authorization"),
        None,
        "the caller's key must not travel upstream"
    );
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    let sent = sent.json();
    assert_eq!(sent["system"][0]["text"], "Be brief.");
    assert_eq!(
        sent["max_tokens"], 4096,
        "Anthropic requires max_tokens; the gateway default fills it"
    );
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    );
}

#[tokio::test]
async fn alias_sends_the_upstream_id_and_reports_it() {
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/anthropic/message_text.json")))
            .await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.headers()["x-ai-gateway-model"], "claude-haiku-4-5");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["model"], "fast", "callers see the name they asked for");
    assert_eq!(upstream.last().json()["model"], "claude-haiku-4-5");
}

#[tokio::test]
async fn streamed_claude_answer_arrives_as_openai_chunks_with_tool_calls_and_usage() {
    let upstream =
        FakeUpstream::start(|_| Reply::sse(&fixture("upstream/anthropic/stream_tool_use.sse")))
            .await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({
            "model": "claude-sonnet-4-5", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        }))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("body");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let chunks = sse_data(&text);
    let mut content = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in &chunks {
        let Some(delta) = c["choices"].get(0).map(|ch| &ch["delta"]) else {
            continue;
        };
        content.push_str(delta["content"].as_str().unwrap_or(""));
        for tc in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().expect("index") as usize;
            if calls.len() <= i {
                calls.push((
                    tc["id"].as_str().unwrap_or("").into(),
                    tc["function"]["name"].as_str().unwrap_or("").into(),
                    String::new(),
                ));
            }
            calls[i]
                .2
                .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert!(content.starts_with("I'll check the weather"), "{content}");
    assert_eq!(calls.len(), 2, "two parallel tool calls");
    assert_eq!(calls[0].1, "get_weather");
    let args: Value = serde_json::from_str(&calls[0].2).expect("arguments reassemble into JSON");
    assert_eq!(args["location"], "Paris, France");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter(|c| !c["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["finish_reason"], "tool_calls");
    let usage = chunks.last().expect("chunks")["usage"].clone();
    assert_eq!(usage["prompt_tokens"], 612 + 1536);
    assert!(usage["completion_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(upstream.last().json()["stream"], true);
}

/// The `tool_result` blocks of an Anthropic conversation, in order.
fn tool_results(body: &Value) -> Vec<&Value> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_result")
        .collect()
}

/// An agent loop: tool call → tool result → tool call → answer. Each result must reach
/// Anthropic as a `tool_result` for the call's id, or the model calls the tool again.
#[tokio::test]
async fn agent_loop_through_claude_delivers_tool_results_as_tool_results() {
    let upstream = FakeUpstream::start(|req| {
        let results = tool_results(&req.json()).len();
        let reply = match results {
            0 => json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Paris"}}],
                "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}}),
            1 => json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "tool_use", "id": "toolu_B", "name": "get_time", "input": {"tz": "Europe/Paris"}}],
                "stop_reason": "tool_use", "usage": {"input_tokens": 20, "output_tokens": 5}}),
            _ => json!({"id": "msg_3", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": "Rainy, 18:00."}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 30, "output_tokens": 5}}),
        };
        Reply::json(200, reply.to_string())
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;
    let mut messages = vec![json!({"role": "user", "content": "Weather and time in Paris?"})];
    let mut answer = None;
    for _ in 0..4 {
        let body: Value = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "claude-sonnet-4-5", "messages": messages,
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
                          {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]}))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        let message = body["choices"][0]["message"].clone();
        match message["tool_calls"].as_array() {
            Some(calls) => {
                messages.push(message.clone());
                for call in calls {
                    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"ok\": true}"}));
                }
            }
            None => {
                answer = message["content"].as_str().map(str::to_string);
                break;
            }
        }
    }
    assert_eq!(answer.as_deref(), Some("Rainy, 18:00."));
    let last = upstream.last().json();
    let results = tool_results(&last);
    let ids: Vec<&str> = results
        .iter()
        .filter_map(|b| b["tool_use_id"].as_str())
        .collect();
    assert_eq!(ids, ["toolu_A", "toolu_B"]);
}

/// An Anthropic Messages stream: `message_start`, one block per entry of `blocks`
/// (text, or a tool call whose input arrives in two `input_json_delta`s), the end.
fn anthropic_stream(id: &str, blocks: &[Value], stop_reason: &str) -> Vec<u8> {
    let mut sse = String::new();
    let mut event = |name: &str, data: Value| sse += &format!("event: {name}\ndata: {data}\n\n");
    event(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message",
        "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
        "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    );
    for (index, block) in blocks.iter().enumerate() {
        if let Some(text) = block["text"].as_str() {
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}),
            );
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}),
            );
        } else {
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}),
            );
            let input = block["input"].to_string();
            let (head, tail) = input.split_at(input.len() / 2);
            for part in [head, tail] {
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
                );
            }
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 9}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    sse.into_bytes()
}

/// An OpenAI agent that streams (Continue, the SDK with `stream=True`) reassembles
/// tool calls from chunk deltas; its tool messages reach Claude as `tool_result`s.
#[tokio::test]
async fn streamed_agent_loop_through_claude_delivers_tool_results_as_tool_results() {
    let upstream = FakeUpstream::start(|req| {
        let results = tool_results(&req.json()).len();
        let body = match results {
            // Two calls in parallel, then one more, then the answer.
            0 => anthropic_stream(
                "msg_1",
                &[
                    json!({"text": "Checking."}),
                    json!({"id": "toolu_A", "name": "get_weather", "input": {"city": "Paris"}}),
                    json!({"id": "toolu_B", "name": "get_time", "input": {"tz": "Europe/Paris"}}),
                ],
                "tool_use",
            ),
            2 => anthropic_stream(
                "msg_2",
                &[json!({"id": "toolu_C", "name": "get_weather", "input": {"city": "Lyon"}})],
                "tool_use",
            ),
            _ => anthropic_stream("msg_3", &[json!({"text": "Rainy, 18:00."})], "end_turn"),
        };
        Reply::sse(&body)
    })
    .await;
    let gw = TestGateway::start(&config(&upstream.url(), "http://127.0.0.1:9")).await;
    let mut messages = vec![json!({"role": "user", "content": "Weather and time in Paris?"})];
    let mut answer = None;
    for _ in 0..4 {
        let text = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "claude-sonnet-4-5", "stream": true, "messages": messages,
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
                          {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]}))
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("stream");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        // Rebuild the message from the deltas, as the OpenAI SDK does.
        let mut content = String::new();
        let mut calls: Vec<Value> = Vec::new();
        let mut finish = Value::Null;
        for chunk in sse_data(&text) {
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            if let Some(t) = choice["delta"]["content"].as_str() {
                content += t;
            }
            for call in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = call["index"].as_u64().expect("index") as usize;
                if index == calls.len() {
                    calls.push(json!({"id": call["id"], "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""}}));
                }
                let args = calls[index]["function"]["arguments"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                calls[index]["function"]["arguments"] =
                    json!(args + call["function"]["arguments"].as_str().unwrap_or(""));
            }
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
        if finish == "tool_calls" {
            messages.push(json!({"role": "assistant", "content": content, "tool_calls": calls}));
            for call in &calls {
                let args: Value =
                    serde_json::from_str(call["function"]["arguments"].as_str().expect("text"))
                        .expect("the streamed arguments form JSON");
                messages.push(json!({"role": "tool", "tool_call_id": call["id"],
                    "content": format!("{{\"for\": {args}}}")}));
            }
        } else {
            assert_eq!(finish, "stop");
            answer = Some(content);
            break;
        }
    }
    assert_eq!(answer.as_deref(), Some("Rainy, 18:00."));
    assert_eq!(upstream.received().len(), 3);
    let last = upstream.last().json();
    let turns = last["messages"].as_array().expect("messages");
    let roles: Vec<&str> = turns.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    let uses: Vec<&Value> = turns[1]["content"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.len(), 2, "parallel calls stay one assistant turn");
    assert_eq!(uses[1]["input"], json!({"tz": "Europe/Paris"}));
    let results = tool_results(&last);
    let ids: Vec<&str> = results
        .iter()
        .filter_map(|b| b["tool_use_id"].as_str())
        .collect();
    assert_eq!(ids, ["toolu_A", "toolu_B", "toolu_C"]);
    assert!(
        results[2]["content"].to_string().contains("Lyon"),
        "{}",
        results[2]
    );
}

#[tokio::test]
async fn openai_compatible_models_get_the_body_unchanged_and_the_route_key() {
    let upstream = FakeUpstream::start(|_| Reply {
        headers: vec![
            ("openai-processing-ms", "412".to_string()),
            ("set-cookie", "__cf_bm=upstream-session".to_string()),
            ("alt-svc", "h3=\":443\"".to_string()),
            ("strict-transport-security", "max-age=31536000".to_string()),
        ],
        ..Reply::json(200, fixture("upstream/openai/chat_text.json"))
    })
    .await;
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &upstream.url())).await;
    let sent = r#"{"model":"qwen2.5-coder","messages":[{"role":"user","content":"hi"}],"logit_bias":{"50256":-100},"seed":7}"#;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("caller-key")
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let headers = resp.headers();
    assert_eq!(
        headers["openai-processing-ms"], "412",
        "the answer's headers pass"
    );
    assert_eq!(headers["content-type"], "application/json");
    for upstream_only in ["set-cookie", "alt-svc", "strict-transport-security"] {
        assert!(
            !headers.contains_key(upstream_only),
            "{upstream_only} leaked"
        );
    }
    let got = resp.bytes().await.expect("body");
    assert_eq!(
        &got[..],
        &fixture("upstream/openai/chat_text.json")[..],
        "answer passes through byte for byte"
    );
    let rec = upstream.last();
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(rec.header("authorization"), Some("Bearer sk-vllm-real"));
    assert_eq!(
        &rec.body[..],
        sent.as_bytes(),
        "unknown fields reach the upstream unchanged"
    );
}

#[tokio::test]
async fn models_lists_routed_names_of_active_providers() {
    let gw = TestGateway::start(&config("http://127.0.0.1:9", "http://127.0.0.1:9")).await;
    let body: Value = client()
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["fast"]);
    assert_eq!(body["data"][0]["owned_by"], "anthropic");
}
