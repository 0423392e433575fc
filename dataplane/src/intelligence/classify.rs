//! How demanding a chat request looks, decided from the body alone — no model call.
//!
//! `model: "auto"` routes on this verdict: `Simple` to the cheaper model, `Complex` to
//! the stronger one. The classifier reads an OpenAI chat completions or Anthropic
//! Messages body once, into borrowed types that skip everything it does not score
//! (image data, tool schemas, sampling parameters), then measures a handful of signals
//! and adds up the points in [`RULES`]. It is deterministic, allocation-light, and
//! returns `Simple` with the reason `unreadable` for anything that is not a JSON object.

use memchr::memmem::Finder;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

/// How demanding a request looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Simple,
    Complex,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Simple => "simple",
            Tier::Complex => "complex",
        }
    }
}

/// The classifier's verdict: the tier, the score it came from, and the signals that
/// decided it (short, stable snake_case names, e.g. "long_prompt", "stack_trace",
/// "design_words", "many_tools", "deep_conversation", "attachments", "code").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub tier: Tier,
    pub score: u32,
    pub reasons: Vec<&'static str>,
}

/// A score at or above this is `Complex`: two strong signals (a stack trace and a
/// design word), or one strong signal with supporting context, but not one weak one.
pub const COMPLEX_AT: u32 = 6;

/// What a rule measures.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// Text bytes of the latest turn (the trailing user and tool messages).
    TurnBytes,
    /// Text bytes of the whole conversation, system prompt included.
    ConversationBytes,
    /// Code-like lines plus three per code fence, in the latest turn.
    CodeLines,
    /// Stack-trace and compiler-error markers in the latest turn, up to
    /// [`MAX_ERROR_MARKERS`].
    ErrorMarkers,
    /// Distinct reasoning and design words in the user's latest ask.
    DesignWords,
    /// Distinct small-task words and phrases in the user's latest ask.
    SimpleWords,
    /// Numbered or bulleted lines in the user's latest ask.
    ListItems,
    /// Tools declared in `tools` (or legacy `functions`).
    Tools,
    /// Messages in the conversation, system excluded.
    Turns,
    /// Images, documents, files and audio anywhere in the conversation.
    Attachments,
}

/// One scoring step: when `measure` is at least `at_least`, the reason is worth
/// `points`. Rules of one reason are listed in ascending order and the last that
/// applies wins, so a graded signal counts once, at its highest step.
struct Rule {
    reason: &'static str,
    measure: Measure,
    at_least: usize,
    points: i32,
}

/// The weights, and why.
///
/// A pasted stack trace and explicit design vocabulary are the strongest signs that a
/// request needs deep reasoning, so each alone comes close to [`COMPLEX_AT`]. Length,
/// code, depth and attachments are context: they raise a request that already asks for
/// something hard but do not make a long "summarize this" complex on their own.
/// Small-task wording ("fix typo", "translate", "what is") pulls the other way, because
/// coding agents send large contexts and many tools even for one-word edits. Tool count
/// is weak for the same reason: Claude Code declares every tool on every call.
const RULES: &[Rule] = &[
    // Pasted files, logs and specifications: there is more to reason over.
    rule("long_prompt", Measure::TurnBytes, 3_000, 2),
    rule("long_prompt", Measure::TurnBytes, 12_000, 3),
    rule("long_prompt", Measure::TurnBytes, 48_000, 4),
    // A long-running session carries state the answer must stay consistent with.
    rule("long_conversation", Measure::ConversationBytes, 30_000, 1),
    rule("long_conversation", Measure::ConversationBytes, 100_000, 3),
    // Code to read or change; several blocks usually mean several files.
    rule("code", Measure::CodeLines, 8, 2),
    rule("code", Measure::CodeLines, 40, 3),
    rule("code", Measure::CodeLines, 150, 4),
    // Debugging from a trace is the classic task a weaker model gets wrong.
    rule("stack_trace", Measure::ErrorMarkers, 1, 5),
    // A wall of errors (a broken build, several failing tests) is more work than one.
    rule("stack_trace", Measure::ErrorMarkers, 3, 6),
    // The user says the task is about design, correctness, security or performance.
    rule("design_words", Measure::DesignWords, 1, 4),
    rule("design_words", Measure::DesignWords, 2, 6),
    rule("design_words", Measure::DesignWords, 3, 8),
    rule("design_words", Measure::DesignWords, 4, 10),
    // A short, well-bounded task.
    rule("simple_words", Measure::SimpleWords, 1, -4),
    rule("simple_words", Measure::SimpleWords, 2, -6),
    // A multi-part request: requirements, steps, acceptance criteria.
    rule("multi_step", Measure::ListItems, 3, 2),
    rule("multi_step", Measure::ListItems, 6, 3),
    // An agent with a large toolbox; weak, every Claude Code call has one.
    rule("many_tools", Measure::Tools, 5, 1),
    rule("many_tools", Measure::Tools, 12, 2),
    // Many back-and-forths: an ongoing investigation or build.
    rule("deep_conversation", Measure::Turns, 8, 1),
    rule("deep_conversation", Measure::Turns, 20, 2),
    rule("deep_conversation", Measure::Turns, 50, 3),
    // Screenshots, diagrams and documents to interpret.
    rule("attachments", Measure::Attachments, 1, 1),
    rule("attachments", Measure::Attachments, 3, 2),
];

