//! `kubectl aigw` against kube's mock API service: every request the CLI sends is
//! answered here in order, asserting the exact objects it writes and what a user sees.

use ai_gateway_operator::cli::{self, Cli, CliError, Command};
use ai_gateway_operator::namespace::Namespace;
use base64::Engine;
use clap::Parser;
use http::{HeaderMap, Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::task::JoinHandle;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NS: &str = "ai";
const GW: &str = "ai-gateway";
const GW_PATH: &str = "/apis/ai-gateway.dev/v1alpha1/namespaces/ai/aigateways/ai-gateway";
const SECRETS: &str = "/api/v1/namespaces/ai/secrets";
const PROXY: &str = "/api/v1/namespaces/ai/services/ai-gateway:http/proxy";

struct Seen {
    uri: String,
    headers: HeaderMap,
    body: Value,
}

/// Plays the API server: one expected request at a time.
struct ApiServer(Handle);

impl ApiServer {
    async fn expect(&mut self, method: &str, path: &str, status: u16, reply: Value) -> Seen {
        let (req, send) = tokio::time::timeout(Duration::from_secs(10), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("the CLI never sent {method} {path}"))
            .expect("the mock service closed");
        let uri = req.uri().to_string();
        assert_eq!(req.method().as_str(), method, "for {uri}");
        assert!(
            uri == path || uri.starts_with(&format!("{path}?")),
            "expected {method} {path}, got {uri}"
        );
        let headers = req.headers().clone();
        let bytes = req.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request body is JSON")
        };
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                .expect("response"),
        );
        Seen { uri, headers, body }
    }

    /// Asserts the CLI sent nothing more.
    async fn done(&mut self) {
        let more = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        if let Ok(Some((req, _))) = more {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

struct Outcome {
    result: Result<(), CliError>,
    out: String,
    err: String,
}

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("kubectl-aigw").chain(args.iter().copied()))
        .expect("arguments parse")
}

fn start(cli: Cli) -> (JoinHandle<Outcome>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let task = tokio::spawn(async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = cli::run(&cli, client, &mut out, &mut err).await;
        Outcome {
            result,
            out: String::from_utf8(out).expect("utf-8"),
            err: String::from_utf8(err).expect("utf-8"),
        }
    });
    (task, ApiServer(handle))
}

async fn finish(task: JoinHandle<Outcome>, api: &mut ApiServer) -> Outcome {
    let outcome = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the CLI finished")
        .expect("no panic");
    api.done().await;
    outcome
}

fn gateway(key_selector: Option<&str>) -> Value {
    let mut auth = json!({"mode": "keys"});
    if let Some(selector) = key_selector {
        auth["keySelector"] = json!(selector);
    }
    json!({
        "apiVersion": "ai-gateway.dev/v1alpha1",
        "kind": "AIGateway",
        "metadata": {"name": GW, "namespace": NS, "uid": "gw-uid"},
        "spec": {"replicas": 2, "auth": auth},
    })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "code": code, "reason": reason, "message": message})
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

fn key_secret(name: &str, labels: Value, key: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "creationTimestamp": "2025-06-01T09:30:00Z", "labels": labels},
        "type": "Opaque",
        "data": {"key": b64(key)},
    })
}

/// The snapshot keys compile() makes of a gateway and the given Secrets.
fn compiled_keys(gateway: &Value, secrets: &[Value]) -> Vec<ai_gateway_snapshot::ApiKey> {
    let ns = Namespace {
        gateways: vec![serde_json::from_value(gateway.clone()).expect("gateway")],
        secrets: secrets
            .iter()
            .map(|s| serde_json::from_value(s.clone()).expect("secret"))
            .collect(),
        ..Default::default()
    };
    ns.compile(GW).expect("compiles").snapshot.auth.keys
}

/// The indented `gw_…` line the CLI prints under "created".
fn printed_key(out: &str) -> String {
    let keys: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("gw_"))
        .collect();
    assert_eq!(keys.len(), 1, "the key is printed exactly once:\n{out}");
    keys[0].to_string()
}

