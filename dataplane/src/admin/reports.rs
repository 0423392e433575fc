//! The admin API's reports (behind the admin token): providers with their health and
//! breaker state, routes and limits as compiled, every caller's usage and cost over a
//! range of days grouped any way (JSON or CSV), and the overview the dashboard shows.

use crate::auth::Identity;
use crate::body::{json_response, ResponseBody};
use crate::limits::{CallSlice, Ledger, ModelUsage, Windows, ALL_CALLERS};
use crate::state::Gateway;
use ai_gateway_snapshot::replies::{
    AdminUsageReply, BudgetStanding, LimitsInForce, OverviewReply, RoutesReply, UsageRow,
};
use http::{Response, StatusCode};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest range one report reads, in days.
const MAX_DAYS: u64 = 92;
/// Rows of each table the overview shows.
const OVERVIEW_ROWS: usize = 10;
/// A daily limit spent at least this much shows on the dashboard.
const BUDGET_SHOWN_PERCENT: f64 = 50.0;

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupBy {
    User,
    Team,
    Workspace,
    Key,
    Model,
    Provider,
    Session,
}

impl GroupBy {
    const ALL: [(&'static str, GroupBy); 7] = [
        ("user", GroupBy::User),
        ("team", GroupBy::Team),
        ("workspace", GroupBy::Workspace),
        ("key", GroupBy::Key),
        ("model", GroupBy::Model),
        ("provider", GroupBy::Provider),
        ("session", GroupBy::Session),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, g)| *g)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, g)| *g == self)
            .map_or("user", |(n, _)| n)
    }

    fn of(self, slice: &CallSlice) -> String {
        let value = match self {
            Self::User => &slice.user,
            Self::Team => &slice.team,
            Self::Workspace => &slice.workspace,
            Self::Key => &slice.key,
            Self::Model => &slice.model,
            Self::Provider => &slice.provider,
            Self::Session => &slice.session,
        };
        match value.is_empty() {
            true => "(none)".to_string(),
            false => value.clone(),
        }
    }
}

fn refusal(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json_response(status, &json!({"error": message}))
}

fn day_of(date: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs() / 86_400)
}

fn date_of(day: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(day * 86_400);
    humantime::format_rfc3339_seconds(at).to_string()[..10].to_string()
}

/// Rows by cost, then requests, then name.
fn rows(groups: BTreeMap<String, ModelUsage>) -> Vec<UsageRow> {
    let mut sorted: Vec<(String, ModelUsage)> = groups.into_iter().collect();
    sorted.sort_by(|a, b| {
        (b.1.cost_micros, b.1.requests)
            .cmp(&(a.1.cost_micros, a.1.requests))
            .then_with(|| a.0.cmp(&b.0))
    });
    sorted
        .into_iter()
        .map(|(group, u)| UsageRow {
            group,
            usage: u.reply(),
        })
        .collect()
}

/// Every call slice of `days`, summed by `group`.
fn grouped(
    slices: &[BTreeMap<String, ModelUsage>],
    group: GroupBy,
) -> BTreeMap<String, ModelUsage> {
    let mut out: BTreeMap<String, ModelUsage> = BTreeMap::new();
    for day in slices {
        for (name, usage) in day {
            out.entry(group.of(&CallSlice::parse(name)))
                .or_default()
                .add(usage);
        }
    }
    out
}

async fn slices_of(
    gw: &Gateway,
    days: std::ops::RangeInclusive<u64>,
) -> Result<Vec<BTreeMap<String, ModelUsage>>, String> {
    let mut out = Vec::new();
    for day in days {
        let lines = gw
            .services
            .store
            .usage_day(Ledger::Calls, ALL_CALLERS, day)
            .await
            .map_err(|e| e.to_string())?;
        out.push(lines);
    }
    Ok(out)
}

pub fn routes(gw: &Gateway) -> Response<ResponseBody> {
    let routes = gw.compiled().snapshot.routes.clone();
    json_response(StatusCode::OK, &RoutesReply { routes })
}

