//! The checked-in CRD YAML is what the types generate: regenerate it with
//! `cargo run -p ai-gateway-crds --bin crdgen` after changing a type.

#[test]
fn checked_in_crd_yaml_matches_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    for (name, generated) in ai_gateway_crds::crd_yaml().expect("generates") {
        let checked_in = std::fs::read_to_string(dir.join(&name))
            .unwrap_or_else(|e| panic!("crds/yaml/{name}: {e}; run crdgen"));
        assert!(
            checked_in == generated,
            "crds/yaml/{name} drifted from the Rust types; run `cargo run -p ai-gateway-crds --bin crdgen`"
        );
    }
}
