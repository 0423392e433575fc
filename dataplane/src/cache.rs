//! The response cache: answers to deterministic calls (temperature 0) served again
//! without the provider, in memory (moka) and, when shared by replicas, in Redis.
//!
//! The key covers the caller (key, user, team, workspace), the surface, the provider
//! and upstream model, the headers that change an answer and the request body in
//! canonical form, so no caller ever sees another's answer. A streamed answer is kept
//! as the bytes the caller received and replayed as a stream, event by event.

use crate::body::{BoxError, ResponseBody};
use crate::context::RequestContext;
use crate::routing::Resolved;
use ai_gateway_snapshot::{CacheSettings, CacheStoreKind, Snapshot};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};

use sha2::{Digest, Sha256};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::Duration;
use tokio::sync::OnceCell;

pub type CacheKey = [u8; 32];

/// Redis is a shared convenience, not a dependency: a slow or absent Redis is a miss.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const REDIS_PREFIX: &str = "aigw:cache:";

/// One stored answer, as the caller received it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cached {
    pub content_type: String,
    pub stream: bool,
    pub provider: String,
    pub upstream_model: String,
    #[serde(skip)]
    pub body: Bytes,
    #[serde(skip)]
    ttl: Duration,
}

impl Cached {
    /// Redis value: the JSON head, a newline, then the body bytes.
    fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(bytes: &[u8], ttl: Duration) -> Option<Self> {
        let split = bytes.iter().position(|&b| b == b'\n')?;
        let mut cached: Cached = serde_json::from_slice(&bytes[..split]).ok()?;
        cached.body = Bytes::copy_from_slice(&bytes[split + 1..]);
        cached.ttl = ttl;
        Some(cached)
    }
}

struct PerEntryTtl;

impl moka::Expiry<CacheKey, Arc<Cached>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Cached>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

struct SharedStore {
    client: redis::Client,
    conn: OnceCell<redis::aio::ConnectionManager>,
    /// Until when a failed connect is not tried again (ms since the epoch).
    down_until_ms: AtomicU64,
}

/// A Redis that cannot be reached is left alone this long: every call would
/// otherwise wait out a connect timeout.
const REDIS_RETRY_AFTER_MS: u64 = 5_000;

impl SharedStore {
    async fn conn(&self) -> Option<redis::aio::ConnectionManager> {
        let now = crate::upstream::breaker::now_ms();
        if self.down_until_ms.load(Ordering::Relaxed) > now {
            return None;
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connect = self.conn.get_or_try_init(|| async {
            tokio::time::timeout(
                REDIS_TIMEOUT,
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config),
            )
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())
        });
        match connect.await {
            Ok(conn) => Some(conn.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "response cache: redis unreachable; serving from memory");
                self.down_until_ms
                    .store(now + REDIS_RETRY_AFTER_MS, Ordering::Relaxed);
                None
            }
        }
    }
}

pub struct ResponseCache {
    memory: moka::sync::Cache<CacheKey, Arc<Cached>>,
    shared: Option<SharedStore>,
    max_entry_bytes: usize,
    /// Bytes held by answers still streaming to their callers, and the most allowed:
    /// beyond it an answer is passed on without being kept.
    buffering: AtomicUsize,
    max_buffering: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("response cache: {0}")]
