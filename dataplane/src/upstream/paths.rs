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

/// A Vertex AI project and location: the prefix of every publisher model's path.
#[derive(Debug, Clone, Copy)]
pub struct VertexLocation<'a> {
    pub project: &'a str,
    pub region: &'a str,
}

/// Vertex model ids carry a version after `@` (`claude-sonnet-4-5@20250929`), which a
/// path segment may hold as it is.
const VERTEX_MODEL_ID: &AsciiSet = &MODEL_ID.remove(b'@');

impl VertexLocation<'_> {
    /// `/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`.
    pub fn model_path(&self, publisher: &str, model: &str, method: &str) -> String {
        format!(
            "/v1/projects/{}/locations/{}/publishers/{publisher}/models/{}:{method}",
            utf8_percent_encode(self.project, MODEL_ID),
            utf8_percent_encode(self.region, MODEL_ID),
            utf8_percent_encode(model, VERTEX_MODEL_ID),
        )
    }
}

/// Whether a Vertex model is one of Google's (served by `generateContent`) rather than a
/// partner's such as Claude (served by `rawPredict`).
pub fn is_google_model(model: &str) -> bool {
    let model = model.trim_start_matches("google/");
    model.starts_with("gemini") || model.starts_with("gemma")
}
