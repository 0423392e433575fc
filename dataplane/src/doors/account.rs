//! `GET /v1/usage` and `GET /v1/limits`: the caller's own usage today and what remains.

use super::Answer;
use crate::auth::Identity;
use crate::body::json_response;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::limits::{tightest_quota, Check, Counters, Ledger, ModelUsage, Windows};
use crate::state::Serving;
use ai_gateway_snapshot::replies::{LimitStanding, LimitsReply, Remaining, UsageReply, WindowUse};
use http::StatusCode;

fn usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

fn store_error(e: crate::limits::StoreError) -> GatewayError {
    GatewayError::LimitStoreUnavailable(e.to_string())
}

/// The users' shape (`today`, `limit.requests_remaining`, `limit.tokens_remaining`),
/// extended with cost, cache tokens and a per-model breakdown.
pub async fn usage(serving: Serving<'_>, ctx: &mut RequestContext, query: Option<&str>) -> Answer {
    let caller = standing_of(serving, ctx).await?;
    let day = |ledger| {
        serving
            .services
            .store
            .usage_day(ledger, &caller.identity.user, caller.windows.day)
    };
    let per_model = day(Ledger::Models).await.map_err(store_error)?;
    let by_session = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .any(|pair| pair == "group_by=session");
    let sessions = match by_session {
        true => Some(day(Ledger::Sessions).await.map_err(store_error)?),
        false => None,
    };
    let mut total = ModelUsage::default();
    let mut models = std::collections::BTreeMap::new();
    for (model, u) in &per_model {
        total.add(u);
        models.insert(model.clone(), u.reply());
    }
    let quota = tightest_quota(&caller.checks, &caller.counters, &caller.windows);
    ctx.quota_left(quota);
    let day_start =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(caller.windows.day * 86_400);
    let reply = UsageReply {
        user: caller.identity.user,
        team: caller.identity.team,
        workspace: caller.identity.workspace,
        date: humantime::format_rfc3339_seconds(day_start).to_string()[..10].to_string(),
        today: total.reply(),
        models,
        sessions: sessions.map(|s| s.iter().map(|(id, u)| (id.clone(), u.reply())).collect()),
        limit: Remaining {
            requests_remaining: quota.requests.map(|(_, r, _)| r),
            tokens_remaining: quota.tokens.map(|(_, r, _)| r),
        },
    };
    Ok(json_response(StatusCode::OK, &reply))
}

/// Every limit that applies to the caller, with what is used and what remains.
pub async fn limits(serving: Serving<'_>, ctx: &mut RequestContext) -> Answer {
    let caller = standing_of(serving, ctx).await?;
    let limits = caller
        .checks
        .iter()
        .zip(&caller.counters)
        .map(|(check, c)| limit_standing(check, c, &caller.windows))
        .collect();
    ctx.quota_left(tightest_quota(
        &caller.checks,
        &caller.counters,
        &caller.windows,
    ));
    let reply = LimitsReply {
        user: caller.identity.user,
        limits,
    };
    Ok(json_response(StatusCode::OK, &reply))
}

/// The caller, and where it stands against every limit that applies to it.
struct Standing {
    identity: Identity,
    windows: Windows,
    checks: Vec<Check>,
    counters: Vec<Counters>,
}

async fn standing_of(serving: Serving<'_>, ctx: &RequestContext) -> Result<Standing, GatewayError> {
    let Some(identity) = ctx.identity().cloned() else {
        return Err(GatewayError::Unauthorized("no caller identity".into()));
    };
    let windows = Windows::at(std::time::SystemTime::now());
    let checks = serving.compiled.limits.checks(&identity, "");
    let counters = serving
        .services
        .store
        .counters(&checks, windows)
        .await
        .map_err(store_error)?;
    Ok(Standing {
        identity,
        windows,
        checks,
        counters,
    })
}

fn limit_standing(check: &Check, c: &Counters, w: &Windows) -> LimitStanding {
    let l = &check.limits;
    let entry = |limit: Option<u64>, used: u64, reset_seconds: u64| {
        limit.map(|limit| WindowUse {
            limit,
            used,
            remaining: limit.saturating_sub(used),
            reset_seconds,
        })
    };
    let spent = usd(c.cost_micros_day);
    LimitStanding {
        scope: check.scope,
        key: check.key.clone(),
        requests_per_minute: entry(
            l.requests_per_minute,
            c.requests_minute,
            w.secs_to_next_minute(),
        ),
        tokens_per_minute: entry(
            l.tokens_per_minute,
            c.tokens_minute,
            w.secs_to_next_minute(),
        ),
        tokens_per_day: entry(l.tokens_per_day, c.tokens_day, w.secs_to_next_day()),
        concurrent_requests: entry(l.concurrent_requests, c.concurrent, 0),
        budget_usd_per_day: l.budget_usd_per_day.map(|limit| WindowUse {
            limit,
            used: spent,
            remaining: (limit - spent).max(0.0),
            reset_seconds: w.secs_to_next_day(),
        }),
    }
}
