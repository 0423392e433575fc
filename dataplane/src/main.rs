use ai_gateway::{config, server, state::Gateway};

// Request handling allocates many small short-lived buffers, which jemalloc serves as
// fast as mimalloc and a tenth faster than glibc. Each open stream holds hyper's 8 KiB
// connection buffers with a few hundred bytes in them; jemalloc leaves the rest of those
// pages untouched, so not resident: 17 KiB a stream against mimalloc's 29 (STREAMS.md).
// Its background thread returns freed pages, not the request that happens to free them.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// With `--features dhat-heap`: every allocation recorded, for where memory goes.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// ai-gateway: one endpoint in front of Anthropic, OpenAI, Bedrock, Gemini and Ollama.
#[derive(Parser, Debug)]
#[command(version, after_help = ENV_HELP)]
struct Args {
    /// Snapshot document (YAML or JSON). Without it the gateway starts from the
    /// provider environment variables below. The file is reloaded when it changes.
    #[arg(long, env = "AI_GATEWAY_CONFIG")]
    config: Option<PathBuf>,

    /// Address of the API listener (overrides --port).
    #[arg(long, env = "AI_GATEWAY_LISTEN")]
    listen: Option<SocketAddr>,

    /// Port of the API listener: on all interfaces, or on 127.0.0.1 only while the
    /// config takes any caller (auth `none`).
    #[arg(long, env = "AI_GATEWAY_PORT", default_value_t = 8090)]
    port: u16,

    /// Address of the admin listener (/healthz, /readyz, /metrics, config push): this
    /// machine only unless told otherwise, as its metrics name users and teams.
    #[arg(
        long,
        env = "AI_GATEWAY_ADMIN_LISTEN",
        default_value = "127.0.0.1:8091"
    )]
    admin_listen: SocketAddr,

    /// Bearer token required for `PUT /admin/v1/config`; without it pushes are refused.
    #[arg(long, env = "AI_GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Log filter (error, warn, info, debug, or a tracing directive) [default: info;
    /// AUDIT_LOG_LEVEL, the users' own name for it, is read when this is unset].
    #[arg(long, env = "AI_GATEWAY_LOG_LEVEL")]
    log_level: Option<String>,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "AI_GATEWAY_LOG_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    log_json: bool,

    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "AI_GATEWAY_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,

    /// Where the embedded store keeps today's counters, the usage ledger and keys made
    /// with `ai-gateway keys` (one gateway process per directory).
    #[arg(
        long,
        env = "AI_GATEWAY_DATA_DIR",
        default_value = "ai-gateway-data",
        global = true
    )]
    data_dir: PathBuf,

    /// Validate the config, print its version and exit.
    #[arg(long)]
    check: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Gateway keys without a cluster, kept in the data directory; a running gateway
    /// serves them within a second. In a cluster, use `kubectl aigw keys`.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(clap::Subcommand, Debug)]
enum KeysAction {
    /// Make a key and print it (the only time it is shown).
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// The key's own limit, in requests per minute.
        #[arg(long, value_name = "RPM")]
        rate_limit: Option<u64>,
        /// Also make an AWS-style pair (access key id, secret) for SigV4 clients (boto3).
        #[arg(long)]
        sigv4: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the keys (never their plaintext).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke { id: String },
}

const ENV_HELP: &str = "\
Provider environment variables (used by the built-in default config and by ${VAR}
references in a config file):
  ANTHROPIC_API_KEY       enables the `anthropic` provider (claude-*)
  OPENAI_API_KEY          enables the `openai` provider (gpt-*, o1*, o3*, o4*)
  AWS_ACCESS_KEY_ID       with AWS_SECRET_ACCESS_KEY enables the `bedrock` provider
  AWS_SECRET_ACCESS_KEY
  AWS_REGION              Bedrock region (default us-east-1)
  GOOGLE_API_KEY          enables the `gemini` provider (gemini-*)
  RATE_LIMIT_RPM          default requests per minute per user (default 60; built-in config only)
  GATEWAY_API_KEY         gateway key(s), comma-separated: turns auth `none` into key auth
  REDIS_URL               limits and the response cache shared in Redis (built-in config only)
  AUDIT_LOG_LEVEL         same as --log-level (AI_GATEWAY_LOG_LEVEL wins when both are set)
  HTTPS_PROXY, ALL_PROXY  egress proxy for https providers (CONNECT tunnel)
  NO_PROXY                hosts reached directly";

