//! The listeners: the API on :8090 and admin on :8091, with graceful drain.

use crate::admin;
pub use crate::authenticate::Peer;
use crate::body::{empty, ResponseBody};
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::doors::{
    account, anthropic_messages, bedrock_runtime, gemini_api, info, openai_chat, provider_api,
    vertex_ai, Inbound,
};
use crate::error::{ApiFormat, GatewayError};
use crate::state::{Gateway, Serving};
use crate::tcp::Tcp;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A connection with no request in progress is closed once it has been idle this
/// long: a slow client gets this long to send its request head, and idle keep-alive
/// connections are let go.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Request heads larger than this are refused (431); Claude Code's, with its long
/// `anthropic-beta` list, stays under 8 KiB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Accepts connections until `shutdown` resolves, then waits up to `drain` for
/// in-flight requests (streams included) to finish. Connections idle for `idle` with
/// no request in progress are closed.
pub async fn serve<F, H, Fut>(
    listener: TcpListener,
    handler: H,
    shutdown: F,
    drain: Duration,
    idle: Duration,
    budget: ConnectionBudget,
) where
    F: Future<Output = ()>,
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let connections = Arc::new(OpenConnections::within(budget));
    serve_watched(listener, handler, shutdown, drain, idle, connections).await
}

/// How many connections a listener holds at most, and where it reports them. The
/// gauges are set by its idle sweep (at most a sixth of the idle limit old): the open
/// count from the exact count the accept loop keeps, the parked one counted there.
#[derive(Clone)]
pub struct ConnectionBudget {
    /// Past this many open connections a new one is closed at once. Each caller
    /// connection is a descriptor, and calls need more (their provider connections,
    /// Redis, the audit file): callers alone must not take them all.
    pub max_open: usize,
    pub open: Gauge,
    /// Idle connections holding only their socket.
    pub parked: Gauge,
    /// Connections closed at accept because `max_open` were open.
    pub refused: Counter,
}

impl Default for ConnectionBudget {
    fn default() -> Self {
        Self {
            max_open: usize::MAX,
            open: Gauge::default(),
            parked: Gauge::default(),
            refused: Counter::default(),
        }
    }
}

impl ConnectionBudget {
    /// Callers may hold all but a sixteenth of `open_files` (at least 64 kept back):
    /// with the limit a container runtime allows, the rest stays free for the calls'
    /// own connections even while a flood of idle callers is at the door. No limit
    /// known (unlimited, or not a Unix), no cap.
    pub fn for_open_files(open_files: Option<u64>, reporting: Self) -> Self {
        let max_open = open_files.map_or(usize::MAX, |limit| {
            let kept_back = (limit / 16).max(64);
            usize::try_from(limit.saturating_sub(kept_back)).unwrap_or(usize::MAX)
        });
        Self {
            max_open,
            ..reporting
        }
    }
}

/// [`serve`], with the listener's open connections where the caller can count them.
async fn serve_watched<F, H, Fut>(
    listener: TcpListener,
    handler: H,
    shutdown: F,
    drain: Duration,
    idle: Duration,
    connections: Arc<OpenConnections>,
) where
    F: Future<Output = ()>,
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    // No hyper header-read timeout: it arms a timer for every request head, a
    // measurable share of a call's cost. The idle sweep below covers slow heads.
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let protocols = Arc::new(Protocols { http1, http2 });
    // Connections watch this; they finish what is in flight and close once it changes,
    // and the drain waits for every one to drop its receiver.
    let (drain_tx, _) = tokio::sync::watch::channel(());
    let sweeper = tokio::spawn(sweep(connections.clone(), idle));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if connections.open_now.load(Ordering::Relaxed) >= connections.budget.max_open {
                    // Closed unread: the caller's retry finds another replica, and the
                    // descriptors left keep serving the calls already here.
                    connections.budget.refused.inc();
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let activity = Arc::new(Activity::new(connections.open_now.clone()));
                let watched = Arc::downgrade(&activity);
                let for_connection = activity.clone();
                let service = service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(Peer(peer.ip()));
                    let handler = handler.clone();
                    let in_flight = InFlight::enter(&activity);
                    async move {
                        let response = handler(req).await;
                        Ok::<_, Infallible>(response.map(|body| Tracked { body, _in_flight: in_flight }))
                    }
                });
                let parking = Parking { activity: for_connection, after: park_after(idle) };
                let connection = serve_connection(
                    stream,
                    protocols.clone(),
                    service,
                    parking,
                    drain_tx.subscribe(),
                );
                if let Some(rest) = first_turn(connection) {
                    let task = tokio::spawn(rest);
                    connections.watch(watched, task.abort_handle());
                }
            }
            _ = &mut shutdown => break,
        }
    }
    sweeper.abort();
    drop(listener);
    drain_tx.send_replace(());
    if tokio::time::timeout(drain, drain_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = drain.as_secs(),
            "drain timed out; closing remaining connections"
        );
    }
}

