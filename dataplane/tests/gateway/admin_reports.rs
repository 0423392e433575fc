//! The admin API's reports: every caller's usage and cost grouped any way, as JSON and
//! CSV, the overview the dashboard shows, providers, routes and limits — all behind
//! the admin token.

use crate::fakes::{anthropic_reply, client, FakeUpstream, TestGateway};
use ai_gateway_snapshot::key_sha256;
use serde_json::{json, Value};

const ANA: &str = "gw_reports_ana";
const BO: &str = "gw_reports_bo";
const ADMIN: &str = "admin-token";

fn config(upstream: &str) -> String {
    format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{upstream}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic, fallback: [] }}
auth:
  mode: keys
  keys:
    - {{ id: k-ana, sha256: "{}", user: ana, team: platform }}
    - {{ id: k-bo, sha256: "{}", user: bo, team: "=data,team" }}
rate_limits:
  per_user:
    ana: {{ tokens_per_day: 5000 }}
    bo: {{ requests_per_minute: 1 }}
"#,
        key_sha256(ANA),
        key_sha256(BO)
    )
}

async fn call(gateway: &str, key: &str, model: &str) -> u16 {
    client()
        .post(format!("{gateway}/v1/claude/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers")
        .status()
        .as_u16()
}

async fn admin(gw: &TestGateway, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", gw.admin_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answers")
}

#[tokio::test]
async fn usage_is_reported_by_any_group_and_the_overview_has_todays_figures() {
    crate::fakes::within_one_rate_window().await;
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&config(&upstream.url())).await;
    assert_eq!(call(&gw.url, ANA, "claude-sonnet-4-5").await, 200);
    assert_eq!(call(&gw.url, ANA, "claude-opus-4-5").await, 200);
    assert_eq!(call(&gw.url, BO, "claude-sonnet-4-5").await, 200);
    assert_eq!(call(&gw.url, BO, "claude-sonnet-4-5").await, 429);

    let by_team: Value = admin(&gw, "/admin/v1/usage?group_by=team&since=7d")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(by_team["group_by"], "team");
    let team = |name: &str| {
        by_team["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["group"] == name)
            .map(|r| r["usage"]["requests"].clone())
    };
    assert_eq!(team("platform"), Some(json!(2)), "{by_team}");
    assert_eq!(team("=data,team"), Some(json!(1)), "{by_team}");
    assert_eq!(by_team["total"]["requests"], 3);

    let models: Value = admin(&gw, "/admin/v1/usage?group_by=model")
        .await
        .json()
        .await
        .expect("json");
    let rows = models["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{models}");
    // Most spent first: two Sonnet calls cost more than one Opus call here.
    assert_eq!(rows[0]["group"], "claude-sonnet-4-5", "{models}");
    assert_eq!(rows[0]["usage"]["requests"], 2);
    let cost = |r: &Value| r["usage"]["cost_usd"].as_f64().expect("cost");
    assert!(cost(&rows[0]) >= cost(&rows[1]));

    let csv = admin(&gw, "/admin/v1/usage?group_by=team&format=csv").await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.expect("text");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("team,requests,tokens_in,tokens_out,cache_read_tokens,cache_write_tokens,cost_usd,tokens_saved")
    );
    assert!(csv.contains("\n\"'=data,team\",1,"), "{csv}");

    for bad in [
        "group_by=color",
        "since=yesterday",
        "since=2026-12-03&until=2026-01-01",
        "since=400d",
    ] {
        let refused = admin(&gw, &format!("/admin/v1/usage?{bad}")).await;
        assert_eq!(refused.status(), 400, "{bad}");
    }

    let overview: Value = admin(&gw, "/admin/v1/overview")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(overview["today"]["requests"], 3, "{overview}");
    assert_eq!(overview["rate_limited_today"], 1);
    assert_eq!(overview["last_errors"][0]["status"], 429);
    assert_eq!(overview["last_errors"][0]["user"], "bo");
    assert_eq!(overview["by_user"].as_array().map(Vec::len), Some(2));
    assert_eq!(overview["providers"][0]["circuit"], "closed");
    // Ana spent two calls of ~2,400 tokens each out of 5,000 a day.
    let budget = &overview["budgets"][0];
    assert_eq!(budget["subject"], "user:ana", "{overview}");
    assert_eq!(budget["kind"], "tokens_per_day");
    assert!(budget["percent"].as_f64().expect("percent") >= 50.0);

    let routes: Value = admin(&gw, "/admin/v1/routes")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(routes["routes"][0]["provider"], "anthropic");
    let limits: Value = admin(&gw, "/admin/v1/limits")
        .await
        .json()
        .await
        .expect("json");
    assert!(
        limits["rules"].as_array().is_some_and(|r| !r.is_empty()),
        "{limits}"
    );
    let providers: Value = admin(&gw, "/admin/v1/providers")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(providers["data"][0]["name"], "anthropic");

    for path in ["/admin/v1/usage", "/admin/v1/overview", "/admin/v1/routes"] {
        let anonymous = client()
            .get(format!("{}{path}", gw.admin_url))
            .send()
            .await
            .expect("answers");
        assert_eq!(anonymous.status(), 401, "{path}");
        let caller = client()
            .get(format!("{}{path}", gw.admin_url))
            .bearer_auth(ANA)
            .send()
            .await
            .expect("answers");
        assert_eq!(
            caller.status(),
            401,
            "a caller's key is not the admin token: {path}"
        );
    }
}
