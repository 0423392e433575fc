//! Counters in Redis, shared by every replica: one Lua script checks and reserves all
//! of a request's counters atomically in one round trip; another settles them.

use super::{
    Admission, Check, Counters, Demand, LimitKind, Quota, Refusal, Reservation, StoreError, Windows,
};
use super::{Ledger, LedgerEntry, ModelUsage};
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::OnceCell;

/// Counter hashes keep two days of history at most.
const KEY_TTL_SECS: u64 = 2 * 86_400;

/// KEYS: one counter hash per check. ARGV: minute, day, demand tokens, demand cost
/// (micro-USD), ttl, then per key: rpm, tpm, tpd, concurrency, budget (micro-USD),
/// each -1 when unlimited. Returns {0, counters…} when admitted (the counters after
/// the reservation, 5 per key), or {index, kind} of the first refusing key (1-based).
/// A hash's expiry is renewed when it starts a day, not on every call: each command a
/// script runs is CPU on the store every replica shares.
const ADMIT: &str = r#"
local m, d, dt, dc, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local state = {}
for i, key in ipairs(KEYS) do
  local h = redis.call('HMGET', key, 'm', 'rm', 'tm', 'd', 'td', 'cd', 'cc')
  local rm, tm, td, cd = 0, 0, 0, 0
  if tonumber(h[1]) == m then rm = tonumber(h[2]) or 0; tm = tonumber(h[3]) or 0 end
  if tonumber(h[4]) == d then td = tonumber(h[5]) or 0; cd = tonumber(h[6]) or 0 end
  local cc = tonumber(h[7]) or 0
  local new_day = tonumber(h[4]) ~= d
  local b = 5 + (i - 1) * 5
  local rpm, tpm, tpd, conc, budget = tonumber(ARGV[b+1]), tonumber(ARGV[b+2]), tonumber(ARGV[b+3]), tonumber(ARGV[b+4]), tonumber(ARGV[b+5])
  if rpm >= 0 and rm + 1 > rpm then return {i, 1, rm, tm, td, cd, cc} end
  if conc >= 0 and cc + 1 > conc then return {i, 4, rm, tm, td, cd, cc} end
  if tpm >= 0 and tm >= tpm then return {i, 2, rm, tm, td, cd, cc} end
  if tpd >= 0 and td >= tpd then return {i, 3, rm, tm, td, cd, cc} end
  if budget >= 0 and cd >= budget then return {i, 5, rm, tm, td, cd, cc} end
  state[i] = {rm, tm, td, cd, cc, new_day}
end
local out = {0}
for i, key in ipairs(KEYS) do
  local s = state[i]
  redis.call('HSET', key, 'm', m, 'rm', s[1] + 1, 'tm', s[2] + dt, 'd', d, 'td', s[3] + dt, 'cd', s[4] + dc, 'cc', s[5] + 1)
  if s[6] then redis.call('EXPIRE', key, ttl) end
  table.insert(out, s[1] + 1); table.insert(out, s[2] + dt); table.insert(out, s[3] + dt); table.insert(out, s[4] + dc); table.insert(out, s[5] + 1)
end
return out
"#;

/// The ledger's fields per model, in the order [`FINISH`] takes their values.
const LEDGER_FIELDS: [&str; 7] = [
    "requests",
    "in",
    "out",
    "cache_read",
    "cache_write",
    "cost",
    "saved",
];

/// A finished call in one round trip: its reservation settled and its usage ledger
/// lines added. KEYS: the reservation's counter hashes, then one ledger hash per line.
/// ARGV: the number of counter hashes, minute, day, token delta, cost delta,
/// concurrency release (1 or 0), ttl, then per ledger line: its name, most fields the
/// hash may hold, the name counted instead past that, and the seven values of
/// [`LEDGER_FIELDS`]. A counter window that has rolled over is left alone; a name new
/// to a full ledger is summed under the other name; a zero adds nothing and is skipped
/// (Redis runs every command a script calls, so each one is CPU on the shared store),
/// except `requests`, whose field marks the name as present. Returns each counter
/// hash's day tokens and day cost after the settlement ({td, cd} per hash; 0, 0 when
/// its day has rolled over), which budget alerts read instead of asking again.
const FINISH: &str = r#"
local n, m, d = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dt, dc, rel, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function add_floored(key, field, delta)
  local v = redis.call('HINCRBY', key, field, delta)
  if v < 0 then redis.call('HSET', key, field, 0); return 0 end
  return v
