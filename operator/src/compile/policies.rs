//! RateLimitPolicies → the snapshot's rate-limit rules, with a verdict per policy.

use super::{members_of, Verdict};
use ai_gateway_crds::RateLimitPolicy;
use ai_gateway_snapshot::{RateLimits, UnpricedModels};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// The rules of every valid policy of the gateway; the limit store is resolved apart.
pub(super) fn compile_policies(
    policies: &[RateLimitPolicy],
    gateway_name: &str,
) -> (RateLimits, BTreeMap<String, Vec<Verdict>>) {
    let mut rate_limits = RateLimits::default();
    let mut verdicts = BTreeMap::new();
    let mut unpriced: Vec<UnpricedModels> = Vec::new();
    for policy in members_of(policies, gateway_name, |p| &p.spec.gateway_ref) {
        let name = policy.name_any();
        let problems = rule_problems(policy);
        if !problems.is_empty() {
            let verdict = Verdict::fail("Accepted", "InvalidRule", problems.join("; "));
            verdicts.insert(name, vec![verdict]);
            continue;
        }
        rate_limits.rules.extend(policy.spec.rules.iter().cloned());
        if let Some(t) = policy.spec.default_output_tokens {
            rate_limits.default_output_tokens = t;
        }
        unpriced.extend(policy.spec.unpriced_models);
        verdicts.insert(name, vec![Verdict::ok("Accepted", "Accepted")]);
    }
    // Refusing is the safe reading when policies disagree.
    rate_limits.unpriced_models = if unpriced.contains(&UnpricedModels::Refuse) {
        UnpricedModels::Refuse
    } else {
        unpriced.first().copied().unwrap_or_default()
    };
    (rate_limits, verdicts)
}

fn rule_problems(policy: &RateLimitPolicy) -> Vec<String> {
    policy
        .spec
        .rules
        .iter()
        .enumerate()
        .flat_map(|(i, rule)| {
            rule.problems()
                .into_iter()
                .map(move |p| format!("rules[{i}].{}: {}", p.path, p.message))
        })
        .collect()
}
