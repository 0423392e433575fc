//! Claude on Vertex AI speaks the Messages API with two differences: the model is in the
//! path (`…/publishers/anthropic/models/{model}:rawPredict`, `:streamRawPredict` for a
//! stream), not the body, and the body names `anthropic_version`. These turn a Messages
//! body into Vertex's and back.
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude>

use crate::error::GatewayError;
use bytes::Bytes;
use serde_json::{Map, Value};

/// The `anthropic_version` Vertex requires in the body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The rawPredict method for a Messages call.
pub fn method(stream: bool) -> &'static str {
    if stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    }
}

/// A Messages body as Vertex takes it: no `model`, an `anthropic_version`.
pub fn messages_body(mut doc: Map<String, Value>) -> Map<String, Value> {
    doc.remove("model");
    doc.entry("anthropic_version")
        .or_insert_with(|| Value::from(VERTEX_ANTHROPIC_VERSION));
    doc
}

/// A Vertex caller's body as the Messages API takes it: the path's model in, and a
/// stream asked for by the method kept in the body. Its `anthropic_version` stays, for a
/// Vertex provider to receive as sent; [`without_version`] drops it for Anthropic.
pub fn from_vertex(mut doc: Map<String, Value>, model: &str, stream: bool) -> Map<String, Value> {
    doc.insert("model".into(), Value::from(model));
    if stream {
        doc.insert("stream".into(), Value::Bool(true));
    }
    doc
}

/// A Messages body without the `anthropic_version` a Vertex caller put in it, which
/// Anthropic's own API refuses.
pub fn without_version(body: Bytes) -> Result<Bytes, GatewayError> {
    let mut doc: Map<String, Value> =
        serde_json::from_slice(&body).map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
    doc.remove("anthropic_version");
    Ok(Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()))
}