const fn rule(reason: &'static str, measure: Measure, at_least: usize, points: i32) -> Rule {
    Rule {
        reason,
        measure,
        at_least,
        points,
    }
}

/// Word stems that mark reasoning, design, correctness, security or performance work.
/// A token matches when it starts with the stem, case-insensitively ("architect" finds
/// "architecture", "optimi" finds "optimise" and "optimization").
const DESIGN_STEMS: &[&str] = &[
    "architect",
    "design",
    "trade-off",
    "tradeoff",
    "refactor",
    "prove",
    "proof",
    "optimi",
    "concurren",
    "parallel",
    "security",
    "secure",
    "vulnerab",
    "exploit",
    "threat",
    "audit",
    "migrat",
    "scalab",
    "distributed",
    "consisten",
    "invariant",
    "deadlock",
    "race",
    "thread-safe",
    "bottleneck",
    "performance",
    "latency",
    "throughput",
    "algorithm",
    "complexity",
    "debug",
    "investigat",
    "root-cause",
    "why",
    "flaky",
    "leak",
    "regression",
    "strategy",
    "evaluate",
    "rewrite",
    "overhaul",
    "idempoten",
    "failover",
    "rollout",
    "formal",
    "correctness",
    "zero-downtime",
    "replica",
    "rollback",
    "cutover",
    "lock-free",
    "atomic",
    "assess",
    "attack",
    "privilege",
    "consensus",
    "tolerat",
];

/// Word stems of small, bounded tasks; a trailing `$` asks for the whole word ("list",
/// not "listings"). "what is" / "what does" are matched as phrases.
const SIMPLE_STEMS: &[&str] = &[
    "typo",
    "rename",
    "translat",
    "summar",
    "tl;dr",
    "tldr",
    "spell",
    "grammar",
    "capitaliz",
    "synonym",
    "define",
    "definition",
    "meaning",
    "list$",
    "convert",
    "reword",
    "rephrase",
    "one-liner",
    "oneliner",
    "quick",
    "simple",
    "lowercase",
    "uppercase",
    "alphabetiz",
    "sort",
    "docstring",
];

/// Markers of stack traces and compiler or runtime error output.
const TRACE_MARKERS: &[&str] = &[
    "Traceback (most recent call last)",
    "panicked at",
    "Exception in thread",
    "error[E",
    "Caused by:",
    "[running]:",
    "Segmentation fault",
    "AssertionError",
    "Uncaught ",
    "error TS",
    "FATAL ERROR",
    "fatal error: ",
];

// One bit per stem in `WordHits`, plus one for the "what is" phrase.
const _: () = assert!(DESIGN_STEMS.len() <= 64 && SIMPLE_STEMS.len() < 64);

static TRACE_FINDERS: LazyLock<Vec<Finder<'static>>> =
    LazyLock::new(|| TRACE_MARKERS.iter().map(Finder::new).collect());

/// Stack frames whose file extension is followed by a line number, on a line that
/// starts with `at ` (Java, Kotlin, JavaScript, TypeScript).
const FRAME_EXTENSIONS: &[&str] = &[".java:", ".kt:", ".js:", ".ts:", ".scala:"];

static FRAME_FINDERS: LazyLock<Vec<Finder<'static>>> =
    LazyLock::new(|| FRAME_EXTENSIONS.iter().map(Finder::new).collect());

