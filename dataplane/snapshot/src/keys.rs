//! Gateway keys and caller labels, as the operator compiles them, the CLI issues them
//! and the data plane reads them.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Labels naming a caller, on a gateway key's Secret and on a workspace's namespace or
/// ServiceAccount alike.
pub const USER_LABEL: &str = "ai-gateway.dev/user";
pub const TEAM_LABEL: &str = "ai-gateway.dev/team";
pub const WORKSPACE_LABEL: &str = "ai-gateway.dev/workspace";

/// The key selector of a gateway that names none.
pub const DEFAULT_KEY_SELECTOR: &str = "ai-gateway.dev/key=true";

/// Every key the gateway's tools issue starts with this.
pub const KEY_PREFIX: &str = "gw_";

/// A new gateway key: `gw_` and 64 hex digits (256 random bits from two UUIDv4s, less
/// their 12 fixed version bits).
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", random_hex())
}

/// 64 random hex digits: a key's body, or a SigV4 secret.
pub fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The hex SHA-256 a snapshot holds for a gateway key's plaintext: what the operator
/// and the CLI write and the data plane compares.
pub fn key_sha256(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// A gateway's key selector, as the operator picks key Secrets and the CLI makes them:
/// `label=value`, or `label` alone for any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySelector {
    pub label: String,
    pub value: String,
}

impl KeySelector {
    pub fn parse(selector: &str) -> Self {
        let (label, value) = selector.split_once('=').unwrap_or((selector, ""));
        Self {
            label: label.to_string(),
            value: value.to_string(),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels
            .get(&self.label)
            .is_some_and(|v| self.value.is_empty() || *v == self.value)
    }

    /// The label selector for a list call.
    pub fn query(&self) -> String {
        if self.value.is_empty() {
            self.label.clone()
        } else {
            format!("{}={}", self.label, self.value)
        }
    }

    /// The value a new key gets under this selector's label.
    pub fn value_for_new_key(&self) -> &str {
        if self.value.is_empty() {
            "true"
        } else {
            &self.value
        }
    }
}

impl std::fmt::Display for KeySelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.query())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_with_a_value_matches_only_that_value() {
        let selector = KeySelector::parse(DEFAULT_KEY_SELECTOR);
        let labelled =
            |v: &str| BTreeMap::from([("ai-gateway.dev/key".to_string(), v.to_string())]);
        assert!(selector.matches(&labelled("true")));
        assert!(!selector.matches(&labelled("false")));
        assert_eq!(selector.query(), DEFAULT_KEY_SELECTOR);
    }

    #[test]
    fn a_bare_label_matches_any_value_and_new_keys_get_true() {
        let selector = KeySelector::parse("team-keys");
        assert!(selector.matches(&BTreeMap::from([("team-keys".into(), "yes".into())])));
        assert!(!selector.matches(&BTreeMap::new()));
        assert_eq!(selector.query(), "team-keys");
        assert_eq!(selector.value_for_new_key(), "true");
    }
}