fn main() -> ExitCode {
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    let args = Args::parse();
    if let Some(Command::Keys { action }) = &args.command {
        return keys(&args.data_dir, action);
    }
    init_tracing(&args);
    let snapshot = match &args.config {
        Some(path) => config::load_file(path),
        None => config::from_environment(),
    };
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ai-gateway: invalid config\n{e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("config ok, version {}", snapshot.effective_version());
        return ExitCode::SUCCESS;
    }
    let open_files = raise_open_file_limit();
    // On one core (a pinned process, a pod limited to one CPU) a work-stealing
    // scheduler only adds cross-thread hand-offs; one thread serves every task.
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_core {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(compiled) => compiled,
        Err(e) => {
            eprintln!("ai-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, snapshot, open_files)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ai-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Below this many descriptors the start warns: as few as 5,000 streams to HTTP/1.1
/// providers, one descriptor for the caller and one for the provider each.
const FEW_OPEN_FILES: u64 = 10_000;

/// Each caller connection and each upstream connection is a descriptor, and container
/// runtimes commonly start a process with a soft limit of 1,024 under a hard limit of
/// hundreds of thousands: raised to the hard limit, as nginx's `worker_rlimit_nofile`
/// and Go's runtime do, so thousands of agents' open streams are not refused at
/// `accept`. Returns the limit now in force.
#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // Far more than any gateway holds (fs.nr_open's default on Linux).
    const CEILING: u64 = 1 << 20;
    // macOS reports an unlimited hard limit but refuses a soft one past
    // kern.maxfilesperproc; OPEN_MAX is always allowed. Linux never reports unlimited.
    const UNLIMITED_FALLBACK: u64 = 10_240;
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    let target = limit.maximum.map_or(CEILING, |hard| hard.min(CEILING));
    let fallback = limit.maximum.is_none().then_some(UNLIMITED_FALLBACK);
    for target in std::iter::once(target)
        .chain(fallback)
        .filter(|&t| t > soft)
    {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Some(target);
        }
    }
    Some(soft)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

fn init_tracing(args: &Args) {
    // The process log level, whatever the seed's name for it says about audits.
    let level = args
        .log_level
        .clone()
        .or_else(|| std::env::var("AUDIT_LOG_LEVEL").ok())
        .unwrap_or_else(|| "info".into());
    let mut filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // yup-oauth2 logs Google's token answers, access tokens included, at debug.
    if let Ok(quiet) = "yup_oauth2=info".parse() {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `ai-gateway keys …` against the data directory.
fn keys(data_dir: &std::path::Path, action: &KeysAction) -> ExitCode {
    use ai_gateway::keystore::{KeyStore, NewKey};
    let store = match KeyStore::open(data_dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("ai-gateway keys: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = match action {
        KeysAction::Create {
            user,
            team,
            workspace,
            label,
            rate_limit,
            sigv4,
            json,
        } => store
            .create(&NewKey {
                user: user.clone(),
                team: team.clone(),
                workspace: workspace.clone(),
                label: label.clone(),
                rate_limit: *rate_limit,
                sigv4: *sigv4,
            })
            .map(|made| match json {
                true => println!("{}", serde_json::to_string(&made).unwrap_or_default()),
                false => {
                    println!("id:  {}\nkey: {}", made.id, made.key);
                    if let Some(secret) = &made.sigv4_secret {
                        println!(
                            "aws_access_key_id:     {}\naws_secret_access_key: {secret}",
                            made.id
                        );
                    }
                    println!("Shown once: keep it now. The gateway serves it within a second.");
                }
            }),
        KeysAction::List { json } => store.list().map(|keys| match json {
            true => println!("{}", serde_json::to_string(&keys).unwrap_or_default()),
            false => {
                println!(
                    "{:<28} {:<16} {:<16} {:<16} {:>8}  STATE",
                    "ID", "USER", "TEAM", "WORKSPACE", "RPM"
                );
                for k in keys {
                    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                    println!(
                        "{:<28} {:<16} {:<16} {:<16} {:>8}  {}",
                        k.id,
                        k.user,
                        dash(&k.team),
                        dash(&k.workspace),
                        k.rate_limit.map_or("-".into(), |n| n.to_string()),
                        if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            }
        }),
        KeysAction::Revoke { id } => store.revoke(id).and_then(|revoked| match revoked {
            true => {
                println!("revoked {id}");
                Ok(())
            }
            false => Err(ai_gateway::keystore::KeyStoreError::Invalid(format!(
                "no active key `{id}`"
            ))),
        }),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ai-gateway keys: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    args: Args,
    snapshot: ai_gateway_snapshot::Snapshot,
    open_files: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let gw = Arc::new(Gateway::with_data_dir(snapshot, Some(&args.data_dir)).await?);
    gw.watch_stored_keys();
    ai_gateway::state::log_providers(&gw.compiled());
    warn_unenforced(&gw.compiled().snapshot);
    if let Some(path) = &args.config {
        config::watch(path.clone(), gw.clone(), Duration::from_secs(1));
    }

    // A gateway that takes anyone (`auth: none`) serves this machine only, unless told
    // outright (`--listen`) to listen wider.
    let open_to_anyone = gw.compiled().snapshot.auth.mode == ai_gateway_snapshot::AuthMode::None;
    let listen = args.listen.unwrap_or_else(|| {
        if open_to_anyone {
            tracing::warn!(
                "auth mode is `none`: listening on 127.0.0.1 only; pass --listen to listen wider"
            );
            SocketAddr::from(([127, 0, 0, 1], args.port))
        } else {
            SocketAddr::from(([0, 0, 0, 0], args.port))
        }
    });
    let api = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin = TcpListener::bind(args.admin_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.admin_listen))?;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(api = %api.local_addr()?, admin = %admin.local_addr()?, workers, open_files, "ai-gateway listening");
    if let Some(limit) = open_files {
        gw.services
            .metrics
            .max_fds
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }
    if let Some(limit) = open_files.filter(|&n| n < FEW_OPEN_FILES) {
        tracing::warn!(
            limit,
            "few open files allowed: a caller connection takes one, and each provider connection one more (HTTP/2 providers share theirs); raise the hard limit (ulimit -Hn, the container runtime's LimitNOFILE)"
        );
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let drain = Duration::from_secs(args.drain_seconds);
    let api_gw = gw.clone();
    let mut api_stop = stop_rx.clone();
    let api_task = tokio::spawn(server::serve(
        api,
        move |req| server::handle(api_gw.clone(), req),
        async move {
            let _ = api_stop.wait_for(|s| *s).await;
        },
        drain,
        server::CLIENT_IDLE_TIMEOUT,
        server::ConnectionBudget::for_open_files(
            open_files,
            gw.services.metrics.connection_budget(),
        ),
    ));
    let admin_gw = gw.clone();
    let token: Option<Arc<str>> = args.admin_token.map(Arc::from);
    let mut admin_stop = stop_rx;
    let admin_task = tokio::spawn(server::serve(
        admin,
        move |req| server::handle_admin(admin_gw.clone(), token.clone(), req),
        async move {
            let _ = admin_stop.wait_for(|s| *s).await;
        },
        drain,
        server::CLIENT_IDLE_TIMEOUT,
        server::ConnectionBudget::default(),
    ));

    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    gw.start_draining();
    let _ = stop_tx.send(true);
    let _ = tokio::join!(api_task, admin_task);
    gw.services.audit.close();
    gw.services.store.close();
    tracing::info!("stopped");
    Ok(())
}

/// Settings that weaken the gateway, or that this build cannot honour yet: say so
/// loudly rather than let an operator believe they hold.
fn warn_unenforced(snapshot: &ai_gateway_snapshot::Snapshot) {
    use ai_gateway_snapshot::AuthMode;
    match snapshot.auth.mode {
        AuthMode::None => tracing::warn!(
            "auth mode is `none`: every caller is anonymous; use it for local development only"
        ),
        AuthMode::TrustedHeaders => tracing::warn!(
            "auth mode is `trusted-headers`: callers name themselves with X-User-ID / X-Workspace-ID; \
             only safe where nothing but workspace pods can reach the gateway"
        ),
        AuthMode::Kubernetes | AuthMode::Keys => {}
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
