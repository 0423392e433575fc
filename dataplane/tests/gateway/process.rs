//! The `ai-gateway` binary as an operator runs it, and real clients against it.

use crate::fakes::{client, fake_openai, fixture, FakeUpstream, Reply, TestGateway};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ai-gateway");

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub struct Running {
    child: Child,
    /// The embedded store's data directory, one per process.
    _data_dir: tempfile::TempDir,
    pub api: String,
    pub admin: String,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// Starts the binary on ephemeral loopback ports and waits for it to listen.
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &Path, extra: &[&str]) -> Self {
        Self::launch(Command::new(BIN), &with_config(config, extra), &[])
    }

    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        Self::launch(Command::new(BIN), &with_config(config, &[]), env)
    }

    /// As an operator would run it on a one-core machine or pod: pinned to one CPU.
    pub fn start_on_one_core(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut pinned = Command::new("taskset");
        pinned.args(["-c", "0", BIN]);
        Self::launch(pinned, &with_config(config, &[]), env)
    }

    /// Started with an open-file soft limit of `soft` under the hard limit it inherits,
    /// as container runtimes commonly start a process (1,024 under 524,288).
    /// With `hard`, under that hard limit instead.
    pub fn start_with_open_files(config: &Path, soft: u64, hard: Option<u64>) -> Self {
        use std::os::unix::process::CommandExt;
        let mut limited = Command::new(BIN);
        // SAFETY: setrlimit is one system call, safe between fork and exec.
        unsafe {
            limited.pre_exec(move || {
                set_open_file_limit(soft, hard);
                Ok(())
            });
        }
        Self::launch(limited, &with_config(config, &[]), &[])
    }

    /// No config file: what a workspace's environment variables give.
    pub fn start_from_environment(env: &[(&str, &str)]) -> Self {
        Self::launch(Command::new(BIN), &[], env)
    }

    fn launch(mut command: Command, args: &[String], env: &[(&str, &str)]) -> Self {
        let data_dir = tempdir();
        let mut child = command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AI_GATEWAY_DATA_DIR", data_dir.path())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut running = Self {
            child,
            _data_dir: data_dir,
            api: String::new(),
            admin: String::new(),
            log,
            seen: Vec::new(),
        };
        let line = running.wait_for_log("ai-gateway listening");
        let address = |key: &str| {
            let addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("listening line names {key}: {line}"));
            // A wildcard listener is reached on loopback.
            format!("http://{}", addr.replace("0.0.0.0", "127.0.0.1"))
        };
        running.api = address("api=");
        running.admin = address("admin=");
        running
    }

    /// The admin port's Prometheus metrics.
    async fn metrics(&self) -> String {
        crate::fakes::metrics_at(&self.admin).await
    }

    fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match self.log.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "no log line with `{needle}`; saw:\n{}",
            self.seen.join("\n")
        );
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// Command-line arguments for a config file on ephemeral loopback ports.
fn with_config(config: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.extend(
        [
            "--config",
            config.to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ]
        .map(String::from),
    );
    args
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bad_config_exits_nonzero_listing_every_problem_by_path() {
    let dir = tempdir();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "providers:\n  compat: { type: openai-compatible }\nroutes:\n  - { models: [\"x\"], provider: nowhere }\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["--config", path.to_str().expect("path"), "--check"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("providers.compat.base_url: required for type openai-compatible"),
        "{stderr}"
    );
    assert!(
        stderr.contains("routes[0].provider: unknown provider `nowhere`; known: compat"),
        "{stderr}"
    );
}

#[test]
fn help_documents_flags_and_environment() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config",
        "--port",
        "AI_GATEWAY_PORT",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "AWS_REGION",
        "GOOGLE_API_KEY",
        "RATE_LIMIT_RPM",
        "AUDIT_LOG_LEVEL",
        "AI_GATEWAY_LOG_LEVEL",
        "HTTPS_PROXY",
        "NO_PROXY",
        "--admin-token",
        "--listen",
        "--admin-listen",
        "--drain-seconds",
        "--check",
        "--log-json",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

