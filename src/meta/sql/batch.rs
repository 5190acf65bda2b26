//! SQLite group commit of PUT and DELETE versions.
//!
//! SQLite has one writer, so small writes queue on it. The commits that queue up while a
//! transaction runs are committed together by one task: one `BEGIN IMMEDIATE` + every job's
//! read, then every job's writes and one `COMMIT`, then one WAL fsync — the same statements as
//! a lone commit, so a batch of one is exactly the unbatched transaction.
//!
//! The committer has a read-write connection of its own (rusqlite, `Writer`), and a batch is two
//! hand-offs to the blocking pool: the reads, then — after the Rust checks and the `confirm`s —
//! the writes and the COMMIT. Through sqlx's writer connection a batch was three round trips to
//! that connection's thread, each statement's rows a message back with every value copied, and
//! under the benchmark's DELETEs those wake-ups and copies were a third of the writer's time.
//! Statements are prepared once and cached. While a batch runs the committer holds the write
//! token — sqlx's one writer connection, checked out of its pool — so no other write of this
//! process (bucket changes, multipart, the collector) runs beside it; another process
//! (`admin`, `gc`) is kept out by SQLite's lock, as before.
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

use super::super::wal::WalSync;
use super::decode::Named;
use super::*;
use futures::future::BoxFuture;
use rusqlite::types::{ToSql, ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags};
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most jobs in one transaction: bounds a batch's script and its latency.
const MAX_BATCH: usize = 64;
/// Committed batches waiting for their fsync at once; the committer waits beyond this. Two
/// already let one batch commit while the previous one syncs (fsyncs are serialised by
/// `WalSync` anyway); four leaves slack for a slow sync. Not tuned: only 4 was measured.
const DURABLE_IN_FLIGHT: usize = 4;
/// Jobs waiting for the committer; callers wait for room beyond this.
const QUEUE: usize = 1024;
/// Prepared statements the committer's connection keeps: two reads per kind of job, and the
/// write statements (`DEMOTE_SQL`, `INSERT_OBJECT_SQL`, three delta kinds, segments).
const STATEMENTS: usize = 16;
/// As sqlx's writer: another process (`admin`, `gc`) may hold the write lock for a while.
const BUSY: Duration = Duration::from_secs(30);

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
    /// `token` is sqlx's write pool (one connection): the committer checks it out for each
    /// batch, so that no other write of this process runs meanwhile.
    pub(super) fn start(token: sqlx::SqlitePool, writer: Writer, wal: Arc<WalSync>) -> Committer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(token, Arc::new(writer), wal, rx));
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
async fn run(
    token: sqlx::SqlitePool,
    writer: Arc<Writer>,
    wal: Arc<WalSync>,
    mut rx: mpsc::Receiver<Job>,
) {
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
        let answers = match token.acquire().await {
            Ok(held_token) => {
                let answers = commit_batch(&writer, batch).await;
                drop(held_token);
                answers
            }
            Err(e) => {
                fail_all(batch.into_iter().map(|j| j.reply), e.into());
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
    /// The bucket by id, and the key's current version in it.
    ById { bucket_id: String, key: String },
    /// The bucket by tenant and name, and the key's current version in it: HEAD's and GET's
    /// lookup (one statement), without inline bytes.
    ByName(decode::Lookup),
}

impl Read {
    fn of(op: &Op) -> Read {
        match op {
            Op::Put { commit, .. } => Read::ById {
                bucket_id: commit.bucket_id.clone(),
                key: commit.key.clone(),
            },
            Op::Delete {
                tenant_id,
                bucket,
                key,
            } => Read::ByName(decode::Lookup {
                tenant: tenant_id.clone(),
                bucket: bucket.clone(),
                key: Some(key.clone()),
                inline: false,
            }),
        }
    }

    /// Whether the bucket exists, and the key's current version with its segments.
    fn run(&self, c: &Connection) -> MetaResult<(bool, Option<ObjectRow>)> {
        match self {
            Read::ById { bucket_id, key } => {
                let found: bool = c
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM buckets WHERE id = $1)")?
                    .query_row([bucket_id], |r| r.get(0))?;
                if !found {
                    return Ok((false, None));
                }
                let mut stmt = c.prepare_cached(LATEST_IN_SQL)?;
                let params: [(&str, &dyn ToSql); 2] = [("$1", bucket_id), ("$2", key)];
                let old =
                    decode::object_from_rows(&mut Named::query(&mut stmt, &params[..])?, false)?;
                Ok((true, old))
            }
            Read::ByName(lookup) => {
                let found = direct::find_on(c, lookup)?;
                Ok((found.bucket.is_some(), found.object))
            }
        }
    }
}

/// Runs a batch's transaction up to its COMMIT. Returns the answers that wait for the next
/// barrier: every job's after a commit; after a rollback, only the refusals (their reads may
/// have seen the previous batch's unsynced commit), the failed writers being answered here. A
/// batch that failed before its reads has answered every job and returns nothing.
async fn commit_batch(writer: &Arc<Writer>, batch: Vec<Job>) -> Vec<Planned> {
    let reads: Vec<Read> = batch.iter().map(|j| Read::of(&j.op)).collect();
    let found = writer
        .blocking(move |c| {
            begin(c)?;
            let found = reads
                .iter()
                .map(|r| r.run(c))
                .collect::<MetaResult<Vec<_>>>();
            if found.is_err() {
                rollback(c);
            }
            found
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
    let mut all_deltas = Vec::new();
    for (job, (bucket_exists, old)) in batch.into_iter().zip(found) {
        let done = plan(
            job.op,
            bucket_exists,
            old,
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
    let result = writer
        .blocking(move |c| {
            let r = writes
                .run(c)
                .and_then(|counts| check_counts(&all_deltas, &counts))
                .and_then(|()| Ok(c.execute_batch("COMMIT")?));
            if r.is_err() {
                rollback(c);
            }
            r
        })
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

/// `BEGIN IMMEDIATE`: the write lock up front, also against another process. A transaction
/// left open (the committer was cancelled between its two hand-offs, at shutdown) is rolled
/// back first.
fn begin(c: &Connection) -> MetaResult<()> {
    if !c.is_autocommit() {
        rollback(c);
    }
    Ok(c.execute_batch("BEGIN IMMEDIATE")?)
}

/// Ends the open transaction without its writes. When even the ROLLBACK fails, SQLite has
/// rolled the transaction back already (the only failures it reports for it).
fn rollback(c: &Connection) {
    if !c.is_autocommit() {
        let _ = c.execute_batch("ROLLBACK");
    }
}

/// One job's checks, given what the read found; then its writes are appended to `w` (and its
/// reference changes to `all`). A job that fails adds nothing: every check comes first.
async fn plan(
    op: Op,
    bucket_exists: bool,
    old: Option<ObjectRow>,
    now: i64,
    out: &mut Script,
    all: &mut Vec<Delta>,
) -> MetaResult<Done> {
    if !bucket_exists {
        return Err(MetaError::NoSuchBucket);
    }
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
                w = bind_delta!(w.counted(d.sql(new_blob)), d, new_blob, now);
            }
            if let Some((blob, data)) = new_blob.and_then(|b| b.inline.as_ref().map(|v| (b, v))) {
                w = bind_blob_data!(w.stmt(INSERT_BLOB_DATA_SQL), blob, data);
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
                    w = bind_delta!(w.counted(d.sql(None)), d, None, now);
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

/// The committer's connection: read-write, on the blocking pool, one batch at a time.
pub(super) struct Writer {
    conn: Mutex<Connection>,
}

impl Writer {
    /// Opens the database file at `path`, which sqlx's writer has created and migrated.
    pub(super) fn open(path: &Path) -> MetaResult<Writer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = Connection::open_with_flags(path, flags)?;
        c.busy_timeout(BUSY)?;
        // As sqlx's writer (`SqliteMeta::connect`): the WAL is synced by `WalSync` before any
        // commit is acknowledged, and every insert's foreign keys are checked.
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.pragma_update(None, "foreign_keys", true)?;
        c.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(Writer {
            conn: Mutex::new(c),
        })
    }

    /// `f` on the connection, on tokio's blocking pool.
    async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> MetaResult<R> + Send + 'static,
    ) -> MetaResult<R> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            // A panic cannot leave the connection inside a statement (rusqlite resets
            // statements on drop); an open transaction is rolled back by the next `begin`.
            let c = me.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&c)
        })
        .await
        .map_err(|e| MetaError::Invariant(format!("the committer's transaction panicked: {e}")))?
    }
}

/// Write statements with their values, run in order on the committer's connection. Built by
/// the same `bind_*!` macros as PostgreSQL's statement-at-a-time path, so the two cannot drift.
#[derive(Default)]
pub(super) struct Script {
    stmts: Vec<Stmt>,
    /// A value that could not be converted (reported when the script runs).
    error: Option<String>,
}

struct Stmt {
    sql: &'static str,
    /// The values of `$1…$n`, in order.
    args: Vec<Value>,
    /// A reference-count change: its one row is the blob's new count (`check_counts`).
    counted: bool,
}

impl Script {
    /// Appends a statement written with parameters `$1…$k`; bind its `k` values next, in order.
    pub(super) fn stmt(self, sql: &'static str) -> Script {
        self.push(sql, false)
    }

    /// Appends a reference-count statement, whose row (`RETURNING ref_count`) is checked.
    pub(super) fn counted(self, sql: &'static str) -> Script {
        self.push(sql, true)
    }

    fn push(mut self, sql: &'static str, counted: bool) -> Script {
        self.stmts.push(Stmt {
            sql,
            args: Vec::new(),
            counted,
        });
        self
    }

    pub(super) fn bind<T: ToSql>(mut self, v: T) -> Script {
        let value = match v.to_sql() {
            Ok(ToSqlOutput::Borrowed(r)) => Value::try_from(r).map_err(|e| e.to_string()),
            Ok(ToSqlOutput::Owned(v)) => Ok(v),
            Ok(other) => Err(format!("unsupported value {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        match (value, self.stmts.last_mut()) {
            (Ok(v), Some(s)) => s.args.push(v),
            (Err(e), _) => {
                self.error.get_or_insert(e);
            }
            (Ok(_), None) => {
                self.error
                    .get_or_insert("a value bound before any statement".into());
            }
        }
        self
    }

    /// Runs the statements in order; returns each counted statement's count (`None`: no row).
    fn run(self, c: &Connection) -> MetaResult<Vec<Option<i64>>> {
        if let Some(e) = self.error {
            return Err(MetaError::Invariant(format!("unencodable argument: {e}")));
        }
        let mut counts = Vec::new();
        for s in &self.stmts {
            let mut stmt = c.prepare_cached(s.sql)?;
            for i in 1..=stmt.parameter_count() {
                let n = stmt
                    .parameter_name(i)
                    .and_then(|name| name.strip_prefix('$'))
                    .and_then(|n| n.parse::<usize>().ok());
                let Some(v) = n.and_then(|n| s.args.get(n.wrapping_sub(1))) else {
                    return Err(MetaError::Invariant(format!(
                        "parameter {i} of {:?} has no value",
                        s.sql
                    )));
                };
                stmt.raw_bind_parameter(i, v)?;
            }
            let mut rows = stmt.raw_query();
            let first: Option<i64> = match rows.next()? {
                Some(r) if s.counted => Some(r.get(0)?),
                _ => None,
            };
            // Step to the end, so that the statement has run to completion.
            while rows.next()?.is_some() {}
            if s.counted {
                counts.push(first);
            }
        }
        Ok(counts)
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
        let writer = Writer::open(&dir.path().join("meta.db")).expect("writer");
        let failing = Committer::start(meta.write.clone(), writer, broken);
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

    /// A batch whose writes fail (here: a released blob has no row, a broken invariant) is
    /// rolled back whole: the object it demoted is still current, and the committer's
    /// connection commits the next batch.
    #[tokio::test]
    async fn a_failed_batch_leaves_no_trace() {
        let (_dir, meta) = super::super::test_sqlite().await;
        let tenant = meta.create_tenant("one").await.expect("tenant");
        let bucket = meta.create_bucket(&tenant, "b").await.expect("bucket");
        let blob = crate::meta::Segment {
            tier: crate::blobs::Tier::Hot,
            hash: "cd".repeat(32),
            size: 3,
            inline: Some(bytes::Bytes::from_static(b"abc")),
        };
        let c = super::super::test_put(&bucket.id, "a", Some(blob), WriteCondition::None);
        let op = Op::Put {
            commit: Box::new(c),
            place: None,
        };
        meta.committer.commit(op).await.expect("a commit");
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&meta.write)
            .await
            .expect("pragma");
        sqlx::query("DELETE FROM blobs")
            .execute(&meta.write)
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
        // At once: a transaction left open would hold the write lock against sqlx's writer.
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            meta.create_bucket(&tenant, "c"),
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