static FENCE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("```"));

/// How much of the user's ask the word scan reads: the head and the tail, where people
/// put the question around a paste.
const ASK_HEAD: usize = 4_096;
const ASK_TAIL: usize = 2_048;

/// Scores a chat request body (OpenAI chat completions or Anthropic Messages JSON:
/// `messages` with string or block content, `system`, `tools`) without a model call.
pub fn classify(body: &[u8]) -> Verdict {
    // A struct deserializer also accepts a JSON array; a chat request is an object.
    let starts_as_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_as_object {
        return Verdict::unreadable();
    }
    match serde_json::from_slice::<Request<'_>>(body) {
        Ok(request) => verdict(&Measures::of(&request)),
        Err(_) => Verdict::unreadable(),
    }
}

impl Verdict {
    fn unreadable() -> Verdict {
        Verdict {
            tier: Tier::Simple,
            score: 0,
            reasons: vec!["unreadable"],
        }
    }
}

fn verdict(m: &Measures) -> Verdict {
    // Each reason's points: the last applicable rule of that reason.
    let mut fired: Vec<(&'static str, i32)> = Vec::with_capacity(8);
    for r in RULES {
        if m.get(r.measure) < r.at_least {
            continue;
        }
        match fired.iter_mut().find(|(reason, _)| *reason == r.reason) {
            Some(slot) => slot.1 = r.points,
            None => fired.push((r.reason, r.points)),
        }
    }
    let total: i32 = fired.iter().map(|(_, p)| p).sum();
    let score = u32::try_from(total).unwrap_or(0);
    Verdict {
        tier: if score >= COMPLEX_AT {
            Tier::Complex
        } else {
            Tier::Simple
        },
        score,
        reasons: fired.into_iter().map(|(reason, _)| reason).collect(),
    }
}

/// The numbers the rules read.
#[derive(Debug, Default)]
struct Measures {
    turn_bytes: usize,
    conversation_bytes: usize,
    code_lines: usize,
    error_markers: usize,
    design_words: usize,
    simple_words: usize,
    list_items: usize,
    tools: usize,
    turns: usize,
    attachments: usize,
}

impl Measures {
    fn get(&self, measure: Measure) -> usize {
        match measure {
            Measure::TurnBytes => self.turn_bytes,
            Measure::ConversationBytes => self.conversation_bytes,
            Measure::CodeLines => self.code_lines,
            Measure::ErrorMarkers => self.error_markers,
            Measure::DesignWords => self.design_words,
            Measure::SimpleWords => self.simple_words,
            Measure::ListItems => self.list_items,
            Measure::Tools => self.tools,
            Measure::Turns => self.turns,
            Measure::Attachments => self.attachments,
        }
    }

    fn of(request: &Request<'_>) -> Measures {
        let mut m = Measures {
            tools: request.tools.as_ref().map_or(0, Vec::len)
                + request.functions.as_ref().map_or(0, Vec::len),
            ..Measures::default()
        };
        if let Some(system) = &request.system {
            system.for_each_text(&mut |t| m.conversation_bytes += t.len());
        }

        let messages = &request.messages;
        // The latest turn: the trailing run of non-assistant messages (the user's text
        // and any tool results since the model last spoke). An assistant prefill at the
        // very end is skipped over.
        let end = messages
            .iter()
            .rposition(|msg| !msg.is_assistant())
            .map_or(0, |i| i + 1);
        let start = messages[..end]
            .iter()
            .rposition(Message::is_assistant)
            .map_or(0, |i| i + 1);
        // The ask: the text the user wrote most recently (in an agent loop the latest
        // turn may hold only tool results; the task is in an earlier user message).
        let ask = messages.iter().rposition(Message::has_user_text);

        for (i, msg) in messages.iter().enumerate() {
            if msg.is_system() {
                if let Some(content) = &msg.content {
                    content.for_each_text(&mut |t| m.conversation_bytes += t.len());
                }
                continue;
            }
            m.turns += 1;
            let Some(content) = &msg.content else {
                continue;
            };
            m.attachments += content.attachments();
            let in_turn = (start..end).contains(&i);
            content.for_each_text(&mut |t| {
                m.conversation_bytes += t.len();
                if in_turn {
                    m.turn_bytes += t.len();
                    m.code_lines += code_lines(t.as_bytes());
                    if m.error_markers < MAX_ERROR_MARKERS {
                        m.error_markers += error_markers(t.as_bytes());
                    }
                }
            });
            if Some(i) == ask {
                let mut words = WordHits::default();
                content.for_each_user_text(&mut |t| {
                    let t = t.as_bytes();
                    if t.len() <= ASK_HEAD + ASK_TAIL {
                        words.scan(t, true);
                    } else {
                        words.scan(&t[..ASK_HEAD], true);
                        words.scan(&t[t.len() - ASK_TAIL..], false);
                    }
                    m.list_items += list_items(t);
                });
                m.design_words = words.design.count_ones() as usize;
                m.simple_words = words.simple.count_ones() as usize;
            }
        }
        m
    }
}

/// Code-like lines (ending in `;`, `{`, `}`, `):` or `=>`, or indented by four spaces or
/// a tab) plus three per code fence.
fn code_lines(text: &[u8]) -> usize {
    let fences = FENCE.find_iter(text).count();
    let mut lines = 0;
    for line in text.split(|b| *b == b'\n') {
        let indented = line.starts_with(b"    ") || line.starts_with(b"\t");
        let trimmed = line.trim_ascii_end();
        let code_end = matches!(trimmed.last(), Some(b';' | b'{' | b'}'))
            || trimmed.ends_with(b"):")
            || trimmed.ends_with(b"=>");
        if (indented && !trimmed.trim_ascii_start().is_empty()) || code_end {
            lines += 1;
        }
    }
    lines + 3 * fences
}

/// Enough error markers to reach the highest `stack_trace` step; counting stops there.
const MAX_ERROR_MARKERS: usize = 3;

/// How many stack-trace and error markers `text` holds, counting at most
/// [`MAX_ERROR_MARKERS`]. One SIMD `memmem` pass per marker measured faster here than
/// a single Aho-Corasick automaton over all of them (short, common-prefix patterns
/// defeat its prefilter).
fn error_markers(text: &[u8]) -> usize {
    let mut n = 0;
    for f in TRACE_FINDERS.iter() {
        n += f.find_iter(text).take(MAX_ERROR_MARKERS - n).count();
        if n >= MAX_ERROR_MARKERS {
            return n;
        }
    }
    for f in FRAME_FINDERS.iter() {
        // A trace has many frames but is one trace: one per language.
        let needle = f.needle().len();
        n += usize::from(
            f.find_iter(text)
                .any(|start| is_frame(text, start, start + needle)),
        );
        if n >= MAX_ERROR_MARKERS {
            return n;
        }
    }
    n
}

/// `….java:NN` on a line that starts with `at `.
fn is_frame(text: &[u8], start: usize, end: usize) -> bool {
    let numbered = text.get(end).is_some_and(u8::is_ascii_digit);
    let line_start = memchr::memrchr(b'\n', &text[..start]).map_or(0, |n| n + 1);
    numbered
        && text[line_start..start]
            .trim_ascii_start()
            .starts_with(b"at ")
}

/// Lines that start with `1.`, `2)`, `- ` or `* ` after optional indentation.
fn list_items(text: &[u8]) -> usize {
    text.split(|b| *b == b'\n')
        .filter(|line| {
            let line = line.trim_ascii_start();
            let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 {
                matches!(line.get(digits), Some(b'.' | b')'))
            } else {
                line.starts_with(b"- ") || line.starts_with(b"* ")
            }
        })
        .count()
}

/// Small-task words count only among the first words of a text block, where a request
/// states its verb ("Translate this …", "Fix the typo …"); further in they are usually
/// part of the material ("the job list", "a simple cache").
const LEADING_WORDS: usize = 16;

/// Which stems of each list the ask contains, one bit per stem.
#[derive(Default)]
struct WordHits {
    design: u64,
    simple: u64,
}

impl WordHits {
    /// Scans one text; `leading` when it is the start of a block.
    fn scan(&mut self, text: &[u8], leading: bool) {
        let is_word = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'\'' | b';');
        let tokens = text.split(|b| !is_word(b)).filter(|t| !t.is_empty());
        let mut previous: &[u8] = b"";
        for (n, token) in tokens.enumerate() {
            for (bit, stem) in DESIGN_STEMS.iter().enumerate() {
                if starts_with_ignore_case(token, stem.as_bytes()) {
                    self.design |= 1 << bit;
                }
            }
            if leading && n < LEADING_WORDS {
                for (bit, stem) in SIMPLE_STEMS.iter().enumerate() {
                    let hit = match stem.strip_suffix('$') {
                        Some(word) => token.eq_ignore_ascii_case(word.as_bytes()),
                        None => starts_with_ignore_case(token, stem.as_bytes()),
                    };
                    if hit {
                        self.simple |= 1 << bit;
                    }
                }
            }
            // A lookup: the block opens with "what is X" / "what does X do". (Further
            // in, "what are the trade-offs" is not small.) The bit past the stems.
            if leading
                && n == 1
                && previous.eq_ignore_ascii_case(b"what")
                && [&b"is"[..], b"are", b"does", b"do"]
                    .iter()
                    .any(|w| token.eq_ignore_ascii_case(w))
            {
                self.simple |= 1 << SIMPLE_STEMS.len();
            }
            previous = token;
        }
    }
}

