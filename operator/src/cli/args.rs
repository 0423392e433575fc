//! The command line: global flags, commands and their arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_GATEWAY: &str = "ai-gateway";
/// Where `usage` finds the caller's key when `--key` is not given.
pub const KEY_ENV: &str = "AI_GATEWAY_KEY";

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-aigw",
    bin_name = "kubectl aigw",
    version,
    about = "Manage an ai-gateway from the command line: gateway keys, providers, usage",
    long_about = "Manage an ai-gateway from the command line: gateway keys, providers and usage.\n\
                  Installed as `kubectl-aigw` on PATH it also runs as `kubectl aigw`."
)]
pub struct Cli {
    /// Namespace of the gateway (default: the kubeconfig context's namespace)
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Name of the AIGateway
    #[arg(long, global = true, default_value = DEFAULT_GATEWAY)]
    pub gateway: String,
    /// Output format
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Kubeconfig context to use (default: the current context)
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// How long one call may take before the command gives up (e.g. 10s, 1m)
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: std::time::Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and revoke gateway keys
    #[command(subcommand, visible_alias = "key")]
    Keys(KeysCommand),
    /// The gateway's ProviderRoutes with their conditions and live health
    #[command(visible_alias = "provider")]
    Providers,
    /// A caller's usage today and the limits that remain
    Usage(UsageArgs),
    /// The exports a workspace needs to reach this gateway with every client
    Env(EnvArgs),
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The gateway key to export for the SDKs (ANTHROPIC_AUTH_TOKEN, OPENAI_API_KEY, GEMINI_API_KEY)
    #[arg(long)]
    pub key: Option<String>,
    /// The gateway's URL as the workspace reaches it (default: its Service's DNS name)
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its plaintext is printed once
    Create(CreateArgs),
    /// List keys with their identities (never the keys themselves)
    #[command(visible_alias = "ls")]
    List,
    /// Revoke a key by deleting its Secret
    #[command(visible_alias = "delete")]
    Revoke {
        /// Name of the key's Secret (as `keys list` shows it)
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The caller the key identifies (label `ai-gateway.dev/user`)
    #[arg(long)]
    pub user: String,
    /// The caller's team (label `ai-gateway.dev/team`)
    #[arg(long)]
    pub team: Option<String>,
    /// The caller's workspace (label `ai-gateway.dev/workspace`)
    #[arg(long)]
    pub workspace: Option<String>,
    /// Also issue an AWS SigV4 pair (for boto3 and other AWS SDKs calling /v1/bedrock)
    #[arg(long)]
    pub sigv4: bool,
    /// Name of the Secret (default: `key-<user>-<random>`); with --sigv4 it is also the access key id
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The caller's gateway key (prefer the environment variable: arguments end up in shell history)
    #[arg(long, env = KEY_ENV, hide_env_values = true)]
    pub key: Option<String>,
    /// Every caller's usage, from the admin API (needs read access to the gateway's admin-token Secret)
    #[arg(long)]
    pub all: bool,
    /// With --all: user, team, workspace, key, model, provider or session
    #[arg(long, default_value = "user", requires = "all")]
    pub group_by: String,
    /// With --all: the first day, YYYY-MM-DD or Nd (the last N days)
    #[arg(long, default_value = "1d", requires = "all")]
    pub since: String,
    /// With --all: the last day, YYYY-MM-DD (default today)
    #[arg(long, requires = "all")]
    pub until: Option<String>,
}
