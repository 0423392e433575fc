//! One JSON line per request. A finishing request writes its line into a shared
//! buffer; a thread of its own writes the buffer out every few milliseconds, so the
//! request path never waits on I/O. The buffer is bounded: when the sink falls behind,
//! finishing requests wait for room instead of dropping records; a failed write is
//! counted and logged. Closing the log writes out what is buffered.

use ai_gateway_snapshot::{Audit, AuditSink};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Field names follow the users' own audit format (`timestamp`, `user`, `workspace`,
/// `provider`, `model`, `request_tokens`, `response_tokens`, `latency_ms`, `status`).
/// Borrowed from the request it describes: it is written out at once, never kept.
#[derive(Debug, Serialize)]
pub struct AuditRecord<'a> {
    pub timestamp: Timestamp,
    pub event: &'static str,
    pub request_id: &'a str,
    pub user: &'a str,
    pub team: Option<&'a str>,
    pub workspace: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    pub endpoint: &'a str,
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
    pub fallbacks: &'a [String],
    pub error: Option<&'static str>,
    /// The caller went away before the answer was complete; tokens produced so far are charged.
    pub abandoned: bool,
    /// Only when the gateway opts in with `gateway.log_bodies`; streamed answers are not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Cow<'a, str>>,
}

/// An instant written as RFC 3339 UTC with milliseconds, straight into the line.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    pub fn now() -> Self {
        Self(SystemTime::now())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
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
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    records: u64,
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
        let shared = self.shared.as_ref()?;
        // Serialised outside the lock, so concurrent finishers only wait for a copy.
        let mut line = Vec::with_capacity(640);
        if serde_json::to_writer(&mut line, record).is_err() {
            shared.counters.failed.inc();
            return None;
        }
        line.push(b'\n');
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
        true
    }
}

fn write_lines(shared: &Shared, mut out: Box<dyn Write + Send>) {
    // Two buffers take turns: requests fill one while the other is written.
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        // Read before draining: everything recorded before the close is in this batch.
        let closed = shared.closed.load(Ordering::Acquire);
        let batch = {
            let mut pending = shared.lock();
            std::mem::replace(
                &mut *pending,
                Pending {
                    lines: std::mem::take(&mut spare),
                    records: 0,
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
        // waking this thread for every record.
        std::thread::park_timeout(DRAIN_INTERVAL);
    }
}
