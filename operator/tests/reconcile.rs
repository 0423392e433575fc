//! The reconciler against kube's mock API service: every request it sends is answered
//! here in order, asserting the exact objects and patches, while config pushes go to
//! a fake data-plane admin port over real HTTP on loopback.

use ai_gateway_crds::AIGateway;
use ai_gateway_operator::controller::{error_policy, reconcile, Context};
use ai_gateway_operator::metrics::Metrics;
use ai_gateway_snapshot::Snapshot;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NS: &str = "ai";
const GW: &str = "ai-gateway";
const IMAGE: &str = "registry.local/ai-gateway:test";

/// Plays the API server: one expected request at a time.
struct ApiServer(Handle);

impl ApiServer {
    /// Takes the next request, checks method and path, answers with `reply(body)`,
    /// and hands back the body sent and the full URI.
    async fn expect(
        &mut self,
        method: &str,
        path: &str,
        reply: impl FnOnce(&Value) -> Value,
    ) -> (Value, String) {
        let seen = self.expect_request(method, path, reply).await;
        (seen.body, seen.uri)
    }

    /// `expect`, also handing back the request's content type.
    async fn expect_request(
        &mut self,
        method: &str,
        path: &str,
        reply: impl FnOnce(&Value) -> Value,
    ) -> Seen {
        let (req, send) = tokio::time::timeout(Duration::from_secs(10), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("the operator never sent {method} {path}"))
            .expect("the mock service closed");
        let uri = req.uri().to_string();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(req.method().as_str(), method, "for {uri}");
        assert!(
            uri == path || uri.starts_with(&format!("{path}?")),
            "expected {method} {path}, got {uri}"
        );
        let bytes = req.into_body().collect_bytes().await.expect("body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request body is JSON")
        };
        let answer = reply(&body);
        let status = answer["code"].as_u64().unwrap_or(200) as u16;
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                .expect("response"),
        );
        Seen {
            body,
            uri,
            content_type,
        }
    }

    async fn list(&mut self, path: &str, items: Vec<Value>) {
        self.expect(
            "GET",
            path,
            |_| json!({"metadata": {"resourceVersion": "1"}, "items": items}),
        )
        .await;
    }

    /// A server-side apply: answered with the object as applied.
    async fn apply(&mut self, path: &str) -> Value {
        let seen = self.expect_request("PATCH", path, |b| b.clone()).await;
        seen.assert_forced_apply();
        seen.body
    }

    /// A status written by server-side apply: answered with `object`; hands back the
    /// applied document.
    async fn status_patch(&mut self, path: &str, object: &Value) -> Value {
        let answer = object.clone();
        let seen = self.expect_request("PATCH", path, move |_| answer).await;
        seen.assert_forced_apply();
        assert_eq!(
            seen.body["apiVersion"], object["apiVersion"],
            "{}",
            seen.body
        );
        assert_eq!(seen.body["kind"], object["kind"], "{}", seen.body);
        seen.body
    }

    async fn event(&mut self) -> Value {
        self.expect(
            "POST",
            &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
            |b| b.clone(),
        )
        .await
        .0
    }

    /// Asserts the reconcile sent nothing more.
    async fn done(&mut self) {
        let more = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        if let Ok(Some((req, _))) = more {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

/// One request the operator sent.
struct Seen {
    body: Value,
    uri: String,
    content_type: String,
}

impl Seen {
    /// Server-side apply as the operator's field manager, taking over conflicting fields.
    fn assert_forced_apply(&self) {
        let uri = &self.uri;
        assert_eq!(self.content_type, "application/apply-patch+yaml", "{uri}");
        assert!(uri.contains("fieldManager=ai-gateway-operator"), "{uri}");
        assert!(uri.contains("force=true"), "{uri}");
    }
}

/// A data plane's admin port: answers the version it serves and takes pushes.
#[derive(Default)]
struct FakeAdmin {
    version: Mutex<String>,
    puts: Mutex<Vec<(String, Snapshot)>>,
}

async fn start_fake_admin(admin: Arc<FakeAdmin>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let admin = admin.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let admin = admin.clone();
                        async move {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let put = req.method() == http::Method::PUT;
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            if put {
                                let snapshot: Snapshot =
                                    serde_json::from_slice(&body.unwrap_or_default())
                                        .expect("snapshot");
                                *admin.version.lock().expect("lock") = snapshot.effective_version();
                                admin.puts.lock().expect("lock").push((auth, snapshot));
                            }
                            let version = admin.version.lock().expect("lock").clone();
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from(json!({"version": version}).to_string()),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

fn context(admin_port: u16) -> (Arc<Context>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let mut ctx = Context::new(
        client,
        Arc::new(Metrics::default()),
        IMAGE.into(),
        vec![],
        None,
    )
    .expect("context");
    ctx.admin_port = admin_port;
    (Arc::new(ctx), ApiServer(handle))
}

fn gateway(status: Option<Value>) -> Value {
    let mut gw = json!({
        "apiVersion": "ai-gateway.dev/v1alpha1",
        "kind": "AIGateway",
        "metadata": {"name": GW, "namespace": NS, "uid": "gw-uid-1", "generation": 2},
        "spec": {"replicas": 2, "auth": {"mode": "keys"}},
    });
    if let Some(status) = status {
        gw["status"] = status;
    }
    gw
}

fn route(name: &str, gateway_ref: &str, secret: &str, status: Option<Value>) -> Value {
    let mut route = json!({
        "apiVersion": "ai-gateway.dev/v1alpha1",
        "kind": "ProviderRoute",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {
            "gatewayRef": gateway_ref,
            "type": "anthropic",
            "endpoint": "http://127.0.0.1:9",
            "credentialsRef": {"secretName": secret, "apiKeyKey": "api-key"},
            "models": ["claude-*"],
        },
    });
    if let Some(status) = status {
        route["status"] = status;
    }
    route
}

fn policy(status: Option<Value>) -> Value {
    let mut policy = json!({
        "apiVersion": "ai-gateway.dev/v1alpha1",
        "kind": "RateLimitPolicy",
        "metadata": {"name": "limits", "namespace": NS, "generation": 1},
        "spec": {"gatewayRef": GW, "rules": [
            {"subject": "user", "limits": {"requests_per_minute": 60}},
        ]},
    });
    if let Some(status) = status {
        policy["status"] = status;
    }
    policy
}

fn secret(name: &str, labels: Value, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "stringData": data,
        "data": data.as_object().map(|m| m.iter().map(|(k, v)| {
            use base64::Engine;
            (k.clone(), json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default())))
        }).collect::<serde_json::Map<_, _>>()),
    })
}

