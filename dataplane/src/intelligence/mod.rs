//! Routing intelligence: choosing the model for the task (`auto`, by `classify`) and
//! shaping the request: a curated `skills` prompt, and `reduce`d input tokens with
//! `prompt_cache` breakpoints.

pub mod auto;
pub mod classify;
pub mod judge;
pub mod prompt_cache;
pub mod reduce;
pub mod skills;
pub mod system_prompt;

use crate::error::GatewayError;
use ai_gateway_snapshot::TokenReduction;
use bytes::Bytes;
use serde_json::{Map, Value};
use skills::Skill;
use system_prompt::SystemPrompt;

/// The body a provider may see after the gateway's own choices: the model it chose,
/// the skill's prompt in the system prompt, and none of the gateway's own fields
/// (`smart_routing`, `skill`, and `provider` when it named one).
pub fn provider_body(
    body: &[u8],
    model: Option<&str>,
    skill: Option<(&Skill, SystemPrompt)>,
    named_provider: bool,
) -> Result<Bytes, GatewayError> {
    let mut doc: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
    doc.remove("smart_routing");
    doc.remove("skill");
    if named_provider {
        doc.remove("provider");
    }
    if let Some(model) = model {
        doc.insert("model".into(), Value::from(model));
    }
    if let Some((skill, place)) = skill {
        skills::apply(&mut doc, skill, place);
    }
    Ok(Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()))
}

/// The body with the token reduction `settings` asks for, and what it saved; `None`
/// when nothing was rewritten.
pub fn reduced_body(
    body: &[u8],
    settings: &TokenReduction,
    place: SystemPrompt,
) -> Result<Option<(Bytes, reduce::Reduction)>, GatewayError> {
    if !(settings.dedupe_files || settings.strip_boilerplate || settings.diff_first) {
        return Ok(None);
    }
    let mut doc: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
    let done = reduce::reduce(&mut doc, settings, place);
    if done == reduce::Reduction::default() && !settings.diff_first {
        return Ok(None);
    }
    Ok(Some((
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
        done,
    )))
}
