//! Closing connections that hold a slot without doing anything.
//!
//! hyper's HTTP/1 header timer (`head` in `config::Timeouts`) bounds the wait for a request
//! head, keep-alive waits included: it starts when the connection begins to wait. It does not
//! cover the auto builder's protocol sniffing, before HTTP/1 starts, nor HTTP/2 at all (a client
//! may trickle a HEADERS frame a byte at a time), nor a response whose client stopped reading.
//! So each connection counts its requests in progress (handlers running, response bodies
//! still being sent) and the last time a byte moved, and is dropped when
//!
//! - no request is in progress for `idle`, whatever trickles in meanwhile, or
//! - no handler is running and no byte moved either way for `idle` (a response stalled).
//!
//! A running handler is never cut here: a request body that stops is failed by
//! `s3::linger` (`body` timeout), and the handler's own work has no timeout.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// One connection's activity, shared by its IO, its requests and its watchdog.
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last byte read or written.
    last_io: AtomicU64,
    /// Milliseconds since `start` when the last request in progress ended.
    idle_since: AtomicU64,
    handling: AtomicUsize,
    streaming: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
            streaming: AtomicUsize::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn moved(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Marks a handler running until the guard drops.
    pub fn handling(self: &Arc<Self>) -> InProgress {
        self.handling.fetch_add(1, Ordering::AcqRel);
        InProgress {
            act: self.clone(),
            handler: true,
        }
    }

    /// Marks a response body being sent until the guard drops.
    pub fn streaming(self: &Arc<Self>) -> InProgress {
        self.streaming.fetch_add(1, Ordering::AcqRel);
        InProgress {
            act: self.clone(),
            handler: false,
        }
    }

    /// How long until the connection counts as idle; `None`: it is.
    fn left(&self, idle: Duration) -> Option<Duration> {
        if self.handling.load(Ordering::Acquire) > 0 {
            // Looked at again soon after the handler is likely done.
            return Some(idle.min(Duration::from_secs(1)));
        }
        let from = if self.streaming.load(Ordering::Acquire) > 0 {
            self.last_io.load(Ordering::Relaxed)
        } else {
            self.idle_since.load(Ordering::Relaxed)
        };
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let elapsed = self.now_ms().saturating_sub(from);
        (elapsed < idle_ms).then(|| Duration::from_millis(idle_ms - elapsed))
    }

    /// Resolves once the connection has been idle for `idle` (see the module doc).
    pub async fn expired(&self, idle: Duration) {
        while let Some(wait) = self.left(idle) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in progress on a connection (see `Activity::handling`/`streaming`).
pub struct InProgress {
    act: Arc<Activity>,
    handler: bool,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let a = &self.act;
        let (mine, other) = match self.handler {
            true => (&a.handling, &a.streaming),
            false => (&a.streaming, &a.handling),
        };
        if mine.fetch_sub(1, Ordering::AcqRel) == 1 && other.load(Ordering::Acquire) == 0 {
            a.idle_since.store(a.now_ms(), Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request in progress until it is sent (or dropped).
pub struct Sending<B> {
    inner: B,
    guard: Option<InProgress>,
}

impl<B> Sending<B> {
    pub fn new(inner: B, guard: InProgress) -> Self {
        Sending {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Sending<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            self.guard = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that records when bytes move.
pub struct Watched<T> {
    inner: T,
    act: Arc<Activity>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, act: Arc<Activity>) -> Self {
        Watched { inner, act }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.act.moved();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.act.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.act.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
