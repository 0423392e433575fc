//! One JSON line per request. A finishing request writes its line into a shared
//! buffer; a thread of its own writes the buffer out every few milliseconds, so the
//! request path never waits on I/O. The buffer is bounded: when the sink falls behind,
//! finishing requests wait for room instead of dropping records; a failed write is
//! counted and logged. Closing the log writes out what is buffered.

use crate::context::CascadeOutcome;
use ai_gateway_snapshot::{Audit, AuditSink};
use prometheus_client::metrics::counter::Counter;
use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Field names follow the users' own audit format (`timestamp`, `user`, `workspace`,
/// `provider`, `model`, `request_tokens`, `response_tokens`, `latency_ms`, `status`).
/// Borrowed from the request it describes: it is written out at once, never kept.
#[derive(Debug)]
pub struct AuditRecord<'a> {
    pub timestamp: SystemTime,
    pub event: &'static str,
    pub request_id: &'a str,
    /// The caller's own `x-request-id`, which it chose and may have reused.
    pub client_request_id: Option<&'a str>,
    /// Claude Code's session (`X-Claude-Code-Session-Id`) and agent, when it sent them.
    pub session_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub user: &'a str,
    pub team: Option<&'a str>,
    pub workspace: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    pub endpoint: &'a str,
    /// For `model: "auto"`: why the model was chosen (`complex: stack_trace, code`).
    pub route_reason: Option<&'a str>,
    pub status: u16,
    pub stream: bool,
    /// All prompt tokens, cached ones included.
    pub request_tokens: u64,
    pub response_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub cache_hit: bool,
    /// Input tokens token reduction took out of the request (estimated).
    pub tokens_saved: u64,
    /// How a cascade went, for calls that went through one.
    pub cascade: Option<&'a CascadeOutcome>,
    pub fallbacks: &'a [String],
    pub error: Option<&'static str>,
    /// The caller went away before the answer was complete; tokens produced so far are charged.
    pub abandoned: bool,
    /// Only when the gateway opts in with `gateway.log_bodies`; streamed answers are not kept.
    pub request_body: Option<Cow<'a, str>>,
    pub response_body: Option<Cow<'a, str>>,
}

impl AuditRecord<'_> {
    /// The record as one JSON object. Written field by field rather than derived: a
    /// derived serializer escapes every field name again on every call.
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut f = JsonFields::open(out);
        f.key("timestamp");
        write_timestamp(f.out, self.timestamp);
        f.str("event", Some(self.event));
        f.str("request_id", Some(self.request_id));
        f.str("client_request_id", self.client_request_id);
        f.str("session_id", self.session_id);
        f.str("agent_id", self.agent_id);
        f.str("user", Some(self.user));
        f.str("team", self.team);
        f.str("workspace", self.workspace);
        f.str("key_id", self.key_id);
        f.str("provider", self.provider);
        f.str("model", self.model);
        f.str("upstream_model", self.upstream_model);
        f.str("endpoint", Some(self.endpoint));
        f.str("route_reason", self.route_reason);
        f.number("status", u64::from(self.status));
        f.bool("stream", self.stream);
        f.number("request_tokens", self.request_tokens);
        f.number("response_tokens", self.response_tokens);
        f.number("cache_read_tokens", self.cache_read_tokens);
        f.number("cache_write_tokens", self.cache_write_tokens);
        f.key("cost_usd");
        let _ = serde_json::to_writer(&mut *f.out, &self.cost_usd);
        f.number("latency_ms", self.latency_ms);
        match self.ttft_ms {
            Some(ms) => f.number("ttft_ms", ms),
            None => f.str("ttft_ms", None),
        }
        f.bool("cache_hit", self.cache_hit);
        if self.tokens_saved > 0 {
            f.number("tokens_saved", self.tokens_saved);
        }
        if let Some(cascade) = self.cascade {
            f.key("cascade");
            write_cascade(cascade, f.out);
        }
        f.key("fallbacks");
        let _ = serde_json::to_writer(&mut *f.out, self.fallbacks);
        f.str("error", self.error);
        f.bool("abandoned", self.abandoned);
        if let Some(body) = &self.request_body {
            f.str("request_body", Some(body));
        }
        if let Some(body) = &self.response_body {
            f.str("response_body", Some(body));
        }
        f.out.push(b'}');
    }
}

