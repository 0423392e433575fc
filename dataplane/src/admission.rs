//! Admission: every rate limit that applies to the caller and model must fit the
//! request's estimated tokens and cost before anything is sent upstream.

use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::limits::{tightest_quota, Admission, Demand, Windows};
use crate::pricing::cost_micros;
use crate::routing::Resolved;
use crate::state::Services;
use crate::translate::TokenUsage;
use ai_gateway_snapshot::UnpricedModels;

/// JSON bodies run at roughly four bytes per token; counting exactly on every request
/// would cost more than the estimate is worth, and settlement corrects it.
pub const BYTES_PER_TOKEN: u64 = 4;

/// No model writes more than this in one answer; a larger `max_tokens` is a typo or an
/// attack on the counters, and is reserved as this much.
const MAX_OUTPUT_RESERVATION: u64 = 1_000_000;

pub async fn admit(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    resolved: &Resolved,
    body_len: usize,
    max_output_tokens: Option<u64>,
) -> Result<(), GatewayError> {
    // Every surface admits through here, so every surface holds to the limit.
    let limit = compiled.snapshot.gateway.max_tokens_limit;
    if let Some(asked) = max_output_tokens.filter(|&asked| asked > limit) {
        return Err(GatewayError::InvalidRequest(format!(
            "max_tokens: {asked} exceeds this gateway's limit of {limit}"
        )));
    }
    let mut price = services
        .prices
        .price(&resolved.provider, &resolved.upstream_model);
    let estimate = TokenUsage {
        input: body_len as u64 / BYTES_PER_TOKEN,
        output: max_output_tokens
            .unwrap_or(compiled.limits.default_output_tokens)
            .min(MAX_OUTPUT_RESERVATION),
        ..TokenUsage::default()
    };
    let Some(identity) = ctx.identity() else {
        return Ok(());
    };
    let model = ctx.model().unwrap_or("");
    // Model rules see the upstream id and every name the caller used for it.
    let client_name = model
        .split_once([':', '/'])
        .filter(|(prefix, _)| *prefix == resolved.provider.name)
        .map_or(model, |(_, rest)| rest);
    let names = [
        model,
        client_name,
        vendor_neutral(model),
        vendor_neutral(&resolved.upstream_model),
    ];
    let checks = compiled
        .limits
        .checks_for(identity, &resolved.upstream_model, &names);
    // A stream cut before its usage arrives is still charged its prompt.
    ctx.estimated_input(estimate.input);
    ctx.priced(price);
    if checks.is_empty() {
        return Ok(());
    }
    // A budget cannot be kept on a call whose cost is unknown.
    if price.is_none() && checks.iter().any(|c| c.limits.budget_usd_per_day.is_some()) {
        match compiled.snapshot.rate_limits.unpriced_models {
            UnpricedModels::Refuse => {
                return Err(GatewayError::Forbidden(format!(
                    "model `{}` has no price, and a USD budget applies to you: the gateway cannot meter it (add `pricing` for it to its route, or set rate_limits.unpriced_models: highest-price)",
                    resolved.upstream_model
                )))
            }
            UnpricedModels::HighestPrice => {
                price = Some(services.prices.highest());
                ctx.priced(price);
            }
        }
    }
    let demand = Demand {
        tokens: estimate.input + estimate.output,
        cost_micros: price.map(|p| cost_micros(&estimate, &p)).unwrap_or(0),
    };
    let windows = Windows::at(std::time::SystemTime::now());
    let fail_open = compiled.snapshot.rate_limits.store.fail_open;
    match services.store.admit(&checks, demand, windows).await {
        Ok(Admission::Admitted(reservation)) => {
            ctx.admitted(reservation);
            let daily: Vec<_> = checks
                .into_iter()
                .filter(|c| {
                    c.limits.tokens_per_day.is_some() || c.limits.budget_usd_per_day.is_some()
                })
                .collect();
            if !daily.is_empty() && !compiled.budget_alerts.thresholds_percent.is_empty() {
                ctx.watches_budgets(daily, compiled.budget_alerts.clone());
            }
            Ok(())
        }
        Ok(Admission::Refused(refusal)) => Err(refused(services, ctx, refusal)),
        Err(e) if fail_open => {
            tracing::warn!(error = %e, "rate-limit store unavailable; admitting (fail_open)");
            ctx.quota_left(tightest_quota(&[], &[], &windows));
            Ok(())
        }
        Err(e) => Err(GatewayError::LimitStoreUnavailable(e.to_string())),
    }
}

