//! The HTTP client that reaches providers: hyper's pooled client over rustls (HTTP/2
//! where the provider offers it), calling https providers through the egress proxy
//! named by `HTTPS_PROXY` / `ALL_PROXY` unless `NO_PROXY` lists them.
//!
//! hyper directly rather than a higher-level client: this sits on every call, and the
//! layers such a client adds (redirect and retry services, URL re-parsing) cost more
//! CPU per request than the gateway's own work. Redirects are never followed anyway:
//! a provider answering with one is misconfigured, and following could carry its key
//! elsewhere.

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

pub type HttpClient = Client<Noticing, Full<Bytes>>;

/// A provider's answer, its body still to arrive.
pub type UpstreamResponse = http::Response<LaneBody>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds a client whose new connections give up after `connect`.
pub fn build(connect: Duration, proxies: Arc<Matcher>) -> HttpClient {
    pooled(Noticing::new(public_connector(connect, proxies)), false)
}

/// Calls one lane carries at once before another opens beside it. HTTP/2 puts every
/// call to a provider on one connection and hyper queues those past the server's
/// SETTINGS_MAX_CONCURRENT_STREAMS rather than dialling again, so an agent's stream
/// would wait minutes for another to end; 100 is the least RFC 9113 asks servers to
/// allow.
pub const CALLS_PER_LANE: usize = 100;

/// The clients of one provider address and TLS configuration: each lane a pooled
/// client (its own connections) carrying at most [`CALLS_PER_LANE`] calls; a new lane
/// opens when all are full. They share one TLS config, and so its session cache.
pub struct Lanes {
    connector: Noticing,
    lanes: std::sync::Mutex<Vec<Lane>>,
    /// A first call is dialling: calls arriving meanwhile wait for its connection
    /// (at most `connect`), which they share if it speaks HTTP/2.
    first_contact: std::sync::atomic::AtomicBool,
    connect: Duration,
}

struct Lane {
    client: HttpClient,
    in_flight: Arc<AtomicUsize>,
}

impl Lanes {
    fn new(connector: HttpsConnector<Dialer>, connect: Duration) -> Self {
        Self {
            connector: Noticing::new(connector),
            lanes: std::sync::Mutex::default(),
            first_contact: std::sync::atomic::AtomicBool::new(false),
            connect,
        }
    }

    /// Sends `request` on the first lane with room, opening one when none has.
    pub async fn request(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, hyper_util::client::legacy::Error> {
        // Until a connection has been made nobody knows whether the server speaks
        // HTTP/2, and hyper would dial once for every call of a burst: a gateway
        // starting under load would open hundreds of TLS connections to a provider
        // that needs one.
        // Once a connection has been made this is one shared read, no write, a call.
        if !*self.connector.made.borrow() && self.first_contact.swap(true, Ordering::Relaxed) {
            let mut made = self.connector.made.subscribe();
            let _ = tokio::time::timeout(self.connect, made.wait_for(|made| *made)).await;
        }
        let (client, slot) = self.pick();
        let response = client.request(request).await?;
        Ok(response.map(|inner| LaneBody { inner, _slot: slot }))
    }

    fn pick(&self) -> (HttpClient, LaneSlot) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        // Slots are only taken under the lock, so a lane seen with room has it.
        if let Some(lane) = lanes
            .iter()
            .find(|l| l.in_flight.load(Ordering::Relaxed) < CALLS_PER_LANE)
        {
            lane.in_flight.fetch_add(1, Ordering::Relaxed);
            return (lane.client.clone(), LaneSlot(lane.in_flight.clone()));
        }
        // A server known to speak HTTP/2: the new lane's burst waits for one connection.
        let http2_only = self.connector.http2.load(Ordering::Relaxed);
        let lane = Lane {
            client: pooled(self.connector.clone(), http2_only),
            in_flight: Arc::new(AtomicUsize::new(1)),
        };
        let picked = (lane.client.clone(), LaneSlot(lane.in_flight.clone()));
        lanes.push(lane);
        picked
    }
}