#[tokio::test]
async fn create_writes_a_labelled_key_secret_and_prints_the_plaintext_once() {
    let (task, mut api) = start(parse(&[
        "-n",
        NS,
        "keys",
        "create",
        "--user",
        "alice",
        "--team",
        "platform",
        "--workspace",
        "dev-alice",
    ]));
    api.expect("GET", GW_PATH, 200, gateway(None)).await;
    let post = api
        .expect("POST", SECRETS, 201, json!({"kind": "Secret"}))
        .await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("created");

    assert!(
        post.uri.contains("fieldManager=kubectl-aigw"),
        "{}",
        post.uri
    );
    let secret = &post.body;
    let name = secret["metadata"]["name"].as_str().expect("a name");
    assert!(name.starts_with("key-alice-"), "{name}");
    assert_eq!(secret["metadata"]["namespace"], NS);
    assert_eq!(
        secret["metadata"]["labels"],
        json!({
            "ai-gateway.dev/key": "true",
            "ai-gateway.dev/user": "alice",
            "ai-gateway.dev/team": "platform",
            "ai-gateway.dev/workspace": "dev-alice",
        })
    );
    assert_eq!(secret["type"], "Opaque");
    assert!(secret.get("stringData").is_none());
    let data = secret["data"].as_object().expect("data");
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        vec!["key"],
        "no SigV4 secret unasked"
    );
    let plaintext = unb64(&data["key"]);
    assert!(plaintext.starts_with("gw_"), "{plaintext}");
    assert_eq!(plaintext.len(), 3 + 64);
    assert!(plaintext[3..].chars().all(|c| c.is_ascii_hexdigit()));
    // The plaintext lives only in the Secret's data, never in its metadata.
    assert!(!secret["metadata"].to_string().contains(&plaintext[3..]));

    assert_eq!(printed_key(&outcome.out), plaintext);
    assert!(outcome
        .out
        .contains(&format!("key/{name} created in namespace ai")));
    assert!(outcome.out.contains("only time"), "{}", outcome.out);

    // What the operator puts in the snapshot identifies the caller by that key.
    let keys = compiled_keys(&gateway(None), std::slice::from_ref(secret));
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, name);
    assert_eq!(keys[0].sha256, cli::key_sha256(&plaintext));
    use sha2::Digest;
    assert_eq!(
        keys[0].sha256,
        hex::encode(sha2::Sha256::digest(printed_key(&outcome.out).as_bytes()))
    );
    assert_eq!(keys[0].user.as_deref(), Some("alice"));
    assert_eq!(keys[0].team.as_deref(), Some("platform"));
    assert_eq!(keys[0].workspace.as_deref(), Some("dev-alice"));
    assert_eq!(keys[0].sigv4_secret, None);
}

#[tokio::test]
async fn create_with_sigv4_issues_a_pair_the_gateway_accepts_under_its_own_selector() {
    let gw = gateway(Some("team-keys=yes"));
    let (task, mut api) = start(parse(&[
        "-n",
        NS,
        "-o",
        "json",
        "keys",
        "create",
        "--user",
        "contractor1",
        "--sigv4",
        "--name",
        "contractor1-bedrock",
    ]));
    api.expect("GET", GW_PATH, 200, gw.clone()).await;
    let post = api
        .expect("POST", SECRETS, 201, json!({"kind": "Secret"}))
        .await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("created");

    let secret = &post.body;
    assert_eq!(secret["metadata"]["name"], "contractor1-bedrock");
    // The gateway's own key selector, not the default label.
    assert_eq!(
        secret["metadata"]["labels"],
        json!({"team-keys": "yes", "ai-gateway.dev/user": "contractor1"})
    );
    let printed: Value = serde_json::from_str(&outcome.out).expect("JSON output");
    assert_eq!(printed["name"], "contractor1-bedrock");
    assert_eq!(printed["user"], "contractor1");
    assert_eq!(
        printed["key"].as_str(),
        Some(unb64(&secret["data"]["key"]).as_str())
    );
    let pair = &printed["sigv4"];
    assert_eq!(pair["aws_access_key_id"], "contractor1-bedrock");
    let aws_secret = pair["aws_secret_access_key"].as_str().expect("secret");
    assert_eq!(unb64(&secret["data"]["sigv4-secret"]), aws_secret);

    let keys = compiled_keys(&gw, std::slice::from_ref(secret));
    assert_eq!(keys.len(), 1, "not dropped as weak or unselected");
    assert_eq!(keys[0].id, "contractor1-bedrock", "the access key id");
    assert_eq!(keys[0].sigv4_secret.as_deref(), Some(aws_secret));
    assert_eq!(
        keys[0].sha256,
        cli::key_sha256(printed["key"].as_str().expect("key"))
    );
}

