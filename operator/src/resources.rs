//! The objects an AIGateway owns, built as server-side-apply documents. Pure, so tests
//! can read exactly what the operator will send.

use ai_gateway_crds::AIGateway;
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const MANAGER: &str = "ai-gateway-operator";
pub const OPERATOR_NAME_LABEL: &str = "app.kubernetes.io/name=ai-gateway-operator";
/// Pods with this label may scrape the data plane's admin port (`/metrics`).
pub const SCRAPER_LABEL: &str = "ai-gateway.dev/metrics-scraper";
pub const HTTP_PORT: i32 = 8090;
pub const ADMIN_PORT: i32 = 8091;
pub const CONFIG_KEY: &str = "config.json";
pub const TOKEN_KEY: &str = "token";
const CONFIG_DIR: &str = "/etc/ai-gateway";

/// Names of the objects one gateway owns.
pub struct Names {
    pub deployment: String,
    pub service: String,
    pub config_secret: String,
    pub admin_secret: String,
    pub service_account: String,
}

impl Names {
    pub fn of(gw: &AIGateway) -> Self {
        let name = gw.name_any();
        Self {
            deployment: name.clone(),
            service: name.clone(),
            config_secret: format!("{name}-config"),
            admin_secret: format!("{name}-admin"),
            service_account: format!("{name}-dataplane"),
        }
    }
}

/// Labels that select a gateway's data-plane pods.
pub fn selector_labels(gw: &AIGateway) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "ai-gateway".into()),
        ("app.kubernetes.io/instance".into(), gw.name_any()),
        ("app.kubernetes.io/component".into(), "dataplane".into()),
    ])
}

pub fn selector_string(gw: &AIGateway) -> String {
    selector_labels(gw)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn metadata(gw: &AIGateway, name: &str) -> Value {
    let mut labels = selector_labels(gw);
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    json!({
        "name": name,
        "namespace": gw.namespace(),
        "labels": labels,
        "ownerReferences": gw.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
    })
}

fn document(api_version: &str, kind: &str, metadata: Value, rest: Value) -> Value {
    let mut doc = json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
    if let (Some(doc), Value::Object(rest)) = (doc.as_object_mut(), rest) {
        doc.extend(rest);
    }
    doc
}

pub fn service_account(gw: &AIGateway) -> Value {
    let names = Names::of(gw);
    document(
        "v1",
        "ServiceAccount",
        metadata(gw, &names.service_account),
        json!({"automountServiceAccountToken": reviews_tokens(gw)}),
    )
}

/// The data plane needs its own token only to review its callers'.
fn reviews_tokens(gw: &AIGateway) -> bool {
    gw.spec.auth.mode == ai_gateway_snapshot::AuthMode::Kubernetes
}

/// The snapshot the pods boot from; pushes keep running pods current between restarts.
pub fn config_secret(gw: &AIGateway, snapshot_json: &str) -> Value {
    let names = Names::of(gw);
    document(
        "v1",
        "Secret",
        metadata(gw, &names.config_secret),
        json!({"type": "Opaque", "stringData": {CONFIG_KEY: snapshot_json}}),
    )
}

pub fn admin_secret(gw: &AIGateway, token: &str) -> Value {
    let names = Names::of(gw);
    document(
        "v1",
        "Secret",
        metadata(gw, &names.admin_secret),
        json!({"type": "Opaque", "stringData": {TOKEN_KEY: token}}),
    )
}

pub fn deployment(gw: &AIGateway, default_image: &str) -> Value {
    let names = Names::of(gw);
    let spec = &gw.spec;
    let image = spec.image.as_deref().unwrap_or(default_image);
    let mut volumes =
        vec![json!({"name": "config", "secret": {"secretName": names.config_secret}})];
    let mut mounts = vec![json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true})];
    // The root filesystem is read-only: an audit file needs a writable directory.
    let audit_dir = (spec.audit.sink == ai_gateway_snapshot::AuditSink::File)
        .then_some(spec.audit.path.as_deref())
        .flatten()
        .and_then(|p| std::path::Path::new(p).parent())
        .map(|d| d.display().to_string())
        .filter(|d| !d.is_empty() && d != "/");
    if let Some(dir) = audit_dir {
        volumes.push(json!({"name": "audit", "emptyDir": {}}));
        mounts.push(json!({"name": "audit", "mountPath": dir}));
    }
    let mut container = json!({
        "name": "dataplane",
        "image": image,
        // The admin port serves the kubelet's probes, the operator's pushes and
        // scrapes; its NetworkPolicy admits only those.
        "args": [
            "--config", format!("{CONFIG_DIR}/{CONFIG_KEY}"), "--log-json",
            "--admin-listen", format!("0.0.0.0:{ADMIN_PORT}"),
            "--listen", format!("0.0.0.0:{HTTP_PORT}"),
        ],
        "env": [{
            "name": "AI_GATEWAY_ADMIN_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": names.admin_secret, "key": TOKEN_KEY}},
        }],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    });
    if let (Some(c), Some(resources)) = (container.as_object_mut(), &spec.resources) {
        c.insert("resources".into(), json!(resources));
    }
    document(
        "apps/v1",
        "Deployment",
        metadata(gw, &names.deployment),
        json!({"spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector_labels(gw)},
            "template": {
                "metadata": {"labels": selector_labels(gw)},
                "spec": {
                    "serviceAccountName": names.service_account,
                    // In the pod template, so switching auth mode rolls the pods out.
                    "automountServiceAccountToken": reviews_tokens(gw),
                    // Streams get the data plane's 30 s drain before the kill.
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        }}),
    )
}

