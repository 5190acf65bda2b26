//! SQLite group commit of PUT and DELETE versions.
//!
//! SQLite has one writer, so small writes queue on it; each transaction costs three hand-offs
//! to the connection's thread (`script`), and under load those wake-ups, not SQLite, are the
//! writer's time. So the commits that queue up while a transaction runs are committed together
//! by one task: one `BEGIN IMMEDIATE` + every job's read, then every job's writes, then one
//! `COMMIT` and one WAL fsync — the same statements as a lone commit, so a batch of one is
//! exactly the unbatched transaction.
//!
//! Durability is pipelined: once a batch has committed, its fsync (`WalSync::barrier`) and its
//! answers run in a task of their own while the next batch is read, planned and committed. The
//! writer used to sit idle through every fsync. Nothing is answered before it is durable: every
//! answer of a batch, a refusal too (a failed condition may have read the previous batch's
//! commit), waits for that batch's barrier, and a barrier covers every earlier commit. WAL
//! recovery keeps a prefix of the commits, so a later batch is never durable without an earlier
//! one. At most `DURABLE_IN_FLIGHT` committed batches wait for their fsync at once.
//!
//! Isolation between jobs: a job whose condition fails (or whose blob could not be confirmed)
//! contributes no writes and gets its refusal (after the barrier, as above); a job whose
//! bucket is gone is answered `NoSuchBucket` from the read (the write lock is held from the
//! read on, so it cannot vanish between the two). A DELETE names its bucket and is resolved by
//! that read too, so it costs no lookup of its own. Jobs in one batch have distinct object keys
//! (whatever their buckets: a DELETE's bucket id is not known before the read): a second commit
//! to a key waits for the next batch, so each job reads the version it replaces. What can still
//! fail a write script — I/O, a full disk, a broken invariant — fails every writing job of the
//! batch, and rolls all of them back.

use super::super::script::{Script, Tx};
use super::super::wal::WalSync;
use super::*;
use futures::future::BoxFuture;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most jobs in one transaction: bounds a batch's script and its latency.
const MAX_BATCH: usize = 64;
/// Committed batches waiting for their fsync at once; the committer waits beyond this. Two
/// already let one batch commit while the previous one syncs (fsyncs are serialised by
/// `WalSync` anyway); four leaves slack for a slow sync. Not tuned: only 4 was measured.
const DURABLE_IN_FLIGHT: usize = 4;
/// Jobs waiting for the committer; callers wait for room beyond this.
const QUEUE: usize = 1024;

pub(super) enum Op {
    Put {
        commit: Box<PutCommit>,
        /// `confirm` of the placed blob file, run under the write lock.
        place: Option<BoxFuture<'static, std::io::Result<()>>>,
    },
    /// The bucket by tenant and name, resolved in the batch's read.
    Delete {
        tenant_id: String,
        bucket: String,
        key: String,
    },
}

pub(super) enum Done {
    Put(Box<ObjectRow>),
    Delete(bool),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<MetaResult<Done>>,
}

impl Job {
    /// The object key: no two jobs of a batch share one.
    fn key(&self) -> &str {
        match &self.op {
            Op::Put { commit, .. } => &commit.key,
            Op::Delete { key, .. } => key,
        }
    }
}

