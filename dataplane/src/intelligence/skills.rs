//! Skills: curated prompts a caller asks for with `X-Gateway-Skill: <id>` (or a `skill`
//! body field, which never reaches a provider). The skill's prompt goes into the
//! request's system prompt, in whichever API the caller speaks; a skill may also decide
//! the tier of a `model: "auto"` call.

use super::system_prompt::{self, SystemPrompt};
use crate::error::GatewayError;
use ai_gateway_snapshot::{SkillConfig, SkillTier};
use http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

const SKILL_HEADER: http::HeaderName = http::HeaderName::from_static("x-gateway-skill");

/// One skill: its id, what it is for, its prompt, and the tier it asks for.
#[derive(Debug, Clone, Serialize)]
pub struct Skill {
    pub id: Cow<'static, str>,
    pub purpose: Cow<'static, str>,
    #[serde(skip)]
    pub prompt: Cow<'static, str>,
    /// The tier of a `model: "auto"` call; `None` lets the classifier decide.
    pub tier: Option<SkillTier>,
}

/// The skills the users' documents list, with prompts written for this gateway.
pub const BUILT_IN: [Skill; 8] = [
    Skill {
        id: Cow::Borrowed("brainstorming"),
        purpose: Cow::Borrowed("structured feature planning, before writing new code"),
        prompt: Cow::Borrowed(
            "Before proposing any code, work through the request in order: \
            1. UNDERSTAND: ask the clarifying questions whose answers would change the design. \
            2. REQUIREMENTS: list the functional and non-functional requirements. \
            3. CONSTRAINTS: name dependencies, limits and what must not change. \
            4. DESIGN: propose two or three approaches with their costs. \
            5. DECISION: recommend one and say why. \
            6. SPEC: end with a short specification someone could implement.",
        ),
        tier: None,
    },
    Skill {
        id: Cow::Borrowed("systematic-debugging"),
        purpose: Cow::Borrowed("methodical bug analysis, when stuck on an issue"),
        prompt: Cow::Borrowed(
            "Debug methodically: restate the observed and the expected behaviour; list \
            hypotheses ranked by likelihood; for each, name the cheapest observation that \
            would confirm or rule it out; reason from the evidence given, not from guesses; \
            propose the smallest fix for the confirmed cause and a test that would have \
            caught it.",
        ),
        tier: None,
    },
    Skill {
        id: Cow::Borrowed("code-review"),
        purpose: Cow::Borrowed("a thorough review checklist, before committing"),
        prompt: Cow::Borrowed(
            "Review the change as a careful senior engineer: correctness and edge cases \
            first, then error handling, concurrency, security, performance, naming and \
            tests. Quote the lines you comment on, say why each matters, and separate \
            must-fix from nice-to-have.",
        ),
        tier: None,
    },
    Skill {
        id: Cow::Borrowed("git-pushing"),
        purpose: Cow::Borrowed("a safe commit workflow, when ready to push"),
        prompt: Cow::Borrowed(
            "Guide a safe push: check what is staged and what is not, that tests and \
            linters pass, that no secret or generated file is included; write a commit \
            message whose subject says what changed and whose body says why; never \
            suggest force-pushing a shared branch.",
        ),
        tier: Some(SkillTier::Simple),
    },
    Skill {
        id: Cow::Borrowed("concise-planning"),
        purpose: Cow::Borrowed("breaking down large tasks"),
        prompt: Cow::Borrowed(
            "Break the task into small, ordered steps, each independently testable, \
            each a sentence or two; mark dependencies between steps and the riskiest one; \
            no code unless asked.",
        ),
        tier: None,
    },
    Skill {
        id: Cow::Borrowed("architecture-review"),
        purpose: Cow::Borrowed("system design analysis, for architecture decisions"),
        prompt: Cow::Borrowed(
            "Analyse the design: its components and their responsibilities, data flow, \
            failure modes, scaling limits, consistency and security boundaries. Weigh the \
            alternatives with their trade-offs, and state the decision you would make and \
            what would change your mind.",
        ),
        tier: Some(SkillTier::Complex),
    },
    Skill {
        id: Cow::Borrowed("quick-fix"),
        purpose: Cow::Borrowed("minimal changes for typos and small bugs"),
        prompt: Cow::Borrowed(
            "Make the smallest change that fixes the problem. Answer with the edit \
            alone (a unified diff when code is involved) and one sentence of explanation; \
            do not refactor or reformat anything else.",
        ),
        tier: Some(SkillTier::Local),
    },
    Skill {
        id: Cow::Borrowed("security-audit"),
        purpose: Cow::Borrowed("a vulnerability scan, for security concerns"),
        prompt: Cow::Borrowed(
            "Audit for vulnerabilities: injection, authentication and authorisation \
            flaws, secrets in code, unsafe deserialisation, path traversal, SSRF, \
            dependency risks and missing input bounds. For each finding give its severity, \
            the exact location, how it could be exploited, and the fix.",
        ),
        tier: Some(SkillTier::Complex),
    },
];

