//! The embedded store's journal: this replica's daily counters and usage ledger kept in
//! SQLite (`usage.sqlite` in the data directory), so a restart forgets neither today's
//! usage nor anyone's daily budget.
//!
//! The request path never waits on it: counters are served from memory, and a thread
//! writes what changed once a second, as absolute values in one transaction. A crash
//! loses at most the last second; a batch written twice counts nothing twice. One
//! process owns a data directory at a time (an exclusive lock on `gateway.lock`).

use super::memory::{Changes, DayCounter, LedgerLine, MemoryStore};
use super::{Ledger, ModelUsage, StoreError};
use rusqlite::{params, Connection};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often changes are written: the most a crash can lose.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS counters (
  key TEXT NOT NULL, day INTEGER NOT NULL, tokens INTEGER NOT NULL, cost_micros INTEGER NOT NULL,
  PRIMARY KEY (key, day));
CREATE TABLE IF NOT EXISTS ledger (
  ledger INTEGER NOT NULL, user TEXT NOT NULL, day INTEGER NOT NULL, name TEXT NOT NULL,
  requests INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,
  cache_read INTEGER NOT NULL, cache_write INTEGER NOT NULL, cost_micros INTEGER NOT NULL,
  tokens_saved INTEGER NOT NULL,
  PRIMARY KEY (ledger, user, day, name));
CREATE TABLE IF NOT EXISTS routing_outcomes (at INTEGER NOT NULL, outcome TEXT NOT NULL);
";

/// Routing outcomes waiting for the next write; past this many, new ones are dropped
/// (and logged) rather than held without bound.
const MAX_PENDING_OUTCOMES: usize = 100_000;