/// A new connection's first turn, taken in the accept loop's own; the rest is for its
/// task. A spawned task starts at the back of the runtime's queue: under thousands of
/// busy streams a health probe on a fresh connection, having waited behind bursts of
/// events for the accept loop's turn, waited behind them again for its task's. Taken
/// here (tokio takes an accepted socket as readable, so its first read tries it at
/// once), a request sent with the handshake is read and usually answered at once.
/// `None` when the connection ended in that turn (a probe answered and closed, or a
/// panic, which closes this connection as a task's panic would and no other). The turns
/// spend the accept loop's cooperative budget: a flood of new connections holds the
/// thread for one task's budget at a time, as the calls already in do.
fn first_turn<F>(connection: F) -> Option<Pin<Box<F>>>
where
    F: Future<Output = ()>,
{
    let mut connection = Box::pin(connection);
    // Whatever registers this waker registers the task's at the task's first poll: a
    // future re-registers the waker of every poll.
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        connection.as_mut().poll(&mut cx)
    }));
    match turn {
        Ok(Poll::Pending) => Some(connection),
        Ok(Poll::Ready(())) => None,
        Err(_) => {
            tracing::error!("a connection panicked in its first turn; closed");
            None
        }
    }
}

/// What a connection serves: the accept loop's per-connection service.
trait CallService:
    hyper::service::HttpService<Incoming, ResBody = Tracked, Error = Infallible> + Unpin
{
}

impl<S> CallService for S where
    S: hyper::service::HttpService<Incoming, ResBody = Tracked, Error = Infallible> + Unpin
{
}

