//! What a call cost: a built-in price table per model (USD per million tokens, with
//! cache-read and cache-write rates), overridable per provider.

use crate::translate::TokenUsage;
use crate::upstream::Upstream;
use ai_gateway_snapshot::{ModelPrice, ProviderKind};
use dashmap::DashMap;
use serde::Deserialize;

const BUILTIN: &str = include_str!("prices.yaml");

#[derive(Deserialize)]
struct Entry {
    models: Vec<String>,
    input: f64,
    output: f64,
    #[serde(default)]
    cache_read: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
}

pub struct PriceTable {
    entries: Vec<(Vec<glob::Pattern>, ModelPrice)>,
    /// Model id → its built-in price: matching dozens of globs per call would show up
    /// on the hot path.
    resolved: DashMap<String, Option<ModelPrice>, crate::FastHasher>,
}

/// Glob routes admit unbounded model names; the memo stops growing past this.
const MAX_MEMOISED_MODELS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
#[error("built-in price table: {0}")]
pub struct PriceTableError(String);

impl PriceTable {
    pub fn builtin() -> Result<Self, PriceTableError> {
        let entries: Vec<Entry> =
            serde_yaml::from_str(BUILTIN).map_err(|e| PriceTableError(e.to_string()))?;
        let entries = entries
            .into_iter()
            .map(|e| {
                let patterns = e
                    .models
                    .iter()
                    .map(|m| glob::Pattern::new(&m.to_ascii_lowercase()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| PriceTableError(format!("{:?}: {}", e.models, err.msg)))?;
                Ok((
                    patterns,
                    ModelPrice {
                        input_per_mtok: e.input,
                        output_per_mtok: e.output,
                        cache_read_per_mtok: e.cache_read,
                        cache_write_per_mtok: e.cache_write,
                    },
                ))
            })
            .collect::<Result<Vec<_>, PriceTableError>>()?;
        Ok(Self {
            entries,
            resolved: DashMap::default(),
        })
    }

    /// The most expensive built-in price: what a model with no price is charged when
    /// a budget must be metered conservatively.
    pub fn highest(&self) -> ModelPrice {
        self.entries
            .iter()
            .map(|(_, price)| *price)
            .max_by(|a, b| {
                (a.input_per_mtok + a.output_per_mtok)
                    .total_cmp(&(b.input_per_mtok + b.output_per_mtok))
            })
            .unwrap_or_default()
    }

    /// The provider's own override, else the built-in price; local models are free.
    pub fn price(&self, provider: &Upstream, upstream_model: &str) -> Option<ModelPrice> {
        if let Some(p) = provider.config.pricing.get(upstream_model) {
            return Some(*p);
        }
        if provider.kind == ProviderKind::Ollama {
            return Some(ModelPrice::default());
        }
        if let Some(known) = self.resolved.get(upstream_model) {
            return *known;
        }
        let model = upstream_model.to_ascii_lowercase();
        let price = self
            .entries
            .iter()
            .find(|(patterns, _)| patterns.iter().any(|p| p.matches(&model)))
            .map(|(_, price)| *price);
        if self.resolved.len() < MAX_MEMOISED_MODELS {
            self.resolved.insert(upstream_model.to_string(), price);
        }
        price
    }
}

/// Cost in micro-USD. Cache reads and writes are priced at their own rates (the input
/// rate when the table has none) and never also counted as plain input.
pub fn cost_micros(usage: &TokenUsage, price: &ModelPrice) -> u64 {
    let per_token = |per_mtok: f64, tokens: u64| per_mtok * tokens as f64; // micro-USD
    let micros = per_token(price.input_per_mtok, usage.input)
        + per_token(price.output_per_mtok, usage.output)
        + per_token(
            price.cache_read_per_mtok.unwrap_or(price.input_per_mtok),
            usage.cache_read,
        )
        + per_token(
            price.cache_write_per_mtok.unwrap_or(price.input_per_mtok),
            usage.cache_write,
        );
    micros.round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64, read: f64, write: f64) -> ModelPrice {
        ModelPrice {
            input_per_mtok: input,
            output_per_mtok: output,
            cache_read_per_mtok: Some(read),
            cache_write_per_mtok: Some(write),
        }
    }