pub struct Journal {
    conn: Mutex<Connection>,
    /// Held for the process's life: a second gateway on the same directory is refused.
    _lock: File,
    closed: AtomicBool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Cascade outcomes (JSON lines) to write with the next batch.
    outcomes: Mutex<Vec<String>>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |what: &str, e: std::io::Error| {
            StoreError::Journal(format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", e))?;
        let lock = File::create(dir.join("gateway.lock")).map_err(|e| io("cannot open", e))?;
        lock.try_lock().map_err(|_| {
            StoreError::Journal(format!(
                "{} is in use by another gateway process",
                dir.display()
            ))
        })?;
        let conn = Connection::open(path_of(dir)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Self {
            conn: Mutex::new(conn),
            _lock: lock,
            closed: AtomicBool::new(false),
            writer: Mutex::new(None),
            outcomes: Mutex::default(),
        })
    }

    /// What was kept for `since_day` and after: the counters and ledgers still in force.
    pub fn load(&self, since_day: u64) -> Result<Changes, StoreError> {
        let conn = self.lock();
        let mut kept = Changes::default();
        let mut counters = conn
            .prepare("SELECT key, day, tokens, cost_micros FROM counters WHERE day >= ?1")
            .map_err(sql)?;
        let rows = counters
            .query_map(params![since_day as i64], |r| {
                Ok(DayCounter {
                    key: r.get(0)?,
                    day: r.get::<_, i64>(1)? as u64,
                    tokens: r.get::<_, i64>(2)? as u64,
                    cost_micros: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(sql)?;
        for row in rows {
            kept.counters.push(row.map_err(sql)?);
        }
        let mut ledger = conn
            .prepare(&format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger WHERE day >= ?1"
            ))
            .map_err(sql)?;
        let rows = ledger
            .query_map(params![since_day as i64], ledger_line)
            .map_err(sql)?;
        for row in rows {
            kept.ledger.push(row.map_err(sql)?);
        }
        Ok(kept)
    }

    /// One day's lines of one ledger, for days no longer held in memory.
    pub fn usage_day(
        &self,
        ledger: Ledger,
        user: &str,
        day: u64,
    ) -> Result<std::collections::BTreeMap<String, ModelUsage>, StoreError> {
        let conn = self.lock();
        let mut query = conn
            .prepare_cached(&format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger WHERE ledger = ?1 AND user = ?2 AND day = ?3"
            ))
            .map_err(sql)?;
        let rows = query
            .query_map(params![ledger.index(), user, day as i64], ledger_line)
            .map_err(sql)?;
        rows.map(|row| row.map(|l| (l.name, l.usage)).map_err(sql))
            .collect()
    }

    /// Writes `changes` in one transaction.
    pub fn write(&self, changes: &Changes) -> Result<(), StoreError> {
        if changes.counters.is_empty() && changes.ledger.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(sql)?;
        {
            let mut counter = tx
                .prepare_cached(
                    "INSERT INTO counters (key, day, tokens, cost_micros) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key, day) DO UPDATE SET tokens = excluded.tokens,
                     cost_micros = excluded.cost_micros",
                )
                .map_err(sql)?;
            for c in &changes.counters {
                counter
                    .execute(params![
                        c.key,
                        c.day as i64,
                        c.tokens as i64,
                        c.cost_micros as i64
                    ])
                    .map_err(sql)?;
            }
            let mut line = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO ledger (ledger, user, day, name, requests, tokens_in,
                     tokens_out, cache_read, cache_write, cost_micros, tokens_saved)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(sql)?;
            for l in &changes.ledger {
                let u = &l.usage;
                line.execute(params![
                    l.ledger.index(),
                    l.user,
                    l.day as i64,
                    l.name,
                    u.requests as i64,
                    u.tokens_in as i64,
                    u.tokens_out as i64,
                    u.cache_read_tokens as i64,
                    u.cache_write_tokens as i64,
                    u.cost_micros as i64,
                    u.tokens_saved as i64
                ])
                .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Starts the thread that writes `memory`'s changes every [`FLUSH_INTERVAL`].
    pub fn start_writer(self: &Arc<Self>, memory: Arc<MemoryStore>) {
        let journal = self.clone();
        let spawned = std::thread::Builder::new()
            .name("store-journal".into())
            .spawn(move || {
                while !journal.closed.load(Ordering::Acquire) {
                    std::thread::park_timeout(FLUSH_INTERVAL);
                    journal.flush(&memory);
                }
                journal.flush(&memory);
            });
        match spawned {
            Ok(handle) => *self.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle),
            Err(e) => tracing::error!(error = %e, "cannot start the store journal"),
        }
    }

    /// Queues a routing outcome for the next write.
    pub fn keep_outcome(&self, line: &[u8]) {
        let mut pending = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING_OUTCOMES {
            tracing::warn!("routing outcomes are not being written; dropping one");
            return;
        }
        pending.push(String::from_utf8_lossy(line).trim_end().to_string());
    }

    /// The routing outcomes kept so far, oldest first.
    pub fn outcomes(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut query = conn
            .prepare("SELECT outcome FROM routing_outcomes ORDER BY rowid")
            .map_err(sql)?;
        let rows = query.query_map([], |r| r.get(0)).map_err(sql)?;
        rows.map(|r| r.map_err(sql)).collect()
    }

    fn flush(&self, memory: &MemoryStore) {
        let changes = memory.take_changes();
        if let Err(e) = self.write(&changes) {
            tracing::error!(error = %e, "could not write the store journal");
        }
        let outcomes =
            std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(e) = self.write_outcomes(&outcomes) {
            tracing::error!(error = %e, "could not write routing outcomes");
        }
    }

    fn write_outcomes(&self, outcomes: &[String]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(sql)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO routing_outcomes (at, outcome) VALUES (?1, ?2)")
                .map_err(sql)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            for line in outcomes {
                insert.execute(params![now, line]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Writes what is left and stops the writer: a clean shutdown loses nothing.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const LEDGER_COLUMNS: &str = "ledger, user, day, name, requests, tokens_in, tokens_out, \
    cache_read, cache_write, cost_micros, tokens_saved";

/// A row of [`LEDGER_COLUMNS`].
fn ledger_line(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerLine> {
    let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
    Ok(LedgerLine {
        ledger: Ledger::from_index(r.get(0)?),
        user: r.get(1)?,
        day: n(2)?,
        name: r.get(3)?,
        usage: ModelUsage {
            requests: n(4)?,
            tokens_in: n(5)?,
            tokens_out: n(6)?,
            cache_read_tokens: n(7)?,
            cache_write_tokens: n(8)?,
            cost_micros: n(9)?,
            tokens_saved: n(10)?,
        },
    })
}

/// The journal's database file in a data directory.
pub fn path_of(dir: &Path) -> PathBuf {
    dir.join("usage.sqlite")
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Journal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Check, Demand, LedgerEntry, Windows};
    use ai_gateway_snapshot::{Limits, Subject};

    fn windows() -> Windows {
        Windows::at(std::time::SystemTime::now())
    }

    #[test]
    fn what_was_written_comes_back_and_writing_twice_counts_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = MemoryStore::default();
        let check = Check {
            key: "user:ana".into(),
            scope: Subject::User,
            limits: Limits::default(),
        };
        let w = windows();
        let demand = Demand {
            tokens: 100,
            cost_micros: 7,
        };
        let crate::limits::Admission::Admitted(r) =
            memory.admit(std::slice::from_ref(&check), demand, w)
        else {
            panic!("admitted")
        };
        memory.settle(&r, demand);
        memory.record_usage(&LedgerEntry {
            ledger: Ledger::Models,
            user: "ana",
            day: w.day,
            name: "claude-sonnet-4-5",
            usage: ModelUsage {
                requests: 1,
                tokens_in: 60,
                tokens_out: 40,
                ..ModelUsage::default()
            },
        });
        let changes = memory.take_changes();
        assert_eq!(changes.counters.len(), 1);
        assert_eq!(changes.ledger.len(), 1);
        assert_eq!(memory.take_changes(), Changes::default(), "taken once");
        {
            let journal = Journal::open(dir.path()).expect("opens");
            journal.write(&changes).expect("writes");
            journal.write(&changes).expect("writes again");
            assert!(
                Journal::open(dir.path()).is_err(),
                "a second process is refused"
            );
        }
        let journal = Journal::open(dir.path()).expect("reopens");
        let restored = MemoryStore::default();
        restored.restore(journal.load(w.day - 1).expect("loads"));
        assert_eq!(restored.counters(&check.key, w).tokens_day, 100);
        assert_eq!(
            restored.usage_day(Ledger::Models, "ana", w.day)["claude-sonnet-4-5"].tokens_in,
            60
        );
        journal.keep_outcome(b"{\"escalated\":true}\n");
        journal.flush(&restored);
        assert_eq!(
            journal.outcomes().expect("outcomes"),
            ["{\"escalated\":true}"]
        );
    }
}
