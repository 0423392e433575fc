//! The gateway's rate-limit store, its URL resolved from the spec or a Secret.

use super::{secret_value, Verdict};
use ai_gateway_crds::RateLimitStoreSpec;
use ai_gateway_snapshot::{LimitStore, LimitStoreKind};
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;

/// The store the data plane counts in; in-memory when a Redis URL does not resolve.
pub(super) fn limit_store(
    store: &RateLimitStoreSpec,
    secrets: &BTreeMap<String, Secret>,
    gateway_verdicts: &mut Vec<Verdict>,
) -> LimitStore {
    let url = match (&store.url, &store.url_secret_ref) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(r)) => {
            let url = secrets.get(&r.name).and_then(|s| secret_value(s, &r.key));
            if url.is_none() {
                gateway_verdicts.push(Verdict::fail(
                    "ResolvedRefs",
                    "SecretKeyNotFound",
                    format!(
                        "rate-limit store URL: Secret `{}` key `{}` not found",
                        r.name, r.key
                    ),
                ));
            }
            url
        }
        (None, None) => None,
    };
    if store.kind == LimitStoreKind::Redis && url.is_none() {
        // Falling back to per-replica memory would multiply every limit by the replica count.
        gateway_verdicts.push(Verdict::fail(
            "Ready",
            "RateLimitStoreUnresolved",
            "rateLimitStore.kind is redis but no URL resolved; limits are per replica until it does",
        ));
    }
    LimitStore {
        kind: if url.is_some() {
            store.kind
        } else {
            LimitStoreKind::default()
        },
        url,
        fail_open: store.fail_open,
    }
}

/// `Degraded` (a condition that does not make the gateway un-Ready): more than one
/// replica counting in its own store gives every caller its limits once per replica.
pub(super) fn shared_or_degraded(replicas: i32, store: &LimitStore) -> Verdict {
    if replicas > 1 && store.kind != LimitStoreKind::Redis {
        return Verdict {
            r#type: "Degraded",
            status: true,
            reason: "PerReplicaLimits",
            message: format!(
                "{replicas} replicas each count limits in their own store: a caller gets up to \
                 {replicas}× their limits; set rateLimitStore.kind: redis (or the chart's \
                 redis.enabled) or one replica"
            ),
        };
    }
    Verdict {
        r#type: "Degraded",
        status: false,
        reason: "LimitsExact",
        message: String::new(),
    }
}
