//! Which provider serves a model: an explicit `X-Provider`, a `provider/model` or
//! `provider:model` prefix, then the routes' exact names and globs by priority.

use crate::error::GatewayError;
use crate::runtime::Upstream;
use ai_gateway_snapshot::{is_glob, Snapshot};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

struct CompiledRoute {
    patterns: Vec<glob::Pattern>,
    provider: Arc<Upstream>,
    upstream_model: Option<String>,
    priority: u32,
    fallback: Vec<String>,
}

pub struct RouteTable {
    /// Exact model name → indexes into `routes`, best first.
    exact: HashMap<String, Vec<usize>>,
    routes: Vec<CompiledRoute>,
    providers: BTreeMap<String, Arc<Upstream>>,
    /// Every exact name and glob, for "known: …" in errors.
    known: Vec<String>,
}

/// The provider and upstream model id chosen for one request.
#[derive(Clone)]
pub struct Resolved {
    pub provider: Arc<Upstream>,
    pub upstream_model: String,
    /// Providers the winning route falls back to, in order.
    pub fallback: Vec<String>,
}

impl RouteTable {
    pub fn new(snapshot: &Snapshot, providers: &BTreeMap<String, Arc<Upstream>>) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut routes = Vec::new();
        let mut known = Vec::new();
        for route in &snapshot.routes {
            // Validation guarantees the provider exists; skip defensively otherwise.
            let Some(provider) = providers.get(&route.provider) else {
                continue;
            };
            let index = routes.len();
            let mut patterns = Vec::new();
            for model in &route.models {
                known.push(model.clone());
                if is_glob(model) {
                    if let Ok(p) = glob::Pattern::new(model) {
                        patterns.push(p);
                    }
                } else {
                    exact.entry(model.clone()).or_default().push(index);
                }
            }
            routes.push(CompiledRoute {
                patterns,
                provider: provider.clone(),
                upstream_model: route.upstream_model.clone(),
                priority: route.priority,
                fallback: route.fallback.clone(),
            });
        }
        for indexes in exact.values_mut() {
            indexes.sort_by_key(|&i| (routes[i].priority, i));
        }
        known.sort();
        known.dedup();
        Self {
            exact,
            routes,
            providers: providers.clone(),
            known,
        }
    }

    /// Every route entry that names a single model, with the provider that really
    /// serves it (a glob of higher priority may win): what `/v1/models` lists.
    pub fn exact_models(&self) -> impl Iterator<Item = (&str, Arc<Upstream>)> {
        self.exact.keys().filter_map(|model| {
            self.resolve(model, None)
                .ok()
                .map(|r| (model.as_str(), r.provider))
        })
    }

    pub fn resolve(
        &self,
        model: &str,
        forced_provider: Option<&str>,
    ) -> Result<Resolved, GatewayError> {
        if let Some(name) = forced_provider {
            let provider =
                self.providers
                    .get(name)
                    .ok_or_else(|| GatewayError::UnknownProvider {
                        name: name.to_string(),
                        known: self
                            .providers
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
            let bare = strip_provider_prefix(model, name);
            return Ok(self
                .best_route(bare, Some(name))
                .or_else(|| self.best_route(model, Some(name)))
                .unwrap_or_else(|| Resolved {
                    provider: provider.clone(),
                    upstream_model: bare.to_string(),
                    fallback: Vec::new(),
                }));
        }
        if let Some((prefix, rest)) = split_provider_prefix(model) {
            if let Some(provider) = self.providers.get(prefix) {
                return Ok(self
                    .best_route(model, Some(prefix))
                    .or_else(|| self.best_route(rest, Some(prefix)))
                    .unwrap_or_else(|| Resolved {
                        provider: provider.clone(),
                        upstream_model: rest.to_string(),
                        fallback: Vec::new(),
                    }));
            }
        }
        self.best_route(model, None)
            .ok_or_else(|| GatewayError::UnknownModel {
                model: model.to_string(),
                known: if self.known.is_empty() {
                    "no models are routed".to_string()
                } else {
                    self.known.join(", ")
                },
            })
    }

    fn best_route(&self, model: &str, provider: Option<&str>) -> Option<Resolved> {
        let matches_provider = |r: &CompiledRoute| provider.is_none_or(|p| r.provider.name == p);
        // An exact name beats a glob of the same priority.
        let exact = self.exact.get(model).and_then(|idx| {
            idx.iter()
                .copied()
                .find(|&i| matches_provider(&self.routes[i]))
        });
        let glob = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| matches_provider(r) && r.patterns.iter().any(|p| p.matches(model)))
            .min_by_key(|(i, r)| (r.priority, *i))
            .map(|(i, _)| i);
        let chosen = match (exact, glob) {
            (Some(e), Some(g)) if self.routes[g].priority < self.routes[e].priority => g,
            (Some(e), _) => e,
            (None, Some(g)) => g,
            (None, None) => return None,
        };
        let route = &self.routes[chosen];
        let upstream_model = route
            .upstream_model
            .clone()
            .unwrap_or_else(|| strip_provider_prefix(model, &route.provider.name).to_string());
        Some(Resolved {
            provider: route.provider.clone(),
            upstream_model,
            fallback: route.fallback.clone(),
        })
    }

    /// Where a call for `model` goes after `primary` failed: each fallback provider with
    /// the id its own route gives the model (Anthropic's `claude-sonnet-4-5` becomes
    /// Bedrock's inference profile).
    pub fn fallbacks(&self, model: &str, primary: &Resolved) -> Vec<Resolved> {
        primary
            .fallback
            .iter()
            .filter_map(|name| self.resolve(model, Some(name)).ok())
            .map(|mut r| {
                r.fallback.clear();
                r
            })
            .collect()
    }
}

