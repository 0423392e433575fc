//! Counters in this replica's memory: exact for one replica. Each subject's counters
//! sit behind their own shard lock, so callers of different subjects never contend.

use super::{
    refusal_for, tightest_quota, Admission, Check, Counters, Demand, Reservation, Windows,
};
use super::{Ledger, LedgerEntry, ModelUsage};
use dashmap::DashMap;
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    minute: u64,
    requests_minute: u64,
    tokens_minute: u64,
    day: u64,
    tokens_day: u64,
    cost_micros_day: u64,
    concurrent: u64,
    /// The day's counters changed since the journal last took them.
    changed: bool,
}

impl Slot {
    fn roll(&mut self, w: &Windows) {
        if self.minute != w.minute {
            self.minute = w.minute;
            self.requests_minute = 0;
            self.tokens_minute = 0;
        }
        if self.day != w.day {
            self.day = w.day;
            self.tokens_day = 0;
            self.cost_micros_day = 0;
        }
    }

    fn counters(&self) -> Counters {
        Counters {
            requests_minute: self.requests_minute,
            tokens_minute: self.tokens_minute,
            tokens_day: self.tokens_day,
            cost_micros_day: self.cost_micros_day,
            concurrent: self.concurrent,
        }
    }
}

/// One ledger: user → day → name → usage.
type Book = DashMap<String, Days, crate::FastHasher>;

/// One user's ledger lines by day, and whether they changed since the journal last
/// took them.
#[derive(Debug, Default)]
struct Days {
    by_day: BTreeMap<u64, BTreeMap<String, ModelUsage>>,
    changed: bool,
}

/// A day's counter of one subject, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCounter {
    pub key: String,
    pub day: u64,
    pub tokens: u64,
    pub cost_micros: u64,
}

/// One line of a ledger, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLine {
    pub ledger: Ledger,
    pub user: String,
    pub day: u64,
    pub name: String,
    pub usage: ModelUsage,
}

/// What changed since the journal last looked, as absolute values: writing it twice
/// counts nothing twice.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub counters: Vec<DayCounter>,
    pub ledger: Vec<LedgerLine>,
}

