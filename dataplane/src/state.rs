//! The gateway's shared state: the compiled config behind an atomic pointer, and the
//! services that outlive every config swap (counters, audit log, metrics).

use crate::audit::AuditLog;
use crate::compiled::{CompileError, CompiledConfig};
use crate::limits::{Store, StoreError};
use crate::metrics::Metrics;
use crate::pricing::{PriceTable, PriceTableError};
use crate::upstream::ClientPool;
use ai_gateway_snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What every request shares regardless of the config version it runs under.
pub struct Services {
    pub store: Store,
    pub metrics: Metrics,
    pub audit: AuditLog,
    /// The cascades' routing outcomes file, when the config names one.
    pub outcomes: crate::audit::OutcomesLog,
    pub prices: PriceTable,
    pub tokens: crate::tokenreview::TokenReviewer,
    pub pods: crate::pods::PodDirectory,
    pub replays: crate::auth::SigV4Replays,
    pub cache: Arc<crate::cache::ResponseCache>,
    /// Room for request bodies while they arrive, across all connections.
    pub bodies: crate::body::BodyBudget,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    CompiledConfig(#[from] CompileError),
    #[error(transparent)]
    Prices(#[from] PriceTableError),
    #[error("rate-limit store: {0}")]
    Store(#[from] StoreError),
    #[error("audit sink: {0}")]
    Audit(#[from] std::io::Error),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

/// What a request is served with: the compiled config it loaded once, and the services
/// that outlive configs.
#[derive(Clone, Copy)]
pub struct Serving<'a> {
    pub compiled: &'a CompiledConfig,
    pub services: &'a Services,
}

pub struct Gateway {
    compiled: ArcSwap<CompiledConfig>,
    clients: ClientPool,
    pub services: Arc<Services>,
    draining: AtomicBool,
}

impl Gateway {
    /// The rate-limit store and audit sink come from the first snapshot; later swaps
    /// change limits and routes but keep the counters and the sink.
    pub async fn new(snapshot: Snapshot) -> Result<Self, StartError> {
        Self::with_data_dir(snapshot, None).await
    }

    /// A gateway whose embedded store keeps its counters and ledger in `data_dir`.
    pub async fn with_data_dir(
        snapshot: Snapshot,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Self, StartError> {
        let metrics = Metrics::default();
        let audit_counters = metrics.audit_counters();
        let services = Arc::new(Services {
            store: Store::from_config(&snapshot.rate_limits, data_dir)?,
            audit: AuditLog::start(&snapshot.audit, audit_counters)?,
            outcomes: Default::default(),
            prices: PriceTable::builtin()?,
            tokens: Default::default(),
            pods: Default::default(),
            replays: Default::default(),
            cache: Arc::new(crate::cache::ResponseCache::new(&snapshot)?),
            bodies: crate::body::BodyBudget::new(snapshot.gateway.max_buffered_request_bytes),
            metrics,
        });
        let clients = ClientPool::default();
        let compiled = CompiledConfig::compile(snapshot, &clients)?;
        services.metrics.config_applied(&compiled.version);
        Ok(Self {
            compiled: ArcSwap::from_pointee(compiled),
            clients,
            services,
            draining: AtomicBool::new(false),
        })
    }

    /// The compiled config a request uses from start to finish, even if a swap happens meanwhile.
    pub fn compiled(&self) -> Arc<CompiledConfig> {
        self.compiled.load_full()
    }

    /// Compiles and swaps in a new snapshot. In-flight requests keep the compiled config they
    /// started with; an invalid snapshot leaves the current one serving; a snapshot
    /// equal to the one served is kept as it is, so a repeated push never resets pools
    /// or breakers. Content decides, not the `version:` label: an edit that forgets to
    /// change it is applied all the same.
    pub fn apply(&self, snapshot: Snapshot) -> Result<Arc<CompiledConfig>, CompileError> {
        let current = self.compiled.load_full();
        if snapshot == current.snapshot {
            return Ok(current);
        }
        if snapshot.effective_version() == current.version {
            tracing::warn!(version = %current.version, "config content changed under the same version label; applying it");
        }
        let compiled = Arc::new(CompiledConfig::compile(snapshot, &self.clients)?);
        self.compiled.store(compiled.clone());
        self.services.metrics.config_applied(&compiled.version);
        log_providers(&compiled);
        Ok(compiled)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

pub fn log_providers(compiled: &CompiledConfig) {
    tracing::info!(version = %compiled.version, content = %compiled.snapshot.content_hash(),
        providers = compiled.providers.len(), routes = compiled.snapshot.routes.len(),
        "config applied");
    for p in compiled.providers.values() {
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
