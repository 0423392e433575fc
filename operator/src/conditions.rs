//! Verdicts from `compile()` turned into status conditions, one per type, keeping each
//! condition's transition time while its status holds.

use crate::compile::Verdict;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Folds verdicts into one condition per type: false when any verdict of that type
/// fails (reason of the first failure, every failure's message), true otherwise.
pub fn fold(
    verdicts: &[Verdict],
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut types: Vec<&'static str> = Vec::new();
    for v in verdicts {
        if !types.contains(&v.r#type) {
            types.push(v.r#type);
        }
    }
    types
        .into_iter()
        .map(|t| {
            let of_type: Vec<&Verdict> = verdicts.iter().filter(|v| v.r#type == t).collect();
            let failures: Vec<&&Verdict> = of_type.iter().filter(|v| !v.status).collect();
            let (status, reason, message) = match failures.first() {
                Some(first) => (
                    false,
                    first.reason,
                    failures
                        .iter()
                        .map(|v| v.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                None => (true, of_type[0].reason, String::new()),
            };
            condition(t, status, reason, message, previous, generation, now)
        })
        .collect()
}

pub fn condition(
    r#type: &str,
    status: bool,
    reason: &str,
    message: String,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == r#type && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: r#type.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether writing `new` would change what `kubectl get` shows; keeps reconciles from
/// rewriting identical statuses.
pub fn differ(old: &[Condition], new: &[Condition]) -> bool {
    old.len() != new.len()
        || new.iter().any(|n| {
            !old.iter().any(|o| {
                o.type_ == n.type_
                    && o.status == n.status
                    && o.reason == n.reason
                    && o.message == n.message
                    && o.observed_generation == n.observed_generation
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(t: &'static str, ok: bool, reason: &'static str, msg: &str) -> Verdict {
        Verdict {
            r#type: t,
            status: ok,
            reason,
            message: msg.into(),
        }
    }

    #[test]
    fn failures_of_one_type_fold_into_one_false_condition() {
        let now = Timestamp::UNIX_EPOCH;
        let conds = fold(
            &[
                verdict("ResolvedRefs", false, "SecretNotFound", "a missing"),
                verdict("Accepted", true, "Accepted", ""),
                verdict("ResolvedRefs", false, "DuplicateKey", "b duplicated"),
            ],
            &[],
            Some(3),
            now,
        );
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0].type_, "ResolvedRefs");
        assert_eq!(conds[0].status, "False");
        assert_eq!(conds[0].reason, "SecretNotFound");
        assert_eq!(conds[0].message, "a missing; b duplicated");
        assert_eq!(conds[1].status, "True");
        assert_eq!(conds[1].observed_generation, Some(3));
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let then = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let later = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let first = condition("Ready", true, "Ready", String::new(), &[], None, then);
        let same = condition(
            "Ready",
            true,
            "Ready",
            String::new(),
            std::slice::from_ref(&first),
            None,
            later,
        );
        assert_eq!(same.last_transition_time, Time(then));
        let flipped = condition("Ready", false, "Down", "x".into(), &[same], None, later);
        assert_eq!(flipped.last_transition_time, Time(later));
        assert!(differ(&[first], &[flipped]));
    }
}
