//! Workspace pods calling with projected ServiceAccount tokens: reviewed by a fake API
//! server on loopback that speaks the TokenReview, ServiceAccount and Namespace JSON
//! of the real one, with identity from labels and one review per token.

use crate::fakes::{client, fake_anthropic, FakeUpstream, Reply, TestGateway};
use ai_gateway_snapshot::key_sha256;
use base64::Engine;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

fn projected_token(subject: &str) -> String {
    let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({"aud": ["ai-gateway"], "exp": now + 3600, "sub": subject});
    format!(
        "{}.{}.c2lnbmF0dXJl",
        enc(br#"{"alg":"RS256"}"#),
        enc(claims.to_string().as_bytes())
    )
}

/// Answers as an API server does for a data plane bound to `system:auth-delegator`.
async fn fake_api_server(good_token: String, trust_sa_labels: bool) -> FakeUpstream {
    FakeUpstream::start(move |req| {
        let object = match req.path.split('?').next().unwrap_or_default() {
            "/apis/authentication.k8s.io/v1/tokenreviews" => {
                let spec = req.json()["spec"].clone();
                let status = if spec["token"] == good_token.as_str() && spec["audiences"] == json!(["ai-gateway"]) {
                    json!({"authenticated": true, "audiences": ["ai-gateway"],
                           "user": {"username": "system:serviceaccount:dev-alice:workspace",
                                    "groups": ["system:serviceaccounts"]}})
                } else {
                    json!({"authenticated": false, "error": "[invalid bearer token, token has expired]"})
                };
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                       "metadata": {"creationTimestamp": null}, "spec": spec, "status": status})
            }
            "/api/v1/namespaces/dev-alice/serviceaccounts/workspace" => json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "workspace", "namespace": "dev-alice",
                             "labels": {"ai-gateway.dev/user": "alice"}},
            }),
            "/api/v1/namespaces/dev-alice" => json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "dev-alice",
                             "labels": {"ai-gateway.dev/team": "platform", "ai-gateway.dev/workspace": "ws-alice",
                                        "ai-gateway.dev/serviceaccount-identity": trust_sa_labels.to_string()}},
            }),
            other => {
                return Reply::json(404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("{other} not found"), "reason": "NotFound", "code": 404}).to_string())
            }
        };
        Reply::json(200, object.to_string())
    })
    .await
}

pub async fn kube_client(api_server: &str) -> kube::Client {
    let kubeconfig = format!(
        r#"
apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{api_server}"}}}}]
users: [{{name: dataplane, user: {{token: dataplane-sa-token}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: dataplane}}}}]
current-context: fake
"#
    );
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

async fn gateway(upstream: &FakeUpstream, api_server: &str) -> TestGateway {
    let config = format!(
        r#"
providers:
  anthropic: {{ type: anthropic, base_url: "{}", api_key: sk-ant-real }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
auth:
  mode: kubernetes
  keys:
    - {{ id: ci-bot, sha256: "{}", user: ci-bot }}
rate_limits:
  per_user:
    alice: {{ requests_per_minute: 2 }}
"#,
        upstream.url(),
        key_sha256("gw_ci_bot_key")
    );
    let gw = TestGateway::start(&config).await;
    assert!(gw
        .gateway
        .services
        .tokens
        .use_client(kube_client(api_server).await));
    gw
}

async fn call(gw: &TestGateway, token: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .bearer_auth(token)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or_default(),
    )
}

/// How many TokenReviews the fake API server has been asked for.
fn reviews_made(api: &FakeUpstream) -> usize {
    api.received()
        .iter()
        .filter(|r| r.path.split('?').next() == Some("/apis/authentication.k8s.io/v1/tokenreviews"))
        .count()
}