/// A native API's body with the skill the caller's `X-Gateway-Skill` header asks for;
/// `None` when it asks for none.
pub fn native_body(
    catalogue: &Catalogue,
    headers: &HeaderMap,
    body: &[u8],
    place: SystemPrompt,
) -> Result<Option<bytes::Bytes>, GatewayError> {
    let Some(id) = requested(headers, None) else {
        return Ok(None);
    };
    let skill = catalogue.find(id)?;
    super::provider_body(body, None, Some((skill, place)), false).map(Some)
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

/// The skills a gateway offers: the built-in ones and its own from config (an id of
/// its own replaces the built-in one).
#[derive(Debug, Clone)]
pub struct Catalogue(Vec<Skill>);

impl Catalogue {
    pub fn new(configured: &BTreeMap<String, SkillConfig>) -> Self {
        let mut skills: Vec<Skill> = BUILT_IN
            .iter()
            .filter(|s| !configured.contains_key(s.id.as_ref()))
            .cloned()
            .collect();
        skills.extend(configured.iter().map(|(id, c)| Skill {
            id: Cow::Owned(id.clone()),
            purpose: Cow::Owned(c.purpose.clone()),
            prompt: Cow::Owned(c.prompt.clone()),
            tier: c.tier,
        }));
        Self(skills)
    }

    pub fn all(&self) -> &[Skill] {
        &self.0
    }

    /// The skill named `id`, or a 400 that names the ones there are.
    pub fn find(&self, id: &str) -> Result<&Skill, GatewayError> {
        self.0.iter().find(|s| s.id == id).ok_or_else(|| {
            let known: Vec<&str> = self.0.iter().map(|s| s.id.as_ref()).collect();
            GatewayError::InvalidRequest(format!(
                "unknown skill `{id}`; known: {}",
                known.join(", ")
            ))
        })
    }
}

/// `doc` with the skill's prompt in its system prompt and its `skill` field gone.
pub fn apply(doc: &mut Map<String, Value>, skill: &Skill, place: SystemPrompt) {
    doc.remove("skill");
    system_prompt::insert(doc, skill.prompt.as_ref(), place);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applied(body: Value, place: SystemPrompt) -> Value {
        let Value::Object(mut doc) = body else {
            panic!("an object")
        };
        let catalogue = Catalogue::new(&BTreeMap::new());
        apply(
            &mut doc,
            catalogue.find("quick-fix").expect("built in"),
            place,
        );
        Value::Object(doc)
    }

    #[test]
    fn the_prompt_lands_in_each_apis_system_prompt_and_the_field_goes() {
        let catalogue = Catalogue::new(&BTreeMap::new());
        let prompt = catalogue
            .find("quick-fix")
            .expect("built in")
            .prompt
            .to_string();
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
        assert_eq!(out["system"][0]["text"], prompt.as_str());
        assert_eq!(out["system"][1]["text"], "be brief");

        let out = applied(
            json!({"system": [{"text": "s"}]}),
            SystemPrompt::ConverseSystem,
        );
        assert_eq!(out["system"][0]["text"], prompt.as_str());

        let out = applied(json!({"contents": []}), SystemPrompt::GeminiInstruction);
        assert_eq!(
            out["systemInstruction"]["parts"][0]["text"],
            prompt.as_str()
        );
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
        let catalogue = Catalogue::new(&BTreeMap::new());
        assert_eq!(
            out["system"][1]["text"],
            catalogue
                .find("quick-fix")
                .expect("built in")
                .prompt
                .as_ref()
        );
        assert_eq!(out["system"][2]["text"], "You are Claude Code.");
    }

    #[test]
    fn an_unknown_skill_is_refused_naming_the_known_ones() {
        let catalogue = Catalogue::new(&BTreeMap::new());
        let message = catalogue
            .find("mind-reading")
            .expect_err("unknown")
            .to_string();
        assert!(message.contains("brainstorming") && message.contains("security-audit"));
    }

    #[test]
    fn a_gateways_own_skills_join_and_may_replace_the_built_in_ones() {
        let configured = BTreeMap::from([
            (
                "quick-fix".to_string(),
                SkillConfig {
                    prompt: "Our house style for fixes.".into(),
                    purpose: "ours".into(),
                    tier: None,
                },
            ),
            (
                "sql-review".to_string(),
                SkillConfig {
                    prompt: "Review the SQL.".into(),
                    purpose: "queries".into(),
                    tier: Some(SkillTier::Complex),
                },
            ),
        ]);
        let catalogue = Catalogue::new(&configured);
        assert_eq!(catalogue.all().len(), 9);
        assert_eq!(
            catalogue.find("quick-fix").expect("ours").prompt,
            "Our house style for fixes."
        );
        assert_eq!(
            catalogue.find("sql-review").expect("ours").tier,
            Some(SkillTier::Complex)
        );
    }
}
