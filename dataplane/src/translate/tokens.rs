//! Input-token estimates for providers that do not report them up front.

use crate::wire::anthropic::{Block, Content, MessagesRequest};
use tiktoken_rs::CoreBPE;

fn encoder() -> &'static CoreBPE {
    // o200k is the tokenizer of current OpenAI models; for other models it is an estimate.
    tiktoken_rs::o200k_base_singleton()
}

/// BPE merging is quadratic in the length of a run without spaces, so text is encoded
/// in bounded pieces: a hostile body cannot stall a worker.
const PIECE_BYTES: usize = 2048;

pub fn count_text(text: &str) -> u64 {
    let mut total = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(PIECE_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        total += encoder().encode_ordinary(&rest[..end]).len() as u64;
        rest = &rest[end..];
    }
    total
}

/// Tokens of a Messages request's prompt: system, turns and tool definitions.
pub fn estimate_messages_input(req: &MessagesRequest) -> u64 {
    let mut total = 0;
    if let Some(system) = &req.system {
        total += count_text(&system.joined_text());
    }
    for msg in &req.messages {
        // Each turn costs a few framing tokens in every chat template.
        total += 4 + count_content(&msg.content);
    }
    for tool in req.tools.iter().flatten() {
        total += count_text(&tool.name);
        total += tool.description.as_deref().map(count_text).unwrap_or(0);
        total += tool
            .input_schema
            .as_ref()
            .map(|s| count_text(&s.to_string()))
            .unwrap_or(0);
    }
    total
}

fn count_content(content: &Content) -> u64 {
    match content {
        Content::Text(s) => count_text(s),
        Content::Blocks(blocks) => blocks
            .iter()
            .map(|b| match b {
                Block::Text { text } => count_text(text),
                Block::ToolUse { name, input, .. } => {
                    count_text(name) + count_text(&input.to_string())
                }
                Block::ToolResult { content, .. } => {
                    content.as_ref().map(count_content).unwrap_or(0)
                }
                // Providers bill an image at roughly this many tokens at typical sizes.
                Block::Image { .. } => 1_000,
                Block::Other => 0,
            })
            .sum(),
    }
}
