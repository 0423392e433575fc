//! The snapshot compiled for serving: providers with their HTTP clients and resolved
//! credentials, and the route table. Built once per snapshot, then read lock-free
//! behind an `ArcSwap` by every request.

use crate::auth::KeyStore;
use crate::intelligence::skills::Catalogue;
use crate::limits::LimitPlan;
use crate::routing::RouteTable;
use crate::upstream::{ClientPool, Upstream};
use ai_gateway_snapshot::Snapshot;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct CompiledConfig {
    pub snapshot: Snapshot,
    pub version: String,
    pub providers: BTreeMap<String, Arc<Upstream>>,
    pub routes: RouteTable,
    pub keys: KeyStore,
    pub limits: LimitPlan,
    pub skills: Catalogue,
    /// Shared with the calls that watch their daily limits.
    pub budget_alerts: Arc<ai_gateway_snapshot::BudgetAlerts>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("invalid snapshot:\n{0}")]
    Invalid(#[from] ai_gateway_snapshot::Problems),
}

impl CompiledConfig {
    pub fn compile(snapshot: Snapshot, pool: &ClientPool) -> Result<Self, CompileError> {
        snapshot.validate()?;
        let mut providers = BTreeMap::new();
        for (name, config) in &snapshot.providers {
            providers.insert(name.clone(), Arc::new(Upstream::new(name, config, pool)));
        }
        let routes = RouteTable::new(&snapshot, &providers);
        Ok(Self {
            budget_alerts: Arc::new(snapshot.budget_alerts.clone()),
            version: snapshot.effective_version(),
            keys: KeyStore::new(&snapshot.auth),
            limits: LimitPlan::new(&snapshot.rate_limits),
            skills: Catalogue::new(&snapshot.skills),
            snapshot,
            providers,
            routes,
        })
    }
}

impl CompiledConfig {
    /// Every provider as callers and the admin API see it: kind, region, whether it is
    /// active and its breaker's state; never where it is or how it is reached.
    pub fn provider_list(&self) -> ai_gateway_snapshot::replies::ProviderList {
        ai_gateway_snapshot::replies::ProviderList {
            object: ai_gateway_snapshot::replies::ListObject::List,
            data: self.providers.values().map(|p| p.info()).collect(),
        }
    }
}
