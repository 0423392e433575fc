//! Token reduction: rewrites of the caller's conversation that cut the input a provider
//! bills, opt-in (`token_reduction`, per gateway or route).
//!
//! Every rewrite is **prefix-stable**: what a message becomes depends only on the
//! messages before it and itself, never on what follows, and the instruction added to
//! the system prompt is the same every turn. So turn N+1's rewritten conversation
//! begins with exactly turn N's, and a provider's prompt cache keeps hitting.
//!
//! - `dedupe_files`: a tool result, or a fenced block in a user message, that repeats
//!   one seen earlier in the conversation byte for byte is replaced by a short reference
//!   to its first appearance, which the model still has in front of it.
//! - `strip_boilerplate`: a prose paragraph of a user message that an earlier system or
//!   user message already carries (the instructions Continue and Cursor repeat each turn)
//!   is dropped; the first copy stays.
//! - `diff_first`: the system prompt asks for edits as unified diffs.
//!
//! Assistant turns are never touched, nor anything in the system prompt but the added
//! instruction.

use super::system_prompt::{self, SystemPrompt};
use ai_gateway_snapshot::TokenReduction;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Smaller repeats are not worth a reference (which costs a few dozen bytes itself).
const MIN_FILE_BYTES: usize = 512;

/// Shorter paragraphs ("Thanks!", "Go on.") repeat by chance, not as boilerplate.
const MIN_BOILERPLATE_CHARS: usize = 64;

/// The instruction `diff_first` adds; the same bytes on every call, so caches hold.
pub const DIFF_FIRST: &str = "When you change existing code, answer with a unified diff \
    (```diff, with ---/+++ file headers and @@ hunks) of only the lines that change, \
    never the whole file again, unless asked for the whole file.";

/// What a reduction did to one request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reduction {
    /// Repeated files replaced by a reference.
    pub files: u32,
    /// Repeated boilerplate paragraphs dropped.
    pub paragraphs: u32,
    /// Bytes the conversation lost; the diff-first instruction is not counted against it.
    pub saved_bytes: u64,
}

/// Rewrites `doc`, a chat (`OpenAiMessages`) or Messages (`AnthropicSystem`) request, as
/// `settings` asks. Other APIs are left alone.
pub fn reduce(
    doc: &mut Map<String, Value>,
    settings: &TokenReduction,
    place: SystemPrompt,
) -> Reduction {
    let mut pass = Pass {
        settings,
        files: HashMap::new(),
        paragraphs: HashSet::new(),
        done: Reduction::default(),
    };
    match place {
        SystemPrompt::OpenAiMessages => pass.chat(doc),
        SystemPrompt::AnthropicSystem => pass.messages(doc),
        SystemPrompt::ConverseSystem | SystemPrompt::GeminiInstruction => return pass.done,
    }
    if settings.diff_first {
        system_prompt::insert(doc, DIFF_FIRST, place);
    }
    pass.done
}

/// Where a file was first seen, as its reference names it.
#[derive(Clone)]
enum FirstSeen {
    /// The result of this tool call.
    ToolCall(String),
    /// A fenced block in an earlier (or the same) user message.
    Block,
}

/// One walk over a conversation, in order.
struct Pass<'s> {
    settings: &'s TokenReduction,
    /// Every file seen so far, by its exact content.
    files: HashMap<String, FirstSeen>,
    /// Every prose paragraph seen so far in system and user messages, trimmed.
    paragraphs: HashSet<String>,
    done: Reduction,
}

