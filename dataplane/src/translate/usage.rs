//! One token-usage shape for every provider, so cost and limits never care who answered.

use super::members::Members;
use crate::wire::{anthropic, bedrock, gemini, openai};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Tokens of one call. `input` excludes cached tokens: cache reads and writes are
/// priced at their own rates and must never be counted twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl TokenUsage {
    /// Anthropic reports uncached input and the two cache counts separately.
    pub fn from_anthropic(u: &anthropic::Usage) -> Self {
        Self {
            input: u.input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            cache_read: u.cache_read_input_tokens.unwrap_or(0),
            cache_write: u.cache_creation_input_tokens.unwrap_or(0),
        }
    }

    /// Later Anthropic stream events repeat only the counts that changed.
    pub fn merge_anthropic(&mut self, u: &anthropic::Usage) {
        if let Some(v) = u.input_tokens {
            self.input = v;
        }
        if let Some(v) = u.output_tokens {
            self.output = v;
        }
        if let Some(v) = u.cache_read_input_tokens {
            self.cache_read = v;
        }
        if let Some(v) = u.cache_creation_input_tokens {
            self.cache_write = v;
        }
    }

    /// OpenAI's `prompt_tokens` includes the cached part, reported again in `cached_tokens`.
    pub fn from_openai(u: &openai::Usage) -> Self {
        let cached = u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Self {
            input: u.prompt_tokens.saturating_sub(cached),
            output: u.completion_tokens,
            cache_read: cached,
            cache_write: 0,
        }
    }

    /// Bedrock Converse's `usage`.
    pub fn from_bedrock(u: &bedrock::Usage) -> Self {
        Self {
            input: u.input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            cache_read: u.cache_read_input_tokens.unwrap_or(0),
            cache_write: u.cache_write_input_tokens.unwrap_or(0),
        }
    }

    /// Gemini `usageMetadata`: `promptTokenCount` includes the cached part; thinking
    /// tokens are billed as output.
    pub fn from_gemini(u: &gemini::UsageMetadata) -> Self {
        let cached = u.cached_content_token_count.unwrap_or(0);
        Self {
            input: u.prompt_token_count.unwrap_or(0).saturating_sub(cached),
            output: u.candidates_token_count.unwrap_or(0) + u.thoughts_token_count.unwrap_or(0),
            cache_read: cached,
            cache_write: 0,
        }
    }

    /// [`from_bedrock`](Self::from_bedrock) of a JSON document: Converse's names first,
    /// then the `…TokenCount` of InvokeModel's invocation metrics (Converse sends both).
    pub fn from_bedrock_json(v: &Value) -> Self {
        let n = |names: [&str; 2]| names.iter().find_map(|k| v.get(*k).and_then(Value::as_u64));
        Self::from_bedrock(&bedrock::Usage {
            input_tokens: n(["inputTokens", "inputTokenCount"]),
            output_tokens: n(["outputTokens", "outputTokenCount"]),
            cache_read_input_tokens: n(["cacheReadInputTokens", "cacheReadInputTokenCount"]),
            cache_write_input_tokens: n(["cacheWriteInputTokens", "cacheWriteInputTokenCount"]),
            rest: serde_json::Map::new(),
        })
    }

    /// [`from_gemini`](Self::from_gemini) of a JSON document; nothing when it is not usage.
    pub fn from_gemini_json(v: &Value) -> Self {
        gemini::UsageMetadata::deserialize(v)
            .map_or_else(|_| Self::default(), |u| Self::from_gemini(&u))
    }

    /// Two calls' usage together.
    pub fn plus(&self, other: &TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input + other.input,
            output: self.output + other.output,
            cache_read: self.cache_read + other.cache_read,
            cache_write: self.cache_write + other.cache_write,
        }
    }

    pub fn prompt_total(&self) -> u64 {
        self.input + self.cache_read + self.cache_write
    }

    pub fn to_openai(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_total(),
            "completion_tokens": self.output,
            "total_tokens": self.prompt_total() + self.output,
            "prompt_tokens_details": {"cached_tokens": self.cache_read},
        })
    }

    pub fn to_anthropic(self) -> anthropic::Usage {
        anthropic::Usage {
            input_tokens: Some(self.input),
            output_tokens: Some(self.output),
            cache_creation_input_tokens: Some(self.cache_write),
            cache_read_input_tokens: Some(self.cache_read),
        }
    }
}

