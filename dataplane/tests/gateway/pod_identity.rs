//! Callers known by their pod's address (`auth.pod_identity`): a fake API server on
//! loopback serves the pod list and a watch, as the real one does, and each caller
//! connects from its own loopback address (127.0.0.2, .3, …) as if it were that pod.

use crate::fakes::{client, fixture, FakeUpstream, Reply, TestGateway};
use crate::kubernetes_auth::kube_client;
use ai_gateway_snapshot::key_sha256;
use bytes::Bytes;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn pod(namespace: &str, name: &str, account: &str, ip: &str, host_network: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                     "resourceVersion": "10"},
        "spec": {"serviceAccountName": account, "hostNetwork": host_network,
                 "containers": [{"name": "main", "image": "workspace"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

/// The pods at start, and one (bob's) that the watch announces a moment later.
async fn fake_api_server() -> FakeUpstream {
    FakeUpstream::start(|req| {
        let path = req.path.split('?').next().unwrap_or_default();
        let watching = req.path.contains("watch=true") || req.path.contains("watch=1");
        let object = match path {
            "/api/v1/pods" if watching => {
                let added = json!({"type": "ADDED",
                    "object": pod("dev-bob", "bob-workspace", "default", "127.0.0.4", false)});
                // Then the watch stays open, quiet, as a real one does.
                let mut reply = Reply::json(200, Bytes::new());
                reply.chunks = vec![Bytes::from(format!("{added}\n")), Bytes::new()];
                reply.chunk_delay = Duration::from_millis(300);
                reply.stall_before_last = Some(Duration::from_secs(60));
                return reply;
            }
            "/api/v1/pods" => {
                assert!(
                    req.path.contains("fieldSelector=status.phase%3DRunning"),
                    "{}",
                    req.path
                );
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "10"},
                "items": [
                    pod("dev-alice", "alice-workspace", "workspace", "127.0.0.2", false),
                    pod("kube-system", "node-exporter", "node-exporter", "127.0.0.3", true),
                ]})
            }
            "/api/v1/namespaces/dev-alice/serviceaccounts/workspace" => json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "workspace", "namespace": "dev-alice",
                             "labels": {"ai-gateway.dev/user": "alice"}},
            }),
            "/api/v1/namespaces/dev-alice" => json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "dev-alice",
                             "labels": {"ai-gateway.dev/team": "platform",
                                        "ai-gateway.dev/serviceaccount-identity": "true"}},
            }),
            other => {
                return Reply::json(
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("{other} not found"), "reason": "NotFound", "code": 404})
                    .to_string(),
                )
            }
        };
        Reply::json(200, object.to_string())
    })
    .await
}

fn from(last_octet: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)))
        .build()
        .expect("client")
}

/// Claude on Bedrock, as `aws bedrock-runtime invoke-model` sends it, signed with the
/// workspace's own (foreign) credentials or none at all.
async fn invoke(caller: &reqwest::Client, gw: &TestGateway, signed: bool) -> (u16, Value) {
    let mut req = caller
        .post(format!(
            "{}/v1/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke",
            gw.url
        ))
        .json(
            &json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hi"}]}),
        );
    if signed {
        req = req.header("x-amz-date", "20261203T120000Z").header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=ASIAWORKSPACE/20261203/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000",
        );
    }
    let resp = req.send().await.expect("answers");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or_default(),
    )
}

async fn user_of(caller: &reqwest::Client, gw: &TestGateway) -> Value {
    let usage: Value = caller
        .get(format!("{}/v1/usage", gw.url))
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("json");
    usage["user"].clone()
}

#[tokio::test]
async fn a_pod_with_no_secret_is_metered_as_its_service_account_and_host_addresses_are_refused() {
    let bedrock = FakeUpstream::start(|_| {
        Reply::json(200, fixture("upstream/bedrock/invoke_anthropic.json"))
    })
    .await;
    let api = fake_api_server().await;
    let gw = TestGateway::start(&format!(
        r#"
providers:
  bedrock: {{ type: bedrock, base_url: "{}", region: us-east-1, access_key_id: AKIDPROVIDER, secret_access_key: provider-secret }}
routes:
  - {{ models: ["us.anthropic.*"], provider: bedrock }}
auth:
  mode: kubernetes
  pod_identity: true
  keys:
    - {{ id: ci-bot, sha256: "{}", user: ci-bot }}
"#,
        bedrock.url(),
        key_sha256("gw_ci_bot_key")
    ))
    .await;
    assert!(gw
        .gateway
        .services
        .pods
        .use_client(kube_client(&api.url()).await));

    // alice's workspace pod: the aws cli signs with whatever it has; no gateway secret.
    let alice = from(2);
    let (status, body) = invoke(&alice, &gw, true).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = invoke(&alice, &gw, false).await;
    assert_eq!(status, 200, "--no-sign-request too: {body}");
    assert_eq!(user_of(&alice, &gw).await, "alice");
    let sent = bedrock.last();
    assert!(
        sent.header("authorization")
            .is_some_and(|a| a.contains("Credential=AKIDPROVIDER/")),
        "the gateway signs upstream with its own credentials"
    );

    // A host-network pod's address is its node's: whoever calls from it is refused.
    let (status, body) = invoke(&from(3), &gw, false).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("host-network"), "{body}");

    // An address no pod has is refused.
    let (status, body) = invoke(&from(5), &gw, true).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("no running pod"), "{body}");

    // bob's pod arrives through the watch, with no labels: named by namespace/account.
    let bob = from(4);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = invoke(&bob, &gw, false).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch never added bob"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(user_of(&bob, &gw).await, "dev-bob/default");

    // A gateway key still works from any address, and names its own caller.
    let keyed = client()
        .get(format!("{}/v1/usage", gw.url))
        .bearer_auth("gw_ci_bot_key")
        .send()
        .await
        .expect("usage")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(keyed["user"], "ci-bot");

    let lists = api
        .received()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/pods") && !r.path.contains("watch="))
        .count();
    assert_eq!(lists, 1, "one list, then the watch");
}