fn starts_with_ignore_case(token: &[u8], stem: &[u8]) -> bool {
    token
        .get(..stem.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(stem))
}

// The wire, as far as the classifier reads it. Unknown fields are skipped by the
// parser without being stored; strings borrow from the body unless they hold escapes.

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(default, borrow)]
    messages: Vec<Message<'a>>,
    /// Anthropic's top-level system prompt: a string or text blocks.
    #[serde(default, borrow)]
    system: Option<Content<'a>>,
    #[serde(default)]
    tools: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    functions: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
}

impl Message<'_> {
    fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("")
    }

    fn is_assistant(&self) -> bool {
        self.role() == "assistant"
    }

    fn is_system(&self) -> bool {
        matches!(self.role(), "system" | "developer")
    }

    fn has_user_text(&self) -> bool {
        if self.role() != "user" {
            return false;
        }
        let mut any = false;
        if let Some(content) = &self.content {
            content.for_each_user_text(&mut |t| any = any || !t.trim().is_empty());
        }
        any
    }
}

/// A block of block content, OpenAI's or Anthropic's: `text`, `image`, `image_url`,
/// `document`, `file`, `input_audio`, `tool_result` (with nested `content`), …
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
}

impl Block<'_> {
    fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("")
    }
}

/// Message content: a string, an array of blocks, or anything else (ignored).
enum Content<'a> {
    Empty,
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

