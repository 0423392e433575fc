//! The Helm chart (`charts/ai-gateway`) as a user meets it: `helm lint`, and the objects
//! `helm template` renders with the default values and with the optional parts on.
//! The CRD copy check needs no helm; the rest skips without a helm binary (env
//! `AI_GATEWAY_HELM` or `helm` on PATH) locally and fails under `CI`.

use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const RELEASE: &str = "aigw";
const NAMESPACE: &str = "ai-gateway-system";
const OPTIONAL_ON: &str = "redis.enabled=true,serviceMonitor.enabled=true,dashboards.enabled=true";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn chart() -> PathBuf {
    repo().join("charts/ai-gateway")
}

fn helm() -> Option<PathBuf> {
    let found = std::env::var_os("AI_GATEWAY_HELM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("helm"))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "helm not found (set AI_GATEWAY_HELM or put helm on PATH; .ci/run installs it)"
        );
        eprintln!("SKIPPED: helm not found");
    }
    found
}

fn run_helm(helm: &Path, args: &[&str]) -> String {
    let out = Command::new(helm).args(args).output().expect("helm runs");
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn try_template(helm: &Path, set: &[&str]) -> std::process::Output {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    Command::new(helm).args(&args).output().expect("helm runs")
}

/// The rendered objects; serde_yaml refuses duplicate keys, which kubectl would too.
fn template(helm: &Path, set: &[&str]) -> Vec<Value> {
    let out = try_template(helm, set);
    assert!(
        out.status.success(),
        "helm template {set:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objs.iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
}

fn get<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objs, kind, name).unwrap_or_else(|| {
        let have: Vec<String> = objs
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    o["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect();
        panic!("no {kind}/{name} rendered; have {have:?}")
    })
}

fn of_kind<'a>(objs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objs.iter()
        .filter(move |o| o["kind"].as_str() == Some(kind))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn env_of<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_sequence()
        .and_then(|env| env.iter().find(|e| e["name"].as_str() == Some(name)))
        .unwrap_or_else(|| panic!("env {name} not set"))
}

#[test]
fn chart_crds_are_the_generated_ones_byte_for_byte() {
    let generated = repo().join("crds/yaml");
    let copied = chart().join("crds");
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let wanted = names(&generated);
    assert_eq!(wanted.len(), 3, "three CRDs in crds/yaml");
    assert_eq!(
        names(&copied),
        wanted,
        "charts/ai-gateway/crds must hold exactly crds/yaml/*.yaml"
    );
    for name in wanted {
        let a = std::fs::read(generated.join(&name)).unwrap();
        let b = std::fs::read(copied.join(&name)).unwrap();
        assert!(
            a == b,
            "charts/ai-gateway/crds/{name} differs from crds/yaml/{name}: cp crds/yaml/*.yaml charts/ai-gateway/crds/"
        );
    }
}

#[test]
fn chart_lints_with_defaults_and_with_everything_on() {
    let Some(helm) = helm() else { return };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    run_helm(&helm, &["lint", "--strict", chart]);
    run_helm(
        &helm,
        &[
            "lint",
            "--strict",
            chart,
            "--set",
            OPTIONAL_ON,
            "--set",
            "operator.watchNamespace=ai",
        ],
    );
}

/// (apiGroup, resource, verb) the operator needs, as it was specified: exactly these.
fn operator_contract() -> BTreeSet<(String, String, String)> {
    let mut want = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                want.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    };
    let crs = ["aigateways", "providerroutes", "ratelimitpolicies"];
    let owned = [
        "get", "list", "watch", "create", "patch", "update", "delete",
    ];
    add("ai-gateway.dev", &crs, &["get", "list", "watch"]);
    add(
        "ai-gateway.dev",
        &[
            "aigateways/status",
            "providerroutes/status",
            "ratelimitpolicies/status",
        ],
        &["get", "patch", "update"],
    );
    add("ai-gateway.dev", &["aigateways/finalizers"], &["update"]);
    add("", &["secrets", "services", "serviceaccounts"], &owned);
    add("", &["pods"], &["get", "list", "watch"]);
    add("", &["events"], &["create", "patch"]);
    add("events.k8s.io", &["events"], &["create", "patch"]);
    add("apps", &["deployments"], &owned);
    add("policy", &["poddisruptionbudgets"], &owned);
    add("networking.k8s.io", &["networkpolicies"], &owned);
    want
}

fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    out.insert((g.to_string(), r.to_string(), v.to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn default_install_runs_a_non_root_operator_with_exactly_the_rights_it_needs() {
    let Some(helm) = helm() else { return };
    let objs = template(&helm, &[]);

    // No wildcard anywhere in RBAC.
    for role in of_kind(&objs, "ClusterRole").chain(of_kind(&objs, "Role")) {
        for rule in role["rules"].as_sequence().expect("rules") {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !strs(&rule[field]).contains(&"*"),
                    "{} uses `*` in {field}: {rule:?}",
                    role["metadata"]["name"].as_str().unwrap()
                );
            }
            assert!(rule.get("nonResourceURLs").is_none());
        }
    }

    let operator = format!("{RELEASE}-operator");
    let role = get(&objs, "ClusterRole", &operator);
    assert_eq!(grants(role), operator_contract(), "operator ClusterRole");
    let binding = get(&objs, "ClusterRoleBinding", &operator);
    assert_eq!(binding["roleRef"]["name"].as_str(), Some(operator.as_str()));
    let subject = &binding["subjects"][0];
    assert_eq!(subject["kind"].as_str(), Some("ServiceAccount"));
    assert_eq!(subject["namespace"].as_str(), Some(NAMESPACE));
    let sa = subject["name"].as_str().unwrap();
    get(&objs, "ServiceAccount", sa);

    // Leader election: Leases in the release namespace only.
    let lease_role = of_kind(&objs, "Role")
        .find(|r| grants(r).iter().any(|(g, _, _)| g == "coordination.k8s.io"))
        .expect("a Role for leases");
    assert_eq!(
        lease_role["metadata"]["namespace"].as_str(),
        Some(NAMESPACE)
    );
    let lease_grants = grants(lease_role);
    for verb in ["get", "create", "update", "patch"] {
        assert!(lease_grants.contains(&(
            "coordination.k8s.io".into(),
            "leases".into(),
            verb.into()
        )));
    }
    assert!(lease_grants
        .iter()
        .all(|(g, r, _)| g == "coordination.k8s.io" && r == "leases"));
    let lease_binding = of_kind(&objs, "RoleBinding")
        .find(|b| b["roleRef"]["name"] == lease_role["metadata"]["name"])
        .expect("lease RoleBinding");
    assert_eq!(lease_binding["subjects"][0]["name"].as_str(), Some(sa));

    // The operator Deployment.
    let deploy = get(&objs, "Deployment", &operator);
    assert_eq!(deploy["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(deploy["spec"]["replicas"].as_i64(), Some(2));
    let pod = &deploy["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/name"].as_str(),
        Some("ai-gateway-operator")
    );
    for (k, v) in deploy["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "selector matches the pods"
        );
    }
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"].as_str(), Some(sa));
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert!(spec["securityContext"]["runAsUser"].as_i64().unwrap() > 0);
    let c = &spec["containers"][0];
    assert_eq!(strs(&c["args"]).first(), Some(&"run"));
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(strs(&c["securityContext"]["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        env_of(c, "AI_GATEWAY_LEADER_ELECT")["value"].as_str(),
        Some("true")
    );
    assert_eq!(
        env_of(c, "AI_GATEWAY_WATCH_NAMESPACE")["value"].as_str(),
        Some("")
    );
    assert_eq!(
        env_of(c, "AI_GATEWAY_DATAPLANE_IMAGE")["value"].as_str(),
        Some("ghcr.io/ai-gateway/ai-gateway:0.1.0")
    );
    assert_eq!(
        env_of(c, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name")
    );
    assert_eq!(
        env_of(c, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.namespace")
    );
    let listen = env_of(c, "AI_GATEWAY_PROBE_LISTEN")["value"]
        .as_str()
        .unwrap();
    let port = c["ports"][0]["containerPort"].as_i64().unwrap();
    assert!(
        listen.ends_with(&format!(":{port}")),
        "{listen} vs port {port}"
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );

    // The default gateway, with the memory store, and TokenReview rights for its pods.
    let gw = get(&objs, "AIGateway", "ai-gateway");
    assert_eq!(gw["apiVersion"].as_str(), Some("ai-gateway.dev/v1alpha1"));
    assert_eq!(gw["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    assert!(gw["spec"].get("rateLimitStore").is_none());
    assert_eq!(gw["spec"]["auth"]["mode"].as_str(), Some("keys"));
    let delegator = of_kind(&objs, "ClusterRoleBinding")
        .find(|b| b["roleRef"]["name"].as_str() == Some("system:auth-delegator"))
        .expect("auth-delegator binding");
    assert_eq!(
        delegator["subjects"][0]["name"].as_str(),
        Some("ai-gateway-dataplane")
    );
    assert_eq!(
        delegator["subjects"][0]["namespace"].as_str(),
        Some(NAMESPACE)
    );
    let identity = get(
        &objs,
        "ClusterRole",
        &format!("{RELEASE}-dataplane-identity"),
    );
    let want: BTreeSet<(String, String, String)> = [
        ("serviceaccounts", "get"),
        ("serviceaccounts", "list"),
        ("namespaces", "get"),
        ("namespaces", "list"),
    ]
    .iter()
    .map(|(r, v)| (String::new(), r.to_string(), v.to_string()))
    .collect();
    assert_eq!(grants(identity), want);

    // Optional parts stay off.
    for kind in ["ServiceMonitor", "ConfigMap", "Service"] {
        assert_eq!(
            of_kind(&objs, kind).count(),
            0,
            "{kind} rendered by default"
        );
    }
    assert!(find(&objs, "Deployment", &format!("{RELEASE}-redis")).is_none());
}

#[test]
fn pod_identity_lets_the_data_plane_watch_pods_and_nothing_more() {
    let Some(helm) = helm() else { return };
    let objs = template(
        &helm,
        &[
            "gateway.spec.auth.mode=kubernetes",
            "gateway.spec.auth.podIdentity=true",
        ],
    );
    let identity = get(
        &objs,
        "ClusterRole",
        &format!("{RELEASE}-dataplane-identity"),
    );
    let pods: BTreeSet<String> = grants(identity)
        .into_iter()
        .filter(|(_, resource, _)| resource == "pods")
        .map(|(_, _, verb)| verb)
        .collect();
    assert_eq!(pods, ["get", "list", "watch"].map(String::from).into());
    let gateway = get(&objs, "AIGateway", "ai-gateway");
    assert_eq!(gateway["spec"]["auth"]["podIdentity"], true);
}

#[test]
fn one_namespace_operator_gets_a_role_not_a_cluster_role() {
    let Some(helm) = helm() else { return };
    let objs = template(
        &helm,
        &["operator.watchNamespace=team-a,gateway.enabled=false"],
    );
    let operator = format!("{RELEASE}-operator");
    assert!(find(&objs, "ClusterRole", &operator).is_none());
    let role = get(&objs, "Role", &operator);
    assert_eq!(role["metadata"]["namespace"].as_str(), Some("team-a"));
    assert_eq!(grants(role), operator_contract());
    let binding = get(&objs, "RoleBinding", &operator);
    assert_eq!(binding["metadata"]["namespace"].as_str(), Some("team-a"));
    assert_eq!(
        binding["subjects"][0]["namespace"].as_str(),
        Some(NAMESPACE)
    );
    let c = &get(&objs, "Deployment", &operator)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_of(c, "AI_GATEWAY_WATCH_NAMESPACE")["value"].as_str(),
        Some("team-a")
    );
}

#[test]
fn two_operators_without_leader_election_are_refused() {
    let Some(helm) = helm() else { return };
    let out = try_template(&helm, &["operator.leaderElect=false"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("leaderElect"));
    let objs = template(&helm, &["operator.leaderElect=false,operator.replicas=1"]);
    let deploy = get(&objs, "Deployment", &format!("{RELEASE}-operator"));
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_of(c, "AI_GATEWAY_LEADER_ELECT")["value"].as_str(),
        Some("false")
    );
}

#[test]
fn a_default_gateway_the_operator_would_not_watch_is_refused() {
    let Some(helm) = helm() else { return };
    let out = try_template(&helm, &["operator.watchNamespace=elsewhere"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("never reconcile it"));
    let objs = template(&helm, &[&format!("operator.watchNamespace={NAMESPACE}")]);
    assert!(find(&objs, "AIGateway", "ai-gateway").is_some());
}

#[test]
fn redis_monitoring_and_dashboard_when_enabled() {
    let Some(helm) = helm() else { return };
    let objs = template(&helm, &[OPTIONAL_ON]);

    // Redis, and the default gateway pointed at it.
    let redis = format!("{RELEASE}-redis");
    let svc = get(&objs, "Service", &redis);
    assert_eq!(svc["spec"]["ports"][0]["port"].as_i64(), Some(6379));
    let deploy = get(&objs, "Deployment", &redis);
    let pod = &deploy["spec"]["template"];
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "Service selects the Redis pod"
        );
    }
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert!(pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .starts_with("redis:7"));
    let gw = get(&objs, "AIGateway", "ai-gateway");
    assert_eq!(gw["spec"]["rateLimitStore"]["kind"].as_str(), Some("redis"));
    assert_eq!(
        gw["spec"]["rateLimitStore"]["url"].as_str(),
        Some(format!("redis://{redis}:6379/0").as_str())
    );

    // The ServiceMonitor scrapes the data planes' admin port, and no Service of the
    // chart's own (Redis) looks like a data plane to it.
    let sm = get(&objs, "ServiceMonitor", &format!("{RELEASE}-dataplane"));
    assert_eq!(sm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    let selector = &sm["spec"]["selector"]["matchLabels"];
    assert_eq!(
        selector["app.kubernetes.io/name"].as_str(),
        Some("ai-gateway")
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"].as_str(), Some("admin"));
    assert_eq!(
        sm["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
    assert_eq!(sm["spec"]["namespaceSelector"]["any"].as_bool(), Some(true));
    for s in of_kind(&objs, "Service") {
        assert_ne!(
            s["metadata"]["labels"]["app.kubernetes.io/name"].as_str(),
            Some("ai-gateway"),
            "{:?} would be scraped as a data plane",
            s["metadata"]["name"]
        );
    }

    // The dashboard ConfigMap for Grafana's sidecar, against the data plane's metrics.
    let cm = get(&objs, "ConfigMap", &format!("{RELEASE}-dashboard"));
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"].as_str(),
        Some("1")
    );
    let json = cm["data"]["ai-gateway.json"]
        .as_str()
        .expect("dashboard JSON");
    let dashboard: serde_json::Value = serde_json::from_str(json).expect("dashboard is JSON");
    check_dashboard(&dashboard);

    // A store set in gateway.spec is the user's choice and stays.
    let objs = template(
        &helm,
        &[OPTIONAL_ON, "gateway.spec.rateLimitStore.kind=memory"],
    );
    let store = &get(&objs, "AIGateway", "ai-gateway")["spec"]["rateLimitStore"];
    assert_eq!(store["kind"].as_str(), Some("memory"));
    assert!(store.get("url").is_none());

    // No default gateway: no AIGateway, and the data-plane RBAC can be turned off.
    let objs = template(
        &helm,
        &["gateway.enabled=false,dataplaneIdentity.enabled=false"],
    );
    assert_eq!(of_kind(&objs, "AIGateway").count(), 0);
    assert!(!of_kind(&objs, "ClusterRoleBinding")
        .any(|b| b["roleRef"]["name"].as_str() == Some("system:auth-delegator")));
}

/// Metric names as scraped, from the registrations in the data plane's metrics.rs:
/// counters get `_total`, histograms `_bucket`/`_sum`/`_count`, gauges stay as named.
/// Keyed by exposed name, valued by the registered name.
fn exposed_metrics() -> BTreeMap<String, String> {
    let src = std::fs::read_to_string(repo().join("dataplane/src/metrics.rs"))
        .expect("dataplane/src/metrics.rs");
    // Field name → metric type, from `pub field: Family<Labels, Counter…>` lines.
    let mut field_kind = BTreeMap::new();
    for line in src.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("pub ") else {
            continue;
        };
        let Some((field, ty)) = rest.split_once(':') else {
            continue;
        };
        for kind in ["Counter", "Histogram", "Gauge"] {
            if ty.contains(kind) {
                field_kind.insert(field.trim().to_string(), kind);
                break;
            }
        }
    }
    let mut out = BTreeMap::new();
    for call in src.split("registry.register(").skip(1) {
        let call = &call[..call.find(");").expect("register call ends")];
        let name = call.split('"').nth(1).expect("metric name literal");
        let field = call
            .rsplit(',')
            .map(str::trim)
            .find(|s| s.ends_with(".clone()"))
            .and_then(|s| s.strip_suffix(".clone()"))
            .expect("registered field");
        let kind = field_kind
            .get(field)
            .unwrap_or_else(|| panic!("type of field `{field}`"));
        let names = match *kind {
            "Counter" => vec![format!("{name}_total")],
            "Histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
            _ => vec![name.to_string()],
        };
        for n in names {
            out.insert(n, name.to_string());
        }
    }
    assert!(out.len() >= 11, "metrics.rs registrations found: {out:?}");
    out
}

/// Metric names in a PromQL expression: identifiers outside label matchers, range
/// brackets, strings and `by (…)`/`without (…)` lists, with the gateway's prefixes.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut depth_braces = 0;
    let mut depth_brackets = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' => {
                depth_braces += 1;
                i += 1;
            }
            '}' => {
                depth_braces -= 1;
                i += 1;
            }
            '[' => {
                depth_brackets += 1;
                i += 1;
            }
            ']' => {
                depth_brackets -= 1;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word == "by" || word == "without" {
                    // Skip the label list.
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    continue;
                }
                let in_selector = depth_braces > 0 || depth_brackets > 0;
                if !in_selector && (word.starts_with("ai_gateway_") || word.starts_with("gen_ai_"))
                {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

fn check_dashboard(dashboard: &serde_json::Value) {
    assert!(dashboard["title"].is_string());
    assert!(dashboard["uid"].is_string());
    let exposed = exposed_metrics();
    let mut all = Vec::new();
    exprs(dashboard, &mut all);
    assert!(all.len() > 10, "dashboard queries: {all:?}");
    let mut used = BTreeSet::new();
    for e in &all {
        for name in metric_names(e) {
            let registered = exposed.get(&name).unwrap_or_else(|| {
                panic!("dashboard query `{e}` uses `{name}`, which the data plane does not expose; it exposes {:?}", exposed.keys())
            });
            used.insert(registered.clone());
        }
    }
    // Every panel the users asked for has its metric.
    for wanted in [
        "ai_gateway_requests",
        "gen_ai_client_token_usage",
        "ai_gateway_cost_usd",
        "gen_ai_server_request_duration_seconds",
        "gen_ai_server_time_to_first_token_seconds",
        "ai_gateway_rate_limited",
        "ai_gateway_upstream_errors",
        "ai_gateway_circuit_open",
        "ai_gateway_config",
    ] {
        assert!(
            used.contains(wanted),
            "no panel shows {wanted}; used: {used:?}"
        );
    }
    // Per user, team and model breakdowns, and percentiles of latency and TTFT.
    let joined = all.join("\n");
    for needle in [
        "by (user)",
        "by (team)",
        "by (model)",
        "histogram_quantile(0.99, sum by (le) (rate(gen_ai_server_request_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(gen_ai_server_time_to_first_token_seconds_bucket",
        "by (namespace, pod, version)",
    ] {
        assert!(joined.contains(needle), "no dashboard query with `{needle}`");
    }
}

#[test]
fn promql_metric_names_skip_labels_and_functions() {
    assert_eq!(
        metric_names(
            r#"sum by (model, gen_ai_token_type) (rate(gen_ai_client_token_usage_total{gen_ai_x="a{b}", ns=~"$ns"}[$__rate_interval])) / ai_gateway_config"#
        ),
        ["gen_ai_client_token_usage_total", "ai_gateway_config"]
    );
    assert!(metric_names("count(up)").is_empty());
}
