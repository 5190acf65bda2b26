//! A response body that counts the bytes it sends and, when it is done (or dropped, by a
//! client that went away), records the request with the metering.

use crate::metering::{Meter, Slot};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub struct Metered<B> {
    inner: B,
    sent: u64,
    meter: Arc<Meter>,
    slot: Arc<Slot>,
}

impl<B> Metered<B> {
    pub fn new(inner: B, meter: Arc<Meter>, slot: Arc<Slot>) -> Self {
        Metered {
            inner,
            sent: 0,
            meter,
            slot,
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
    }
}
