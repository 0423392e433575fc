//! Which provider serves a model: an explicit `X-Provider`, a `provider/model` or
//! `provider:model` prefix, then the routes' exact names and globs by priority.

use crate::error::GatewayError;
use crate::upstream::Upstream;
use ai_gateway_snapshot::{is_glob, CascadeMode, Snapshot, TokenReduction};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

struct CompiledRoute {
    patterns: Vec<glob::Pattern>,
    provider: Arc<Upstream>,
    upstream_model: Option<String>,
    priority: u32,
    weight: u32,
    fallback: Vec<String>,
    cache_ttl_seconds: Option<u64>,
    token_reduction: Option<TokenReduction>,
    cascade: Option<CascadeMode>,
}

pub struct RouteTable {
    /// Exact model name → indexes into `routes`, best first.
    exact: HashMap<String, Vec<usize>, crate::FastHasher>,
    routes: Vec<CompiledRoute>,
    providers: BTreeMap<String, Arc<Upstream>>,
    /// Every exact name and glob, for "known: …" in errors.
    known: Vec<String>,
    /// `gateway.routed_models_only`: a provider named by the caller still needs a route.
    routed_only: bool,
}

/// The provider and upstream model id chosen for one request.
#[derive(Clone)]
pub struct Resolved {
    pub provider: Arc<Upstream>,
    pub upstream_model: String,
    /// Providers the winning route falls back to, in order.
    pub fallback: Vec<String>,
    /// The route's own cache TTL, when it sets one.
    pub cache_ttl_seconds: Option<u64>,
    /// The route's own token reduction, when it sets one.
    pub token_reduction: Option<TokenReduction>,
    /// The route's own cascade mode for `auto` calls, when it sets one.
    pub cascade: Option<CascadeMode>,
}

impl Resolved {
    /// A provider reached without a route (its own API, named by path).
    pub fn unrouted(provider: Arc<Upstream>, upstream_model: String) -> Self {
        Self {
            provider,
            upstream_model,
            fallback: Vec::new(),
            cache_ttl_seconds: None,
            token_reduction: None,
            cascade: None,
        }
    }
}