#[tokio::test]
async fn create_rejects_an_email_as_user_before_touching_the_cluster() {
    let (task, mut api) = start(parse(&["keys", "create", "--user", "alice@example.com"]));
    let outcome = finish(task, &mut api).await;
    let err = outcome.result.expect_err("refused");
    assert!(
        matches!(err, CliError::Invalid { what: "user", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no `@`"), "{err}");
}

#[tokio::test]
async fn create_reports_a_missing_gateway_and_a_taken_name() {
    let (task, mut api) = start(parse(&["-n", NS, "keys", "create", "--user", "bob"]));
    api.expect(
        "GET",
        GW_PATH,
        404,
        status(404, "NotFound", "aigateways \"ai-gateway\" not found"),
    )
    .await;
    let outcome = finish(task, &mut api).await;
    let err = outcome.result.expect_err("no gateway");
    assert!(matches!(err, CliError::NoGateway { .. }), "{err}");
    assert!(err.to_string().contains("namespace `ai`"), "{err}");

    let (task, mut api) = start(parse(&[
        "-n", NS, "keys", "create", "--user", "bob", "--name", "bob-key",
    ]));
    api.expect("GET", GW_PATH, 200, gateway(None)).await;
    api.expect(
        "POST",
        SECRETS,
        409,
        status(409, "AlreadyExists", "secrets \"bob-key\" already exists"),
    )
    .await;
    let outcome = finish(task, &mut api).await;
    let err = outcome.result.expect_err("taken");
    assert!(
        matches!(&err, CliError::NameTaken(n) if n == "bob-key"),
        "{err}"
    );
    assert!(outcome.out.is_empty(), "no key printed: {}", outcome.out);
}

fn listed_secrets() -> Vec<Value> {
    let alice = json!({"ai-gateway.dev/key": "true", "ai-gateway.dev/user": "alice", "ai-gateway.dev/team": "platform"});
    let mut no_data = key_secret(
        "broken",
        json!({"ai-gateway.dev/key": "true", "ai-gateway.dev/user": "carol"}),
        "",
    );
    no_data["data"] = json!({});
    vec![
        key_secret("alice-key", alice.clone(), "gw_alice_secret_0123456789"),
        key_secret("alice-copy", alice, "gw_alice_secret_0123456789"),
        key_secret(
            "bob-key",
            json!({"ai-gateway.dev/key": "true", "ai-gateway.dev/user": "bob", "ai-gateway.dev/workspace": "dev-bob"}),
            "gw_bob_secret_9876543210",
        ),
        no_data,
    ]
}

#[tokio::test]
async fn list_shows_identities_and_why_a_key_is_not_loaded_but_never_a_key() {
    for format in ["table", "json"] {
        let (task, mut api) = start(parse(&["-n", NS, "-o", format, "keys", "list"]));
        api.expect("GET", GW_PATH, 200, gateway(None)).await;
        let list = api
            .expect(
                "GET",
                SECRETS,
                200,
                json!({"kind": "SecretList", "metadata": {"resourceVersion": "1"}, "items": listed_secrets()}),
            )
            .await;
        let outcome = finish(task, &mut api).await;
        outcome.result.expect("listed");
        assert!(
            list.uri
                .contains("labelSelector=ai-gateway.dev%2Fkey%3Dtrue"),
            "{}",
            list.uri
        );
        let out = &outcome.out;
        for secret in [
            "gw_alice_secret",
            "gw_bob_secret",
            "alice_secret",
            "bob_secret",
        ] {
            assert!(!out.contains(secret), "{format} output shows a key:\n{out}");
        }
        if format == "json" {
            let rows: Value = serde_json::from_str(out).expect("JSON");
            let names: Vec<&str> = rows
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|r| r["name"].as_str())
                .collect();
            assert_eq!(names, ["alice-copy", "alice-key", "bob-key", "broken"]);
            assert_eq!(rows[2]["user"], "bob");
            assert_eq!(rows[2]["workspace"], "dev-bob");
            assert_eq!(rows[2]["created"], "2025-06-01T09:30:00Z");
            assert_eq!(rows[2]["status"], "ok");
            // Sorted by name, as the operator keeps the first of two equal keys.
            assert_eq!(rows[0]["status"], "ok");
            assert_eq!(rows[1]["status"], "same key as alice-copy: not loaded");
            assert_eq!(rows[3]["status"], "missing `key` data: not loaded");
        } else {
            let lines: Vec<&str> = out.lines().collect();
            assert!(lines[0].starts_with("NAME"), "{out}");
            for header in ["USER", "TEAM", "WORKSPACE", "CREATED"] {
                assert!(lines[0].contains(header), "{out}");
            }
            let bob = lines
                .iter()
                .find(|l| l.starts_with("bob-key"))
                .expect("bob row");
            let cells: Vec<&str> = bob.split_whitespace().collect();
            assert_eq!(
                cells,
                [
                    "bob-key",
                    "bob",
                    "-",
                    "dev-bob",
                    "no",
                    "2025-06-01T09:30:00Z",
                    "ok"
                ]
            );
        }
    }
}

#[tokio::test]
async fn revoke_deletes_exactly_the_named_key_secret() {
    let (task, mut api) = start(parse(&["-n", NS, "keys", "revoke", "alice-key"]));
    api.expect("GET", GW_PATH, 200, gateway(None)).await;
    let secret = key_secret(
        "alice-key",
        json!({"ai-gateway.dev/key": "true", "ai-gateway.dev/user": "alice"}),
        "gw_alice",
    );
    api.expect("GET", &format!("{SECRETS}/alice-key"), 200, secret.clone())
        .await;
    let delete = api
        .expect("DELETE", &format!("{SECRETS}/alice-key"), 200, secret)
        .await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("revoked");
    // Only the Secret that was checked, not one recreated under its name meanwhile.
    assert_eq!(delete.body["preconditions"]["uid"], "uid-alice-key");
    assert!(outcome.out.contains("key/alice-key revoked (user alice)"));
    assert!(!outcome.out.contains("gw_alice"));
}

#[tokio::test]
async fn revoke_refuses_a_secret_that_is_not_a_key() {
    let (task, mut api) = start(parse(&["-n", NS, "keys", "revoke", "anthropic-creds"]));
    api.expect("GET", GW_PATH, 200, gateway(None)).await;
    let creds = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "anthropic-creds", "namespace": NS, "uid": "uid-creds"},
        "data": {"api-key": b64("sk-ant-upstream")},
    });
    api.expect("GET", &format!("{SECRETS}/anthropic-creds"), 200, creds)
        .await;
    // `finish` fails the test on any further request, i.e. a DELETE.
    let outcome = finish(task, &mut api).await;
    let err = outcome.result.expect_err("refused");
    assert!(
        matches!(&err, CliError::NotAKey { name, .. } if name == "anthropic-creds"),
        "{err}"
    );
    assert!(err.to_string().contains("ai-gateway.dev/key=true"), "{err}");
    assert!(!outcome.out.contains("sk-ant"));
}