fn namespace_secrets() -> Vec<Value> {
    vec![
        secret(
            "anthropic-creds",
            json!({}),
            json!({"api-key": "sk-ant-upstream"}),
        ),
        secret(
            "alice-key",
            json!({"ai-gateway.dev/key": "true", "ai-gateway.dev/user": "alice", "ai-gateway.dev/team": "platform"}),
            json!({"key": "gw-alice-0123456789"}),
        ),
    ]
}

fn ready_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

fn spawn_reconcile(gw: Value, ctx: Arc<Context>) -> JoinHandle<Action> {
    let gw: AIGateway = serde_json::from_value(gw).expect("gateway");
    tokio::spawn(async move { reconcile(Arc::new(gw), ctx).await.expect("reconcile") })
}

const CRD_PATH: &str = "/apis/ai-gateway.dev/v1alpha1/namespaces/ai";

fn condition<'a>(status: &'a Value, r#type: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == r#type))
        .unwrap_or_else(|| panic!("no {type} condition in {status}"))
}

/// Lists, then the owned objects; returns the applied config snapshot.
async fn expect_lists_and_applies(
    api: &mut ApiServer,
    gw: &Value,
    routes: Vec<Value>,
    policies: Vec<Value>,
    secrets: Vec<Value>,
) -> (Snapshot, Value) {
    api.list(&format!("{CRD_PATH}/aigateways"), vec![gw.clone()])
        .await;
    api.list(&format!("{CRD_PATH}/providerroutes"), routes)
        .await;
    api.list(&format!("{CRD_PATH}/ratelimitpolicies"), policies)
        .await;
    api.list("/api/v1/namespaces/ai/secrets", secrets).await;
    let sa = api
        .apply("/api/v1/namespaces/ai/serviceaccounts/ai-gateway-dataplane")
        .await;
    assert_eq!(sa["metadata"]["ownerReferences"][0]["uid"], "gw-uid-1");
    let config = api
        .apply("/api/v1/namespaces/ai/secrets/ai-gateway-config")
        .await;
    let snapshot: Snapshot = serde_json::from_str(
        config["stringData"]["config.json"]
            .as_str()
            .expect("config.json"),
    )
    .expect("the config Secret holds a snapshot");
    let deployment = api
        .apply("/apis/apps/v1/namespaces/ai/deployments/ai-gateway")
        .await;
    (snapshot, deployment)
}

