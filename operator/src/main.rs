//! The operator binary. Without a cluster it compiles objects from YAML files and
//! pushes the snapshot to data planes (`--push-to`); the in-cluster controllers
//! (watching the CRDs, owning the data-plane Deployment) are not built yet.

use ai_gateway_operator::namespace::Namespace;
use ai_gateway_operator::push::Pusher;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (file, gateway) = match &args.command {
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
