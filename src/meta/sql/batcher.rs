//! Natural batching for PostgreSQL statements (`lookup`, `group`): requests queue on a channel;
//! a dispatcher takes the first, waits for one of `in_flight` slots, then takes whatever else has
//! queued meanwhile (up to `max`) and runs them together. On an idle server a request runs
//! alone, at once; under load, the time the running batches take is what gathers the next.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// Requests waiting for the dispatcher, at most (senders wait for room beyond that).
const QUEUE: usize = 4096;

pub(super) struct Batcher<R> {
    tx: mpsc::Sender<R>,
}

impl<R: Send + 'static> Batcher<R> {
    /// Starts the dispatcher; it ends when the `Batcher` is dropped. `run` answers a batch (the
    /// requests carry their reply channels).
    pub fn start<F, Fut>(in_flight: usize, max: usize, run: F) -> Batcher<R>
    where
        F: Fn(Vec<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(dispatch(rx, in_flight, max, run));
        Batcher { tx }
    }

    /// Queues a request; gives it back if the dispatcher is gone.
    pub async fn submit(&self, request: R) -> Result<(), R> {
        self.tx.send(request).await.map_err(|e| e.0)
    }
}

async fn dispatch<R, F, Fut>(mut rx: mpsc::Receiver<R>, in_flight: usize, max: usize, run: F)
where
    R: Send + 'static,
    F: Fn(Vec<R>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot before draining the queue is what forms the batches.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max);
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let work = run(batch);
        tokio::spawn(async move {
            work.await;
            drop(slot);
        });
    }
}
