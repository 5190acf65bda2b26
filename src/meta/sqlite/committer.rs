//! SQLite group commit of PUT and DELETE versions.
//!
//! SQLite has one writer, so small writes queue on it. The commits that queue up while a
//! transaction runs are committed together by one task: one `BEGIN IMMEDIATE` + every job's
//! read, then every job's writes and one `COMMIT`, then one WAL fsync — the same statements as
//! a lone commit, so a batch of one is exactly the unbatched transaction.
//!
//! A batch is one write transaction (`conn::Tx`) and two hand-offs to the blocking pool: the
//! reads, then — after the checks and the `confirm`s, planned by `rule` — the writes and the
//! COMMIT. Statements are prepared once and cached.
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

use super::conn::{Tx, Writer};
use super::readers;
use super::rule::{self, Change, Script};
use super::wal::WalSync;
use crate::meta::plan::{
    Ledger, check_condition, check_removable, delete_marker, number_version, put_version,
    quota_delta, replaced,
};
use crate::meta::rows::Lookup;
use crate::meta::{
    Deleted, MetaError, MetaResult, NULL_VERSION, ObjectRow, PutCommit, QuotaState, RemovedVersion,
    Segment, Versioning,
};
use futures::future::BoxFuture;
use rusqlite::Connection;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most jobs in one transaction: bounds a batch's script and its latency.
const MAX_COMMIT_BATCH: usize = 64;
/// Committed batches waiting for their fsync at once; the committer waits beyond this. Two
/// already let one batch commit while the previous one syncs (fsyncs are serialised by
/// `WalSync` anyway); four leaves slack for a slow sync. Not tuned: only 4 was measured.
const DURABLE_IN_FLIGHT: usize = 4;
/// Jobs waiting for the committer; callers wait for room beyond this.
const COMMIT_QUEUE: usize = 1024;

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
    /// One version removed for good.
    DeleteVersion {
        bucket_id: String,
        key: String,
        version_id: String,
        bypass: bool,
    },
}

pub(super) enum Done {
    Put(Box<ObjectRow>),
    Delete(Deleted),
    /// The version removed (`None`: there was no such version).
    Version(Option<RemovedVersion>),
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
            Op::Delete { key, .. } | Op::DeleteVersion { key, .. } => key,
        }
    }
}

