//! Token reduction over recorded agent sessions: the input tokens each turn sends
//! upstream before and after each rewrite, the share of each turn a provider could
//! serve from its prompt cache, what that bills, and what the rewrites cost per call.
//!
//! `cargo bench -p ai-gateway-dataplane --bench token_reduction`
//!
//! Tokens are counted with o200k (the gateway's estimator; Claude's own tokenizer
//! differs by a few per cent, the same way before and after). The caches are simulated
//! as the providers document them:
//! - Anthropic: a prefix is cached at each `cache_control` breakpoint (1,024 tokens at
//!   least); a later request reads the longest cached prefix ending at most 20 blocks
//!   before one of its breakpoints; reads bill 0.1×, writes 1.25× the input price.
//! - OpenAI: the longest prefix of a previous request (1,024 tokens at least, in steps
//!   of 128) is read automatically at 0.5×.

#[path = "support/transcripts.rs"]
mod transcripts;

use ai_gateway::exchange::{openai_anthropic, Target};
use ai_gateway::intelligence::prompt_cache::mark_messages_request;
use ai_gateway::intelligence::reduce::reduce;
use ai_gateway::intelligence::system_prompt::SystemPrompt;
use ai_gateway::translate::tokens::count_text;
use ai_gateway_snapshot::{ProviderKind, TokenReduction};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};
use transcripts::{without_breakpoints, Api, Transcript, SESSIONS};

/// Anthropic checks this many blocks back from a breakpoint for a cached prefix.
const LOOKBACK_BLOCKS: usize = 20;
const MIN_CACHED_TOKENS: u64 = 1024;

/// One content block as a provider's cache sees it.
struct Block {
    tokens: u64,
    /// Hash of every block up to and including this one.
    prefix: u64,
    breakpoint: bool,
}

