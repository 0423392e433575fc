//! Token reduction is prefix-stable over recorded agent sessions: under every setting,
//! each turn's rewritten request begins with exactly the previous turn's rewritten
//! request (breakpoint markers aside, which a provider's cache does not compare), so
//! provider prompt caches keep hitting; and the rewrites do take tokens out.

#[path = "../benches/support/transcripts.rs"]
mod transcripts;

use ai_gateway::exchange::openai_anthropic;
use ai_gateway::exchange::Target;
use ai_gateway::intelligence::prompt_cache::mark_messages_request;
use ai_gateway::intelligence::reduce::reduce;
use ai_gateway::intelligence::system_prompt::SystemPrompt;
use ai_gateway_snapshot::{ProviderKind, TokenReduction};
use serde_json::{Map, Value};
use transcripts::{without_breakpoints, Api, Transcript, SESSIONS};

fn settings() -> [(&'static str, TokenReduction); 4] {
    let off = TokenReduction::default();
    [
        (
            "dedupe_files",
            TokenReduction {
                dedupe_files: true,
                ..off
            },
        ),
        (
            "strip_boilerplate",
            TokenReduction {
                strip_boilerplate: true,
                ..off
            },
        ),
        (
            "diff_first",
            TokenReduction {
                diff_first: true,
                ..off
            },
        ),
        (
            "all",
            TokenReduction {
                dedupe_files: true,
                strip_boilerplate: true,
                diff_first: true,
                cache_breakpoints: true,
                messages_api: true,
            },
        ),
    ]
}

fn place(api: Api) -> SystemPrompt {
    match api {
        Api::OpenAi => SystemPrompt::OpenAiMessages,
        Api::Anthropic => SystemPrompt::AnthropicSystem,
    }
}

/// `later` begins with `earlier`: the same system prompt and tools, and `earlier`'s
/// messages first, markers aside.
fn assert_prefix(earlier: &Map<String, Value>, later: &Map<String, Value>, what: &str) {
    let (earlier, later) = (
        without_breakpoints(&Value::Object(earlier.clone())),
        without_breakpoints(&Value::Object(later.clone())),
    );
    assert_eq!(earlier["system"], later["system"], "{what}: system");
    assert_eq!(earlier["tools"], later["tools"], "{what}: tools");
    let (a, b) = (
        earlier["messages"].as_array().expect("messages"),
        later["messages"].as_array().expect("messages"),
    );
    assert!(a.len() <= b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x, y, "{what}: messages[{i}] differs between turns");
    }
}

fn bytes(body: &Map<String, Value>) -> usize {
    serde_json::to_vec(body).expect("json").len()
}

#[test]
fn every_rewrite_is_prefix_stable_over_every_recorded_session() {
    for name in SESSIONS {
        let transcript = Transcript::load(name);
        let turns = transcript.turns();
        let name = transcript.name;
        assert!(turns.len() >= 10, "{name}: {} turns", turns.len());
        for (setting, reduction) in settings() {
            let reduced: Vec<Map<String, Value>> = turns
                .iter()
                .map(|turn| {
                    let mut body = turn.clone();
                    reduce(&mut body, &reduction, place(transcript.api));
                    body
                })
                .collect();
            for k in 1..reduced.len() {
                assert_prefix(
                    &reduced[k - 1],
                    &reduced[k],
                    &format!("{name} {setting} turn {k}"),
                );
            }
            // What a chat caller's turn becomes for Claude, breakpoints placed.
            if transcript.api == Api::OpenAi && reduction.cache_breakpoints {
                let target = Target {
                    model: "claude-sonnet-4-5",
                    kind: ProviderKind::Anthropic,
                    default_max_tokens: 4096,
                    max_output_tokens: None,
                    vertex: None,
                };
                let upstream: Vec<Map<String, Value>> = reduced
                    .iter()
                    .map(|body| {
                        let req = serde_json::from_value(Value::Object(body.clone()))
                            .expect("a chat request");
                        let Value::Object(mut doc) =
                            openai_anthropic::request(&req, &target).expect("translates")
                        else {
                            panic!("an object")
                        };
                        mark_messages_request(&mut doc);
                        doc
                    })
                    .collect();
                for k in 1..upstream.len() {
                    assert_prefix(
                        &upstream[k - 1],
                        &upstream[k],
                        &format!("{name} upstream turn {k}"),
                    );
                }
            }
        }
    }
}

#[test]
fn repeated_files_and_boilerplate_leave_the_recorded_sessions() {
    let all = settings()[3].1;
    for name in SESSIONS {
        let transcript = Transcript::load(name);
        let last = transcript.turns().pop().expect("a turn");
        let mut reduced = last.clone();
        let done = reduce(&mut reduced, &all, place(transcript.api));
        assert!(done.files + done.paragraphs > 0, "{name}: {done:?}");
        assert!(bytes(&reduced) < bytes(&last), "{name}");
    }
}
