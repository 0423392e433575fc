//! The operator: what it decides (`compile`, a pure function from custom resources and
//! Secrets to a data-plane snapshot and per-object conditions) apart from how it talks
//! to the API server.

pub mod cli;
pub mod compile;
pub mod conditions;
pub mod controller;
pub mod metrics;
pub mod namespace;
pub mod push;
pub mod resources;
