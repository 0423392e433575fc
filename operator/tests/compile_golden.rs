//! `compile()` on whole namespaces of objects (`fixtures/*.yaml`, multi-document YAML
//! as `kubectl apply` takes it): the snapshot and every object's verdicts, against
//! reviewed snapshots.

use ai_gateway_crds::{AIGateway, ProviderRoute, RateLimitPolicy};
use ai_gateway_operator::compile::{compile, Inputs};
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Default)]
struct Namespace {
    gateways: Vec<AIGateway>,
    routes: Vec<ProviderRoute>,
    policies: Vec<RateLimitPolicy>,
    secrets: Vec<Secret>,
}

fn load(path: &std::path::Path) -> Namespace {
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut ns = Namespace::default();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc).expect("yaml");
        let kind = value["kind"].as_str().expect("kind").to_string();
        match kind.as_str() {
            "AIGateway" => ns
                .gateways
                .push(serde_yaml::from_value(value).expect("AIGateway")),
            "ProviderRoute" => ns
                .routes
                .push(serde_yaml::from_value(value).expect("ProviderRoute")),
            "RateLimitPolicy" => ns
                .policies
                .push(serde_yaml::from_value(value).expect("RateLimitPolicy")),
            "Secret" => ns
                .secrets
                .push(serde_yaml::from_value(value).expect("Secret")),
            other => panic!("unexpected kind {other}"),
        }
    }
    ns
}

#[test]
fn namespaces_compile_to_snapshots_and_verdicts() {
    insta::glob!("fixtures/*.yaml", |path| {
        let ns = load(path);
        let secrets: BTreeMap<String, Secret> = ns
            .secrets
            .iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), s.clone()))
            .collect();
        let key_secrets: Vec<Secret> = ns
            .secrets
            .iter()
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.get("ai-gateway.dev/key").is_some_and(|v| v == "true"))
            })
            .cloned()
            .collect();
        let compiled = compile(&Inputs {
            gateway: &ns.gateways[0],
            routes: &ns.routes,
            policies: &ns.policies,
            secrets: &secrets,
            key_secrets: &key_secrets,
        });
        insta::assert_yaml_snapshot!(compiled);
    });
}

#[test]
fn the_same_objects_always_compile_to_the_same_version() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/users_setup.yaml");
    let versions: Vec<String> = (0..3)
        .map(|_| {
            let mut ns = load(&path);
            // Input order must not matter.
            ns.routes.reverse();
            let secrets: BTreeMap<String, Secret> = ns
                .secrets
                .iter()
                .map(|s| (s.metadata.name.clone().unwrap_or_default(), s.clone()))
                .collect();
            compile(&Inputs {
                gateway: &ns.gateways[0],
                routes: &ns.routes,
                policies: &ns.policies,
                secrets: &secrets,
                key_secrets: &[],
            })
            .snapshot
            .effective_version()
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");
}
