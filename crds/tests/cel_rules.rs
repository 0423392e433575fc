//! The CEL rules the API server enforces on `kubectl apply`, evaluated here with the
//! same expressions the CRDs carry.

use ai_gateway_crds::{ProviderRouteSpec, RateLimitPolicySpec, RateLimitStoreSpec};
use serde_json::json;

fn rejection(result: Result<(), impl std::fmt::Debug>) -> String {
    match result {
        Ok(()) => String::new(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn a_bedrock_route_without_a_region_is_refused() {
    let route = json!({"gatewayRef": "gw", "type": "bedrock", "models": ["us.anthropic.*"]});
    let why = rejection(ProviderRouteSpec::validate_cel(&route, None));
    assert!(why.contains("a bedrock route needs a region"), "{why}");

    let with_region = json!({"gatewayRef": "gw", "type": "bedrock", "region": "us-east-1", "models": ["us.anthropic.*"]});
    assert!(ProviderRouteSpec::validate_cel(&with_region, None).is_ok());
    // Other kinds need no region.
    let anthropic = json!({"gatewayRef": "gw", "type": "anthropic", "models": ["claude-*"]});
    assert!(ProviderRouteSpec::validate_cel(&anthropic, None).is_ok());
}

#[test]
fn a_route_serving_nothing_is_refused_but_aliases_alone_suffice() {
    let empty = json!({"gatewayRef": "gw", "type": "openai", "models": []});
    let why = rejection(ProviderRouteSpec::validate_cel(&empty, None));
    assert!(why.contains("at least one model or alias"), "{why}");
    let aliases = json!({"gatewayRef": "gw", "type": "openai", "models": [], "aliases": {"fast": "gpt-4o-mini"}});
    assert!(ProviderRouteSpec::validate_cel(&aliases, None).is_ok());
    // As a user writes it: no `models` key at all.
    let aliases_only =
        json!({"gatewayRef": "gw", "type": "openai", "aliases": {"fast": "gpt-4o-mini"}});
    assert!(ProviderRouteSpec::validate_cel(&aliases_only, None).is_ok());
    let spec: ProviderRouteSpec = serde_json::from_value(aliases_only).expect("parses");
    assert!(spec.models.is_empty());
    let neither = json!({"gatewayRef": "gw", "type": "openai"});
    let why = rejection(ProviderRouteSpec::validate_cel(&neither, None));
    assert!(why.contains("at least one model or alias"), "{why}");
}

#[test]
fn a_redis_store_needs_exactly_one_url_source() {
    let bare = json!({"kind": "redis"});
    let why = rejection(RateLimitStoreSpec::validate_cel(&bare, None));
    assert!(why.contains("needs url or urlSecretRef"), "{why}");
    let both = json!({"kind": "redis", "url": "redis://r:6379", "urlSecretRef": {"name": "r", "key": "url"}});
    let why = rejection(RateLimitStoreSpec::validate_cel(&both, None));
    assert!(why.contains("not both"), "{why}");
    assert!(RateLimitStoreSpec::validate_cel(
        &json!({"kind": "redis", "url": "redis://r:6379"}),
        None
    )
    .is_ok());
    assert!(RateLimitStoreSpec::validate_cel(&json!({"kind": "memory"}), None).is_ok());
}

#[test]
fn a_policy_without_rules_is_refused() {
    let why = rejection(RateLimitPolicySpec::validate_cel(
        &json!({"gatewayRef": "gw", "rules": []}),
        None,
    ));
    assert!(why.contains("at least one rule"), "{why}");
}

#[test]
fn a_route_header_has_a_value_or_a_secret_but_not_both() {
    use ai_gateway_crds::RouteHeader;
    let both = json!({"name": "X-A", "value": "v", "valueFrom": {"name": "s", "key": "k"}});
    let why = rejection(RouteHeader::validate_cel(&both, None));
    assert!(why.contains("not both"), "{why}");
    let neither = json!({"name": "X-A"});
    assert!(RouteHeader::validate_cel(&neither, None).is_err());
    assert!(RouteHeader::validate_cel(&json!({"name": "X-A", "value": "v"}), None).is_ok());
    assert!(RouteHeader::validate_cel(
        &json!({"name": "X-A", "valueFrom": {"name": "s", "key": "k"}}),
        None
    )
    .is_ok());
}

#[test]
fn pod_identity_needs_kubernetes_mode() {
    use ai_gateway_crds::AuthSpec;
    let keys = json!({"mode": "keys", "podIdentity": true});
    let why = rejection(AuthSpec::validate_cel(&keys, None));
    assert!(why.contains("podIdentity needs mode kubernetes"), "{why}");
    assert!(
        AuthSpec::validate_cel(&json!({"mode": "kubernetes", "podIdentity": true}), None).is_ok()
    );
    assert!(AuthSpec::validate_cel(&json!({"mode": "keys"}), None).is_ok());
}

#[test]
fn a_route_trusting_a_ca_must_give_pem_certificates() {
    let route =
        |tls| json!({"gatewayRef": "gw", "type": "ollama", "models": ["local:*"], "tls": tls});
    let why = rejection(ProviderRouteSpec::validate_cel(
        &route(json!({"caCertificates": "MIIBdzCCAR2gAwIBAgIU"})),
        None,
    ));
    assert!(
        why.contains("caCertificates holds PEM certificates"),
        "{why}"
    );
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    assert!(ProviderRouteSpec::validate_cel(&route(json!({"caCertificates": pem})), None).is_ok());
    assert!(ProviderRouteSpec::validate_cel(&route(json!({"systemRoots": true})), None).is_ok());
}
