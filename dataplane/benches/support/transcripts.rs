//! The recorded agent sessions of `tests/fixtures/intelligence/transcripts`, turn by
//! turn: each turn's request body as the client sent it. Shared by the token-reduction
//! benchmark and the prefix-stability test.

use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The caller's API a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
}

pub struct Transcript {
    pub name: &'static str,
    pub api: Api,
    doc: Value,
}

/// The three sessions: an OpenAI-format coding agent on Claude, a Continue chat, a
/// Claude Code session.
pub const SESSIONS: [&str; 3] = [
    "coding_session.openai.json",
    "continue_session.openai.json",
    "claude_code_session.anthropic.json",
];

impl Transcript {
    pub fn load(name: &'static str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/intelligence/transcripts")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Value = serde_json::from_str(&text).expect("a transcript is JSON");
        let api = match doc["api"].as_str() {
            Some("anthropic") => Api::Anthropic,
            _ => Api::OpenAi,
        };
        Self { name, api, doc }
    }

    /// Each turn's request. A Claude Code turn carries the breakpoint Claude Code puts
    /// on the last block of every request.
    pub fn turns(&self) -> Vec<Map<String, Value>> {
        let messages = self.doc["messages"].as_array().cloned().unwrap_or_default();
        let ends: Vec<usize> = self.doc["turns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_u64())
            .map(|n| n as usize)
            .collect();
        ends.iter()
            .map(|&end| {
                let mut body = Map::new();
                body.insert("model".into(), self.doc["model"].clone());
                body.insert("max_tokens".into(), json!(4096));
                if let Some(system) = self.doc.get("system") {
                    body.insert("system".into(), system.clone());
                }
                if let Some(tools) = self.doc.get("tools") {
                    body.insert("tools".into(), tools.clone());
                }
                let mut turn = messages[..end].to_vec();
                if self.api == Api::Anthropic {
                    mark_last_block(&mut turn);
                }
                body.insert("messages".into(), Value::Array(turn));
                body
            })
            .collect()
    }
}

fn mark_last_block(messages: &mut [Value]) {
    let Some(last) = messages.last_mut() else {
        return;
    };
    if let Value::String(text) = &last["content"] {
        last["content"] = json!([{"type": "text", "text": text}]);
    }
    if let Some(Value::Object(block)) = last["content"].as_array_mut().and_then(|b| b.last_mut()) {
        block.insert("cache_control".into(), json!({"type": "ephemeral"}));
    }
}

/// `value` without its `cache_control` markers: what a provider's prompt cache compares.
pub fn without_breakpoints(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "cache_control")
                .map(|(k, v)| (k.clone(), without_breakpoints(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_breakpoints).collect()),
        other => other.clone(),
    }
}
