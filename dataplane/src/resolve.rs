//! Resolving a call's route: the model its body names (read without building the whole
//! document), the gateway's request limits, and the route table's answer.

use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::intelligence::system_prompt::SystemPrompt;
use crate::read::{null_as_false, token_count, Count};
use http::HeaderMap;
use serde::Deserialize;
use std::borrow::Cow;

/// The fields routing and admission need, read without building the whole document.
#[derive(Deserialize)]
pub struct ModelPeek<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// `null` is what OpenAI's own SDK sends for "not set".
    #[serde(default, deserialize_with = "null_as_false")]
    pub stream: bool,
    #[serde(default, deserialize_with = "token_count")]
    pub max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub stream_options: Option<StreamOptionsPeek>,
    #[serde(default)]
    pub messages: Option<Count>,
    #[serde(default)]
    pub temperature: Option<f64>,
    /// The gateway's own per-call switch for `model: "auto"`; never forwarded.
    #[serde(default)]
    pub smart_routing: Option<bool>,
    /// A skill asked for in the body (also `X-Gateway-Skill`); never forwarded.
    #[serde(borrow, default)]
    pub skill: Option<Cow<'a, str>>,
    /// `"provider": "local"`, as the users' documents route: like `X-Provider`, and not
    /// forwarded. Anything but a string (OpenRouter's provider preferences) is left as is.
    #[serde(borrow, default)]
    pub provider: Option<ProviderField<'a>>,
    /// Present in a Vertex caller's Messages body; Anthropic's own API refuses it.
    #[serde(default)]
    pub anthropic_version: Option<serde::de::IgnoredAny>,
}

/// A body's `provider` member: a provider's name, or something that is not ours.
pub enum ProviderField<'a> {
    Name(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for ProviderField<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Name(#[serde(borrow)] Cow<'a, str>),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Either::deserialize(d)? {
            Either::Name(name) => Self::Name(name),
            Either::Other(_) => Self::Other,
        })
    }
}

#[derive(Deserialize)]
pub struct StreamOptionsPeek {
    #[serde(default)]
    pub include_usage: bool,
}

impl ModelPeek<'_> {
    /// The larger of the two fields: an upstream may honour either.
    pub fn max_output_tokens(&self) -> Option<u64> {
        match (self.max_completion_tokens, self.max_tokens) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A request routed by the model its body names.
pub struct Routed {
    /// The model the caller named.
    pub model: String,
    pub resolved: crate::routing::Resolved,
    /// An OpenAI caller's stream asked for the final usage chunk itself.
    pub wants_usage_chunk: bool,
    pub temperature: Option<f64>,
    /// The output cap the caller asked for, if any.
    pub max_output_tokens: Option<u64>,
    /// The body rewritten for the provider (an `auto` call's chosen model, the gateway's
    /// own fields removed); `None` when it goes as it came.
    pub provider_body: Option<bytes::Bytes>,
    /// The body names an `anthropic_version` (a Vertex caller's), which only Vertex takes.
    pub anthropic_version: bool,
    /// The token reduction in force for this call: the route's, or the gateway's.
    pub token_reduction: ai_gateway_snapshot::TokenReduction,
    /// The tier `auto` chose, when a cascade may start from it (no provider was forced).
    pub cascade_from: Option<crate::intelligence::auto::AutoTier>,
}

impl Routed {
    /// A call the gateway itself sends on to `model` (a cascade's next tier).
    pub fn to(model: String, resolved: crate::routing::Resolved) -> Self {
        Self {
            model,
            resolved,
            wants_usage_chunk: false,
            temperature: None,
            max_output_tokens: None,
            provider_body: None,
            anthropic_version: false,
            token_reduction: Default::default(),
            cascade_from: None,
        }
    }
}

pub fn peek_model(body: &[u8]) -> Result<ModelPeek<'_>, GatewayError> {
    crate::read::read_request(body)
}

/// Refuses conversations no real client sends: they would only tie up a provider to
/// fail there. (`max_tokens` is held to its limit at admission, on every surface.)
pub fn within_request_limits(
    settings: &ai_gateway_snapshot::GatewaySettings,
    peek: &ModelPeek<'_>,
) -> Result<(), GatewayError> {
    match &peek.messages {
        Some(Count(n)) => within_message_limit(settings, *n),
        None => Ok(()),
    }
}

/// The message-count limit, for surfaces that count their turns their own way
/// (Gemini's `contents`, Bedrock's `messages`).
pub fn within_message_limit(
    settings: &ai_gateway_snapshot::GatewaySettings,
    messages: usize,
) -> Result<(), GatewayError> {
    if messages > settings.max_messages as usize {
        return Err(GatewayError::InvalidRequest(format!(
            "messages: {messages} messages exceed this gateway's limit of {}",
            settings.max_messages
        )));
    }
    Ok(())
}

