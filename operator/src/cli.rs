//! `kubectl aigw` (the `kubectl-aigw` binary): gateway keys, providers and usage,
//! against the cluster the kubeconfig points at.
//!
//! - A gateway key is a Secret in the gateway's namespace carrying the gateway's key
//!   selector label plus `ai-gateway.dev/user|team|workspace`; its plaintext is in the
//!   `key` data entry. The operator compiles it into the data-plane snapshot as a SHA-256.
//!   The CLI prints the plaintext once, at creation, and never again.
//! - Live provider health and a caller's usage come from the data plane itself
//!   (`/v1/providers`, `/v1/usage`, `/v1/limits`), reached through the API server's
//!   service proxy, so nothing needs a port-forward.

mod args;
mod env;
mod error;
mod keys;
mod providers;
mod proxy;
mod render;
mod usage;

pub use args::{
    Cli, Command, CreateArgs, EnvArgs, Format, KeysCommand, UsageArgs, DEFAULT_GATEWAY, KEY_ENV,
};
pub use error::{CliError, ProxyFailure};
pub use keys::{new_key, KEY_PREFIX};

use ai_gateway_crds::AIGateway;
pub use ai_gateway_snapshot::key_sha256;
use ai_gateway_snapshot::KeySelector;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::Client;
use std::io::Write;

/// A writer the command's output goes to; `Send` so a command can run on any task.
pub type Out<'a> = &'a mut (dyn Write + Send);

/// A client for `--context`, or for the current context (or in-cluster config).
pub async fn client(
    context: Option<&str>,
    request_timeout: std::time::Duration,
) -> Result<Client, CliError> {
    let config = match context {
        Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| CliError::Kubeconfig(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| CliError::Kubeconfig(e.to_string()))?,
    };
    client_from(config, request_timeout)
}

/// A client that answers a person at a terminal promptly: no retries (the client's
/// default retries a 503 from a stopped data plane for minutes) and a timeout per call.
pub fn client_from(
    mut config: kube::Config,
    request_timeout: std::time::Duration,
) -> Result<Client, CliError> {
    config.default_retry = false;
    config.read_timeout = Some(request_timeout);
    config.write_timeout = Some(request_timeout);
    Ok(Client::try_from(config)?)
}

/// Runs one command: results to `out`, notes and warnings to `err`.
pub async fn run(cli: &Cli, client: Client, out: Out<'_>, err: Out<'_>) -> Result<(), CliError> {
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let session = Session {
        client,
        namespace,
        gateway: cli.gateway.clone(),
        format: cli.output,
        request_timeout: cli.request_timeout,
    };
    match &cli.command {
        Command::Keys(KeysCommand::Create(args)) => session.create_key(args, out).await,
        Command::Keys(KeysCommand::List) => session.list_keys(out, err).await,
        Command::Keys(KeysCommand::Revoke { name }) => session.revoke_key(name, out, err).await,
        Command::Providers => session.providers(out, err).await,
        Command::Usage(args) => session.usage(args, out).await,
        Command::Env(args) => session.env(args, out).await,
    }
}

/// The gateway one command acts on, and how to reach and answer it.
struct Session {
    client: Client,
    namespace: String,
    gateway: String,
    format: Format,
    request_timeout: std::time::Duration,
}

impl Session {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The gateway and its key selector.
    async fn gateway(&self) -> Result<(AIGateway, KeySelector), CliError> {
        let api: Api<AIGateway> = Api::namespaced(self.client.clone(), &self.namespace);
        let gw = api
            .get_opt(&self.gateway)
            .await?
            .ok_or_else(|| CliError::NoGateway {
                gateway: self.gateway.clone(),
                namespace: self.namespace.clone(),
            })?;
        let selector = KeySelector::parse(&gw.spec.auth.key_selector);
        Ok((gw, selector))
    }
}