impl Content<'_> {
    /// Every text the content carries, tool results included.
    fn for_each_text(&self, f: &mut dyn FnMut(&str)) {
        match self {
            Content::Empty => {}
            Content::Text(t) => f(t),
            Content::Blocks(blocks) => {
                for b in blocks {
                    if let Some(t) = &b.text {
                        f(t);
                    }
                    if let Some(c) = &b.content {
                        c.for_each_text(f);
                    }
                }
            }
        }
    }

    /// The text a person wrote: strings and text blocks, not tool results.
    fn for_each_user_text(&self, f: &mut dyn FnMut(&str)) {
        match self {
            Content::Empty => {}
            Content::Text(t) => f(t),
            Content::Blocks(blocks) => {
                for b in blocks.iter().filter(|b| b.kind() == "text") {
                    if let Some(t) = &b.text {
                        f(t);
                    }
                }
            }
        }
    }

    fn attachments(&self) -> usize {
        let Content::Blocks(blocks) = self else {
            return 0;
        };
        blocks
            .iter()
            .map(|b| {
                let own = usize::from(matches!(
                    b.kind(),
                    "image" | "image_url" | "document" | "file" | "input_audio"
                ));
                own + b.content.as_ref().map_or(0, Content::attachments)
            })
            .sum()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = Content<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content blocks")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(block) = seq.next_element::<BlockOrOther<'a>>()? {
                    if let BlockOrOther::Block(b) = block {
                        blocks.push(b);
                    }
                }
                Ok(Content::Blocks(blocks))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Content::Empty)
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }
        }

        deserializer.deserialize_any(ContentVisitor(PhantomData))
    }
}

/// An element of a content array: a block object, or anything else (a bare string,
/// a number), which is skipped rather than failing the whole request.
enum BlockOrOther<'a> {
    Block(Block<'a>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for BlockOrOther<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ElementVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for ElementVisitor<'a> {
            type Value = BlockOrOther<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content block")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Block::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(BlockOrOther::Block)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(BlockOrOther::Other)
            }

            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }
        }

        deserializer.deserialize_any(ElementVisitor(PhantomData))
    }
}
