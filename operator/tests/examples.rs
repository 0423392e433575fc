//! The objects in `examples/` are what platform engineers copy: parsed into the CRD
//! types and compiled as `kubectl apply -f examples/` would leave a namespace, every
//! object must be accepted with its references resolved, and nothing written in a file
//! may be a field the types do not know (it would be silently dropped).

use ai_gateway_operator::namespace::Namespace;
use ai_gateway_snapshot::{LimitStoreKind, ProviderKind, Subject};
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const GATEWAY: &str = "ai-gateway";

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .canonicalize()
        .expect("examples/ exists")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_examples() -> String {
    example_files()
        .iter()
        .map(|p| read(p))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn every_example_file_is_objects_the_operator_reads() {
    let files = example_files();
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "gateway.yaml",
        "keys.yaml",
        "anthropic.yaml",
        "bedrock.yaml",
        "gemini.yaml",
        "ollama.yaml",
        "rate-limits.yaml",
    ] {
        assert!(names.contains(wanted), "examples/{wanted} is missing");
    }
    for file in files {
        Namespace::from_yaml(&read(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn the_examples_together_compile_with_every_object_accepted() {
    let ns = Namespace::from_yaml(&all_examples()).expect("examples parse");
    let compiled = ns
        .compile(GATEWAY)
        .expect("examples/gateway.yaml names the gateway");

    let failed: Vec<String> = compiled
        .routes
        .iter()
        .map(|(name, v)| (format!("ProviderRoute {name}"), v))
        .chain(
            compiled
                .policies
                .iter()
                .map(|(name, v)| (format!("RateLimitPolicy {name}"), v)),
        )
        .chain(std::iter::once((
            format!("AIGateway {GATEWAY}"),
            &compiled.gateway,
        )))
        .flat_map(|(what, verdicts)| {
            verdicts
                .iter()
                // Degraded is the one condition whose True is the warning.
                .filter(|v| (v.r#type == "Degraded") == v.status)
                .map(move |v| format!("{what}: {} {} {}", v.r#type, v.reason, v.message))
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");

    // Every route and policy in the files got a verdict (none silently ignored).
    assert_eq!(
        compiled.routes.keys().cloned().collect::<BTreeSet<_>>(),
        ["anthropic", "bedrock", "gemini", "local", "remote"]
            .map(String::from)
            .into(),
    );
    assert_eq!(
        compiled.policies.keys().collect::<Vec<_>>(),
        ["users-limits"]
    );
    assert!(compiled
        .gateway
        .iter()
        .any(|v| v.r#type == "ConfigValid" && v.status));

    let snap = &compiled.snapshot;
    let kinds: Vec<(&str, ProviderKind)> = snap
        .providers
        .iter()
        .map(|(name, p)| (name.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("anthropic", ProviderKind::Anthropic),
            ("bedrock", ProviderKind::Bedrock),
            ("gemini", ProviderKind::Gemini),
            ("local", ProviderKind::Ollama),
            ("remote", ProviderKind::Ollama),
        ]
    );
    // The Cloudflare Access token came out of its Secret as headers.
    assert_eq!(
        snap.providers["remote"]
            .headers
            .get("CF-Access-Client-Secret")
            .map(String::as_str),
        Some("replace-me")
    );
    // Credentials came out of the Secrets the routes name.
    assert_eq!(
        snap.providers["anthropic"].api_key.as_deref(),
        Some("sk-ant-REPLACE_ME")
    );
    assert!(snap.providers["bedrock"].access_key_id.is_some());
    assert!(snap.providers["bedrock"].secret_access_key.is_some());
    assert_eq!(
        snap.providers["bedrock"].region.as_deref(),
        Some("us-east-1")
    );
    assert!(snap.providers["gemini"].api_key.is_some());
    assert_eq!(
        snap.providers["local"].base_url.as_deref(),
        Some("http://ollama.ollama.svc:11434")
    );

    // Anthropic falls back to Bedrock, which serves claude-sonnet-4-5 under its own id.
    let claude = snap
        .routes
        .iter()
        .find(|r| r.provider == "anthropic")
        .expect("anthropic route");
    assert_eq!(claude.fallback, ["bedrock"]);
    let alias = snap
        .routes
        .iter()
        .find(|r| r.provider == "bedrock" && r.models == ["claude-sonnet-4-5"])
        .expect("bedrock alias for claude-sonnet-4-5");
    assert_eq!(
        alias.upstream_model.as_deref(),
        Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    );
    assert!(alias.priority > claude.priority);

    // The users' limits, as the seeds state them.
    let rules = &snap.rate_limits.rules;
    let global = rules
        .iter()
        .find(|r| r.subject == Subject::Global)
        .expect("global rule");
    assert_eq!(global.limits.requests_per_minute, Some(1000));
    let user = rules
        .iter()
        .find(|r| r.subject == Subject::User)
        .expect("user rule");
    assert_eq!(user.limits.requests_per_minute, Some(60));
    assert_eq!(user.limits.tokens_per_minute, Some(100_000));
    assert_eq!(user.limits_for("admin").requests_per_minute, Some(200));
    assert_eq!(user.limits_for("admin").tokens_per_minute, Some(100_000));
    assert_eq!(
        user.limits_for("contractor1").requests_per_minute,
        Some(100)
    );
    assert_eq!(user.limits_for("contractor2").requests_per_minute, Some(50));
    assert_eq!(user.limits_for("anyone-else").requests_per_minute, Some(60));

    // Shared counters for two replicas, and the three keys with their identities.
    assert_eq!(snap.rate_limits.store.kind, LimitStoreKind::Redis);
    let keys: Vec<(&str, Option<&str>)> = snap
        .auth
        .keys
        .iter()
        .map(|k| (k.id.as_str(), k.user.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [
            ("key-admin", Some("admin")),
            ("key-contractor1", Some("contractor1")),
            ("key-contractor2", Some("contractor2")),
        ]
    );
    assert!(snap.auth.keys[1].sigv4_secret.is_some());
    // Plaintext keys never reach the snapshot.
    let text = serde_json::to_string(snap).unwrap();
    assert!(!text.contains("gw_REPLACE_ME"), "plaintext key in snapshot");
}

/// `a` ⊆ `b`: every mapping key of `a` is in `b` with a value that contains `a`'s.
fn missing_fields(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in a {
                let key = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{k:?}"));
                let path = format!("{at}.{key}");
                match b.get(k) {
                    Some(bv) => missing_fields(v, bv, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Sequence(a), Value::Sequence(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                missing_fields(x, y, &format!("{at}[{i}]"), out);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            if x.as_f64() != y.as_f64() {
                out.push(format!("{at}: {x} became {y}"));
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: {a:?} became {b:?}")),
    }
}

#[test]
fn no_example_field_is_dropped_by_the_types() {
    // A misspelt field (`credentialRef`, `requestsPerMinute` in a rule) parses without
    // error but does nothing; the API server would prune it the same way.
    let ns = Namespace::from_yaml(&all_examples()).expect("examples parse");
    let mut parsed: Vec<(String, Value)> = Vec::new();
    for g in &ns.gateways {
        parsed.push((kind_name("AIGateway", &g.metadata.name), to_value(g)));
    }
    for r in &ns.routes {
        parsed.push((kind_name("ProviderRoute", &r.metadata.name), to_value(r)));
    }
    for p in &ns.policies {
        parsed.push((kind_name("RateLimitPolicy", &p.metadata.name), to_value(p)));
    }
    for s in &ns.secrets {
        parsed.push((kind_name("Secret", &s.metadata.name), to_value(s)));
    }
    let mut checked = 0;
    for file in example_files() {
        for doc in serde_yaml::Deserializer::from_str(&read(&file)) {
            let written: Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = written["kind"].as_str().unwrap_or_default().to_string();
            let name = written["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let id = format!("{kind}/{name}");
            let (_, back) = parsed
                .iter()
                .find(|(n, _)| *n == id)
                .unwrap_or_else(|| panic!("{id} was not parsed"));
            let mut out = Vec::new();
            missing_fields(&written, back, &id, &mut out);
            assert!(
                out.is_empty(),
                "{}: dropped or changed: {out:#?}",
                file.display()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, parsed.len(), "every parsed object was checked");
}

fn kind_name(kind: &str, name: &Option<String>) -> String {
    format!("{kind}/{}", name.as_deref().unwrap_or_default())
}

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_yaml::to_value(t).expect("serialises")
}
