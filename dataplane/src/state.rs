//! The gateway's shared state: the current runtime behind an atomic pointer.

use crate::runtime::{ClientPool, Runtime, RuntimeError};
use ai_gateway_snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    clients: ClientPool,
    draining: AtomicBool,
}

impl Gateway {
    pub fn new(snapshot: Snapshot) -> Result<Self, RuntimeError> {
        let clients = ClientPool::default();
        let runtime = Runtime::compile(snapshot, &clients)?;
        Ok(Self {
            runtime: ArcSwap::from_pointee(runtime),
            clients,
            draining: AtomicBool::new(false),
        })
    }

    /// The runtime a request uses from start to finish, even if a swap happens meanwhile.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Compiles and swaps in a new snapshot. In-flight requests keep the runtime they
    /// started with; an invalid snapshot leaves the current one serving.
    pub fn apply(&self, snapshot: Snapshot) -> Result<Arc<Runtime>, RuntimeError> {
        let runtime = Arc::new(Runtime::compile(snapshot, &self.clients)?);
        self.runtime.store(runtime.clone());
        log_providers(&runtime);
        Ok(runtime)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

pub fn log_providers(runtime: &Runtime) {
    tracing::info!(version = %runtime.version, providers = runtime.providers.len(),
        routes = runtime.snapshot.routes.len(), "config applied");
    for p in runtime.providers.values() {
        match &p.inactive {
            Some(reason) => {
                tracing::warn!(provider = %p.name, kind = p.kind.as_str(), %reason, "provider inactive")
            }
            None => {
                tracing::info!(provider = %p.name, kind = p.kind.as_str(), base_url = %p.base_url, "provider active")
            }
        }
    }
}
