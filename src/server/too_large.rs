//! An S3 error body for request heads larger than hyper's read buffer.
//!
//! hyper refuses a head that fills its read buffer (`s3::READ_BUFFER`) with a bare `431`, no
//! body, written by itself: no hook sees it. Smaller oversized heads get S3's 400
//! RequestHeaderSectionTooLarge from `s3::limits`; so that every oversized head gets that same
//! answer, the socket recognises hyper's `431` on its way out and writes the S3 answer in its
//! place (hyper closes the connection right after, as it would have).
//!
//! hyper sends the same bare 431 for more than 100 headers. Both are recognised by the exact
//! status line (nothing of ours answers 431), the size of hyper's answer, and bytes read since
//! the connection last wrote: hyper answers a head it just read. A response body chunk comes
//! after its own head was written; only a client pipelining while it downloads an object whose
//! bytes are exactly such an answer could see its own download altered.

use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n";
/// hyper's whole 431 is its status line and two or three short headers.
const MAX_431: usize = 256;

/// A socket that replaces hyper's bare 431 (see the module doc).
pub struct HeadTooLarge<T> {
    inner: T,
    read_since_write: usize,
    /// The replacement answer, being written.
    pending: Bytes,
}

impl<T> HeadTooLarge<T> {
    pub fn new(inner: T) -> Self {
        HeadTooLarge {
            inner,
            read_since_write: 0,
            pending: Bytes::new(),
        }
    }

    /// Whether `buf` is hyper's 431 for a head that filled its buffer.
    fn is_hyper_431(&self, buf: &[u8]) -> bool {
        self.read_since_write > 0
            && buf.len() <= MAX_431
            && buf.starts_with(HYPER_431)
            && buf.ends_with(b"\r\n\r\n")
    }
}

/// The S3 answer that replaces hyper's 431.
fn answer() -> Bytes {
    let id = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let body = crate::s3::head_too_large_body(&id);
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
         x-amz-request-id: {id}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    Bytes::from([head.into_bytes(), body.into_bytes()].concat())
}

impl<T: AsyncWrite + Unpin> HeadTooLarge<T> {
    /// Writes out the pending replacement; `Ready(Ok)` once none is left.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadTooLarge<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read_since_write = self.read_since_write.saturating_add(n);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadTooLarge<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if self.is_hyper_431(buf) {
            self.pending = answer();
            self.read_since_write = 0;
            return Poll::Ready(Ok(buf.len()));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write = 0;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (nonempty.next(), nonempty.next())
            && self.is_hyper_431(first)
        {
            self.pending = answer();
            self.read_since_write = 0;
            return Poll::Ready(Ok(first.len()));
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write = 0;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