/// The handle `SqliteMeta` keeps: sends jobs to the committer task.
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    pub(super) fn start(writer: Arc<Writer>, wal: Arc<WalSync>) -> Committer {
        let (jobs, rx) = mpsc::channel(COMMIT_QUEUE);
        tokio::spawn(run(writer, wal, rx));
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

/// The committer: takes what is queued (up to `MAX_COMMIT_BATCH`, distinct keys) and commits it.
/// Ends when `SqliteMeta` (the last sender) is dropped.
async fn run(writer: Arc<Writer>, wal: Arc<WalSync>, mut rx: mpsc::Receiver<Job>) {
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
        while batch.len() < MAX_COMMIT_BATCH && looked < 4 * MAX_COMMIT_BATCH {
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
        crate::metrics::commit_batch(batch.len());
        let answers = match writer.begin().await {
            Ok(tx) => commit_batch(tx, batch).await,
            Err(e) => {
                fail_all(batch.into_iter().map(|j| j.reply), e);
                Vec::new()
            }
        };
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

/// What a job's read looks up.
enum Read {
    /// The bucket by id, and the key's current version in it (or, with `version`, that
    /// version).
    ById {
        bucket_id: String,
        key: String,
        version: Option<String>,
    },
    /// The bucket by tenant and name, and the key's current version in it: HEAD's and GET's
    /// lookup (one statement), without inline bytes.
    ByName(Lookup),
}

/// What a job's read found.
#[derive(Default)]
pub(super) struct Seen {
    /// The bucket's id and versioning, if it exists.
    pub bucket: Option<(String, Versioning)>,
    /// The key's current version (or the version a `DeleteVersion` names).
    pub current: Option<ObjectRow>,
    /// In a suspended bucket, the key's null version when it is not the current one.
    pub null: Option<ObjectRow>,
    /// The bucket's and its tenant's quotas, when either has one (a new version's read).
    pub quota: Option<QuotaState>,
}

impl Read {
    fn of(op: &Op) -> Read {
        match op {
            Op::Put { commit, .. } => Read::ById {
                bucket_id: commit.bucket_id.clone(),
                key: commit.key.clone(),
                version: None,
            },
            Op::Delete {
                tenant_id,
                bucket,
                key,
            } => Read::ByName(Lookup {
                tenant: tenant_id.clone(),
                bucket: bucket.clone(),
                key: Some(key.clone()),
                inline: false,
            }),
            Op::DeleteVersion {
                bucket_id,
                key,
                version_id,
                ..
            } => Read::ById {
                bucket_id: bucket_id.clone(),
                key: key.clone(),
                version: Some(version_id.clone()),
            },
        }
    }

    /// The bucket and the versions the job's rule needs, with their segments.
    fn run(&self, c: &Connection) -> MetaResult<Seen> {
        match self {
            Read::ById {
                bucket_id,
                key,
                version: Some(id),
            } => {
                let Some(v) = super::versioning_of(c, bucket_id)? else {
                    return Ok(Seen::default());
                };
                Ok(Seen {
                    bucket: Some((bucket_id.clone(), v)),
                    current: super::version_in(c, bucket_id, key, id, false)?,
                    null: None,
                    quota: None,
                })
            }
            Read::ById {
                bucket_id,
                key,
                version: None,
            } => key_state(c, bucket_id, key),
            Read::ByName(lookup) => {
                let found = readers::find_on(c, lookup)?;
                let Some(b) = found.bucket else {
                    return Ok(Seen::default());
                };
                with_null(c, b.id, b.versioning, found.object)
            }
        }
    }
}

/// What a new version of `key` in bucket `bucket_id` replaces: the bucket's versioning, the
/// key's current version and (suspended) its null version.
pub(super) fn key_state(c: &Connection, bucket_id: &str, key: &str) -> MetaResult<Seen> {
    let Some(v) = super::versioning_of(c, bucket_id)? else {
        return Ok(Seen::default());
    };
    let current = super::latest_in(c, bucket_id, key)?;
    let mut seen = with_null(c, bucket_id.to_owned(), v, current)?;
    seen.quota =
        super::quota_state_on(c, bucket_id)?.filter(|q| q.bucket.is_set() || q.tenant.is_set());
    Ok(seen)
}

fn with_null(
    c: &Connection,
    bucket_id: String,
    versioning: Versioning,
    current: Option<ObjectRow>,
) -> MetaResult<Seen> {
    let null = match (&current, versioning) {
        (Some(o), Versioning::Suspended) if o.version_id != NULL_VERSION => {
            super::version_in(c, &bucket_id, &o.key, NULL_VERSION, false)?
        }
        _ => None,
    };
    Ok(Seen {
        bucket: Some((bucket_id, versioning)),
        current,
        null,
        quota: None,
    })
}

/// Plans `row` as the new current version of its key, given what `key_state` found: checks
/// that what it replaces may go and that the quotas admit it (charging `ledger`), numbers it,
/// and appends the writes (`new_blob`, `release`: as `Change`'s).
pub(super) fn new_version(
    out: &mut Script,
    seen: &Seen,
    row: &mut ObjectRow,
    (new_blob, release): (Option<&Segment>, &[Segment]),
    ledger: &mut Ledger,
    now: i64,
) -> MetaResult<()> {
    let Some((bucket_id, versioning)) = &seen.bucket else {
        return Err(MetaError::NoSuchBucket);
    };
    let current = seen.current.as_ref();
    let replaced = replaced(*versioning, current, seen.null.as_ref());
    check_removable(replaced.0, now, false)?;
    if let Some(q) = &seen.quota {
        ledger.admit(q, quota_delta(row, replaced.0))?;
    }
    number_version(row, *versioning, current);
    let mut change = Change::of(bucket_id, replaced, Some(row));
    change.new_blob = new_blob;
    change.release = release;
    rule::apply(out, &change, now);
    Ok(())
}

/// Runs a batch's transaction up to its COMMIT. Returns the answers that wait for the next
/// barrier: every job's after a commit; after a rollback, only the refusals (their reads may
/// have seen the previous batch's unsynced commit), the failed writers being answered here. A
/// batch that failed before its reads has answered every job and returns nothing.
async fn commit_batch(mut tx: Tx, batch: Vec<Job>) -> Vec<Planned> {
    let reads: Vec<Read> = batch.iter().map(|j| Read::of(&j.op)).collect();
    let found = tx
        .run(move |c| {
            reads
                .iter()
                .map(|r| r.run(c))
                .collect::<MetaResult<Vec<_>>>()
        })
        .await;
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            fail_all(batch.into_iter().map(|j| j.reply), e);
            return Vec::new();
        }
    };
    let now = crate::now_micros();
    let mut planned = Vec::with_capacity(batch.len());
    let mut writes = Script::default();
    let mut ledger = Ledger::default();
    for (job, seen) in batch.into_iter().zip(found) {
        let done = plan(job.op, seen, now, &mut writes, &mut ledger).await;
        planned.push(Planned {
            reply: job.reply,
            done,
        });
    }
    let result = match tx.run(move |c| writes.run(c)).await {
        Ok(()) => tx.commit().await,
        // Dropped: rolled back.
        Err(e) => Err(e),
    };
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

/// One job's checks, given what the read found; then its writes are appended to `out`. A job
/// that fails adds nothing: every check comes first.
async fn plan(
    op: Op,
    seen: Seen,
    now: i64,
    out: &mut Script,
    ledger: &mut Ledger,
) -> MetaResult<Done> {
    let Some((bucket_id, versioning)) = seen.bucket.clone() else {
        return Err(MetaError::NoSuchBucket);
    };
    let current = seen.current.as_ref();
    match op {
        Op::Put { commit: c, place } => {
            check_condition(&c.condition, current)?;
            let mut row = put_version(&c);
            // Planned apart and appended once the file is placed: a refusal adds nothing.
            let mut mine = Script::default();
            new_version(
                &mut mine,
                &seen,
                &mut row,
                (c.blob.as_ref(), &[]),
                ledger,
                now,
            )?;
            if let Some(place) = place {
                // The write lock is held since BEGIN IMMEDIATE: no collector (in this process
                // or another) can unlink the file until this commits with its reference.
                place.await.map_err(MetaError::Place)?;
            }
            out.append(mine);
            Ok(Done::Put(Box::new(row)))
        }
        Op::Delete { key, .. } => {
            let replaced = replaced(versioning, current, seen.null.as_ref());
            check_removable(replaced.0, now, false)?;
            if versioning == Versioning::Unversioned {
                let Some(old) = current else {
                    return Ok(Done::Delete(Deleted::Absent));
                };
                rule::apply(out, &Change::of(&bucket_id, (Some(old), None), None), now);
                return Ok(Done::Delete(Deleted::Removed));
            }
            let id = uuid::Uuid::now_v7().to_string();
            let mut marker = delete_marker(&id, &key, now);
            number_version(&mut marker, versioning, current);
            rule::apply(out, &Change::of(&bucket_id, replaced, Some(&marker)), now);
            Ok(Done::Delete(Deleted::Marker(marker.version_id)))
        }
        Op::DeleteVersion { bypass, .. } => {
            let Some(gone) = seen.current else {
                return Ok(Done::Version(None));
            };
            check_removable(Some(&gone), now, bypass)?;
            rule::apply(out, &Change::of(&bucket_id, (Some(&gone), None), None), now);
            Ok(Done::Version(Some(RemovedVersion {
                delete_marker: gone.delete_marker,
            })))
        }
    }
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
            commit: Box::new(super::super::tests::put(bucket_id, key, None, condition)),
            place: None,
        }
    }

    /// No answer leaves before its batch's WAL sync: when the sync fails, a commit, a refusal
    /// (its read may have seen a commit not yet synced) and a DELETE of a missing key all get
    /// the sync's error, none its own outcome; with a sync that works they get their own.
    #[tokio::test]
    async fn answers_wait_for_the_wal_sync() {
        let (dir, meta) = super::super::tests::open().await;
        let tenant = meta.create_tenant("one").await.expect("tenant");
        let bucket = meta
            .create_bucket(&tenant, "b", false)
            .await
            .expect("bucket");
        let taken = put(&bucket.id, "taken", WriteCondition::None);
        meta.committer.commit(taken).await.expect("a commit");

        // A WAL path under a regular file: opening it fails (ENOTDIR), so every sync does.
        let broken = Arc::new(WalSync::new(Some(dir.path().join("meta.db").join("wal"))));
        // The same writer (one transaction at a time), another sync.
        let failing = Committer::start(meta.writer.clone(), broken);
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
        assert!(
            matches!(gone, Ok(Done::Delete(Deleted::Absent))),
            "a missing key"
        );
    }

    /// A batch whose writes fail (here: a released blob has no row, a broken invariant) is
    /// rolled back whole: the object it demoted is still current, and the committer's
    /// connection commits the next batch.
    #[tokio::test]
    async fn a_failed_batch_leaves_no_trace() {
        let (_dir, meta) = super::super::tests::open().await;
        let tenant = meta.create_tenant("one").await.expect("tenant");
        let bucket = meta
            .create_bucket(&tenant, "b", false)
            .await
            .expect("bucket");
        let blob = crate::meta::Segment {
            tier: crate::blobs::Tier::Hot,
            hash: "cd".repeat(32),
            size: 3,
            inline: Some(bytes::Bytes::from_static(b"abc")),
        };
        let c = super::super::tests::put(&bucket.id, "a", Some(blob), WriteCondition::None);
        let op = Op::Put {
            commit: Box::new(c),
            place: None,
        };
        meta.committer.commit(op).await.expect("a commit");
        meta.writer
            .transaction(|c| {
                c.execute_batch("DELETE FROM blobs")?;
                Ok(())
            })
            .await
            .expect("the blob row goes");
        let delete = Op::Delete {
            tenant_id: tenant.clone(),
            bucket: "b".into(),
            key: "a".into(),
        };
        let failed = meta.committer.commit(delete).await;
        assert!(
            matches!(failed, Err(MetaError::Invariant(_))),
            "a release without a row: {:?}",
            failed.as_ref().map(|_| ())
        );
        let a = meta.latest(&tenant, "b", "a", false).await.expect("read");
        assert!(a.is_some(), "the demotion was rolled back");
        // At once: a transaction left open would hold the write lock.
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            meta.create_bucket(&tenant, "c", false),
        )
        .await;
        assert!(matches!(other, Ok(Ok(_))), "another write goes through");
        let next = meta
            .committer
            .commit(put(&bucket.id, "next", WriteCondition::None))
            .await;
        assert!(next.is_ok(), "the next batch commits");
        let next = meta
            .latest(&tenant, "b", "next", false)
            .await
            .expect("read");
        assert!(next.is_some(), "and is there");
    }
}