impl RouteTable {
    pub fn new(snapshot: &Snapshot, providers: &BTreeMap<String, Arc<Upstream>>) -> Self {
        let mut exact: HashMap<String, Vec<usize>, crate::FastHasher> = HashMap::default();
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
                weight: route.weight,
                fallback: route.fallback.clone(),
                cache_ttl_seconds: route.cache_ttl_seconds,
                token_reduction: route.token_reduction,
                cascade: route.cascade,
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
            routed_only: snapshot.gateway.routed_models_only,
        }
    }

    /// Every route entry that names a single model, with the provider that really
    /// serves it (a glob of higher priority may win): what `/v1/models` lists.
    pub fn exact_models(&self) -> impl Iterator<Item = (&str, Arc<Upstream>)> {
        // Listing is not a call: it must not move any tier's rotation.
        self.exact.keys().filter_map(|model| {
            self.best_route(model, None, false)
                .map(|r| (model.as_str(), r.provider))
        })
    }

    pub fn resolve(
        &self,
        model: &str,
        forced_provider: Option<&str>,
    ) -> Result<Resolved, GatewayError> {
        check_model_name(model)?;
        if let Some(name) = forced_provider {
            let provider = self
                .providers
                .get(name)
                .ok_or_else(|| GatewayError::unknown_provider(name, self.providers.keys()))?;
            let bare = strip_provider_prefix(model, name);
            return self
                .best_route(bare, Some(name), true)
                .or_else(|| self.best_route(model, Some(name), true))
                .map_or_else(|| self.unrouted(provider, bare, model), Ok);
        }
        if let Some((prefix, rest)) = split_provider_prefix(model) {
            if let Some(provider) = self.providers.get(prefix) {
                return self
                    .best_route(model, Some(prefix), true)
                    .or_else(|| self.best_route(rest, Some(prefix), true))
                    .map_or_else(|| self.unrouted(provider, rest, model), Ok);
            }
        }
        self.best_route(model, None, true)
            .ok_or_else(|| self.unknown(model))
    }

    /// A model the caller sent to a provider by name, though no route lists it: served
    /// as named, unless the gateway serves routed models only.
    fn unrouted(
        &self,
        provider: &Arc<Upstream>,
        upstream_model: &str,
        asked: &str,
    ) -> Result<Resolved, GatewayError> {
        if self.routed_only {
            return Err(self.unknown(asked));
        }
        Ok(Resolved::unrouted(
            provider.clone(),
            upstream_model.to_string(),
        ))
    }

    fn unknown(&self, model: &str) -> GatewayError {
        GatewayError::UnknownModel {
            model: model.to_string(),
            known: if self.known.is_empty() {
                "no models are routed".to_string()
            } else {
                self.known.join(", ")
            },
        }
    }

    /// `spread`: a call draws its route from the tier by weight; a listing just looks.
    fn best_route(&self, model: &str, provider: Option<&str>, spread: bool) -> Option<Resolved> {
        let matches_provider = |r: &CompiledRoute| provider.is_none_or(|p| r.provider.name == p);
        let exact: Vec<usize> = self
            .exact
            .get(model)
            .map(|idx| {
                idx.iter()
                    .copied()
                    .filter(|&i| matches_provider(&self.routes[i]))
                    .collect()
            })
            .unwrap_or_default();
        let mut globs: Vec<usize> = (0..self.routes.len())
            .filter(|&i| {
                let r = &self.routes[i];
                matches_provider(r) && r.patterns.iter().any(|p| p.matches(model))
            })
            .collect();
        globs.sort_by_key(|&i| (self.routes[i].priority, i));
        let priority = |i: usize| self.routes[i].priority;
        // An exact name beats a glob of the same priority; a lower priority number
        // beats both.
        let best = match (exact.first(), globs.first()) {
            (Some(&e), Some(&g)) if priority(g) < priority(e) => &globs,
            (Some(_), _) => &exact,
            (None, Some(_)) => &globs,
            (None, None) => return None,
        };
        let tier: Vec<usize> = best
            .iter()
            .copied()
            .take_while(|&i| priority(i) == priority(best[0]))
            .collect();
        let chosen = if spread {
            self.pick_weighted(&tier)
        } else {
            tier[0]
        };
        let route = &self.routes[chosen];
        let mut fallback = route.fallback.clone();
        // The other routes of the tier take over when the chosen one fails.
        for &peer in &tier {
            let name = &self.routes[peer].provider.name;
            if *name != route.provider.name && !fallback.contains(name) {
                fallback.push(name.clone());
            }
        }
        let upstream_model = route
            .upstream_model
            .clone()
            .unwrap_or_else(|| strip_provider_prefix(model, &route.provider.name).to_string());
        Some(Resolved {
            provider: route.provider.clone(),
            upstream_model,
            fallback,
            cache_ttl_seconds: route.cache_ttl_seconds,
            token_reduction: route.token_reduction,
            cascade: route.cascade,
        })
    }

    /// A weighted draw among routes of equal rank. Random rather than round robin: a
    /// rotation shared by models that are called in turn (Claude Code alternates two)
    /// would pin each model to one provider.
    fn pick_weighted(&self, tier: &[usize]) -> usize {
        if tier.len() == 1 {
            return tier[0];
        }
        let weight = |i: usize| u64::from(self.routes[i].weight.max(1));
        let total: u64 = tier.iter().map(|&i| weight(i)).sum();
        let mut turn = fastrand::u64(0..total);
        for &i in tier {
            if turn < weight(i) {
                return i;
            }
            turn -= weight(i);
        }
        tier[0]
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

/// Longest model name a caller may send: real ids (Bedrock ARNs included) are far
/// shorter, and the name is echoed in headers, labels and audit records.
pub const MAX_MODEL_NAME: usize = 256;

pub fn check_model_name(model: &str) -> Result<(), GatewayError> {
    if model.len() > MAX_MODEL_NAME {
        return Err(GatewayError::InvalidRequest(format!(
            "model: a name of {} bytes is longer than the {MAX_MODEL_NAME} any model has",
            model.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::compiled::CompiledConfig;
    use crate::upstream::ClientPool;

    fn compiled_config() -> CompiledConfig {
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
        CompiledConfig::compile(snapshot, &ClientPool::default()).expect("compiles")
    }

    fn route(compiled: &CompiledConfig, model: &str, forced: Option<&str>) -> (String, String) {
        let r = compiled.routes.resolve(model, forced).expect("routed");
        (r.provider.name.clone(), r.upstream_model)
    }

    #[test]
    fn globs_exact_names_aliases_and_priorities() {
        let compiled = compiled_config();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            route(&compiled, "claude-opus-4", None),
            pair("anthropic", "claude-opus-4")
        );
        // The bedrock route for sonnet is priority 2: anthropic's glob (priority 1) wins.
        assert_eq!(
            route(&compiled, "claude-sonnet-4-5", None),
            pair("anthropic", "claude-sonnet-4-5")
        );
        assert_eq!(
            route(&compiled, "claude-sonnet-4-5", Some("bedrock")),
            pair("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        );
        assert_eq!(
            route(&compiled, "fast", None),
            pair("anthropic", "claude-haiku-4-5")
        );
        // A lower priority number wins over an exact name.
        assert_eq!(route(&compiled, "gpt-4o", None), pair("local", "gpt-4o"));
    }

    #[test]
    fn provider_prefixes_pick_the_provider_and_are_stripped() {
        let compiled = compiled_config();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            route(&compiled, "local:llama3.2:3b", None),
            pair("local", "llama3.2:3b")
        );
        assert_eq!(
            route(&compiled, "openai/gpt-4o", None),
            pair("openai", "gpt-4o")
        );
        assert_eq!(
            route(&compiled, "qwen2.5:7b", Some("local")),
            pair("local", "qwen2.5:7b")
        );
    }

    #[test]
    fn equal_routes_share_calls_by_weight_and_back_each_other_up() {
        let doc = r#"
providers:
  anthropic: { type: anthropic, api_key: k }
  bedrock: { type: bedrock, api_key: k, region: us-east-1 }
  spare: { type: anthropic, api_key: k }
routes:
  - { models: ["claude-*"], provider: anthropic, weight: 3, fallback: [spare] }
  - { models: ["claude-*"], provider: bedrock, weight: 1 }
  - { models: ["claude-*"], provider: spare, priority: 5 }
"#;
        let snapshot = ai_gateway_snapshot::parse_document(doc, |_| None).expect("valid");
        let compiled = CompiledConfig::compile(snapshot, &ClientPool::default()).expect("compiles");
        let mut served = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..4000 {
            let r = compiled
                .routes
                .resolve("claude-sonnet-4-5", None)
                .expect("routed");
            *served.entry(r.provider.name.clone()).or_default() += 1;
            let expected_fallback: &[&str] = if r.provider.name == "anthropic" {
                &["spare", "bedrock"]
            } else {
                &["anthropic"]
            };
            assert_eq!(r.fallback, expected_fallback);
            // Another model of the same routes called in between (as Claude Code
            // alternates two) must not pin this one to a provider.
            let _ = compiled.routes.resolve("claude-haiku-4-5", None);
        }
        let anthropic = served.get("anthropic").copied().unwrap_or(0);
        let bedrock = served.get("bedrock").copied().unwrap_or(0);
        // 3:1 of 4,000 is 3,000:1,000; six standard deviations is about ±165.
        assert!((2835..=3165).contains(&anthropic), "{served:?}");
        assert_eq!(anthropic + bedrock, 4000, "{served:?}");
        assert_eq!(
            served.get("spare"),
            None,
            "a lower tier only serves as fallback"
        );
    }

    #[test]
    fn unknown_models_and_providers_name_what_is_known() {
        let compiled = compiled_config();
        let err = compiled
            .routes
            .resolve("mystery", None)
            .err()
            .expect("unrouted");
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        assert!(
            err.to_string()
                .contains("model `mystery` is not routed; known: claude-*"),
            "{err}"
        );
        let err = compiled
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
