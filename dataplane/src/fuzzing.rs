//! Entry points for the fuzz targets in `dataplane/fuzz` and for the corpus replay
//! test: each takes arbitrary bytes as a caller or a provider could send them and
//! must return without panicking, whatever they hold.

use crate::exchange::{
    anthropic_bedrock, anthropic_openai, openai_anthropic, openai_bedrock, openai_gemini, Target,
};
use crate::translate::{SseOut, StreamTranslator};
use crate::wire::{anthropic, bedrock, gemini, openai};
use ai_gateway_snapshot::ProviderKind;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};

/// A provider of `kind` serving `model`, with a ceiling on output tokens.
fn target(model: &str, kind: ProviderKind) -> Target<'_> {
    Target {
        model,
        kind,
        default_max_tokens: 4096,
        max_output_tokens: Some(8192),
        vertex: None,
    }
}

/// A caller's OpenAI chat request: screened, then translated for every upstream API.
pub fn chat_request(data: &[u8]) {
    let _ = crate::resolve::peek_model(data)
        .map(|peek| crate::resolve::within_request_limits(&Default::default(), &peek));
    if let Ok(req) = serde_json::from_slice::<openai::ChatRequest>(data) {
        let _ =
            openai_anthropic::request(&req, &target("claude-sonnet-4-5", ProviderKind::Anthropic));
        let _ = openai_bedrock::request(&req, &target("claude-sonnet-4-5", ProviderKind::Bedrock));
        let _ = openai_gemini::request(&req, &target("gemini-2.5-pro", ProviderKind::Gemini));
    }
}

/// A caller's Anthropic Messages request (Claude Code's), translated for OpenAI-style
/// upstreams and for Claude on Bedrock.
pub fn messages_request(data: &[u8]) {
    let _ = crate::resolve::peek_model(data);
    if let Ok(req) = serde_json::from_slice::<anthropic::MessagesRequest>(data) {
        for kind in [ProviderKind::Openai, ProviderKind::Ollama] {
            let _ = anthropic_openai::request(&req, &target("gpt-4o", kind));
        }
    }
    let messages = anthropic_bedrock::Messages {
        body: data,
        anthropic_beta: Some("context-1m-2025-08-07,unknown-beta"),
    };
    let _ = anthropic_bedrock::request(&messages, &target("claude", ProviderKind::Bedrock));
}

/// Provider answers (non-streaming) translated back for the caller.
pub fn provider_response(data: &[u8]) {
    let _ = crate::translate::usage::usage_from_bytes(data);
    if let Ok(resp) = serde_json::from_slice::<anthropic::MessageResponse>(data) {
        let _ = openai_anthropic::response(&resp, "claude-sonnet-4-5");
    }
    if let Ok(resp) = serde_json::from_slice::<openai::ChatCompletion>(data) {
        let _ = anthropic_openai::response(&resp, "gpt-4o");
    }
    if let Ok(resp) = serde_json::from_slice::<bedrock::ConverseResponse>(data) {
        let _ = openai_bedrock::response(&resp, "claude-sonnet-4-5");
    }
    if let Ok(resp) = serde_json::from_slice::<gemini::GenerateContentResponse>(data) {
        let _ = openai_gemini::response(&resp, "gemini-2.5-pro");
    }
}

/// SSE from a provider, through each translator that reads SSE.
pub fn sse_stream(data: &[u8]) {
    // Fed in pieces of a size the input picks, so events straddle reads.
    let piece = usize::from(data.first().copied().unwrap_or(7)).max(1);
    let events = sse_events_in_pieces(data, piece);
    let translators: Vec<Box<dyn StreamTranslator>> = vec![
        Box::new(openai_anthropic::StreamToOpenAi::new(
            "claude-sonnet-4-5",
            true,
        )),
        Box::new(anthropic_openai::StreamToAnthropic::new("gpt-4o", 10)),
        Box::new(openai_gemini::StreamToOpenAi::new("gemini-2.5-pro", true)),
    ];
    for mut translator in translators {
        let mut out = SseOut::default();
        for (event, data) in &events {
            translator.on_event(event, data, &mut out);
        }
        translator.finish(None, &mut out);
        let _ = translator.usage();
    }
}

/// Bedrock's binary event stream: frames decoded and translated.
pub fn event_stream(data: &[u8]) {
    let mut buf = bytes::BytesMut::from(data);
    let mut decoder = MessageFrameDecoder::new();
    let mut converse = openai_bedrock::StreamToOpenAi::new("claude-sonnet-4-5", true);
    let mut invoke = anthropic_bedrock::InvokeStreamToMessages::default();
    let mut out = SseOut::default();
    while let Ok(DecodedFrame::Complete(message)) = decoder.decode_frame(&mut buf) {
        let name = message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == ":event-type")
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let payload = String::from_utf8_lossy(message.payload());
        converse.on_event(&name, &payload, &mut out);
        invoke.on_event(&name, &payload, &mut out);
    }
    converse.finish(None, &mut out);
    invoke.finish(None, &mut out);
    let mut watcher = crate::upstream::stream::eventstream::FrameWatcher::default();
    let _ = watcher.feed(data, &crate::metered::UsageCell::default());
}

/// A config file or pushed snapshot, and a SigV4 `Authorization` header.
pub fn config_and_headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(snapshot) = ai_gateway_snapshot::parse_document(&text, |_| None) {
        let _ = snapshot.validate();
    }
    let _ = crate::sigv4::parse_authorization(&text);
    let _ = crate::sigv4::parse_amz_date(&text);
}

/// SSE events as the gateway's stream path cuts them, `(event, data)`, from bytes
/// arriving `piece` at a time.
pub fn sse_events_in_pieces(bytes: &[u8], piece: usize) -> Vec<(String, String)> {
    let mut splitter = crate::upstream::stream::sse::SseSplitter::default();
    let mut events = Vec::new();
    for chunk in bytes.chunks(piece.max(1)) {
        splitter.push(chunk);
        while let Some(e) = splitter.next_event() {
            events.push((e.event().to_string(), e.data().into_owned()));
        }
    }
    events
}
