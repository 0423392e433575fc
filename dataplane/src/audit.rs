//! One JSON line per request, written by a background task so the request path never
//! waits on I/O. The channel is bounded: when the sink falls behind, finishing requests
//! wait for room instead of dropping records; a failed write is counted and logged.

use ai_gateway_snapshot::{Audit, AuditSink};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::io::Write;
use tokio::sync::mpsc;

/// Field names follow the users' own audit format (`timestamp`, `user`, `workspace`,
/// `provider`, `model`, `request_tokens`, `response_tokens`, `latency_ms`, `status`).
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub timestamp: String,
    pub event: &'static str,
    pub request_id: String,
    pub user: String,
    pub team: Option<String>,
    pub workspace: Option<String>,
    pub key_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub upstream_model: Option<String>,
    pub endpoint: String,
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
    pub fallbacks: Vec<String>,
    pub error: Option<&'static str>,
    /// The caller went away before the answer was complete; tokens produced so far are charged.
    pub abandoned: bool,
    /// Only when the gateway opts in with `gateway.log_bodies`; streamed answers are not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// Written and failed record counts, shared with the metrics registry.
#[derive(Clone, Default)]
pub struct AuditCounters {
    pub written: Counter,
    pub failed: Counter,
}

pub struct AuditLog {
    tx: Option<mpsc::Sender<AuditRecord>>,
    counters: AuditCounters,
}

const BUFFER: usize = 16_384;
/// How long a record may wait before it is written; the buffer holds far more than
/// this many milliseconds of requests.
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

impl AuditLog {
    /// Starts the writer for the configured sink on a thread of its own: its blocking
    /// writes and flushes then never take a runtime worker or the blocking pool.
    pub fn start(config: &Audit, counters: AuditCounters) -> std::io::Result<Self> {
        let writer: Box<dyn Write + Send> = match config.sink {
            AuditSink::None => return Ok(Self { tx: None, counters }),
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
        let (tx, rx) = mpsc::channel(BUFFER);
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_records(rx, writer, thread_counters))?;
        Ok(Self {
            tx: Some(tx),
            counters,
        })
    }

    /// Queues a record, waiting for room when the writer is behind.
    pub async fn record(&self, record: AuditRecord) {
        if let Some(tx) = &self.tx {
            if tx.send(record).await.is_err() {
                self.counters.failed.inc();
                tracing::error!("audit writer has stopped; record lost");
            }
        }
    }

    /// Whether records go anywhere; when not, callers skip building them.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }
}

fn write_records(
    mut rx: mpsc::Receiver<AuditRecord>,
    writer: Box<dyn Write + Send>,
    counters: AuditCounters,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, writer);
    let mut line = Vec::with_capacity(1024);
    loop {
        // Drain in batches on a timer: waking this thread for every record would cost
        // a context switch per request on a busy core.
        let mut next = match rx.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(DRAIN_INTERVAL);
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let mut batch = 0u64;
        // Write everything queued, then flush once.
        while let Some(r) = next {
            line.clear();
            if serde_json::to_writer(&mut line, &r).is_ok() {
                line.push(b'\n');
                match out.write_all(&line) {
                    Ok(()) => batch += 1,
                    Err(e) => {
                        counters.failed.inc();
                        tracing::error!(error = %e, request_id = %r.request_id, "audit write failed");
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            counters.failed.inc_by(batch);
            tracing::error!(error = %e, "audit flush failed");
        } else {
            counters.written.inc_by(batch);
        }
    }
    let _ = out.flush();
}

pub fn rfc3339_now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
