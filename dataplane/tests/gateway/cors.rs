//! CORS for browser front ends: a configured origin's preflight is answered and the
//! gateway's headers are exposed to its page; any other origin gets neither.

use crate::fakes::{anthropic_reply, client, FakeUpstream, TestGateway};
use serde_json::json;

const APP: &str = "https://app.example.com";

#[tokio::test]
async fn only_configured_origins_may_call_from_a_page() {
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&format!(
        "providers:\n  anthropic: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-real }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: anthropic }}\ngateway: {{ cors_origins: [\"{APP}\"] }}\n",
        upstream.url()
    ))
    .await;
    let preflight = |origin: &str, asked: String| {
        client()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/chat/completions", gw.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", asked)
            .send()
    };
    let ok = preflight(APP, "authorization, content-type".into())
        .await
        .expect("answers");
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], APP);
    assert_eq!(
        ok.headers()["access-control-allow-headers"],
        "authorization, content-type"
    );
    assert_eq!(ok.headers()["vary"], "Origin");
    let evil = preflight("https://evil.example", "authorization".into())
        .await
        .expect("answers");
    assert_eq!(evil.status(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // A preflight cannot make the gateway echo a header list of any size.
    let long = preflight(APP, "x-a, ".repeat(400)).await.expect("answers");
    assert!(long.headers()["access-control-allow-headers"]
        .to_str()
        .is_ok_and(|h| h.starts_with("authorization, content-type, x-api-key")));
    assert_eq!(upstream.received().len(), 0, "preflights forward nothing");

    let call = |origin: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .header("origin", origin)
            .json(&json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let answered = call(APP).await.expect("answers");
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.headers()["access-control-allow-origin"], APP);
    assert!(answered.headers()["access-control-expose-headers"]
        .to_str()
        .is_ok_and(|h| h.contains("x-ai-gateway-model")));
    let other = call("https://evil.example").await.expect("answers");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