#[tokio::test]
async fn revoke_of_a_missing_secret_says_so() {
    let (task, mut api) = start(parse(&["-n", NS, "keys", "revoke", "ghost"]));
    api.expect("GET", GW_PATH, 200, gateway(None)).await;
    api.expect(
        "GET",
        &format!("{SECRETS}/ghost"),
        404,
        status(404, "NotFound", "secrets \"ghost\" not found"),
    )
    .await;
    let outcome = finish(task, &mut api).await;
    let err = outcome.result.expect_err("missing");
    assert!(matches!(err, CliError::KeyNotFound { .. }), "{err}");
}

fn route(name: &str, gateway_ref: &str, kind: &str, conditions: Value) -> Value {
    json!({
        "apiVersion": "ai-gateway.dev/v1alpha1",
        "kind": "ProviderRoute",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {"gatewayRef": gateway_ref, "type": kind, "region": "us-east-1", "models": [format!("{name}-*")]},
        "status": {"conditions": conditions, "observedGeneration": 1},
    })
}

fn condition(t: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": t, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2025-06-01T09:30:00Z"})
}

fn routes() -> Value {
    json!({"kind": "ProviderRouteList", "metadata": {"resourceVersion": "1"}, "items": [
        route("claude", GW, "anthropic", json!([
            condition("Accepted", "True", "Accepted", ""),
            condition("ResolvedRefs", "True", "ResolvedRefs", ""),
        ])),
        route("bedrock", GW, "bedrock", json!([
            condition("Accepted", "True", "Accepted", ""),
            condition("ResolvedRefs", "False", "SecretNotFound", "Secret `aws-creds` does not exist in this namespace"),
        ])),
        route("elsewhere", "other-gateway", "openai", json!([])),
    ]})
}