#[tokio::test]
async fn example_config_starts_with_no_keys_and_says_which_providers_are_inactive() {
    let mut gw = Running::start(&repo_path("config/example.yaml"));
    let inactive = gw.wait_for_log("provider=anthropic");
    assert!(
        inactive.contains("inactive") && inactive.contains("ANTHROPIC_API_KEY"),
        "{inactive}"
    );
    for path in ["/health", "/v1/models", "/v1/providers"] {
        let resp = client()
            .get(format!("{}{path}", gw.api))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200, "{path}");
    }
    let providers: Value = client()
        .get(format!("{}/v1/providers", gw.api))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let local = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["name"] == "local")
        .expect("local");
    assert_eq!(local["status"], "active", "Ollama needs no key");
    for path in ["/healthz", "/readyz"] {
        let resp = client()
            .get(format!("{}{path}", gw.admin))
            .send()
            .await
            .expect("admin answers");
        assert_eq!(resp.status(), 200, "{path}");
    }
    let ready = get_json(format!("{}/readyz", gw.admin)).await;
    assert_eq!(ready["ready"], true);
    for provider in ["openai", "bedrock", "gemini"] {
        let line = gw.wait_for_log(&format!("provider={provider}"));
        assert!(line.contains("inactive"), "{line}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn get_json(url: String) -> Value {
    client()
        .get(url)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json")
}

/// No config file: the variables workspaces already set each switch on what they name.
#[tokio::test]
async fn without_a_config_file_the_environment_variables_configure_the_gateway() {
    // Port 0: the kernel picks one, which is not the default 8090.
    let gw = Running::start_from_environment(&[
        ("AI_GATEWAY_PORT", "0"),
        ("AI_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0"),
        ("ANTHROPIC_API_KEY", "sk-ant-from-env"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret-from-env"),
        ("AWS_REGION", "eu-west-3"),
        ("GOOGLE_API_KEY", "google-from-env"),
        ("RATE_LIMIT_RPM", "2"),
    ]);
    assert!(
        !gw.api.ends_with(":8090"),
        "AI_GATEWAY_PORT was read: {}",
        gw.api
    );
    let providers = get_json(format!("{}/v1/providers", gw.api)).await;
    let provider = |name: &str| {
        providers["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {providers}"))
            .clone()
    };
    for name in ["anthropic", "bedrock", "gemini", "local"] {
        assert_eq!(provider(name)["status"], "active", "{name}");
    }
    assert_eq!(provider("bedrock")["region"], "eu-west-3");
    // Where a provider lives is not shown to callers.
    assert!(provider("bedrock").get("base_url").is_none());
    let openai = provider("openai");
    assert_eq!(openai["status"], "inactive");
    assert!(openai["reason"]
        .as_str()
        .expect("reason")
        .contains("OPENAI_API_KEY"));

    // RATE_LIMIT_RPM=2: the third call in a minute is refused before any provider.
    // (The first two reach for an Ollama that is not running here.)
    crate::fakes::within_one_rate_window().await;
    let call = || {
        client()
            .post(format!("{}/v1/chat/completions", gw.api))
            .json(&serde_json::json!({"model": "local:llama3.2", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    for _ in 0..2 {
        let status = call().await.expect("answers").status();
        assert_ne!(status, 429);
    }
    let refused = call().await.expect("answers");
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
}

#[test]
fn a_rate_limit_rpm_that_is_not_a_number_stops_the_start() {
    let out = Command::new(BIN)
        .arg("--check")
        .env_clear()
        .env("RATE_LIMIT_RPM", "sixty")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RATE_LIMIT_RPM: `sixty` is not a whole number"),
        "{stderr}"
    );
}

/// A log level of warn keeps warnings (an inactive provider) and drops info lines,
/// set by AI_GATEWAY_LOG_LEVEL or by the users' AUDIT_LOG_LEVEL; the first wins.
#[tokio::test]
async fn the_log_level_sets_what_the_log_keeps() {
    for levels in [
        &[("AUDIT_LOG_LEVEL", "warn")][..],
        &[("AI_GATEWAY_LOG_LEVEL", "warn")],
        &[
            ("AI_GATEWAY_LOG_LEVEL", "warn"),
            ("AUDIT_LOG_LEVEL", "info"),
        ],
    ] {
        let port = free_port().to_string();
        // Killed however the test ends.
        let data_dir = tempdir();
        let mut child = tokio::process::Command::new(BIN)
            .env_clear()
            .env("AI_GATEWAY_DATA_DIR", data_dir.path())
            .env("AI_GATEWAY_PORT", &port)
            .env("AI_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0")
            .envs(levels.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("binary starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = format!("http://127.0.0.1:{port}/health");
        while client().get(&health).send().await.is_err() {
            assert!(Instant::now() < deadline, "the gateway never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.start_kill();
        let out = child.wait_with_output().await.expect("exits");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("provider inactive"), "{levels:?}: {log}");
        assert!(!log.contains("ai-gateway listening"), "{levels:?}: {log}");
    }
}

/// Starts a streamed Messages call; resolves once its first bytes are in. The task
/// yields the whole body, and `finished` turns true when it has it.
async fn stream_in_flight(
    api: &str,
) -> (
    tokio::task::JoinHandle<Vec<u8>>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (first_bytes, arrived) = tokio::sync::oneshot::channel();
    let url = format!("{api}/v1/claude/v1/messages");
    let done = finished.clone();
    let task = tokio::spawn(async move {
        let mut resp = client()
            .post(url)
            .json(&serde_json::json!({"model": "claude-x", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answers");
        let mut body = Vec::new();
        let mut first_bytes = Some(first_bytes);
        while let Ok(Some(chunk)) = resp.chunk().await {
            body.extend_from_slice(&chunk);
            if let Some(tx) = first_bytes.take() {
                let _ = tx.send(());
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        body
    });
    arrived.await.expect("the stream started");
    (task, finished)
}

/// Waits until the API listener refuses new connections.
async fn until_refused(api: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while client().get(format!("{api}/health")).send().await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn config_change_applies_without_disturbing_a_stream_and_sigterm_drains_it() {
    let stream = fixture("upstream/anthropic/stream_text.sse");
    // The last event comes 8 s after the rest: the reload (polled each second) and
    // SIGTERM both land while the stream is still going.
    let reply = Reply {
        stall_before_last: Some(Duration::from_secs(8)),
        ..Reply::sse(&stream)
    };
    let upstream = FakeUpstream::start(move |_| reply.clone()).await;
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    let audit = dir.path().join("audit.jsonl");
    let config = |extra: &str| {
        format!(
            "audit: {{ sink: file, path: \"{}\" }}\nproviders:\n  anthropic: {{ type: anthropic, base_url: \"{}\", api_key: k }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: anthropic }}\n{extra}",
            audit.display(),
            upstream.url()
        )
    };
    std::fs::write(&path, config("")).expect("write");
    let mut gw = Running::start(&path);

    let (in_flight, finished) = stream_in_flight(&gw.api).await;
    std::fs::write(&path, config("  - { models: [\"sonnet\"], provider: anthropic, upstream_model: claude-sonnet-4-5 }\n")).expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let models = get_json(format!("{}/v1/models", gw.api)).await;
        if models["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m["id"] == "sonnet"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the new route never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reloaded_mid_stream = !finished.load(std::sync::atomic::Ordering::SeqCst);
    gw.terminate();
    until_refused(&gw.api).await;
    assert!(
        reloaded_mid_stream && !finished.load(std::sync::atomic::Ordering::SeqCst),
        "the reload and SIGTERM came while the stream was in flight"
    );
    let body = in_flight.await.expect("task");
    assert_eq!(
        &body[..],
        &stream[..],
        "the in-flight stream survived the reload and the drain"
    );
    let _ = gw.wait_for_log("stopped");
    let status = gw.child.wait().expect("exits");
    assert!(status.success(), "{status}");
    // The stream finished during the drain; its record is written before the exit.
    let records = std::fs::read_to_string(&audit).expect("audit file");
    let last: Value =
        serde_json::from_str(records.lines().last().expect("a record")).expect("JSON");
    assert_eq!(last["endpoint"], "claude.messages");
    assert_eq!(last["stream"], true);
    assert_eq!(last["abandoned"], false);
}

/// A bad edit to the file is refused with its problems named; the gateway keeps
/// serving the last good config, and the next good edit applies.
#[tokio::test]
async fn a_bad_config_edit_keeps_the_last_good_config() {
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    let routes = |models: &str| {
        format!("providers:\n  local: {{ type: ollama }}\nroutes:\n  - {{ models: [{models}], provider: local }}\n")
    };
    std::fs::write(&path, routes("\"first\"")).expect("write");
    let mut gw = Running::start(&path);
    let api = gw.api.clone();
    let model_ids = || async {
        let models = get_json(format!("{api}/v1/models")).await;
        models["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(model_ids().await, ["first"]);
    std::fs::write(
        &path,
        "providers:\n  local: { type: ollama }\nroutes:\n  - { models: [\"second\"], provider: nowhere }\n",
    )
    .expect("write");
    gw.wait_for_log("config change rejected");
    gw.wait_for_log("routes[0].provider: unknown provider `nowhere`");
    assert_eq!(
        model_ids().await,
        ["first"],
        "the last good config still serves"
    );
    std::fs::write(&path, routes("\"third\"")).expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    while model_ids().await != ["third"] {
        assert!(Instant::now() < deadline, "the good edit never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A stream that outlasts `--drain-seconds` is cut, and the process still exits.
#[tokio::test]
async fn the_drain_ends_at_its_deadline() {
    let reply = Reply {
        stall_before_last: Some(Duration::from_secs(60)),
        ..Reply::sse(&fixture("upstream/anthropic/stream_text.sse"))
    };
    let upstream = FakeUpstream::start(move |_| reply.clone()).await;
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "providers:\n  anthropic: {{ type: anthropic, base_url: \"{}\", api_key: k }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: anthropic }}\n",
            upstream.url()
        ),
    )
    .expect("write");
    let mut gw = Running::start_with(&path, &["--drain-seconds", "1"]);
    let (in_flight, _) = stream_in_flight(&gw.api).await;
    let signalled = Instant::now();
    gw.terminate();
    let _ = gw.wait_for_log("drain timed out");
    let _ = gw.wait_for_log("stopped");
    let status = gw.child.wait().expect("exits");
    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
    let body = String::from_utf8(in_flight.await.expect("task")).expect("utf8");
    assert!(
        !body.contains("message_stop"),
        "the held-back end never came: {body}"
    );
}

/// A config in `dir` routing `gpt-*` to `upstream` as an OpenAI-compatible provider.
fn local_openai_config(dir: &Path, upstream: &FakeUpstream) -> PathBuf {
    let path = dir.join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "providers:\n  local: {{ type: openai-compatible, base_url: \"{}/v1\" }}\nroutes:\n  - {{ models: [\"gpt-*\"], provider: local }}\n",
            upstream.url()
        ),
    )
    .expect("write");
    path
}

/// Pinned to one CPU the binary runs a single-threaded runtime; plain answers and
/// streams must be served the same.
#[tokio::test]
async fn on_one_core_the_gateway_serves_plain_answers_and_streams() {
    let upstream = fake_openai().await;
    let dir = tempdir();
    let path = local_openai_config(dir.path(), &upstream);
    let gw = Running::start_on_one_core(&path, &[]);
    let listening = gw
        .seen
        .iter()
        .find(|l| l.contains("ai-gateway listening"))
        .cloned();
    assert!(
        listening
            .as_deref()
            .is_some_and(|l| l.contains("workers=1")),
        "{listening:?}"
    );
    let url = format!("{}/v1/chat/completions", gw.api);
    let plain: Value = client()
        .post(&url)
        .json(
            &serde_json::json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(plain["object"], "chat.completion", "{plain}");
    let calls = (0..8).map(|_| {
        client()
            .post(&url)
            .json(&serde_json::json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    });
    for answer in futures_util::future::join_all(calls).await {
        let text = answer
            .expect("answers")
            .text()
            .await
            .expect("stream completes");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }
}

/// This process's hard open-file limit, which a child inherits (`u64::MAX`: unlimited).
fn hard_open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX)
}

/// Sets this process's open-file soft limit, and lowers its hard limit to `hard`.
fn set_open_file_limit(soft: u64, hard: Option<u64>) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = hard.or(getrlimit(Resource::Nofile).maximum);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard.map_or(soft, |h| soft.min(h))),
            maximum: hard,
        },
    );
}

/// Started with the 1,024-style soft limit of a container runtime, the gateway raises
/// it to the hard limit and serves more connections at once than the soft limit had
/// descriptors for; before, `accept` failed past it and those callers hung.
#[tokio::test]
async fn a_low_open_file_limit_is_raised_so_connections_past_it_are_served() {
    const SOFT: u64 = 64;
    const HELD: usize = 300;
    let hard = hard_open_file_limit();
    if hard < 4 * HELD as u64 {
        eprintln!("SKIPPED: this machine's hard open-file limit is {hard}");
        return;
    }
    // This test's connections beside the other tests' in this process, whatever soft
    // limit the test runner was started with.
    set_open_file_limit(hard.min(1 << 20), None);
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, "providers: {}\nroutes: []\n").expect("write");
    let gw = Running::start_with_open_files(&path, SOFT, None);
    let listening = gw
        .seen
        .iter()
        .find(|l| l.contains("ai-gateway listening"))
        .cloned()
        .unwrap_or_default();
    let expected = hard.min(1 << 20);
    assert!(
        listening.contains(&format!("open_files={expected}")),
        "the limit in force is the hard limit {expected}: {listening}"
    );
    let address = gw.api.trim_start_matches("http://").to_string();
    let mut held = Vec::with_capacity(HELD);
    for i in 0..HELD {
        let (connection, answered) = health_on_new_connection(&address).await;
        assert!(
            answered,
            "connection {i} of {HELD} (soft limit {SOFT}) closed before its answer"
        );
        held.push(connection);
    }
    // The scrape says how close the gateway is to its limit: the limit, and the open
    // connections as the idle sweep (every 5 s) counted them.
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let text = gw.metrics().await;
        if text.contains(&format!("ai_gateway_open_connections {HELD}\n"))
            || Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let value = |name: &str| -> Option<u64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(
        value("ai_gateway_open_connections"),
        Some(HELD as u64),
        "{metrics}"
    );
    assert_eq!(value("process_max_fds"), Some(expected), "{metrics}");
    let resident = value("process_resident_memory_bytes").unwrap_or(0);
    assert!(
        (1 << 20..1 << 30).contains(&resident),
        "resident {resident}: {metrics}"
    );
}

/// What a connection sent `GET /health` gets: answered 200, or closed unanswered; a
/// connection left hanging fails the test.
async fn health_on_new_connection(address: &str) -> (tokio::net::TcpStream, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut connection = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    // A connection closed at accept may refuse the write as well as the read.
    let _ = connection
        .write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await;
    let mut head = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match connection.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        true
    })
    .await
    .expect("an answer or a close, not a hang");
    if read {
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
    }
    (connection, read)
}

/// A flood of connections past what the open-file limit can serve is closed at the
/// door, and the descriptors kept back still carry the calls of the callers already in:
/// without the cap, callers past the limit hung at `accept` and calls needing a new
/// provider connection failed.
#[tokio::test]
async fn a_flood_of_connections_leaves_descriptors_for_the_calls_already_in() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const LIMIT: u64 = 256;
    // All but a sixteenth, at least 64 kept back.
    const CAP: usize = 192;
    const FLOOD: usize = 250;
    if hard_open_file_limit() < 4 * FLOOD as u64 {
        eprintln!(
            "SKIPPED: this machine's hard open-file limit is below {}",
            4 * FLOOD
        );
        return;
    }
    set_open_file_limit(hard_open_file_limit().min(1 << 20), None);
    let upstream = fake_openai().await;
    let dir = tempdir();
    let path = local_openai_config(dir.path(), &upstream);
    let gw = Running::start_with_open_files(&path, LIMIT, Some(LIMIT));
    let address = gw.api.trim_start_matches("http://").to_string();
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..FLOOD {
        match health_on_new_connection(&address).await {
            (connection, true) => served.push(connection),
            (_, false) => refused += 1,
        }
    }
    assert_eq!(
        (served.len(), refused),
        (CAP, FLOOD - CAP),
        "served, refused"
    );
    // A caller already in still reaches the provider, on a connection dialled now.
    let body = r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#;
    let call = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let connection = &mut served[0];
    connection.write_all(call.as_bytes()).await.expect("sends");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut answer))
        .await
        .expect("answered")
        .expect("reads");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(&format!(
            "ai_gateway_connections_refused_total {}\n",
            FLOOD - CAP
        )),
        "{metrics}"
    );
}

/// HTTPS_PROXY carries calls to https providers through a CONNECT tunnel, with the
/// proxy's credentials; NO_PROXY hosts and plain-http providers are dialled directly.
#[tokio::test]
async fn https_providers_are_reached_through_the_egress_proxy() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = proxy.local_addr().expect("addr");
    let (heads_tx, mut heads) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = proxy.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = heads_tx.send(String::from_utf8_lossy(&head).to_lowercase());
            // This proxy lets nothing out.
            let _ = conn
                .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let local =
        FakeUpstream::start(|_| Reply::json(200, fixture("upstream/openai/chat_text.json"))).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "providers:\n  \
               openai: {{ type: openai, base_url: \"https://api.openai.test/v1\", api_key: sk-real }}\n  \
               internal: {{ type: openai, base_url: \"https://localhost:{closed_port}/v1\", api_key: sk-internal }}\n  \
               local: {{ type: openai-compatible, base_url: \"{}/v1\" }}\n\
             routes:\n  \
               - {{ models: [\"gpt-*\"], provider: openai }}\n  \
               - {{ models: [\"internal-*\"], provider: internal }}\n  \
               - {{ models: [\"local-*\"], provider: local }}\n",
            local.url()
        ),
    )
    .expect("write");
    let proxy_url = format!("http://egress:s3cret@{proxy_addr}");
    let gw = Running::launch(
        Command::new(BIN),
        &with_config(&path, &[]),
        &[
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("HTTP_PROXY", proxy_url.as_str()),
            ("NO_PROXY", "localhost"),
        ],
    );
    let call = |model: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", gw.api))
            .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };

    let refused = call("gpt-4o").await.expect("answers");
    assert_eq!(refused.status(), 502);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    let head = tokio::time::timeout(Duration::from_secs(5), heads.recv())
        .await
        .expect("the proxy was asked")
        .expect("head");
    assert!(
        head.starts_with("connect api.openai.test:443 http/1.1\r\n"),
        "{head}"
    );
    let basic = format!("proxy-authorization: basic {}", base64_of("egress:s3cret")).to_lowercase();
    assert!(head.contains(&basic), "{head}");
    assert!(
        !head.contains("sk-real"),
        "the provider key travels only inside TLS"
    );

    // NO_PROXY: dialled directly (nothing listens there), never through the proxy.
    assert_eq!(call("internal-1").await.expect("answers").status(), 502);
    // Plain http: direct.
    assert_eq!(call("local-1").await.expect("answers").status(), 200);
    assert_eq!(local.received().len(), 1);
    // Retries of the refused call come back to the proxy; nothing else does.
    while let Ok(head) = heads.try_recv() {
        assert!(head.starts_with("connect api.openai.test:443 "), "{head}");
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The official SDKs and Claude Code, unmodified, through the gateway to a fake
/// provider. `.ci/run` installs them; elsewhere the test says it skipped.
#[tokio::test]
async fn official_clients_work_through_the_gateway() {
    if !python_has(&["openai", "anthropic"]) {
        return;
    }
    let fake = PythonFake::start("fake_anthropic_capture.py", &[]);
    let port = fake.port.clone();
    let upstream = format!("http://127.0.0.1:{port}");
    let gw = TestGateway::start(&format!(
        "providers:\n  anthropic: {{ type: anthropic, base_url: \"{upstream}\", api_key: sk-ant-real }}\n  openai: {{ type: openai, base_url: \"{upstream}/v1\", api_key: sk-openai-real }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: anthropic }}\n  - {{ models: [\"gpt-*\"], provider: openai }}\n"
    ))
    .await;

    let runs: [(&str, String, &str); 3] = [
        (
            "openai_sdk.py",
            format!("{}/v1", gw.url),
            "claude-sonnet-4-5",
        ),
        (
            "anthropic_sdk.py",
            format!("{}/v1/claude", gw.url),
            "claude-sonnet-4-5",
        ),
        (
            "anthropic_sdk.py",
            format!("{}/v1/claude", gw.url),
            "gpt-4o",
        ),
    ];
    for (script, base, model) in runs {
        let cases = run_client(script, &[base.as_str(), "gw-test-key", model]).await;
        assert!(cases.len() >= 4, "{script}: {cases:?}");
        assert!(
            cases.iter().any(
                |c| c["tool_calls"].as_array().is_some_and(|t| !t.is_empty())
                    || c["tool_uses"].as_array().is_some_and(|t| !t.is_empty())
            ),
            "{script} {model}: a tool call came back\n{cases:?}"
        );
    }
    let sdk_requests = fake.requests();
    assert!(sdk_requests
        .iter()
        .any(|r| r["path"] == "/v1/chat/completions"));
    for r in &sdk_requests {
        assert!(
            !r["headers"].to_string().contains("gw-test-key"),
            "the caller's key reached the provider: {r}"
        );
        let path = r["path"].as_str().unwrap_or("");
        if path.starts_with("/v1/messages") {
            assert_eq!(recorded_header(r, "x-api-key"), Some("sk-ant-real"), "{r}");
            // The SDK's own version passes through; translated calls carry the gateway's.
            assert!(recorded_header(r, "anthropic-version").is_some(), "{r}");
        } else if path.starts_with("/v1/chat/completions") {
            assert_eq!(
                recorded_header(r, "authorization"),
                Some("Bearer sk-openai-real"),
                "{r}"
            );
        }
    }

    if let Some(claude) = claude_code_cli() {
        let base = format!("{}/v1/claude", gw.url);
        claude_says_hi(
            &claude,
            &[
                ("ANTHROPIC_BASE_URL", &base),
                ("ANTHROPIC_API_KEY", "gw-test-key"),
            ],
        )
        .await;
        let from_claude = fake.requests().split_off(sdk_requests.len());
        let turn = from_claude
            .iter()
            .find(|r| r["path"] == "/v1/messages?beta=true")
            .unwrap_or_else(|| panic!("Claude Code's turn reached Anthropic: {from_claude:?}"));
        assert_eq!(recorded_header(turn, "x-api-key"), Some("sk-ant-real"));
        assert!(recorded_header(turn, "anthropic-beta").is_some_and(|b| !b.is_empty()));
        assert!(
            turn["body"]["model"]
                .as_str()
                .is_some_and(|m| m.starts_with("claude-")),
            "{turn}"
        );
        assert!(
            turn["body"]["system"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("x-anthropic-billing-header")),
            "Claude Code's attribution block as sent: {turn}"
        );
        assert!(
            turn["body"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "Claude Code's tools reach Anthropic"
        );
    }
    drop(fake);
}

/// The Claude Code CLI `.ci/run` installs (`CLAUDE_BIN`). `None`, said on stderr, where
/// it is missing; only a run outside CI may skip for that.
pub fn claude_code_cli() -> Option<PathBuf> {
    let claude = std::env::var("CLAUDE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root/.cache/claude-code/node_modules/.bin/claude"));
    if claude.exists() {
        return Some(claude);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install Claude Code"
    );
    eprintln!(
        "SKIPPED: Claude Code CLI not installed at {}",
        claude.display()
    );
    None
}

/// `claude -p "say hi"` with nothing of this process's environment but `PATH`, a home of
/// its own, no telemetry or retries, and `vars`; fails the test unless it succeeded and
/// printed an answer.
pub async fn claude_says_hi(claude: &std::path::Path, vars: &[(&str, &str)]) {
    let home = tempdir();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(claude)
            .args(["-p", "say hi"])
            .current_dir(&home)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("claude finishes")
    .expect("claude runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "claude -p failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.trim().is_empty());
}

/// A header of a request a Python fake recorded, whatever case the sender gave it.
pub fn recorded_header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// The profile-guided build trains on `dataplane/pgo/train.py`: every call in its mix
/// must still succeed, or the release build would learn error paths (or stop).
#[tokio::test]
async fn the_profile_training_load_runs_clean() {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(repo_path("pgo/train.py"))
            .args(["--gateway", BIN, "--calls", "3"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("training finishes")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "train.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("120 calls"), "{stdout}");
}

/// A directory of its own for one test, removed when the test ends.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ai-gateway-test-")
        .tempdir()
        .expect("tempdir")
}

/// Whether python3 can import these packages. CI installs them; elsewhere a test that
/// needs them says it skipped.
pub fn python_has(modules: &[&str]) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the python packages {modules:?}"
        );
        eprintln!("SKIPPED: python packages {modules:?} are not installed");
    }
    ok
}