/// How connections are served: built once, shared by every connection's task.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// One protocol per connection, chosen by its first bytes. This future is the
/// connection's task, held for as long as the client keeps the connection: it holds
/// HTTP/1's parked state inline and everything larger or rarer boxed, so that an idle
/// pooled connection costs a few hundred bytes, in a size class of its own rather than
/// among hyper's per-call allocations, whose freed slots would keep its pages resident.
///
/// This and the futures under it are async blocks, not async fns: an async fn's future
/// holds each argument twice (as passed, and as bound in its body).
#[allow(clippy::manual_async_fn)]
fn serve_connection<S>(
    stream: tokio::net::TcpStream,
    protocols: Arc<Protocols>,
    service: S,
    parking: Parking,
    mut drain: tokio::sync::watch::Receiver<()>,
) -> impl Future<Output = ()>
where
    S: CallService + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    async move {
        let ended = if Box::pin(speaks_http2(&stream)).await {
            let mut conn = Box::pin(
                protocols
                    .http2
                    .serve_connection(Tcp::new(stream, Writes(parking.activity)), service),
            );
            tokio::select! {
                ended = &mut conn => ended,
                _ = drain.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        } else {
            serve_http1(stream, &protocols.http1, service, parking, &mut drain).await
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Whether a connection opens with HTTP/2's prior-knowledge preface (`PRI * HTTP/2.0`);
/// anything else, or a connection that closes first, is served as HTTP/1.
async fn speaks_http2(stream: &tokio::net::TcpStream) -> bool {
    const PREFACE: &[u8] = b"PRI ";
    let mut first = [0u8; 4];
    loop {
        match stream.peek(&mut first).await {
            Ok(n) if n >= PREFACE.len() => return first == PREFACE,
            // A few bytes so far that could still be the preface: wait for the rest.
            Ok(n) if n > 0 && PREFACE.starts_with(&first[..n]) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            _ => return false,
        }
    }
}

/// What follows a surface prefix is appended to a provider's base URL: it must stay a
/// plain path once decoded, as the provider will decode it. A `.` or `..` segment, or an
/// encoded `/` or `\`, could climb out of the API the surface allows
/// (`/models/%2e%2e/fine_tuning/jobs`); a missing leading `/` could change the host
/// (`/v1/openai@evil.example/`).
fn is_plain_path(rest: &str) -> bool {
    if rest.is_empty() {
        return true;
    }
    let Some(segments) = rest.strip_prefix('/') else {
        return false;
    };
    segments.split('/').all(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded != "." && decoded != ".." && !decoded.contains(['/', '\\'])
    })
}

/// Milliseconds on a clock private to this process: idle times are compared, never shown.
fn clock_ms() -> u64 {
    static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

/// Whether a connection has requests in progress, and when it last did anything that
/// keeps it open: a request ending, or bytes of an answer going out to a slow reader.
/// Reads do not count: a client trickling its head stays idle.
struct Activity {
    /// The listener's count of open connections, which this one leaves when dropped
    /// (its task ended and its service gone).
    open: Arc<AtomicUsize>,
    in_flight: AtomicUsize,
    quiet_since_ms: AtomicU64,
    /// An answer's bytes wait for a slow reader: the connection is not idle yet.
    write_waiting: AtomicBool,
    /// Held by its socket alone until the client sends again.
    parked: AtomicBool,
    /// The sweep asking an idle HTTP/1 connection to park.
    park: tokio::sync::Notify,
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    /// A connection's activity, counted in `open` until dropped.
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self {
            open,
            in_flight: AtomicUsize::new(0),
            quiet_since_ms: AtomicU64::new(clock_ms()),
            write_waiting: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            park: tokio::sync::Notify::new(),
        }
    }

    fn stir(&self) {
        self.quiet_since_ms.fetch_max(clock_ms(), Ordering::AcqRel);
    }

    /// Nothing in flight and no answer's bytes going out for `after`, at `now_ms` on
    /// [`clock_ms`]. A reader that has stopped reading counts as idle: its connection
    /// is closed like any other.
    fn idle_for(&self, after: Duration, now_ms: u64) -> bool {
        // The count first: having seen it drop to zero, the idle time read is the one
        // stored before it dropped.
        self.in_flight.load(Ordering::Acquire) == 0
            && now_ms.saturating_sub(self.quiet_since_ms.load(Ordering::Acquire))
                >= after.as_millis() as u64
    }

    /// Idle for `after` with nothing of an answer left in hyper's buffers.
    fn parkable(&self, after: Duration, now_ms: u64) -> bool {
        self.idle_for(after, now_ms) && !self.write_waiting.load(Ordering::Acquire)
    }
}

/// Stamps a connection's writes on its [`Activity`].
struct Writes(Arc<Activity>);

impl crate::tcp::OnWrite for Writes {
    fn wrote(&self, sent: bool) {
        self.0.write_waiting.store(!sent, Ordering::Release);
        if sent {
            self.0.stir();
        }
    }
}

/// An idle HTTP/1 connection keeps hyper's buffers (a read buffer and a head write
/// buffer, 8 KiB each, and the last answer's header map): nearly 10 KiB for every
/// pooled client connection between calls. Parked, it is its socket alone.
fn park_after(idle: Duration) -> Duration {
    (idle / 6).max(Duration::from_millis(10))
}

struct Parking {
    activity: Arc<Activity>,
    after: Duration,
}

/// Serves an HTTP/1 connection; when the sweep finds it idle, takes the socket back
/// from hyper, waits for the client's next bytes with nothing else held, and serves
/// them with a new hyper connection. On drain, finishes what is in flight and closes.
// An async block: an async fn would hold its arguments twice (see serve_connection).
#[allow(clippy::manual_async_fn)]
fn serve_http1<'a, S>(
    mut stream: tokio::net::TcpStream,
    http1: &'a hyper::server::conn::http1::Builder,
    mut service: S,
    parking: Parking,
    drain: &'a mut tokio::sync::watch::Receiver<()>,
) -> impl Future<Output = Result<(), hyper::Error>> + 'a
where
    S: CallService + 'a,
{
    async move {
        let Parking { activity, after } = parking;
        let mut replay = bytes::Bytes::new();
        loop {
            // Boxed with all it awaits, so that none of it is held while parked; built
            // and boxed in one statement, as a value named here keeps its room in this
            // future for as long as its scope spans an await.
            let serving = Box::pin(until_parked(
                http1.serve_connection(
                    Tcp::replaying(stream, Writes(activity.clone()), replay),
                    service,
                ),
                &activity,
                after,
                drain,
            ));
            (stream, service, replay) = match serving.await {
                ControlFlow::Break(ended) => return ended,
                ControlFlow::Continue(parts) => taken_back(parts),
            };
            if !replay.is_empty() {
                continue;
            }
            activity.parked.store(true, Ordering::Release);
            tokio::select! {
                // Polled readiness, not `readable()`: no waiter is kept in this future.
                // A close is readable too: the next connection reads the end and stops.
                readable = std::future::poll_fn(|cx| stream.poll_read_ready(cx)) => {
                    if readable.is_err() {
                        return Ok(());
                    }
                }
                _ = drain.changed() => return Ok(()),
            }
            activity.parked.store(false, Ordering::Release);
        }
    }
}

/// The socket and service of a parked connection, and what the next connection on it
/// reads first: bytes hyper had read and not parsed (a head still arriving), then what
/// it had not taken of an earlier replay. Both buffers are freed here when empty: an
/// empty `Bytes` may still hold its storage (hyper's 8 KiB and the page the last head
/// touched, or a replay given out whole).
fn taken_back<S>(
    parts: hyper::server::conn::http1::Parts<Tcp<Writes>, S>,
) -> (tokio::net::TcpStream, S, bytes::Bytes) {
    let (socket, unread) = parts.io.into_parts();
    let replay = match (parts.read_buf, unread) {
        (read, unread) if read.is_empty() && unread.is_empty() => bytes::Bytes::new(),
        (read, unread) if read.is_empty() => unread,
        (read, unread) if unread.is_empty() => bytes::Bytes::copy_from_slice(&read),
        (read, unread) => [read, unread].concat().into(),
    };
    (socket, parts.service, replay)
}

/// Serves `conn` until it ends (`Break`) or the sweep finds it parkable (`Continue`,
/// with the socket and what hyper had read).
// An async block: an async fn would hold its arguments twice (see serve_connection).
#[allow(clippy::manual_async_fn)]
fn until_parked<'a, S>(
    mut conn: hyper::server::conn::http1::Connection<Tcp<Writes>, S>,
    activity: &'a Activity,
    after: Duration,
    drain: &'a mut tokio::sync::watch::Receiver<()>,
) -> impl Future<
    Output = ControlFlow<
        Result<(), hyper::Error>,
        hyper::server::conn::http1::Parts<Tcp<Writes>, S>,
    >,