const ROUTES: &str = "/apis/ai-gateway.dev/v1alpha1/namespaces/ai/providerroutes";

fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row {name}:\n{out}"))
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn providers_show_route_conditions_with_live_health() {
    let (task, mut api) = start(parse(&["-n", NS, "providers"]));
    api.expect("GET", ROUTES, 200, routes()).await;
    api.expect(
        "GET",
        &format!("{PROXY}/v1/providers"),
        200,
        json!({"object": "list", "data": [
            {"name": "claude", "type": "anthropic", "status": "active", "circuit": "open", "reason": null, "models": ["claude-*"]},
        ]}),
    )
    .await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("listed");
    let out = &outcome.out;
    assert!(out.lines().next().is_some_and(|h| h.contains("ACCEPTED")
        && h.contains("RESOLVEDREFS")
        && h.contains("LIVE")
        && h.contains("CIRCUIT")));
    assert_eq!(
        row(out, "claude"),
        [
            "claude",
            "anthropic",
            "claude-*",
            "1",
            "True",
            "True",
            "active",
            "open"
        ]
    );
    let bedrock = out
        .lines()
        .find(|l| l.starts_with("bedrock "))
        .expect("bedrock row");
    assert_eq!(
        bedrock.split_whitespace().collect::<Vec<_>>()[4..9],
        ["True", "False", "not", "loaded", "-"],
        "{bedrock}"
    );
    assert!(
        bedrock.contains("SecretNotFound: Secret `aws-creds` does not exist in this namespace"),
        "{bedrock}"
    );
    assert!(
        !out.contains("elsewhere"),
        "another gateway's route:\n{out}"
    );
    assert!(outcome.err.is_empty(), "{}", outcome.err);
}

