//! Skills: curated prompts a caller asks for with `X-Gateway-Skill: <id>` (or a `skill`
//! body field, which never reaches a provider). The skill's prompt goes into the
//! request's system prompt, in whichever API the caller speaks; a skill may also decide
//! the tier of a `model: "auto"` call.

use crate::error::GatewayError;
use http::HeaderMap;
use serde::Serialize;
use serde_json::{json, Map, Value};

const SKILL_HEADER: http::HeaderName = http::HeaderName::from_static("x-gateway-skill");

/// Claude Code's billing attribution travels as the first system block; a skill goes
/// after it, never before or into it.
const ATTRIBUTION_PREFIX: &str = "x-anthropic-billing-header";

/// One skill: its id, what it is for, its prompt, and the tier it asks for.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Skill {
    pub id: &'static str,
    pub purpose: &'static str,
    #[serde(skip)]
    pub prompt: &'static str,
    /// `complex` or `simple` for a `model: "auto"` call; `None` lets the classifier decide.
    pub tier: Option<&'static str>,
}

/// The skills the users' documents list, with prompts written for this gateway.
pub const BUILT_IN: [Skill; 8] = [
    Skill {
        id: "brainstorming",
        purpose: "structured feature planning, before writing new code",
        prompt: "Before proposing any code, work through the request in order: \
            1. UNDERSTAND: ask the clarifying questions whose answers would change the design. \
            2. REQUIREMENTS: list the functional and non-functional requirements. \
            3. CONSTRAINTS: name dependencies, limits and what must not change. \
            4. DESIGN: propose two or three approaches with their costs. \
            5. DECISION: recommend one and say why. \
            6. SPEC: end with a short specification someone could implement.",
        tier: None,
    },
    Skill {
        id: "systematic-debugging",
        purpose: "methodical bug analysis, when stuck on an issue",
        prompt: "Debug methodically: restate the observed and the expected behaviour; list \
            hypotheses ranked by likelihood; for each, name the cheapest observation that \
            would confirm or rule it out; reason from the evidence given, not from guesses; \
            propose the smallest fix for the confirmed cause and a test that would have \
            caught it.",
        tier: None,
    },
    Skill {
        id: "code-review",
        purpose: "a thorough review checklist, before committing",
        prompt: "Review the change as a careful senior engineer: correctness and edge cases \
            first, then error handling, concurrency, security, performance, naming and \
            tests. Quote the lines you comment on, say why each matters, and separate \
            must-fix from nice-to-have.",
        tier: None,
    },
    Skill {
        id: "git-pushing",
        purpose: "a safe commit workflow, when ready to push",
        prompt: "Guide a safe push: check what is staged and what is not, that tests and \
            linters pass, that no secret or generated file is included; write a commit \
            message whose subject says what changed and whose body says why; never \
            suggest force-pushing a shared branch.",
        tier: Some("simple"),
    },
    Skill {
        id: "concise-planning",
        purpose: "breaking down large tasks",
        prompt: "Break the task into small, ordered steps, each independently testable, \
            each a sentence or two; mark dependencies between steps and the riskiest one; \
            no code unless asked.",
        tier: None,
    },
    Skill {
        id: "architecture-review",
        purpose: "system design analysis, for architecture decisions",
        prompt: "Analyse the design: its components and their responsibilities, data flow, \
            failure modes, scaling limits, consistency and security boundaries. Weigh the \
            alternatives with their trade-offs, and state the decision you would make and \
            what would change your mind.",
        tier: Some("complex"),
    },
    Skill {
        id: "quick-fix",
        purpose: "minimal changes for typos and small bugs",
        prompt: "Make the smallest change that fixes the problem. Answer with the edit \
            alone (a unified diff when code is involved) and one sentence of explanation; \
            do not refactor or reformat anything else.",
        tier: Some("simple"),
    },
    Skill {
        id: "security-audit",
        purpose: "a vulnerability scan, for security concerns",
        prompt: "Audit for vulnerabilities: injection, authentication and authorisation \
            flaws, secrets in code, unsafe deserialisation, path traversal, SSRF, \
            dependency risks and missing input bounds. For each finding give its severity, \
            the exact location, how it could be exploited, and the fix.",
        tier: Some("complex"),
    },
];

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

/// The skill a call asks for, by header or by its body's `skill` field.
pub fn requested<'a>(headers: &'a HeaderMap, body_skill: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(SKILL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .or(body_skill)
}

/// The skill named `id`, or a 400 that names the ones there are.
pub fn find(id: &str) -> Result<&'static Skill, GatewayError> {
    BUILT_IN.iter().find(|s| s.id == id).ok_or_else(|| {
        let known: Vec<&str> = BUILT_IN.iter().map(|s| s.id).collect();
        GatewayError::InvalidRequest(format!("unknown skill `{id}`; known: {}", known.join(", ")))
    })
}

/// `doc` with the skill's prompt in its system prompt and its `skill` field gone.
pub fn apply(doc: &mut Map<String, Value>, skill: &Skill, place: SystemPrompt) {
    doc.remove("skill");
    let prompt = skill.prompt;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(body: Value, place: SystemPrompt) -> Value {
        let Value::Object(mut doc) = body else {
            panic!("an object")
        };
        apply(&mut doc, find("quick-fix").expect("built in"), place);
        Value::Object(doc)
    }

    #[test]
    fn the_prompt_lands_in_each_apis_system_prompt_and_the_field_goes() {
        let prompt = find("quick-fix").expect("built in").prompt;
        let out = applied(
            json!({"skill": "quick-fix", "messages": [{"role": "user", "content": "x"}]}),
            SystemPrompt::OpenAiMessages,
        );
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": prompt})
        );
        assert!(out.get("skill").is_none());

        let out = applied(json!({"system": "be brief"}), SystemPrompt::AnthropicSystem);
        assert_eq!(out["system"][0]["text"], prompt);
        assert_eq!(out["system"][1]["text"], "be brief");

        let out = applied(
            json!({"system": [{"text": "s"}]}),
            SystemPrompt::ConverseSystem,
        );
        assert_eq!(out["system"][0]["text"], prompt);

        let out = applied(json!({"contents": []}), SystemPrompt::GeminiInstruction);
        assert_eq!(out["systemInstruction"]["parts"][0]["text"], prompt);
    }

    #[test]
    fn claude_codes_attribution_block_stays_first_and_untouched() {
        let attribution =
            json!({"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"});
        let out = applied(
            json!({"system": [attribution.clone(), {"type": "text", "text": "You are Claude Code."}]}),
            SystemPrompt::AnthropicSystem,
        );
        assert_eq!(out["system"][0], attribution);
        assert_eq!(
            out["system"][1]["text"],
            find("quick-fix").expect("built in").prompt
        );
        assert_eq!(out["system"][2]["text"], "You are Claude Code.");
    }

    #[test]
    fn an_unknown_skill_is_refused_naming_the_known_ones() {
        let message = find("mind-reading").expect_err("unknown").to_string();
        assert!(message.contains("brainstorming") && message.contains("security-audit"));
    }
}
