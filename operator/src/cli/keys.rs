//! `keys create|list|revoke`: a gateway key is a Secret carrying the gateway's key
//! selector label and the caller's labels, its plaintext in the `key` data entry.

use super::render::{json_out, or_dash, table};
use super::{CliError, CreateArgs, Format, Out, Session};
use crate::compile::{is_weak_sigv4_secret, secret_value, KEY_DATA, MIN_SIGV4_SECRET, SIGV4_DATA};
use ai_gateway_snapshot::{key_sha256, TEAM_LABEL, USER_LABEL, WORKSPACE_LABEL};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use kube::ResourceExt;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

use ai_gateway_snapshot::random_hex;
pub use ai_gateway_snapshot::{new_key, KEY_PREFIX};
const FIELD_MANAGER: &str = "kubectl-aigw";

/// Whether `value` starts and ends with a character `alphanumeric` accepts.
fn edges_are(value: &str, alphanumeric: impl Fn(char) -> bool) -> bool {
    let edge = |c: Option<char>| c.is_some_and(&alphanumeric);
    edge(value.chars().next()) && edge(value.chars().last())
}

/// A Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending with a letter or digit.
fn check_label_value(what: &'static str, value: &str) -> Result<(), CliError> {
    let invalid = |why| CliError::Invalid {
        what,
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return Err(invalid("it must not be empty"));
    }
    if value.len() > 63 {
        return Err(invalid("a label value has at most 63 characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "a label value has only letters, digits, `-`, `_` and `.` (no `@`: use `alice`, not an email address)",
        ));
    }
    if !edges_are(value, |c| c.is_ascii_alphanumeric()) {
        return Err(invalid(
            "a label value starts and ends with a letter or digit",
        ));
    }
    Ok(())
}

