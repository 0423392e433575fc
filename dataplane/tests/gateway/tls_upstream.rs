//! Providers over TLS: loopback fakes serving HTTPS with a test CA, HTTP/2 or HTTP/1.1
//! chosen by ALPN. A provider's `ca_file` is trusted beside the public roots;
//! connections are reused, HTTP/2 calls share one connection; a certificate the
//! gateway cannot trust is a clean 502 naming the provider.

use crate::fakes::{client, fixture, get_json, TestGateway};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// A test CA and a `localhost` certificate it signed.
struct TestPki {
    ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "ai-gateway test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("leaf");
    TestPki {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf.der().to_vec(),
        leaf_key_der: leaf_key.serialize_der(),
    }
}

/// An HTTPS fake Anthropic: counts connections and requests, notes each connection's
/// ALPN protocol, and answers after `delay` (so concurrent calls overlap).
/// Where a request said it was going: its `host` header and its URI's authority.
type Target = (Option<String>, Option<String>);

struct TlsFake {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    protocols: Arc<Mutex<Vec<String>>>,
    targets: Arc<Mutex<Vec<Target>>>,
    /// The most requests it held at once.
    peak: Arc<AtomicUsize>,
}

/// How a fake answers: after `delay`, or as soon as `release_at` requests are held at
/// once; over HTTP/2 it lets a connection carry `max_streams` at a time.
#[derive(Clone, Copy)]
struct Answering {
    delay: Duration,
    release_at: usize,
    max_streams: u32,
}

impl Answering {
    fn after(delay: Duration) -> Self {
        Self {
            delay,
            release_at: usize::MAX,
            max_streams: 1000,
        }
    }
}

async fn tls_fake(pki: &TestPki, alpn: &[&[u8]], answering: Answering) -> TlsFake {
    let key = rustls::pki_types::PrivateKeyDer::try_from(pki.leaf_key_der.clone()).expect("key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![pki.leaf_der.clone().into()], key)
    .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fake = TlsFake {
        port,
        connections: Arc::default(),
        requests: Arc::default(),
        protocols: Arc::default(),
        targets: Arc::default(),
        peak: Arc::default(),
    };
    let (connections, requests, protocols, targets, peak) = (
        fake.connections.clone(),
        fake.requests.clone(),
        fake.protocols.clone(),
        fake.targets.clone(),
        fake.peak.clone(),
    );
    let held = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, requests, protocols, targets, peak, held) = (
                acceptor.clone(),
                requests.clone(),
                protocols.clone(),
                targets.clone(),
                peak.clone(),
                held.clone(),
            );
            connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let protocol = tls
                    .get_ref()
                    .1
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).to_string())
                    .unwrap_or_default();
                protocols.lock().expect("lock").push(protocol);
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let requests = requests.clone();
                    let host = req
                        .headers()
                        .get("host")
                        .map(|h| h.to_str().unwrap_or("?").to_string());
                    let authority = req.uri().authority().map(|a| a.to_string());
                    targets.lock().expect("lock").push((host, authority));
                    let (peak, held) = (peak.clone(), held.clone());
                    async move {
                        requests.fetch_add(1, Ordering::SeqCst);
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        let until = tokio::time::Instant::now() + answering.delay;
                        while peak.load(Ordering::SeqCst) < answering.release_at
                            && tokio::time::Instant::now() < until
                        {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        held.fetch_sub(1, Ordering::SeqCst);
                        let body = fixture("upstream/anthropic/message_text.json");
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .expect("response"),
                        )
                    }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http2()
                    .max_concurrent_streams(answering.max_streams);
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    fake
}

async fn gateway(port: u16, ca_file: Option<&std::path::Path>) -> TestGateway {
    let ca = ca_file.map_or(String::new(), |f| format!(", ca_file: \"{}\"", f.display()));
    TestGateway::start(&format!(
        "providers:\n  secure: {{ type: anthropic, base_url: \"https://localhost:{port}\", api_key: sk-ant-real, retries: {{ attempts: 0 }}{ca} }}\nroutes:\n  - {{ models: [\"claude-*\"], provider: secure }}\n"
    ))
    .await
}

