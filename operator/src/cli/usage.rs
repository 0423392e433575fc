//! `usage`: the caller's usage today and the limits that apply, as the data plane
//! reports them for the caller's own key (`/v1/usage`, `/v1/limits`).

use super::render::{json_out, number, or_dash, table};
use super::{CliError, Format, Out, Session, UsageArgs};
use ai_gateway_snapshot::replies::{LimitStanding, LimitsReply, UsageReply, WindowUse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

impl Session {
    pub(super) async fn usage(&self, args: &UsageArgs, out: Out<'_>) -> Result<(), CliError> {
        let key = args
            .key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(CliError::NoKey)?;
        let usage: UsageReply = self.get_as_caller("/v1/usage", key).await?;
        let limits: LimitsReply = self.get_as_caller("/v1/limits", key).await?;
        if self.format == Format::Json {
            return json_out(out, &json!({"usage": usage, "limits": limits.limits}));
        }
        write_usage(out, &usage)?;
        write_limits(out, &limits.limits)?;
        Ok(())
    }

    /// A GET with the caller's key; the data plane's 401 means the key, not the proxy.
    async fn get_as_caller<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<T, CliError> {
        self.proxy_get(path, Some(key)).await.map_err(|f| {
            if f.status == Some(401) && !f.from_api_server {
                CliError::KeyRejected(f.message)
            } else {
                CliError::Proxy(f)
            }
        })
    }
}

fn write_usage(out: Out<'_>, usage: &UsageReply) -> std::io::Result<()> {
    writeln!(
        out,
        "user {}   team {}   workspace {}   day {} (UTC)",
        usage.user,
        or_dash(usage.team.as_deref()),
        or_dash(usage.workspace.as_deref()),
        usage.date,
    )?;
    let today = &usage.today;
    writeln!(
        out,
        "today: {} requests, {} tokens in, {} tokens out, {} cache read, {} cache write, ${:.4}",
        today.requests,
        today.tokens_in,
        today.tokens_out,
        today.cache_read_tokens,
        today.cache_write_tokens,
        today.cost_usd,
    )?;
    let limit = &usage.limit;
    if limit.requests_remaining.is_none() && limit.tokens_remaining.is_none() {
        writeln!(out, "remaining: no request or token limit applies")?;
    } else {
        let remaining = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
        writeln!(
            out,
            "remaining: {} requests, {} tokens (the tightest limit that applies)",
            remaining(limit.requests_remaining),
            remaining(limit.tokens_remaining),
        )?;
    }
    if !usage.models.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = usage
            .models
            .iter()
            .map(|(model, u)| {
                vec![
                    model.clone(),
                    u.requests.to_string(),
                    u.tokens_in.to_string(),
                    u.tokens_out.to_string(),
                    format!("${:.4}", u.cost_usd),
                ]
            })
            .collect();
        table(
            out,
            &["MODEL", "REQUESTS", "TOKENS IN", "TOKENS OUT", "COST"],
            &rows,
        )?;
    }
    Ok(())
}

/// One row per window a limit applies in.
fn write_limits(out: Out<'_>, limits: &[LimitStanding]) -> std::io::Result<()> {
    let mut rows = Vec::new();
    for entry in limits {
        let subject = format!("{} {}", entry.scope.as_str(), entry.key);
        let mut row = |label: &str, window: Option<WindowUse<String>>| {
            if let Some(w) = window {
                rows.push(vec![
                    subject.clone(),
                    label.to_string(),
                    w.limit,
                    w.used,
                    w.remaining,
                    if w.reset_seconds == 0 {
                        "-".into()
                    } else {
                        format!("{}s", w.reset_seconds)
                    },
                ]);
            }
        };
        row("requests/minute", cells(entry.requests_per_minute));
        row("tokens/minute", cells(entry.tokens_per_minute));
        row("tokens/day", cells(entry.tokens_per_day));
        row("concurrent requests", cells(entry.concurrent_requests));
        row("USD/day", cells(entry.budget_usd_per_day));
    }
    if !rows.is_empty() {
        writeln!(out)?;
        table(
            out,
            &[
                "SUBJECT",
                "WINDOW",
                "LIMIT",
                "USED",
                "REMAINING",
                "RESETS IN",
            ],
            &rows,
        )?;
    }
    Ok(())
}

/// A window's numbers as JSON writes them (`5.0` USD, `60` requests).
fn cells<T: Serialize>(window: Option<WindowUse<T>>) -> Option<WindowUse<String>> {
    window.map(|w| WindowUse {
        limit: number(&w.limit),
        used: number(&w.used),
        remaining: number(&w.remaining),
        reset_seconds: w.reset_seconds,
    })
}
