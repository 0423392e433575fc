//! The objects an AIGateway owns, built as typed objects for server-side apply. Pure,
//! so tests can read exactly what the operator will send.

use ai_gateway_crds::AIGateway;
use ai_gateway_snapshot::{AuditSink, AuthMode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
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

fn metadata(gw: &AIGateway, name: &str) -> ObjectMeta {
    let mut labels = selector_labels(gw);
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: gw.namespace(),
        labels: Some(labels),
        owner_references: Some(gw.controller_owner_ref(&()).into_iter().collect()),
        ..ObjectMeta::default()
    }
}

/// A label selector on exactly these labels.
fn matching(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

fn labels<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn named_port(name: &str) -> IntOrString {
    IntOrString::String(name.into())
}

fn tcp() -> Option<String> {
    Some("TCP".into())
}

pub fn service_account(gw: &AIGateway) -> ServiceAccount {
    let names = Names::of(gw);
    ServiceAccount {
        metadata: metadata(gw, &names.service_account),
        automount_service_account_token: Some(reviews_tokens(gw)),
        ..ServiceAccount::default()
    }
}

/// The data plane needs its own token only to review its callers'.
fn reviews_tokens(gw: &AIGateway) -> bool {
    gw.spec.auth.mode == AuthMode::Kubernetes
}

fn opaque_secret(gw: &AIGateway, name: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: metadata(gw, name),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        ..Secret::default()
    }
}

/// The snapshot the pods boot from; pushes keep running pods current between restarts.
pub fn config_secret(gw: &AIGateway, snapshot_json: &str) -> Secret {
    opaque_secret(gw, &Names::of(gw).config_secret, CONFIG_KEY, snapshot_json)
}

pub fn admin_secret(gw: &AIGateway, token: &str) -> Secret {
    opaque_secret(gw, &Names::of(gw).admin_secret, TOKEN_KEY, token)
}

/// The root filesystem is read-only: a file audit sink needs a writable directory.
fn audit_dir(gw: &AIGateway) -> Option<String> {
    let audit = &gw.spec.audit;
    (audit.sink == AuditSink::File)
        .then_some(audit.path.as_deref())
        .flatten()
        .and_then(|p| std::path::Path::new(p).parent())
        .map(|d| d.display().to_string())
        .filter(|d| !d.is_empty() && d != "/")
}

fn probe(path: &str, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: named_port("admin"),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        ..Probe::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: tcp(),
        ..ContainerPort::default()
    }
}

/// Where the data plane's embedded store keeps its journal.
const DATA_DIR: &str = "/var/lib/ai-gateway";