async fn chat(gw: &TestGateway) -> (u16, Value) {
    chat_at(&gw.url, "claude-sonnet-4-5").await
}

async fn chat_at(url: &str, model: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn ca_file(pki: &TestPki) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = crate::process::tempdir();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).expect("write");
    (dir, path)
}

/// A gateway whose provider is the fake behind its private CA, with the fake and the
/// CA file's directory (kept for the test's length).
/// A fake offering HTTP/2 and HTTP/1.1 that answers at once.
async fn prompt_fake(pki: &TestPki) -> TlsFake {
    tls_fake(pki, &[b"h2", b"http/1.1"], Answering::after(Duration::ZERO)).await
}

async fn behind_private_ca(
    alpn: &[&[u8]],
    answering: Answering,
) -> (TlsFake, TestGateway, tempfile::TempDir) {
    let pki = pki();
    let fake = tls_fake(&pki, alpn, answering).await;
    let (dir, ca) = ca_file(&pki);
    let gw = gateway(fake.port, Some(&ca)).await;
    (fake, gw, dir)
}

#[tokio::test]
async fn http2_calls_share_one_connection_to_a_provider_behind_a_private_ca() {
    let (fake, gw, _dir) = behind_private_ca(
        &[b"h2", b"http/1.1"],
        Answering::after(Duration::from_millis(200)),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(chat(&gw).await.0, 200);
    }
    let together: Vec<_> = (0..8).map(|_| chat(&gw)).collect();
    for (status, _) in futures_util::future::join_all(together).await {
        assert_eq!(status, 200);
    }
    assert_eq!(fake.requests.load(Ordering::SeqCst), 11);
    assert_eq!(
        fake.connections.load(Ordering::SeqCst),
        1,
        "eight concurrent calls multiplexed on the first connection"
    );
    assert_eq!(*fake.protocols.lock().expect("lock"), ["h2"]);
    // HTTP/2 names the server in `:authority` alone: a `host` header beside it is a
    // duplicate that nginx (and so many real front ends) refuses with 400.
    let authority = format!("localhost:{}", fake.port);
    for target in fake.targets.lock().expect("lock").iter() {
        assert_eq!(*target, (None, Some(authority.clone())));
    }
}

