//! The operator's compile-and-push path into a real data-plane process: a
//! RateLimitPolicy change is enforced on the very next request.

use crate::fakes::{client, fixture, FakeUpstream, Reply};
use crate::process::{tempdir, Running};
use ai_gateway_operator::namespace::Namespace;
use ai_gateway_operator::push::Pusher;
use serde_json::json;

const TOKEN: &str = "admin-token-for-tests";

fn objects(upstream: &str, rpm: u32) -> String {
    format!(
        r#"
apiVersion: ai-gateway.dev/v1alpha1
kind: AIGateway
metadata: {{ name: gw, namespace: ai }}
spec: {{ audit: {{ sink: none }} }}
---
apiVersion: ai-gateway.dev/v1alpha1
kind: ProviderRoute
metadata: {{ name: anthropic, namespace: ai }}
spec:
  gatewayRef: gw
  type: anthropic
  endpoint: "{upstream}"
  credentialsRef: {{ secretName: anthropic-creds, apiKeyKey: api-key }}
  models: ["claude-*"]
---
apiVersion: ai-gateway.dev/v1alpha1
kind: RateLimitPolicy
metadata: {{ name: users, namespace: ai }}
spec:
  gatewayRef: gw
  rules:
    - {{ subject: user, limits: {{ requests_per_minute: {rpm} }} }}
---
apiVersion: v1
kind: Secret
metadata: {{ name: anthropic-creds, namespace: ai }}
stringData: {{ api-key: sk-ant-from-the-cluster }}
---
apiVersion: v1
kind: Secret
metadata:
  name: key-dev1
  namespace: ai
  labels: {{ ai-gateway.dev/key: "true", ai-gateway.dev/user: dev1 }}
stringData: {{ key: gw_dev1 }}
"#
    )
}

async fn call(api: &str) -> u16 {
    client()
        .post(format!("{api}/v1/claude/v1/messages"))
        .header("x-api-key", "gw_dev1")
        .json(&json!({"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_pushed_policy_change_is_enforced_on_the_next_request() {
    crate::fakes::within_one_rate_window().await;
    let upstream =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/anthropic/message_text.json")))
            .await;
    let dir = tempdir();
    let config = dir.path().join("boot.yaml");
    // The pod boots with nothing routed, as before the operator's first push.
    std::fs::write(&config, "audit: { sink: none }\n").expect("write");
    let gw = Running::start_with(&config, &["--admin-token", TOKEN]);
    assert_eq!(call(&gw.api).await, 404);

    let pusher = Pusher::new(TOKEN).expect("client");
    let first = Namespace::from_yaml(&objects(&upstream.url(), 5))
        .expect("objects")
        .compile("gw")
        .expect("gw");
    let version = pusher
        .push_until_applied(&gw.admin, &first.snapshot, 3)
        .await
        .expect("applied");
    assert_eq!(version, first.snapshot.effective_version());
    assert_eq!(call(&gw.api).await, 200);
    assert_eq!(call(&gw.api).await, 200);
    assert_eq!(
        upstream.last().header("x-api-key"),
        Some("sk-ant-from-the-cluster")
    );

    // kubectl apply of a stricter policy: two requests already used this minute.
    let stricter = Namespace::from_yaml(&objects(&upstream.url(), 2))
        .expect("objects")
        .compile("gw")
        .expect("gw");
    assert_ne!(stricter.snapshot.effective_version(), version);
    pusher
        .push_until_applied(&gw.admin, &stricter.snapshot, 3)
        .await
        .expect("applied");
    assert_eq!(call(&gw.api).await, 429);

    // A wrong token is refused and the data plane keeps serving what it had.
    let intruder = Pusher::new("wrong").expect("client");
    assert!(intruder.push(&gw.admin, &first.snapshot).await.is_err());
    let status: serde_json::Value = client()
        .get(format!("{}/readyz", gw.admin))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        status["config_version"],
        stricter.snapshot.effective_version()
    );
}