/// A request's blocks in cache order: system, tools, then each message's content.
fn blocks(doc: &Map<String, Value>, openai: bool) -> Vec<Block> {
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut push = |value: &Value, prefix: &str| {
        let marked = value.get("cache_control").is_some();
        let text = format!("{prefix}{}", without_breakpoints(value));
        pieces.push((text, marked));
    };
    if openai {
        // OpenAI caches whole messages in order; tools come first.
        for tool in doc
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(tool, "tool:");
        }
        for m in doc["messages"].as_array().into_iter().flatten() {
            push(m, "");
        }
    } else {
        for tool in doc
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(tool, "tool:");
        }
        match doc.get("system") {
            Some(Value::Array(blocks)) => blocks.iter().for_each(|b| push(b, "system:")),
            Some(other) => push(other, "system:"),
            None => {}
        }
        for m in doc["messages"].as_array().into_iter().flatten() {
            let role = m["role"].as_str().unwrap_or("");
            match &m["content"] {
                Value::Array(blocks) => blocks.iter().for_each(|b| push(b, role)),
                other => push(other, role),
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    pieces
        .into_iter()
        .map(|(text, breakpoint)| {
            text.hash(&mut hasher);
            Block {
                tokens: count_text(&text),
                prefix: hasher.finish(),
                breakpoint,
            }
        })
        .collect()
}

/// One turn as the provider bills it.
#[derive(Default, Clone, Copy)]
struct Billed {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    /// Blocks served from the cache.
    cached_blocks: usize,
}

impl Billed {
    /// Input tokens at the uncached price that bill the same.
    fn equivalent(&self, read_price: f64, write_price: f64) -> f64 {
        (self.input - self.cache_read - self.cache_write) as f64
            + self.cache_read as f64 * read_price
            + self.cache_write as f64 * write_price
    }
}

/// A provider's prompt cache over a session's turns.
#[derive(Default)]
struct Cache {
    prefixes: HashSet<u64>,
}

impl Cache {
    fn anthropic(&mut self, blocks: &[Block]) -> Billed {
        let cumulative: Vec<u64> = blocks
            .iter()
            .scan(0, |sum, b| {
                *sum += b.tokens;
                Some(*sum)
            })
            .collect();
        let input = cumulative.last().copied().unwrap_or(0);
        let breakpoints: Vec<usize> = (0..blocks.len())
            .filter(|&i| blocks[i].breakpoint)
            .collect();
        let mut hit: Option<usize> = None;
        for &b in &breakpoints {
            let found = (b.saturating_sub(LOOKBACK_BLOCKS)..=b)
                .rev()
                .find(|&j| self.prefixes.contains(&blocks[j].prefix));
            hit = hit.max(found);
        }
        let cache_read = hit.map_or(0, |j| cumulative[j]);
        let written_to = breakpoints
            .iter()
            .copied()
            .filter(|&b| cumulative[b] >= MIN_CACHED_TOKENS)
            .max();
        let cache_write = written_to.map_or(0, |b| cumulative[b].saturating_sub(cache_read));
        for &b in &breakpoints {
            if cumulative[b] >= MIN_CACHED_TOKENS {
                self.prefixes.insert(blocks[b].prefix);
            }
        }
        Billed {
            input,
            cache_read,
            cache_write,
            cached_blocks: hit.map_or(0, |j| j + 1),
        }
    }

    fn openai(&mut self, blocks: &[Block]) -> Billed {
        let input: u64 = blocks.iter().map(|b| b.tokens).sum();
        let mut matched = 0;
        let mut tokens = 0;
        for (i, b) in blocks.iter().enumerate() {
            if !self.prefixes.contains(&b.prefix) {
                break;
            }
            matched = i + 1;
            tokens += b.tokens;
        }
        let cache_read = if tokens >= MIN_CACHED_TOKENS {
            tokens / 128 * 128
        } else {
            0
        };
        for b in blocks {
            self.prefixes.insert(b.prefix);
        }
        Billed {
            input,
            cache_read,
            cache_write: 0,
            cached_blocks: if cache_read > 0 { matched } else { 0 },
        }
    }
}

/// How a session's turns reach the provider.
#[derive(Clone, Copy)]
enum Served {
    /// An OpenAI-format caller translated to Claude (breakpoints when asked).
    ChatOnClaude,
    /// A chat caller on OpenAI, cached automatically.
    ChatOnOpenAi,
    /// Claude Code passed through, with its own breakpoints.
    MessagesOnClaude,
}

fn upstream_document(
    body: &Map<String, Value>,
    served: Served,
    breakpoints: bool,
) -> Map<String, Value> {
    match served {
        Served::ChatOnClaude => {
            let target = Target {
                model: "claude-sonnet-4-5",
                kind: ProviderKind::Anthropic,
                default_max_tokens: 4096,
                max_output_tokens: None,
                vertex: None,
            };
            let req = serde_json::from_value(Value::Object(body.clone())).expect("a chat request");
            let Value::Object(mut doc) =
                openai_anthropic::request(&req, &target).expect("translates")
            else {
                panic!("an object")
            };
            if breakpoints {
                mark_messages_request(&mut doc);
            }
            doc
        }
        Served::ChatOnOpenAi | Served::MessagesOnClaude => body.clone(),
    }
}

struct Run {
    label: &'static str,
    turns: Vec<Billed>,
}

fn run(
    transcript: &Transcript,
    served: Served,
    label: &'static str,
    reduction: TokenReduction,
) -> Run {
    let place = match transcript.api {
        Api::OpenAi => SystemPrompt::OpenAiMessages,
        Api::Anthropic => SystemPrompt::AnthropicSystem,
    };
    let mut cache = Cache::default();
    let turns = transcript
        .turns()
        .into_iter()
        .map(|mut body| {
            reduce(&mut body, &reduction, place);
            let doc = upstream_document(&body, served, reduction.cache_breakpoints);
            match served {
                Served::ChatOnOpenAi => cache.openai(&blocks(&doc, true)),
                _ => cache.anthropic(&blocks(&doc, false)),
            }
        })
        .collect();
    Run { label, turns }
}

fn prices(served: Served) -> (f64, f64) {
    match served {
        Served::ChatOnOpenAi => (0.5, 1.0),
        _ => (0.1, 1.25),
    }
}

fn summary(runs: &[Run], served: Served) {
    let (read, write) = prices(served);
    let base_sent: u64 = runs[0].turns.iter().map(|t| t.input).sum();
    let base_billed: f64 = runs[0]
        .turns
        .iter()
        .map(|t| t.equivalent(read, write))
        .sum();
    println!("| setting | input tokens sent | vs as sent | cache reads | billed (input-price tokens) | vs as sent |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in runs {
        let sent: u64 = r.turns.iter().map(|t| t.input).sum();
        let reads: u64 = r.turns.iter().map(|t| t.cache_read).sum();
        let billed: f64 = r.turns.iter().map(|t| t.equivalent(read, write)).sum();
        println!(
            "| {} | {sent} | {:+.1} % | {reads} | {billed:.0} | {:+.1} % |",
            r.label,
            (sent as f64 / base_sent as f64 - 1.0) * 100.0,
            (billed / base_billed - 1.0) * 100.0
        );
    }
}

fn per_turn(before: &Run, after: &Run) {
    println!(
        "\n| turn | sent as is | cached as is | sent, {} | cached, {} | cached blocks as is / reduced |",
        after.label, after.label
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut shorter = 0;
    for (k, (a, b)) in before.turns.iter().zip(&after.turns).enumerate() {
        let share = |t: &Billed| t.cache_read as f64 / t.input.max(1) as f64 * 100.0;
        println!(
            "| {} | {} | {:.0} % | {} | {:.0} % | {} / {} |",
            k + 1,
            a.input,
            share(a),
            b.input,
            share(b),
            a.cached_blocks,
            b.cached_blocks
        );
        if b.cached_blocks < a.cached_blocks {
            shorter += 1;
        }
    }
    println!("\nturns whose cache-hit prefix is shorter with reduction: {shorter}");
}

fn timing(transcript: &Transcript, reduction: TokenReduction) {
    let place = match transcript.api {
        Api::OpenAi => SystemPrompt::OpenAiMessages,
        Api::Anthropic => SystemPrompt::AnthropicSystem,
    };
    let turns = transcript.turns();
    let mut samples: Vec<Duration> = Vec::new();
    for _ in 0..20 {
        for turn in &turns {
            let bytes = serde_json::to_vec(turn).expect("json");
            let started = Instant::now();
            let reduced =
                ai_gateway::intelligence::reduced_body(&bytes, &reduction, place).expect("reduces");
            samples.push(started.elapsed());
            std::hint::black_box(reduced);
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let largest = turns
        .iter()
        .map(|t| serde_json::to_vec(t).map_or(0, |b| b.len()))
        .max()
        .unwrap_or(0);
    println!(
        "{}: parse, rewrite and write one turn's body (largest {} KB): p50 {:?}, p99 {:?}, max {:?}",
        transcript.name,
        largest / 1024,
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let off = TokenReduction::default();
    let dedupe = TokenReduction {
        dedupe_files: true,
        ..off
    };
    let strip = TokenReduction {
        strip_boilerplate: true,
        ..off
    };
    let breakpoints = TokenReduction {
        cache_breakpoints: true,
        ..off
    };
    let all = TokenReduction {
        dedupe_files: true,
        strip_boilerplate: true,
        cache_breakpoints: true,
        diff_first: false,
        messages_api: true,
    };
    let with_diff_first = TokenReduction {
        diff_first: true,
        ..all
    };

    let coding = Transcript::load(SESSIONS[0]);
    println!(
        "## {} ({} turns), an OpenAI-format agent on Claude\n",
        coding.name,
        coding.turns().len()
    );
    let served = Served::ChatOnClaude;
    let runs = [
        run(&coding, served, "as sent", off),
        run(&coding, served, "dedupe_files", dedupe),
        run(&coding, served, "strip_boilerplate", strip),
        run(&coding, served, "cache_breakpoints", breakpoints),
        run(&coding, served, "all but diff_first", all),
        run(&coding, served, "all, diff_first too", with_diff_first),
    ];
    summary(&runs, served);
    per_turn(&runs[0], &runs[4]);

    let cont = Transcript::load(SESSIONS[1]);
    println!(
        "\n## {} ({} turns), Continue on gpt-4o\n",
        cont.name,
        cont.turns().len()
    );
    let served = Served::ChatOnOpenAi;
    let runs = [
        run(&cont, served, "as sent", off),
        run(&cont, served, "dedupe_files", dedupe),
        run(&cont, served, "strip_boilerplate", strip),
        run(&cont, served, "all but diff_first", all),
    ];
    summary(&runs, served);
    per_turn(&runs[0], &runs[3]);

    let claude_code = Transcript::load(SESSIONS[2]);
    println!(
        "\n## {} ({} turns), Claude Code passed through with its own breakpoints\n",
        claude_code.name,
        claude_code.turns().len()
    );
    let served = Served::MessagesOnClaude;
    let runs = [
        run(&claude_code, served, "as sent", off),
        run(&claude_code, served, "dedupe_files", dedupe),
    ];
    summary(&runs, served);
    per_turn(&runs[0], &runs[1]);

    println!("\n## Added latency per call (release build)\n");
    for transcript in [&coding, &cont, &claude_code] {
        timing(transcript, with_diff_first);
    }
}
