//! The gateway on an ephemeral loopback port in front of fake upstreams that speak each
//! provider's wire format byte for byte and record what they received.

mod admin_reports;
mod attribution;
mod auto_routing;
mod bedrock_surface;
mod budget_alerts;
mod cascade;
mod claude_surface;
mod cors;
mod dashboard;
mod durable_store;
mod failures;
mod fakes;
mod gemini_surface;
mod governance;
mod hardening;
mod hostile_callers;
mod http_versions;
mod invariant;
mod keys_cli;
mod kubernetes_auth;
mod native_surfaces;
mod openai_surface;
mod operator_push;
mod pod_identity;
mod process;
mod response_cache;
mod soak;
mod streaming;
mod tls_upstream;
mod token_reduction;
mod vertex_clients;
mod vertex_surface;