/// A cascade's routing outcome as one JSON object: the tiers, whether and why it
/// escalated, the quality score and the judged attempt.
pub fn write_cascade(c: &CascadeOutcome, out: &mut Vec<u8>) {
    let mut f = JsonFields::open(out);
    f.str("initial_tier", Some(c.initial_tier));
    f.str("final_tier", Some(c.final_tier));
    f.bool("escalated", c.escalated);
    f.key("reasons");
    let _ = serde_json::to_writer(&mut *f.out, &c.reasons);
    f.key("quality_score");
    let _ = serde_json::to_writer(&mut *f.out, &c.quality_score);
    f.key("judged");
    let a = &c.judged;
    let mut g = JsonFields::open(f.out);
    g.str("tier", Some(a.tier));
    g.str("model", Some(&a.model));
    g.str("provider", Some(&a.provider));
    g.number("status", u64::from(a.status));
    g.number("latency_ms", a.latency_ms);
    g.number("request_tokens", a.usage.prompt_total());
    g.number("response_tokens", a.usage.output);
    g.key("cost_usd");
    let _ = serde_json::to_writer(&mut *g.out, &(a.cost_micros as f64 / 1_000_000.0));
    g.out.push(b'}');
    f.out.push(b'}');
}

/// `"YYYY-MM-DDTHH:MM:SS.mmmZ"`, quoted. The date and time up to the second are
/// formatted once per second per thread; calls within it only add their milliseconds.
fn write_timestamp(out: &mut Vec<u8>, at: SystemTime) {
    const SECOND_LEN: usize = "YYYY-MM-DDTHH:MM:SS".len();
    thread_local! {
        static SECOND: std::cell::Cell<Option<(u64, [u8; SECOND_LEN])>> =
            const { std::cell::Cell::new(None) };
    }
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let second = match SECOND.get() {
        Some((cached, text)) if cached == secs => text,
        _ => {
            let mut text = [b'0'; SECOND_LEN];
            let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
            let whole = whole.to_string();
            if let Some(prefix) = whole.as_bytes().get(..SECOND_LEN) {
                text.copy_from_slice(prefix);
            }
            SECOND.set(Some((secs, text)));
            text
        }
    };
    let millis = since_epoch.subsec_millis();
    out.push(b'"');
    out.extend_from_slice(&second);
    out.extend_from_slice(&[
        b'.',
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
        b'"',
    ]);
}

