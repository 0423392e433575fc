//! Golden tests: every recorded request and upstream answer under `fixtures/`, through
//! each translator, against a reviewed snapshot in `snapshots/`. Adding a fixture adds
//! a case; `INSTA_UPDATE=always cargo test` writes its snapshot for review.

use ai_gateway::exchange::{
    anthropic_bedrock, anthropic_openai, openai_anthropic, openai_bedrock, openai_gemini, Target,
};
use ai_gateway::translate::{SseOut, StreamTranslator};
use ai_gateway::wire::{anthropic, bedrock, gemini, openai};
use ai_gateway_snapshot::ProviderKind;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::Value;
use std::path::Path;

/// The provider a translated request is for: its model id and kind, no output ceiling.
fn target(model: &str, kind: ProviderKind) -> Target<'_> {
    Target {
        model,
        kind,
        default_max_tokens: 4096,
        max_output_tokens: None,
        vertex: None,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture parses")
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("serialises")
}

/// Timestamps are the translation time; everything else must be stable.
fn without_timestamps(mut v: Value) -> Value {
    if let Some(created) = v.get_mut("created") {
        *created = Value::from(0);
    }
    v
}

/// Runs a recorded SSE stream through a translator and renders what the caller receives,
/// one event per block.
fn translate_stream(path: &Path, mut translator: Box<dyn StreamTranslator>) -> String {
    let bytes = std::fs::read(path).expect("fixture readable");
    let chunks = futures_util::stream::iter(
        bytes
            .chunks(97) // odd-sized chunks: events split across reads, as on a real socket
            .map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let events: Vec<_> = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(chunks.eventsource().collect());
    let mut out = SseOut::default();
    for event in events {
        let event = event.expect("fixture is valid SSE");
        translator.on_event(&event.event, &event.data, &mut out);
    }
    translator.finish(None, &mut out);
    render_sse(&out.take())
}

fn render_sse(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            event
                .lines()
                .map(|line| match line.strip_prefix("data: ") {
                    Some(data) => match serde_json::from_str::<Value>(data) {
                        Ok(v) => format!("data: {}", without_timestamps(v)),
                        Err(_) => line.to_string(),
                    },
                    None => line.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn openai_requests_to_anthropic() {
    insta::glob!("fixtures/requests/openai/*.json", |path| {
        let req: openai::ChatRequest = read_json(path);
        let out = openai_anthropic::request(
            &req,
            &target("claude-sonnet-4-5-20250929", ProviderKind::Anthropic),
        )
        .expect("translates");
        insta::assert_snapshot!(pretty(&out));
    });
}

#[test]
fn anthropic_requests_to_openai() {
    insta::glob!("fixtures/requests/anthropic/*.json", |path| {
        let req: anthropic::MessagesRequest = read_json(path);
        let out = anthropic_openai::request(&req, &target("gpt-4o", ProviderKind::Openai))
            .expect("translates");
        insta::assert_snapshot!(pretty(&out));
    });
}

#[test]
fn claude_code_request_to_openai() {
    insta::glob!("fixtures/clients/claude_code_request*.json", |path| {
        let recorded: Value = read_json(path);
        let req: anthropic::MessagesRequest =
            serde_json::from_value(recorded["body"].clone()).expect("Claude Code body parses");
        let out =
            anthropic_openai::request(&req, &target("qwen2.5-coder:7b", ProviderKind::Ollama))
                .expect("translates");
        // Tool results stay tool messages and tool calls stay tool calls.
        let messages = out["messages"].as_array().expect("messages");
        let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
        let tools = out["tools"].as_array().map(Vec::len).unwrap_or(0);
        insta::assert_snapshot!(format!(
            "roles: {roles:?}\ntools: {tools}\nstream_options: {}\nmax_tokens: {}",
            out["stream_options"], out["max_tokens"]
        ));
    });
}

#[test]
fn anthropic_responses_to_openai() {
    insta::glob!("fixtures/upstream/anthropic/message_*.json", |path| {
        let resp: anthropic::MessageResponse = read_json(path);
        let out = openai_anthropic::response(&resp, "claude-sonnet-4-5").expect("translates");
        insta::assert_snapshot!(pretty(&without_timestamps(out)));
    });
}

#[test]
fn openai_responses_to_anthropic() {
    insta::glob!("fixtures/upstream/openai/chat_*.json", |path| {
        let resp: openai::ChatCompletion = read_json(path);
        let out = anthropic_openai::response(&resp, "gpt-4o").expect("translates");
        insta::assert_snapshot!(pretty(&out));
    });
}

#[test]
fn anthropic_streams_to_openai() {
    insta::glob!("fixtures/upstream/anthropic/stream_*.sse", |path| {
        let translator = openai_anthropic::StreamToOpenAi::new("claude-sonnet-4-5", true);
        insta::assert_snapshot!(translate_stream(path, Box::new(translator)));
    });
}

#[test]
fn openai_streams_to_anthropic() {
    insta::glob!("fixtures/upstream/{openai,ollama}/*stream*.sse", |path| {
        let translator = anthropic_openai::StreamToAnthropic::new("gpt-4o", 100);
        insta::assert_snapshot!(translate_stream(path, Box::new(translator)));
    });
}

/// A translation result or the error a caller would get, so cases the target API
/// cannot express are pinned too.
fn pretty_or_error<E: std::fmt::Display>(result: Result<Value, E>) -> String {
    match result {
        Ok(v) => pretty(&v),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn openai_requests_to_bedrock_converse() {
    insta::glob!("fixtures/requests/openai/*.json", |path| {
        let req: openai::ChatRequest = read_json(path);
        insta::assert_snapshot!(pretty_or_error(openai_bedrock::request(
            &req,
            &target("claude-sonnet-4-5", ProviderKind::Bedrock)
        )));
    });
}

#[test]
fn bedrock_converse_responses_to_openai() {
    insta::glob!("fixtures/upstream/bedrock/converse*.json", |path| {
        let resp: bedrock::ConverseResponse = read_json(path);
        let mut out = openai_bedrock::response(&resp, "claude-sonnet-4-5").expect("translates");
        out["id"] = Value::from("chatcmpl-test");
        insta::assert_snapshot!(pretty(&without_timestamps(out)));
    });
}

/// Runs a recorded AWS event stream through a translator, frame by frame as the gateway
/// feeds it (each event's type, or its exception type, with the JSON payload).
fn translate_frames(path: &Path, mut translator: Box<dyn StreamTranslator>) -> String {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    let mut buf = bytes::BytesMut::from(&std::fs::read(path).expect("fixture")[..]);
    let mut decoder = MessageFrameDecoder::new();
    let mut out = SseOut::default();
    while let Ok(DecodedFrame::Complete(m)) = decoder.decode_frame(&mut buf) {
        let name = m
            .headers()
            .iter()
            .find(|h| h.name().as_str() == ":event-type" || h.name().as_str() == ":exception-type")
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        translator.on_event(&name, &String::from_utf8_lossy(m.payload()), &mut out);
    }
    translator.finish(None, &mut out);
    render_sse(&out.take())
}

#[test]
fn bedrock_converse_streams_to_openai() {
    insta::glob!("fixtures/upstream/bedrock/converse_stream*.bin", |path| {
        let translator = openai_bedrock::StreamToOpenAi::new("claude-sonnet-4-5", true);
        // The chunk id is generated per stream; everything else is fixed by the fixture.
        let rendered: Vec<String> = translate_frames(path, Box::new(translator))
            .lines()
            .map(|line| {
                match line
                    .strip_prefix("data: ")
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                {
                    Some(mut v) if v.get("id").is_some() => {
                        v["id"] = Value::from("chatcmpl-test");
                        format!("data: {v}")
                    }
                    _ => line.to_string(),
                }
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"));
    });
}

#[test]
fn anthropic_requests_to_bedrock_invoke() {
    insta::glob!("fixtures/requests/anthropic/*.json", |path| {
        let body = std::fs::read(path).expect("fixture readable");
        let messages = anthropic_bedrock::Messages {
            body: &body,
            // Claude Code's flags: only those Bedrock knows may travel.
            anthropic_beta: Some("claude-code-20250219,interleaved-thinking-2025-05-14"),
        };
        let target = target(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            ProviderKind::Bedrock,
        );
        let out = anthropic_bedrock::request(&messages, &target).expect("translates");
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        insta::assert_snapshot!(pretty(&out));
    });
}

#[test]
fn bedrock_invoke_streams_to_messages() {
    insta::glob!(
        "fixtures/upstream/bedrock/invoke_anthropic_stream*.bin",
        |path| {
            let translator = anthropic_bedrock::InvokeStreamToMessages::default();
            insta::assert_snapshot!(translate_frames(path, Box::new(translator)));
        }
    );
}

/// Gemini names no call ids, so the gateway mints random ones: pin them for snapshots.
fn stable_call_ids(text: String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("call_") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let minted = rest.len() > 13
            && rest.as_bytes()[..12].iter().all(u8::is_ascii_hexdigit)
            && rest.as_bytes()[12] == b'_';
        if minted {
            out.push_str("minted_");
            rest = &rest[13..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn openai_requests_to_gemini() {
    insta::glob!("fixtures/requests/openai/*.json", |path| {
        let req: openai::ChatRequest = read_json(path);
        insta::assert_snapshot!(pretty_or_error(openai_gemini::request(
            &req,
            &target("gemini-2.5-flash", ProviderKind::Gemini)
        )));
    });
}

#[test]
fn gemini_responses_to_openai() {
    insta::glob!("fixtures/upstream/gemini/generate_content*.json", |path| {
        let resp: gemini::GenerateContentResponse = read_json(path);
        let out = openai_gemini::response(&resp, "gemini-2.5-flash").expect("translates");
        insta::assert_snapshot!(stable_call_ids(pretty(&without_timestamps(out))));
    });
}

#[test]
fn gemini_streams_to_openai() {
    insta::glob!("fixtures/upstream/gemini/stream*.sse", |path| {
        let translator = openai_gemini::StreamToOpenAi::new("gemini-2.5-flash", true);
        insta::assert_snapshot!(stable_call_ids(translate_stream(
            path,
            Box::new(translator)
        )));
    });
}
