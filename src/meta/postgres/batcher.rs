//! Natural batching for PostgreSQL statements (`lookups`, `commit::Group`): requests queue on a channel;
//! a dispatcher takes the first, waits for one of `in_flight` slots, then takes whatever else has
//! queued meanwhile (up to `max`) and runs them together. On an idle server a request runs
//! alone, at once; under load, the time the running batches take is what gathers the next.
//!
//! If a batch's call fails, each of its requests runs again alone, so that each gets its own
//! outcome (its own error, classified as usual) and none fails for another's sake.

use crate::meta::{MetaError, MetaResult};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Requests waiting for the dispatcher, at most (senders wait for room beyond that).
const BATCHER_QUEUE: usize = 4096;

type Reply<A> = oneshot::Sender<MetaResult<A>>;

pub(super) struct Batcher<Q, A> {
    tx: mpsc::Sender<(Q, Reply<A>)>,
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Starts the dispatcher; it ends when the `Batcher` is dropped. `call` runs a batch and
    /// gives back its requests with one answer per request, in order.
    pub fn start<F, Fut>(in_flight: usize, max: usize, call: F) -> Batcher<Q, A>
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Vec<Q>, MetaResult<Vec<A>>)> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(BATCHER_QUEUE);
        tokio::spawn(dispatch(rx, in_flight, max, Arc::new(call)));
        Batcher { tx }
    }

    /// Runs `request` (with whatever else is queued) and returns its answer.
    pub async fn submit(&self, request: Q) -> MetaResult<A> {
        let (reply, answer) = oneshot::channel();
        let gone = || MetaError::Db(sqlx::Error::PoolClosed);
        self.tx.send((request, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn dispatch<Q, A, F, Fut>(
    mut rx: mpsc::Receiver<(Q, Reply<A>)>,
    in_flight: usize,
    max: usize,
    call: Arc<F>,
) where
    Q: Send + 'static,
    A: Send + 'static,
    F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Vec<Q>, MetaResult<Vec<A>>)> + Send + 'static,
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
        let call = call.clone();
        tokio::spawn(async move {
            answer(&*call, batch).await;
            drop(slot);
        });
    }
}

/// Runs a batch and hands out its answers; if the call fails, runs each request again alone.
async fn answer<Q, A, F, Fut>(call: &F, batch: Vec<(Q, Reply<A>)>)
where
    F: Fn(Vec<Q>) -> Fut,
    Fut: Future<Output = (Vec<Q>, MetaResult<Vec<A>>)>,
{
    let n = batch.len();
    let (requests, replies): (Vec<Q>, Vec<Reply<A>>) = batch.into_iter().unzip();
    let (requests, outcome) = call(requests).await;
    match outcome {
        Ok(answers) => {
            let got = answers.len();
            let mut answers = answers.into_iter();
            for reply in replies {
                // The caller may have gone (a cancelled request): its outcome stands.
                let _ = reply.send(answers.next().ok_or_else(|| {
                    MetaError::Invariant(format!("a batch of {n} got {got} answers"))
                }));
            }
        }
        Err(e) if n == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, requests = n, "batch failed; one by one");
            let alone = requests
                .into_iter()
                .zip(replies)
                .map(|(q, reply)| async move {
                    let (_, outcome) = call(vec![q]).await;
                    let _ = reply.send(outcome.and_then(|mut a| {
                        a.pop()
                            .ok_or_else(|| MetaError::Invariant("a request lost its answer".into()))
                    }));
                });
            futures::future::join_all(alone).await;
        }
    }
}