end
local days = {}
for i = 1, n do
  local key = KEYS[i]
  local h = redis.call('HMGET', key, 'm', 'd')
  if tonumber(h[1]) == m then add_floored(key, 'tm', dt) end
  local td, cd = 0, 0
  if tonumber(h[2]) == d then
    td = add_floored(key, 'td', dt)
    cd = add_floored(key, 'cd', dc)
  end
  if rel == 1 then add_floored(key, 'cc', -1) end
  table.insert(days, td); table.insert(days, cd)
end
local fields = {'requests', 'in', 'out', 'cache_read', 'cache_write', 'cost', 'saved'}
local a = 8
for i = n + 1, #KEYS do
  local key, name, most, other = KEYS[i], ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local known = redis.call('HEXISTS', key, name .. '|requests') == 1
  if not known and redis.call('HLEN', key) >= most then
    name = other
  end
  for f, field in ipairs(fields) do
    local v = ARGV[a + 2 + f]
    if f == 1 or v ~= '0' then redis.call('HINCRBY', key, name .. '|' .. field, v) end
  end
  if not known then redis.call('EXPIRE', key, ttl) end
  a = a + 3 + #fields
end
return days
"#;

pub struct RedisStore {
    client: redis::Client,
    /// Connected on first use; the manager reconnects by itself after a failure.
    conn: OnceCell<ConnectionManager>,
    admit: Script,
    finish: Script,
    prefix: String,
}

