//! What a rate-limit check costs per request: admission plus settlement, against the
//! in-memory store, the embedded store (memory journaled to SQLite once a second by a
//! thread of its own) and a real Redis (`REDIS_URL`, or a `redis-server` on PATH started
//! on a free loopback port for the run). The tail of memory against embedded is
//! sampled call by call, while the journal writes, and printed as p50/p99/max.
//!
//! `cargo bench -p ai-gateway-dataplane --bench limiter`

use ai_gateway::auth::Identity;
use ai_gateway::limits::{Admission, Demand, LimitPlan, Store, Windows};
use ai_gateway_snapshot::parse_document;
use criterion::{criterion_group, criterion_main, Criterion};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

fn plan(store: &str) -> (LimitPlan, ai_gateway_snapshot::RateLimits) {
    // The users' policy: global and per-user counters on every request.
    let doc = format!(
        "rate_limits:\n  global: {{ requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }}\n  default: {{ requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }}\n  store: {store}\n"
    );
    let rl = parse_document(&doc, |_| None).expect("valid").rate_limits;
    (LimitPlan::new(&rl), rl)
}

fn caller(n: u64) -> Identity {
    Identity {
        key_id: None,
        user: format!("user{}", n % 500),
        team: None,
        workspace: None,
    }
}

async fn check(plan: &LimitPlan, store: &Store, n: u64) {
    let checks = plan.checks(&caller(n), "claude-sonnet-4-5");
    let demand = Demand {
        tokens: 5_000,
        cost_micros: 20_000,
    };
    let windows = Windows::at(SystemTime::now());
    match store.admit(&checks, demand, windows).await {
        Ok(Admission::Admitted(r)) => {
            let used = Demand {
                tokens: 1_200,
                cost_micros: 6_000,
            };
            let _ = store.finish(Some(&r), used, &[]).await;
        }
        Ok(Admission::Refused(_)) => panic!("the benchmark limits are never reached"),
        Err(e) => panic!("store failed: {e}"),
    }
}

struct Redis(Option<Child>, String);

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn redis() -> Option<Redis> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Some(Redis(None, url));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Redis(Some(child), format!("redis://127.0.0.1:{port}/0")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn limiter(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("rate_limit_check");

    let (plan_mem, rl) = plan("{ kind: memory }");
    let memory = Store::from_config(&rl, None).expect("memory store");
    let mut n = 0u64;
    group.bench_function("memory: admit + settle (global + user)", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            check(&plan_mem, &memory, n)
        })
    });

    let data = tempfile::tempdir().expect("tempdir");
    let (plan_embedded, rl) = plan("{ kind: embedded }");
    let embedded = Store::from_config(&rl, Some(data.path())).expect("embedded store");
    let mut n = 0u64;
    group.bench_function("embedded: admit + settle (global + user)", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            check(&plan_embedded, &embedded, n)
        })
    });
    for (name, plan, store) in [
        ("memory", &plan_mem, &memory),
        ("embedded", &plan_embedded, &embedded),
    ] {
        tail(&rt, name, plan, store);
    }
    embedded.close();

    match redis() {
        Some(server) => {
            let (plan_redis, rl) = plan(&format!("{{ kind: redis, url: \"{}\" }}", server.1));
            let store = Store::from_config(&rl, None).expect("redis store");
            let mut n = 0u64;
            group.bench_function("redis: admit + settle (global + user)", |b| {
                b.to_async(&rt).iter(|| {
                    n += 1;
                    check(&plan_redis, &store, n)
                })
            });
        }
        None => eprintln!("SKIPPED redis: no REDIS_URL and no redis-server on PATH"),
    }
    group.finish();
}

/// Admit + settle timed one by one over four seconds (four journal writes of 500
/// callers' counters each).
fn tail(rt: &tokio::runtime::Runtime, name: &str, plan: &LimitPlan, store: &Store) {
    let mut samples = Vec::with_capacity(1 << 20);
    let until = std::time::Instant::now() + Duration::from_secs(4);
    let mut n = 0u64;
    rt.block_on(async {
        while std::time::Instant::now() < until {
            n += 1;
            let started = std::time::Instant::now();
            check(plan, store, n).await;
            samples.push(started.elapsed());
        }
    });
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name}: {} calls, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        samples.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
}

criterion_group!(benches, limiter);
criterion_main!(benches);