/// What `/v1/usage` reports for the caller holding `token`.
async fn usage_of(gw: &TestGateway, token: &str) -> Value {
    client()
        .get(format!("{}/v1/usage", gw.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_service_account_token_names_the_caller_from_labels_and_is_reviewed_once() {
    crate::fakes::within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let token = projected_token("system:serviceaccount:dev-alice:workspace");
    let api = fake_api_server(token.clone(), true).await;
    let gw = gateway(&upstream, &api.url()).await;

    assert_eq!(call(&gw, &token).await.0, 200);
    assert_eq!(call(&gw, &token).await.0, 200);
    // alice's own limit (from the ServiceAccount's user label) stops the third call.
    let (status, body) = call(&gw, &token).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let reviews: Vec<_> = api
        .received()
        .into_iter()
        .filter(|r| r.path.split('?').next() == Some("/apis/authentication.k8s.io/v1/tokenreviews"))
        .collect();
    assert_eq!(reviews.len(), 1, "later calls use the cached review");
    assert_eq!(
        reviews[0].header("authorization"),
        Some("Bearer dataplane-sa-token")
    );
    // The workspace's token is never sent upstream; the provider key is.
    let sent = upstream.last();
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-real"));
    assert!(sent.header("authorization").is_none());

    let usage = usage_of(&gw, &token).await;
    let text = usage.to_string();
    assert!(
        text.contains("alice") && text.contains("platform"),
        "{usage}"
    );
}

#[tokio::test]
async fn a_rejected_token_gets_401_and_gateway_keys_still_work() {
    let upstream = fake_anthropic().await;
    let api = fake_api_server(projected_token("someone-else"), true).await;
    let gw = gateway(&upstream, &api.url()).await;
    let reviews = || reviews_made(&api);

    let expired = projected_token("system:serviceaccount:x:y");
    for _ in 0..2 {
        let (status, body) = call(&gw, &expired).await;
        assert_eq!(status, 401);
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "authentication_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("token has expired"),
            "{body}"
        );
    }
    assert_eq!(
        reviews(),
        1,
        "a rejection is remembered, not reviewed again"
    );

    // A mistyped gateway key is no token: it never reaches the API server.
    let (status, body) = call(&gw, "gw_ci_bot_kye").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(reviews(), 1);

    assert_eq!(call(&gw, "gw_ci_bot_key").await.0, 200);
    assert_eq!(
        upstream.received().len(),
        1,
        "only the key's call went upstream"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_503_not_a_free_pass() {
    let upstream = fake_anthropic().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let gw = gateway(&upstream, &url).await;
    let (status, body) = call(
        &gw,
        &projected_token("system:serviceaccount:dev-alice:workspace"),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot be checked"),
        "{body}"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn service_account_labels_count_only_where_the_namespace_allows_it() {
    let upstream = fake_anthropic().await;
    let token = projected_token("system:serviceaccount:dev-alice:workspace");
    let api = fake_api_server(token.clone(), false).await;
    let gw = gateway(&upstream, &api.url()).await;
    // The ServiceAccount says "alice", but its namespace does not vouch for that: the
    // caller is the account itself, and alice's limit does not apply to it.
    for _ in 0..3 {
        assert_eq!(call(&gw, &token).await.0, 200);
    }
    let usage = usage_of(&gw, &token).await;
    let text = usage.to_string();
    assert!(text.contains("dev-alice/workspace"), "{usage}");
    assert!(!text.contains("\"alice\""), "{usage}");
}

/// A flood of junk and of plausible but unknown tokens: junk never reaches the API
/// server, one address cannot have more than its share reviewed, and a real token from
/// another workspace is served at once meanwhile.
#[tokio::test]
async fn a_flood_of_junk_tokens_cannot_turn_the_gateway_against_the_api_server() {
    crate::fakes::within_one_rate_window().await;
    let upstream = fake_anthropic().await;
    let good = projected_token("system:serviceaccount:dev-alice:workspace");
    let api = fake_api_server(good.clone(), true).await;
    let gw = gateway(&upstream, &api.url()).await;
    let reviews = || reviews_made(&api);
    let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let jwt = |claims: Value| {
        format!(
            "{}.{}.c2ln",
            enc(br#"{"alg":"RS256"}"#),
            enc(claims.to_string().as_bytes())
        )
    };
    let mut junk = Vec::new();
    for n in 0..200 {
        junk.push(format!(
            "{}.{}.c2ln",
            enc(format!("h{n}").as_bytes()),
            enc(format!("not json {n}").as_bytes())
        ));
        junk.push(jwt(
            json!({"aud": ["ai-gateway"], "exp": now - 10, "sub": n}),
        ));
        junk.push(jwt(
            json!({"aud": ["kubernetes"], "exp": now + 3600, "sub": n}),
        ));
    }
    for token in &junk {
        assert_eq!(call(&gw, token).await.0, 401);
    }
    assert_eq!(reviews(), 0, "junk is refused on its own claims");

    // Plausible tokens the API server does not know, all from one address.
    let mut limited = 0;
    for n in 0..30 {
        let token =
            jwt(json!({"aud": ["ai-gateway"], "exp": now + 3600, "sub": format!("ghost-{n}")}));
        match call(&gw, &token).await.0 {
            401 => {}
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(reviews(), 20, "one address gets 20 reviews a minute");
    assert_eq!(limited, 10);

    // alice's real token, from her own workspace's address, is not held back.
    let alice = reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let resp = alice
        .post(format!("{}/v1/claude/v1/messages", gw.url))
        .bearer_auth(&good)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
