//! The operator binary: `run` reconciles in a cluster (any kubeconfig); `compile` and
//! `push` work from YAML files with no cluster at all.

use ai_gateway_operator::controller::{self, Context};
use ai_gateway_operator::metrics::{serve_probes, Metrics};
use ai_gateway_operator::namespace::Namespace;
use ai_gateway_operator::push::Pusher;
use clap::{Parser, Subcommand};
use kube_lease_manager::LeaseManagerBuilder;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "Compiles AIGateway, ProviderRoute and RateLimitPolicy objects into data-plane snapshots"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile AIGateways in the cluster of the current kubeconfig or service account.
    Run(RunArgs),
    /// Print the snapshot and every object's verdict for one gateway.
    Compile {
        /// Multi-document YAML with the namespace's objects and Secrets.
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[arg(long, default_value = "ai-gateway")]
        gateway: String,
    },
    /// Compile, then push the snapshot to each data plane's admin port until applied.
    Push {
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[arg(long, default_value = "ai-gateway")]
        gateway: String,
        /// A data plane's admin URL (repeatable), e.g. http://127.0.0.1:8091.
        #[arg(long = "push-to", required = true)]
        push_to: Vec<String>,
        #[arg(long, env = "AI_GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The data-plane image for gateways that name none.
    #[arg(long, env = "AI_GATEWAY_DATAPLANE_IMAGE", default_value = concat!("ghcr.io/ai-gateway/ai-gateway:", env!("CARGO_PKG_VERSION")))]
    dataplane_image: String,
    /// Watch one namespace only (all namespaces when empty).
    #[arg(long, env = "AI_GATEWAY_WATCH_NAMESPACE", default_value = "")]
    namespace: String,
    /// Take the `ai-gateway-operator` Lease before reconciling, so replicas take turns.
    #[arg(long, env = "AI_GATEWAY_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's name in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "AI_GATEWAY_PROBE_LISTEN", default_value = "0.0.0.0:8081")]
    probe_listen: std::net::SocketAddr,
    /// Also keep this data plane's admin URL at every gateway's snapshot (repeatable);
    /// lets the operator run outside the cluster against local data planes.
    #[arg(long = "push-to")]
    push_to: Vec<String>,
    /// Log as JSON lines.
    #[arg(long, env = "AI_GATEWAY_LOG_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (file, gateway) = match &args.command {
        Command::Run(run_args) => return run(run_args).await,
        Command::Compile { file, gateway } | Command::Push { file, gateway, .. } => (file, gateway),
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ai-gateway-operator: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let compiled = match Namespace::from_yaml(&text).and_then(|ns| ns.compile(gateway)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ai-gateway-operator: {e}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::Run(_) => ExitCode::SUCCESS,
        Command::Compile { .. } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&compiled).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Push {
            push_to,
            admin_token,
            ..
        } => {
            let pusher = match Pusher::new(admin_token) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("ai-gateway-operator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut failed = false;
            for url in push_to {
                match pusher.push_until_applied(&url, &compiled.snapshot, 8).await {
                    Ok(version) => println!("{url}: applied {version}"),
                    Err(e) => {
                        eprintln!("ai-gateway-operator: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

async fn run(args: &RunArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    if args.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    match reconcile_cluster(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "operator stopped");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Controller(#[from] controller::Error),
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("lost the lease; exiting so a fresh replica can take over")]
    LostLease,
}

async fn reconcile_cluster(args: &RunArgs) -> Result<(), RunError> {
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let probes = tokio::spawn(serve_probes(args.probe_listen, metrics.clone()));
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        args.dataplane_image.clone(),
        args.push_to.clone(),
        args.identity.clone(),
    )?);
    let namespace = Some(args.namespace.as_str()).filter(|n| !n.is_empty());

    if !args.leader_elect {
        metrics.leader.set(1);
        controller::run(ctx, namespace).await;
        probes.abort();
        return Ok(());
    }
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("ai-gateway-operator-{}", uuid::Uuid::new_v4().simple()));
    let lease = LeaseManagerBuilder::new(client, "ai-gateway-operator")
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leading, lease_task) = lease.watch().await;
    tracing::info!(%identity, "waiting for the lease");
    while !*leading.borrow_and_update() {
        if leading.changed().await.is_err() {
            return Err(RunError::LostLease);
        }
    }
    tracing::info!(%identity, "leading");
    metrics.leader.set(1);
    let result = tokio::select! {
        () = controller::run(ctx, namespace) => Ok(()),
        lost = async {
            while leading.changed().await.is_ok() {
                if !*leading.borrow_and_update() {
                    break;
                }
            }
        } => { let () = lost; Err(RunError::LostLease) }
    };
    metrics.leader.set(0);
    // Dropping the channel releases the lease for the next replica.
    drop(leading);
    let _ = lease_task.await;
    probes.abort();
    result
}
