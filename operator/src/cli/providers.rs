//! `providers`: the gateway's ProviderRoutes, their conditions, and the data plane's
//! live view of each (`/v1/providers`).

use super::render::{json_out, table};
use super::{CliError, Format, Out, Session};
use ai_gateway_crds::ProviderRoute;
use ai_gateway_snapshot::replies::{ProviderInfo, ProviderList};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde::Serialize;
use std::collections::BTreeMap;

/// A route as `-o json` shows it.
#[derive(Serialize)]
struct RouteEntry<'a> {
    name: String,
    #[serde(rename = "type")]
    kind: ai_gateway_snapshot::ProviderKind,
    models: &'a [String],
    priority: u32,
    conditions: Vec<ConditionEntry<'a>>,
    live: Option<&'a ProviderInfo>,
}

#[derive(Serialize)]
struct ConditionEntry<'a> {
    r#type: &'a str,
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

impl<'a> ConditionEntry<'a> {
    fn of(c: &'a Condition) -> Self {
        Self {
            r#type: &c.type_,
            status: &c.status,
            reason: &c.reason,
            message: &c.message,
        }
    }
}

impl RouteEntry<'_> {
    /// A table row; `live_error` set means the data plane could not be asked.
    fn cells(&self, live_error: Option<&str>) -> Vec<String> {
        let condition = |t: &str| {
            self.conditions
                .iter()
                .find(|c| c.r#type == t)
                .map_or("Unknown", |c| c.status)
                .to_string()
        };
        let failing = self
            .conditions
            .iter()
            .find(|c| c.status != "True")
            .map(|c| format!("{}: {}", c.reason, c.message));
        let (state, circuit, reason) = match (live_error, self.live) {
            (Some(_), _) => ("unknown", "-", None),
            (None, None) => ("not loaded", "-", None),
            (None, Some(live)) => (
                live.status.as_str(),
                live.circuit.as_str(),
                live.reason.clone(),
            ),
        };
        let models = if self.models.is_empty() {
            "-".to_string()
        } else {
            self.models.join(",")
        };
        vec![
            self.name.clone(),
            self.kind.as_str().to_string(),
            models,
            self.priority.to_string(),
            condition("Accepted"),
            condition("ResolvedRefs"),
            state.to_string(),
            circuit.to_string(),
            failing.or(reason).unwrap_or_default(),
        ]
    }
}

impl Session {
    pub(super) async fn providers(&self, out: Out<'_>, err: Out<'_>) -> Result<(), CliError> {
        let api: Api<ProviderRoute> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut routes = api.list(&ListParams::default()).await?.items;
        routes.retain(|r| r.spec.gateway_ref == self.gateway);
        routes.sort_by_key(|r| r.name_any());

        let live = self.proxy_get::<ProviderList>("/v1/providers", None).await;
        let live_by_name: BTreeMap<&str, &ProviderInfo> = match &live {
            Ok(list) => list.data.iter().map(|p| (p.name.as_str(), p)).collect(),
            Err(_) => BTreeMap::new(),
        };
        let live_error = live.as_ref().err().map(|e| e.to_string());

        let entries: Vec<RouteEntry<'_>> = routes
            .iter()
            .map(|r| {
                let name = r.name_any();
                RouteEntry {
                    live: live_by_name.get(name.as_str()).copied(),
                    name,
                    kind: r.spec.r#type,
                    models: &r.spec.models,
                    priority: r.spec.priority,
                    conditions: r
                        .status
                        .iter()
                        .flat_map(|s| &s.conditions)
                        .map(ConditionEntry::of)
                        .collect(),
                }
            })
            .collect();

        if self.format == Format::Json {
            #[derive(Serialize)]
            struct Providers<'a> {
                gateway: &'a str,
                namespace: &'a str,
                routes: &'a [RouteEntry<'a>],
                live_error: Option<String>,
            }
            return json_out(
                out,
                &Providers {
                    gateway: &self.gateway,
                    namespace: &self.namespace,
                    routes: &entries,
                    live_error,
                },
            );
        }
        if entries.is_empty() {
            writeln!(
                err,
                "No ProviderRoutes for gateway {} in namespace {}.",
                self.gateway, self.namespace
            )?;
        } else {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| e.cells(live_error.as_deref()))
                .collect();
            table(
                out,
                &[
                    "NAME",
                    "TYPE",
                    "MODELS",
                    "PRIORITY",
                    "ACCEPTED",
                    "RESOLVEDREFS",
                    "LIVE",
                    "CIRCUIT",
                    "MESSAGE",
                ],
                &rows,
            )?;
        }
        if let Some(e) = live_error {
            writeln!(
                err,
                "note: live health is unavailable, showing route conditions only.\n  {e}\n  \
                 Is the data plane running (kubectl -n {ns} get pods -l app.kubernetes.io/instance={gw})? \
                 The service proxy also needs `get` on `services/proxy` in {ns}.",
                ns = self.namespace,
                gw = self.gateway,
            )?;
        }
        Ok(())
    }
}