/// One of the recording fakes in `tests/clients/`, on a free loopback port.
pub struct PythonFake {
    child: Child,
    pub port: String,
    pub record: PathBuf,
    _dir: tempfile::TempDir,
}

impl PythonFake {
    pub fn start(script: &str, args: &[&str]) -> Self {
        let dir = tempdir();
        let port_file = dir.path().join("port");
        let record = dir.path().join("requests.jsonl");
        let child = Command::new("python3")
            .arg(repo_path(&format!("tests/clients/{script}")))
            .args(["--port-file", port_file.to_str().expect("path")])
            .args(["--record", record.to_str().expect("path")])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("fake upstream starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .filter(|p| !p.trim().is_empty())
            {
                break p.trim().to_string();
            }
            assert!(Instant::now() < deadline, "fake upstream did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            port,
            record,
            _dir: dir,
        }
    }

    /// Every request the fake received, as it recorded them.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for PythonFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one of the real-client scripts in `tests/clients/` and returns the JSON line it
/// printed per case; fails the test with its output when the client failed.
pub async fn run_client(script: &str, args: &[&str]) -> Vec<Value> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(repo_path(&format!("tests/clients/{script}")))
            .args(args)
            // boto3 would prefer a bearer token from the environment over the keys given.
            .env_remove("AWS_BEARER_TOKEN_BEDROCK")
            .output(),
    )
    .await
    .expect("the client finishes")
    .expect("the client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The admin port serves metrics naming users and teams, and takes config pushes: by
/// default only this machine reaches it.
#[test]
fn the_admin_port_listens_on_loopback_unless_told_otherwise() {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("AI_GATEWAY_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    // /proc/net/tcp lists listeners as `local_address` hex `IP:PORT`; 8091 is 1F9B.
    let listening = || {
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .find(|local| local.ends_with(":1F9B"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        if let Some(local) = listening() {
            break local;
        }
        assert!(Instant::now() < deadline, "the admin port never listened");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found, "0100007F:1F9B", "admin bound to 127.0.0.1:8091");
}

/// The safe defaults: a gateway that would take anyone serves this machine only, and
/// the users' GATEWAY_API_KEY (one key or several) turns key auth on.
#[tokio::test]
async fn an_open_gateway_listens_on_loopback_and_gateway_api_key_closes_it() {
    let base = [
        ("AI_GATEWAY_PORT", "0"),
        ("AI_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0"),
    ];
    let open = Running::start_from_environment(&base);
    let listening = |r: &Running| {
        r.seen
            .iter()
            .find(|l| l.contains("ai-gateway listening"))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        listening(&open).contains("api=127.0.0.1:"),
        "{}",
        listening(&open)
    );
    drop(open);

    let mut env = base.to_vec();
    env.push(("GATEWAY_API_KEY", "gw-first-key, gw-second-key"));
    let keyed = Running::start_from_environment(&env);
    assert!(
        listening(&keyed).contains("api=0.0.0.0:"),
        "{}",
        listening(&keyed)
    );
    let usage = |key: Option<&'static str>| {
        let mut req = client().get(format!("{}/v1/usage", keyed.api));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        async move { req.send().await.expect("answers").status().as_u16() }
    };
    assert_eq!(usage(None).await, 401, "no key, no service");
    assert_eq!(usage(Some("gw-wrong")).await, 401);
    assert_eq!(usage(Some("gw-second-key")).await, 200);
    assert_eq!(usage(Some("gw-first-key")).await, 200);
}

/// The users' REDIS_URL in a zero-config start: limits counted in Redis, shared by
/// every gateway pointed at it, as the admin API reports.
#[tokio::test]
async fn redis_url_in_the_environment_shares_limits_through_redis() {
    let Some(redis) = crate::fakes::RedisServer::start_or_skip() else {
        return;
    };
    let env = [
        ("AI_GATEWAY_PORT", "0"),
        ("AI_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0"),
        ("AI_GATEWAY_ADMIN_TOKEN", "admin-t"),
        ("GATEWAY_API_KEY", "gw-shared-key"),
        ("REDIS_URL", redis.url.as_str()),
    ];
    let gw = Running::start_from_environment(&env);
    let limits =
        crate::fakes::get_json(format!("{}/admin/v1/limits", gw.admin), Some("admin-t")).await;
    assert_eq!(limits["store"], "redis", "{limits}");
    let usage = client()
        .get(format!("{}/v1/usage", gw.api))
        .bearer_auth("gw-shared-key")
        .send()
        .await
        .expect("answers");
    assert_eq!(usage.status(), 200, "the ledger is read from Redis");
}
