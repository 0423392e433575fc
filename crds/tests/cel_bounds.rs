//! The API server estimates each CEL rule's worst-case cost from the schema and refuses
//! a CRD whose rule may walk an unbounded list, map or string. No API server runs here,
//! so this test makes the same demand: every value a rule reads is bounded.

use serde_json::Value;

/// The `self.a.b` paths a rule reads. `has(self.x)` only tests presence, a constant
/// cost, so those are not reads.
fn paths_read(rule: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = rule;
    while let Some(at) = rest.find("self") {
        let before = &rule[..rule.len() - rest.len() + at];
        let after = &rest[at + "self".len()..];
        let starts_a_name = before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let mut path = Vec::new();
        let mut tail = after;
        while let Some(next) = tail.strip_prefix('.') {
            let end = next
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(next.len());
            // `.exists(` and the like are methods called on the path, not fields.
            if next[end..].starts_with('(') {
                break;
            }
            path.push(next[..end].to_string());
            tail = &next[end..];
        }
        if !starts_a_name && !before.trim_end().ends_with("has(") {
            paths.push(path);
        }
        rest = tail;
    }
    paths
}

/// Why the schema at `path` (from `node`) may be unbounded, if it may.
fn unbounded(node: &Value, path: &[String], at: &str) -> Vec<String> {
    let Some((first, rest)) = path.split_first() else {
        return unbounded_value(node, at);
    };
    // The API server bounds object metadata itself.
    if first == "metadata" {
        return Vec::new();
    }
    match node.pointer(&format!("/properties/{first}")) {
        Some(child) => unbounded(child, rest, &format!("{at}.{first}")),
        None => vec![format!(
            "{at}.{first}: a rule reads a field the schema lacks"
        )],
    }
}

fn unbounded_value(node: &Value, at: &str) -> Vec<String> {
    let mut why = Vec::new();
    match node.get("type").and_then(Value::as_str) {
        Some("string") if node.get("maxLength").is_none() => {
            why.push(format!("{at}: string without maxLength"));
        }
        Some("array") => {
            if node.get("maxItems").is_none() {
                why.push(format!("{at}: list without maxItems"));
            }
            if let Some(items) = node.get("items") {
                why.extend(unbounded_value(items, &format!("{at}[]")));
            }
        }
        Some("object") => {
            if let Some(values) = node.get("additionalProperties") {
                if node.get("maxProperties").is_none() {
                    why.push(format!("{at}: map without maxProperties"));
                }
                why.extend(unbounded_value(values, &format!("{at}{{}}")));
            }
        }
        _ => {}
    }
    why
}

/// Every rule in a schema, with the schema node it is attached to and where.
fn rules<'a>(node: &'a Value, at: String, found: &mut Vec<(String, &'a Value, String)>) {
    let Value::Object(map) = node else { return };
    if let Some(Value::Array(validations)) = map.get("x-kubernetes-validations") {
        for v in validations {
            if let Some(rule) = v.get("rule").and_then(Value::as_str) {
                found.push((at.clone(), node, rule.to_string()));
            }
        }
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, child) in props {
            rules(child, format!("{at}.{name}"), found);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = map.get(key) {
            rules(child, format!("{at}[]"), found);
        }
    }
}

fn schemas() -> Vec<(String, Value)> {
    ai_gateway_crds::crds()
        .expect("CRDs generate")
        .into_iter()
        .flat_map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crd.spec.versions.into_iter().map(move |v| {
                let schema = serde_json::to_value(v.schema.and_then(|s| s.open_api_v3_schema))
                    .expect("schema serialises");
                (name.clone(), schema)
            })
        })
        .collect()
}

#[test]
fn no_cel_rule_reads_an_unbounded_list_map_or_string() {
    let mut problems = Vec::new();
    let mut rule_count = 0;
    for (crd, schema) in schemas() {
        let mut found = Vec::new();
        rules(&schema, "self".into(), &mut found);
        for (at, node, rule) in found {
            rule_count += 1;
            for path in paths_read(&rule) {
                for why in unbounded(node, &path, &at) {
                    problems.push(format!("{crd}: `{rule}` reads {why}"));
                }
            }
        }
    }
    assert!(
        rule_count >= 6,
        "the CRDs carry their CEL rules ({rule_count} found)"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_bound_check_catches_an_unbounded_read() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "fallback": {"type": "array", "items": {"type": "string"}},
            "names": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 8}},
            "aliases": {"type": "object", "additionalProperties": {"type": "string"}},
            "url": {"type": "string"}
        }
    });
    let read = |rule: &str| -> Vec<String> {
        paths_read(rule)
            .iter()
            .flat_map(|p| unbounded(&schema, p, "self"))
            .collect()
    };
    assert_eq!(
        read("!self.fallback.exists(f, f == 'x')"),
        [
            "self.fallback: list without maxItems",
            "self.fallback[]: string without maxLength"
        ]
    );
    assert!(read("self.names.all(n, n != 'x')").is_empty());
    assert_eq!(
        read("size(self.aliases) > 0"),
        [
            "self.aliases: map without maxProperties",
            "self.aliases{}: string without maxLength"
        ]
    );
    assert!(read("has(self.url)").is_empty(), "presence is not a read");
    assert_eq!(
        read("has(self.url) && self.url.startsWith('https')"),
        ["self.url: string without maxLength"]
    );
}

#[test]
fn no_unsigned_formats_reach_the_api_server() {
    for (crd, schema) in schemas() {
        let text = schema.to_string();
        assert!(
            !text.contains("\"format\":\"uint"),
            "{crd} still carries a uint format, which the API server warns about"
        );
    }
}

#[test]
fn limits_and_prices_below_their_floor_are_refused_by_the_schema() {
    let (_, policy) = schemas()
        .into_iter()
        .find(|(name, _)| name.starts_with("ratelimitpolicies"))
        .expect("policy CRD");
    let limits = policy
        .pointer("/properties/spec/properties/rules/items/properties/limits/properties")
        .expect("limits schema");
    let floor = |field: &str| {
        limits
            .pointer(&format!("/{field}/minimum"))
            .and_then(Value::as_f64)
    };
    assert_eq!(floor("requests_per_minute"), Some(1.0), "rpm: 0 is refused");
    assert_eq!(floor("concurrent_requests"), Some(1.0));
    assert_eq!(
        floor("budget_usd_per_day"),
        Some(0.0),
        "a negative budget is refused"
    );
}
