//! The ai-gateway data plane.
//!
//! A request moves through named stages, each in its own module: accept (`server`),
//! `authenticate`, `read`, a door (`doors`) that `resolve`s the route (with the
//! `intelligence` of `auto` routing, skills and token reduction), `admission`, `cache`,
//! the `cascade` of an `auto` call, the `exchange` with the provider (passed through or
//! translated, with retry, breaker and fallback), `respond`, and `settle`. `ARCHITECTURE.md` is the map.

pub mod admin;
pub mod admission;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod authenticate;
pub mod body;
pub mod cache;
pub mod cascade;
pub mod compiled;
pub mod config;
pub mod context;
pub mod cors;
pub mod doors;
pub mod error;
pub mod exchange;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod header_values;
pub mod intelligence;
pub mod keystore;
pub mod limits;
pub mod metered;
pub mod metrics;
pub mod pods;
pub mod pricing;
pub mod read;
pub mod resolve;
pub mod respond;
pub mod routing;
pub mod server;
pub mod settle;
pub mod sigv4;
pub mod state;
pub mod tcp;
pub mod tokenreview;
pub mod translate;
pub mod upstream;
pub mod wire;

/// The hasher of maps looked up on every call by names callers choose (models,
/// identities): several times cheaper than std's SipHash on short keys, and seeded
/// per process so crafted names cannot be made to collide.
pub type FastHasher = foldhash::fast::RandomState;