pub struct CacheError(#[from] redis::RedisError);

impl ResponseCache {
    /// Sized and connected from the snapshot the gateway starts with.
    pub fn new(snapshot: &Snapshot) -> Result<Self, CacheError> {
        let settings = &snapshot.cache;
        let redis_url = settings
            .redis_url
            .as_deref()
            .or(snapshot.rate_limits.store.url.as_deref());
        let shared = match (settings.store, redis_url) {
            (CacheStoreKind::Redis, Some(url)) => Some(SharedStore {
                client: redis::Client::open(url)?,
                conn: OnceCell::new(),
                down_until_ms: AtomicU64::new(0),
            }),
            _ => None,
        };
        Ok(Self {
            memory: moka::sync::Cache::builder()
                .max_capacity(settings.max_memory_mb.saturating_mul(1024 * 1024))
                .weigher(|_, v: &Arc<Cached>| u32::try_from(v.body.len()).unwrap_or(u32::MAX))
                .expire_after(PerEntryTtl)
                .build(),
            shared,
            max_entry_bytes: usize::try_from(settings.max_entry_kb.saturating_mul(1024))
                .unwrap_or(usize::MAX),
            buffering: AtomicUsize::new(0),
            max_buffering: usize::try_from(settings.max_memory_mb.saturating_mul(1024 * 1024) / 2)
                .unwrap_or(usize::MAX),
        })
    }

    pub async fn get(&self, key: &CacheKey, ttl: Duration) -> Option<Arc<Cached>> {
        if let Some(hit) = self.memory.get(key) {
            return Some(hit);
        }
        let shared = self.shared.as_ref()?;
        let mut conn = shared.conn().await?;
        let fetched: Option<Vec<u8>> = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("GET").arg(redis_key(key)).query_async(&mut conn),
        )
        .await
        .ok()?
        .map_err(|e| tracing::warn!(error = %e, "response cache: redis GET failed"))
        .ok()?;
        let cached = Arc::new(Cached::decode(&fetched?, ttl)?);
        self.memory.insert(*key, cached.clone());
        Some(cached)
    }

    fn put(self: &Arc<Self>, key: CacheKey, cached: Cached) {
        if cached.body.len() > self.max_entry_bytes {
            return;
        }
        let cached = Arc::new(cached);
        self.memory.insert(key, cached.clone());
        if self.shared.is_some() {
            let this = self.clone();
            tokio::spawn(async move {
                let Some(conn) = this.shared.as_ref().map(SharedStore::conn) else {
                    return;
                };
                let Some(mut conn) = conn.await else { return };
                let millis = u64::try_from(cached.ttl.as_millis()).unwrap_or(u64::MAX);
                let set: Result<Result<(), _>, _> = tokio::time::timeout(
                    REDIS_TIMEOUT,
                    redis::cmd("SET")
                        .arg(redis_key(&key))
                        .arg(cached.encode())
                        .arg("PX")
                        .arg(millis)
                        .query_async(&mut conn),
                )
                .await;
                if let Ok(Err(e)) = set {
                    tracing::warn!(error = %e, "response cache: redis SET failed");
                }
            });
        }
    }

    /// Stores the answer once its body has reached the caller whole.
    pub fn fill(
        self: &Arc<Self>,
        lookup: &Lookup,
        ctx: &RequestContext,
        response: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        if !response.status().is_success() {
            return response;
        }
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let template = Cached {
            stream: content_type.starts_with("text/event-stream"),
            content_type,
            provider: ctx.provider().unwrap_or_default().to_string(),
            upstream_model: ctx.upstream_model().unwrap_or_default().to_string(),
            body: Bytes::new(),
            ttl: lookup.ttl,
        };
        let (parts, body) = response.into_parts();
        let tee = Tee {
            buffer: Some(Vec::new()),
            store: Some((self.clone(), lookup.key, template)),
        };
        Response::from_parts(parts, crate::body::observed(body, tee))
    }
}

fn redis_key(key: &CacheKey) -> String {
    format!("{REDIS_PREFIX}{}", hex::encode(key))
}

/// A cacheable call: where its answer is kept and for how long.
pub struct Lookup {
    pub key: CacheKey,
    pub ttl: Duration,
}