/// Bedrock InvokeModel's `x-amzn-bedrock-input-token-count` / `-output-token-count`.
pub fn usage_from_bedrock_headers(headers: &http::HeaderMap) -> Option<TokenUsage> {
    let count = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.parse().ok() };
    let input = count("x-amzn-bedrock-input-token-count")?;
    Some(TokenUsage {
        input,
        output: count("x-amzn-bedrock-output-token-count").unwrap_or(0),
        cache_read: count("x-amzn-bedrock-cache-read-input-token-count").unwrap_or(0),
        cache_write: count("x-amzn-bedrock-cache-write-input-token-count").unwrap_or(0),
    })
}

/// The usage-bearing fields of any provider's answer; everything else in the document
/// is skipped without being built, and the usage objects are kept as borrowed text
/// until their shape is known, which keeps metering cheap on every answer.
#[derive(Deserialize)]
struct UsagePeek<'a> {
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "usageMetadata")]
    usage_metadata: Option<&'a RawValue>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
}

/// Usage from the bytes of a complete JSON answer; see [`usage_from_json`].
pub fn usage_from_bytes(body: &[u8]) -> Option<TokenUsage> {
    // Nearly every answer ends with its `usage` object; other shapes are scanned for in full.
    if let Some((text, members)) = usage_object(body) {
        // Counts that are not plain integers, or another shape, get the full parse.
        let usage = usage_counts(members)
            .flatten()
            .or_else(|| usage_from_parts(Some(text), None, None, None));
        if usage.is_some() {
            return usage;
        }
    }
    let keys = ["usage", "usageMetadata", "prompt_eval_count", "eval_count"];
    if let Some([usage, metadata, prompt_evals, evals]) = super::members::top_level(body, keys) {
        fn text(raw: Option<&[u8]>) -> Option<&str> {
            raw.and_then(|r| std::str::from_utf8(r).ok())
        }
        let count = |raw| text(raw).and_then(|t| t.parse().ok());
        return usage_from_parts(
            text(usage),
            text(metadata),
            count(prompt_evals),
            count(evals),
        );
    }
    // Gemini's streamGenerateContent without `alt=sse` answers a JSON array of chunks,
    // each with the running usage.
    let peek: UsagePeek = if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        serde_json::from_slice::<Vec<UsagePeek>>(body).ok()?.pop()?
    } else {
        serde_json::from_slice(body).ok()?
    };
    usage_from_parts(
        peek.usage.map(RawValue::get),
        peek.usage_metadata.map(RawValue::get),
        peek.prompt_eval_count,
        peek.eval_count,
    )
}

/// An Anthropic- or OpenAI-shaped top-level `usage` object, read from the end of a
/// JSON document (an answer, a stream chunk).
pub fn usage_member(doc: &[u8]) -> Option<TokenUsage> {
    let (text, members) = usage_object(doc)?;
    counted(text, members)
}

