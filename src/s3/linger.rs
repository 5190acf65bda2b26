//! Reading what is left of a request body before answering early.
//!
//! A request that fails while its body is still arriving (a full disk, a cap exceeded, a bad
//! chunk signature) is answered at once, and hyper then closes the connection with the unread
//! bytes still in the socket. The kernel answers that close with a reset, and a client still
//! sending usually loses the response it was sent ("connection closed before message
//! completed") instead of reading a clear S3 error. So the body is tracked: if the service drops
//! it unfinished, the rest comes back here and is read and discarded — up to `DRAIN_MAX` bytes
//! within `DRAIN_TIME` — before the response goes out. A larger remainder is not worth the wait:
//! the connection closes as before. A client waiting for `100-continue` whose body was never
//! asked for is not drained: it has sent nothing and reads the response.
//!
//! A body left unread is a connection that cannot be reused, and the response says so
//! (`Connection: close`). This matters most for `100-continue`: botocore, given a final answer,
//! never sends the body, while curl sends it after a second. Left to itself, hyper reads
//! whatever follows as the tail of the body — the first bytes of the client's next request when
//! that request is already there — and answers the mangled rest with a bare 400.
//!
//! The tracked body also fails once the client has sent nothing for the body timeout while it
//! is being read (S3: 400 RequestTimeout after ~20 s of silence): without it, a PUT that
//! declared more bytes than it sends held its connection and its temp file for as long as the
//! client kept the socket open. The failure is recorded (`Stalled`) so that `Protocol::call`
//! answers RequestTimeout whatever the operation made of the broken body, and the connection
//! closes after the answer (the rest of the body may still come).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most bytes read and discarded after an early answer.
const DRAIN_MAX: u64 = 8 << 20;
/// Longest wait for them.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// A request body that hands back its unread remainder when dropped unfinished.
pub struct Tracked {
    inner: Option<Incoming>,
    back: Option<oneshot::Sender<Remainder>>,
    /// Whether the service ever asked for data (for `100-continue`, see the module doc).
    polled: bool,
    expects_continue: bool,
    /// Longest wait for the next body bytes.
    stall: Duration,
    /// The deadline of the current wait for bytes (made once, reset at each wait).
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    stalled: Stalled,
    /// Where the bytes read are metered (the server's, if it meters).
    meter: Option<Arc<crate::metering::Slot>>,
}

/// Set when a request body timed out (see the module doc).
#[derive(Clone, Default)]
pub struct Stalled(Arc<AtomicBool>);

impl Stalled {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("RequestTimeout: no request body bytes for {0:?}")]
pub struct BodyTimeout(Duration);

/// What a body dropped unfinished leaves behind.
enum Remainder {
    /// Worth reading and discarding.
    Drain(Incoming),
    /// Never to be read: too long, or never asked for under `100-continue`.
    Abandoned,
}

/// Where the remainder of a dropped, unfinished body arrives.
pub struct Leftover {
    rx: oneshot::Receiver<Remainder>,
    /// HTTP/1.x: the only version where an unread body spoils the connection (h2 resets the
    /// stream alone, and forbids the `Connection` header).
    h1: bool,
}

/// Tracks `req`'s body; a body that sends nothing for `stall` while read fails (`Stalled`).
pub fn track(
    req: http::Request<Incoming>,
    stall: Duration,
) -> (http::Request<Tracked>, Leftover, Stalled) {
    let expects_continue = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (tx, rx) = oneshot::channel();
    let h1 = req.version() <= http::Version::HTTP_11;
    let stalled = Stalled::default();
    let meter = req
        .extensions()
        .get::<Arc<crate::metering::Slot>>()
        .cloned();
    let req = req.map(|b| Tracked {
        inner: Some(b),
        back: Some(tx),
        polled: false,
        expects_continue,
        stall,
        timer: None,
        waiting: false,
        stalled: stalled.clone(),
        meter,
    });
    (req, Leftover { rx, h1 }, stalled)
}

impl Tracked {
    /// Whether the wait for bytes has lasted `stall` (the timer starts with the wait).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + self.stall;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }

    /// Gives up on the body: recorded, and the connection is not reused (bytes may follow).
    fn give_up(&mut self) -> BoxError {
        self.inner = None;
        self.stalled.0.store(true, Ordering::Release);
        if let Some(back) = self.back.take() {
            let _ = back.send(Remainder::Abandoned);
        }
        BodyTimeout(self.stall).into()
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.polled = true;
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        match r {
            Poll::Pending if self.timed_out(cx) => {
                return Poll::Ready(Some(Err(self.give_up())));
            }
            Poll::Pending => return Poll::Pending,
            // Bytes came: the next wait starts afresh.
            _ => self.waiting = false,
        }
        if let (Poll::Ready(Some(Ok(f))), Some(m)) = (&r, &self.meter)
            && let Some(data) = f.data_ref()
        {
            m.received(data.len() as u64);
        }
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Finished (or broken): nothing to hand back.
            self.inner = None;
        }
        r.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if inner.is_end_stream() {
            return;
        }
        let waiting = self.expects_continue && !self.polled;
        let too_long = inner.size_hint().lower() > DRAIN_MAX;
        let rest = if waiting || too_long {
            Remainder::Abandoned
        } else {
            Remainder::Drain(inner)
        };
        if let Some(back) = self.back.take() {
            let _ = back.send(rest);
        }
    }
}

impl Leftover {
    /// Reads and discards what the service left unread, within the bounds above, and tells
    /// whether the connection may carry another request. Call it once the response is ready
    /// and the body has been dropped (a body still alive — a response that streams it — is left
    /// alone, to hyper).
    pub async fn drain(mut self) -> Reuse {
        let finished = match self.rx.try_recv() {
            Ok(Remainder::Drain(body)) => read_out(body).await,
            Ok(Remainder::Abandoned) => false,
            // Read to the end, or still owned by the response.
            Err(_) => true,
        };
        if finished || !self.h1 {
            Reuse::Keep
        } else {
            Reuse::Close
        }
    }
}

/// Reads and discards `body` within the bounds above: whether it reached its end.
async fn read_out(mut body: Incoming) -> bool {
    let read = async {
        let mut left = DRAIN_MAX;
        while left > 0 {
            match body.frame().await {
                Some(Ok(f)) => {
                    let n = f.data_ref().map_or(0, |d| d.len() as u64);
                    left = left.saturating_sub(n);
                }
                Some(Err(_)) => return false,
                None => return true,
            }
        }
        false
    };
    tokio::time::timeout(DRAIN_TIME, read)
        .await
        .unwrap_or(false)
}

/// Whether a connection may carry another request after this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    Keep,
    /// The request's body was not read to its end: answer with `Connection: close`.
    Close,
}

impl Reuse {
    /// Marks `resp` as the connection's last when its request body was left unread.
    pub fn apply<B>(self, resp: &mut http::Response<B>) {
        if self == Reuse::Close {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
    }
}