> + 'a
where
    S: CallService + 'a,
{
    async move {
        loop {
            tokio::select! {
                biased;
                ended = &mut conn => return ControlFlow::Break(ended),
                _ = drain.changed() => {
                    Pin::new(&mut conn).graceful_shutdown();
                    // By reference: awaiting `conn` itself would give it a second place
                    // in this future, 720 bytes more for every open connection.
                    return ControlFlow::Break((&mut conn).await);
                }
                () = activity.park.notified() => {
                    if activity.parkable(after, clock_ms()) {
                        return ControlFlow::Continue(conn.into_parts());
                    }
                }
            }
        }
    }
}

/// A request in progress on its connection: from its head until its response body has
/// been sent or dropped, however long the handler or the stream takes.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The idle time is set before the count drops, so the sweep never sees a
        // connection with nothing in flight and a stale idle time.
        self.0.stir();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress.
struct Tracked {
    body: ResponseBody,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The listener's open connections, for the idle sweep, which counts them too.
#[derive(Default)]
struct OpenConnections {
    list: Mutex<Vec<(Weak<Activity>, tokio::task::AbortHandle)>>,
    /// Exact, for the cap at accept; the list keeps ended connections until a sweep.
    open_now: Arc<AtomicUsize>,
    budget: ConnectionBudget,
}

impl OpenConnections {
    fn within(budget: ConnectionBudget) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    fn watch(&self, activity: Weak<Activity>, task: tokio::task::AbortHandle) {
        self.lock().push((activity, task));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Weak<Activity>, tokio::task::AbortHandle)>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn parked(&self) -> usize {
        self.lock()
            .iter()
            .filter_map(|(activity, _)| activity.upgrade())
            .filter(|activity| activity.parked.load(Ordering::Acquire))
            .count()
    }
}

/// Closes connections idle past `idle` and asks those idle a sixth of that to park,
/// checking every sixth: one timer per listener rather than one per connection.
async fn sweep(connections: Arc<OpenConnections>, idle: Duration) {
    let park = park_after(idle);
    let mut tick = tokio::time::interval(park);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // One clock read a sweep, not one a connection.
        let now_ms = clock_ms();
        let mut parked = 0;
        let mut list = connections.lock();
        list.retain(|(activity, task)| {
            // Gone once the connection's task has ended.
            let Some(activity) = activity.upgrade() else {
                return false;
            };
            if activity.idle_for(idle, now_ms) {
                task.abort();
                return false;
            }
            if activity.parked.load(Ordering::Acquire) {
                parked += 1;
            } else if activity.parkable(park, now_ms) {
                activity.park.notify_one();
            }
            true
        });
        drop(list);
        let open = connections.open_now.load(Ordering::Relaxed);
        connections
            .budget
            .open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
        connections.budget.parked.set(parked);
    }
}

pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>) -> Response<ResponseBody> {
    // One config from start to finish: the stages, the model's source and CORS agree.
    let compiled = gw.compiled();
    let cors_origins = &compiled.snapshot.gateway.cors_origins;
    if crate::cors::is_preflight(req.method(), req.headers()) {
        return crate::cors::preflight(cors_origins, req.headers());
    }
    // Only a browser sends an Origin; the answer may need its CORS headers.
    let origin = req.headers().get(http::header::ORIGIN).cloned();
    let mut ctx = RequestContext::new(req.headers());
    let door = door(req.uri().path());
    // Every request is settled and audited once, liveness probes aside.
    if let Some(door) = door {
        ctx.audited(door, gw.services.clone());
    }
    let format = api_format(req.uri().path());
    // Boxed: every stage's state lives in this future, about 9 KiB, and hyper keeps a
    // connection's handler allocation while the answer streams. On the heap it is
    // freed as soon as the answer's head is ready.
    let served = Box::pin(route(&gw, &compiled, &mut ctx, req)).await;
    let local = ctx
        .provider()
        .and_then(|p| compiled.providers.get(p).map(|u| u.kind))
        .map(|kind| kind == ai_gateway_snapshot::ProviderKind::Ollama);
    if let Some(local) = local {
        ctx.served_from(local);
    }
    let mut response = crate::respond::respond(&gw.services, ctx, served, format, door.is_some());
    if let Some(origin) = origin {
        crate::cors::expose(cors_origins, origin, response.headers_mut());
    }
    response
}

