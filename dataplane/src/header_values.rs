//! Header values written side by side into one buffer: the gateway's own response
//! headers (request id, route, quota) then cost one allocation, not one each.

use bytes::BytesMut;
use http::HeaderValue;

/// The request id, as callers may send it and as the gateway answers and forwards it.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

pub struct HeaderValueBuf(BytesMut);

impl HeaderValueBuf {
    /// Room for `bytes` of values before the buffer has to grow.
    pub fn with_capacity(bytes: usize) -> Self {
        Self(BytesMut::with_capacity(bytes))
    }

    /// `text` as a header value, or `None` when it holds bytes no header value may.
    pub fn text(&mut self, text: &str) -> Option<HeaderValue> {
        self.0.extend_from_slice(text.as_bytes());
        HeaderValue::from_maybe_shared(self.0.split().freeze()).ok()
    }

    pub fn number(&mut self, n: u64) -> HeaderValue {
        let mut digits = itoa::Buffer::new();
        self.0.extend_from_slice(digits.format(n).as_bytes());
        // Digits are always a valid header value.
        HeaderValue::from_maybe_shared(self.0.split().freeze())
            .unwrap_or(HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_share_the_buffer_but_read_back_separately() {
        let mut buf = HeaderValueBuf::with_capacity(8);
        let id = buf.text("req_0123456789abcdef").expect("valid");
        let n = buf.number(18_446_744_073_709_551_615);
        let zero = buf.number(0);
        assert_eq!(id, "req_0123456789abcdef");
        assert_eq!(n, "18446744073709551615");
        assert_eq!(zero, "0");
        assert!(buf.text("line\nbreak").is_none());
        assert_eq!(
            buf.text("after a refusal").expect("valid"),
            "after a refusal"
        );
    }
}
