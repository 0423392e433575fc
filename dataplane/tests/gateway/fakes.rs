//! Fake upstreams on loopback, and the gateway started in-process in front of them.

use ai_gateway::server;
use ai_gateway::state::Gateway;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

pub fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("upstream received JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a fake upstream answers.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub chunks: Vec<Bytes>,
    pub head_delay: Duration,
    pub chunk_delay: Duration,
    /// Reset the connection after the chunks instead of ending the body.
    pub abort: bool,
    /// Wait this long before the last chunk instead of `chunk_delay`: an upstream that
    /// stalls part-way through its body.
    pub stall_before_last: Option<Duration>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: "application/json",
            chunks: vec![body.into()],
            head_delay: Duration::ZERO,
            chunk_delay: Duration::from_millis(2),
            abort: false,
            stall_before_last: None,
            headers: Vec::new(),
        }
    }

    /// An SSE body sent one event per write, as providers flush them.
    pub fn sse(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body).to_string();
        let chunks = text
            .split_inclusive("\n\n")
            .map(|e| Bytes::from(e.to_string()))
            .collect();
        Self {
            status: 200,
            content_type: "text/event-stream",
            chunks,
            head_delay: Duration::ZERO,
            chunk_delay: Duration::from_millis(2),
            abort: false,
            stall_before_last: None,
            headers: Vec::new(),
        }
    }

    pub fn ndjson(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body).to_string();
        let chunks = text
            .split_inclusive('\n')
            .map(|l| Bytes::from(l.to_string()))
            .collect();
        Self {
            status: 200,
            content_type: "application/x-ndjson",
            chunks,
            head_delay: Duration::ZERO,
            chunk_delay: Duration::from_millis(2),
            abort: false,
            stall_before_last: None,
            headers: Vec::new(),
        }
    }
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

pub struct FakeUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
}