/// The door a request came in by, as its audit record names it when no surface got
/// far enough to name the call; `None` for liveness probes, which are not audited.
fn door(path: &str) -> Option<&'static str> {
    let door = match path {
        "/health" => return None,
        "/v1/chat/completions" => "chat.completions",
        "/v1/models" | "/v1/skills" | "/v1/usage" | "/v1/limits" => "account",
        p if p.starts_with("/v1/claude") => "claude",
        p if p.starts_with("/v1/bedrock") => "bedrock",
        p if p.starts_with("/v1/gemini") => "gemini",
        p if p.starts_with("/v1/openai") => "openai.native",
        p if p.starts_with("/v1/ollama") => "ollama.native",
        p if p.starts_with("/v1/vertex") => "vertex",
        _ => "other",
    };
    Some(door)
}

/// The API whose error shape a path's caller expects.
fn api_format(path: &str) -> ApiFormat {
    if path.starts_with("/v1/claude")
        || (path.starts_with("/v1/vertex/") && path.contains("/publishers/anthropic/"))
    {
        ApiFormat::Anthropic
    } else if path.starts_with("/v1/ollama/api/") {
        ApiFormat::Ollama
    } else if path.starts_with("/v1/gemini") || path.starts_with("/v1/vertex/") {
        ApiFormat::Gemini
    } else if path.starts_with("/v1/bedrock") {
        ApiFormat::Bedrock
    } else {
        ApiFormat::OpenAi
    }
}

async fn route(
    gw: &Gateway,
    compiled: &CompiledConfig,
    ctx: &mut RequestContext,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let serving = Serving {
        compiled,
        services: &gw.services,
    };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let query = parts.uri.query();
    // What a provider may see of the query: never the caller's credentials.
    let forwarded_query = crate::upstream::forwardable_query(query);
    let method = parts.method.clone();

    // Requests that read no body and need no caller identity.
    match (&method, path) {
        (&Method::GET, "/health") => return Ok(info::health(compiled)),
        (&Method::GET, "/v1/providers") => return Ok(info::providers(compiled)),
        // Claude Code probes its base URL with an unauthenticated HEAD before it starts.
        (&Method::HEAD | &Method::GET, "/v1/claude" | "/v1/claude/") => {
            return Ok(Response::new(empty()))
        }
        _ => {}
    }
    if method == Method::GET {
        if let Some(name) = path
            .strip_prefix("/v1/")
            .and_then(|p| p.strip_suffix("/health"))
        {
            if !name.contains('/') {
                if let Some(r) = info::provider_health(compiled, name) {
                    return Ok(r);
                }
            }
        }
    }
    if gw.is_draining() {
        return Err(GatewayError::ShuttingDown);
    }
    let pending_sigv4 = crate::authenticate::caller(gw, ctx, &parts, path, query).await?;
    match (&method, path) {
        (&Method::GET, "/v1/models") => return Ok(openai_chat::models(compiled)),
        (&Method::GET, "/v1/skills") => return Ok(info::skills(compiled)),
        (&Method::GET, "/v1/usage") => {
            return account::usage(serving, ctx, forwarded_query.as_deref()).await
        }
        (&Method::GET, "/v1/limits") => return account::limits(serving, ctx).await,
        _ => {}
    }

    let surface = if path == "/v1/chat/completions" {
        Surface::Chat
    } else if let Some(rest) = path.strip_prefix("/v1/claude") {
        Surface::Claude(rest)
    } else if let Some(rest) = path.strip_prefix("/v1/openai") {
        Surface::Native(provider_api::Family::OpenAi, rest)
    } else if let Some(rest) = path.strip_prefix("/v1/ollama") {
        Surface::Native(provider_api::Family::Ollama, rest)
    } else if let Some(rest) = path.strip_prefix("/v1/gemini") {
        Surface::Gemini(rest)
    } else if let Some(rest) = path.strip_prefix("/v1/bedrock") {
        Surface::Bedrock(rest)
    } else if let Some(rest) = path.strip_prefix("/v1/vertex") {
        Surface::Vertex(rest)
    } else {
        return Err(GatewayError::NotFound {
            method: method.to_string(),
            path: path.to_string(),
        });
    };
    let rest = match &surface {
        Surface::Claude(r)
        | Surface::Native(_, r)
        | Surface::Gemini(r)
        | Surface::Bedrock(r)
        | Surface::Vertex(r) => *r,
        Surface::Chat => "",
    };
    if !is_plain_path(rest) {
        return Err(GatewayError::NotFound {
            method: method.to_string(),
            path: path.to_string(),
        });
    }

    // Nothing is buffered for a caller who would be refused anyway: a stranger's
    // signature is refused on its headers, and a caller at its limits before its body.
    if pending_sigv4 {
        compiled.keys.sigv4_claim(&parts.headers)?;
    }
    let body = crate::read::body(compiled, &gw.services, ctx, body, pending_sigv4).await?;
    if pending_sigv4 {
        crate::authenticate::signed_body(compiled, &gw.services, ctx, &parts, &body)?;
    }
    if compiled.snapshot.gateway.log_bodies {
        ctx.captures_bodies(body.clone());
    }
    if matches!(surface, Surface::Chat) && method != Method::POST {
        return Err(GatewayError::NotFound {
            method: method.to_string(),
            path: path.to_string(),
        });
    }
    let inbound = Inbound {
        method,
        rest,
        query: forwarded_query.as_deref(),
        headers: &parts.headers,
        body,
    };
    match surface {
        Surface::Chat => openai_chat::completions(serving, ctx, inbound).await,
        Surface::Claude(_) => anthropic_messages::handle(serving, ctx, inbound).await,
        Surface::Bedrock(_) => bedrock_runtime::handle(serving, ctx, inbound).await,
        Surface::Gemini(_) => gemini_api::handle(serving, ctx, inbound).await,
        Surface::Vertex(_) => vertex_ai::handle(serving, ctx, inbound).await,
        Surface::Native(family, _) => provider_api::handle(serving, ctx, family, inbound).await,
    }
}

