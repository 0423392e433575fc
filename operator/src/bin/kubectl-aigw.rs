//! `kubectl-aigw`: on PATH it is also `kubectl aigw`. See `ai_gateway_operator::cli`.

use ai_gateway_operator::cli::{self, Cli};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Cli::parse();
    let result = match cli::client(args.context.as_deref(), args.request_timeout).await {
        Ok(client) => {
            cli::run(
                &args,
                client,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
