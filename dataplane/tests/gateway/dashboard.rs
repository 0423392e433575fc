//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven by Selenium): after a scripted load the page shows the
//! figures the admin API reports, every team, user, provider and error, takes the
//! admin token out of the address bar, and logs nothing to the console.

use crate::fakes::{anthropic_reply, client, FakeUpstream, TestGateway};
use crate::process::{python_has, run_client};
use ai_gateway_snapshot::key_sha256;
use serde_json::json;

const KEYS: [(&str, &str, &str); 3] = [
    ("gw_dash_ana", "ana", "platform"),
    ("gw_dash_bo", "bo", "data"),
    ("gw_dash_cy", "cy", "data"),
];

fn chromium_present() -> bool {
    let present = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver"
        );
        eprintln!("SKIPPED: chromium or chromedriver not installed");
    }
    present
}

#[tokio::test]
async fn the_dashboard_shows_what_the_admin_api_reports() {
    if !python_has(&["selenium"]) || !chromium_present() {
        return;
    }
    crate::fakes::within_one_rate_window().await;
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let keys: Vec<String> = KEYS
        .iter()
        .map(|(key, user, team)| {
            format!(
                "    - {{ id: k-{user}, sha256: \"{}\", user: {user}, team: {team} }}",
                key_sha256(key)
            )
        })
        .collect();
    let gw = TestGateway::start(&format!(
        "providers:\n  anthropic: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-real }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: anthropic }}\nauth:\n  mode: keys\n  keys:\n{}\nrate_limits:\n  per_user:\n    cy: {{ requests_per_minute: 1 }}\n    ana: {{ tokens_per_day: 9000 }}\n",
        upstream.url(),
        keys.join("\n")
    ))
    .await;
    // A scripted load: three callers, two models, one refusal and one unknown model.
    for (i, (key, _, _)) in KEYS.iter().cycle().take(8).enumerate() {
        let model = if i % 3 == 0 {
            "claude-opus-4-5"
        } else {
            "claude-sonnet-4-5"
        };
        client()
            .post(format!("{}/v1/claude/v1/messages", gw.url))
            .header("x-api-key", *key)
            .json(&json!({"model": model, "max_tokens": 32,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers");
    }
    let dir = crate::process::tempdir();
    let screenshot = dir.path().join("dashboard.png");
    let results = run_client(
        "dashboard_browser.py",
        &[
            &gw.admin_url,
            "admin-token",
            screenshot.to_str().expect("path"),
        ],
    )
    .await;
    let result = &results[0];
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["problems"], json!([]));
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000));
    if let Ok(keep) = std::env::var("AI_GATEWAY_DASHBOARD_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).expect("copy the screenshot");
    }
}
