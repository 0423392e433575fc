//! Where each API keeps its system prompt, and putting a prompt of the gateway's there
//! (a skill's, the diff-first instruction) without touching what the caller wrote.

use serde_json::{json, Map, Value};

/// Claude Code's billing attribution travels as the first system block; the gateway's
/// prompts go after it, never before or into it.
const ATTRIBUTION_PREFIX: &str = "x-anthropic-billing-header";

/// Where the caller's API keeps its system prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemPrompt {
    /// OpenAI chat: a `system` message first in `messages`.
    OpenAiMessages,
    /// Anthropic Messages (and InvokeModel's Anthropic body): a `system` string or blocks.
    AnthropicSystem,
    /// Bedrock Converse: `system: [{"text": …}]`.
    ConverseSystem,
    /// Gemini: `systemInstruction: {"parts": [{"text": …}]}`.
    GeminiInstruction,
}

/// `doc` with `prompt` first in its system prompt (after Claude Code's attribution).
pub fn insert(doc: &mut Map<String, Value>, prompt: &str, place: SystemPrompt) {
    match place {
        SystemPrompt::OpenAiMessages => {
            if let Some(Value::Array(messages)) = doc.get_mut("messages") {
                messages.insert(0, json!({"role": "system", "content": prompt}));
            }
        }
        SystemPrompt::AnthropicSystem => {
            let block = json!({"type": "text", "text": prompt});
            let blocks = match doc.remove("system") {
                None | Some(Value::Null) => vec![block],
                Some(Value::String(text)) => vec![block, json!({"type": "text", "text": text})],
                Some(Value::Array(mut blocks)) => {
                    let after_attribution = blocks
                        .first()
                        .and_then(|b| b["text"].as_str())
                        .is_some_and(|t| t.starts_with(ATTRIBUTION_PREFIX));
                    blocks.insert(usize::from(after_attribution), block);
                    blocks
                }
                Some(other) => vec![block, other],
            };
            doc.insert("system".into(), Value::Array(blocks));
        }
        SystemPrompt::ConverseSystem => {
            let block = json!({"text": prompt});
            match doc.get_mut("system") {
                Some(Value::Array(blocks)) => blocks.insert(0, block),
                _ => {
                    doc.insert("system".into(), Value::Array(vec![block]));
                }
            }
        }
        SystemPrompt::GeminiInstruction => {
            let part = json!({"text": prompt});
            let instruction = doc
                .entry("systemInstruction")
                .or_insert_with(|| json!({"parts": []}));
            match instruction.get_mut("parts") {
                Some(Value::Array(parts)) => parts.insert(0, part),
                _ => *instruction = json!({"parts": [part]}),
            }
        }
    }
}
