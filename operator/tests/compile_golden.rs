//! `compile()` on whole namespaces of objects (`fixtures/*.yaml`, multi-document YAML
//! as `kubectl apply` takes it): the snapshot and every object's verdicts, against
//! reviewed snapshots.

use ai_gateway_operator::namespace::Namespace;

fn load(path: &std::path::Path) -> Namespace {
    Namespace::from_yaml(&std::fs::read_to_string(path).expect("fixture")).expect("objects parse")
}

#[test]
fn namespaces_compile_to_snapshots_and_verdicts() {
    insta::glob!("fixtures/*.yaml", |path| {
        let compiled = load(path).compile("gw").expect("gateway gw");
        insta::assert_yaml_snapshot!(compiled);
    });
}

#[test]
fn the_same_objects_always_compile_to_the_same_version() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/users_setup.yaml");
    let versions: Vec<String> = (0..3)
        .map(|i| {
            let mut ns = load(&path);
            // Input order must not matter.
            if i % 2 == 1 {
                ns.routes.reverse();
                ns.secrets.reverse();
            }
            ns.compile("gw")
                .expect("compiles")
                .snapshot
                .effective_version()
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");
}
