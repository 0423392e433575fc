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

pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Told about a response body as it passes to the caller.
pub trait BodyObserver: Send + Unpin + 'static {
    fn on_data(&mut self, data: &Bytes);
    /// The body ended cleanly, or with an error (`failed`). Not called when the caller
    /// goes away first: observers see that as being dropped.
    fn on_end(&mut self, failed: bool);
}

/// A response body passed through untouched under an observer's eye.
pub fn observed(inner: ResponseBody, observer: impl BodyObserver) -> ResponseBody {
    Observed {
        inner,
        observer,
        ended: false,
    }
    .boxed_unsync()
}

struct Observed<O> {
    inner: ResponseBody,
    observer: O,
    ended: bool,
}

impl<O: BodyObserver> Observed<O> {
    fn end(&mut self, failed: bool) {
        if !self.ended {
            self.ended = true;
            self.observer.on_end(failed);
        }
    }
}

impl<O: BodyObserver> http_body::Body for Observed<O> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.observer.on_data(data);
                }
                // hyper stops polling once a body says it has ended.
                if this.inner.is_end_stream() {
                    this.end(false);
                }
            }
            Poll::Ready(None) => this.end(false),
            Poll::Ready(Some(Err(_))) => this.end(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadBodyError {
    #[error("request body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(String),
    #[error("the gateway is holding as many request bodies as it may")]
    NoRoom,
}

/// Room for request bodies while they arrive, shared by every connection (HTTP/1 and
/// HTTP/2 alike), in KiB: what bounds the memory of many slow or large uploads.
pub struct BodyBudget(tokio::sync::Semaphore);

impl BodyBudget {
    pub fn new(bytes: u64) -> Self {
        let kib = usize::try_from(bytes / 1024)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Self(tokio::sync::Semaphore::new(kib))
    }

    /// KiB of room left, for tests and metrics.
    pub fn available_kib(&self) -> usize {
        self.0.available_permits()
    }
}

/// Collects a request body, refusing it as soon as it passes `limit` bytes or finds
/// no room in `budget`. The room is held only while the body arrives.
pub async fn read_limited(
    body: Incoming,
    limit: u64,
    budget: &BodyBudget,
) -> Result<Bytes, ReadBodyError> {
    let mut limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let mut frames: Vec<Bytes> = Vec::new();
    let mut held: Option<tokio::sync::SemaphorePermit<'_>> = None;
    let mut total = 0usize;
    while let Some(frame) = limited.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ReadBodyError::TooLarge(limit))
            }
            Err(e) => return Err(ReadBodyError::Io(e.to_string())),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        // Whole KiB held for the bytes so far, taken as they arrive.
        let needed = (total + data.len()).div_ceil(1024) - total.div_ceil(1024);
        if needed > 0 {
            let more = u32::try_from(needed)
                .ok()
                .and_then(|n| budget.0.try_acquire_many(n).ok())
                .ok_or(ReadBodyError::NoRoom)?;
            match held.as_mut() {
                Some(permit) => permit.merge(more),
                None => held = Some(more),
            }
        }
        total += data.len();
        frames.push(data);
    }
    Ok(match frames.len() {
        0 => Bytes::new(),
        1 => frames.swap_remove(0),
        _ => {
            let mut whole = bytes::BytesMut::with_capacity(total);
            for f in &frames {
                whole.extend_from_slice(f);
            }
            whole.freeze()
        }
    })
}
