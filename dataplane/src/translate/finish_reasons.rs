//! Stop-reason mapping between the APIs, in one place.

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn anthropic_to_openai(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn openai_to_anthropic(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_maps_to_its_counterpart() {
        for (anthropic, openai) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            assert_eq!(anthropic_to_openai(Some(anthropic)), openai);
            assert_eq!(openai_to_anthropic(Some(openai)), anthropic);
        }
        assert_eq!(anthropic_to_openai(Some("stop_sequence")), "stop");
    }
}
