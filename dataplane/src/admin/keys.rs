//! `/admin/v1/keys`: the key store's keys on the admin API (standalone; in a cluster
//! keys are Secrets, made with `kubectl aigw keys`, and these answer with that pointer).

use crate::body::{json_response, ResponseBody};
use crate::keystore::{KeyStore, KeyStoreError, NewKey};
use crate::state::Gateway;
use http::{Response, StatusCode};
use serde_json::json;

/// Set on the pods the operator runs: keys there are Secrets.
const IN_CLUSTER: &str = "AI_GATEWAY_KEYS_IN_CLUSTER";

fn refusal(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json_response(status, &json!({"error": message}))
}

/// The key store, or the status and reason there is none to use here.
fn store(gw: &Gateway) -> Result<KeyStore, (StatusCode, String)> {
    if std::env::var_os(IN_CLUSTER).is_some() {
        return Err((
            StatusCode::CONFLICT,
            "keys of this gateway are Kubernetes Secrets: use `kubectl aigw keys create --user <user>` (list, revoke)".into(),
        ));
    }
    let Some(dir) = &gw.data_dir else {
        return Err((
            StatusCode::CONFLICT,
            "this gateway has no data directory (--data-dir) to keep keys in".into(),
        ));
    };
    KeyStore::open(dir).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Serves the store's keys at once, not at the next poll.
fn serve_now(gw: &Gateway, store: &KeyStore) {
    match store.stored() {
        Ok(keys) => gw.stored_keys_changed(keys),
        Err(e) => tracing::error!(error = %e, "cannot read the key store"),
    }
}

pub fn list(gw: &Gateway) -> Response<ResponseBody> {
    let store = match store(gw) {
        Ok(s) => s,
        Err((status, why)) => return refusal(status, &why),
    };
    match store.list() {
        Ok(keys) => json_response(StatusCode::OK, &json!({"keys": keys})),
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub fn create(gw: &Gateway, body: &[u8]) -> Response<ResponseBody> {
    let store = match store(gw) {
        Ok(s) => s,
        Err((status, why)) => return refusal(status, &why),
    };
    let new: NewKey = match serde_json::from_slice(body) {
        Ok(new) => new,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, &format!("not a key request: {e}")),
    };
    match store.create(&new) {
        Ok(made) => {
            serve_now(gw, &store);
            json_response(StatusCode::CREATED, &made)
        }
        Err(KeyStoreError::Invalid(why)) => refusal(StatusCode::BAD_REQUEST, &why),
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub fn revoke(gw: &Gateway, id: &str) -> Response<ResponseBody> {
    let store = match store(gw) {
        Ok(s) => s,
        Err((status, why)) => return refusal(status, &why),
    };
    match store.revoke(id) {
        Ok(true) => {
            serve_now(gw, &store);
            json_response(StatusCode::OK, &json!({"revoked": id}))
        }
        Ok(false) => refusal(StatusCode::NOT_FOUND, &format!("no active key `{id}`")),
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
