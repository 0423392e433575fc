//! `/health`, `/v1/providers` and `/v1/<provider>/health`.

use crate::body::{json_response, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::upstream::breaker::CircuitState;
use crate::upstream::Upstream;
use ai_gateway_snapshot::ProviderKind;
use http::{Response, StatusCode};
use serde_json::json;

pub fn health(compiled: &CompiledConfig) -> Response<ResponseBody> {
    let active = compiled
        .providers
        .values()
        .filter(|p| p.inactive.is_none())
        .count();
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "config_version": compiled.version,
            "providers": {"configured": compiled.providers.len(), "active": active},
        }),
    )
}

/// What any caller may learn of a provider: never where it is (an internal address is
/// a target) or how it is reached.
pub fn providers(compiled: &CompiledConfig) -> Response<ResponseBody> {
    json_response(StatusCode::OK, &compiled.provider_list())
}

/// The surface names users know (`claude`, `bedrock` …) or a provider's own name.
pub fn provider_health(compiled: &CompiledConfig, name: &str) -> Option<Response<ResponseBody>> {
    let kind = match name {
        "claude" | "anthropic" => Some(ProviderKind::Anthropic),
        "bedrock" => Some(ProviderKind::Bedrock),
        "gemini" => Some(ProviderKind::Gemini),
        "openai" => Some(ProviderKind::Openai),
        "ollama" => Some(ProviderKind::Ollama),
        _ => None,
    };
    let matching: Vec<&std::sync::Arc<Upstream>> = match compiled.providers.get(name) {
        Some(p) => vec![p],
        None => compiled
            .providers
            .values()
            .filter(|p| Some(p.kind) == kind)
            .collect(),
    };
    if matching.is_empty() && kind.is_none() {
        return None;
    }
    let now = crate::upstream::breaker::now_ms();
    let healthy = matching
        .iter()
        .any(|p| p.inactive.is_none() && p.breaker.state(now) != CircuitState::Open);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Some(json_response(
        status,
        &json!({
            "status": if healthy { "healthy" } else { "unavailable" },
            "providers": matching.iter().map(|p| p.info()).collect::<Vec<_>>(),
        }),
    ))
}

/// `GET /v1/skills`: the skills a caller may ask for with `X-Gateway-Skill`.
pub fn skills(compiled: &CompiledConfig) -> Response<ResponseBody> {
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": compiled.skills.all()}),
    )
}