pub fn limits(gw: &Gateway) -> Response<ResponseBody> {
    let compiled = gw.compiled();
    let limits = &compiled.snapshot.rate_limits;
    json_response(
        StatusCode::OK,
        &LimitsInForce {
            store: limits.store.kind,
            rules: limits.all_rules(),
        },
    )
}

pub fn providers(gw: &Gateway) -> Response<ResponseBody> {
    json_response(StatusCode::OK, &gw.compiled().provider_list())
}

/// What a usage report asks for: `?since=2026-11-01|7d&until=2026-11-30&group_by=team&format=csv`.
struct ReportQuery {
    since: u64,
    until: u64,
    group: GroupBy,
    csv: bool,
}

impl ReportQuery {
    fn parse(query: Option<&str>, today: u64) -> Result<Self, String> {
        let mut report = Self {
            since: today,
            until: today,
            group: GroupBy::User,
            csv: false,
        };
        let pairs = query.into_iter().flat_map(|q| q.split('&'));
        for (name, value) in pairs.filter_map(|p| p.split_once('=')) {
            let understood = match name {
                "since" => {
                    let days_back = value.strip_suffix('d').and_then(|n| n.parse::<u64>().ok());
                    let day = days_back
                        .map(|n| today.saturating_sub(n.saturating_sub(1)))
                        .or_else(|| day_of(value));
                    day.map(|d| report.since = d).is_some()
                }
                "until" => day_of(value).map(|d| report.until = d).is_some(),
                "group_by" => GroupBy::parse(value).map(|g| report.group = g).is_some(),
                "format" => {
                    report.csv = value == "csv";
                    matches!(value, "csv" | "json")
                }
                _ => true,
            };
            if !understood {
                let known: Vec<&str> = GroupBy::ALL.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "{name}={value}: since and until are YYYY-MM-DD (since also Nd), group_by one of {}, format json or csv",
                    known.join(", ")
                ));
            }
        }
        if report.since > report.until || report.until - report.since >= MAX_DAYS {
            return Err(format!(
                "a report covers 1 to {MAX_DAYS} days, since no later than until"
            ));
        }
        Ok(report)
    }
}

pub async fn usage(gw: &Gateway, query: Option<&str>) -> Response<ResponseBody> {
    let today = Windows::at(SystemTime::now()).day;
    let ReportQuery {
        since,
        until,
        group,
        csv,
    } = match ReportQuery::parse(query, today) {
        Ok(q) => q,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, &why),
    };
    let slices = match slices_of(gw, since..=until).await {
        Ok(s) => s,
        Err(e) => return refusal(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let groups = grouped(&slices, group);
    let mut total = ModelUsage::default();
    groups.values().for_each(|u| total.add(u));
    let reply = AdminUsageReply {
        since: date_of(since),
        until: date_of(until),
        group_by: group.name().to_string(),
        rows: rows(groups),
        total: total.reply(),
    };
    if !csv {
        return json_response(StatusCode::OK, &reply);
    }
    let mut out = format!(
        "{},requests,tokens_in,tokens_out,cache_read_tokens,cache_write_tokens,cost_usd,tokens_saved\n",
        reply.group_by
    );
    for row in &reply.rows {
        let u = &row.usage;
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.6},{}\n",
            csv_field(&row.group),
            u.requests,
            u.tokens_in,
            u.tokens_out,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.cost_usd,
            u.tokens_saved
        ));
    }
    let mut response = Response::new(crate::body::full(out));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response
}

/// A CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`,
/// `-` or `@` is defused so a spreadsheet never runs a caller-chosen name as a formula.
fn csv_field(value: &str) -> String {
    let defused = match value.starts_with(['=', '+', '-', '@']) {
        true => format!("'{value}"),
        false => value.to_string(),
    };
    match defused.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", defused.replace('"', "\"\"")),
        false => defused,
    }
}