#[derive(Default)]
pub struct MemoryStore {
    slots: DashMap<String, Slot, crate::FastHasher>,
    /// The UTC day of the last sweep of idle subjects.
    swept_day: std::sync::atomic::AtomicU64,
    /// user → day → usage per model, and per session ([`Ledger`] is the index).
    ledgers: [Book; Ledger::ALL.len()],
    /// The UTC day of the last usage recorded.
    ledger_day: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    /// Once a day, forget subjects with nothing in flight and no use since yesterday:
    /// subject keys carry caller-chosen names, so the map must not grow forever.
    fn sweep(&self, windows: &Windows) {
        use std::sync::atomic::Ordering;
        let last = self.swept_day.load(Ordering::Relaxed);
        if last == windows.day
            || self
                .swept_day
                .compare_exchange(last, windows.day, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.slots
            .retain(|_, slot| slot.concurrent > 0 || slot.day + 1 >= windows.day);
    }

    pub(super) fn admit(&self, checks: &[Check], demand: Demand, windows: Windows) -> Admission {
        self.sweep(&windows);
        let mut taken: Vec<&Check> = Vec::with_capacity(checks.len());
        let mut after: Vec<Counters> = Vec::with_capacity(checks.len());
        for check in checks {
            let mut slot = match self.slots.get_mut(&check.key) {
                Some(slot) => slot,
                None => self.slots.entry(check.key.clone()).or_default(),
            };
            slot.roll(&windows);
            let before = slot.counters();
            if let Some(refusal) = refusal_for(check, &before, &windows) {
                drop(slot);
                // Give back what this request took from the counters checked before.
                for done in taken {
                    self.release(&done.key, &windows, demand, Demand::default(), true, true);
                }
                return Admission::Refused(refusal);
            }
            slot.requests_minute += 1;
            slot.tokens_minute = slot.tokens_minute.saturating_add(demand.tokens);
            slot.tokens_day = slot.tokens_day.saturating_add(demand.tokens);
            slot.cost_micros_day = slot.cost_micros_day.saturating_add(demand.cost_micros);
            slot.concurrent += 1;
            slot.changed = true;
            after.push(slot.counters());
            taken.push(check);
        }
        Admission::Admitted(Reservation {
            keys: checks.iter().map(|c| c.key.clone()).collect(),
            windows,
            demand,
            holds_concurrency: true,
            quota: tightest_quota(checks, &after, &windows),
        })
    }

    pub(super) fn settle(&self, r: &Reservation, actual: Demand) {
        for key in &r.keys {
            self.release(
                key,
                &r.windows,
                r.demand,
                actual,
                r.holds_concurrency,
                false,
            );
        }
    }

    /// Swaps a reservation for the actual amounts in the windows it was made in (a
    /// window that has since rolled over is left alone); `undo_request` also takes
    /// back the request itself, for a refusal that rolls back its earlier checks.
    fn release(
        &self,
        key: &str,
        w: &Windows,
        reserved: Demand,
        actual: Demand,
        concurrency: bool,
        undo_request: bool,
    ) {
        if let Some(mut slot) = self.slots.get_mut(key) {
            let adjust = |v: u64| {
                v.saturating_sub(reserved.tokens)
                    .saturating_add(actual.tokens)
            };
            if slot.minute == w.minute {
                slot.tokens_minute = adjust(slot.tokens_minute);
                if undo_request {
                    slot.requests_minute = slot.requests_minute.saturating_sub(1);
                }
            }
            if slot.day == w.day {
                slot.changed = true;
                slot.tokens_day = adjust(slot.tokens_day);
                slot.cost_micros_day = slot
                    .cost_micros_day
                    .saturating_sub(reserved.cost_micros)
                    .saturating_add(actual.cost_micros);
            }
            if concurrency {
                slot.concurrent = slot.concurrent.saturating_sub(1);
            }
        }
    }

    pub(super) fn record_usage(&self, entry: &LedgerEntry<'_>) {
        let LedgerEntry {
            ledger,
            user,
            day,
            name,
            usage,
        } = *entry;
        // Yesterday stays readable; older days are dropped as the ledger rolls over.
        let previous = self
            .ledger_day
            .swap(day, std::sync::atomic::Ordering::Relaxed);
        if previous != day {
            for book in &self.ledgers {
                book.retain(|_, days| {
                    days.by_day.retain(|d, _| *d + 1 >= day);
                    !days.by_day.is_empty()
                });
            }
        }
        let book = &self.ledgers[ledger as usize];
        let mut days = match book.get_mut(user) {
            Some(days) => days,
            None => book.entry(user.to_string()).or_default(),
        };
        days.changed = true;
        let names = days.by_day.entry(day).or_default();
        let full = names.len() >= ledger.most();
        match names.get_mut(name) {
            Some(line) => line.add(&usage),
            None if full => names
                .entry(super::OTHER_MODELS.to_string())
                .or_default()
                .add(&usage),
            None => names.entry(name.to_string()).or_default().add(&usage),
        }
    }

    pub(super) fn usage_day(
        &self,
        ledger: Ledger,
        user: &str,
        day: u64,
    ) -> BTreeMap<String, ModelUsage> {
        self.ledgers[ledger as usize]
            .get(user)
            .and_then(|days| days.by_day.get(&day).cloned())
            .unwrap_or_default()
    }

    /// Every day counter and ledger line changed since the last call, marked as taken.
    pub fn take_changes(&self) -> Changes {
        let mut changes = Changes::default();
        for mut slot in self.slots.iter_mut() {
            if !std::mem::take(&mut slot.changed) {
                continue;
            }
            changes.counters.push(DayCounter {
                key: slot.key().clone(),
                day: slot.day,
                tokens: slot.tokens_day,
                cost_micros: slot.cost_micros_day,
            });
        }
        for (book, ledger) in self.ledgers.iter().zip(Ledger::ALL) {
            for mut days in book.iter_mut() {
                if !std::mem::take(&mut days.changed) {
                    continue;
                }
                let user = days.key().clone();
                for (day, names) in &days.by_day {
                    changes
                        .ledger
                        .extend(names.iter().map(|(name, usage)| LedgerLine {
                            ledger,
                            user: user.clone(),
                            day: *day,
                            name: name.clone(),
                            usage: *usage,
                        }));
                }
            }
        }
        changes
    }

    /// Counters and ledger lines as a journal kept them, read back at start.
    pub fn restore(&self, kept: Changes) {
        for c in kept.counters {
            let mut slot = self.slots.entry(c.key).or_default();
            if c.day >= slot.day {
                slot.day = c.day;
                slot.tokens_day = c.tokens;
                slot.cost_micros_day = c.cost_micros;
            }
        }
        for line in kept.ledger {
            self.ledgers[line.ledger as usize]
                .entry(line.user)
                .or_default()
                .by_day
                .entry(line.day)
                .or_default()
                .insert(line.name, line.usage);
            self.ledger_day
                .fetch_max(line.day, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(super) fn counters(&self, key: &str, windows: Windows) -> Counters {
        match self.slots.get(key) {
            Some(slot) => {
                let mut s = *slot;
                s.roll(&windows);
                s.counters()
            }
            None => Counters::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_gateway_snapshot::{Limits, Subject};

    fn check(key: &str) -> Check {
        Check {
            key: key.into(),
            scope: Subject::User,
            limits: Limits {
                requests_per_minute: Some(10),
                ..Limits::default()
            },
        }
    }

    fn at_day(day: u64) -> Windows {
        let now = day * 86_400 + 30;
        Windows {
            minute: now / 60,
            day,
            now,
        }
    }

    #[test]
    fn idle_subjects_are_forgotten_a_day_later_and_busy_ones_kept() {
        let store = MemoryStore::default();
        let Admission::Admitted(done) =
            store.admit(&[check("user:gone")], Demand::default(), at_day(1))
        else {
            panic!("admitted")
        };
        store.settle(&done, Demand::default());
        let Admission::Admitted(_held) =
            store.admit(&[check("user:busy")], Demand::default(), at_day(1))
        else {
            panic!("admitted")
        };
        assert!(matches!(
            store.admit(&[check("user:new")], Demand::default(), at_day(3)),
            Admission::Admitted(_)
        ));
        assert!(!store.slots.contains_key("user:gone"), "idle since day 1");
        assert!(
            store.slots.contains_key("user:busy"),
            "still has a call in flight"
        );
    }

    #[test]
    fn the_usage_ledger_sums_per_model_and_keeps_only_today_and_yesterday() {
        let store = MemoryStore::default();
        let record = |ledger, user, day, name| {
            store.record_usage(&LedgerEntry {
                ledger,
                user,
                day,
                name,
                usage: ModelUsage {
                    requests: 1,
                    tokens_in: 10,
                    ..ModelUsage::default()
                },
            })
        };
        record(Ledger::Models, "ana", 1, "m");
        record(Ledger::Models, "bo", 1, "m");
        record(Ledger::Models, "ana", 2, "m");
        record(Ledger::Models, "ana", 2, "m");
        record(Ledger::Sessions, "ana", 2, "s-1");
        let models = |user, day| store.usage_day(Ledger::Models, user, day);
        assert_eq!(models("ana", 2)["m"].tokens_in, 20);
        assert_eq!(models("ana", 1)["m"].requests, 1, "yesterday is kept");
        assert_eq!(
            store.usage_day(Ledger::Sessions, "ana", 2)["s-1"].requests,
            1,
            "sessions have a ledger of their own"
        );
        record(Ledger::Models, "ana", 3, "m");
        assert!(models("ana", 1).is_empty());
        assert!(models("bo", 1).is_empty());
        assert!(
            !store.ledgers[Ledger::Models as usize].contains_key("bo"),
            "idle callers are forgotten"
        );
        assert_eq!(models("ana", 2)["m"].requests, 2);
    }
}