impl Pass<'_> {
    /// OpenAI chat: `system`/`developer` messages are read, `user` text rewritten,
    /// `tool` results deduplicated.
    fn chat(&mut self, doc: &mut Map<String, Value>) {
        let Some(Value::Array(messages)) = doc.get_mut("messages") else {
            return;
        };
        for message in messages.iter_mut() {
            let Value::Object(message) = message else {
                continue;
            };
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            let tool_call = match role {
                "system" | "developer" | "user" => None,
                "tool" => Some(
                    message
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                _ => continue,
            };
            let system = role != "user" && tool_call.is_none();
            let content = message.get_mut("content");
            match tool_call {
                Some(call) => for_each_text(content, |t| self.tool_output(t, &call)),
                None if system => for_each_text(content, |t| self.learn_paragraphs(t)),
                None => for_each_text(content, |t| self.user_text(t)),
            }
        }
    }

    /// Anthropic Messages: `system` is read; a user turn's text is rewritten and its
    /// `tool_result` blocks deduplicated.
    fn messages(&mut self, doc: &mut Map<String, Value>) {
        for_each_text(doc.get_mut("system"), |t| self.learn_paragraphs(t));
        let Some(Value::Array(messages)) = doc.get_mut("messages") else {
            return;
        };
        for message in messages.iter_mut() {
            if message.get("role").and_then(Value::as_str) != Some("user") {
                continue;
            }
            match message.get_mut("content") {
                Some(Value::String(text)) => self.user_text(text),
                Some(Value::Array(blocks)) => {
                    for block in blocks.iter_mut() {
                        match block.get("type").and_then(Value::as_str) {
                            Some("text") => {
                                if let Some(Value::String(text)) = block.get_mut("text") {
                                    self.user_text(text);
                                }
                            }
                            Some("tool_result") => {
                                let call = block
                                    .get("tool_use_id")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string();
                                for_each_text(block.get_mut("content"), |t| {
                                    self.tool_output(t, &call)
                                });
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn learn_paragraphs(&mut self, text: &str) {
        if !self.settings.strip_boilerplate {
            return;
        }
        for segment in segments(text) {
            if let Segment::Prose(prose) = segment {
                for paragraph in prose.split("\n\n").map(str::trim) {
                    if paragraph.chars().count() >= MIN_BOILERPLATE_CHARS {
                        self.paragraphs.insert(paragraph.to_string());
                    }
                }
            }
        }
    }

    /// A tool's whole output is one file: replaced when it repeats an earlier one.
    fn tool_output(&mut self, text: &mut String, call: &str) {
        if !self.settings.dedupe_files || text.len() < MIN_FILE_BYTES {
            return;
        }
        match self.files.get(text.as_str()) {
            Some(first) => {
                let reference = match first {
                    FirstSeen::ToolCall(id) if !id.is_empty() => format!(
                        "[unchanged: identical to the result of tool call {id} earlier in \
                         this conversation]"
                    ),
                    _ => "[unchanged: identical to content shown earlier in this conversation]"
                        .to_string(),
                };
                self.replaced_file(text, reference);
            }
            None => {
                self.files
                    .insert(text.clone(), FirstSeen::ToolCall(call.to_string()));
            }
        }
    }

    /// A user message: repeated fenced files become references, repeated boilerplate
    /// paragraphs go.
    fn user_text(&mut self, text: &mut String) {
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        let (mut files, mut paragraphs) = (0, 0);
        for segment in segments(text) {
            match segment {
                Segment::Fence { open, body, close } => {
                    let repeat = self.settings.dedupe_files
                        && body.len() >= MIN_FILE_BYTES
                        && self.files.contains_key(body);
                    out.push_str(open);
                    if repeat {
                        out.push_str(
                            "[unchanged: identical to this block earlier in this conversation]\n",
                        );
                        files += 1;
                        changed = true;
                    } else {
                        if self.settings.dedupe_files && body.len() >= MIN_FILE_BYTES {
                            self.files.insert(body.to_string(), FirstSeen::Block);
                        }
                        out.push_str(body);
                    }
                    out.push_str(close);
                }
                Segment::Prose(prose) => {
                    let (kept, dropped) = self.prose(prose);
                    paragraphs += dropped;
                    changed |= dropped > 0;
                    out.push_str(&kept);
                }
            }
        }
        // A message left with nothing to say keeps its words: an empty turn is refused.
        if changed && !out.trim().is_empty() {
            self.done.files += files;
            self.done.paragraphs += paragraphs;
            self.done.saved_bytes += text.len().saturating_sub(out.len()) as u64;
            *text = out;
        }
    }

    /// The prose without the paragraphs seen before, and how many went.
    fn prose(&mut self, prose: &str) -> (String, u32) {
        if !self.settings.strip_boilerplate {
            return (prose.to_string(), 0);
        }
        let mut dropped = 0;
        let mut kept: Vec<&str> = Vec::new();
        for paragraph in prose.split("\n\n") {
            let key = paragraph.trim();
            if key.chars().count() < MIN_BOILERPLATE_CHARS {
                kept.push(paragraph);
            } else if self.paragraphs.contains(key) {
                dropped += 1;
            } else {
                self.paragraphs.insert(key.to_string());
                kept.push(paragraph);
            }
        }
        (kept.join("\n\n"), dropped)
    }

    fn replaced_file(&mut self, text: &mut String, reference: String) {
        self.done.files += 1;
        self.done.saved_bytes += text.len().saturating_sub(reference.len()) as u64;
        *text = reference;
    }
}

/// Calls `f` on each text of a content value: a string, or the `text` of each text part
/// or block in an array.
fn for_each_text(content: Option<&mut Value>, mut f: impl FnMut(&mut String)) {
    match content {
        Some(Value::String(text)) => f(text),
        Some(Value::Array(parts)) => {
            for part in parts.iter_mut() {
                if part.get("type").and_then(Value::as_str) != Some("text") {
                    continue;
                }
                if let Some(Value::String(text)) = part.get_mut("text") {
                    f(text);
                }
            }
        }
        _ => {}
    }
}

/// A user text as prose and fenced blocks, every byte in exactly one segment.
#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Prose(&'a str),
    /// ```` ```lang path ```` line, the block's lines, and the closing fence line
    /// (empty when the text ends inside the block).
    Fence {
        open: &'a str,
        body: &'a str,
        close: &'a str,
    },
}

fn is_fence(line: &str) -> bool {
    line.trim_start_matches(' ').starts_with("```")
}

fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut prose_start = 0;
    let mut at = 0;
    while at < text.len() {
        let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n + 1);
        if !is_fence(&text[at..line_end]) {
            at = line_end;
            continue;
        }
        if prose_start < at {
            out.push(Segment::Prose(&text[prose_start..at]));
        }
        let body_start = line_end;
        let mut cursor = body_start;
        let mut close = None;
        while cursor < text.len() {
            let end = text[cursor..]
                .find('\n')
                .map_or(text.len(), |n| cursor + n + 1);
            if is_fence(&text[cursor..end]) {
                close = Some((cursor, end));
                break;
            }
            cursor = end;
        }
        let (body_end, after) = close.unwrap_or((text.len(), text.len()));
        out.push(Segment::Fence {
            open: &text[at..body_start],
            body: &text[body_start..body_end],
            close: &text[body_end..after],
        });
        at = after;
        prose_start = after;
    }
    if prose_start < text.len() {
        out.push(Segment::Prose(&text[prose_start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_on() -> TokenReduction {
        TokenReduction {
            dedupe_files: true,
            strip_boilerplate: true,
            diff_first: false,
            cache_breakpoints: false,
            messages_api: true,
        }
    }

    fn file(name: &str) -> String {
        (0..40)
            .map(|i| format!("fn {name}_{i}() -> u32 {{ {i} }}\n"))
            .collect()
    }

    fn reduced(body: Value, place: SystemPrompt) -> (Value, Reduction) {
        let Value::Object(mut doc) = body else {
            panic!("an object")
        };
        let done = reduce(&mut doc, &all_on(), place);
        (Value::Object(doc), done)
    }

    #[test]
    fn segments_cover_every_byte() {
        for text in [
            "plain",
            "a\n```rust x.rs\nfn a() {}\n```\nb",
            "```\nunclosed",
            "\n\n```\n```\n",
        ] {
            let joined: String = segments(text)
                .iter()
                .map(|s| match s {
                    Segment::Prose(p) => p.to_string(),
                    Segment::Fence { open, body, close } => format!("{open}{body}{close}"),
                })
                .collect();
            assert_eq!(joined, text);
        }
    }

    #[test]
    fn a_repeated_tool_result_becomes_a_reference_to_the_first_call() {
        let (a, b) = (file("a"), file("b"));
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "fix it"},
            {"role": "tool", "tool_call_id": "call_1", "content": a},
            {"role": "tool", "tool_call_id": "call_2", "content": b},
            {"role": "assistant", "content": a},
            {"role": "tool", "tool_call_id": "call_3", "content": a},
        ]});
        let (out, done) = reduced(body, SystemPrompt::OpenAiMessages);
        assert_eq!(out["messages"][1]["content"], a.as_str());
        assert_eq!(out["messages"][2]["content"], b.as_str());
        // The model's own words are never rewritten.
        assert_eq!(out["messages"][3]["content"], a.as_str());
        let reference = out["messages"][4]["content"].as_str().expect("text");
        assert!(reference.contains("call_1"), "{reference}");
        assert_eq!(done.files, 1);
        assert_eq!(done.saved_bytes as usize, a.len() - reference.len());
    }

    #[test]
    fn repeated_fenced_files_and_boilerplate_leave_later_user_turns() {
        let rules = "When applying code changes, write only the changed lines with comments for the unchanged regions.";
        let code = file("open");
        let turn = |ask: &str| format!("{rules}\n\n```rust src/open.rs\n{code}```\n\n{ask}");
        let body = json!({"model": "m", "messages": [
            {"role": "system", "content": "You are a helpful assistant that always answers in English, briefly and precisely."},
            {"role": "user", "content": turn("What does open_3 return?")},
            {"role": "assistant", "content": "3"},
            {"role": "user", "content": [{"type": "text", "text": turn("And open_4?")}]},
        ]});
        let (out, done) = reduced(body, SystemPrompt::OpenAiMessages);
        assert_eq!(
            out["messages"][1]["content"],
            turn("What does open_3 return?")
        );
        let later = out["messages"][3]["content"][0]["text"]
            .as_str()
            .expect("text");
        assert!(!later.contains(rules), "{later}");
        assert!(
            later.starts_with("```rust src/open.rs\n[unchanged"),
            "{later}"
        );
        assert!(later.ends_with("And open_4?"), "{later}");
        assert_eq!((done.files, done.paragraphs), (1, 1));
    }

    #[test]
    fn anthropic_tool_results_are_deduplicated_and_the_attribution_block_kept_first() {
        let a = file("a");
        let body = json!({"model": "m",
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2"},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": a}]},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2",
                "content": [{"type": "text", "text": a}]}]},
        ]});
        let Value::Object(mut doc) = body else {
            panic!()
        };
        let settings = TokenReduction {
            diff_first: true,
            ..all_on()
        };
        let done = reduce(&mut doc, &settings, SystemPrompt::AnthropicSystem);
        let out = Value::Object(doc);
        assert_eq!(done.files, 1);
        let second = out["messages"][2]["content"][0]["content"][0]["text"]
            .as_str()
            .expect("text");
        assert!(second.contains("toolu_1"), "{second}");
        assert_eq!(
            out["system"][0]["text"],
            "x-anthropic-billing-header: cc_version=2"
        );
        assert_eq!(out["system"][1]["text"], DIFF_FIRST);
        assert_eq!(
            out["system"][2],
            json!({"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}})
        );
    }

    #[test]
    fn a_turn_whose_every_word_repeats_keeps_them() {
        let rules = "Always include the language and file name in the info string of code blocks.";
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": rules},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": rules},
        ]});
        let (out, done) = reduced(body, SystemPrompt::OpenAiMessages);
        assert_eq!(out["messages"][2]["content"], rules);
        assert_eq!(done, Reduction::default());
    }

    #[test]
    fn nothing_changes_when_everything_is_off() {
        let a = file("a");
        let body = json!({"model": "m", "messages": [
            {"role": "tool", "tool_call_id": "c1", "content": a},
            {"role": "tool", "tool_call_id": "c2", "content": a},
        ]});
        let Value::Object(mut doc) = body.clone() else {
            panic!()
        };
        let done = reduce(
            &mut doc,
            &TokenReduction::default(),
            SystemPrompt::OpenAiMessages,
        );
        assert_eq!(Value::Object(doc), body);
        assert_eq!(done, Reduction::default());
    }
}
