use crate::{Problems, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not valid YAML or JSON: {0}")]
    Syntax(String),
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    #[error("{0}")]
    Invalid(Problems),
}

/// Parses a YAML or JSON snapshot document, expands `${VAR}` references from `env`,
/// and validates the result, listing every problem by its path.
///
/// A reference to an unset variable is left as written, so the data plane can say
/// which provider it leaves inactive and why instead of refusing the whole file.
pub fn parse_document(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Snapshot, LoadError> {
    // JSON is YAML, so one parser reads both.
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| LoadError::Syntax(e.to_string()))?;
    if value.is_null() {
        value = serde_yaml::Value::Mapping(Default::default());
    }
    expand_strings(&mut value, &env);
    let snapshot: Snapshot = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        LoadError::Shape {
            path: if path == "." {
                "(document)".into()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })?;
    snapshot.validate().map_err(LoadError::Invalid)?;
    Ok(snapshot)
}

fn expand_strings(value: &mut serde_yaml::Value, env: &impl Fn(&str) -> Option<String>) {
    match value {
        serde_yaml::Value::String(s) if s.contains("${") => *s = expand_env(s, env),
        serde_yaml::Value::Sequence(items) => {
            items.iter_mut().for_each(|v| expand_strings(v, env));
        }
        serde_yaml::Value::Mapping(map) => {
            map.iter_mut().for_each(|(_, v)| expand_strings(v, env));
        }
        serde_yaml::Value::Tagged(tagged) => expand_strings(&mut tagged.value, env),
        _ => {}
    }
}

/// Replaces each `${NAME}` whose variable is set (or `${NAME:-default}`); unset ones
/// without a default stay literal.
pub fn expand_env(input: &str, env: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let reference = &after[..end];
                let (name, default) = match reference.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (reference, None),
                };
                match env(name).filter(|v| !v.is_empty()) {
                    Some(v) => out.push_str(&v),
                    None => match default {
                        Some(d) => out.push_str(d),
                        None => out.push_str(&rest[start..start + 2 + end + 1]),
                    },
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first `${NAME}` still present in `value`, i.e. a variable that was not set.
pub fn unresolved_reference(value: &str) -> Option<&str> {
    let start = value.find("${")? + 2;
    let end = value[start..].find('}')?;
    Some(&value[start..start + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "ANTHROPIC_API_KEY" => Some("sk-ant-123".into()),
            _ => None,
        }
    }

    #[test]
    fn set_variables_expand_and_unset_ones_stay_literal() {
        assert_eq!(expand_env("${ANTHROPIC_API_KEY}", &env), "sk-ant-123");
        assert_eq!(expand_env("a-${NOPE}-b", &env), "a-${NOPE}-b");
        assert_eq!(
            expand_env("x${ANTHROPIC_API_KEY}y${", &env),
            "xsk-ant-123y${"
        );
        assert_eq!(expand_env("${AWS_REGION:-us-east-1}", &env), "us-east-1");
        assert_eq!(unresolved_reference("a-${NOPE}-b"), Some("NOPE"));
        assert_eq!(unresolved_reference("plain"), None);
    }

    #[test]
    fn users_rate_limit_block_loads_as_written() {
        let doc = r#"
rate_limits:
  global:
    requests_per_minute: 1000
    tokens_per_minute: 1000000
  default:
    requests_per_minute: 60
    tokens_per_minute: 100000
  per_user:
    contractor1:
      requests_per_minute: 100
    contractor2:
      requests_per_minute: 50
"#;
        let snap = parse_document(doc, env).expect("loads");
        assert_eq!(
            snap.rate_limits.per_user["contractor2"].requests_per_minute,
            Some(50)
        );
        assert_eq!(
            snap.rate_limits.global.and_then(|g| g.tokens_per_minute),
            Some(1_000_000)
        );
        // The architecture document spells the same block `users:`.
        let alt = parse_document(
            "rate_limits: { users: { admin: { requests_per_minute: 200 } } }",
            env,
        )
        .expect("loads");
        assert_eq!(
            alt.rate_limits.per_user["admin"].requests_per_minute,
            Some(200)
        );
    }

    #[test]
    fn type_errors_name_their_path() {
        let err = parse_document(
            "rate_limits: { default: { requests_per_minute: lots } }",
            env,
        )
        .expect_err("rejects");
        let text = err.to_string();
        assert!(
            text.starts_with("rate_limits.default.requests_per_minute:"),
            "{text}"
        );
        let typo = parse_document("rate_limit: {}", env).expect_err("rejects");
        assert!(
            typo.to_string().contains("unknown field `rate_limit`"),
            "{typo}"
        );
    }

    #[test]
    fn json_documents_load_too() {
        let snap = parse_document(
            r#"{"providers": {"a": {"type": "anthropic", "api_key": "${ANTHROPIC_API_KEY}"}}}"#,
            env,
        )
        .expect("loads");
        assert_eq!(snap.providers["a"].api_key.as_deref(), Some("sk-ant-123"));
    }

    #[test]
    fn version_is_a_content_hash_unless_declared() {
        let a = parse_document("routes: []", env).expect("loads");
        let b = parse_document("{}", env).expect("loads");
        assert_eq!(a.effective_version(), b.effective_version());
        let c = parse_document("gateway: { default_max_tokens: 1 }", env).expect("loads");
        assert_ne!(a.effective_version(), c.effective_version());
        let d = parse_document("version: v42", env).expect("loads");
        assert_eq!(d.effective_version(), "v42");
    }
}
