//! The controller through an API-server outage, against kube's mock API service: every
//! list fails and every watch ends in "410 Gone" for a while, then the server is back.
//! A change must be seen within seconds of the recovery, and readiness must say when
//! watches are down.

use ai_gateway_operator::controller::{self, Context, WATCH_BACKOFF_MAX};
use ai_gateway_operator::metrics::Metrics;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OUTAGE: Duration = Duration::from_secs(8);

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "code": code, "reason": reason, "message": message})
}

fn reply(status: u16, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("response")
}

fn gateway() -> Value {
    json!({
        "apiVersion": "ai-gateway.dev/v1alpha1", "kind": "AIGateway",
        "metadata": {"name": "ai-gateway", "namespace": "ai", "uid": "gw-uid",
                     "resourceVersion": "7", "generation": 1},
        "spec": {"replicas": 1},
    })
}

/// Answers like an API server that is down until `back_at`: lists fail with 503 and
/// watches end in a 410 event. After it, lists answer (one gateway, nothing else) and
/// watches stay quiet. Records when the reconciler first reads the gateway's namespace.
async fn play_api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    back_at: Instant,
    reconciled_at: Arc<Mutex<Option<Instant>>>,
) {
    while let Some((req, send)) = handle.next_request().await {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let down = Instant::now() < back_at;
        let watching = query.contains("watch=true") || query.contains("watch=1");
        if path == "/apis/ai-gateway.dev/v1alpha1/namespaces/ai/aigateways" {
            // The reconciler's first read: recorded, then refused so it stops there.
            reconciled_at
                .lock()
                .expect("lock")
                .get_or_insert_with(Instant::now);
            let body = status(500, "InternalError", "the test stops the reconcile here");
            send.send_response(reply(500, serde_json::to_vec(&body).expect("json")));
        } else if watching && down {
            let event = json!({"type": "ERROR",
                "object": status(410, "Expired", "too old resource version: 1 (9)")});
            send.send_response(reply(200, format!("{event}\n").into_bytes()));
        } else if watching {
            // A quiet watch: ends after a while with no events, as a server timeout does.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                send.send_response(reply(200, Vec::new()));
            });
        } else if down {
            let body = status(503, "ServiceUnavailable", "etcd is restarting");
            send.send_response(reply(503, serde_json::to_vec(&body).expect("json")));
        } else {
            let items = if path == "/apis/ai-gateway.dev/v1alpha1/aigateways" {
                vec![gateway()]
            } else {
                Vec::new()
            };
            let list = json!({"metadata": {"resourceVersion": "9"}, "items": items});
            send.send_response(reply(200, serde_json::to_vec(&list).expect("json")));
        }
    }
}

#[tokio::test]
async fn changes_are_seen_within_seconds_of_an_api_server_outage_and_readiness_tells() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(
        Context::new(client, metrics.clone(), "img".into(), Vec::new(), None).expect("context"),
    );
    let started = Instant::now();
    let back_at = started + OUTAGE;
    let reconciled_at = Arc::new(Mutex::new(None));
    let api = tokio::spawn(play_api_server(handle, back_at, reconciled_at.clone()));
    let controller = tokio::spawn(async move { controller::run(ctx, None).await });

    // Mid-outage: the watches are failing, and readiness says so.
    tokio::time::sleep(OUTAGE / 2).await;
    let why = metrics
        .readiness()
        .expect_err("not ready while watches fail");
    assert!(why.contains("watch of providerroutes failing"), "{why}");
    assert!(
        why.contains("etcd is restarting") || why.contains("410"),
        "{why}"
    );
    assert!(
        metrics
            .render()
            .contains("ai_gateway_operator_watch_errors_total"),
        "the errors are counted"
    );

    // After it: the gateway is reconciled within the capped backoff (one backoff shared by
    // the five watches had grown past 20 s by now), and readiness recovers.
    let deadline = back_at + WATCH_BACKOFF_MAX + Duration::from_secs(3);
    let seen = loop {
        if let Some(at) = *reconciled_at.lock().expect("lock") {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "no reconcile {:?} after the API server came back",
            Instant::now() - back_at
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(seen >= back_at, "reconciled only once the server was back");
    let quiet_by = Instant::now() + WATCH_BACKOFF_MAX * 2;
    while metrics.readiness().is_err() {
        assert!(Instant::now() < quiet_by, "readiness never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    controller.abort();
    api.abort();
}

#[test]
fn the_watch_backoff_never_waits_longer_than_its_cap() {
    let delays: Vec<Duration> = controller::watch_backoff().take(40).collect();
    assert_eq!(delays.len(), 40, "it never gives up");
    assert!(
        delays.iter().all(|d| *d <= WATCH_BACKOFF_MAX * 2),
        "{delays:?}"
    );
    assert!(delays[0] < Duration::from_millis(500), "{delays:?}");
}

#[test]
fn the_operator_takes_log_json_as_one_as_well_as_true() {
    for value in ["1", "true", "yes"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ai-gateway-operator"))
            .args(["run", "--probe-listen", "127.0.0.1:0"])
            .env("AI_GATEWAY_LOG_JSON", value)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("the operator runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stderr.contains("invalid value"), "{value}: {stderr}");
        // Past argument parsing it fails for want of a cluster, and says so as JSON.
        assert!(
            stdout
                .lines()
                .chain(stderr.lines())
                .any(|l| l.starts_with('{') && l.contains("operator stopped")),
            "{value}: {stdout}{stderr}"
        );
    }
}

/// A namespace with routes and no AIGateway: the controller's watch maps the route to
/// its missing gateway, and the route is told so.
#[tokio::test]
async fn a_route_naming_no_gateway_gets_a_status_through_the_controller() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let ctx = Arc::new(
        Context::new(
            client,
            Arc::new(Metrics::default()),
            "img".into(),
            Vec::new(),
            None,
        )
        .expect("context"),
    );
    let route = json!({
        "apiVersion": "ai-gateway.dev/v1alpha1", "kind": "ProviderRoute",
        "metadata": {"name": "orphan", "namespace": "ai", "generation": 1, "resourceVersion": "3"},
        "spec": {"gatewayRef": "ghost", "type": "ollama", "models": ["llama*"]},
    });
    let controller = tokio::spawn(async move { controller::run(ctx, None).await });
    let patched = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some((req, send)) = handle.next_request().await {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let method = req.method().clone();
            let body = req.into_body().collect_bytes().await.unwrap_or_default();
            if method == http::Method::PATCH && path.ends_with("/providerroutes/orphan/status") {
                send.send_response(reply(200, serde_json::to_vec(&route).expect("json")));
                return serde_json::from_slice::<Value>(&body).expect("patch");
            }
            if query.contains("watch=") {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    send.send_response(reply(200, Vec::new()));
                });
                continue;
            }
            let items = if path.ends_with("/providerroutes") {
                vec![route.clone()]
            } else {
                Vec::new()
            };
            let answer = if method == http::Method::POST {
                serde_json::from_slice(&body).unwrap_or(Value::Null)
            } else {
                json!({"metadata": {"resourceVersion": "9"}, "items": items})
            };
            send.send_response(reply(200, serde_json::to_vec(&answer).expect("json")));
        }
        panic!("the mock closed");
    })
    .await
    .expect("the orphan route got a status within 10 s");
    let conditions = patched["status"]["conditions"].to_string();
    assert!(conditions.contains("GatewayNotFound"), "{patched}");
    assert!(
        conditions.contains("no AIGateway named `ghost`"),
        "{patched}"
    );
    controller.abort();
}
