//! Callers identified by the pod they call from (opt-in, `kubernetes` auth mode): a
//! workspace's aws cli or boto3 signs with whatever credentials it has, or none, and
//! presents no gateway key or ServiceAccount token. Its source address is looked up in
//! a watch of the cluster's running pods; the pod's namespace and ServiceAccount then
//! name the caller exactly as a token of that ServiceAccount would.
//!
//! Only sound where source addresses cannot be forged or shared: the gateway's
//! NetworkPolicy admits workspace pods directly (no proxy, NAT or sidecar in between),
//! and an address a host-network pod or a node also uses is refused.

use crate::auth::Identity;
use crate::error::GatewayError;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::ResourceExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a first caller waits for the initial pod list.
const SYNC_WAIT: Duration = Duration::from_secs(5);
/// How long a pod's identity (its namespace and ServiceAccount labels) is reused.
const IDENTITY_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
struct PodEntry {
    namespace: String,
    name: String,
    service_account: String,
    host_network: bool,
    ips: Vec<IpAddr>,
}

impl PodEntry {
    fn of(pod: &Pod) -> Option<(String, Self)> {
        let uid = pod.uid()?;
        let spec = pod.spec.as_ref()?;
        let status = pod.status.as_ref()?;
        if status.phase.as_deref() != Some("Running") {
            return None;
        }
        let mut ips: Vec<IpAddr> = status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        Some((
            uid,
            Self {
                namespace: pod.namespace()?,
                name: pod.name_any(),
                service_account: spec
                    .service_account_name
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                host_network: spec.host_network == Some(true),
                ips,
            },
        ))
    }
}

/// Running pods by uid and by address.
#[derive(Default)]
struct Index {
    by_uid: HashMap<String, PodEntry>,
    by_ip: HashMap<IpAddr, Vec<String>>,
    synced: bool,
}

impl Index {
    fn remove(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        for ip in old.ips {
            if let Some(uids) = self.by_ip.get_mut(&ip) {
                uids.retain(|u| u != uid);
                if uids.is_empty() {
                    self.by_ip.remove(&ip);
                }
            }
        }
    }

    fn apply(&mut self, pod: &Pod) {
        let Some(uid) = pod.uid() else { return };
        self.remove(&uid);
        if let Some((uid, entry)) = PodEntry::of(pod) {
            for ip in &entry.ips {
                self.by_ip.entry(*ip).or_default().push(uid.clone());
            }
            self.by_uid.insert(uid, entry);
        }
    }

    /// The one pod at `ip`, or why the address names nobody.
    fn caller(&self, ip: IpAddr) -> Result<&PodEntry, GatewayError> {
        let pods: Vec<&PodEntry> = self
            .by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.by_uid.get(uid))
            .collect();
        match pods.as_slice() {
            [] => Err(GatewayError::Unauthorized(format!(
                "no running pod has the address {ip}: send a gateway key or a ServiceAccount token"
            ))),
            [pod] if !pod.host_network => Ok(pod),
            _ => Err(GatewayError::Unauthorized(format!(
                "{ip} is a node or host-network address, shared by more than one caller: send a gateway key or a ServiceAccount token"
            ))),
        }
    }
}

pub struct PodDirectory {
    client: crate::tokenreview::ClusterClient,
    watching: tokio::sync::OnceCell<()>,
    index: Arc<RwLock<Index>>,
    synced: Arc<tokio::sync::Notify>,
    identities: moka::sync::Cache<(String, String), Identity>,
}

impl Default for PodDirectory {
    fn default() -> Self {
        Self {
            client: Default::default(),
            watching: tokio::sync::OnceCell::new(),
            index: Arc::default(),
            synced: Arc::default(),
            identities: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(IDENTITY_TTL)
                .build(),
        }
    }
}

fn unavailable(detail: impl std::fmt::Display) -> GatewayError {
    GatewayError::AuthUnavailable(format!("callers cannot be identified by pod: {detail}"))
}

impl PodDirectory {
    /// Uses this client instead of the in-cluster or kubeconfig one.
    pub fn use_client(&self, client: kube::Client) -> bool {
        self.client.set(client)
    }

    async fn client(&self) -> Result<&kube::Client, GatewayError> {
        self.client.get().await.map_err(unavailable)
    }

    /// Starts the pod watch on first use; it runs for the life of the process.
    async fn watch(&self) -> Result<(), GatewayError> {
        let client = self.client().await?.clone();
        self.watching
            .get_or_init(|| async {
                let index = self.index.clone();
                let synced = self.synced.clone();
                let config = watcher::Config::default().fields("status.phase=Running");
                let events = watcher(kube::Api::<Pod>::all(client), config);
                tokio::spawn(keep_index(events, index, synced));
            })
            .await;
        Ok(())
    }

    /// The caller at `addr`: its pod's ServiceAccount, named by labels.
    pub async fn identify(&self, addr: IpAddr) -> Result<Identity, GatewayError> {
        let ip = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.watch().await?;
        if !self.is_synced() {
            let waiting = self.synced.notified();
            if !self.is_synced() {
                tokio::time::timeout(SYNC_WAIT, waiting)
                    .await
                    .map_err(|_| unavailable("the pod list has not arrived yet"))?;
            }
        }
        let (namespace, account) = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            let pod = index.caller(ip)?;
            (pod.namespace.clone(), pod.service_account.clone())
        };
        let key = (namespace, account);
        if let Some(identity) = self.identities.get(&key) {
            return Ok(identity);
        }
        let client = self.client().await?;
        let identity = crate::tokenreview::identity_from_labels(client, &key.0, &key.1).await;
        self.identities.insert(key, identity.clone());
        Ok(identity)
    }

    fn is_synced(&self) -> bool {
        self.index.read().unwrap_or_else(|p| p.into_inner()).synced
    }
}

/// Applies the watch's events to the index until the process ends; the watcher
/// re-lists by itself after errors, with kube's backoff.
async fn keep_index(
    events: impl futures_util::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>>,
    index: Arc<RwLock<Index>>,
    synced: Arc<tokio::sync::Notify>,
) {
    use kube::runtime::WatchStreamExt;
    let mut events = std::pin::pin!(events.default_backoff());
    // A re-list builds a fresh index, swapped in whole once complete.
    let mut relisting: Option<Index> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => relisting = Some(Index::default()),
            watcher::Event::InitApply(pod) => {
                relisting.get_or_insert_with(Index::default).apply(&pod)
            }
            watcher::Event::InitDone => {
                let mut fresh = relisting.take().unwrap_or_default();
                fresh.synced = true;
                *index.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                synced.notify_waiters();
            }
            watcher::Event::Apply(pod) => {
                index.write().unwrap_or_else(|p| p.into_inner()).apply(&pod);
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.uid() {
                    index
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&uid);
                }
            }
        }
    }
}