pub fn service(gw: &AIGateway) -> Value {
    let names = Names::of(gw);
    document(
        "v1",
        "Service",
        metadata(gw, &names.service),
        json!({"spec": {
            "type": gw.spec.service.r#type,
            "selector": selector_labels(gw),
            "ports": [
                {"name": "http", "port": gw.spec.service.port, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
            ],
        }}),
    )
}

/// One pod may go at a time; a single replica must not block node drains.
pub fn pod_disruption_budget(gw: &AIGateway) -> Value {
    let budget = if gw.spec.replicas > 1 {
        json!({"minAvailable": 1})
    } else {
        json!({"maxUnavailable": 1})
    };
    let mut spec = json!({"selector": {"matchLabels": selector_labels(gw)}});
    if let (Some(s), Value::Object(b)) = (spec.as_object_mut(), budget) {
        s.extend(b);
    }
    document(
        "policy/v1",
        "PodDisruptionBudget",
        metadata(gw, &gw.name_any()),
        json!({ "spec": spec }),
    )
}

/// Namespaces whose pods may call a gateway that trusts its callers' headers.
pub const ACCESS_LABEL: &str = "ai-gateway.dev/gateway-access";

/// The API port is open to all when callers must prove who they are, and to namespaces
/// labelled `ai-gateway.dev/gateway-access=true` when the gateway takes their word
/// (`trusted-headers`, `none`). The admin port (config pushes, metrics) is open to the
/// operator's pods (in its own namespace when known) and to metrics scrapers.
pub fn network_policy(gw: &AIGateway, operator_namespace: Option<&str>) -> Value {
    use ai_gateway_snapshot::AuthMode;
    let (op_key, op_value) = OPERATOR_NAME_LABEL.split_once('=').unwrap_or_default();
    let operator_namespaces = match operator_namespace {
        Some(ns) => json!({"matchLabels": {"kubernetes.io/metadata.name": ns}}),
        None => json!({}),
    };
    let mut api_rule = json!({"ports": [{"port": HTTP_PORT, "protocol": "TCP"}]});
    if matches!(gw.spec.auth.mode, AuthMode::TrustedHeaders | AuthMode::None) {
        api_rule["from"] = json!([{"namespaceSelector": {"matchLabels": {ACCESS_LABEL: "true"}}}]);
    }
    document(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        metadata(gw, &gw.name_any()),
        json!({"spec": {
            "podSelector": {"matchLabels": selector_labels(gw)},
            "policyTypes": ["Ingress"],
            "ingress": [
                api_rule,
                {
                    "from": [
                        {"namespaceSelector": operator_namespaces, "podSelector": {"matchLabels": {op_key: op_value}}},
                        {"namespaceSelector": {}, "podSelector": {"matchLabels": {SCRAPER_LABEL: "true"}}},
                    ],
                    "ports": [{"port": ADMIN_PORT, "protocol": "TCP"}],
                },
            ],
        }}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(spec: serde_json::Value) -> AIGateway {
        serde_json::from_value(json!({
            "apiVersion": "ai-gateway.dev/v1alpha1", "kind": "AIGateway",
            "metadata": {"name": "gw", "namespace": "ai", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("gateway: {e}"))
    }

    #[test]
    fn gateways_that_trust_headers_are_reachable_only_from_labelled_namespaces() {
        let trusting = network_policy(&gateway(json!({"auth": {"mode": "trusted-headers"}})), None);
        assert_eq!(
            trusting["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
                [ACCESS_LABEL],
            "true"
        );
        let keyed = network_policy(&gateway(json!({"auth": {"mode": "keys"}})), Some("ops"));
        assert!(
            keyed["spec"]["ingress"][0].get("from").is_none(),
            "keys prove the caller"
        );
        assert_eq!(
            keyed["spec"]["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"]
                ["kubernetes.io/metadata.name"],
            "ops",
            "only the operator's own namespace reaches the admin port"
        );
    }

    #[test]
    fn token_review_mode_mounts_the_token_in_the_pod_template() {
        let pod = |mode: &str| {
            deployment(&gateway(json!({"auth": {"mode": mode}})), "img")["spec"]["template"]["spec"]
                ["automountServiceAccountToken"]
                .clone()
        };
        assert_eq!(pod("kubernetes"), true);
        assert_eq!(pod("keys"), false);
    }

    #[test]
    fn a_file_audit_sink_gets_a_writable_directory() {
        let d = deployment(
            &gateway(json!({"audit": {"sink": "file", "path": "/var/log/ai-gateway/audit.jsonl"}})),
            "img",
        );
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][1], json!({"name": "audit", "emptyDir": {}}));
        assert_eq!(
            pod["containers"][0]["volumeMounts"][1],
            json!({"name": "audit", "mountPath": "/var/log/ai-gateway"})
        );
        let stdout = deployment(&gateway(json!({})), "img");
        assert_eq!(
            stdout["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}
