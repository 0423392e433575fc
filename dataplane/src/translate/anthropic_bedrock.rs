//! An Anthropic Messages caller (Claude Code on `/v1/claude`) served by Claude on
//! Bedrock's InvokeModel: the body is the Messages body with the model moved to the
//! path and `anthropic_version` / `anthropic_beta` carried as Bedrock expects; the answer
//! is the Messages response, and the stream's `chunk` frames carry the Messages events.
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html>

use super::TranslateError;
use serde_json::{Map, Value};

pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The beta flags Claude on Bedrock accepts; any other (Claude Code sends several that
/// only Anthropic's API knows) makes Bedrock refuse the whole call. As the Bedrock user
/// guide lists them ("Anthropic Claude Messages API", request and response, the
/// `anthropic_beta` table, late 2025; compaction from its own page), plus
/// `computer-use-2024-10-22`, which that page's example request uses.
const BEDROCK_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
    "compact-2026-01-12",
];

/// The InvokeModel body for a Messages request; `anthropic_beta` comes from the
/// caller's `anthropic-beta` header.
pub fn request(body: &[u8], anthropic_beta: Option<&str>) -> Result<Vec<u8>, TranslateError> {
    let mut doc: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| TranslateError::new("body", e.to_string()))?;
    // Bedrock takes the model from the path and the stream choice from the operation.
    doc.remove("model");
    doc.remove("stream");
    doc.insert(
        "anthropic_version".into(),
        Value::from(BEDROCK_ANTHROPIC_VERSION),
    );
    if let Some(beta) = anthropic_beta {
        // The guide itself capitalises one flag: matched in any case, sent as listed.
        let flags: Vec<Value> = beta
            .split(',')
            .filter_map(|f| {
                let f = f.trim();
                BEDROCK_BETAS
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(f))
            })
            .map(|known| Value::from(*known))
            .collect();
        if !flags.is_empty() {
            doc.insert("anthropic_beta".into(), Value::Array(flags));
        }
    }
    serde_json::to_vec(&doc).map_err(|e| TranslateError::new("body", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_and_stream_leave_the_body_and_beta_flags_enter_it() {
        let body = json!({"model": "claude-sonnet-4-5", "stream": true, "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled", "budget_tokens": 1024}});
        let out: Value = serde_json::from_slice(
            &request(
                body.to_string().as_bytes(),
                Some(
                    "claude-code-20250219, Interleaved-thinking-2025-05-14, context-1m-2025-08-07, adaptive-thinking-2026-01-28, effort-2025-11-24",
                ),
            )
            .expect("translates"),
        )
        .expect("json");
        assert!(out.get("model").is_none() && out.get("stream").is_none());
        assert_eq!(out["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(
            out["anthropic_beta"],
            json!([
                "interleaved-thinking-2025-05-14",
                "context-1m-2025-08-07",
                "effort-2025-11-24"
            ])
        );
        assert_eq!(
            out["thinking"]["budget_tokens"], 1024,
            "unknown fields travel unchanged"
        );
    }
}
