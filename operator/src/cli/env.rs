//! `kubectl aigw env`: the exports a workspace needs to reach the gateway with every
//! client it may run (Claude Code in its three formats, the OpenAI and Anthropic SDKs,
//! boto3, google-genai, Ollama clients), for a `~/.bashrc` or a workspace template.

use super::args::{EnvArgs, Format};
use super::render::json_out;
use super::{CliError, Out, Session};
use std::collections::BTreeMap;

/// The variables, in the order a person reads them.
pub fn exports(base: &str, key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("ANTHROPIC_BASE_URL", format!("{base}/v1/claude")),
        ("ANTHROPIC_BEDROCK_BASE_URL", format!("{base}/v1/bedrock")),
        ("ANTHROPIC_VERTEX_BASE_URL", format!("{base}/v1/vertex/v1")),
        ("OPENAI_BASE_URL", format!("{base}/v1")),
        (
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            format!("{base}/v1/bedrock"),
        ),
        ("GOOGLE_GEMINI_BASE_URL", format!("{base}/v1/gemini")),
        ("OLLAMA_HOST", format!("{base}/v1/ollama")),
    ];
    if let Some(key) = key {
        vars.extend([
            ("ANTHROPIC_AUTH_TOKEN", key.to_string()),
            ("OPENAI_API_KEY", key.to_string()),
            ("GEMINI_API_KEY", key.to_string()),
        ]);
    }
    vars
}

/// A value as a POSIX shell word.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

impl Session {
    pub(super) async fn env(&self, args: &EnvArgs, out: Out<'_>) -> Result<(), CliError> {
        let base = match &args.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let (gw, _) = self.gateway().await?;
                format!(
                    "http://{}.{}.svc:{}",
                    self.gateway, self.namespace, gw.spec.service.port
                )
            }
        };
        let vars = exports(&base, args.key.as_deref());
        if self.format == Format::Json {
            let map: BTreeMap<&str, &str> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            return json_out(out, &map);
        }
        for (name, value) in vars {
            writeln!(out, "export {name}={}", quoted(&value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_gets_its_base_url_and_a_key_only_when_given() {
        let vars = exports("http://gw.ai.svc:8090", None);
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("ANTHROPIC_BASE_URL"),
            Some("http://gw.ai.svc:8090/v1/claude")
        );
        assert_eq!(
            get("ANTHROPIC_VERTEX_BASE_URL"),
            Some("http://gw.ai.svc:8090/v1/vertex/v1")
        );
        assert_eq!(get("OPENAI_API_KEY"), None);
        let with_key = exports("http://gw", Some("gw_1"));
        assert!(with_key.contains(&("OPENAI_API_KEY", "gw_1".to_string())));
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }
}
