//! The cascade's quality check: fast heuristics over the cheaper tier's answer that say
//! whether it will do or the call should go to the next tier. No model call; a few
//! microseconds on a long answer.

/// What the check needs of the question.
#[derive(Debug, Clone, Copy)]
pub struct Question {
    /// Characters of the last user turn.
    pub chars: usize,
    /// The question asks for code (or shows some to change).
    pub wants_code: bool,
}

/// What the check reads of the answer.
#[derive(Debug, Clone, Copy)]
pub struct AnswerSeen<'a> {
    pub text: &'a str,
    /// The answer stopped at its output cap (`length`, `max_tokens`).
    pub truncated: bool,
    /// The answer is a tool call: an agent's step, judged by the agent, not here.
    pub tool_call: bool,
}

/// The check's verdict: a score in 0..=1, and what cost it points.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub passed: bool,
    pub score: f64,
    pub reasons: Vec<&'static str>,
}

/// An answer that scores below this escalates: any one failed check is enough.
const PASS_SCORE: f64 = 0.6;

/// Phrases of a model that declines or does not know, lowercased.
const REFUSALS: [&str; 14] = [
    "i don't know",
    "i do not know",
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "as an ai language model",
    "i'm not sure",
    "i am not sure",
    "i don't have enough information",
];

/// Words that ask for code.
const CODE_WORDS: [&str; 12] = [
    "code",
    "function",
    "implement",
    "script",
    "regex",
    "sql",
    "query",
    "class ",
    "snippet",
    "write a program",
    "bash",
    "refactor",
];

impl Question {
    /// The question as its last user turn shows it.
    pub fn of(last_user_text: &str) -> Self {
        let lower = last_user_text.to_lowercase();
        Self {
            chars: last_user_text.chars().count(),
            wants_code: last_user_text.contains("```")
                || CODE_WORDS.iter().any(|w| lower.contains(w)),
        }
    }
}

pub fn judge(question: Question, answer: AnswerSeen<'_>, min_response_chars: u32) -> Judgement {
    if answer.tool_call {
        return Judgement {
            passed: true,
            score: 1.0,
            reasons: Vec::new(),
        };
    }
    let text = answer.text.trim();
    let mut reasons = Vec::new();
    let mut score: f64 = 1.0;
    if text.is_empty() {
        return Judgement {
            passed: false,
            score: 0.0,
            reasons: vec!["empty"],
        };
    }
    // A one-line question may have a one-word answer; a long one may not.
    let expected = (min_response_chars as usize).min(question.chars / 8);
    if text.chars().count() < expected {
        reasons.push("too_short");
        score -= 0.5;
    }
    if answer.truncated {
        reasons.push("truncated");
        score -= 0.5;
    }
    let opening: String = text.chars().take(300).collect::<String>().to_lowercase();
    if REFUSALS.iter().any(|r| opening.contains(r)) {
        reasons.push("refusal");
        score -= 0.6;
    }
    if question.wants_code && !shows_code(text) {
        reasons.push("no_code");
        score -= 0.5;
    }
    if repeats_itself(text) {
        reasons.push("repetition");
        score -= 0.5;
    }
    let score = score.max(0.0);
    Judgement {
        passed: score >= PASS_SCORE,
        score,
        reasons,
    }
}

/// A fenced block, an indented block or an inline span that looks like code.
fn shows_code(text: &str) -> bool {
    text.contains("```")
        || text.lines().filter(|l| l.starts_with("    ")).count() >= 2
        || text
            .split('`')
            .skip(1)
            .step_by(2)
            .any(|span| span.contains(['(', '=', '{', '/', '.', '$']) || span.contains("::"))
}

/// The same line over and over: a degenerate loop of a small model.
fn repeats_itself(text: &str) -> bool {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 20)
        .collect();
    if lines.len() < 4 {
        return false;
    }
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for line in &lines {
        *counts.entry(line).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    most >= 3 && most * 3 >= lines.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(text: &str) -> AnswerSeen<'_> {
        AnswerSeen {
            text,
            truncated: false,
            tool_call: false,
        }
    }

    fn verdict(question: &str, answer: &str) -> Judgement {
        judge(Question::of(question), seen(answer), 100)
    }

    #[test]
    fn a_short_answer_to_a_short_question_passes() {
        assert!(verdict("What is 2+2?", "4").passed);
        assert!(verdict("Translate 'hello' to French", "Bonjour").passed);
    }

    #[test]
    fn a_one_liner_to_a_long_question_fails() {
        let question = "Explain why our deploys keep timing out. ".repeat(30);
        let j = verdict(&question, "Check the logs.");
        assert!(!j.passed);
        assert_eq!(j.reasons, ["too_short"]);
    }

    #[test]
    fn refusals_missing_code_repetition_and_truncation_fail() {
        let j = verdict(
            "Why is the sky blue?",
            "I'm not sure, I don't have enough information to answer that.",
        );
        assert_eq!((j.passed, j.reasons.as_slice()), (false, &["refusal"][..]));
        let j = verdict(
            "Write a Python function that reverses a linked list.",
            "You would walk the list and flip each pointer as you go along until the end.",
        );
        assert_eq!(j.reasons, ["no_code"]);
        assert!(!j.passed);
        let looped = "The answer is that the value is computed here.\n".repeat(8);
        assert_eq!(
            verdict("Explain the value", &looped).reasons,
            ["repetition"]
        );
        let j = judge(
            Question::of("Tell me a story"),
            AnswerSeen {
                text: "Once upon a time there was a gateway that",
                truncated: true,
                tool_call: false,
            },
            100,
        );
        assert_eq!(
            (j.passed, j.reasons.as_slice()),
            (false, &["truncated"][..])
        );
    }

    #[test]
    fn a_good_code_answer_and_a_tool_call_pass() {
        let answer = "Here it is:\n```python\ndef reverse(head):\n    prev = None\n    while head:\n        head.next, prev, head = prev, head, head.next\n    return prev\n```";
        let j = verdict(
            "Write a Python function that reverses a linked list.",
            answer,
        );
        assert_eq!((j.passed, j.score), (true, 1.0));
        let tool = AnswerSeen {
            text: "",
            truncated: false,
            tool_call: true,
        };
        assert!(judge(Question::of("Run the tests"), tool, 100).passed);
        assert!(!verdict("hi", "   ").passed);
    }
}
