//! A stream wrapper that rewrites what the server reads and leaves what it writes alone.
//!
//! The HTTP/1.1 and HTTP/2 rewriters ([`super::h1`], [`super::h2`]) sit between the socket (or TLS) and
//! hyper, and only ever change request-targets that the `http` crate would refuse.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Transforms inbound bytes.
pub trait Rewrite: Unpin + Send {
    /// Consumes raw inbound bytes and appends what the server should read to `out` (possibly nothing yet).
    fn feed(&mut self, input: &[u8], out: &mut BytesMut);
    /// End of input: appends whatever is still held back.
    fn finish(&mut self, out: &mut BytesMut);
}

/// `inner` as the server sees it once `rewrite` has processed the inbound bytes.
pub struct Rewriting<S, R> {
    inner: S,
    rewrite: R,
    out: BytesMut,
    scratch: Box<[u8]>,
    eof: bool,
}

impl<S, R> Rewriting<S, R> {
    /// Wraps `inner`; `already_read` are bytes taken from it before (protocol sniffing).
    pub fn new(inner: S, mut rewrite: R, already_read: &[u8]) -> Self
    where
        R: Rewrite,
    {
        let mut out = BytesMut::new();
        rewrite.feed(already_read, &mut out);
        Rewriting {
            inner,
            rewrite,
            out,
            scratch: vec![0u8; 16 * 1024].into_boxed_slice(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin, R: Rewrite> AsyncRead for Rewriting<S, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {
                    let filled = read.filled();
                    if filled.is_empty() {
                        this.eof = true;
                        this.rewrite.finish(&mut this.out);
                    } else {
                        let len = filled.len();
                        let (scratch, rewrite, out) =
                            (&this.scratch, &mut this.rewrite, &mut this.out);
                        rewrite.feed(&scratch[..len], out);
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin, R: Unpin> AsyncWrite for Rewriting<S, R> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