/// A Secret name: a DNS-1123 subdomain.
fn check_name(name: &str) -> Result<(), CliError> {
    let invalid = |why| CliError::Invalid {
        what: "name",
        value: name.to_string(),
        why,
    };
    if name.is_empty() || name.len() > 253 {
        return Err(invalid("a Secret name has 1 to 253 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    {
        return Err(invalid(
            "a Secret name has only lowercase letters, digits, `-` and `.`",
        ));
    }
    if !edges_are(name, |c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(invalid(
            "a Secret name starts and ends with a letter or digit",
        ));
    }
    Ok(())
}

/// `key-<user>-<8 hex>`, the user folded into what a Secret name allows.
fn default_name(user: &str) -> String {
    let mut slug = String::new();
    for c in user.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(40).collect();
    let slug = slug.trim_end_matches('-');
    let suffix = &random_hex()[..8];
    if slug.is_empty() {
        format!("key-{suffix}")
    } else {
        format!("key-{slug}-{suffix}")
    }
}

/// One key as `keys list` shows it: who it names and whether the operator loads it.
#[derive(Serialize)]
struct KeyRow {
    name: String,
    user: Option<String>,
    team: Option<String>,
    workspace: Option<String>,
    sigv4: bool,
    created: Option<String>,
    status: String,
}

impl KeyRow {
    fn cells(&self) -> Vec<String> {
        [
            self.name.as_str(),
            or_dash(self.user.as_deref()),
            or_dash(self.team.as_deref()),
            or_dash(self.workspace.as_deref()),
            if self.sigv4 { "yes" } else { "no" },
            or_dash(self.created.as_deref()),
            self.status.as_str(),
        ]
        .map(str::to_string)
        .to_vec()
    }
}

impl Session {
    pub(super) async fn create_key(&self, args: &CreateArgs, out: Out<'_>) -> Result<(), CliError> {
        check_label_value("user", &args.user)?;
        if let Some(team) = &args.team {
            check_label_value("team", team)?;
        }
        if let Some(workspace) = &args.workspace {
            check_label_value("workspace", workspace)?;
        }
        if let Some(name) = &args.name {
            check_name(name)?;
        }
        let (gw, selector) = self.gateway().await?;
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| default_name(&args.user));
        let key = new_key();
        let sigv4 = args.sigv4.then(random_hex);

        let mut labels = BTreeMap::from([
            (
                selector.label.clone(),
                selector.value_for_new_key().to_string(),
            ),
            (USER_LABEL.to_string(), args.user.clone()),
        ]);
        if let Some(team) = &args.team {
            labels.insert(TEAM_LABEL.into(), team.clone());
        }
        if let Some(workspace) = &args.workspace {
            labels.insert(WORKSPACE_LABEL.into(), workspace.clone());
        }
        let mut data = BTreeMap::from([(KEY_DATA.to_string(), ByteString(key.clone().into()))]);
        if let Some(secret) = &sigv4 {
            data.insert(SIGV4_DATA.into(), ByteString(secret.clone().into()));
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self.secrets().create(&params, &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                return Err(CliError::NameTaken(name))
            }
            Err(e) => return Err(e.into()),
        }

        let base = format!(
            "http://{}.{}.svc:{}",
            self.gateway, self.namespace, gw.spec.service.port
        );
        if self.format == Format::Json {
            return json_out(
                out,
                &json!({
                    "name": name,
                    "namespace": self.namespace,
                    "user": args.user,
                    "team": args.team,
                    "workspace": args.workspace,
                    "key": key,
                    "sigv4": sigv4.as_ref().map(|s| json!({
                        "aws_access_key_id": name,
                        "aws_secret_access_key": s,
                    })),
                }),
            );
        }
        let mut who = format!("user {}", args.user);
        if let Some(team) = &args.team {
            who.push_str(&format!(", team {team}"));
        }
        if let Some(workspace) = &args.workspace {
            who.push_str(&format!(", workspace {workspace}"));
        }
        writeln!(
            out,
            "key/{name} created in namespace {} for {who}",
            self.namespace
        )?;
        writeln!(out)?;
        writeln!(out, "    {key}")?;
        writeln!(out)?;
        if let Some(secret) = &sigv4 {
            writeln!(
                out,
                "SigV4 pair (boto3: endpoint_url=\"{base}/v1/bedrock\"):"
            )?;
            writeln!(out, "    aws_access_key_id       {name}")?;
            writeln!(out, "    aws_secret_access_key   {secret}")?;
            writeln!(out)?;
        }
        writeln!(
            out,
            "Save it now: this is the only time kubectl aigw shows it. The gateway accepts it\n\
             once the operator has pushed the next config (seconds). Callers send it as\n\
             `Authorization: Bearer`, `x-api-key` or `x-goog-api-key`, e.g.\n\
             \x20   export ANTHROPIC_BASE_URL={base}/v1/claude ANTHROPIC_API_KEY=<the key>"
        )?;
        Ok(())
    }

    pub(super) async fn list_keys(&self, out: Out<'_>, err: Out<'_>) -> Result<(), CliError> {
        let (_, selector) = self.gateway().await?;
        let mut secrets = self
            .secrets()
            .list(&ListParams::default().labels(&selector.query()))
            .await?
            .items;
        secrets.retain(|s| selector.matches(s.labels()));
        secrets.sort_by_key(|s| s.name_any());

        // What the operator would leave out, so a key that does not work says why.
        let mut first_by_hash: BTreeMap<String, String> = BTreeMap::new();
        let mut rows = Vec::new();
        for s in &secrets {
            let labels = s.labels();
            let name = s.name_any();
            let sigv4 = secret_value(s, SIGV4_DATA);
            let status = match secret_value(s, KEY_DATA) {
                None => format!("missing `{KEY_DATA}` data: not loaded"),
                Some(key) => match first_by_hash.get(&key_sha256(&key)) {
                    Some(first) => format!("same key as {first}: not loaded"),
                    None if sigv4.as_deref().is_some_and(is_weak_sigv4_secret) => {
                        format!("sigv4-secret under {MIN_SIGV4_SECRET} characters: not loaded")
                    }
                    None => {
                        first_by_hash.insert(key_sha256(&key), name.clone());
                        "ok".into()
                    }
                },
            };
            rows.push(KeyRow {
                name,
                user: labels.get(USER_LABEL).cloned(),
                team: labels.get(TEAM_LABEL).cloned(),
                workspace: labels.get(WORKSPACE_LABEL).cloned(),
                sigv4: sigv4.is_some(),
                created: s
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string()),
                status,
            });
        }
        if self.format == Format::Json {
            return json_out(out, &rows);
        }
        if rows.is_empty() {
            writeln!(
                err,
                "No gateway keys in namespace {} (Secrets labelled {selector}).",
                self.namespace
            )?;
            return Ok(());
        }
        let rows: Vec<Vec<String>> = rows.iter().map(KeyRow::cells).collect();
        table(
            out,
            &[
                "NAME",
                "USER",
                "TEAM",
                "WORKSPACE",
                "SIGV4",
                "CREATED",
                "STATUS",
            ],
            &rows,
        )?;
        Ok(())
    }

    pub(super) async fn revoke_key(
        &self,
        name: &str,
        out: Out<'_>,
        err: Out<'_>,
    ) -> Result<(), CliError> {
        let (_, selector) = self.gateway().await?;
        let secrets = self.secrets();
        let secret = secrets
            .get_opt(name)
            .await?
            .ok_or_else(|| CliError::KeyNotFound {
                name: name.to_string(),
                namespace: self.namespace.clone(),
            })?;
        if !selector.matches(secret.labels()) {
            return Err(CliError::NotAKey {
                name: name.to_string(),
                selector: selector.to_string(),
            });
        }
        // Only the Secret just checked: not one recreated under the same name meanwhile.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        secrets.delete(name, &params).await?;
        let user = secret.labels().get(USER_LABEL).cloned();
        if self.format == Format::Json {
            return json_out(
                out,
                &json!({"name": name, "namespace": self.namespace, "user": user, "revoked": true}),
            );
        }
        let shown_user = or_dash(user.as_deref().filter(|u| !u.is_empty()));
        writeln!(out, "key/{name} revoked (user {shown_user})")?;
        writeln!(
            err,
            "The gateway stops accepting it once the operator has pushed the next config (seconds)."
        )?;
        Ok(())
    }
}
