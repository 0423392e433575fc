//! A TCP stream for hyper that can be told of the bytes it writes: the listener uses
//! this to see that a connection still has an answer on its way out; provider
//! connections use it plain.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// Told after each write that sent at least one byte.
pub trait OnWrite: Unpin {
    fn wrote(&self);
}

impl OnWrite for () {
    fn wrote(&self) {}
}

pub struct Tcp<W = ()> {
    io: hyper_util::rt::TokioIo<TcpStream>,
    on_write: W,
}

impl<W: OnWrite> Tcp<W> {
    pub fn new(stream: TcpStream, on_write: W) -> Self {
        Self {
            io: hyper_util::rt::TokioIo::new(stream),
            on_write,
        }
    }

    fn written(&self, result: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &result {
            if *n > 0 {
                self.on_write.wrote();
            }
        }
        result
    }
}

impl<W: OnWrite> hyper::rt::Read for Tcp<W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
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
