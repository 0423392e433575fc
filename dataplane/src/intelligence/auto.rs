//! `model: "auto"` (or `"smartroute"`): the request is scored by the classifier and sent
//! to its tier's model, which is then routed like any model a caller names. A caller
//! turns it off per call with `X-Gateway-Smart-Routing: 0` or `"smart_routing": false`
//! (its request then goes to the simple tier); the body field never reaches a provider.

use super::classify::{classify, Tier};
use super::skills::Skill;
use ai_gateway_snapshot::{AutoRouting, SkillTier};
use http::HeaderMap;

/// The model names that ask the gateway to choose.
const AUTO_MODELS: [&str; 2] = ["auto", "smartroute"];

const SMART_ROUTING: http::HeaderName = http::HeaderName::from_static("x-gateway-smart-routing");

/// The tiers an `auto` call can take, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoTier {
    /// The gateway's local model, when it has one: requests that look simple go there.
    Local,
    Simple,
    Complex,
}

impl AutoTier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Simple => "simple",
            Self::Complex => "complex",
        }
    }

    /// The tier a cascade escalates to when this one's answer fails.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Local => Some(Self::Simple),
            Self::Simple => Some(Self::Complex),
            Self::Complex => None,
        }
    }

    /// The tier's model in `settings`; the local tier falls back to the simple one.
    pub fn model(self, settings: &AutoRouting) -> &str {
        match (self, &settings.local) {
            (Self::Local, Some(local)) => local,
            (Self::Local | Self::Simple, _) => &settings.simple,
            (Self::Complex, _) => &settings.complex,
        }
    }
}

/// What the gateway chose for an `auto` call, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoChoice {
    pub model: String,
    pub tier: AutoTier,
    /// For `x-ai-gateway-route-reason` and the audit record: `complex: stack_trace, code`.
    pub reason: String,
}

/// The tier's model for a call naming `auto`; `None` for any other model, or when the
/// gateway's auto routing is off (the name is then routed, or refused, as it is).
pub fn choose(
    settings: &AutoRouting,
    asked: &str,
    headers: &HeaderMap,
    body_switch: Option<bool>,
    skill: Option<&Skill>,
    body: &[u8],
) -> Option<AutoChoice> {
    if !settings.enabled || !AUTO_MODELS.contains(&asked) {
        return None;
    }
    // A simple request goes to the local model first, when the gateway has one.
    let cheapest = match settings.local {
        Some(_) => AutoTier::Local,
        None => AutoTier::Simple,
    };
    let chosen = |tier: AutoTier, why: &str| AutoChoice {
        model: tier.model(settings).to_string(),
        tier,
        reason: format!("{}: {why}", tier.as_str()),
    };
    // `architecture-review` needs the deep tier, `quick-fix` not, whatever the prompt.
    if let Some((skill, tier)) = skill.and_then(|s| Some((s, s.tier?))) {
        let tier = match tier {
            SkillTier::Local => cheapest,
            SkillTier::Simple => AutoTier::Simple,
            SkillTier::Complex => AutoTier::Complex,
        };
        return Some(chosen(tier, &format!("skill {}", skill.id)));
    }
    let header_switch = headers
        .get(SMART_ROUTING)
        .and_then(|v| v.to_str().ok())
        .map(|v| !matches!(v.trim(), "0" | "false" | "off"));
    if header_switch.or(body_switch) == Some(false) {
        return Some(chosen(AutoTier::Simple, "smart_routing_off"));
    }
    let verdict = classify(body);
    let signals = match verdict.reasons.is_empty() {
        true => "no_signal".to_string(),
        false => verdict.reasons.join(", "),
    };
    let tier = match verdict.tier {
        Tier::Simple => cheapest,
        Tier::Complex => AutoTier::Complex,
    };
    Some(chosen(tier, &signals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> AutoRouting {
        AutoRouting::default()
    }

    #[test]
    fn only_auto_names_are_chosen_for_and_only_when_auto_routing_is_on() {
        let body =
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).to_string();
        let headers = HeaderMap::new();
        assert!(choose(&settings(), "gpt-4o", &headers, None, None, body.as_bytes()).is_none());
        let off = AutoRouting {
            enabled: false,
            ..settings()
        };
        assert!(choose(&off, "auto", &headers, None, None, body.as_bytes()).is_none());
        let chosen = choose(
            &settings(),
            "smartroute",
            &headers,
            None,
            None,
            body.as_bytes(),
        )
        .expect("chosen");
        assert!(
            chosen.reason.starts_with(chosen.tier.as_str()),
            "{chosen:?}"
        );
    }

    #[test]
    fn a_caller_turns_it_off_per_call_by_header_or_body_field() {
        let hard = json!({"model": "auto", "messages": [{"role": "user",
            "content": "Design the architecture for a multi-region, concurrency-safe payments ledger and explain the trade-offs of each consistency model in depth."}]})
        .to_string();
        let mut headers = HeaderMap::new();
        headers.insert(SMART_ROUTING, http::HeaderValue::from_static("0"));
        let chosen =
            choose(&settings(), "auto", &headers, None, None, hard.as_bytes()).expect("chosen");
        assert_eq!(chosen.model, "claude-sonnet-4-5");
        assert_eq!(chosen.reason, "simple: smart_routing_off");
        let chosen = choose(
            &settings(),
            "auto",
            &HeaderMap::new(),
            Some(false),
            None,
            hard.as_bytes(),
        )
        .expect("chosen");
        assert_eq!(chosen.tier, AutoTier::Simple);
    }

    #[test]
    fn the_provider_never_sees_the_gateways_own_fields() {
        let body = json!({"model": "auto", "smart_routing": true, "skill": "x", "provider": "local", "messages": []})
            .to_string();
        let out = super::super::provider_body(body.as_bytes(), Some("claude-opus-4-5"), None, true)
            .expect("rewrites");
        let out: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(out, json!({"model": "claude-opus-4-5", "messages": []}));
    }

    /// What `auto` chooses for "hi" under `settings`, with the built-in `skill`, if any.
    fn hi(settings: &AutoRouting, skill: Option<&str>) -> AutoChoice {
        let body =
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).to_string();
        let catalogue = super::super::skills::Catalogue::new(&Default::default());
        let skill = skill.map(|id| catalogue.find(id).expect("built in"));
        choose(
            settings,
            "auto",
            &HeaderMap::new(),
            None,
            skill,
            body.as_bytes(),
        )
        .expect("chosen")
    }

    #[test]
    fn a_skill_may_decide_the_tier() {
        let chosen = hi(&settings(), Some("security-audit"));
        assert_eq!(chosen.model, "claude-opus-4-5");
        assert_eq!(chosen.reason, "complex: skill security-audit");
    }

    #[test]
    fn a_local_tier_takes_simple_requests_and_quick_fixes_and_escalates_to_simple() {
        let local = AutoRouting {
            local: Some("local:qwen2.5-coder".into()),
            ..settings()
        };
        let chosen = hi(&local, None);
        assert_eq!(
            (chosen.model.as_str(), chosen.tier),
            ("local:qwen2.5-coder", AutoTier::Local)
        );
        assert_eq!(chosen.tier.next(), Some(AutoTier::Simple));
        assert_eq!(
            hi(&local, Some("quick-fix")).reason,
            "local: skill quick-fix"
        );
        // Without a local model, `quick-fix` is the simple tier's.
        assert_eq!(
            hi(&settings(), Some("quick-fix")).model,
            "claude-sonnet-4-5"
        );
    }
}
