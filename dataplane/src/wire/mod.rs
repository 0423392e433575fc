//! The wire formats the gateway reads and writes, as typed documents.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;

/// A request the target API cannot express, named by the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TranslateError {
    pub field: String,
    pub message: String,
}

impl TranslateError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
