//! `GET /v1/usage` and `GET /v1/limits`: the caller's own usage today and what remains.

use crate::body::{json_response, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::limits::{tightest_quota, Counters, ModelUsage, Windows};
use crate::state::Services;
use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

fn usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

fn usage_json(u: &ModelUsage) -> Value {
    json!({
        "requests": u.requests,
        "tokens_in": u.tokens_in,
        "tokens_out": u.tokens_out,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cost_usd": usd(u.cost_micros),
    })
}

fn store_error(e: crate::limits::StoreError) -> GatewayError {
    GatewayError::LimitStoreUnavailable(e.to_string())
}

/// The users' shape (`today`, `limit.requests_remaining`, `limit.tokens_remaining`),
/// extended with cost, cache tokens and a per-model breakdown.
pub async fn usage(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
) -> Result<Response<ResponseBody>, GatewayError> {
    let Some(identity) = ctx.identity.clone() else {
        return Err(GatewayError::Unauthorized("no caller identity".into()));
    };
    let windows = Windows::at(std::time::SystemTime::now());
    let per_model = services
        .store
        .usage_day(&identity.user, windows.day)
        .await
        .map_err(store_error)?;
    let mut total = ModelUsage::default();
    let mut models = Map::new();
    for (model, u) in &per_model {
        total.add(u);
        models.insert(model.clone(), usage_json(u));
    }
    let checks = compiled.limits.checks(&identity, "");
    let counters = services
        .store
        .counters(&checks, windows)
        .await
        .map_err(store_error)?;
    let quota = tightest_quota(&checks, &counters, &windows);
    ctx.quota = Some(quota);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "user": identity.user,
            "team": identity.team,
            "workspace": identity.workspace,
            "date": humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(windows.day * 86_400)).to_string()[..10],
            "today": usage_json(&total),
            "models": models,
            "limit": {
                "requests_remaining": quota.requests.map(|(_, r, _)| r),
                "tokens_remaining": quota.tokens.map(|(_, r, _)| r),
            },
        }),
    ))
}

/// Every limit that applies to the caller, with what is used and what remains.
pub async fn limits(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
) -> Result<Response<ResponseBody>, GatewayError> {
    let Some(identity) = ctx.identity.clone() else {
        return Err(GatewayError::Unauthorized("no caller identity".into()));
    };
    let windows = Windows::at(std::time::SystemTime::now());
    let checks = compiled.limits.checks(&identity, "");
    let counters = services
        .store
        .counters(&checks, windows)
        .await
        .map_err(store_error)?;
    let entries: Vec<Value> = checks
        .iter()
        .zip(&counters)
        .map(|(check, c)| limit_json(check, c, &windows))
        .collect();
    ctx.quota = Some(tightest_quota(&checks, &counters, &windows));
    Ok(json_response(
        StatusCode::OK,
        &json!({"user": identity.user, "limits": entries}),
    ))
}

fn limit_json(check: &crate::limits::Check, c: &Counters, w: &Windows) -> Value {
    let l = &check.limits;
    let entry = |limit: Option<u64>, used: u64, reset: u64| {
        limit.map(|limit| {
            json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "reset_seconds": reset})
        })
    };
    json!({
        "scope": check.scope.as_str(),
        "key": check.key,
        "requests_per_minute": entry(l.requests_per_minute, c.requests_minute, w.secs_to_next_minute()),
        "tokens_per_minute": entry(l.tokens_per_minute, c.tokens_minute, w.secs_to_next_minute()),
        "tokens_per_day": entry(l.tokens_per_day, c.tokens_day, w.secs_to_next_day()),
        "concurrent_requests": entry(l.concurrent_requests, c.concurrent, 0),
        "budget_usd_per_day": l.budget_usd_per_day.map(|b| json!({
            "limit": b, "used": usd(c.cost_micros_day),
            "remaining": (b - usd(c.cost_micros_day)).max(0.0), "reset_seconds": w.secs_to_next_day(),
        })),
    })
}