/// The handle `SqliteMeta` keeps: sends jobs to the committer task.
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    pub(super) fn start(write: sqlx::SqlitePool, wal: Arc<WalSync>) -> Committer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(write, wal, rx));
        Committer { jobs }
    }

    pub(super) async fn commit(&self, op: Op) -> MetaResult<Done> {
        let (reply, answer) = oneshot::channel();
        let gone = || MetaError::Invariant("the SQLite committer stopped".into());
        self.jobs
            .send(Job { op, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The committer: takes what is queued (up to `MAX_BATCH`, distinct keys) and commits it.
/// Ends when `SqliteMeta` (the last sender) is dropped.
async fn run(write: sqlx::SqlitePool, wal: Arc<WalSync>, mut rx: mpsc::Receiver<Job>) {
    let durable = Arc::new(Semaphore::new(DURABLE_IN_FLIGHT));
    let mut held: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match held.pop_front() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        // Waiting for a slot (the disk is behind) lets more jobs queue up for this batch.
        let Ok(permit) = durable.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let mut keys: HashSet<String> = HashSet::new();
        keys.insert(batch[0].key().to_owned());
        // Held-back jobs first (they are older), then new arrivals. Looking at a bounded
        // number keeps a hot key (many commits, one per batch) from costing O(n) per batch.
        let mut later = VecDeque::new();
        let mut looked = 0;
        while batch.len() < MAX_BATCH && looked < 4 * MAX_BATCH {
            looked += 1;
            let next = match held.pop_front() {
                Some(j) => j,
                None => match rx.try_recv() {
                    Ok(j) => j,
                    Err(_) => break,
                },
            };
            if keys.insert(next.key().to_owned()) {
                batch.push(next);
            } else {
                later.push_back(next);
            }
        }
        later.append(&mut held);
        held = later;
        let answers = commit_batch(&write, batch).await;
        let wal = wal.clone();
        tokio::spawn(async move {
            answer_when_durable(&wal, answers).await;
            drop(permit);
        });
    }
}

/// A job after its read: its outcome, to be sent once the batch is durable.
struct Planned {
    reply: oneshot::Sender<MetaResult<Done>>,
    done: MetaResult<Done>,
}

/// Sends a committed batch's answers once the WAL is synced past its commit; if the sync
/// failed, every job gets that error instead (the first as is).
async fn answer_when_durable(wal: &WalSync, answers: Vec<Planned>) {
    if answers.is_empty() {
        return;
    }
    match wal.barrier().await {
        Ok(()) => {
            for p in answers {
                let _ = p.reply.send(p.done);
            }
        }
        Err(e) => fail_all(answers.into_iter().map(|p| p.reply), e),
    }
}

/// Runs a batch's transaction up to its COMMIT. Returns the answers that wait for the next
/// barrier: every job's after a commit; after a rollback, only the refusals (their reads may
/// have seen the previous batch's unsynced commit), the failed writers being answered here. A
/// batch that failed before its reads has answered every job and returns nothing.
async fn commit_batch(write: &sqlx::SqlitePool, batch: Vec<Job>) -> Vec<Planned> {
    let mut read = Script::default();
    for job in &batch {
        // A one-column row marks where each job's rows start.
        read = match &job.op {
            Op::Put { commit, .. } => read
                .stmt("SELECT EXISTS (SELECT 1 FROM buckets WHERE id = $1) AS bucket_exists")
                .bind(commit.bucket_id.clone())
                .stmt(LATEST_IN_SQL)
                .bind(commit.bucket_id.clone())
                .bind(commit.key.clone()),
            Op::Delete {
                tenant_id,
                bucket,
                key,
            } => read
                .stmt(
                    "SELECT EXISTS (SELECT 1 FROM buckets WHERE tenant_id = $1 AND name = $2) \
                     AS bucket_exists",
                )
                .bind(tenant_id.clone())
                .bind(bucket.clone())
                .stmt(LATEST_BY_NAME_SQL)
                .bind(tenant_id.clone())
                .bind(bucket.clone())
                .bind(key.clone()),
        };
    }
    let (mut tx, rows) = match Tx::begin(write, read).await {
        Ok(r) => r,
        Err(e) => {
            fail_all(batch.into_iter().map(|j| j.reply), e);
            return Vec::new();
        }
    };
    let per_job = match split_rows(&rows, batch.len()) {
        Ok(p) => p,
        Err(e) => {
            fail_all(batch.into_iter().map(|j| j.reply), e);
            return Vec::new();
        }
    };
    let now = crate::now_micros();
    let mut planned = Vec::with_capacity(batch.len());
    let mut writes = Script::default();
    let mut all_deltas = Vec::new();
    for (job, (bucket_exists, rows)) in batch.into_iter().zip(per_job) {
        let done = plan(
            job.op,
            bucket_exists,
            rows,
            now,
            &mut writes,
            &mut all_deltas,
        )
        .await;
        planned.push(Planned {
            reply: job.reply,
            done,
        });
    }
    let result = async {
        let counts = tx.run(writes).await?;
        check_counts(&all_deltas, &counts)?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => planned,
        Err(e) => {
            // Rolled back: every job that would have written gets the batch's error now; a
            // refusal stands (it wrote nothing), but what it read may be the previous batch's
            // commit, so it still waits for the barrier.
            let (refused, failed): (Vec<_>, Vec<_>) =
                planned.into_iter().partition(|p| p.done.is_err());
            fail_all(failed.into_iter().map(|p| p.reply), e);
            refused
        }
    }
}

/// Splits the read script's rows per job: a one-column row (the bucket check), then the
/// job's version rows.
fn split_rows(
    rows: &[sqlx::sqlite::SqliteRow],
    jobs: usize,
) -> MetaResult<Vec<(bool, &[sqlx::sqlite::SqliteRow])>> {
    use sqlx::Row;
    let starts: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.columns().len() == 1)
        .map(|(i, _)| i)
        .collect();
    if starts.len() != jobs {
        return Err(MetaError::Invariant(format!(
            "batch read returned {} markers for {jobs} jobs",
            starts.len()
        )));
    }
    let mut out = Vec::with_capacity(jobs);
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(rows.len());
        let exists: bool = rows[s].try_get(0)?;
        out.push((exists, &rows[s + 1..end]));
    }
    Ok(out)
}