/// Whether a call may be answered from the cache, and under which key. Deterministic
/// calls only: temperature 0 (or unset, where the gateway opts in).
/// `temperature` is the request's, as routing already read it: most calls sample, and
/// are turned away here without parsing their body again.
pub fn lookup_for(
    settings: &CacheSettings,
    ctx: &RequestContext,
    resolved: &Resolved,
    temperature: Option<f64>,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Lookup> {
    if !settings.enabled {
        return None;
    }
    let ttl = resolved.cache_ttl_seconds.unwrap_or(settings.ttl_seconds);
    let deterministic = match temperature {
        None => settings.include_unset_temperature,
        Some(t) => t == 0.0,
    };
    if ttl == 0 || !deterministic {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(b"v1");
    if let Some(id) = ctx.identity() {
        field(id.key_id.as_deref().unwrap_or_default().as_bytes());
        field(id.user.as_bytes());
        field(id.team.as_deref().unwrap_or_default().as_bytes());
        field(id.workspace.as_deref().unwrap_or_default().as_bytes());
    }
    // The model the caller named, not the route that served it: equal routes sharing a
    // model's calls by weight give one answer.
    field(settings.partition.as_deref().unwrap_or_default().as_bytes());
    field(ctx.call_name().as_bytes());
    field(ctx.model().unwrap_or_default().as_bytes());
    // A provider the caller named outright answers differently from the routed one.
    for name in ["anthropic-version", "anthropic-beta", "x-provider"] {
        field(
            headers
                .get(name)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default(),
        );
    }
    let mut canonical = Vec::with_capacity(body.len());
    write_canonical(&doc, &mut canonical);
    field(&canonical);
    Some(Lookup {
        key: hash.finalize().into(),
        ttl: Duration::from_secs(ttl),
    })
}

/// JSON with object keys sorted at every level: equal requests hash equal however
/// their client ordered the fields.
fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::to_string(k).unwrap_or_default().as_bytes());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        // `0` and `0.0` ask for the same thing.
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => {
                out.extend_from_slice((f as i64).to_string().as_bytes())
            }
            _ => out.extend_from_slice(n.to_string().as_bytes()),
        },
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// The stored answer as a response: a stream is sent event by event, as it first came.
pub fn replay(cached: &Cached, ctx: &mut RequestContext) -> Response<ResponseBody> {
    ctx.routed(&cached.provider, &cached.upstream_model);
    let body = if cached.stream {
        let events: Vec<Result<Bytes, BoxError>> =
            split_events(&cached.body).into_iter().map(Ok).collect();
        crate::body::streaming(futures_util::stream::iter(events))
    } else {
        crate::body::full(cached.body.clone())
    };
    let mut response = Response::new(body);
    if let Ok(v) = HeaderValue::from_str(&cached.content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    response
}

fn split_events(body: &Bytes) -> Vec<Bytes> {
    let mut events = Vec::new();
    let mut start = 0;
    for end in memchr::memmem::find_iter(body, b"\n\n") {
        events.push(body.slice(start..end + 2));
        start = end + 2;
    }
    if start < body.len() {
        events.push(body.slice(start..));
    }
    events
}

/// A stream is worth keeping only if it ended as its protocol ends: a truncated or
/// failed stream must never be replayed as if it were whole.
fn complete(cached: &Cached, body: &[u8]) -> bool {
    if !cached.stream {
        return true;
    }
    let tail = &body[body.len().saturating_sub(256)..];
    let ends = |needle: &[u8]| memchr::memmem::find(tail, needle).is_some();
    // Some OpenAI-compatible servers report an error mid-stream and still send [DONE].
    let anywhere = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
    (ends(b"message_stop") || ends(b"data: [DONE]"))
        && !anywhere(b"event: error")
        && !anywhere(b"data: {\"error\"")
}

/// Keeps a copy of a body passing to its caller, stored when it ends whole.
struct Tee {
    buffer: Option<Vec<u8>>,
    store: Option<(Arc<ResponseCache>, CacheKey, Cached)>,
}

impl Tee {
    /// Keeps `data` if this answer and all others in flight stay within bounds.
    fn keep(&mut self, data: &[u8]) {
        let (Some(buffer), Some((cache, _, _))) = (self.buffer.as_mut(), self.store.as_ref())
        else {
            return;
        };
        let fits_entry = buffer.len() + data.len() <= cache.max_entry_bytes;
        let held = cache.buffering.fetch_add(data.len(), Ordering::Relaxed) + data.len();
        if fits_entry && held <= cache.max_buffering {
            buffer.extend_from_slice(data);
        } else {
            cache.buffering.fetch_sub(data.len(), Ordering::Relaxed);
            self.abandon();
        }
    }

    fn release(&mut self) -> Option<Vec<u8>> {
        let buffer = self.buffer.take()?;
        if let Some((cache, _, _)) = &self.store {
            cache.buffering.fetch_sub(buffer.len(), Ordering::Relaxed);
        }
        Some(buffer)
    }

    fn abandon(&mut self) {
        self.release();
        self.store = None;
    }

    fn finish(&mut self) {
        let buffer = self.release();
        let (Some(buffer), Some((cache, key, mut cached))) = (buffer, self.store.take()) else {
            return;
        };
        if complete(&cached, &buffer) {
            cached.body = Bytes::from(buffer);
            cache.put(key, cached);
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.release();
    }
}

impl crate::body::BodyObserver for Tee {
    fn on_data(&mut self, data: &Bytes) {
        self.keep(data);
    }

    fn on_end(&mut self, failed: bool) {
        if failed {
            // A failed body is never stored.
            self.abandon();
        } else {
            self.finish();
        }
    }
}

/// The cache stage: the stored answer to a cacheable call, when there is one.
pub async fn answer_from_cache(
    cache: &ResponseCache,
    metrics: &crate::metrics::Metrics,
    ctx: &mut RequestContext,
    lookup: &Lookup,
) -> Option<Response<ResponseBody>> {
    let hit = cache.get(&lookup.key, lookup.ttl).await;
    ctx.looked_up_cache(hit.is_some());
    let result = if hit.is_some() { "hit" } else { "miss" };
    metrics
        .cache_lookups
        .get_or_create(&crate::metrics::CacheLabels { result })
        .inc();
    hit.map(|cached| replay(&cached, ctx))
}

/// Keeps a served answer for the next identical call, once it has reached the caller.
pub fn into_cache<E>(
    cache: &Arc<ResponseCache>,
    ctx: &RequestContext,
    lookup: Option<&Lookup>,
    served: Result<Response<ResponseBody>, E>,
) -> Result<Response<ResponseBody>, E> {
    match (served, lookup) {
        (Ok(response), Some(lookup)) => Ok(cache.fill(lookup, ctx, response)),
        (served, _) => served,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_field_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1.0,"a":{"y":[1,{"q":2,"p":3}],"x":"s"}}"#)
                .unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#)
                .unwrap_or_default();
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        write_canonical(&a, &mut ca);
        write_canonical(&b, &mut cb);
        assert_eq!(ca, cb);
        assert_eq!(
            String::from_utf8_lossy(&ca),
            r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#
        );
    }

    #[test]
    fn streams_split_into_their_events() {
        let body = Bytes::from_static(b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n");
        let events = split_events(&body);
        assert_eq!(events.len(), 2);
        assert_eq!(&events[1][..], b"event: b\ndata: 2\n\n");
    }

    #[test]
    fn only_whole_streams_are_kept() {
        let cached = Cached {
            content_type: "text/event-stream".into(),
            stream: true,
            provider: String::new(),
            upstream_model: String::new(),
            body: Bytes::new(),
            ttl: Duration::from_secs(1),
        };
        assert!(complete(&cached, b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(complete(
            &cached,
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        ));
        assert!(!complete(&cached, b"data: {\"choices\":[]}\n\n"));
        assert!(!complete(
            &cached,
            b"event: error\ndata: {}\n\nevent: message_stop\n\n"
        ));
        assert!(!complete(
            &cached,
            b"data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n"
        ));
    }
}
