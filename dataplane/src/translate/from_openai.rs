//! Reading OpenAI chat content into another API's parts and turns.

use super::TranslateError;
use crate::wire::openai::{ChatContent, ContentPart};
use serde_json::Value;

/// A target API's rendering of OpenAI message content as its part type `P`: how it
/// writes a text part, how it takes an image URL (None when it cannot), and what to
/// tell a caller then.
pub struct PartStyle<P = Value> {
    pub text: fn(&str) -> P,
    pub image: fn(&str) -> Option<P>,
    pub image_rule: &'static str,
}

/// A message's content as the target API's parts, each fault named by its path.
pub fn content_parts<P>(
    content: Option<&ChatContent>,
    at: &str,
    style: &PartStyle<P>,
) -> Result<Vec<P>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(s)) if s.is_empty() => Ok(Vec::new()),
        Some(ChatContent::Text(s)) => Ok(vec![(style.text)(s)]),
        Some(ChatContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part {
                ContentPart::Text { text } => Ok((style.text)(text)),
                ContentPart::ImageUrl { image_url } => {
                    (style.image)(&image_url.url).ok_or_else(|| {
                        TranslateError::new(
                            format!("{at}.content[{j}].image_url.url"),
                            style.image_rule,
                        )
                    })
                }
                ContentPart::Unsupported => Err(TranslateError::new(
                    format!("{at}.content[{j}].type"),
                    "only text and image_url parts can be sent to this model",
                )),
            })
            .collect(),
    }
}

/// Appends a turn, merging it into the previous one of the same role: the target APIs
/// want alternating turns, and tool results followed by a note are one user turn.
pub fn push_turn<R: PartialEq, P>(turns: &mut Vec<(R, Vec<P>)>, role: R, parts: Vec<P>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(parts),
        _ => turns.push((role, parts)),
    }
}