/// Model vendors whose Bedrock ids put the vendor before the model's own name.
const BEDROCK_VENDORS: [&str; 8] = [
    "anthropic",
    "amazon",
    "meta",
    "mistral",
    "cohere",
    "ai21",
    "deepseek",
    "openai",
];

/// A model's own name without a Bedrock ARN, geography or vendor prefix
/// (`arn:…/us.anthropic.claude-opus-4-1-…` → `claude-opus-4-1-…`), so a rule written for
/// `claude-opus-*` holds however the model is named. Runs on every admitted call: it
/// splits on single characters rather than searching for each vendor's name.
fn vendor_neutral(model: &str) -> &str {
    let id = model.rsplit('/').next().unwrap_or(model);
    let mut after = 0;
    for segment in id.split('.') {
        after += segment.len() + 1;
        if BEDROCK_VENDORS.contains(&segment) {
            return id.get(after..).unwrap_or(id);
        }
    }
    id
}

/// Requests whose bodies may be this large are checked against the caller's limits
/// before the body is read; smaller ones are read first (one store round trip fewer).
pub const EARLY_CHECK_BYTES: u64 = 1024 * 1024;

/// Refuses a caller already at one of its model-independent limits (requests per
/// minute, concurrency, tokens, budget), before its body is read: a limited caller
/// cannot make the gateway buffer large bodies only to refuse them.
pub async fn refuse_early(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
) -> Result<(), GatewayError> {
    let Some(identity) = ctx.identity() else {
        return Ok(());
    };
    // No model is known yet: only the rules that apply to every model.
    let checks = compiled.limits.checks_for(identity, "", &[]);
    if checks.is_empty() {
        return Ok(());
    }
    let windows = Windows::at(std::time::SystemTime::now());
    match services.store.first_refusal(&checks, windows).await {
        Ok(Some(refusal)) => Err(refused(services, ctx, refusal)),
        // Admission proper, after the body, decides (and reports a store outage).
        Ok(None) | Err(_) => Ok(()),
    }
}

/// The caller's 429, counted and with its quota for the response headers.
fn refused(
    services: &Services,
    ctx: &mut RequestContext,
    refusal: crate::limits::Refusal,
) -> GatewayError {
    services
        .metrics
        .rate_limited
        .get_or_create(&crate::metrics::RateLimitLabels {
            scope: refusal.scope.as_str(),
            limit: refusal.kind.describe().replace(' ', "_"),
        })
        .inc();
    ctx.quota_left(refusal.quota);
    let limit = match refusal.kind {
        crate::limits::LimitKind::BudgetPerDay => format!("${:.2}", refusal.limit),
        _ => format!("{}", refusal.limit as u64),
    };
    GatewayError::RateLimited {
        message: format!(
            "rate limit reached: `{}` is at its limit of {limit} {}; retry in {} s",
            refusal.key,
            refusal.kind.describe(),
            refusal.retry_after_secs
        ),
        retry_after_secs: refusal.retry_after_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::vendor_neutral;

    #[test]
    fn bedrock_ids_are_matched_by_the_models_own_name() {
        for id in [
            "anthropic.claude-opus-4-1-20250805-v1:0",
            "us.anthropic.claude-opus-4-1-20250805-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-opus-4-1-20250805-v1:0",
        ] {
            assert_eq!(vendor_neutral(id), "claude-opus-4-1-20250805-v1:0", "{id}");
        }
        assert_eq!(vendor_neutral("claude-opus-4-1"), "claude-opus-4-1");
        assert_eq!(vendor_neutral("gpt-4o"), "gpt-4o");
    }
}