#[tokio::test]
async fn a_new_gateway_gets_its_objects_a_pushed_snapshot_and_status() {
    let admin = Arc::new(FakeAdmin::default());
    let port = start_fake_admin(admin.clone()).await;
    let (ctx, mut api) = context(port);
    let gw = gateway(None);
    let task = spawn_reconcile(gw.clone(), ctx);

    api.list(&format!("{CRD_PATH}/aigateways"), vec![gw.clone()])
        .await;
    api.list(
        &format!("{CRD_PATH}/providerroutes"),
        vec![
            route("anthropic", GW, "anthropic-creds", None),
            route("stray", "no-such-gateway", "anthropic-creds", None),
        ],
    )
    .await;
    api.list(&format!("{CRD_PATH}/ratelimitpolicies"), vec![policy(None)])
        .await;
    api.list("/api/v1/namespaces/ai/secrets", namespace_secrets())
        .await;

    // No admin Secret yet: the operator makes one, owned by the gateway.
    let (admin_secret, uri) = api
        .expect("POST", "/api/v1/namespaces/ai/secrets", |b| b.clone())
        .await;
    assert!(uri.contains("fieldManager=ai-gateway-operator"), "{uri}");
    assert_eq!(admin_secret["metadata"]["name"], "ai-gateway-admin");
    assert_eq!(
        admin_secret["metadata"]["ownerReferences"][0]["uid"],
        "gw-uid-1"
    );
    assert_eq!(
        admin_secret["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    let token = admin_secret["stringData"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(token.len(), 64);

    let sa = api
        .apply("/api/v1/namespaces/ai/serviceaccounts/ai-gateway-dataplane")
        .await;
    assert_eq!(sa["automountServiceAccountToken"], false);

    let config = api
        .apply("/api/v1/namespaces/ai/secrets/ai-gateway-config")
        .await;
    let snapshot: Snapshot = serde_json::from_str(
        config["stringData"]["config.json"]
            .as_str()
            .expect("config.json"),
    )
    .expect("the config Secret holds a snapshot");
    let provider = &snapshot.providers["anthropic"];
    assert_eq!(provider.api_key.as_deref(), Some("sk-ant-upstream"));
    assert_eq!(snapshot.auth.keys.len(), 1);
    assert_eq!(snapshot.auth.keys[0].user.as_deref(), Some("alice"));
    assert_eq!(snapshot.auth.keys[0].team.as_deref(), Some("platform"));
    assert!(
        !config.to_string().contains("gw-alice-0123456789"),
        "a caller's plaintext key must not reach the snapshot"
    );
    assert_eq!(snapshot.rate_limits.rules.len(), 1);

    let deployment = api
        .apply("/apis/apps/v1/namespaces/ai/deployments/ai-gateway")
        .await;
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(container["image"], IMAGE);
    assert_eq!(
        container["args"],
        json!([
            "--config",
            "/etc/ai-gateway/config.json",
            "--log-json",
            "--admin-listen",
            "0.0.0.0:8091",
            "--listen",
            "0.0.0.0:8090",
            "--data-dir",
            "/var/lib/ai-gateway"
        ])
    );
    assert_eq!(
        container["env"][1]["valueFrom"]["secretKeyRef"],
        json!({"name": "ai-gateway-admin", "key": "token"})
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "ai-gateway-config"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "keys mode needs no token"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    let service = api.apply("/api/v1/namespaces/ai/services/ai-gateway").await;
    assert_eq!(service["spec"]["ports"][0]["port"], 8090);
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/instance"],
        "ai-gateway"
    );
    let pdb = api
        .apply("/apis/policy/v1/namespaces/ai/poddisruptionbudgets/ai-gateway")
        .await;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let netpol = api
        .apply("/apis/networking.k8s.io/v1/namespaces/ai/networkpolicies/ai-gateway")
        .await;
    let admin_rule = &netpol["spec"]["ingress"][1];
    assert_eq!(admin_rule["ports"][0]["port"], 8091);
    assert_eq!(
        admin_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "ai-gateway-operator"
    );

    let (_, pods_uri) = api
        .expect(
            "GET",
            "/api/v1/namespaces/ai/pods",
            |_| json!({"metadata": {}, "items": [ready_pod("gw-1")]}),
        )
        .await;
    assert!(
        pods_uri.contains("app.kubernetes.io%2Finstance%3Dai-gateway"),
        "{pods_uri}"
    );

    let status = api
        .status_patch(&format!("{CRD_PATH}/aigateways/ai-gateway/status"), &gw)
        .await;
    let status = &status["status"];
    assert_eq!(status["configVersion"], json!(snapshot.effective_version()));
    assert_eq!(status["readyReplicas"], 1);
    assert_eq!(status["appliedReplicas"], 1);
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(condition(status, "Accepted")["status"], "True");
    assert_eq!(condition(status, "ConfigApplied")["status"], "True");
    assert_eq!(condition(status, "Ready")["status"], "True");

    let route_status = api
        .status_patch(
            &format!("{CRD_PATH}/providerroutes/anthropic/status"),
            &route("anthropic", GW, "anthropic-creds", None),
        )
        .await;
    assert_eq!(
        condition(&route_status["status"], "Accepted")["status"],
        "True"
    );
    assert_eq!(
        condition(&route_status["status"], "ResolvedRefs")["status"],
        "True"
    );
    let stray = api
        .status_patch(
            &format!("{CRD_PATH}/providerroutes/stray/status"),
            &route("stray", "no-such-gateway", "anthropic-creds", None),
        )
        .await;
    let accepted = condition(&stray["status"], "Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "GatewayNotFound");
    let event = api.event().await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "GatewayNotFound");
    assert_eq!(event["regarding"]["name"], "stray");

    let policy_status = api
        .status_patch(
            &format!("{CRD_PATH}/ratelimitpolicies/limits/status"),
            &policy(None),
        )
        .await;
    assert_eq!(
        condition(&policy_status["status"], "Accepted")["status"],
        "True"
    );

    let event = api.event().await;
    assert_eq!(event["reason"], "ConfigCompiled");
    assert_eq!(event["regarding"]["name"], "ai-gateway");

    // One of two replicas is up: look again soon.
    assert_eq!(
        task.await.expect("task"),
        Action::requeue(Duration::from_secs(10))
    );
    api.done().await;

    let puts = admin.puts.lock().expect("lock");
    assert_eq!(puts.len(), 1, "one push to the one ready pod");
    assert_eq!(puts[0].0, format!("Bearer {token}"));
    assert_eq!(puts[0].1.effective_version(), snapshot.effective_version());
}

#[tokio::test]
async fn an_unchanged_gateway_is_left_alone() {
    let admin = Arc::new(FakeAdmin::default());
    let port = start_fake_admin(admin.clone()).await;

    // First pass: learn what the operator writes.
    let (ctx, mut api) = context(port);
    let secrets = {
        let mut s = namespace_secrets();
        s.push(secret(
            "ai-gateway-admin",
            json!({}),
            json!({"token": "t0ken"}),
        ));
        s
    };
    let gw = gateway(None);
    let routes = vec![route("anthropic", GW, "anthropic-creds", None)];
    let task = spawn_reconcile(gw.clone(), ctx);
    let (snapshot, _) = expect_lists_and_applies(
        &mut api,
        &gw,
        routes.clone(),
        vec![policy(None)],
        secrets.clone(),
    )
    .await;
    for kind in ["services", "poddisruptionbudgets", "networkpolicies"] {
        let group = match kind {
            "services" => "/api/v1",
            "poddisruptionbudgets" => "/apis/policy/v1",
            _ => "/apis/networking.k8s.io/v1",
        };
        api.apply(&format!("{group}/namespaces/ai/{kind}/ai-gateway"))
            .await;
    }
    api.list(
        "/api/v1/namespaces/ai/pods",
        vec![ready_pod("gw-1"), ready_pod("gw-2")],
    )
    .await;
    let gw_status = api
        .status_patch(&format!("{CRD_PATH}/aigateways/ai-gateway/status"), &gw)
        .await["status"]
        .clone();
    assert_eq!(gw_status["appliedReplicas"], 2);
    let route_status = api
        .status_patch(
            &format!("{CRD_PATH}/providerroutes/anthropic/status"),
            &routes[0],
        )
        .await["status"]
        .clone();
    let policy_status = api
        .status_patch(
            &format!("{CRD_PATH}/ratelimitpolicies/limits/status"),
            &policy(None),
        )
        .await["status"]
        .clone();
    api.event().await;
    assert_eq!(
        task.await.expect("task"),
        Action::requeue(Duration::from_secs(60))
    );
    assert_eq!(
        admin.puts.lock().expect("lock").len(),
        2,
        "both pods pushed once"
    );

    // Second pass with that status in place and the pods at the version: the objects
    // are re-applied (idempotent) but nothing is pushed, patched or announced.
    let (ctx, mut api) = context(port);
    let gw = gateway(Some(gw_status));
    let routes = vec![route(
        "anthropic",
        GW,
        "anthropic-creds",
        Some(route_status),
    )];
    let task = spawn_reconcile(gw.clone(), ctx);
    let (again, _) = expect_lists_and_applies(
        &mut api,
        &gw,
        routes,
        vec![policy(Some(policy_status))],
        secrets,
    )
    .await;
    assert_eq!(again.effective_version(), snapshot.effective_version());
    for path in [
        "/api/v1/namespaces/ai/services/ai-gateway",
        "/apis/policy/v1/namespaces/ai/poddisruptionbudgets/ai-gateway",
        "/apis/networking.k8s.io/v1/namespaces/ai/networkpolicies/ai-gateway",
    ] {
        api.apply(path).await;
    }
    api.list(
        "/api/v1/namespaces/ai/pods",
        vec![ready_pod("gw-1"), ready_pod("gw-2")],
    )
    .await;
    assert_eq!(
        task.await.expect("task"),
        Action::requeue(Duration::from_secs(60))
    );
    api.done().await;
    assert_eq!(admin.puts.lock().expect("lock").len(), 2, "no second push");
}

#[tokio::test]
async fn a_broken_route_is_reported_and_the_rest_still_serves() {
    let admin = Arc::new(FakeAdmin::default());
    let port = start_fake_admin(admin.clone()).await;
    let (ctx, mut api) = context(port);
    let mut secrets = namespace_secrets();
    secrets.push(secret(
        "ai-gateway-admin",
        json!({}),
        json!({"token": "t0ken"}),
    ));
    let gw = gateway(None);
    let mut good = route("anthropic", GW, "anthropic-creds", None);
    good["spec"]["models"] = json!(["claude-*"]);
    let mut broken = route("openai", GW, "missing-secret", None);
    broken["spec"]["type"] = json!("openai");
    broken["spec"]["models"] = json!(["gpt-*"]);
    let task = spawn_reconcile(gw.clone(), ctx);
    let (snapshot, _) = expect_lists_and_applies(
        &mut api,
        &gw,
        vec![good.clone(), broken.clone()],
        vec![],
        secrets,
    )
    .await;
    assert!(snapshot.providers.contains_key("anthropic"));
    for path in [
        "/api/v1/namespaces/ai/services/ai-gateway",
        "/apis/policy/v1/namespaces/ai/poddisruptionbudgets/ai-gateway",
        "/apis/networking.k8s.io/v1/namespaces/ai/networkpolicies/ai-gateway",
    ] {
        api.apply(path).await;
    }
    // No pod is ready yet: nothing to push, and the status says so.
    api.list("/api/v1/namespaces/ai/pods", vec![]).await;
    let status = api
        .status_patch(&format!("{CRD_PATH}/aigateways/ai-gateway/status"), &gw)
        .await;
    let applied = condition(&status["status"], "ConfigApplied");
    assert_eq!(applied["status"], "False");
    assert_eq!(
        applied["message"],
        "0 of 0 ready data planes serve the current snapshot"
    );
    assert_eq!(condition(&status["status"], "Ready")["status"], "False");

    api.status_patch(
        &format!("{CRD_PATH}/providerroutes/anthropic/status"),
        &good,
    )
    .await;
    let broken_status = api
        .status_patch(&format!("{CRD_PATH}/providerroutes/openai/status"), &broken)
        .await;
    let refs = condition(&broken_status["status"], "ResolvedRefs");
    assert_eq!(refs["status"], "False");
    assert!(
        refs["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing-secret"),
        "{refs}"
    );
    let event = api.event().await;
    assert_eq!(event["regarding"]["name"], "openai");
    assert_eq!(event["type"], "Warning");
    api.event().await; // ConfigCompiled
    assert_eq!(
        task.await.expect("task"),
        Action::requeue(Duration::from_secs(10))
    );
    api.done().await;
    assert!(admin.puts.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn api_errors_back_off_exponentially() {
    let (ctx, mut api) = context(1);
    let gw: AIGateway = serde_json::from_value(gateway(None)).expect("gateway");
    let gw = Arc::new(gw);
    let mut delays = Vec::new();
    for _ in 0..3 {
        let task = tokio::spawn(reconcile(gw.clone(), ctx.clone()));
        api.expect("GET", &format!("{CRD_PATH}/aigateways"), |_| {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "etcd is unhappy", "reason": "InternalError", "code": 500})
        })
        .await;
        let error = task
            .await
            .expect("task")
            .expect_err("a 500 fails the reconcile");
        assert!(error.to_string().contains("etcd is unhappy"), "{error}");
        delays.push(error_policy(gw.clone(), &error, ctx.clone()));
    }
    assert_eq!(
        delays,
        [5, 10, 20].map(|s| Action::requeue(Duration::from_secs(s)))
    );
}

/// The owned objects after the snapshot, then the pods: one ready pod.
async fn expect_rest_and_one_pod(api: &mut ApiServer) {
    for path in [
        "/api/v1/namespaces/ai/services/ai-gateway",
        "/apis/policy/v1/namespaces/ai/poddisruptionbudgets/ai-gateway",
        "/apis/networking.k8s.io/v1/namespaces/ai/networkpolicies/ai-gateway",
    ] {
        api.apply(path).await;
    }
    api.list("/api/v1/namespaces/ai/pods", vec![ready_pod("gw-1")])
        .await;
}

#[tokio::test]
async fn a_failing_push_is_reported_from_the_first_failure_and_retried_with_backoff() {
    // Nothing listens on the data plane's admin port.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let (ctx, mut api) = context(closed);
    let mut secrets = namespace_secrets();
    secrets.push(secret(
        "ai-gateway-admin",
        json!({}),
        json!({"token": "t0ken"}),
    ));
    let gw = gateway(None);
    let route = route("anthropic", GW, "anthropic-creds", None);

    let task = spawn_reconcile(gw.clone(), ctx.clone());
    expect_lists_and_applies(&mut api, &gw, vec![route.clone()], vec![], secrets.clone()).await;
    expect_rest_and_one_pod(&mut api).await;
    let patched = api
        .status_patch(&format!("{CRD_PATH}/aigateways/ai-gateway/status"), &gw)
        .await;
    let applied = condition(&patched["status"], "ConfigApplied");
    assert_eq!(applied["status"], "False");
    assert_eq!(applied["reason"], "PushFailed", "{applied}");
    let message = applied["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("127.0.0.1:{closed}")),
        "{message}"
    );
    assert_eq!(
        condition(&patched["status"], "Ready")["reason"],
        "PushFailed"
    );
    let route_status = api
        .status_patch(
            &format!("{CRD_PATH}/providerroutes/anthropic/status"),
            &route,
        )
        .await["status"]
        .clone();
    assert_eq!(api.event().await["reason"], "ConfigCompiled");
    let event = api.event().await;
    assert_eq!(event["reason"], "PushFailed");
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("127.0.0.1:{closed}")),
        "{event}"
    );
    assert_eq!(
        task.await.expect("task"),
        Action::requeue(Duration::from_secs(5))
    );
    api.done().await;

    // Still failing: no new Event or status write, and the next try waits longer.
    let gw = gateway(Some(patched["status"].clone()));
    let mut route = route;
    route["status"] = route_status;
    let task = spawn_reconcile(gw.clone(), ctx.clone());
    expect_lists_and_applies(&mut api, &gw, vec![route], vec![], secrets).await;
    expect_rest_and_one_pod(&mut api).await;
    assert_eq!(
        task.await.expect("task"),
        Action::requeue(Duration::from_secs(10))
    );
    api.done().await;
}

