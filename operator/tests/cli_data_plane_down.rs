//! `kubectl aigw` when the data plane is down, against a real HTTP server on loopback
//! playing the API server and its service proxy: the client's own retry layer and
//! timeouts are in the path here, which the mock service of `cli.rs` bypasses.

use ai_gateway_operator::cli::{self, Cli, CliError};
use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROXY: &str = "/api/v1/namespaces/ai/services/ai-gateway:http/proxy";

#[derive(Clone, Copy)]
enum DataPlane {
    /// The service has no ready endpoints: the API server answers 503.
    Unavailable,
    /// The proxied call never completes.
    Hanging,
}

/// Serves ProviderRoute lists (empty) and counts proxied calls.
async fn api_server(data_plane: DataPlane) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let proxied = Arc::new(AtomicUsize::new(0));
    let counter = proxied.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let (status, body) = if path.starts_with(PROXY) {
                            counter.fetch_add(1, Ordering::SeqCst);
                            match data_plane {
                                DataPlane::Unavailable => (
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"ai-gateway:http\"","reason":"ServiceUnavailable","code":503}"#,
                                ),
                                DataPlane::Hanging => {
                                    tokio::time::sleep(Duration::from_secs(120)).await;
                                    (StatusCode::OK, "{}")
                                }
                            }
                        } else {
                            (
                                StatusCode::OK,
                                r#"{"apiVersion":"ai-gateway.dev/v1alpha1","kind":"ProviderRouteList","metadata":{},"items":[]}"#,
                            )
                        };
                        let mut resp = Response::new(Full::new(Bytes::from(body)));
                        *resp.status_mut() = status;
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (url, proxied)
}

async fn run(url: &str, args: &[&str]) -> (Result<(), CliError>, String, Duration) {
    let cli = Cli::try_parse_from(
        ["kubectl-aigw", "-n", "ai"]
            .into_iter()
            .chain(args.iter().copied()),
    )
    .expect("arguments parse");
    let config = kube::Config::new(url.parse().expect("url"));
    let client = cli::client_from(config, cli.request_timeout).expect("client");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let result = cli::run(&cli, client, &mut out, &mut err).await;
    (
        result,
        String::from_utf8(err).expect("utf-8"),
        started.elapsed(),
    )
}

#[tokio::test]
async fn usage_with_the_data_plane_down_fails_at_once_without_retrying() {
    let (url, proxied) = api_server(DataPlane::Unavailable).await;
    let (result, _, took) = run(&url, &["usage", "--key", "gw_test"]).await;
    let message = result.expect_err("no data plane").to_string();
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(message.contains("no endpoints available"), "{message}");
    assert_eq!(proxied.load(Ordering::SeqCst), 1, "one call, no retries");
    assert!(took < Duration::from_secs(5), "answered in {took:?}");
}

#[tokio::test]
async fn providers_with_a_hanging_data_plane_give_up_after_the_request_timeout() {
    let (url, proxied) = api_server(DataPlane::Hanging).await;
    let (result, err, took) = run(&url, &["--request-timeout", "1s", "providers"]).await;
    result.expect("route conditions are shown without live health");
    assert!(err.contains("live health is unavailable"), "{err}");
    assert!(err.contains("no answer within 1s"), "{err}");
    assert_eq!(proxied.load(Ordering::SeqCst), 1);
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
}
