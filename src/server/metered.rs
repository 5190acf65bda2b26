//! A response body that counts the bytes it sends and, when it is done (or dropped, by a
//! client that went away), records the request with the metering and the metrics and writes
//! its one log line (target `access`: request id, tenant, operation, bucket, status, bytes,
//! duration; never a key, a signature or a secret).

use crate::metering::{Meter, Slot};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// What the request's log line says besides what the slot holds.
pub struct Finished {
    pub request_id: String,
    pub method: http::Method,
    pub status: u16,
    pub started: Instant,
    /// Counts the request in flight until the body is done (dropped with this).
    pub _in_flight: crate::metrics::InFlight,
}

pub struct Metered<B> {
    inner: B,
    sent: u64,
    meter: Arc<Meter>,
    slot: Arc<Slot>,
    done: Finished,
}

impl<B> Metered<B> {
    pub fn new(inner: B, meter: Arc<Meter>, slot: Arc<Slot>, done: Finished) -> Self {
        Metered {
            inner,
            sent: 0,
            meter,
            slot,
            done,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Metered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(data) = f.data_ref()
        {
            self.sent += data.len() as u64;
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

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        self.meter.record(&self.slot, self.sent);
        let billed = self.slot.billed();
        let d = &self.done;
        let operation = self
            .slot
            .operation()
            .unwrap_or(crate::metrics::UNIDENTIFIED);
        let elapsed = d.started.elapsed();
        let received = self.slot.bytes_received();
        crate::metrics::request(
            operation,
            d.status,
            elapsed.as_secs_f64(),
            received,
            self.sent,
        );
        tracing::info!(
            target: "access",
            request_id = %d.request_id,
            method = %d.method,
            tenant = billed.map_or("", |b| b.tenant_id.as_str()),
            operation,
            bucket = billed.map_or("", |b| b.bucket.as_str()),
            status = d.status,
            bytes_in = received,
            bytes_out = self.sent,
            duration_ms = elapsed.as_secs_f64() * 1e3,
            "request"
        );
    }
}