#[tokio::test]
async fn an_http1_provider_gets_its_connection_reused() {
    let (fake, gw, _dir) =
        behind_private_ca(&[b"http/1.1"], Answering::after(Duration::ZERO)).await;
    for _ in 0..4 {
        assert_eq!(chat(&gw).await.0, 200);
    }
    assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
    assert_eq!(*fake.protocols.lock().expect("lock"), ["http/1.1"]);
    let host = format!("localhost:{}", fake.port);
    for (sent_host, _) in fake.targets.lock().expect("lock").iter() {
        assert_eq!(sent_host.as_deref(), Some(host.as_str()));
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clean_502_naming_the_provider() {
    let pki = pki();
    let fake = prompt_fake(&pki).await;
    let gw = gateway(fake.port, None).await;
    let (status, body) = chat(&gw).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`secure`"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert_eq!(fake.requests.load(Ordering::SeqCst), 0);

    // A CA file that is not there makes the provider inactive, saying why.
    let missing = gateway(fake.port, Some(std::path::Path::new("/nonexistent/ca.pem"))).await;
    let providers = get_json(format!("{}/v1/providers", missing.url), None).await;
    assert_eq!(providers["data"][0]["status"], "inactive");
    assert!(providers["data"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("ca_file `/nonexistent/ca.pem`")));
}

/// The two other ways to trust a private CA: the host's certificate store
/// (`system_roots`, here the test CA named by `SSL_CERT_FILE`, as in an image built
/// with a company CA) and the PEM text inline (`ca_pem`, what the operator writes from
/// a ProviderRoute's `tls.caCertificates`). A provider with neither still refuses the
/// certificate.
#[tokio::test]
async fn system_roots_and_an_inline_pem_trust_a_private_ca() {
    let pki = pki();
    let fake = prompt_fake(&pki).await;
    let (dir, ca) = ca_file(&pki);
    let base = format!("https://localhost:{}", fake.port);
    let pem = serde_json::to_string(&pki.ca_pem).expect("json string");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n\
             \x20 system: {{ type: anthropic, base_url: \"{base}\", api_key: k, system_roots: true }}\n\
             \x20 inline: {{ type: anthropic, base_url: \"{base}\", api_key: k, ca_pem: {pem} }}\n\
             \x20 public: {{ type: anthropic, base_url: \"{base}\", api_key: k, retries: {{ attempts: 0 }} }}\n\
             \x20 garbled: {{ type: anthropic, base_url: \"{base}\", api_key: k, ca_pem: \"not a certificate\" }}\n\
             routes:\n\
             \x20 - {{ models: [\"claude-system\"], provider: system }}\n\
             \x20 - {{ models: [\"claude-inline\"], provider: inline }}\n\
             \x20 - {{ models: [\"claude-public\"], provider: public }}\n\
             \x20 - {{ models: [\"claude-garbled\"], provider: garbled }}\n"
        ),
    )
    .expect("config");
    let gw = crate::process::Running::start_with_env(
        &config,
        &[("SSL_CERT_FILE", ca.to_str().expect("utf-8 path"))],
    );
    assert_eq!(chat_at(&gw.api, "claude-system").await.0, 200);
    assert_eq!(chat_at(&gw.api, "claude-inline").await.0, 200);
    let (status, body) = chat_at(&gw.api, "claude-public").await;
    assert_eq!(status, 502, "{body}");
    // PEM text without a certificate leaves its provider out, saying why.
    let providers = get_json(format!("{}/v1/providers", gw.api), None).await;
    let garbled = providers["data"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "garbled"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(garbled["status"], "inactive", "{providers}");
    assert!(
        garbled["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ca_pem holds no certificate")),
        "{garbled}"
    );
    assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
}

/// A provider's HTTP/2 front end carries so many streams a connection (100 to 256 at
/// real ones): calls past that open another connection instead of queueing behind
/// agents' streams that may last minutes.
#[tokio::test]
async fn calls_past_a_connections_stream_limit_open_another_connection() {
    let calls = 150;
    let (fake, gw, _dir) = behind_private_ca(
        &[b"h2"],
        Answering {
            delay: Duration::from_secs(10),
            release_at: calls,
            max_streams: 100,
        },
    )
    .await;
    // A first call finds the provider speaks HTTP/2 (it is answered after the wait:
    // the fake holds calls until `calls` are in at once, so this one is slow).
    let first = tokio::spawn({
        let url = gw.url.clone();
        async move { chat_at(&url, "claude-sonnet-4-5").await.0 }
    });
    while fake.peak.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    let together: Vec<_> = (1..calls).map(|_| chat(&gw)).collect();
    for (status, body) in futures_util::future::join_all(together).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(first.await.expect("first call"), 200);
    assert_eq!(
        fake.peak.load(Ordering::SeqCst),
        calls,
        "every call reached the provider at once"
    );
    assert_eq!(fake.connections.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "none waited for a stream to end"
    );
}

/// A gateway that starts under load does not open a connection per call to a provider
/// that needs one: the calls of a first burst wait for the first connection, and share
/// it once it speaks HTTP/2.
#[tokio::test]
async fn a_first_burst_of_calls_shares_one_connection() {
    let (fake, gw, _dir) = behind_private_ca(
        &[b"h2", b"http/1.1"],
        Answering::after(Duration::from_millis(100)),
    )
    .await;
    let burst: Vec<_> = (0..40).map(|_| chat(&gw)).collect();
    for (status, body) in futures_util::future::join_all(burst).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(fake.requests.load(Ordering::SeqCst), 40);
    assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
}