impl FakeUpstream {
    pub async fn start(respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond: Arc<Responder> = Arc::new(respond);
        let log = received.clone();
        let connections: Arc<AtomicUsize> = Arc::default();
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                let (respond, log) = (respond.clone(), log.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (respond, log) = (respond.clone(), log.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let recorded = Recorded {
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            let reply = respond(&recorded);
                            log.lock().expect("log").push(recorded);
                            tokio::time::sleep(reply.head_delay).await;
                            let (abort, pause, extra) =
                                (reply.abort, reply.chunk_delay, reply.headers);
                            let last = reply.chunks.len().saturating_sub(1);
                            let stall = reply.stall_before_last;
                            let frames =
                                futures_util::stream::iter(reply.chunks.into_iter().enumerate())
                                    .then(move |(i, c)| async move {
                                        let wait = stall.filter(|_| i == last).unwrap_or(pause);
                                        tokio::time::sleep(wait).await;
                                        Ok::<_, std::io::Error>(Frame::data(c))
                                    })
                                    .chain(futures_util::stream::iter(abort.then(|| {
                                        Err(std::io::Error::other(
                                            "connection reset by fake upstream",
                                        ))
                                    })));
                            let mut resp = Response::new(StreamBody::new(frames));
                            *resp.status_mut() =
                                http::StatusCode::from_u16(reply.status).expect("status");
                            resp.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static(reply.content_type),
                            );
                            for (name, value) in extra {
                                if let Ok(v) = http::HeaderValue::from_str(&value) {
                                    resp.headers_mut().insert(name, v);
                                }
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().expect("log").clone()
    }

    pub fn last(&self) -> Recorded {
        self.received()
            .pop()
            .expect("the upstream received a request")
    }
}

pub struct TestGateway {
    pub url: String,
    pub admin_url: String,
    pub gateway: Arc<Gateway>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestGateway {
    pub async fn start(config_yaml: &str) -> Self {
        let mut snapshot =
            ai_gateway_snapshot::parse_document(config_yaml, |_| None).expect("valid config");
        // Tests read audit records from a file when they check them; stdout stays quiet.
        if snapshot.audit.sink == ai_gateway_snapshot::AuditSink::Stdout {
            snapshot.audit.sink = ai_gateway_snapshot::AuditSink::None;
        }
        let gateway = Arc::new(Gateway::new(snapshot).await.expect("gateway"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin_url = format!("http://{}", admin.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let gw = gateway.clone();
        tokio::spawn(server::serve(
            listener,
            move |req| server::handle(gw.clone(), req),
            async move {
                let _ = stopped.await;
                let _ = admin_stop.send(());
            },
            Duration::from_secs(5),
            server::CLIENT_IDLE_TIMEOUT,
            gateway.services.metrics.connection_budget(),
        ));
        let gw = gateway.clone();
        let token: Option<Arc<str>> = Some(Arc::from("admin-token"));
        tokio::spawn(server::serve(
            admin,
            move |req| server::handle_admin(gw.clone(), token.clone(), req),
            async move {
                let _ = admin_stopped.await;
            },
            Duration::from_secs(5),
            server::CLIENT_IDLE_TIMEOUT,
            server::ConnectionBudget::default(),
        ));
        Self {
            url,
            admin_url,
            gateway,
            stop: Some(stop),
        }
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The gateway's Prometheus metrics, as the admin port serves them.
pub async fn metrics_text(gw: &TestGateway) -> String {
    metrics_at(&gw.admin_url).await
}

/// The Prometheus metrics the admin port at `admin_url` serves.
pub async fn metrics_at(admin_url: &str) -> String {
    client()
        .get(format!("{admin_url}/metrics"))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text")
}

/// `GET url` (with a bearer key when given) and its JSON answer.
pub async fn get_json(url: String, key: Option<&str>) -> serde_json::Value {
    let mut request = client().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// The data payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<serde_json::Value> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("event data is JSON"))
        .collect()
}

/// `event:` names of an SSE body, in order.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("event: ")))
        .map(str::to_string)
        .collect()
}

/// A real redis-server on a free loopback port, stopped on drop.
pub struct RedisServer {
    child: Child,
    pub url: String,
}

impl RedisServer {
    /// The server, or `None` after saying the test is skipped; under CI a missing
    /// redis-server fails the test instead.
    pub fn start_or_skip() -> Option<Self> {
        let started = Self::start();
        if started.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install redis-server"
            );
            eprintln!("SKIPPED: redis-server is not installed");
        }
        started
    }

    fn start() -> Option<Self> {
        let bin = std::env::var("REDIS_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("redis-server"));
        let probe = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        let port = probe.local_addr().ok()?.port();
        drop(probe);
        let child = Command::new(bin)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self {
                    child,
                    url: format!("redis://127.0.0.1:{port}/0"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Anthropic's answer to a Messages call, streamed when the call asked for a stream.
pub fn anthropic_reply(req: &Recorded) -> Reply {
    if req.json()["stream"] == true {
        Reply::sse(&fixture("upstream/anthropic/stream_text.sse"))
    } else {
        Reply::json(200, fixture("upstream/anthropic/message_text.json"))
    }
}

/// A fake Anthropic that answers every call with [`anthropic_reply`].
pub async fn fake_anthropic() -> FakeUpstream {
    FakeUpstream::start(anthropic_reply).await
}

/// A fake OpenAI-compatible server: a chat completion, or its SSE stream when asked.
pub async fn fake_openai() -> FakeUpstream {
    FakeUpstream::start(|req| {
        if req.json()["stream"] == true {
            Reply::sse(&fixture("upstream/openai/stream_text.sse"))
        } else {
            Reply::json(200, fixture("upstream/openai/chat_text.json"))
        }
    })
    .await
}

/// Waits, when the current UTC minute is nearly over, for the next one to begin, so a
/// test that counts calls against per-minute limits never sees its window roll over.
pub async fn within_one_rate_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into_minute = now.as_millis() % 60_000;
    if into_minute > 40_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into_minute) as u64 + 50)).await;
    }
}

/// `GET /v1/usage` as the caller holding `key` sees it.
pub async fn usage_of(gateway_url: &str, key: &str) -> serde_json::Value {
    client()
        .get(format!("{gateway_url}/v1/usage"))
        .bearer_auth(key)
        .send()
        .await
        .expect("usage answers")
        .json()
        .await
        .expect("usage is JSON")
}

/// The audit file's records, once at least `count` are written (records are written
/// off the response path), or whatever is there after three seconds.
pub async fn audit_records(path: &std::path::Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let records: Vec<serde_json::Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records.len() >= count || tokio::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
