//! The fuzz targets' entry points on stable: every fixture, each of its prefixes and a
//! fixed set of byte mutations of it, through the parser or translator that reads it.
//! A panic anywhere fails the test; `dataplane/fuzz` explores further with libFuzzer.

use ai_gateway::fuzzing;
use std::path::Path;

/// Deterministic mutations: the same inputs on every run, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn variants(seed: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![seed.to_vec()];
    // Cut short at many places, as a truncated body or stream would be.
    let step = (seed.len() / 48).max(1);
    out.extend((0..seed.len()).step_by(step).map(|n| seed[..n].to_vec()));
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed.len() as u64);
    let interesting: &[&[u8]] = &[
        b"\"", b"{", b"}", b"[", b"]", b"\\u", b"\xff", b"\n\n", b"-1", b"1e999", b"null", b"\0",
    ];
    for _ in 0..96 {
        let mut v = seed.to_vec();
        if v.is_empty() {
            break;
        }
        for _ in 0..(1 + rng.next() % 4) {
            let at = (rng.next() as usize) % v.len();
            match rng.next() % 3 {
                0 => v[at] = rng.next() as u8,
                1 => {
                    let piece = interesting[(rng.next() as usize) % interesting.len()];
                    v.splice(at..at, piece.iter().copied());
                }
                _ => {
                    let end = (at + 1 + (rng.next() as usize) % 16).min(v.len());
                    v.drain(at..end);
                    if v.is_empty() {
                        break;
                    }
                }
            }
        }
        out.push(v);
    }
    out
}

fn files(dir: &str, extension: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                found.push(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    assert!(!found.is_empty(), "no *.{extension} seeds under {dir}");
    found
}

fn replay(seeds: Vec<Vec<u8>>, target: fn(&[u8])) -> usize {
    let mut runs = 0;
    for seed in seeds {
        for input in variants(&seed) {
            target(&input);
            runs += 1;
        }
    }
    runs
}

#[test]
fn caller_requests_never_panic_a_parser_or_translator() {
    let mut seeds = files("tests/fixtures/requests", "json");
    seeds.extend(files("tests/fixtures/clients", "json"));
    assert!(replay(seeds.clone(), fuzzing::chat_request) > 1000);
    replay(seeds, fuzzing::messages_request);
}

#[test]
fn provider_answers_and_streams_never_panic_a_translator() {
    assert!(
        replay(
            files("tests/fixtures/upstream", "json"),
            fuzzing::provider_response
        ) > 1000
    );
    assert!(replay(files("tests/fixtures/upstream", "sse"), fuzzing::sse_stream) > 500);
    assert!(
        replay(
            files("tests/fixtures/upstream/bedrock", "bin"),
            fuzzing::event_stream
        ) > 100
    );
}

#[test]
fn configs_and_signatures_never_panic_their_parsers() {
    let mut seeds = files("config", "yaml");
    seeds.push(b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd".to_vec());
    seeds.push(b"20260101T000000Z".to_vec());
    replay(seeds, fuzzing::config_and_headers);
}

/// The stream path's SSE splitter against eventsource-stream as the reference: every
/// recorded stream, cut into reads of several sizes, gives the same events.
#[test]
fn the_sse_splitter_agrees_with_the_reference_parser() {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for seed in files("tests/fixtures/upstream", "sse") {
        let reference: Vec<(String, String)> = runtime
            .block_on(
                futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
                    bytes::Bytes::from(seed.clone()),
                )])
                .eventsource()
                .collect::<Vec<_>>(),
            )
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| {
                (
                    if e.event == "message" {
                        String::new()
                    } else {
                        e.event
                    },
                    e.data,
                )
            })
            .collect();
        assert!(!reference.is_empty());
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                fuzzing::sse_events_in_pieces(&seed, piece),
                reference,
                "reads of {piece} bytes"
            );
        }
    }
}