fn split_provider_prefix(model: &str) -> Option<(&str, &str)> {
    let at = model.find([':', '/'])?;
    Some((&model[..at], &model[at + 1..]))
}

fn strip_provider_prefix<'a>(model: &'a str, provider: &str) -> &'a str {
    model
        .strip_prefix(provider)
        .and_then(|rest| rest.strip_prefix(':').or_else(|| rest.strip_prefix('/')))
        .unwrap_or(model)
}

#[cfg(test)]
mod tests {
    use crate::runtime::{ClientPool, Runtime};

    fn runtime() -> Runtime {
        let doc = r#"
providers:
  anthropic: { type: anthropic, api_key: k }
  bedrock: { type: bedrock, api_key: k }
  local: { type: ollama }
  openai: { type: openai, api_key: k }
routes:
  - { models: ["claude-*"], provider: anthropic }
  - { models: ["claude-sonnet-4-5"], provider: bedrock, priority: 2,
      upstream_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0" }
  - { models: ["local:*"], provider: local }
  - { models: ["gpt-4o", "gpt-4o-mini"], provider: openai }
  - { models: ["gpt-*"], provider: local, priority: 0 }
  - { models: ["fast"], provider: anthropic, upstream_model: claude-haiku-4-5 }
"#;
        let snapshot = ai_gateway_snapshot::parse_document(doc, |_| None).expect("valid");
        Runtime::compile(snapshot, &ClientPool::default()).expect("compiles")
    }

    fn route(rt: &Runtime, model: &str, forced: Option<&str>) -> (String, String) {
        let r = rt.routes.resolve(model, forced).expect("routed");
        (r.provider.name.clone(), r.upstream_model)
    }

    #[test]
    fn globs_exact_names_aliases_and_priorities() {
        let rt = runtime();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            route(&rt, "claude-opus-4", None),
            pair("anthropic", "claude-opus-4")
        );
        // The bedrock route for sonnet is priority 2: anthropic's glob (priority 1) wins.
        assert_eq!(
            route(&rt, "claude-sonnet-4-5", None),
            pair("anthropic", "claude-sonnet-4-5")
        );
        assert_eq!(
            route(&rt, "claude-sonnet-4-5", Some("bedrock")),
            pair("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        );
        assert_eq!(
            route(&rt, "fast", None),
            pair("anthropic", "claude-haiku-4-5")
        );
        // A lower priority number wins over an exact name.
        assert_eq!(route(&rt, "gpt-4o", None), pair("local", "gpt-4o"));
    }

    #[test]
    fn provider_prefixes_pick_the_provider_and_are_stripped() {
        let rt = runtime();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            route(&rt, "local:llama3.2:3b", None),
            pair("local", "llama3.2:3b")
        );
        assert_eq!(route(&rt, "openai/gpt-4o", None), pair("openai", "gpt-4o"));
        assert_eq!(
            route(&rt, "qwen2.5:7b", Some("local")),
            pair("local", "qwen2.5:7b")
        );
    }

    #[test]
    fn unknown_models_and_providers_name_what_is_known() {
        let rt = runtime();
        let err = rt.routes.resolve("mystery", None).err().expect("unrouted");
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        assert!(
            err.to_string()
                .contains("model `mystery` is not routed; known: claude-*"),
            "{err}"
        );
        let err = rt
            .routes
            .resolve("x", Some("azure"))
            .err()
            .expect("unknown");
        assert!(
            err.to_string()
                .contains("known: anthropic, bedrock, local, openai"),
            "{err}"
        );
    }
}
