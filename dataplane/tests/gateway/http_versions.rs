//! Callers speak HTTP/1.1 or HTTP/2 with prior knowledge on the same port; each
//! connection is served in the protocol its first bytes name.

use crate::fakes::{anthropic_reply, FakeUpstream, TestGateway};
use serde_json::json;

#[tokio::test]
async fn http1_and_http2_prior_knowledge_are_both_served() {
    let upstream = FakeUpstream::start(anthropic_reply).await;
    let gw = TestGateway::start(&format!(
        "providers:\n  anthropic: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-real }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: anthropic }}\n",
        upstream.url()
    ))
    .await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let h1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    for (client, version) in [(&h2, http::Version::HTTP_2), (&h1, http::Version::HTTP_11)] {
        let answer = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers");
        assert_eq!(answer.version(), version);
        assert_eq!(answer.status(), 200);
        let health = client
            .get(format!("{}/health", gw.url))
            .send()
            .await
            .expect("answers");
        assert_eq!(health.status(), 200);
    }
}
