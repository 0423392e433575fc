//! The admin listener (:8091): liveness, readiness, metrics, the operator's config push,
//! and (behind the admin token) the key store's keys.

mod keys;
mod reports;

/// The dashboard: one page, built into the binary.
const DASHBOARD: &str = include_str!("dashboard.html");

use crate::body::{json_response, read_limited, ReadBodyError, ResponseBody};
use crate::state::Gateway;
use ai_gateway_snapshot::replies::ConfigReply;
use ai_gateway_snapshot::Snapshot;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use subtle::ConstantTimeEq;

/// A snapshot of thousands of keys and routes stays far below this.
const MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024;

pub async fn handle(
    gw: &Gateway,
    token: Option<&str>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, StatusCode> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        (&Method::GET, "/readyz") => {
            let status = if gw.is_draining() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            Ok(json_response(
                status,
                &json!({"ready": status == StatusCode::OK, "config_version": gw.compiled().version}),
            ))
        }
        (&Method::GET, "/metrics") => {
            // Circuit state lives in the breakers; read it at scrape time.
            let now = crate::upstream::breaker::now_ms();
            for p in gw.compiled().providers.values() {
                gw.services
                    .metrics
                    .circuit_open
                    .get_or_create(&crate::metrics::ProviderLabels {
                        provider: p.name.clone(),
                    })
                    .set(i64::from(
                        p.breaker.state(now) == crate::upstream::breaker::CircuitState::Open,
                    ));
            }
            let mut r = Response::new(crate::body::full(gw.services.metrics.render()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(r)
        }
        (&Method::GET, "/admin/v1/config") => {
            authorize(token, &req)?;
            Ok(json_response(
                StatusCode::OK,
                &ConfigReply {
                    error: None,
                    version: Some(gw.compiled().version.clone()),
                },
            ))
        }
        (&Method::PUT, "/admin/v1/config") => {
            authorize(token, &req)?;
            let body = read_limited(req.into_body(), MAX_SNAPSHOT_BYTES, &gw.services.bodies)
                .await
                .map_err(|e| match e {
                    ReadBodyError::NoRoom => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::PAYLOAD_TOO_LARGE,
                })?;
            Ok(apply(gw, &body))
        }
        (&Method::GET, "/admin/dashboard") => {
            // The page holds no data: it asks the API below with the admin token.
            let mut page = Response::new(crate::body::full(DASHBOARD));
            page.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            page.headers_mut().insert(
                "content-security-policy",
                http::HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
                ),
            );
            Ok(page)
        }
        (&Method::GET, "/admin/v1/providers") => {
            authorize(token, &req)?;
            Ok(reports::providers(gw))
        }
        (&Method::GET, "/admin/v1/routes") => {
            authorize(token, &req)?;
            Ok(reports::routes(gw))
        }
        (&Method::GET, "/admin/v1/limits") => {
            authorize(token, &req)?;
            Ok(reports::limits(gw))
        }
        (&Method::GET, "/admin/v1/usage") => {
            authorize(token, &req)?;
            Ok(reports::usage(gw, req.uri().query()).await)
        }
        (&Method::GET, "/admin/v1/overview") => {
            authorize(token, &req)?;
            Ok(reports::overview(gw).await)
        }
        (&Method::GET, "/admin/v1/keys") => {
            authorize(token, &req)?;
            Ok(keys::list(gw))
        }
        (&Method::POST, "/admin/v1/keys") => {
            authorize(token, &req)?;
            let body = read_limited(req.into_body(), MAX_KEY_REQUEST_BYTES, &gw.services.bodies)
                .await
                .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
            Ok(keys::create(gw, &body))
        }
        (&Method::DELETE, path) if path.starts_with("/admin/v1/keys/") => {
            authorize(token, &req)?;
            Ok(keys::revoke(gw, &path["/admin/v1/keys/".len()..]))
        }
        _ => Err(StatusCode::NOT_FOUND),
    }
}

/// A key request is a few names and numbers.
const MAX_KEY_REQUEST_BYTES: u64 = 16 * 1024;

/// Validates and swaps in a pushed snapshot; an invalid one is refused with every
/// problem listed and the current config keeps serving.
fn apply(gw: &Gateway, body: &[u8]) -> Response<ResponseBody> {
    let snapshot: Snapshot = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &ConfigReply {
                    error: Some(format!("not a snapshot document: {e}")),
                    version: None,
                },
            )
        }
    };
    match gw.apply(snapshot) {
        Ok(compiled) => json_response(
            StatusCode::OK,
            &ConfigReply {
                error: None,
                version: Some(compiled.version.clone()),
            },
        ),
        Err(e) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ConfigReply {
                error: Some(e.to_string()),
                version: Some(gw.compiled().version.clone()),
            },
        ),
    }
}

/// Config pushes need the admin bearer token; with none configured they are refused.
fn authorize(token: Option<&str>, req: &Request<Incoming>) -> Result<(), StatusCode> {
    let expected = token.ok_or(StatusCode::FORBIDDEN)?;
    // The API server's proxy (kubectl aigw) consumes `Authorization`: the token may
    // come in a header of its own.
    let headers = req.headers();
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| {
            headers
                .get("x-ai-gateway-admin-token")
                .and_then(|v| v.to_str().ok())
        })
        .ok_or(StatusCode::UNAUTHORIZED)?;
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}