#[tokio::test]
async fn providers_degrade_to_conditions_when_the_proxy_fails() {
    let (task, mut api) = start(parse(&["-n", NS, "providers"]));
    api.expect("GET", ROUTES, 200, routes()).await;
    api.expect(
        "GET",
        &format!("{PROXY}/v1/providers"),
        503,
        status(
            503,
            "ServiceUnavailable",
            "no endpoints available for service \"ai-gateway\"",
        ),
    )
    .await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("still lists the routes");
    assert_eq!(
        row(&outcome.out, "claude")[4..],
        ["True", "True", "unknown", "-"]
    );
    assert!(outcome.out.contains("SecretNotFound"));
    assert!(
        outcome.err.contains("live health is unavailable"),
        "{}",
        outcome.err
    );
    assert!(
        outcome
            .err
            .contains("no endpoints available for service \"ai-gateway\""),
        "{}",
        outcome.err
    );

    // JSON says the same without the note.
    let (task, mut api) = start(parse(&["-n", NS, "-o", "json", "providers"]));
    api.expect("GET", ROUTES, 200, routes()).await;
    api.expect(
        "GET",
        &format!("{PROXY}/v1/providers"),
        403,
        status(
            403,
            "Forbidden",
            "services \"ai-gateway:http\" is forbidden",
        ),
    )
    .await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("listed");
    let v: Value = serde_json::from_str(&outcome.out).expect("JSON");
    assert_eq!(v["routes"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["routes"][0]["name"], "bedrock", "sorted by name");
    assert_eq!(v["routes"][0]["conditions"][1]["reason"], "SecretNotFound");
    assert_eq!(v["routes"][1]["live"], Value::Null);
    assert!(v["live_error"]
        .as_str()
        .is_some_and(|e| e.contains("HTTP 403") && e.contains("forbidden")));
}

#[tokio::test]
async fn usage_calls_the_data_plane_with_the_callers_key() {
    let (task, mut api) = start(parse(&["-n", NS, "usage", "--key", "gw_alice_key"]));
    let usage = api
        .expect(
            "GET",
            &format!("{PROXY}/v1/usage"),
            200,
            json!({
                "user": "alice", "team": "platform", "workspace": null, "date": "2025-06-01",
                "today": {"requests": 12, "tokens_in": 3400, "tokens_out": 1200,
                          "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.042},
                "models": {"claude-sonnet-4-5": {"requests": 12, "tokens_in": 3400, "tokens_out": 1200,
                          "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.042}},
                "limit": {"requests_remaining": 48, "tokens_remaining": 95400},
            }),
        )
        .await;
    let limits = api
        .expect(
            "GET",
            &format!("{PROXY}/v1/limits"),
            200,
            json!({"user": "alice", "limits": [{
                "scope": "user", "key": "alice",
                "requests_per_minute": {"limit": 60, "used": 12, "remaining": 48, "reset_seconds": 31},
                "tokens_per_minute": null, "tokens_per_day": null,
                "concurrent_requests": null, "budget_usd_per_day": null,
            }]}),
        )
        .await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("usage");
    for seen in [&usage, &limits] {
        assert_eq!(
            seen.headers.get("x-api-key").and_then(|v| v.to_str().ok()),
            Some("gw_alice_key")
        );
        // The API server would consume `Authorization`; the key must not ride there.
        assert!(!seen
            .headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap_or_default().contains("gw_alice_key")));
    }
    let out = &outcome.out;
    assert!(
        out.contains("user alice   team platform   workspace -"),
        "{out}"
    );
    assert!(
        out.contains("today: 12 requests, 3400 tokens in, 1200 tokens out"),
        "{out}"
    );
    assert!(out.contains("$0.0420"), "{out}");
    assert!(
        out.contains("remaining: 48 requests, 95400 tokens"),
        "{out}"
    );
    assert_eq!(
        row(out, "claude-sonnet-4-5"),
        ["claude-sonnet-4-5", "12", "3400", "1200", "$0.0420"]
    );
    let limit = out
        .lines()
        .find(|l| l.contains("requests/minute"))
        .expect("a limit row");
    assert_eq!(
        limit.split_whitespace().collect::<Vec<_>>(),
        ["user", "alice", "requests/minute", "60", "12", "48", "31s"]
    );
    assert!(!out.contains("gw_alice_key"));
}

#[tokio::test]
async fn usage_without_a_key_or_with_a_rejected_one_says_so() {
    let mut no_key = parse(&["-n", NS, "usage"]);
    if let Command::Usage(args) = &mut no_key.command {
        args.key = None; // whatever the test environment holds in AI_GATEWAY_KEY
    }
    let (task, mut api) = start(no_key);
    let outcome = finish(task, &mut api).await;
    let err = outcome.result.expect_err("no key");
    assert!(matches!(err, CliError::NoKey), "{err}");
    assert!(err.to_string().contains("AI_GATEWAY_KEY"));

    let (task, mut api) = start(parse(&["-n", NS, "usage", "--key", "gw_revoked"]));
    api.expect(
        "GET",
        &format!("{PROXY}/v1/usage"),
        401,
        json!({"error": {"message": "invalid gateway key", "type": "authentication_error", "param": null, "code": "invalid_api_key"}}),
    )
    .await;
    let outcome = finish(task, &mut api).await;
    let err = outcome.result.expect_err("rejected");
    assert_eq!(
        err.to_string(),
        "the gateway rejected the key: invalid gateway key"
    );
}

#[test]
fn kubectl_plugin_surface_parses() {
    // `kubectl aigw key ls` and friends, with global flags after the subcommand.
    let cli = parse(&[
        "key",
        "ls",
        "-n",
        "team-a",
        "--gateway",
        "gw2",
        "-o",
        "json",
    ]);
    assert_eq!(cli.namespace.as_deref(), Some("team-a"));
    assert_eq!(cli.gateway, "gw2");
    assert!(matches!(cli.command, Command::Keys(cli::KeysCommand::List)));
    let cli = parse(&["keys", "delete", "alice-key"]);
    assert!(matches!(
        cli.command,
        Command::Keys(cli::KeysCommand::Revoke { ref name }) if name == "alice-key"
    ));
    assert_eq!(cli.gateway, cli::DEFAULT_GATEWAY);
    assert!(
        Cli::try_parse_from(["kubectl-aigw", "keys", "create"]).is_err(),
        "--user is required"
    );
}

#[tokio::test]
async fn env_prints_the_exports_a_workspace_needs_at_the_gateways_service() {
    let (task, mut api) = start(parse(&["-n", NS, "env", "--key", "gw_abc"]));
    let mut gw = gateway(None);
    gw["spec"]["service"] = json!({"type": "ClusterIP", "port": 9000});
    api.expect("GET", GW_PATH, 200, gw).await;
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("printed");
    let base = format!("http://{GW}.{NS}.svc:9000");
    for line in [
        format!("export ANTHROPIC_BASE_URL='{base}/v1/claude'"),
        format!("export ANTHROPIC_VERTEX_BASE_URL='{base}/v1/vertex/v1'"),
        format!("export AWS_ENDPOINT_URL_BEDROCK_RUNTIME='{base}/v1/bedrock'"),
        "export OPENAI_API_KEY='gw_abc'".to_string(),
    ] {
        assert!(
            outcome.out.lines().any(|l| l == line),
            "{line} in\n{}",
            outcome.out
        );
    }

    // With the URL given, nothing is asked of the cluster.
    let (task, mut api) = start(parse(&[
        "env",
        "--url",
        "http://gw.example:8090/",
        "-o",
        "json",
    ]));
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("printed");
    let vars: Value = serde_json::from_str(&outcome.out).expect("json");
    assert_eq!(vars["OPENAI_BASE_URL"], "http://gw.example:8090/v1");
    assert!(vars.get("OPENAI_API_KEY").is_none());
}

#[tokio::test]
async fn usage_of_everyone_sums_each_data_planes_admin_report() {
    use base64::Engine;
    let (task, mut api) = start(parse(&[
        "-n",
        NS,
        "usage",
        "--all",
        "--group-by",
        "team",
        "--since",
        "7d",
    ]));
    let token = base64::engine::general_purpose::STANDARD.encode("adm1n-token");
    api.expect(
        "GET",
        &format!("{SECRETS}/ai-gateway-admin"),
        200,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "ai-gateway-admin", "namespace": NS},
               "data": {"token": token}}),
    )
    .await;
    let ready = |name: &str, ready: &str| {
        json!({"metadata": {"name": name, "namespace": NS},
               "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    };
    let listed = api
        .expect(
            "GET",
            "/api/v1/namespaces/ai/pods",
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
                   "items": [ready("dp-b", "True"), ready("dp-a", "True"), ready("dp-c", "False")]}),
        )
        .await;
    assert!(listed.uri.contains("labelSelector="), "{}", listed.uri);
    let pod = |name: &str| format!("/api/v1/namespaces/ai/pods/{name}:8091/proxy");
    api.expect(
        "GET",
        &format!("{}/admin/v1/limits", pod("dp-a")),
        200,
        json!({"store": "embedded", "rules": []}),
    )
    .await;
    let usage = |requests: u64, cost: f64| {
        json!({"requests": requests, "tokens_in": 100 * requests, "tokens_out": 10 * requests,
               "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": cost, "tokens_saved": 0})
    };
    let mut seen = Vec::new();
    for (name, platform, data) in [("dp-a", 3, 1), ("dp-b", 2, 4)] {
        let report = json!({
            "since": "2026-11-27", "until": "2026-12-03", "group_by": "team",
            "rows": [{"group": "platform", "usage": usage(platform, 0.5)},
                     {"group": "data", "usage": usage(data, 0.25)}],
            "total": usage(platform + data, 0.75),
        });
        seen.push(
            api.expect("GET", &format!("{}/admin/v1/usage", pod(name)), 200, report)
                .await,
        );
    }
    let outcome = finish(task, &mut api).await;
    outcome.result.expect("usage --all");
    for s in &seen {
        assert!(s.uri.ends_with("?group_by=team&since=7d"), "{}", s.uri);
        assert_eq!(
            s.headers
                .get("x-ai-gateway-admin-token")
                .and_then(|v| v.to_str().ok()),
            Some("adm1n-token")
        );
    }
    let out = &outcome.out;
    assert!(
        out.contains("2026-11-27 to 2026-12-03 (UTC), by team, from 2 data planes"),
        "{out}"
    );
    assert_eq!(
        row(out, "platform"),
        ["platform", "5", "500", "50", "$1.0000"]
    );
    assert_eq!(row(out, "data"), ["data", "5", "500", "50", "$0.5000"]);
    assert_eq!(row(out, "total"), ["total", "10", "1000", "100", "$1.5000"]);
}
