//! `usage`: the caller's usage today and the limits that apply, as the data plane
//! reports them for the caller's own key (`/v1/usage`, `/v1/limits`).

use super::render::{json_out, number, or_dash, table};
use super::{CliError, Format, Out, Session, UsageArgs};
use ai_gateway_snapshot::replies::{
    AdminUsageReply, LimitStanding, LimitsInForce, LimitsReply, Usage, UsageReply, WindowUse,
};
use ai_gateway_snapshot::LimitStoreKind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

impl Session {
    pub(super) async fn usage(&self, args: &UsageArgs, out: Out<'_>) -> Result<(), CliError> {
        if args.all {
            return self.usage_of_everyone(args, out).await;
        }
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

impl Session {
    /// `usage --all`: every caller's usage from the admin API of each ready data plane
    /// (one is enough when they share Redis; otherwise each counts its own calls, and
    /// their reports are summed).
    async fn usage_of_everyone(&self, args: &UsageArgs, out: Out<'_>) -> Result<(), CliError> {
        let token = self.admin_token().await?;
        let pods = self.ready_pods().await?;
        let Some(first) = pods.first() else {
            return Err(CliError::NoDataPlane(self.gateway.clone()));
        };
        let mut query = format!("group_by={}&since={}", args.group_by, args.since);
        if let Some(until) = &args.until {
            query.push_str(&format!("&until={until}"));
        }
        let path = format!("/admin/v1/usage?{query}");
        let limits: LimitsInForce = self
            .admin_get(first, "/admin/v1/limits", &token)
            .await
            .map_err(CliError::Proxy)?;
        let shared = limits.store == LimitStoreKind::Redis;
        let asked = if shared { &pods[..1] } else { &pods[..] };
        let mut merged: Option<AdminUsageReply> = None;
        for pod in asked {
            let report: AdminUsageReply = self
                .admin_get(pod, &path, &token)
                .await
                .map_err(CliError::Proxy)?;
            merged = Some(match merged {
                None => report,
                Some(sum) => sum_reports(sum, report),
            });
        }
        let report = merged.unwrap_or_default();
        if self.format == Format::Json {
            return json_out(out, &report);
        }
        writeln!(
            out,
            "{} to {} (UTC), by {}, from {} data plane{}",
            report.since,
            report.until,
            report.group_by,
            asked.len(),
            if asked.len() == 1 { "" } else { "s" }
        )?;
        let upper = report.group_by.to_uppercase();
        let mut rows: Vec<Vec<String>> = report
            .rows
            .iter()
            .map(|r| usage_row(&r.group, &r.usage))
            .collect();
        rows.push(usage_row("total", &report.total));
        table(
            out,
            &[&upper, "REQUESTS", "TOKENS IN", "TOKENS OUT", "COST"],
            &rows,
        )?;
        Ok(())
    }

    async fn admin_token(&self) -> Result<String, CliError> {
        let name = format!("{}-admin", self.gateway);
        let secret = self
            .secrets()
            .get_opt(&name)
            .await?
            .ok_or_else(|| CliError::KeyNotFound {
                name: name.clone(),
                namespace: self.namespace.clone(),
            })?;
        crate::compile::secret_value(&secret, crate::resources::TOKEN_KEY).ok_or(
            CliError::KeyNotFound {
                name,
                namespace: self.namespace.clone(),
            },
        )
    }

    /// The gateway's data-plane pods that are Ready, by name.
    async fn ready_pods(&self) -> Result<Vec<String>, CliError> {
        use k8s_openapi::api::core::v1::Pod;
        let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!(
            "app.kubernetes.io/name=ai-gateway,app.kubernetes.io/instance={}",
            self.gateway
        );
        let pods = api
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?;
        let ready = |pod: &Pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        let mut names: Vec<String> = pods
            .items
            .iter()
            .filter(|p| ready(p))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Two data planes' reports of the same range and grouping, added up.
fn sum_reports(mut sum: AdminUsageReply, other: AdminUsageReply) -> AdminUsageReply {
    for row in other.rows {
        match sum.rows.iter_mut().find(|r| r.group == row.group) {
            Some(mine) => mine.usage.add(&row.usage),
            None => sum.rows.push(row),
        }
    }
    sum.total.add(&other.total);
    sum.rows
        .sort_by(|a, b| b.usage.cost_usd.total_cmp(&a.usage.cost_usd));
    sum
}

fn usage_row(group: &str, u: &Usage) -> Vec<String> {
    vec![
        group.to_string(),
        number(&u.requests),
        number(&u.tokens_in),
        number(&u.tokens_out),
        format!("${:.4}", u.cost_usd),
    ]
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