/// One job's checks, given what the read found; then its writes are appended to `w` (and its
/// reference changes to `all`). A job that fails adds nothing: every check comes first.
async fn plan(
    op: Op,
    bucket_exists: bool,
    rows: &[sqlx::sqlite::SqliteRow],
    now: i64,
    out: &mut Script,
    all: &mut Vec<Delta>,
) -> MetaResult<Done> {
    if !bucket_exists {
        return Err(MetaError::NoSuchBucket);
    }
    let old = super::decode::object_from_rows(&mut rows.iter(), false)?;
    let mut w = std::mem::take(out);
    let (ds, done) = match op {
        Op::Put { commit: c, place } => {
            if let Err(e) = check_condition(&c.condition, old.as_ref()) {
                *out = w;
                return Err(e);
            }
            if let Some(place) = place {
                // The write lock is held since BEGIN IMMEDIATE: no collector (in this process
                // or another) can unlink the file until this commits with its reference.
                if let Err(e) = place.await {
                    *out = w;
                    return Err(MetaError::Place(e));
                }
            }
            let row = new_version(&c);
            let old_segs = old.as_ref().map(|o| o.segments.as_slice()).unwrap_or(&[]);
            let ds = deltas(&row.segments, old_segs);
            if let Some(o) = &old {
                w = w.stmt(DEMOTE_SQL).bind(o.id.clone()).bind(now);
            }
            let tier = tier_of_segments(&row.segments);
            w = bind_insert_object!(w.stmt(INSERT_OBJECT_SQL), &c.bucket_id, tier, &row);
            let new_blob = c.blob.as_ref();
            for d in &ds {
                w = bind_delta!(w.stmt(d.sql(new_blob)), d, new_blob, now);
            }
            for (seq, seg) in row.segments.iter().enumerate() {
                w = bind_segment!(w.stmt(INSERT_SEGMENT_SQL), &row.id, seq, seg);
            }
            (ds, Done::Put(Box::new(row)))
        }
        Op::Delete { .. } => match old {
            None => (Vec::new(), Done::Delete(false)),
            Some(old) => {
                let ds = deltas(&[], &old.segments);
                for d in &ds {
                    w = bind_delta!(w.stmt(d.sql(None)), d, None, now);
                }
                w = w.stmt(DEMOTE_SQL).bind(old.id.clone()).bind(now);
                (ds, Done::Delete(true))
            }
        },
    };
    *out = w;
    all.extend(ds);
    Ok(done)
}

/// Answers every job with the batch's error (the first gets it as is).
fn fail_all(replies: impl Iterator<Item = oneshot::Sender<MetaResult<Done>>>, e: MetaError) {
    let msg = e.to_string();
    let mut first = Some(e);
    for r in replies {
        let e = first
            .take()
            .unwrap_or_else(|| MetaError::Batch(msg.clone()));
        let _ = r.send(Err(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{MetaStore, WriteCondition};

    fn put(bucket_id: &str, key: &str, condition: WriteCondition) -> Op {
        Op::Put {
            commit: Box::new(super::super::test_put(bucket_id, key, None, condition)),
            place: None,
        }
    }

    /// No answer leaves before its batch's WAL sync: when the sync fails, a commit, a refusal
    /// (its read may have seen a commit not yet synced) and a DELETE of a missing key all get
    /// the sync's error, none its own outcome; with a sync that works they get their own.
    #[tokio::test]
    async fn answers_wait_for_the_wal_sync() {
        let (dir, meta) = super::super::test_sqlite().await;
        let tenant = meta.create_tenant("one").await.expect("tenant");
        let bucket = meta.create_bucket(&tenant, "b").await.expect("bucket");
        let taken = put(&bucket.id, "taken", WriteCondition::None);
        meta.committer.commit(taken).await.expect("a commit");

        // A WAL path under a regular file: opening it fails (ENOTDIR), so every sync does.
        let broken = Arc::new(WalSync::new(Some(dir.path().join("meta.db").join("wal"))));
        let failing = Committer::start(meta.write.clone(), broken);
        let delete = |key: &str| Op::Delete {
            tenant_id: tenant.clone(),
            bucket: "b".into(),
            key: key.into(),
        };
        let outcomes = [
            failing
                .commit(put(&bucket.id, "new", WriteCondition::None))
                .await,
            failing
                .commit(put(&bucket.id, "taken", WriteCondition::IfNoneMatchAny))
                .await,
            failing.commit(delete("missing")).await,
        ];
        for o in &outcomes {
            assert!(
                matches!(o, Err(MetaError::Sync(_))),
                "answered before a durable sync: {:?}",
                o.as_ref().map(|_| ())
            );
        }

        let refused = meta
            .committer
            .commit(put(&bucket.id, "taken", WriteCondition::IfNoneMatchAny))
            .await;
        assert!(
            matches!(refused, Err(MetaError::PreconditionFailed)),
            "the refusal itself once the sync works: {:?}",
            refused.as_ref().map(|_| ())
        );
        let gone = meta.committer.commit(delete("missing")).await;
        assert!(matches!(gone, Ok(Done::Delete(false))), "a missing key");
    }
}