    fn tokens(input: u64, output: u64, cache_read: u64, cache_write: u64) -> TokenUsage {
        TokenUsage {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    #[test]
    fn cache_tokens_are_priced_at_their_own_rates() {
        // Claude Sonnet 4.5 list prices: $3 in, $15 out, $0.30 cache read, $3.75 cache write.
        let sonnet = price(3.0, 15.0, 0.30, 3.75);
        // 18×3 + 500×15 + 2048×0.30 + 312×3.75 = 54 + 7500 + 614.4 + 1170 = 9338.4 µUSD
        assert_eq!(cost_micros(&tokens(18, 500, 2048, 312), &sonnet), 9338);
    }

    #[test]
    fn openai_cached_input_is_not_charged_twice() {
        // GPT-4o: $2.50 in, $10 out, $1.25 cached input; usage from prompt_tokens 1200 with 1024 cached.
        let gpt4o = price(2.5, 10.0, 1.25, 0.0);
        // 176×2.5 + 80×10 + 1024×1.25 = 440 + 800 + 1280 = 2520 µUSD
        assert_eq!(cost_micros(&tokens(176, 80, 1024, 0), &gpt4o), 2520);
    }

    #[test]
    fn bedrock_and_gemini_usage_shapes_cost_the_same_way() {
        use crate::translate::usage::usage_from_json;
        use serde_json::json;
        // Claude Sonnet 4.5 on Bedrock, Converse usage: the same worked example as Anthropic's.
        let sonnet = price(3.0, 15.0, 0.30, 3.75);
        let bedrock = usage_from_json(&json!({"usage": {"inputTokens": 18, "outputTokens": 500,
            "cacheReadInputTokens": 2048, "cacheWriteInputTokens": 312}}))
        .expect("bedrock usage");
        assert_eq!(cost_micros(&bedrock, &sonnet), 9338);
        // Gemini 2.5 Pro: $1.25 in, $10 out (thinking included), $0.31 cached.
        // prompt 1200 of which 1024 cached, 60 candidates + 20 thoughts:
        // 176×1.25 + 80×10 + 1024×0.31 = 220 + 800 + 317.44 = 1337.44 µUSD
        let pro = price(1.25, 10.0, 0.31, 0.0);
        let gemini = usage_from_json(&json!({"usageMetadata": {"promptTokenCount": 1200,
            "cachedContentTokenCount": 1024, "candidatesTokenCount": 60, "thoughtsTokenCount": 20}}))
        .expect("gemini usage");
        assert_eq!(cost_micros(&gemini, &pro), 1337);
    }

    #[test]
    fn the_builtin_table_prices_the_models_users_name() {
        let table = PriceTable::builtin().expect("table parses");
        let lookup = |m: &str| {
            let m = m.to_ascii_lowercase();
            table
                .entries
                .iter()
                .find(|(ps, _)| ps.iter().any(|p| p.matches(&m)))
                .map(|(_, p)| *p)
        };
        for model in [
            "claude-sonnet-4-5",
            "claude-opus-4-1-20250805",
            "claude-haiku-4-5",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.titan-text-express-v1",
            "gemini-2.5-pro",
            "gpt-4o",
            "gpt-4o-mini",
            // Vertex AI names a version after `@`.
            "claude-sonnet-4-5@20250929",
            "claude-sonnet-4@20250514",
            "claude-opus-4@20250514",
        ] {
            assert!(lookup(model).is_some(), "no price for {model}");
        }
        let mini = lookup("gpt-4o-mini").expect("priced");
        let full = lookup("gpt-4o").expect("priced");
        assert!(
            mini.input_per_mtok < full.input_per_mtok,
            "gpt-4o-mini must not match gpt-4o's entry"
        );
    }
}
