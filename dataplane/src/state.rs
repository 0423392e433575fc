//! The gateway's shared state: the compiled config behind an atomic pointer, and the
//! services that outlive every config swap (counters, audit log, metrics).

use crate::audit::AuditLog;
use crate::compiled::{CompileError, CompiledConfig};
use crate::keystore::StoredKeys;
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
    /// The last errors and today's rate-limit refusals, for the dashboard.
    pub trouble: crate::audit::RecentTrouble,
    /// Budget alerts raised today, and the webhook client.
    pub raised: crate::alerts::Raised,
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
    #[error(transparent)]
    KeyStore(#[from] crate::keystore::KeyStoreError),
}

/// How often a running gateway looks for keys made or revoked in its key store.
pub const KEY_POLL: std::time::Duration = std::time::Duration::from_millis(250);

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
    /// Where the embedded store and the key store live, when the process has one.
    pub data_dir: Option<std::path::PathBuf>,
    /// The config as given (before the key store's keys join it), and those keys.
    given: std::sync::Mutex<(Snapshot, StoredKeys)>,
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
            trouble: Default::default(),
            raised: Default::default(),
            prices: PriceTable::builtin()?,
            tokens: Default::default(),
            pods: Default::default(),
            replays: Default::default(),
            cache: Arc::new(crate::cache::ResponseCache::new(&snapshot)?),
            bodies: crate::body::BodyBudget::new(snapshot.gateway.max_buffered_request_bytes),
            metrics,
        });
        let clients = ClientPool::default();
        let stored = match data_dir {
            Some(dir) => crate::keystore::KeyStore::open(dir)?.stored()?,
            None => StoredKeys::default(),
        };
        let merged = crate::keystore::with_stored_keys(snapshot.clone(), &stored);
        let compiled = CompiledConfig::compile(merged, &clients)?;
        services.metrics.config_applied(&compiled.version);
        Ok(Self {
            compiled: ArcSwap::from_pointee(compiled),
            clients,
            services,
            draining: AtomicBool::new(false),
            data_dir: data_dir.map(std::path::Path::to_path_buf),
            given: std::sync::Mutex::new((snapshot, stored)),
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
        let snapshot = {
            let mut given = self.given.lock().unwrap_or_else(|p| p.into_inner());
            given.0 = snapshot.clone();
            crate::keystore::with_stored_keys(snapshot, &given.1)
        };
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

    /// Serves the key store's keys as they are now, beside the config's.
    pub fn stored_keys_changed(&self, keys: StoredKeys) {
        let given = {
            let mut given = self.given.lock().unwrap_or_else(|p| p.into_inner());
            if given.1 == keys {
                return;
            }
            given.1 = keys;
            given.0.clone()
        };
        if let Err(e) = self.apply(given) {
            tracing::error!(error = %e, "the key store's keys could not be applied");
        }
    }

    /// Reads the key store every [`KEY_POLL`] while the gateway lives, so keys made or
    /// revoked with `ai-gateway keys` or the admin API are served within a second.
    pub fn watch_stored_keys(self: &Arc<Self>) {
        let Some(dir) = self.data_dir.clone() else {
            return;
        };
        let gateway = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("key-store".into())
            .spawn(move || {
                let store = match crate::keystore::KeyStore::open(&dir) {
                    Ok(store) => store,
                    Err(e) => return tracing::error!(error = %e, "cannot watch the key store"),
                };
                let mut seen = None;
                loop {
                    std::thread::sleep(KEY_POLL);
                    let Some(gateway) = gateway.upgrade() else {
                        return;
                    };
                    let version = store.version().ok();
                    if version.is_some() && version == seen {
                        continue;
                    }
                    seen = version;
                    match store.stored() {
                        Ok(keys) => gateway.stored_keys_changed(keys),
                        Err(e) => tracing::error!(error = %e, "cannot read the key store"),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot watch the key store");
        }
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