enum Surface<'a> {
    Chat,
    Bedrock(&'a str),
    Vertex(&'a str),
    Gemini(&'a str),
    Claude(&'a str),
    Native(provider_api::Family, &'a str),
}

pub async fn handle_admin(
    gw: Arc<Gateway>,
    token: Option<Arc<str>>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    admin::handle(&gw, token.as_deref(), req)
        .await
        .unwrap_or_else(status_only)
}

/// An answer that is its status alone (the admin port's refusals).
fn status_only(status: StatusCode) -> Response<ResponseBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const IDLE: Duration = Duration::from_millis(200);
    /// Longer than `IDLE`: a handler and a stream pause this long.
    const SLOW: Duration = Duration::from_millis(600);

    /// A listener closing connections idle for `idle`.
    async fn listener<H, Fut>(idle: Duration, handler: H) -> std::net::SocketAddr
    where
        H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + Unpin + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(
            listener,
            handler,
            std::future::pending(),
            Duration::from_secs(1),
            idle,
            ConnectionBudget::default(),
        ));
        addr
    }

    /// A listener whose handler answers with the request's path and `x-part` header,
    /// and its open connections, to count the parked ones.
    async fn echoing_listener(idle: Duration) -> (std::net::SocketAddr, Arc<OpenConnections>) {
        let (addr, connections, _) = echoing_listener_until(idle, std::future::pending()).await;
        (addr, connections)
    }

    /// [`echoing_listener`] that stops on `shutdown` and drains for up to 5 s; the
    /// serving task, to see when the drain ended.
    async fn echoing_listener_until(
        idle: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (
        std::net::SocketAddr,
        Arc<OpenConnections>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(OpenConnections::default());
        let echo = |req: Request<Incoming>| async move {
            let part = req.headers().get("x-part").map(|v| v.as_bytes().to_vec());
            let text = format!(
                "{} {}",
                req.uri().path(),
                String::from_utf8_lossy(&part.unwrap_or_default())
            );
            Response::new(crate::body::full(text))
        };
        let serving = tokio::spawn(serve_watched(
            listener,
            echo,
            shutdown,
            Duration::from_secs(5),
            idle,
            connections.clone(),
        ));
        (addr, connections, serving)
    }

    /// Reads one answer with a `content-length` body; its body.
    async fn read_answer(conn: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.parse::<usize>().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body.to_string();
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .expect("an answer")
                .expect("read");
            assert!(n > 0, "closed before the answer: {text}");
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_parked_and_serves_its_next_call() {
        // Parked after a sixth of the idle limit, closed after all of it.
        let idle = Duration::from_millis(1200);
        let (addr, connections) = echoing_listener(idle).await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /first HTTP/1.1\r\nhost: gw\r\nx-part: one\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_answer(&mut conn).await, "/first one");
        assert_eq!(connections.parked(), 0, "in use, not parked");
        // Two sweeps past the park delay, well before the idle limit.
        tokio::time::sleep(idle * 3 / 4).await;
        assert_eq!(connections.parked(), 1, "idle past the park delay");
        conn.write_all(b"GET /second HTTP/1.1\r\nhost: gw\r\nx-part: two\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_answer(&mut conn).await, "/second two");
        assert_eq!(connections.parked(), 0, "woken by the call");
        // Parking does not keep a connection past the idle limit.
        read_until_closed(&mut conn)
            .await
            .expect("an idle connection is still closed at the limit");
    }

    #[tokio::test]
    async fn the_sweep_counts_open_and_parked_connections() {
        // A sweep every 500 ms; connections parked after 500 ms quiet, closed after 3 s.
        let idle = Duration::from_secs(3);
        let (addr, connections) = echoing_listener(idle).await;
        let counted = |expected: (i64, i64)| {
            let gauges = connections.budget.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    let now = (gauges.open.get(), gauges.parked.get());
                    if now == expected || Instant::now() > deadline {
                        return now;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let mut held = Vec::new();
        for part in ["one", "two"] {
            let mut conn = TcpStream::connect(addr).await.expect("connect");
            let head = format!("GET /c HTTP/1.1\r\nhost: gw\r\nx-part: {part}\r\n\r\n");
            conn.write_all(head.as_bytes()).await.expect("write");
            assert_eq!(read_answer(&mut conn).await, format!("/c {part}"));
            held.push(conn);
        }
        // Parked at the first sweep past the park delay, counted at the next.
        assert_eq!(counted((2, 2)).await, (2, 2), "both open and idle");
        drop(held.pop());
        assert_eq!(counted((1, 1)).await, (1, 1), "one closed by its caller");
        let mut conn = held.pop().expect("one left");
        conn.write_all(b"GET /c HTTP/1.1\r\nhost: gw\r\nx-part: three\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_answer(&mut conn).await, "/c three");
        assert_eq!(counted((1, 0)).await, (1, 0), "woken by its next call");
    }

    #[tokio::test]
    async fn a_request_head_arriving_across_park_checks_is_read_whole() {
        let idle = Duration::from_millis(1200);
        let (addr, connections) = echoing_listener(idle).await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /split HTTP/1.1\r\nhost: gw\r\nx-pa")
            .await
            .expect("write");
        // Several park checks pass while the head is incomplete: the bytes already read
        // are handed from one hyper connection to the next, never dropped.
        tokio::time::sleep(idle / 2).await;
        assert_eq!(connections.parked(), 0, "a started head is not parked");
        conn.write_all(b"rt: joined\r\n\r\n").await.expect("write");
        assert_eq!(read_answer(&mut conn).await, "/split joined");
    }

    #[tokio::test]
    async fn a_parked_connection_is_closed_at_once_on_drain() {
        let idle = Duration::from_millis(1200);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, connections, serving) = echoing_listener_until(idle, async {
            let _ = stopped.await;
        })
        .await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /once HTTP/1.1\r\nhost: gw\r\nx-part: only\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_answer(&mut conn).await, "/once only");
        tokio::time::sleep(idle * 3 / 4).await;
        assert_eq!(connections.parked(), 1, "idle past the park delay");
        let draining = Instant::now();
        let _ = stop.send(());
        // Closed without an answer, and the drain does not wait out its 5 s for it.
        let left = read_until_closed(&mut conn)
            .await
            .expect("a parked connection is closed by the drain");
        assert!(left.is_empty(), "nothing sent on close: {left:?}");
        tokio::time::timeout(Duration::from_secs(2), serving)
            .await
            .expect("the drain ends once the parked connection is closed")
            .expect("serve");
        assert!(draining.elapsed() < Duration::from_secs(2));
    }

    /// Its handler answers after `SLOW` with a stream that goes silent for `SLOW`
    /// between its two chunks.
    async fn slow_listener() -> std::net::SocketAddr {
        listener(IDLE, |_req: Request<Incoming>| async {
            tokio::time::sleep(SLOW).await;
            let chunks = futures_util::stream::unfold(0, |n| async move {
                match n {
                    0 => Some((Ok(bytes::Bytes::from("first;")), 1)),
                    1 => {
                        tokio::time::sleep(SLOW).await;
                        Some((Ok(bytes::Bytes::from("second")), 2))
                    }
                    _ => None,
                }
            });
            Response::new(crate::body::streaming(chunks))
        })
        .await
    }

    /// Reads until the peer closes; `None` if it is still open after five seconds.
    async fn read_until_closed(conn: &mut TcpStream) -> Option<Vec<u8>> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 1024];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        read.ok().map(|()| got)
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
        let addr = slow_listener().await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        conn.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n")
            .await
            .expect("write");
        let got = read_until_closed(&mut conn)
            .await
            .expect("the gateway closes a connection whose head never completes");
        assert!(got.is_empty(), "no answer to half a request");
        assert!(started.elapsed() >= IDLE, "not before the idle limit");
    }

    #[tokio::test]
    async fn slow_answers_and_silent_streams_are_not_cut_off_but_idle_connections_are() {
        let addr = slow_listener().await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /slow HTTP/1.1\r\nhost: gw\r\n\r\n")
            .await
            .expect("write");
        // Both waits are longer than the idle limit; the request is in progress
        // throughout, so the whole answer arrives.
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"0\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .expect("the answer keeps coming")
                .expect("read");
            assert!(
                n > 0,
                "closed mid-answer: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("first;") && answer.contains("second"),
            "{answer}"
        );
        // Kept alive, then idle: closed after the limit.
        let idle_from = Instant::now();
        read_until_closed(&mut conn)
            .await
            .expect("an idle keep-alive connection is closed");
        // The gateway's idle clock starts as it sends the last chunk, a little before
        // this one did.
        assert!(
            idle_from.elapsed() >= IDLE / 2,
            "closed at once, not after the idle limit"
        );
    }

    #[tokio::test]
    async fn a_large_answer_read_slowly_arrives_whole() {
        // Far more than loopback's socket buffers hold, so the answer is still going
        // out long after the gateway has handed it over.
        const SIZE: usize = 96 << 20;
        // Long enough that a busy test machine does not stall the reader past it.
        let idle = Duration::from_secs(1);
        let addr = listener(idle, |_req: Request<Incoming>| async {
            Response::new(crate::body::full(vec![b'x'; SIZE]))
        })
        .await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /big HTTP/1.1\r\nhost: gw\r\n\r\n")
            .await
            .expect("write");
        // A slow reader: about 40 MB/s, so the whole answer takes several idle limits.
        let mut received = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let started = Instant::now();
        while received < SIZE {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .expect("the answer keeps coming")
                .expect("read");
            assert!(n > 0, "cut after {received} bytes, {:?}", started.elapsed());
            received += n;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            started.elapsed() > IDLE * 2,
            "the read was not slow enough to test"
        );
    }

    /// Work queued on the runtime: `tasks` tasks taking `turns` turns each, waking
    /// themselves as a stream's events would; every turn is counted in `taken`.
    fn queue_work(tasks: usize, turns: usize, taken: &Arc<AtomicUsize>) {
        for _ in 0..tasks {
            let taken = taken.clone();
            let mut left = turns;
            tokio::spawn(std::future::poll_fn(move |cx| {
                taken.fetch_add(1, Ordering::Relaxed);
                left -= 1;
                if left == 0 {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }));
        }
    }

    /// Sends `head` on a new connection before the runtime turns again, so that it
    /// waits at accept; the answer's bytes, read off the runtime's thread.
    fn call_waiting_at_accept(
        addr: std::net::SocketAddr,
        head: &'static str,
    ) -> tokio::task::JoinHandle<Vec<u8>> {
        use std::io::{Read, Write};
        let mut caller = std::net::TcpStream::connect(addr).expect("connect");
        caller.write_all(head.as_bytes()).expect("write");
        caller
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        tokio::task::spawn_blocking(move || {
            let mut answer = Vec::new();
            let _ = caller.read_to_end(&mut answer);
            answer
        })
    }

    #[tokio::test]
    async fn a_request_waiting_at_accept_is_answered_before_a_second_round_of_queued_work() {
        const TASKS: usize = 200;
        let taken = Arc::new(AtomicUsize::new(0));
        let answered_at = Arc::new(AtomicUsize::new(usize::MAX));
        let handler = {
            let (taken, answered_at) = (taken.clone(), answered_at.clone());
            move |_req: Request<Incoming>| {
                answered_at.store(taken.load(Ordering::Relaxed), Ordering::Relaxed);
                let mut answer = Response::new(crate::body::full("ok"));
                answer.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                std::future::ready(answer)
            }
        };
        let addr = listener(IDLE, handler).await;
        let answer = call_waiting_at_accept(addr, "GET /health HTTP/1.1\r\nhost: gw\r\n\r\n");
        queue_work(TASKS, 10, &taken);
        let answer = answer.await.expect("caller");
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        // The accept waits behind one turn of each task; a connection spawned as a
        // task of its own would wait behind a second before its request was read.
        let at = answered_at.load(Ordering::Relaxed);
        assert!(at < 2 * TASKS, "answered after {at} turns of queued work");
    }

    #[tokio::test]
    async fn a_connection_that_panics_in_its_first_turn_is_closed_and_the_listener_serves_on() {
        let handler = |req: Request<Incoming>| async move {
            assert_ne!(req.uri().path(), "/panic", "the handler's own bug");
            Response::new(crate::body::full("served"))
        };
        let addr = listener(IDLE, handler).await;
        let panicked = call_waiting_at_accept(addr, "GET /panic HTTP/1.1\r\nhost: gw\r\n\r\n");
        assert_eq!(panicked.await.expect("caller"), b"", "closed unanswered");
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /next HTTP/1.1\r\nhost: gw\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_answer(&mut conn).await, "served");
    }
}
