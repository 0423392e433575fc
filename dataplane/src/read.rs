//! Reading a request body: strictly (a JSON object in valid UTF-8, no duplicate keys),
//! so no body the gateway could not read is forwarded unadmitted for a provider to read
//! its own way; and token counts as providers accept them.

use crate::error::GatewayError;
use serde::Deserialize;

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
