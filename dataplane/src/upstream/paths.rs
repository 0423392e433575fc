//! Provider paths built from model ids: an id is always exactly one path segment, so a
//! caller's model name can never steer a call to another endpoint.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Model ids are one path segment: `:` and the `/` of an ARN are escaped.
const MODEL_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A Bedrock runtime operation on a model: `/model/us.anthropic.claude-…-v1%3A0/converse`.
pub fn bedrock_model(model: &str, operation: &str) -> String {
    format!(
        "/model/{}/{operation}",
        utf8_percent_encode(model, MODEL_ID)
    )
}

/// A model id that can only be one path segment: no separators, escapes or dot-dots,
/// so it cannot steer the call to another Gemini endpoint.
pub fn is_plain_segment(model: &str) -> bool {
    !model.is_empty()
        && model != "."
        && model != ".."
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}
