//! Budget alerts: after a call that counts against a daily limit (tokens or USD), the
//! subject's standing is read, and each configured share it has reached for the first
//! time today raises an alert: an audit event (`budget_alert`), a metric
//! (`ai_gateway_budget_alerts_total{kind,threshold}`) and, when set, a Slack-compatible
//! webhook. Once per threshold per day per subject, per replica. All after the answer
//! has gone, from the counters the settlement leaves (no further read of the store);
//! raising, on a task.

use crate::limits::{Check, Counters, Windows};
use crate::state::Services;
use ai_gateway_snapshot::BudgetAlerts;
use bytes::Bytes;
use http_body_util::Full;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The alerts already raised: (counter key, day, threshold).
#[derive(Default)]
pub struct Raised {
    sent: dashmap::DashMap<(String, u64, u8), (), crate::FastHasher>,
    webhook: OnceLock<crate::upstream::client::HttpClient>,
}

/// One alert: a subject's daily limit reached `threshold` percent.
struct Alert {
    subject: String,
    kind: &'static str,
    threshold: u8,
    used: f64,
    limit: f64,
}

/// Raises what a finished call's standing calls for. `counters` are the watched
/// checks' counters once the call has settled, in their order: read from the
/// in-process store as the call settles, or returned by Redis's settlement, so a call
/// asks nothing more of the store. Only the raising waits on anything, on a task.
pub fn after_call(
    services: &Arc<Services>,
    runtime: &tokio::runtime::Handle,
    checks: &[Check],
    counters: &[Counters],
    settings: &Arc<BudgetAlerts>,
    windows: Windows,
) {
    let alerts = first_crossings(services, checks, counters, settings, windows);
    if !alerts.is_empty() {
        runtime.spawn(raise_all(services.clone(), settings.clone(), alerts));
    }
}

/// The thresholds each check has reached for the first time today, marked as raised.
fn first_crossings(
    services: &Services,
    checks: &[Check],
    counters: &[Counters],
    settings: &BudgetAlerts,
    windows: Windows,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for (check, c) in checks.iter().zip(counters) {
        let standings = [
            check
                .limits
                .budget_usd_per_day
                .map(|l| ("budget_usd_per_day", c.cost_micros_day as f64 / 1e6, l)),
            check
                .limits
                .tokens_per_day
                .map(|l| ("tokens_per_day", c.tokens_day as f64, l as f64)),
        ];
        for (kind, used, limit) in standings.into_iter().flatten() {
            let percent = used / limit.max(f64::MIN_POSITIVE) * 100.0;
            for &threshold in &settings.thresholds_percent {
                if percent < f64::from(threshold) {
                    continue;
                }
                let key = (format!("{}|{kind}", check.key), windows.day, threshold);
                if services.raised.sent.insert(key, ()).is_none() {
                    alerts.push(Alert {
                        subject: check.key.clone(),
                        kind,
                        threshold,
                        used,
                        limit,
                    });
                }
            }
        }
    }
    if !alerts.is_empty() {
        // Yesterday's marks can go: a day's alerts are only ever asked about that day,
        // and pruning when marking keeps the map to the days that raised something.
        services
            .raised
            .sent
            .retain(|(_, day, _), _| *day >= windows.day);
    }
    alerts
}

async fn raise_all(services: Arc<Services>, settings: Arc<BudgetAlerts>, alerts: Vec<Alert>) {
    for alert in &alerts {
        raise(&services, &settings, alert).await;
    }
}

async fn raise(services: &Services, settings: &BudgetAlerts, alert: &Alert) {
    tracing::warn!(
        subject = %alert.subject,
        kind = alert.kind,
        threshold = alert.threshold,
        used = alert.used,
        limit = alert.limit,
        "budget alert"
    );
    services
        .metrics
        .budget_alerts
        .get_or_create(&crate::metrics::BudgetAlertLabels {
            kind: alert.kind,
            threshold: alert.threshold,
        })
        .inc();
    let timestamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let event = serde_json::json!({
        "timestamp": timestamp,
        "event": "budget_alert",
        "subject": alert.subject,
        "kind": alert.kind,
        "threshold_percent": alert.threshold,
        "used": alert.used,
        "limit": alert.limit,
    });
    if services.audit.enabled() {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        if let Some(line) = services.audit.try_append(line) {
            services.audit.append_when_room(line).await;
        }
    }
    let Some(url) = &settings.webhook_url else {
        return;
    };
    let text = format!(
        "ai-gateway: {} has used {}% of its daily {} ({:.2} of {:.2})",
        alert.subject,
        alert.threshold,
        match alert.kind {
            "budget_usd_per_day" => "USD budget",
            _ => "token limit",
        },
        alert.used,
        alert.limit
    );
    let body = serde_json::json!({"text": text, "event": event});
    if let Err(e) = post(services, url, body.to_string()).await {
        tracing::warn!(error = %e, "budget alert webhook failed");
    }
}

async fn post(services: &Services, url: &str, body: String) -> Result<(), String> {
    let client = services.raised.webhook.get_or_init(|| {
        crate::upstream::client::build(
            Duration::from_secs(5),
            crate::upstream::client::proxies_from_env(),
        )
    });
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    match answer.status().is_success() {
        true => Ok(()),
        false => Err(format!("status {}", answer.status())),
    }
}