fn dataplane_container(gw: &AIGateway, image: &str, mounts: Vec<VolumeMount>) -> Container {
    let names = Names::of(gw);
    Container {
        name: "dataplane".into(),
        image: Some(image.into()),
        // The admin port serves the kubelet's probes, the operator's pushes and
        // scrapes; its NetworkPolicy admits only those.
        args: Some(
            [
                "--config",
                &format!("{CONFIG_DIR}/{CONFIG_KEY}"),
                "--log-json",
                "--admin-listen",
                &format!("0.0.0.0:{ADMIN_PORT}"),
                "--listen",
                &format!("0.0.0.0:{HTTP_PORT}"),
                "--data-dir",
                DATA_DIR,
            ]
            .map(str::to_string)
            .to_vec(),
        ),
        env: Some(vec![
            // Keys here are Secrets: the admin API's key operations point to the CLI.
            EnvVar {
                name: "AI_GATEWAY_KEYS_IN_CLUSTER".into(),
                value: Some("1".into()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "AI_GATEWAY_ADMIN_TOKEN".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: names.admin_secret,
                        key: TOKEN_KEY.into(),
                        ..SecretKeySelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![
            container_port("http", HTTP_PORT),
            container_port("admin", ADMIN_PORT),
        ]),
        readiness_probe: Some(probe("/readyz", 5)),
        liveness_probe: Some(probe("/healthz", 10)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        resources: gw.spec.resources.clone(),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

pub fn deployment(gw: &AIGateway, default_image: &str) -> Deployment {
    let names = Names::of(gw);
    let spec = &gw.spec;
    let image = spec.image.as_deref().unwrap_or(default_image);
    let mut volumes = vec![Volume {
        name: "config".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names.config_secret.clone()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "config".into(),
        mount_path: CONFIG_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    // The embedded store's journal: it outlives a container restart (a crash, an OOM
    // kill) within the pod; a replica that moves starts its day's counters afresh,
    // which is why more than one replica wants Redis.
    volumes.push(Volume {
        name: "data".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    });
    mounts.push(VolumeMount {
        name: "data".into(),
        mount_path: DATA_DIR.into(),
        ..VolumeMount::default()
    });
    if let Some(dir) = audit_dir(gw) {
        volumes.push(Volume {
            name: "audit".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "audit".into(),
            mount_path: dir,
            ..VolumeMount::default()
        });
    }
    let pod = PodSpec {
        service_account_name: Some(names.service_account.clone()),
        // In the pod template, so switching auth mode rolls the pods out.
        automount_service_account_token: Some(reviews_tokens(gw)),
        // Streams get the data plane's 30 s drain before the kill.
        termination_grace_period_seconds: Some(45),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![dataplane_container(gw, image, mounts)],
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    Deployment {
        metadata: metadata(gw, &names.deployment),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: matching(selector_labels(gw)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector_labels(gw)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(named_port(name)),
        protocol: tcp(),
        ..ServicePort::default()
    }
}

pub fn service(gw: &AIGateway) -> Service {
    let names = Names::of(gw);
    Service {
        metadata: metadata(gw, &names.service),
        spec: Some(ServiceSpec {
            type_: Some(gw.spec.service.r#type.clone()),
            selector: Some(selector_labels(gw)),
            ports: Some(vec![
                service_port("http", gw.spec.service.port),
                service_port("admin", ADMIN_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// One pod may go at a time; a single replica must not block node drains.
pub fn pod_disruption_budget(gw: &AIGateway) -> PodDisruptionBudget {
    let one = Some(IntOrString::Int(1));
    let (min_available, max_unavailable) = if gw.spec.replicas > 1 {
        (one, None)
    } else {
        (None, one)
    };
    PodDisruptionBudget {
        metadata: metadata(gw, &gw.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(matching(selector_labels(gw))),
            min_available,
            max_unavailable,
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// Namespaces whose pods may call a gateway that trusts its callers' headers.
pub const ACCESS_LABEL: &str = "ai-gateway.dev/gateway-access";

fn tcp_port(port: i32) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: tcp(),
        ..NetworkPolicyPort::default()
    }])
}

/// The API port is open to all when callers must prove who they are, and to namespaces
/// labelled `ai-gateway.dev/gateway-access=true` when the gateway takes their word
/// (`trusted-headers`, `none`). The admin port (config pushes, metrics) is open to the
/// operator's pods (in its own namespace when known) and to metrics scrapers.
pub fn network_policy(gw: &AIGateway, operator_namespace: Option<&str>) -> NetworkPolicy {
    let (op_key, op_value) = OPERATOR_NAME_LABEL.split_once('=').unwrap_or_default();
    let operator_namespaces = match operator_namespace {
        Some(ns) => matching(labels([("kubernetes.io/metadata.name", ns)])),
        None => LabelSelector::default(),
    };
    let trusts_headers = matches!(gw.spec.auth.mode, AuthMode::TrustedHeaders | AuthMode::None);
    let api_rule = NetworkPolicyIngressRule {
        from: trusts_headers.then(|| {
            vec![NetworkPolicyPeer {
                namespace_selector: Some(matching(labels([(ACCESS_LABEL, "true")]))),
                ..NetworkPolicyPeer::default()
            }]
        }),
        ports: tcp_port(HTTP_PORT),
    };
    let admin_rule = NetworkPolicyIngressRule {
        from: Some(vec![
            NetworkPolicyPeer {
                namespace_selector: Some(operator_namespaces),
                pod_selector: Some(matching(labels([(op_key, op_value)]))),
                ..NetworkPolicyPeer::default()
            },
            NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                pod_selector: Some(matching(labels([(SCRAPER_LABEL, "true")]))),
                ..NetworkPolicyPeer::default()
            },
        ]),
        ports: tcp_port(ADMIN_PORT),
    };
    NetworkPolicy {
        metadata: metadata(gw, &gw.name_any()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(matching(selector_labels(gw))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![api_rule, admin_rule]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The object as it is sent.
    fn sent(object: impl serde::Serialize) -> Value {
        serde_json::to_value(object).unwrap_or_else(|e| panic!("serialize: {e}"))
    }

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
        let trusting = sent(network_policy(
            &gateway(json!({"auth": {"mode": "trusted-headers"}})),
            None,
        ));
        assert_eq!(
            trusting["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
                [ACCESS_LABEL],
            "true"
        );
        let keyed = sent(network_policy(
            &gateway(json!({"auth": {"mode": "keys"}})),
            Some("ops"),
        ));
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
            sent(deployment(&gateway(json!({"auth": {"mode": mode}})), "img"))["spec"]["template"]
                ["spec"]["automountServiceAccountToken"]
                .clone()
        };
        assert_eq!(pod("kubernetes"), true);
        assert_eq!(pod("keys"), false);
    }

    #[test]
    fn a_file_audit_sink_gets_a_writable_directory() {
        let d = sent(deployment(
            &gateway(json!({"audit": {"sink": "file", "path": "/var/log/ai-gateway/audit.jsonl"}})),
            "img",
        ));
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][2], json!({"name": "audit", "emptyDir": {}}));
        assert_eq!(
            pod["containers"][0]["volumeMounts"][2],
            json!({"name": "audit", "mountPath": "/var/log/ai-gateway"})
        );
        let stdout = sent(deployment(&gateway(json!({})), "img"));
        assert_eq!(
            stdout["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn the_embedded_store_gets_a_writable_data_directory() {
        let d = sent(deployment(&gateway(json!({})), "img"));
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][1], json!({"name": "data", "emptyDir": {}}));
        let container = &pod["containers"][0];
        assert_eq!(
            container["volumeMounts"][1],
            json!({"name": "data", "mountPath": "/var/lib/ai-gateway"})
        );
        let args: Vec<&str> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(args
            .windows(2)
            .any(|w| w == ["--data-dir", "/var/lib/ai-gateway"]));
    }
}