/// The members of a JSON object being written, names given as plain ASCII.
struct JsonFields<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> JsonFields<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string, escaped as JSON requires; `None` is `null`.
    fn str(&mut self, name: &str, value: Option<&str>) {
        self.key(name);
        match value {
            // Most values (ids, names, models) need no escaping: copied as they are.
            Some(v) if !needs_escape(v.as_bytes()) => {
                self.out.push(b'"');
                self.out.extend_from_slice(v.as_bytes());
                self.out.push(b'"');
            }
            Some(v) => {
                let _ = serde_json::to_writer(&mut *self.out, v);
            }
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn number(&mut self, name: &str, value: u64) {
        self.key(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn bool(&mut self, name: &str, value: bool) {
        self.key(name);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }
}

/// Whether JSON needs any of `text`'s bytes escaped. Every byte is looked at, with no
/// early exit, so the loop compiles to vector compares: ids and names are short and
/// almost never need it.
fn needs_escape(text: &[u8]) -> bool {
    text.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Written and failed record counts, shared with the metrics registry.
#[derive(Clone, Default)]
pub struct AuditCounters {
    pub written: Counter,
    pub failed: Counter,
}

pub struct AuditLog {
    shared: Option<Arc<Shared>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Lines waiting for the writer, and how it is told to stop.
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes finishing requests that wait for room.
    drained: tokio::sync::Notify,
    closed: AtomicBool,
    counters: AuditCounters,
    /// The writer thread, set by itself before it first sleeps.
    writer: std::sync::OnceLock<std::thread::Thread>,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    records: u64,
    /// The writer found nothing to write and sleeps until a record wakes it, so an
    /// idle gateway's writer does not wake every interval for nothing.
    writer_asleep: bool,
}

/// Past this many buffered bytes (tens of thousands of records) finishing requests
/// wait for the writer.
const MAX_PENDING_BYTES: usize = 16 << 20;
/// How long a record may wait before it is written; the buffer holds far more than
/// this many milliseconds of requests.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

impl AuditLog {
    /// Starts the writer for the configured sink on a thread of its own: its blocking
    /// writes and flushes then never take a runtime worker or the blocking pool.
    pub fn start(config: &Audit, counters: AuditCounters) -> std::io::Result<Self> {
        let writer: Box<dyn Write + Send> = match config.sink {
            AuditSink::None => {
                return Ok(Self {
                    shared: None,
                    writer: Mutex::new(None),
                })
            }
            AuditSink::Stdout => Box::new(std::io::stdout()),
            AuditSink::File => {
                let path = config.path.as_deref().unwrap_or("ai-gateway-audit.jsonl");
                Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?,
                )
            }
        };
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            drained: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            counters,
            writer: std::sync::OnceLock::new(),
        });
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_lines(&thread_shared, writer))?;
        Ok(Self {
            shared: Some(shared),
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Adds a record's line when the buffer has room; otherwise hands the line back,
    /// for [`AuditLog::append_when_room`].
    pub fn try_record(&self, record: &AuditRecord<'_>) -> Option<Vec<u8>> {
        self.shared.as_ref()?;
        // Serialised outside the lock, so concurrent finishers only wait for a copy.
        let mut line = Vec::with_capacity(640);
        record.write_json(&mut line);
        line.push(b'\n');
        self.try_append(line)
    }

    /// Adds a whole line when the buffer has room; otherwise hands it back.
    pub fn try_append(&self, line: Vec<u8>) -> Option<Vec<u8>> {
        let shared = self.shared.as_ref()?;
        if shared.append_if_room(&line) {
            None
        } else {
            Some(line)
        }
    }

    /// Adds a record's line, waiting for room while the writer is behind.
    pub async fn append_when_room(&self, line: Vec<u8>) {
        let Some(shared) = &self.shared else { return };
        loop {
            let room = shared.drained.notified();
            if shared.append_if_room(&line) {
                return;
            }
            room.await;
        }
    }

    /// Whether records go anywhere; when not, callers skip building them.
    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Writes out every buffered record and stops the writer: the last calls before a
    /// shutdown are audited too.
    pub fn close(&self) {
        let Some(shared) = &self.shared else { return };
        shared.closed.store(true, Ordering::Release);
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// The last requests that ended in an error, and today's rate-limit refusals, on this
/// replica: what the dashboard shows beside the usage it reads from the store.
#[derive(Default)]
pub struct RecentTrouble {
    errors: Mutex<std::collections::VecDeque<ai_gateway_snapshot::replies::ErrorEntry>>,
    /// The UTC day `rate_limited` counts, and its count.
    rate_limited: Mutex<(u64, u64)>,
}

/// Errors kept for the dashboard.
const RECENT_ERRORS: usize = 50;

impl RecentTrouble {
    pub fn record(&self, entry: ai_gateway_snapshot::replies::ErrorEntry, day: u64) {
        if entry.status == 429 {
            let mut counted = self.rate_limited.lock().unwrap_or_else(|p| p.into_inner());
            if counted.0 != day {
                *counted = (day, 0);
            }
            counted.1 += 1;
        }
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() == RECENT_ERRORS {
            errors.pop_front();
        }
        errors.push_back(entry);
    }

    /// The newest `n` errors, newest first.
    pub fn last(&self, n: usize) -> Vec<ai_gateway_snapshot::replies::ErrorEntry> {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        errors.iter().rev().take(n).cloned().collect()
    }

    pub fn rate_limited_on(&self, day: u64) -> u64 {
        let counted = self.rate_limited.lock().unwrap_or_else(|p| p.into_inner());
        if counted.0 == day {
            counted.1
        } else {
            0
        }
    }
}

/// The cascades' routing outcomes file (`auto_routing.cascade.outcomes_file`): one JSON
/// line per cascade, written like the audit log, opened when a cascade first names it
/// (and again when the config names another).
#[derive(Default)]
pub struct OutcomesLog(Mutex<Option<(String, Arc<AuditLog>)>>);

impl OutcomesLog {
    /// Appends `line` to the file at `path`; a line the writer has no room for is
    /// dropped and counted as failed, never waited for.
    pub fn append(&self, path: &str, line: Vec<u8>, counters: &AuditCounters) {
        let log = {
            let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match open.as_ref() {
                Some((at, log)) if at == path => log.clone(),
                _ => {
                    let config = Audit {
                        sink: AuditSink::File,
                        path: Some(path.to_string()),
                    };
                    match AuditLog::start(&config, counters.clone()) {
                        Ok(log) => {
                            let log = Arc::new(log);
                            *open = Some((path.to_string(), log.clone()));
                            log
                        }
                        Err(e) => {
                            tracing::error!(path, error = %e, "cannot open the cascade outcomes file");
                            counters.failed.inc();
                            return;
                        }
                    }
                }
            }
        };
        if log.try_append(line).is_some() {
            counters.failed.inc();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Let the writer write what is left and end, without waiting for it here.
        if let Some(shared) = &self.shared {
            shared.closed.store(true, Ordering::Release);
        }
        if let Some(handle) = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            handle.thread().unpark();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `line` unless the buffer is full; once closed, it always has room.
    fn append_if_room(&self, line: &[u8]) -> bool {
        let mut pending = self.lock();
        if pending.lines.len() >= MAX_PENDING_BYTES && !self.closed.load(Ordering::Acquire) {
            return false;
        }
        pending.lines.extend_from_slice(line);
        pending.records += 1;
        let wake = std::mem::take(&mut pending.writer_asleep);
        drop(pending);
        if wake {
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
        }
        true
    }
}

fn write_lines(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let _ = shared.writer.set(std::thread::current());
    // Two buffers take turns: requests fill one while the other is written.
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        // Read before draining: everything recorded before the close is in this batch.
        let closed = shared.closed.load(Ordering::Acquire);
        let batch = {
            let mut pending = shared.lock();
            let idle = pending.records == 0;
            std::mem::replace(
                &mut *pending,
                Pending {
                    lines: std::mem::take(&mut spare),
                    records: 0,
                    writer_asleep: idle,
                },
            )
        };
        shared.drained.notify_waiters();
        if batch.records > 0 {
            match out.write_all(&batch.lines).and_then(|()| out.flush()) {
                Ok(()) => {
                    shared.counters.written.inc_by(batch.records);
                }
                Err(e) => {
                    shared.counters.failed.inc_by(batch.records);
                    tracing::error!(error = %e, records = batch.records, "audit write failed");
                }
            }
        }
        spare = batch.lines;
        spare.clear();
        if closed {
            break;
        }
        // Woken early by `close`; otherwise batches form over the interval instead of
        // waking this thread for every record. With nothing written, it sleeps until
        // the next record (a spurious wake-up finds nothing and sleeps again).
        if batch.records == 0 {
            std::thread::park();
        } else {
            std::thread::park_timeout(DRAIN_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record<'a>(fallbacks: &'a [String], body: Option<&'a str>) -> AuditRecord<'a> {
        AuditRecord {
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_151_023_456),
            event: "ai_request",
            request_id: "req_1",
            client_request_id: Some("trace-7"),
            session_id: Some("3f6c1e2a-sess"),
            agent_id: None,
            user: "ana \"the admin\"\n\u{1F600}",
            team: Some("platform"),
            workspace: None,
            key_id: Some("k1"),
            provider: Some("anthropic"),
            model: Some("claude-sonnet"),
            upstream_model: Some("claude-sonnet-4-5"),
            endpoint: "claude.messages",
            route_reason: None,
            status: 200,
            stream: true,
            request_tokens: 1200,
            response_tokens: 34,
            cache_read_tokens: 1000,
            cache_write_tokens: 0,
            cost_usd: 0.004_56,
            latency_ms: 812,
            ttft_ms: None,
            cache_hit: false,
            tokens_saved: 0,
            cascade: None,
            fallbacks,
            error: None,
            abandoned: false,
            request_body: body.map(Cow::Borrowed),
            response_body: None,
        }
    }

    #[test]
    fn a_record_after_the_writer_fell_idle_is_written_without_waiting_for_close() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.jsonl");
        let config = Audit {
            sink: AuditSink::File,
            path: Some(path.to_string_lossy().into_owned()),
        };
        let log = AuditLog::start(&config, AuditCounters::default()).expect("writer starts");
        let written_within = |lines: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text.lines().count() >= lines {
                    return true;
                }
                if std::time::Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let fallbacks = Vec::new();
        // Each record lands after several drain intervals with nothing to write.
        for lines in 1..=3 {
            std::thread::sleep(DRAIN_INTERVAL * 4);
            assert_eq!(log.try_record(&record(&fallbacks, None)), None);
            assert!(
                written_within(lines),
                "record {lines} still unwritten after 5 s"
            );
        }
        log.close();
    }

    #[test]
    fn only_quotes_backslashes_and_control_characters_need_escaping() {
        for plain in [
            "",
            "claude-sonnet-4-5",
            "ana@example.com",
            "ünïcødé 😀",
            "a/b:c{d}",
        ] {
            assert!(!needs_escape(plain.as_bytes()), "{plain:?}");
        }
        for escaped in [
            "say \"hi\"",
            "C:\\path",
            "line\nbreak",
            "tab\there",
            "\u{7f}\u{0}",
        ] {
            assert!(needs_escape(escaped.as_bytes()), "{escaped:?}");
        }
        // DEL is a control character to Unicode, not to JSON.
        assert!(!needs_escape("\u{7f}".as_bytes()));
        // Past a vector's width, and at its last byte.
        let long = format!("{}\"", "x".repeat(70));
        assert!(needs_escape(long.as_bytes()));
    }

    #[test]
    fn a_record_is_one_json_object_with_every_field_escaped() {
        let fallbacks = vec!["openai".to_string()];
        let mut line = Vec::new();
        record(&fallbacks, Some("{\"model\":\"x\"}")).write_json(&mut line);
        let parsed: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "timestamp": "2025-11-26T09:57:03.456Z",
                "event": "ai_request",
                "request_id": "req_1",
                "client_request_id": "trace-7",
                "session_id": "3f6c1e2a-sess",
                "agent_id": null,
                "user": "ana \"the admin\"\n\u{1F600}",
                "team": "platform",
                "workspace": null,
                "key_id": "k1",
                "provider": "anthropic",
                "model": "claude-sonnet",
                "upstream_model": "claude-sonnet-4-5",
                "endpoint": "claude.messages",
                "route_reason": null,
                "status": 200,
                "stream": true,
                "request_tokens": 1200,
                "response_tokens": 34,
                "cache_read_tokens": 1000,
                "cache_write_tokens": 0,
                "cost_usd": 0.00456,
                "latency_ms": 812,
                "ttft_ms": null,
                "cache_hit": false,
                "fallbacks": ["openai"],
                "error": null,
                "abandoned": false,
                "request_body": "{\"model\":\"x\"}"
            })
        );
        // Bodies appear only when kept.
        let mut line = Vec::new();
        record(&[], None).write_json(&mut line);
        let parsed: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
        assert!(parsed.get("request_body").is_none() && parsed.get("response_body").is_none());
        assert_eq!(parsed["fallbacks"], json!([]));
    }

    #[test]
    fn timestamps_within_and_across_seconds_read_as_their_own_instant() {
        let at = |ms| {
            let mut line = Vec::new();
            write_timestamp(&mut line, UNIX_EPOCH + Duration::from_millis(ms));
            String::from_utf8(line).expect("ascii")
        };
        for (ms, text) in [
            (1_764_151_023_456, "2025-11-26T09:57:03.456Z"),
            (1_764_151_023_007, "2025-11-26T09:57:03.007Z"),
            (1_764_151_024_090, "2025-11-26T09:57:04.090Z"),
            (1_764_151_023_999, "2025-11-26T09:57:03.999Z"),
            (0, "1970-01-01T00:00:00.000Z"),
        ] {
            assert_eq!(at(ms), format!("\"{text}\""));
        }
    }
}