#[tokio::test]
async fn routes_and_policies_of_a_missing_or_deleted_gateway_are_told_so() {
    let (ctx, mut api) = context(1);
    let accepted = json!({"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
        "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z", "observedGeneration": 1}],
        "observedGeneration": 1});
    let stale = route("anthropic", GW, "anthropic-creds", Some(accepted));
    let other = route("other", "another-gateway", "anthropic-creds", None);
    let task = tokio::spawn(async move {
        ai_gateway_operator::controller::disown(&ctx, NS, GW)
            .await
            .expect("disown")
    });
    api.list(&format!("{CRD_PATH}/aigateways"), vec![]).await;
    api.list(
        &format!("{CRD_PATH}/providerroutes"),
        vec![stale.clone(), other],
    )
    .await;
    api.list(&format!("{CRD_PATH}/ratelimitpolicies"), vec![policy(None)])
        .await;
    let patched = api
        .status_patch(
            &format!("{CRD_PATH}/providerroutes/anthropic/status"),
            &stale,
        )
        .await;
    let verdict = condition(&patched["status"], "Accepted");
    assert_eq!(verdict["status"], "False");
    assert_eq!(verdict["reason"], "GatewayNotFound");
    assert_eq!(api.event().await["reason"], "GatewayNotFound");
    let patched = api
        .status_patch(
            &format!("{CRD_PATH}/ratelimitpolicies/limits/status"),
            &policy(None),
        )
        .await;
    assert_eq!(
        condition(&patched["status"], "Accepted")["reason"],
        "GatewayNotFound"
    );
    assert_eq!(api.event().await["reason"], "GatewayNotFound");
    task.await.expect("task");
    api.done().await;
}
