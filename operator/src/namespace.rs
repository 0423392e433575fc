//! A namespace's objects read from multi-document YAML, as `kubectl apply -f` takes
//! them: how the operator compiles and pushes without a cluster.

use crate::compile::{compile, Compiled, Inputs};
use ai_gateway_crds::{AIGateway, ProviderRoute, RateLimitPolicy};
use ai_gateway_snapshot::KeySelector;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("document {index}: {message}")]
    Document { index: usize, message: String },
    #[error("no AIGateway named `{0}`")]
    NoGateway(String),
}

/// One document as the object its `kind` names.
fn object<K: DeserializeOwned>(value: serde_yaml::Value) -> Result<K, String> {
    serde_yaml::from_value(value).map_err(|e| e.to_string())
}

#[derive(Default, Clone)]
pub struct Namespace {
    pub gateways: Vec<AIGateway>,
    pub routes: Vec<ProviderRoute>,
    pub policies: Vec<RateLimitPolicy>,
    pub secrets: Vec<Secret>,
}

impl Namespace {
    pub fn from_yaml(text: &str) -> Result<Self, NamespaceError> {
        let mut ns = Namespace::default();
        for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let err = |message: String| NamespaceError::Document { index, message };
            let value = serde_yaml::Value::deserialize(doc).map_err(|e| err(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "AIGateway" => ns.gateways.push(object(value).map_err(err)?),
                "ProviderRoute" => ns.routes.push(object(value).map_err(err)?),
                "RateLimitPolicy" => ns.policies.push(object(value).map_err(err)?),
                "Secret" => ns.secrets.push(object(value).map_err(err)?),
                other => return Err(err(format!("kind `{other}` is not one the operator reads"))),
            }
        }
        Ok(ns)
    }

    /// Compiles the named gateway, with the Secrets its key selector matches as keys.
    pub fn compile(&self, gateway: &str) -> Result<Compiled, NamespaceError> {
        let gw = self
            .gateways
            .iter()
            .find(|g| g.name_any() == gateway)
            .ok_or_else(|| NamespaceError::NoGateway(gateway.to_string()))?;
        let secrets: BTreeMap<String, Secret> = self
            .secrets
            .iter()
            .map(|s| (s.name_any(), s.clone()))
            .collect();
        let selector = KeySelector::parse(&gw.spec.auth.key_selector);
        let key_secrets: Vec<Secret> = self
            .secrets
            .iter()
            .filter(|s| selector.matches(s.labels()))
            .cloned()
            .collect();
        Ok(compile(&Inputs {
            gateway: gw,
            routes: &self.routes,
            policies: &self.policies,
            secrets: &secrets,
            key_secrets: &key_secrets,
        }))
    }
}
