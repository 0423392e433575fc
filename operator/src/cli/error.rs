//! What a command can fail with, worded for the person at the terminal.

use super::args::KEY_ENV;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("no AIGateway `{gateway}` in namespace `{namespace}` (pick another with --gateway or -n; is the ai-gateway chart installed?)")]
    NoGateway { gateway: String, namespace: String },
    #[error("no Secret `{name}` in namespace `{namespace}`")]
    KeyNotFound { name: String, namespace: String },
    #[error("Secret `{name}` is not a gateway key (it lacks the label `{selector}`); refusing to delete it")]
    NotAKey { name: String, selector: String },
    #[error("a Secret named `{0}` already exists; choose another --name")]
    NameTaken(String),
    #[error("invalid {what} `{value}`: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("no Ready data plane of gateway `{0}` to ask")]
    NoDataPlane(String),
    #[error("no gateway key: pass --key or set {KEY_ENV}")]
    NoKey,
    #[error("the gateway rejected the key: {0}")]
    KeyRejected(String),
    #[error("{0}")]
    Proxy(ProxyFailure),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("unexpected answer from the data plane: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// A data-plane call through the API server's service proxy that did not succeed.
#[derive(Debug, thiserror::Error)]
#[error("could not get {path} from the data plane through the API server's service proxy: {}{message}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
pub struct ProxyFailure {
    pub path: String,
    pub status: Option<u16>,
    pub message: String,
    /// The API server answered (a `Status` object: no endpoints, forbidden …) rather
    /// than the data plane.
    pub from_api_server: bool,
}
