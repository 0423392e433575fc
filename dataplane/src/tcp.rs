//! A TCP stream for hyper that can be told of the bytes it writes: the listener uses
//! this to see that a connection still has an answer on its way out; provider
//! connections use it plain.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// Told after each write: `sent` when it sent at least one byte, not when the socket
/// was full and the bytes wait.
pub trait OnWrite: Unpin {
    fn wrote(&self, sent: bool);
}

impl OnWrite for () {
    fn wrote(&self, _sent: bool) {}
}

pub struct Tcp<W = ()> {
    io: hyper_util::rt::TokioIo<TcpStream>,
    on_write: W,
    /// Bytes read from the socket before, given out again ahead of it: what an earlier
    /// connection on this socket had read and not parsed.
    replay: bytes::Bytes,
}

impl<W: OnWrite> Tcp<W> {
    pub fn new(stream: TcpStream, on_write: W) -> Self {
        Self::replaying(stream, on_write, bytes::Bytes::new())
    }

    pub fn replaying(stream: TcpStream, on_write: W, replay: bytes::Bytes) -> Self {
        Self {
            io: hyper_util::rt::TokioIo::new(stream),
            on_write,
            replay,
        }
    }

    /// The socket, and the replay bytes not given out yet.
    pub fn into_parts(self) -> (TcpStream, bytes::Bytes) {
        (self.io.into_inner(), self.replay)
    }

    fn written(&self, result: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match &result {
            Poll::Ready(Ok(n)) => self.on_write.wrote(*n > 0),
            Poll::Pending => self.on_write.wrote(false),
            Poll::Ready(Err(_)) => {}
        }
        result
    }
}

impl<W: OnWrite> hyper::rt::Read for Tcp<W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<W: OnWrite> hyper::rt::Write for Tcp<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.written(result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(result)
    }
}
