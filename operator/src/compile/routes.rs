//! ProviderRoutes → the snapshot's providers and routes, with a verdict per route.

use super::{members_of, secret_value, Inputs, Verdict};
use ai_gateway_crds::{ProviderRoute, ProviderRouteSpec};
use ai_gateway_snapshot::{is_glob, Provider, Route};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use std::collections::BTreeMap;

#[derive(Default)]
pub(super) struct CompiledRoutes {
    pub providers: BTreeMap<String, Provider>,
    pub routes: Vec<Route>,
    pub verdicts: BTreeMap<String, Vec<Verdict>>,
}

/// (exact model, priority) → the route that claimed it first.
type Claims = BTreeMap<(String, u32), String>;

/// Routes in name order: on a conflict the first name keeps the model.
pub(super) fn compile_routes(inputs: &Inputs<'_>, gateway_name: &str) -> CompiledRoutes {
    let mine = members_of(inputs.routes, gateway_name, |r| &r.spec.gateway_ref);
    let route_names: Vec<String> = mine.iter().map(|r| r.name_any()).collect();
    let mut out = CompiledRoutes::default();
    let mut claimed = Claims::new();
    for route in mine {
        let name = route.name_any();
        let provider = match provider_of(route, inputs.secrets, &claimed) {
            Ok(provider) => provider,
            Err(verdicts) => {
                out.verdicts.insert(name, verdicts);
                continue;
            }
        };
        let s = &route.spec;
        for model in exact_models(s) {
            claimed.insert((model.clone(), s.priority), name.clone());
        }
        let (fallback, unknown_fallbacks): (Vec<String>, Vec<String>) = s
            .fallback
            .iter()
            .cloned()
            .partition(|f| route_names.contains(f));
        out.routes.extend(snapshot_routes(&name, s, &fallback));
        out.providers.insert(name.clone(), provider);
        let verdicts = vec![
            Verdict::ok("Accepted", "Accepted"),
            fallback_verdict(&unknown_fallbacks, gateway_name),
        ];
        out.verdicts.insert(name, verdicts);
    }
    // Fallbacks may only name routes that made it in.
    for route in &mut out.routes {
        route.fallback.retain(|f| out.providers.contains_key(f));
    }
    out
}

/// The models and aliases a route names.
fn named_models(s: &ProviderRouteSpec) -> impl Iterator<Item = &String> {
    s.models.iter().chain(s.aliases.keys())
}

/// The names a route claims at its priority: every one but the globs.
fn exact_models(s: &ProviderRouteSpec) -> impl Iterator<Item = &String> {
    named_models(s).filter(|m| !is_glob(m))
}

/// The route's provider with its headers and credentials resolved, or the verdicts
/// that leave the route out.
fn provider_of(
    route: &ProviderRoute,
    secrets: &BTreeMap<String, Secret>,
    claimed: &Claims,
) -> Result<Provider, Vec<Verdict>> {
    let s = &route.spec;
    check_model_patterns(s)?;
    check_unclaimed(s, claimed)?;
    let mut provider = Provider::new(s.r#type);
    provider.base_url = s.endpoint.clone();
    provider.region = s.region.clone();
    provider.project = s.project.clone();
    provider.timeouts = s.timeouts.unwrap_or_default();
    provider.retries = s.retries.unwrap_or_default();
    provider.circuit_breaker = s.circuit_breaker.unwrap_or_default();
    provider.pricing = s.pricing.clone();
    provider.max_output_tokens = s.max_output_tokens;
    if let Some(tls) = &s.tls {
        provider.ca_pem = tls.ca_certificates.clone();
        provider.system_roots = tls.system_roots;
    }
    resolve_headers(&mut provider, s, secrets)?;
    check_provider(&provider)?;
    resolve_credentials(&mut provider, s, secrets)?;
    Ok(provider)
}

fn check_model_patterns(s: &ProviderRouteSpec) -> Result<(), Vec<Verdict>> {
    match named_models(s).find(|m| is_glob(m) && glob::Pattern::new(m).is_err()) {
        Some(bad) => Err(vec![Verdict::fail(
            "Accepted",
            "InvalidModelPattern",
            format!("`{bad}` is not a valid glob"),
        )]),
        None => Ok(()),
    }
}

/// Two routes serving one exact name at one priority would make the choice arbitrary.
fn check_unclaimed(s: &ProviderRouteSpec, claimed: &Claims) -> Result<(), Vec<Verdict>> {
    let conflict = exact_models(s).find_map(|m| {
        claimed
            .get(&(m.clone(), s.priority))
            .map(|owner| (m, owner))
    });
    match conflict {
        Some((model, owner)) => Err(vec![Verdict::fail(
            "Accepted",
            "ModelConflict",
            format!(
                "`{model}` is already routed by ProviderRoute `{owner}` at priority {}; give one of them another priority",
                s.priority
            ),
        )]),
        None => Ok(()),
    }
}

/// An accepted route whose references do not resolve.
fn unresolved(reason: &'static str, message: String) -> Vec<Verdict> {
    vec![
        Verdict::ok("Accepted", "Accepted"),
        Verdict::fail("ResolvedRefs", reason, message),
    ]
}

fn resolve_headers(
    provider: &mut Provider,
    s: &ProviderRouteSpec,
    secrets: &BTreeMap<String, Secret>,
) -> Result<(), Vec<Verdict>> {
    let mut missing = Vec::new();
    for header in &s.headers {
        let value = match (&header.value, &header.value_from) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(from)) => secrets
                .get(&from.name)
                .and_then(|secret| secret_value(secret, &from.key)),
            (None, None) => None,
        };
        match value {
            Some(v) => {
                provider.headers.insert(header.name.clone(), v);
            }
            None => missing.push(match &header.value_from {
                Some(from) => format!(
                    "header `{}`: Secret `{}` key `{}` not found",
                    header.name, from.name, from.key
                ),
                None => format!("header `{}` has no value", header.name),
            }),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(unresolved("SecretKeyNotFound", missing.join("; ")))
    }
}

