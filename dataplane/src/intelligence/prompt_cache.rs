//! Prompt-cache breakpoints for OpenAI-format calls served by Claude, whose callers
//! cannot place them (`token_reduction.cache_breakpoints`).
//!
//! The translated request gets one on the system prompt, one on the last tool and one
//! on the conversation so far (its last content block), as Claude Code places its own:
//! the next turn reads everything up to this turn's last block from the cache. A
//! breakpoint marks a position and is not part of the cached content, so moving the
//! last one each turn keeps the prefix hitting. A request that already carries
//! breakpoints is the caller's to manage and is left alone.

use serde_json::{json, Map, Value};

/// Marks an Anthropic Messages request (Anthropic's API, Vertex AI, Bedrock
/// InvokeModel).
pub fn mark_messages_request(doc: &mut Map<String, Value>) {
    if carries(doc, "cache_control") {
        return;
    }
    let marker = || json!({"type": "ephemeral"});
    if let Some(system) = doc.get_mut("system") {
        if let Value::String(text) = system {
            *system = json!([{"type": "text", "text": std::mem::take(text)}]);
        }
        if let Some(Value::Object(block)) = system.as_array_mut().and_then(|b| b.last_mut()) {
            block.insert("cache_control".into(), marker());
        }
    }
    if let Some(Value::Object(tool)) = doc
        .get_mut("tools")
        .and_then(Value::as_array_mut)
        .and_then(|t| t.last_mut())
    {
        tool.insert("cache_control".into(), marker());
    }
    let Some(Value::Object(last)) = doc
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.last_mut())
    else {
        return;
    };
    let Some(content) = last.get_mut("content") else {
        return;
    };
    if let Value::String(text) = content {
        if text.is_empty() {
            return;
        }
        *content = json!([{"type": "text", "text": std::mem::take(text)}]);
    }
    if let Some(Value::Object(block)) = content.as_array_mut().and_then(|b| b.last_mut()) {
        // Thinking blocks cannot carry a breakpoint; a conversation ending in one is rare.
        let markable = matches!(
            block.get("type").and_then(Value::as_str),
            Some("text" | "image" | "tool_use" | "tool_result" | "document")
        );
        if markable {
            block.insert("cache_control".into(), marker());
        }
    }
}

/// Marks a Bedrock Converse request with `cachePoint` blocks after the system prompt,
/// the tools and the last message's content, for models Bedrock caches prompts for.
pub fn mark_converse_request(doc: &mut Map<String, Value>, model: &str) {
    let cacheable = ["anthropic.", "claude", "amazon.nova"]
        .iter()
        .any(|family| model.contains(family));
    if !cacheable || carries(doc, "cachePoint") {
        return;
    }
    let point = || json!({"cachePoint": {"type": "default"}});
    if let Some(Value::Array(system)) = doc.get_mut("system") {
        if !system.is_empty() {
            system.push(point());
        }
    }
    if let Some(Value::Array(tools)) = doc.get_mut("toolConfig").and_then(|c| c.get_mut("tools")) {
        if !tools.is_empty() {
            tools.push(point());
        }
    }
    if let Some(Value::Array(content)) = doc
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.last_mut())
        .and_then(|m| m.get_mut("content"))
    {
        if !content.is_empty() {
            content.push(point());
        }
    }
}

/// Whether any member of `doc`, however deep, is named `key`.
fn carries(doc: &Map<String, Value>, key: &str) -> bool {
    fn any(value: &Value, key: &str) -> bool {
        match value {
            Value::Object(map) => map.contains_key(key) || map.values().any(|v| any(v, key)),
            Value::Array(items) => items.iter().any(|v| any(v, key)),
            _ => false,
        }
    }
    doc.contains_key(key) || doc.values().any(|v| any(v, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(body: Value) -> Value {
        let Value::Object(mut doc) = body else {
            panic!("an object")
        };
        mark_messages_request(&mut doc);
        Value::Object(doc)
    }

    #[test]
    fn system_tools_and_the_last_block_get_a_breakpoint() {
        let out = marked(json!({
            "system": "be brief",
            "tools": [{"name": "a"}, {"name": "b"}],
            "messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}],
        }));
        let ephemeral = json!({"type": "ephemeral"});
        assert_eq!(out["system"][0]["text"], "be brief");
        assert_eq!(out["system"][0]["cache_control"], ephemeral);
        assert!(out["tools"][0].get("cache_control").is_none());
        assert_eq!(out["tools"][1]["cache_control"], ephemeral);
        assert_eq!(out["messages"][0]["content"], "one");
        assert_eq!(out["messages"][2]["content"][0]["cache_control"], ephemeral);
        let text = serde_json::to_string(&out).expect("json");
        assert_eq!(text.matches("cache_control").count(), 3);
    }

    #[test]
    fn a_caller_that_places_its_own_breakpoints_keeps_them() {
        let body = json!({
            "system": [{"type": "text", "text": "s"}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]},
                         {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}],
        });
        assert_eq!(marked(body.clone()), body);
    }

    #[test]
    fn converse_gets_cache_points_for_claude_only() {
        let body = json!({"system": [{"text": "s"}], "toolConfig": {"tools": [{"toolSpec": {"name": "a"}}]},
                          "messages": [{"role": "user", "content": [{"text": "q"}]}]});
        let Value::Object(mut doc) = body.clone() else {
            panic!()
        };
        mark_converse_request(&mut doc, "meta.llama3-70b-instruct-v1:0");
        assert_eq!(Value::Object(doc.clone()), body);
        mark_converse_request(&mut doc, "anthropic.claude-sonnet-4-5-20250929-v1:0");
        let point = json!({"cachePoint": {"type": "default"}});
        assert_eq!(doc["system"][1], point);
        assert_eq!(doc["toolConfig"]["tools"][1], point);
        assert_eq!(doc["messages"][0]["content"][1], point);
    }
}