/// The top-level `usage` object found from the end, as text, with its count members
/// read in the same pass.
fn usage_object(doc: &[u8]) -> Option<(&str, Members<'_, 7>)> {
    let (raw, members) =
        super::members::top_level_object_from_end(doc, br#""usage""#, USAGE_COUNTS)?;
    Some((std::str::from_utf8(raw).ok()?, members))
}

/// The counts of a usage object: read from its members when they are plain integers,
/// else parsed in full.
fn counted(text: &str, members: Members<'_, 7>) -> Option<TokenUsage> {
    match usage_counts(members) {
        Some(usage) => usage,
        None => common_usage(text),
    }
}

/// Usage from the raw text of an answer's usage-bearing members.
fn usage_from_parts(
    usage: Option<&str>,
    usage_metadata: Option<&str>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
) -> Option<TokenUsage> {
    if let Some(u) = usage.and_then(common_usage) {
        return Some(u);
    }
    let value = |raw: Option<&str>| raw.and_then(|r| serde_json::from_str::<Value>(r).ok());
    usage_of(
        value(usage).as_ref(),
        value(usage_metadata).as_ref(),
        prompt_eval_count,
        eval_count,
    )
}

/// Anthropic's and OpenAI's usage objects, the shapes of nearly every answer, read
/// straight into their types.
fn common_usage(raw: &str) -> Option<TokenUsage> {
    if let Some(u) = common_usage_counts(raw.as_bytes()) {
        return u;
    }
    if raw.contains("\"input_tokens\"") || raw.contains("\"output_tokens\"") {
        let u: anthropic::Usage = serde_json::from_str(raw).ok()?;
        return Some(TokenUsage::from_anthropic(&u));
    }
    if raw.contains("\"prompt_tokens\"") {
        let u: openai::Usage = serde_json::from_str(raw).ok()?;
        return Some(TokenUsage::from_openai(&u));
    }
    None
}

/// [`common_usage`] for objects whose counts are plain integers, read without a
/// parser; `None` leaves anything else to serde.
fn common_usage_counts(raw: &[u8]) -> Option<Option<TokenUsage>> {
    usage_counts(super::members::top_level(raw, USAGE_COUNTS)?)
}

/// The members of a usage object that hold its counts, Anthropic's then OpenAI's.
const USAGE_COUNTS: [&str; 7] = [
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
];

/// [`common_usage_counts`] from the raw [`USAGE_COUNTS`] members.
fn usage_counts(members: Members<'_, 7>) -> Option<Option<TokenUsage>> {
    let [input, output, cache_read, cache_write, prompt, completion, details] = members;
    if input.is_some() || output.is_some() {
        return Some(Some(TokenUsage::from_anthropic(&anthropic::Usage {
            input_tokens: count(input)?,
            output_tokens: count(output)?,
            cache_read_input_tokens: count(cache_read)?,
            cache_creation_input_tokens: count(cache_write)?,
        })));
    }
    if prompt.is_some() {
        let cached_tokens = match details.filter(|d| *d != b"null") {
            Some(d) => count(super::members::top_level(d, ["cached_tokens"])?[0])?,
            None => None,
        };
        return Some(Some(TokenUsage::from_openai(&openai::Usage {
            prompt_tokens: count(prompt)?.unwrap_or(0),
            completion_tokens: count(completion)?.unwrap_or(0),
            prompt_tokens_details: Some(openai::PromptTokensDetails { cached_tokens }),
        })));
    }
    Some(None)
}

/// A member that is absent or `null` (`Some(None)`), or a plain integer.
fn count(raw: Option<&[u8]>) -> Option<Option<u64>> {
    match raw {
        None | Some(b"null") => Some(None),
        Some(digits) => std::str::from_utf8(digits).ok()?.parse().ok().map(Some),
    }
}

/// Usage from a complete JSON answer of any provider shape: Anthropic (`usage` with
/// `input_tokens`), OpenAI (`usage` with `prompt_tokens`), Bedrock Converse (`usage`
/// with `inputTokens`), Gemini (`usageMetadata`), Ollama (`prompt_eval_count`).
pub fn usage_from_json(v: &Value) -> Option<TokenUsage> {
    usage_of(
        v.get("usage"),
        v.get("usageMetadata"),
        v.get("prompt_eval_count").and_then(Value::as_u64),
        v.get("eval_count").and_then(Value::as_u64),
    )
}

fn usage_of(
    usage: Option<&Value>,
    usage_metadata: Option<&Value>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
) -> Option<TokenUsage> {
    if let Some(u) = usage.filter(|u| u.is_object()) {
        if u.get("input_tokens").is_some() || u.get("output_tokens").is_some() {
            let u = anthropic::Usage::deserialize(u).ok()?;
            return Some(TokenUsage::from_anthropic(&u));
        }
        if u.get("prompt_tokens").is_some() {
            let u = openai::Usage::deserialize(u).ok()?;
            return Some(TokenUsage::from_openai(&u));
        }
        if u.get("inputTokens").is_some() {
            return Some(TokenUsage::from_bedrock_json(u));
        }
    }
    if let Some(m) = usage_metadata.filter(|m| m.is_object()) {
        return Some(TokenUsage::from_gemini_json(m));
    }
    if prompt_eval_count.is_some() || eval_count.is_some() {
        return Some(TokenUsage {
            input: prompt_eval_count.unwrap_or(0),
            output: eval_count.unwrap_or(0),
            ..TokenUsage::default()
        });
    }
    None
}

/// The provider event inside an InvokeModelWithResponseStream `chunk` frame's payload.
pub fn invoke_chunk(payload: &[u8]) -> Option<Value> {
    use base64::Engine;
    let frame: Value = serde_json::from_slice(payload).ok()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(frame.get("bytes")?.as_str()?)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What one Anthropic Messages event says of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaudeEvent {
    /// A content delta: at least one output token.
    Content,
    /// `message_stop`: the stream is whole.
    End,
    Other,
}

/// Reads the usage one Anthropic Messages event (as Claude on Bedrock streams them)
/// carries into `usage`.
pub fn meter_claude_event(inner: &Value, usage: &mut TokenUsage) -> ClaudeEvent {
    if let Some(metrics) = inner.get("amazon-bedrock-invocationMetrics") {
        *usage = TokenUsage::from_bedrock_json(metrics);
    }
    match anthropic::StreamEvent::deserialize(inner) {
        Ok(anthropic::StreamEvent::MessageStart { message }) => {
            *usage = TokenUsage::from_anthropic(&message.usage);
            ClaudeEvent::Other
        }
        Ok(anthropic::StreamEvent::MessageDelta { usage: Some(u), .. }) => {
            usage.merge_anthropic(&u);
            ClaudeEvent::Other
        }
        Ok(anthropic::StreamEvent::ContentBlockDelta { .. }) => ClaudeEvent::Content,
        Ok(anthropic::StreamEvent::MessageStop) => ClaudeEvent::End,
        _ => ClaudeEvent::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_cached_tokens_are_not_counted_twice() {
        let u: openai::Usage = serde_json::from_value(json!({
            "prompt_tokens": 1200, "completion_tokens": 80,
            "prompt_tokens_details": {"cached_tokens": 1024}
        }))
        .expect("usage");
        let usage = TokenUsage::from_openai(&u);
        assert_eq!(usage.input, 176);
        assert_eq!(usage.cache_read, 1024);
        assert_eq!(usage.prompt_total(), 1200);
        assert_eq!(usage.to_anthropic().input_tokens, Some(176));
    }

    #[test]
    fn every_provider_shape_reads_into_the_same_usage() {
        let anthropic = json!({"usage": {"input_tokens": 18, "output_tokens": 500,
            "cache_read_input_tokens": 2048, "cache_creation_input_tokens": 312}});
        let bedrock = json!({"usage": {"inputTokens": 18, "outputTokens": 500,
            "cacheReadInputTokens": 2048, "cacheWriteInputTokens": 312, "totalTokens": 2878}});
        let expected = TokenUsage {
            input: 18,
            output: 500,
            cache_read: 2048,
            cache_write: 312,
        };
        assert_eq!(usage_from_json(&anthropic), Some(expected));
        assert_eq!(usage_from_json(&bedrock), Some(expected));
        let metrics = json!({"inputTokenCount": 18, "outputTokenCount": 500,
            "cacheReadInputTokenCount": 2048, "cacheWriteInputTokenCount": 312});
        assert_eq!(TokenUsage::from_bedrock_json(&metrics), expected);
        let gemini = json!({"usageMetadata": {"promptTokenCount": 1200, "cachedContentTokenCount": 1024,
            "candidatesTokenCount": 60, "thoughtsTokenCount": 20, "totalTokenCount": 1280}});
        assert_eq!(
            usage_from_json(&gemini),
            Some(TokenUsage {
                input: 176,
                output: 80,
                cache_read: 1024,
                cache_write: 0
            })
        );
        let ollama = json!({"done": true, "prompt_eval_count": 26, "eval_count": 290});
        assert_eq!(
            usage_from_json(&ollama),
            Some(TokenUsage {
                input: 26,
                output: 290,
                ..TokenUsage::default()
            })
        );
    }

    #[test]
    fn answers_read_from_bytes_meter_as_their_parsed_documents_do() {
        let answers = [
            json!({"id": "msg_1", "content": [{"type": "text", "text": "hi"}],
                "usage": {"input_tokens": 18, "output_tokens": 5, "cache_read_input_tokens": 4}}),
            json!({"id": "chatcmpl-1", "choices": [{"message": {"content": "the usage is"}}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 7,
                    "prompt_tokens_details": {"cached_tokens": 10},
                    "completion_tokens_details": {"reasoning_tokens": 0}}}),
            json!({"output": {}, "usage": {"inputTokens": 18, "outputTokens": 500, "totalTokens": 518}}),
            json!({"candidates": [], "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3}}),
            json!({"done": true, "prompt_eval_count": 26, "eval_count": 290}),
            json!({"id": "chatcmpl-2", "choices": [], "usage": null}),
        ];
        for answer in answers {
            let compact = serde_json::to_vec(&answer).expect("bytes");
            let pretty = serde_json::to_vec_pretty(&answer).expect("bytes");
            for bytes in [compact, pretty] {
                assert_eq!(
                    usage_from_bytes(&bytes),
                    usage_from_json(&answer),
                    "{answer}"
                );
            }
        }
        // A tool's input may hold its own `usage`; only the answer's own counts.
        let tool_use = json!({"content": [{"type": "tool_use", "input": {"usage": {"input_tokens": 999}}}],
            "usage": {"input_tokens": 12, "output_tokens": 4}});
        let bytes = serde_json::to_vec(&tool_use).expect("bytes");
        assert_eq!(usage_from_bytes(&bytes).map(|u| u.input), Some(12));
        // Every recorded provider answer, byte for byte as the providers send it.
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upstream");
        let mut seen = 0;
        for dir in std::fs::read_dir(fixtures).expect("fixtures") {
            for file in std::fs::read_dir(dir.expect("dir").path()).expect("provider dir") {
                let path = file.expect("file").path();
                if path.extension().is_some_and(|e| e == "json") {
                    let bytes = std::fs::read(&path).expect("fixture");
                    let parsed: Value = serde_json::from_slice(&bytes).expect("JSON");
                    assert_eq!(
                        usage_from_bytes(&bytes),
                        usage_from_json(&parsed),
                        "{path:?}"
                    );
                    seen += usage_from_json(&parsed).is_some() as usize;
                }
            }
        }
        assert!(seen >= 8, "only {seen} fixtures carry usage");
        assert_eq!(
            usage_from_bytes(br#"{"usage": {"prompt_tokens": 30, "completion_tokens": 7}}"#)
                .map(|u| (u.input, u.output)),
            Some((30, 7))
        );
        let gemini_array = br#"[{"usageMetadata": {"promptTokenCount": 5}},
            {"usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3}}]"#;
        assert_eq!(usage_from_bytes(gemini_array).map(|u| u.output), Some(3));
    }

    #[test]
    fn anthropic_cache_tokens_add_to_the_openai_prompt_total() {
        let u: anthropic::Usage = serde_json::from_value(json!({
            "input_tokens": 10, "output_tokens": 5,
            "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000
        }))
        .expect("usage");
        let openai = TokenUsage::from_anthropic(&u).to_openai();
        assert_eq!(openai["prompt_tokens"], 2310);
        assert_eq!(openai["prompt_tokens_details"]["cached_tokens"], 2000);
        assert_eq!(openai["total_tokens"], 2315);
    }
}