pub fn required_model<'a>(peek: &'a ModelPeek<'_>) -> Result<&'a str, GatewayError> {
    let model = peek
        .model
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| GatewayError::InvalidRequest("model: is required".into()))?;
    crate::routing::check_model_name(model)?;
    Ok(model)
}

/// Routes a request by the `model` in its JSON body: the caller's model name and
/// where it goes.
pub fn by_body(
    compiled: &CompiledConfig,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: &[u8],
    system_prompt: SystemPrompt,
) -> Result<Routed, GatewayError> {
    use crate::intelligence::{auto, provider_body, skills};
    let peek = peek_model(body)?;
    let settings = &compiled.snapshot.gateway;
    let named = peek.model.as_deref().filter(|m| !m.is_empty());
    // A call naming no model gets the gateway's default, when it has one.
    let defaulted = match (named, &settings.default_model) {
        (None, Some(default)) => Some(default.as_str()),
        _ => None,
    };
    let asked = match defaulted {
        Some(default) => default,
        None => required_model(&peek)?,
    };
    let skill = skills::requested(headers, peek.skill.as_deref())
        .map(|id| compiled.skills.find(id))
        .transpose()?;
    let auto = auto::choose(
        &compiled.snapshot.auto_routing,
        asked,
        headers,
        peek.smart_routing,
        skill,
        body,
    );
    // A provider sees the chosen model and the skill's prompt, never the gateway's own
    // fields.
    let body_provider = match &peek.provider {
        Some(ProviderField::Name(name)) => Some(name.as_ref()),
        _ => None,
    };
    let chosen_model = auto.as_ref().map(|c| c.model.as_str()).or(defaulted);
    let rewritten = chosen_model.is_some()
        || skill.is_some()
        || body_provider.is_some()
        || peek.smart_routing.is_some()
        || peek.skill.is_some();
    let provider_body = match rewritten {
        true => Some(provider_body(
            body,
            chosen_model,
            skill.map(|s| (s, system_prompt)),
            body_provider.is_some(),
        )?),
        false => None,
    };
    let forced = forced_provider(headers).or(body_provider);
    let model = auto
        .as_ref()
        .map_or(asked, |c| c.model.as_str())
        .to_string();
    let cascade_from = auto.as_ref().filter(|_| forced.is_none()).map(|c| c.tier);
    if let Some(chosen) = auto {
        ctx.auto_routed(chosen.tier.as_str(), chosen.reason);
    }
    within_request_limits(&compiled.snapshot.gateway, &peek)?;
    let resolved = match (
        compiled.routes.resolve(&model, forced),
        family_alias(&model),
    ) {
        (Err(GatewayError::UnknownModel { .. }), Some(full)) => {
            compiled.routes.resolve(full, forced)?
        }
        (resolved, _) => resolved?,
    };
    if resolved.provider.kind == ai_gateway_snapshot::ProviderKind::Ollama {
        within_local_models(settings, &resolved.upstream_model)?;
    }
    ctx.routed(&resolved.provider.name, &resolved.upstream_model);
    ctx.asks_for(model.clone(), peek.stream);
    let resolved_reduction = resolved
        .token_reduction
        .unwrap_or(compiled.snapshot.token_reduction);
    Ok(Routed {
        model,
        resolved,
        wants_usage_chunk: peek
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage),
        temperature: peek.temperature,
        max_output_tokens: peek.max_output_tokens(),
        provider_body,
        anthropic_version: peek.anthropic_version.is_some(),
        token_reduction: resolved_reduction,
        cascade_from,
    })
}

/// A local model must be on the gateway's list, when it keeps one.
fn within_local_models(
    settings: &ai_gateway_snapshot::GatewaySettings,
    model: &str,
) -> Result<(), GatewayError> {
    let allowed = settings.local_models.is_empty()
        || settings
            .local_models
            .iter()
            .any(|m| m == model || glob::Pattern::new(m).is_ok_and(|p| p.matches(model)));
    if allowed {
        return Ok(());
    }
    Err(GatewayError::InvalidRequest(format!(
        "model: `{model}` is not on this gateway's list of local models ({})",
        settings.local_models.join(", ")
    )))
}

/// The short names the users' documents use for Claude's families, when no route
/// claims them itself.
fn family_alias(model: &str) -> Option<&'static str> {
    match model {
        "sonnet" => Some("claude-sonnet-4-5"),
        "opus" => Some("claude-opus-4-5"),
        "haiku" => Some("claude-haiku-4-5"),
        _ => None,
    }
}

pub fn forced_provider(headers: &HeaderMap) -> Option<&str> {
    const X_PROVIDER: http::HeaderName = http::HeaderName::from_static("x-provider");
    headers
        .get(X_PROVIDER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}