/// The connector under a provider's lanes, noting when a connection negotiates HTTP/2
/// (by ALPN) so that lanes opened later dial once for a burst of calls.
#[derive(Clone)]
pub struct Noticing {
    inner: HttpsConnector<Dialer>,
    http2: Arc<std::sync::atomic::AtomicBool>,
    /// Set once a connection attempt has ended, made or not.
    made: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Noticing {
    fn new(inner: HttpsConnector<Dialer>) -> Self {
        Self {
            inner,
            http2: Arc::default(),
            made: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

type TlsStream = <HttpsConnector<Dialer> as Service<Uri>>::Response;

impl Service<Uri> for Noticing {
    type Response = TlsStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let (http2, made) = (self.http2.clone(), self.made.clone());
        Box::pin(async move {
            let connected = connecting.await;
            if let Ok(stream) = &connected {
                if stream.connected().is_negotiated_h2() {
                    http2.store(true, Ordering::Relaxed);
                }
            }
            // A failed attempt frees the waiting calls too: each then dials for itself.
            made.send_replace(true);
            connected
        })
    }
}

/// A call's place in its lane, given back when the answer's body is dropped.
struct LaneSlot(Arc<AtomicUsize>);

impl Drop for LaneSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer's body holding its call's place in the lane until it is done with.
pub struct LaneBody {
    inner: hyper::body::Incoming,
    _slot: LaneSlot,
}

impl http_body::Body for LaneBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Certificate authorities a provider's TLS certificate may chain to beyond the
/// public roots (webpki's bundle, always trusted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Trust {
    /// A PEM file of extra CAs.
    pub ca_file: Option<String>,
    /// PEM text of extra CAs.
    pub ca_pem: Option<String>,
    /// The host's certificate store as well.
    pub system_roots: bool,
}

impl Trust {
    pub fn of(provider: &ai_gateway_snapshot::Provider) -> Self {
        Self {
            ca_file: provider.ca_file.clone(),
            ca_pem: provider.ca_pem.clone(),
            system_roots: provider.system_roots,
        }
    }

    fn is_public_only(&self) -> bool {
        *self == Self::default()
    }

    /// The root store: webpki's, the host's when asked, and the CAs named; an
    /// unreadable file, bad PEM or a source without a certificate is an error naming it.
    fn roots(&self) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found.errors.first().map(ToString::to_string);
                return Err(format!(
                    "system_roots: no certificate in the host's store{}",
                    why.map(|w| format!(" ({w})")).unwrap_or_default()
                ));
            }
            // One bad certificate in a system bundle must not distrust the rest.
            roots.add_parsable_certificates(found.certs);
        }
        if let Some(file) = &self.ca_file {
            let pem = std::fs::read(file).map_err(|e| format!("ca_file `{file}`: {e}"))?;
            add_pem(&mut roots, &pem).map_err(|e| format!("ca_file `{file}`{e}"))?;
        }
        if let Some(pem) = &self.ca_pem {
            add_pem(&mut roots, pem.as_bytes()).map_err(|e| format!("ca_pem{e}"))?;
        }
        Ok(roots)
    }
}

/// Adds every certificate of `pem` to `roots`; the error (`: why`) when one is bad or
/// there is none.
fn add_pem(roots: &mut rustls::RootCertStore, pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!(": {e}"))?;
        roots.add(cert).map_err(|e| format!(": {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err(" holds no certificate".into());
    }
    Ok(())
}

/// Lanes whose connections trust `trust`'s certificate authorities besides the
/// public roots, and give up connecting after `connect`.
pub fn lanes(connect: Duration, proxies: Arc<Matcher>, trust: &Trust) -> Result<Lanes, String> {
    if trust.is_public_only() {
        return Ok(public_lanes(connect, proxies));
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(trust.roots()?)
    .with_no_client_auth();
    let https = HttpsConnectorBuilder::new().with_tls_config(tls);
    Ok(Lanes::new(connector(connect, proxies, https), connect))
}

/// Lanes trusting the public roots alone.
pub fn public_lanes(connect: Duration, proxies: Arc<Matcher>) -> Lanes {
    Lanes::new(public_connector(connect, proxies), connect)
}

fn public_connector(connect: Duration, proxies: Arc<Matcher>) -> HttpsConnector<Dialer> {
    connector(
        connect,
        proxies,
        HttpsConnectorBuilder::new().with_webpki_roots(),
    )
}

/// The connector under every client: TCP (or a proxy's tunnel), then TLS offering
/// HTTP/2 and HTTP/1.1 by ALPN for https URIs.
fn connector(
    connect: Duration,
    proxies: Arc<Matcher>,
    https: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
) -> HttpsConnector<Dialer> {
    let mut tcp = HttpConnector::new();
    // The TLS layer above hands it https URIs.
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect));
    https
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(Dialer { tcp, proxies })
}

/// A pooled client over `https`: connections kept alive for reuse. `http2_only` for a
/// server known to speak HTTP/2, so that calls arriving together while it connects
/// wait for that one connection instead of each dialling.
fn pooled(https: Noticing, http2_only: bool) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(http2_only)
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

/// The proxy settings of this process's environment, read once.
pub fn proxies_from_env() -> Arc<Matcher> {
    Arc::new(Matcher::from_env())
}

/// Opens the TCP stream under a provider connection: straight to the provider, or,
/// for an https provider the proxy settings intercept, a CONNECT tunnel through the
/// proxy (TLS then runs end to end inside it). Plain-http providers (Ollama, local
/// servers) are always dialled directly.
#[derive(Clone)]
pub struct Dialer {
    tcp: HttpConnector,
    proxies: Arc<Matcher>,
}

impl Service<Uri> for Dialer {
    type Response = ProviderStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = (dst.scheme() == Some(&http::uri::Scheme::HTTPS))
            .then(|| self.proxies.intercept(&dst))
            .flatten();
        let mut tcp = self.tcp.clone();
        match intercept {
            None => Box::pin(async move {
                tcp.call(dst)
                    .await
                    .map(|io| ProviderStream::new(io.into_inner(), ()))
                    .map_err(BoxError::from)
            }),
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    tunnel
                        .call(dst)
                        .await
                        .map(|io| ProviderStream::new(io.into_inner(), ()))
                        .map_err(BoxError::from)
                })
            }
        }
    }
}

/// A TCP stream to a provider (or a proxy tunnel to one). Unlike the plain stream it
/// reports no connection details: the client would copy them into every response's
/// extensions, and nothing here reads them.
pub type ProviderStream = crate::tcp::Tcp;

impl Connection for ProviderStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Whether a failed call failed by running out of time (connecting, most often).
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = c.source();
    }
    false
}
