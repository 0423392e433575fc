//! Reading a request body: strictly (a JSON object in valid UTF-8, no duplicate keys),
//! so no body the gateway could not read is forwarded unadmitted for a provider to read
//! its own way; and token counts as providers accept them.

use crate::body::{read_limited, ReadBodyError};
use crate::compiled::CompiledConfig;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::state::Services;
use bytes::Bytes;
use serde::Deserialize;
use std::time::Duration;

/// The read stage: the body, within the size limit, the process-wide body budget and
/// the read timeout. A caller already at a model-independent limit is refused first
/// when the body may be large.
pub async fn body(
    compiled: &CompiledConfig,
    services: &Services,
    ctx: &mut RequestContext,
    body: hyper::body::Incoming,
    pending_sigv4: bool,
) -> Result<Bytes, GatewayError> {
    let limit = compiled.snapshot.gateway.max_request_bytes;
    // The body's own bound: 0 for a GET, the declared length, or none when chunked.
    let most = http_body::Body::size_hint(&body).upper();
    if most.is_none_or(|n| n > crate::admission::EARLY_CHECK_BYTES) && !pending_sigv4 {
        crate::admission::refuse_early(compiled, services, ctx).await?;
    }
    let read_for = Duration::from_millis(compiled.snapshot.gateway.body_read_timeout_ms);
    let body = tokio::time::timeout(read_for, read_limited(body, limit, &services.bodies))
        .await
        .map_err(|_| {
            GatewayError::BodyRead(format!(
                "the request body did not arrive within {} ms",
                read_for.as_millis()
            ))
        })?
        .map_err(|e| match e {
            ReadBodyError::TooLarge(limit) => GatewayError::BodyTooLarge { limit },
            ReadBodyError::Io(m) => GatewayError::BodyRead(m),
            ReadBodyError::NoRoom => GatewayError::Busy,
        })?;

    Ok(body)
}

/// A request body as every surface must take it: a JSON object in valid UTF-8, read
/// into `T` strictly (a duplicate key is an error), so that no body the gateway could
/// not read is forwarded unadmitted for a provider to read its own way.
pub fn read_request<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, GatewayError> {
    // Derived structs also deserialise from JSON arrays; a request must be an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(GatewayError::InvalidRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    // Skipped fields are not checked for UTF-8 by the peek; a provider would refuse them.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(GatewayError::MalformedJson(format!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        )));
    }
    serde_json::from_slice(body).map_err(|e| GatewayError::MalformedJson(e.to_string()))
}

pub(crate) fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// A token count as providers accept it: an integer, or a whole-valued number such as
/// `100.0` (which would otherwise slip past the limits unread).
pub fn token_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => match (n.as_u64(), n.as_f64()) {
            (Some(whole), _) => Ok(Some(whole)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            _ => Err(D::Error::custom(format!(
                "a token count must be a whole number of 0 or more, not {n}"
            ))),
        },
    }
}

/// The length of a JSON array, counted without building its elements.
pub struct Count(pub usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(Counter)
    }
}
