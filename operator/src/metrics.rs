//! The operator's own metrics and its probe listener (`/healthz`, `/readyz`, `/metrics`).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_seconds: Histogram,
    pushes: Family<ResultLabel, Counter>,
    push_seconds: Histogram,
    /// 1 while this replica leads (always, with leader election off).
    pub leader: Gauge,
    watch_errors: Counter,
    /// Watches whose last event was an error, by resource, with that error.
    watches_down: Mutex<BTreeMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ai_gateway_operator");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "AIGateway reconciles by result",
            reconciles.clone(),
        );
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Time per AIGateway reconcile",
            reconcile_seconds.clone(),
        );
        let pushes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pushes",
            "Snapshot syncs to data-plane pods by result (pushed, current, failed)",
            pushes.clone(),
        );
        let push_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "push_duration_seconds",
            "Time to bring one data plane to the current snapshot",
            push_seconds.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "Whether this replica reconciles", leader.clone());
        let watch_errors = Counter::default();
        registry.register(
            "watch_errors",
            "Errors of the watches on gateways, routes, policies, Secrets and Deployments",
            watch_errors.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            pushes,
            push_seconds,
            leader,
            watch_errors,
            watches_down: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration, ok: bool) {
        self.reconcile_seconds.observe(took.as_secs_f64());
        let result = if ok { "ok" } else { "error" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn synced(&self, took: Duration, result: &'static str) {
        self.push_seconds.observe(took.as_secs_f64());
        self.pushes.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn watch_down(&self, resource: &str, error: String) {
        self.watch_errors.inc();
        self.watches_down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(resource.to_string(), error);
    }

    pub fn watch_up(&self, resource: &str) {
        let mut down = self.watches_down.lock().unwrap_or_else(|p| p.into_inner());
        // Most events find nothing down: no allocation on that path.
        if !down.is_empty() {
            down.remove(resource);
        }
    }

    /// Ready unless a watch's last event was an error: while one is down, `kubectl
    /// apply` of that kind is not being seen.
    pub fn readiness(&self) -> Result<(), String> {
        let down = self.watches_down.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_empty() {
            return Ok(());
        }
        Err(down
            .iter()
            .map(|(resource, error)| format!("watch of {resource} failing: {error}"))
            .collect::<Vec<_>>()
            .join("; "))
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves the probes until the process ends. Standby replicas are ready: they are
/// healthy and waiting for the lease.
pub async fn serve_probes(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "probe listener up");
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(probe(&metrics, &req)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn probe(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" => match metrics.readiness() {
            Ok(()) => (StatusCode::OK, "ok\n".to_string()),
            Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => (StatusCode::OK, metrics.render()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}