/// The snapshot's own checks, per route: the route at fault is left out and the rest
/// of the gateway still compiles.
fn check_provider(provider: &Provider) -> Result<(), Vec<Verdict>> {
    let problems = provider.problems();
    if problems.is_empty() {
        return Ok(());
    }
    let message = problems
        .iter()
        .map(|p| {
            // The snapshot's name for the field the route calls `endpoint`.
            let field = if p.path == "base_url" {
                "endpoint"
            } else {
                &p.path
            };
            format!("{field}: {}", p.message)
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(vec![Verdict::fail("Accepted", "InvalidRoute", message)])
}

fn resolve_credentials(
    provider: &mut Provider,
    s: &ProviderRouteSpec,
    secrets: &BTreeMap<String, Secret>,
) -> Result<(), Vec<Verdict>> {
    let Some(creds) = &s.credentials_ref else {
        return Ok(());
    };
    let Some(secret) = secrets.get(&creds.secret_name) else {
        return Err(unresolved(
            "SecretNotFound",
            format!(
                "Secret `{}` does not exist in this namespace",
                creds.secret_name
            ),
        ));
    };
    let wanted = [
        (&creds.api_key_key, &mut provider.api_key),
        (&creds.access_key_id_key, &mut provider.access_key_id),
        (
            &creds.secret_access_key_key,
            &mut provider.secret_access_key,
        ),
        (&creds.session_token_key, &mut provider.session_token),
        (
            &creds.service_account_key_key,
            &mut provider.service_account_key,
        ),
    ];
    let mut missing = Vec::new();
    for (key, slot) in wanted {
        if let Some(key) = key {
            match secret_value(secret, key) {
                Some(v) => *slot = Some(v),
                None => missing.push(key.clone()),
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(unresolved(
            "SecretKeyNotFound",
            format!(
                "Secret `{}` has no key {}",
                creds.secret_name,
                missing.join(", ")
            ),
        ))
    }
}

/// One snapshot route for the route's models, and one per alias.
fn snapshot_routes(name: &str, s: &ProviderRouteSpec, fallback: &[String]) -> Vec<Route> {
    let route = |models: Vec<String>, upstream_model: Option<String>| Route {
        models,
        provider: name.to_string(),
        upstream_model,
        priority: s.priority,
        weight: s.weight,
        fallback: fallback.to_vec(),
        cache_ttl_seconds: s.cache_ttl_seconds,
        token_reduction: s.token_reduction,
        cascade: s.cascade,
    };
    let mut routes = Vec::new();
    if !s.models.is_empty() {
        routes.push(route(s.models.clone(), None));
    }
    for (alias, upstream) in &s.aliases {
        routes.push(route(vec![alias.clone()], Some(upstream.clone())));
    }
    routes
}

fn fallback_verdict(unknown_fallbacks: &[String], gateway_name: &str) -> Verdict {
    if unknown_fallbacks.is_empty() {
        return Verdict::ok("ResolvedRefs", "ResolvedRefs");
    }
    let named = unknown_fallbacks
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Verdict::fail(
        "ResolvedRefs",
        "FallbackNotFound",
        format!(
            "fallback {named} names no ProviderRoute of gateway `{gateway_name}`; it is left out"
        ),
    )
}