impl RedisStore {
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: OnceCell::new(),
            admit: Script::new(ADMIT),
            finish: Script::new(FINISH),
            prefix: "aigw:limit:".into(),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let manager = self
            .conn
            .get_or_try_init(|| async {
                // Fail fast: a limit check must not hold a request for long.
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
                    .set_response_timeout(Some(std::time::Duration::from_secs(1)));
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(manager.clone())
    }

    fn key(&self, check_key: &str) -> String {
        format!("{}{check_key}", self.prefix)
    }

    pub(super) async fn admit(
        &self,
        checks: &[Check],
        demand: Demand,
        w: Windows,
    ) -> Result<Admission, StoreError> {
        let mut invocation = self.admit.prepare_invoke();
        for check in checks {
            invocation.key(self.key(&check.key));
        }
        invocation
            .arg(w.minute)
            .arg(w.day)
            .arg(demand.tokens)
            .arg(demand.cost_micros)
            .arg(KEY_TTL_SECS);
        for check in checks {
            let l = &check.limits;
            let unlimited = -1i64;
            let as_arg = |v: Option<u64>| v.map(|v| v as i64).unwrap_or(unlimited);
            invocation
                .arg(as_arg(l.requests_per_minute))
                .arg(as_arg(l.tokens_per_minute))
                .arg(as_arg(l.tokens_per_day))
                .arg(as_arg(l.concurrent_requests))
                .arg(
                    l.budget_usd_per_day
                        .map(|b| (b * 1_000_000.0) as i64)
                        .unwrap_or(unlimited),
                );
        }
        let mut conn = self.conn().await?;
        let reply: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        let status = *reply
            .first()
            .ok_or_else(|| StoreError::Protocol("empty reply".into()))?;
        let counters = |values: &[i64]| Counters {
            requests_minute: values.first().copied().unwrap_or(0).max(0) as u64,
            tokens_minute: values.get(1).copied().unwrap_or(0).max(0) as u64,
            tokens_day: values.get(2).copied().unwrap_or(0).max(0) as u64,
            cost_micros_day: values.get(3).copied().unwrap_or(0).max(0) as u64,
            concurrent: values.get(4).copied().unwrap_or(0).max(0) as u64,
        };
        if status == 0 {
            let after: Vec<Counters> = reply[1..].chunks(5).map(counters).collect();
            return Ok(Admission::Admitted(Reservation {
                keys: checks.iter().map(|c| c.key.clone()).collect(),
                windows: w,
                demand,
                holds_concurrency: true,
                quota: super::tightest_quota(checks, &after, &w),
            }));
        }
        let index = usize::try_from(status - 1)
            .map_err(|_| StoreError::Protocol(format!("bad index {status}")))?;
        let check = checks
            .get(index)
            .ok_or_else(|| StoreError::Protocol(format!("index {status} out of range")))?;
        let before = counters(reply.get(2..).unwrap_or_default());
        Ok(Admission::Refused(
            super::refusal_for(check, &before, &w).unwrap_or_else(|| {
                // The script and the local rule disagree only if limits changed in between.
                Refusal {
                    key: check.key.clone(),
                    scope: check.scope,
                    kind: LimitKind::RequestsPerMinute,
                    limit: 0.0,
                    retry_after_secs: 1,
                    quota: Quota::default(),
                }
            }),
        ))
    }

    /// Settles `reservation` against what the call used and adds its ledger lines,
    /// in one script call: one round trip a finished call. Returns the day tokens and
    /// cost of each of the reservation's counters after it (in its order), as
    /// [`Counters`] with only those two filled.
    pub(super) async fn finish(
        &self,
        reservation: Option<&Reservation>,
        actual: Demand,
        ledger: &[LedgerEntry<'_>],
    ) -> Result<Vec<Counters>, StoreError> {
        let counter_keys = reservation.map_or(&[][..], |r| &r.keys[..]);
        if counter_keys.is_empty() && ledger.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.finish.prepare_invoke();
        for key in counter_keys {
            invocation.key(self.key(key));
        }
        for entry in ledger {
            invocation.key(self.ledger_key(entry.ledger, entry.user, entry.day));
        }
        let (minute, day, delta_tokens, delta_cost, release) = match reservation {
            Some(r) => (
                r.windows.minute,
                r.windows.day,
                actual.tokens as i64 - r.demand.tokens as i64,
                actual.cost_micros as i64 - r.demand.cost_micros as i64,
                i64::from(r.holds_concurrency),
            ),
            None => (0, 0, 0, 0, 0),
        };
        invocation
            .arg(counter_keys.len())
            .arg(minute)
            .arg(day)
            .arg(delta_tokens)
            .arg(delta_cost)
            .arg(release)
            .arg(KEY_TTL_SECS);
        for entry in ledger {
            let u = entry.usage;
            invocation
                .arg(entry.name)
                .arg(entry.ledger.most() * LEDGER_FIELDS.len())
                .arg(super::OTHER_MODELS)
                .arg(&[
                    u.requests,
                    u.tokens_in,
                    u.tokens_out,
                    u.cache_read_tokens,
                    u.cache_write_tokens,
                    u.cost_micros,
                    u.tokens_saved,
                ]);
        }
        let mut conn = self.conn().await?;
        let days: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(days
            .chunks_exact(2)
            .map(|day| Counters {
                tokens_day: day[0].max(0) as u64,
                cost_micros_day: day[1].max(0) as u64,
                ..Counters::default()
            })
            .collect())
    }

    fn ledger_key(&self, ledger: Ledger, user: &str, day: u64) -> String {
        match ledger {
            Ledger::Models => format!("aigw:usage:{day}:{user}"),
            Ledger::Sessions => format!("aigw:sessions:{day}:{user}"),
            Ledger::Calls => format!("aigw:calls:{day}"),
        }
    }

    pub(super) async fn usage_day(
        &self,
        ledger: Ledger,
        user: &str,
        day: u64,
    ) -> Result<BTreeMap<String, ModelUsage>, StoreError> {
        let mut conn = self.conn().await?;
        let fields: HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(self.ledger_key(ledger, user, day))
            .query_async(&mut conn)
            .await?;
        let mut out: BTreeMap<String, ModelUsage> = BTreeMap::new();
        for (field, value) in fields {
            let Some((model, name)) = field.rsplit_once('|') else {
                continue;
            };
            let entry = out.entry(model.to_string()).or_default();
            match name {
                "requests" => entry.requests = value,
                "in" => entry.tokens_in = value,
                "out" => entry.tokens_out = value,
                "cache_read" => entry.cache_read_tokens = value,
                "cache_write" => entry.cache_write_tokens = value,
                "cost" => entry.cost_micros = value,
                "saved" => entry.tokens_saved = value,
                _ => {}
            }
        }
        Ok(out)
    }

    pub(super) async fn counters(
        &self,
        checks: &[Check],
        w: Windows,
    ) -> Result<Vec<Counters>, StoreError> {
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for check in checks {
            pipe.cmd("HMGET")
                .arg(self.key(&check.key))
                .arg(&["m", "rm", "tm", "d", "td", "cd", "cc"]);
        }
        let rows: Vec<Vec<Option<i64>>> = pipe.query_async(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|h| {
                let get = |i: usize| h.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
                let this_minute = h.first().copied().flatten() == Some(w.minute as i64);
                let this_day = h.get(3).copied().flatten() == Some(w.day as i64);
                Counters {
                    requests_minute: if this_minute { get(1) } else { 0 },
                    tokens_minute: if this_minute { get(2) } else { 0 },
                    tokens_day: if this_day { get(4) } else { 0 },
                    cost_micros_day: if this_day { get(5) } else { 0 },
                    concurrent: get(6),
                }
            })
            .collect())
    }
}
