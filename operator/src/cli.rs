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

use crate::compile::{secret_value, KEY_DATA, SIGV4_DATA};
use ai_gateway_snapshot::{KeySelector, TEAM_LABEL, USER_LABEL, WORKSPACE_LABEL};
use ai_gateway_crds::{AIGateway, ProviderRoute};
pub use ai_gateway_snapshot::key_sha256;
use clap::{Args, Parser, Subcommand, ValueEnum};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;

pub const DEFAULT_GATEWAY: &str = "ai-gateway";
/// Where `usage` finds the caller's key when `--key` is not given.
pub const KEY_ENV: &str = "AI_GATEWAY_KEY";
/// Every key the CLI issues starts with this.
pub const KEY_PREFIX: &str = "gw_";
const FIELD_MANAGER: &str = "kubectl-aigw";

/// A writer the command's output goes to; `Send` so a command can run on any task.
pub type Out<'a> = &'a mut (dyn Write + Send);

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
}

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
    let ctx = Ctx {
        client,
        namespace,
        gateway: cli.gateway.clone(),
        format: cli.output,
        request_timeout: cli.request_timeout,
    };
    match &cli.command {
        Command::Keys(KeysCommand::Create(args)) => ctx.create_key(args, out).await,
        Command::Keys(KeysCommand::List) => ctx.list_keys(out, err).await,
        Command::Keys(KeysCommand::Revoke { name }) => ctx.revoke_key(name, out, err).await,
        Command::Providers => ctx.providers(out, err).await,
        Command::Usage(args) => ctx.usage(args, out).await,
    }
}

/// Whether an error, or anything it wraps, is an I/O timeout.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The value a new key Secret gets under the gateway's selector.
fn value_for_new(selector: &KeySelector) -> String {
    if selector.value.is_empty() {
        "true".into()
    } else {
        selector.value.clone()
    }
}

/// A new gateway key: `gw_` and 64 hex digits (256 random bits from two UUIDv4s, less
/// their 12 fixed version bits).
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", random_hex())
}

fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending with a letter or digit.
fn check_label_value(what: &'static str, value: &str) -> Result<(), CliError> {
    let invalid = |why| CliError::Invalid {
        what,
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return Err(invalid("it must not be empty"));
    }
    if value.len() > 63 {
        return Err(invalid("a label value has at most 63 characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "a label value has only letters, digits, `-`, `_` and `.` (no `@`: use `alice`, not an email address)",
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(value.chars().next()) || !alnum(value.chars().last()) {
        return Err(invalid(
            "a label value starts and ends with a letter or digit",
        ));
    }
    Ok(())
}

/// A Secret name: a DNS-1123 subdomain.
fn check_name(name: &str) -> Result<(), CliError> {
    let invalid = |why| CliError::Invalid {
        what: "name",
        value: name.to_string(),
        why,
    };
    if name.is_empty() || name.len() > 253 {
        return Err(invalid("a Secret name has 1 to 253 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    {
        return Err(invalid(
            "a Secret name has only lowercase letters, digits, `-` and `.`",
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err(invalid(
            "a Secret name starts and ends with a letter or digit",
        ));
    }
    Ok(())
}

/// `key-<user>-<8 hex>`, the user folded into what a Secret name allows.
fn default_name(user: &str) -> String {
    let mut slug = String::new();
    for c in user.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(40).collect();
    let slug = slug.trim_end_matches('-');
    let suffix = &random_hex()[..8];
    if slug.is_empty() {
        format!("key-{suffix}")
    } else {
        format!("key-{slug}-{suffix}")
    }
}

fn dash(value: Option<&String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "-".into())
}

/// kubectl-style columns: upper-case headers, three spaces between columns.
fn table(out: Out<'_>, headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i < last {
                line.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        line.trim_end().to_string()
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn json_out(out: Out<'_>, value: &Value) -> Result<(), CliError> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// The message of an error body: a Kubernetes `Status`, or the data plane's
/// OpenAI/Anthropic/Gemini-shaped error, else the text itself.
fn error_message(body: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(body).trim().to_string();
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let short: String = text.chars().take(300).collect();
        return (short, false);
    };
    if v["kind"] == "Status" {
        return (v["message"].as_str().unwrap_or(&text).to_string(), true);
    }
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .or_else(|| v["message"].as_str())
        .unwrap_or(&text);
    (message.to_string(), false)
}

struct Ctx {
    client: Client,
    namespace: String,
    gateway: String,
    format: Format,
    request_timeout: std::time::Duration,
}

impl Ctx {
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

    async fn create_key(&self, args: &CreateArgs, out: Out<'_>) -> Result<(), CliError> {
        check_label_value("user", &args.user)?;
        if let Some(team) = &args.team {
            check_label_value("team", team)?;
        }
        if let Some(workspace) = &args.workspace {
            check_label_value("workspace", workspace)?;
        }
        if let Some(name) = &args.name {
            check_name(name)?;
        }
        let (gw, selector) = self.gateway().await?;
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| default_name(&args.user));
        let key = new_key();
        let sigv4 = args.sigv4.then(random_hex);

        let mut labels = BTreeMap::from([
            (selector.label.clone(), value_for_new(&selector)),
            (USER_LABEL.to_string(), args.user.clone()),
        ]);
        if let Some(team) = &args.team {
            labels.insert(TEAM_LABEL.into(), team.clone());
        }
        if let Some(workspace) = &args.workspace {
            labels.insert(WORKSPACE_LABEL.into(), workspace.clone());
        }
        let mut data = BTreeMap::from([(KEY_DATA.to_string(), ByteString(key.clone().into()))]);
        if let Some(secret) = &sigv4 {
            data.insert(SIGV4_DATA.into(), ByteString(secret.clone().into()));
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self.secrets().create(&params, &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                return Err(CliError::NameTaken(name))
            }
            Err(e) => return Err(e.into()),
        }

        let base = format!(
            "http://{}.{}.svc:{}",
            self.gateway, self.namespace, gw.spec.service.port
        );
        if self.format == Format::Json {
            return json_out(
                out,
                &json!({
                    "name": name,
                    "namespace": self.namespace,
                    "user": args.user,
                    "team": args.team,
                    "workspace": args.workspace,
                    "key": key,
                    "sigv4": sigv4.as_ref().map(|s| json!({
                        "aws_access_key_id": name,
                        "aws_secret_access_key": s,
                    })),
                }),
            );
        }
        let mut who = format!("user {}", args.user);
        if let Some(team) = &args.team {
            who.push_str(&format!(", team {team}"));
        }
        if let Some(workspace) = &args.workspace {
            who.push_str(&format!(", workspace {workspace}"));
        }
        writeln!(
            out,
            "key/{name} created in namespace {} for {who}",
            self.namespace
        )?;
        writeln!(out)?;
        writeln!(out, "    {key}")?;
        writeln!(out)?;
        if let Some(secret) = &sigv4 {
            writeln!(
                out,
                "SigV4 pair (boto3: endpoint_url=\"{base}/v1/bedrock\"):"
            )?;
            writeln!(out, "    aws_access_key_id       {name}")?;
            writeln!(out, "    aws_secret_access_key   {secret}")?;
            writeln!(out)?;
        }
        writeln!(
            out,
            "Save it now: this is the only time kubectl aigw shows it. The gateway accepts it\n\
             once the operator has pushed the next config (seconds). Callers send it as\n\
             `Authorization: Bearer`, `x-api-key` or `x-goog-api-key`, e.g.\n\
             \x20   export ANTHROPIC_BASE_URL={base}/v1/claude ANTHROPIC_API_KEY=<the key>"
        )?;
        Ok(())
    }

    async fn list_keys(&self, out: Out<'_>, err: Out<'_>) -> Result<(), CliError> {
        let (_, selector) = self.gateway().await?;
        let mut secrets = self
            .secrets()
            .list(&ListParams::default().labels(&selector.query()))
            .await?
            .items;
        secrets.retain(|s| selector.matches(s.labels()));
        secrets.sort_by_key(|s| s.name_any());

        // What the operator would leave out, so a key that does not work says why.
        let mut first_by_hash: BTreeMap<String, String> = BTreeMap::new();
        let mut rows = Vec::new();
        for s in &secrets {
            let labels = s.labels();
            let name = s.name_any();
            let sigv4 = secret_value(s, SIGV4_DATA);
            let status = match secret_value(s, KEY_DATA) {
                None => format!("missing `{KEY_DATA}` data: not loaded"),
                Some(key) => match first_by_hash.get(&key_sha256(&key)) {
                    Some(first) => format!("same key as {first}: not loaded"),
                    None if sigv4.as_deref().is_some_and(|s| s.len() < 16) => {
                        "sigv4-secret under 16 characters: not loaded".into()
                    }
                    None => {
                        first_by_hash.insert(key_sha256(&key), name.clone());
                        "ok".into()
                    }
                },
            };
            rows.push(json!({
                "name": name,
                "user": labels.get(USER_LABEL),
                "team": labels.get(TEAM_LABEL),
                "workspace": labels.get(WORKSPACE_LABEL),
                "sigv4": sigv4.is_some(),
                "created": s.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
                "status": status,
            }));
        }
        if self.format == Format::Json {
            return json_out(out, &Value::Array(rows));
        }
        if rows.is_empty() {
            writeln!(
                err,
                "No gateway keys in namespace {} (Secrets labelled {selector}).",
                self.namespace
            )?;
            return Ok(());
        }
        let cell = |row: &Value, field: &str| match &row[field] {
            Value::String(s) => s.clone(),
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            _ => "-".to_string(),
        };
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                [
                    "name",
                    "user",
                    "team",
                    "workspace",
                    "sigv4",
                    "created",
                    "status",
                ]
                .iter()
                .map(|f| cell(r, f))
                .collect()
            })
            .collect();
        table(
            out,
            &[
                "NAME",
                "USER",
                "TEAM",
                "WORKSPACE",
                "SIGV4",
                "CREATED",
                "STATUS",
            ],
            &rows,
        )?;
        Ok(())
    }

    async fn revoke_key(&self, name: &str, out: Out<'_>, err: Out<'_>) -> Result<(), CliError> {
        let (_, selector) = self.gateway().await?;
        let secrets = self.secrets();
        let secret = secrets
            .get_opt(name)
            .await?
            .ok_or_else(|| CliError::KeyNotFound {
                name: name.to_string(),
                namespace: self.namespace.clone(),
            })?;
        if !selector.matches(secret.labels()) {
            return Err(CliError::NotAKey {
                name: name.to_string(),
                selector: selector.to_string(),
            });
        }
        // Only the Secret just checked: not one recreated under the same name meanwhile.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        secrets.delete(name, &params).await?;
        let user = secret.labels().get(USER_LABEL).cloned();
        if self.format == Format::Json {
            return json_out(
                out,
                &json!({"name": name, "namespace": self.namespace, "user": user, "revoked": true}),
            );
        }
        writeln!(out, "key/{name} revoked (user {})", dash(user.as_ref()))?;
        writeln!(
            err,
            "The gateway stops accepting it once the operator has pushed the next config (seconds)."
        )?;
        Ok(())
    }

    /// GET `path` on the gateway Service's `http` port through the API server. The key
    /// travels as `x-api-key`: the API server consumes `Authorization` itself.
    async fn proxy_get(&self, path: &str, key: Option<&str>) -> Result<Value, ProxyFailure> {
        let failure = |status: Option<u16>, message: String, from_api_server: bool| ProxyFailure {
            path: path.to_string(),
            status,
            message,
            from_api_server,
        };
        let uri = format!(
            "/api/v1/namespaces/{}/services/{}:http/proxy{path}",
            self.namespace, self.gateway
        );
        let mut request = http::Request::get(uri).header(http::header::ACCEPT, "application/json");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let request = request
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| failure(None, e.to_string(), false))?;
        let no_answer = || {
            failure(
                None,
                format!(
                    "no answer within {} (--request-timeout)",
                    humantime::format_duration(self.request_timeout)
                ),
                false,
            )
        };
        // The client's own read timeout and this deadline are the same length; whichever
        // fires first, the person sees the same sentence.
        let sent_error = |status: Option<u16>, e: &(dyn std::error::Error + 'static)| {
            if timed_out(e) {
                no_answer()
            } else {
                failure(status, e.to_string(), false)
            }
        };
        let call = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| sent_error(None, &e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(|e| sent_error(Some(status.as_u16()), &e))?;
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(self.request_timeout, call)
            .await
            .map_err(|_| no_answer())??;
        if !status.is_success() {
            let (message, from_api_server) = error_message(&body);
            return Err(failure(Some(status.as_u16()), message, from_api_server));
        }
        serde_json::from_slice(&body)
            .map_err(|e| failure(Some(status.as_u16()), format!("not JSON ({e})"), false))
    }

    async fn providers(&self, out: Out<'_>, err: Out<'_>) -> Result<(), CliError> {
        let api: Api<ProviderRoute> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut routes = api.list(&ListParams::default()).await?.items;
        routes.retain(|r| r.spec.gateway_ref == self.gateway);
        routes.sort_by_key(|r| r.name_any());

        let live = self.proxy_get("/v1/providers", None).await;
        let live_by_name: BTreeMap<String, Value> = match &live {
            Ok(v) => v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["name"].as_str()?.to_string(), p.clone())))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        let live_error = live.as_ref().err().map(|e| e.to_string());

        let entries: Vec<Value> = routes
            .iter()
            .map(|r| {
                let name = r.name_any();
                let conditions: Vec<Value> = r
                    .status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .map(|c| {
                        json!({"type": c.type_, "status": c.status, "reason": c.reason, "message": c.message})
                    })
                    .collect();
                json!({
                    "name": name,
                    "type": r.spec.r#type,
                    "models": r.spec.models,
                    "priority": r.spec.priority,
                    "conditions": conditions,
                    "live": live_by_name.get(&name),
                })
            })
            .collect();

        if self.format == Format::Json {
            return json_out(
                out,
                &json!({
                    "gateway": self.gateway,
                    "namespace": self.namespace,
                    "routes": entries,
                    "live_error": live_error,
                }),
            );
        }
        if entries.is_empty() {
            writeln!(
                err,
                "No ProviderRoutes for gateway {} in namespace {}.",
                self.gateway, self.namespace
            )?;
        } else {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    let conditions = e["conditions"].as_array().cloned().unwrap_or_default();
                    let condition = |t: &str| {
                        conditions
                            .iter()
                            .find(|c| c["type"] == t)
                            .and_then(|c| c["status"].as_str())
                            .unwrap_or("Unknown")
                            .to_string()
                    };
                    let failing = conditions.iter().find(|c| c["status"] != "True").map(|c| {
                        format!(
                            "{}: {}",
                            c["reason"].as_str().unwrap_or_default(),
                            c["message"].as_str().unwrap_or_default()
                        )
                    });
                    let (state, circuit, reason) = match (&live_error, &e["live"]) {
                        (Some(_), _) => ("unknown".to_string(), "-".to_string(), None),
                        (None, Value::Null) => ("not loaded".into(), "-".into(), None),
                        (None, l) => (
                            l["status"].as_str().unwrap_or("-").to_string(),
                            l["circuit"].as_str().unwrap_or("-").to_string(),
                            l["reason"].as_str().map(str::to_string),
                        ),
                    };
                    let models = e["models"]
                        .as_array()
                        .map(|m| {
                            m.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    vec![
                        e["name"].as_str().unwrap_or_default().to_string(),
                        e["type"].as_str().unwrap_or_default().to_string(),
                        if models.is_empty() {
                            "-".into()
                        } else {
                            models
                        },
                        e["priority"].to_string(),
                        condition("Accepted"),
                        condition("ResolvedRefs"),
                        state,
                        circuit,
                        failing.or(reason).unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                out,
                &[
                    "NAME",
                    "TYPE",
                    "MODELS",
                    "PRIORITY",
                    "ACCEPTED",
                    "RESOLVEDREFS",
                    "LIVE",
                    "CIRCUIT",
                    "MESSAGE",
                ],
                &rows,
            )?;
        }
        if let Some(e) = live_error {
            writeln!(
                err,
                "note: live health is unavailable, showing route conditions only.\n  {e}\n  \
                 Is the data plane running (kubectl -n {ns} get pods -l app.kubernetes.io/instance={gw})? \
                 The service proxy also needs `get` on `services/proxy` in {ns}.",
                ns = self.namespace,
                gw = self.gateway,
            )?;
        }
        Ok(())
    }

    async fn usage(&self, args: &UsageArgs, out: Out<'_>) -> Result<(), CliError> {
        let key = args
            .key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(CliError::NoKey)?;
        let get = |path: &'static str| async move {
            self.proxy_get(path, Some(key)).await.map_err(|f| {
                if f.status == Some(401) && !f.from_api_server {
                    CliError::KeyRejected(f.message)
                } else {
                    CliError::Proxy(f)
                }
            })
        };
        let usage = get("/v1/usage").await?;
        let limits = get("/v1/limits").await?;
        if self.format == Format::Json {
            return json_out(out, &json!({"usage": usage, "limits": limits["limits"]}));
        }
        let s = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            v => v.to_string(),
        };
        writeln!(
            out,
            "user {}   team {}   workspace {}   day {} (UTC)",
            s(&usage["user"]),
            s(&usage["team"]),
            s(&usage["workspace"]),
            s(&usage["date"]),
        )?;
        let today = &usage["today"];
        writeln!(
            out,
            "today: {} requests, {} tokens in, {} tokens out, {} cache read, {} cache write, ${:.4}",
            s(&today["requests"]),
            s(&today["tokens_in"]),
            s(&today["tokens_out"]),
            s(&today["cache_read_tokens"]),
            s(&today["cache_write_tokens"]),
            today["cost_usd"].as_f64().unwrap_or_default(),
        )?;
        let limit = &usage["limit"];
        if limit["requests_remaining"].is_null() && limit["tokens_remaining"].is_null() {
            writeln!(out, "remaining: no request or token limit applies")?;
        } else {
            writeln!(
                out,
                "remaining: {} requests, {} tokens (the tightest limit that applies)",
                s(&limit["requests_remaining"]),
                s(&limit["tokens_remaining"]),
            )?;
        }
        if let Some(models) = usage["models"].as_object().filter(|m| !m.is_empty()) {
            writeln!(out)?;
            let rows: Vec<Vec<String>> = models
                .iter()
                .map(|(model, u)| {
                    vec![
                        model.clone(),
                        s(&u["requests"]),
                        s(&u["tokens_in"]),
                        s(&u["tokens_out"]),
                        format!("${:.4}", u["cost_usd"].as_f64().unwrap_or_default()),
                    ]
                })
                .collect();
            table(
                out,
                &["MODEL", "REQUESTS", "TOKENS IN", "TOKENS OUT", "COST"],
                &rows,
            )?;
        }
        let windows = [
            ("requests_per_minute", "requests/minute"),
            ("tokens_per_minute", "tokens/minute"),
            ("tokens_per_day", "tokens/day"),
            ("concurrent_requests", "concurrent requests"),
            ("budget_usd_per_day", "USD/day"),
        ];
        let mut rows = Vec::new();
        for entry in limits["limits"].as_array().into_iter().flatten() {
            for (field, label) in windows {
                let l = &entry[field];
                if l.is_null() {
                    continue;
                }
                let reset = l["reset_seconds"].as_u64().unwrap_or_default();
                rows.push(vec![
                    format!("{} {}", s(&entry["scope"]), s(&entry["key"])),
                    label.to_string(),
                    s(&l["limit"]),
                    s(&l["used"]),
                    s(&l["remaining"]),
                    if reset == 0 {
                        "-".into()
                    } else {
                        format!("{reset}s")
                    },
                ]);
            }
        }
        if !rows.is_empty() {
            writeln!(out)?;
            table(
                out,
                &[
                    "SUBJECT",
                    "WINDOW",
                    "LIMIT",
                    "USED",
                    "REMAINING",
                    "RESETS IN",
                ],
                &rows,
            )?;
        }
        Ok(())
    }
}
