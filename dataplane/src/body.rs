//! Response bodies, and reading request bodies under the size limit.

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ResponseBody {
    full(Bytes::new())
}

pub fn streaming<S>(stream: S) -> ResponseBody
where
    S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
{
    BodyExt::boxed_unsync(StreamBody::new(stream.map_ok(Frame::data)))
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(Debug, thiserror::Error)]
pub enum ReadBodyError {
    #[error("request body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(String),
}

/// Collects a request body, refusing it as soon as it passes `limit` bytes.
pub async fn read_limited(body: Incoming, limit: u64) -> Result<Bytes, ReadBodyError> {
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadBodyError::TooLarge(limit)),
        Err(e) => Err(ReadBodyError::Io(e.to_string())),
    }
}