/// Today's figures for the dashboard.
pub async fn overview(gw: &Gateway) -> Response<ResponseBody> {
    let windows = Windows::at(SystemTime::now());
    let slices = match slices_of(gw, windows.day..=windows.day).await {
        Ok(s) => s,
        Err(e) => return refusal(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let top = |group| {
        let mut r = rows(grouped(&slices, group));
        r.truncate(OVERVIEW_ROWS);
        r
    };
    let mut today = ModelUsage::default();
    slices
        .iter()
        .flat_map(|d| d.values())
        .for_each(|u| today.add(u));
    let compiled = gw.compiled();
    let reply = OverviewReply {
        date: date_of(windows.day),
        today: today.reply(),
        by_team: top(GroupBy::Team),
        by_user: top(GroupBy::User),
        top_models: top(GroupBy::Model),
        rate_limited_today: gw.services.trouble.rate_limited_on(windows.day),
        providers: compiled.provider_list().data,
        budgets: budgets(gw, &slices, windows).await,
        last_errors: gw.services.trouble.last(OVERVIEW_ROWS),
    };
    json_response(StatusCode::OK, &reply)
}

/// The daily limits today's callers have spent at least half of, most spent first.
async fn budgets(
    gw: &Gateway,
    slices: &[BTreeMap<String, ModelUsage>],
    windows: Windows,
) -> Vec<BudgetStanding> {
    let compiled = gw.compiled();
    let callers: BTreeSet<(String, String, String, String)> = slices
        .iter()
        .flat_map(|d| d.keys())
        .map(|name| CallSlice::parse(name))
        .map(|s| (s.user, s.team, s.workspace, s.key))
        .collect();
    let some = |v: String| (!v.is_empty()).then_some(v);
    let mut checks = Vec::new();
    for (user, team, workspace, key) in callers {
        let identity = Identity {
            key_id: some(key),
            user,
            team: some(team),
            workspace: some(workspace),
        };
        for check in compiled.limits.checks(&identity, "") {
            if (check.limits.tokens_per_day.is_some() || check.limits.budget_usd_per_day.is_some())
                && !checks
                    .iter()
                    .any(|c: &crate::limits::Check| c.key == check.key)
            {
                checks.push(check);
            }
        }
    }
    let Ok(counters) = gw.services.store.counters(&checks, windows).await else {
        return Vec::new();
    };
    let mut standings = Vec::new();
    for (check, c) in checks.iter().zip(&counters) {
        let mut stand = |kind: &str, used: f64, limit: f64| {
            let percent = used / limit.max(f64::MIN_POSITIVE) * 100.0;
            if percent >= BUDGET_SHOWN_PERCENT {
                standings.push(BudgetStanding {
                    subject: check.key.clone(),
                    kind: kind.to_string(),
                    used,
                    limit,
                    percent,
                });
            }
        };
        if let Some(limit) = check.limits.budget_usd_per_day {
            stand(
                "budget_usd_per_day",
                c.cost_micros_day as f64 / 1_000_000.0,
                limit,
            );
        }
        if let Some(limit) = check.limits.tokens_per_day {
            stand("tokens_per_day", c.tokens_day as f64, limit as f64);
        }
    }
    standings.sort_by(|a, b| b.percent.total_cmp(&a.percent));
    standings.truncate(OVERVIEW_ROWS);
    standings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_days_round_trip_and_csv_fields_are_safe() {
        let day = day_of("2026-12-03").expect("a date");
        assert_eq!(date_of(day), "2026-12-03");
        assert!(day_of("yesterday").is_none());
        assert_eq!(csv_field("platform"), "platform");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }

    #[test]
    fn slices_group_by_any_dimension() {
        let slice = |user: &str, team: &str, model: &str| {
            CallSlice {
                user: user.into(),
                team: team.into(),
                model: model.into(),
                ..CallSlice::default()
            }
            .name()
        };
        let usage = |cost| ModelUsage {
            requests: 1,
            cost_micros: cost,
            ..ModelUsage::default()
        };
        let day = BTreeMap::from([
            (slice("ana", "platform", "opus"), usage(30)),
            (slice("bo", "platform", "sonnet"), usage(10)),
            (slice("cy", "", "sonnet"), usage(5)),
        ]);
        let teams = rows(grouped(std::slice::from_ref(&day), GroupBy::Team));
        assert_eq!(teams[0].group, "platform");
        assert_eq!(teams[0].usage.requests, 2);
        assert_eq!(teams[1].group, "(none)");
        let models = rows(grouped(&[day], GroupBy::Model));
        assert_eq!(models[0].group, "opus");
    }
}
