//! Counters in this replica's memory: exact for one replica. Each subject's counters
//! sit behind their own shard lock, so callers of different subjects never contend.

use super::ModelUsage;
use super::{
    refusal_for, tightest_quota, Admission, Check, Counters, Demand, Reservation, Windows,
};
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

#[derive(Default)]
pub struct MemoryStore {
    slots: DashMap<String, Slot>,
    /// (day, user) → usage per model.
    ledger: DashMap<(u64, String), BTreeMap<String, ModelUsage>>,
}

impl MemoryStore {
    pub(super) fn admit(&self, checks: &[Check], demand: Demand, windows: Windows) -> Admission {
        let mut taken: Vec<&Check> = Vec::with_capacity(checks.len());
        let mut after: Vec<Counters> = Vec::with_capacity(checks.len());
        for check in checks {
            let mut slot = self.slots.entry(check.key.clone()).or_default();
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

    pub(super) fn record_usage(&self, user: &str, day: u64, model: &str, usage: ModelUsage) {
        // Yesterday stays readable; older days are dropped as the ledger rolls over.
        if !self.ledger.contains_key(&(day, user.to_string())) {
            self.ledger.retain(|(d, _), _| *d + 1 >= day);
        }
        self.ledger
            .entry((day, user.to_string()))
            .or_default()
            .entry(model.to_string())
            .or_default()
            .add(&usage);
    }

    pub(super) fn usage_day(&self, user: &str, day: u64) -> BTreeMap<String, ModelUsage> {
        self.ledger
            .get(&(day, user.to_string()))
            .map(|m| m.clone())
            .unwrap_or_default()
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
