//! SQLite's reads, on read-only connections of their own.
//!
//! A point read (HEAD's and GET's lookup, an access key, an ACL) is a few index probes in pages
//! the OS caches, tens of microseconds, about what checking a SigV4 signature costs, so it runs
//! on the request's own worker thread (`point`): a hand-off to another thread costs a futex
//! wake-up and a context switch each way. A scan (a listing page of up to 1,000 rows, about
//! half a millisecond; the workers' scans) runs on tokio's blocking pool (`scan`), so that it
//! does not hold up the requests queued behind it on a worker.
//!
//! WAL mode: a reader sees the last commit before its statement began and never waits for the
//! writer, nor the writer for it.

use super::conn;
use crate::meta::rows::{self, Found, Lookup};
use crate::meta::statements::{OBJECT_COLS, SEGMENT_COLS, SEGMENT_JOIN, inline_data_col, page_sql};
use crate::meta::{KeyRange, ListEntry, MetaError, MetaResult, Rollup};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// Connections for the scans, whose threads (the blocking pool's) wait for one when all are
/// taken. The point reads have connections of their own, one per core (a runtime worker's
/// thread holds one only while its statement runs), so a point read never waits on the reactor
/// for a listing page to finish.
const SCAN_CONNECTIONS: usize = 2;
/// Prepared statements kept per connection.
const READER_STATEMENTS: usize = 32;
/// A WAL reader waits only while another connection recovers the WAL index, which takes
/// milliseconds; past this, the request fails as unavailable rather than hold a thread.
const READER_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of each connection, in KiB (SQLite's default is 2,000). A HEAD's or GET's lookup
/// touches a leaf of six B-trees; with 512 KiB, 10,000 objects read at random already evicted
/// the interior pages, and every lookup read ~20 pages back from the OS (GET at 0.7 of this
/// figure's throughput in the benchmark's lean client step); 4 MiB still lost a tenth of it
/// there. Pages are allocated as touched: four connections hold at most 32 MiB.
const READER_CACHE_KIB: u32 = 8192;

/// A key's current version with its segments, and its bucket, by tenant and bucket name: no
/// row when there is no such bucket, else one per segment (the object's columns NULL when there
/// is no current version; `$3` NULL finds only the bucket). The columns are `rows::found_of`'s.
const FIND_SQL: &str = const_format::concatcp!(
    "SELECT k.id AS k_id, k.created_at AS k_created_at, k.versioning AS k_versioning, \
     k.object_lock AS k_object_lock, ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    ", ",
    inline_data_col!("$4"),
    " FROM buckets k \
     LEFT JOIN objects o ON o.bucket_id = k.id AND o.key = $3 AND o.is_latest ",
    SEGMENT_JOIN,
    " WHERE k.tenant_id = $1 AND k.name = $2 ORDER BY s.seq"
);

pub(super) struct Readers {
    points: Pool,
    scans: Pool,
}

/// Connections, each used by one thread at a time.
struct Pool {
    conns: Box<[Mutex<Connection>]>,
    /// Where the next caller starts looking for a free connection.
    next: AtomicUsize,
}

impl Readers {
    /// Read-only connections to the database file at `path`, which must exist (the writer
    /// creates it and runs the migrations first).
    pub fn open(path: &Path) -> MetaResult<Readers> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(16));
        Ok(Readers {
            points: Pool::open(path, cores)?,
            scans: Pool::open(path, SCAN_CONNECTIONS)?,
        })
    }

    /// `f` on a connection, on this thread: for reads of a few index probes.
    pub fn point<R>(&self, f: impl FnOnce(&Connection) -> MetaResult<R>) -> MetaResult<R> {
        self.points.with(f)
    }

    /// `f` on a connection, on tokio's blocking pool: for reads of many rows.
    pub async fn scan<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> MetaResult<R> + Send + 'static,
    ) -> MetaResult<R> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.scans.with(f))
            .await
            .map_err(|e| MetaError::Invariant(format!("a read panicked: {e}")))?
    }

    /// The lookup's bucket and, with a key, that key's current version.
    pub fn find(&self, l: &Lookup) -> MetaResult<Found> {
        self.point(|c| find_on(c, l))
    }

    /// `MetaStore::list_page`, on the blocking pool.
    pub async fn list_page(
        self: &Arc<Self>,
        range: KeyRange<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        let (range, limit) = (Range::of(range), rows::to_i64(limit));
        self.scan(move |c| entries(c, &range, limit)).await
    }

    /// `MetaStore::list_walk`, on the blocking pool.
    pub async fn list_walk(
        self: &Arc<Self>,
        range: KeyRange<'_>,
        roll: Rollup<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        let range = Range::of(range);
        let (prefix, delimiter) = (roll.prefix.to_owned(), roll.delimiter.to_owned());
        self.scan(move |c| {
            let roll = Rollup {
                prefix: &prefix,
                delimiter: &delimiter,
            };
            walk(c, range, roll, limit)
        })
        .await
    }
}

impl Pool {
    /// `n` read-only connections to the database file at `path`.
    fn open(path: &Path, n: usize) -> MetaResult<Pool> {
        let conns = (0..n)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = Connection::open_with_flags(path, flags)?;
                c.busy_timeout(READER_BUSY_TIMEOUT)?;
                c.pragma_update(None, "cache_size", format!("-{READER_CACHE_KIB}"))?;
                c.set_prepared_statement_cache_capacity(READER_STATEMENTS);
                Ok(Mutex::new(c))
            })
            .collect::<MetaResult<Vec<_>>>()?;
        Ok(Pool {
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` on a free connection (or, when all are taken, waits for one).
    fn with<R>(&self, f: impl FnOnce(&Connection) -> MetaResult<R>) -> MetaResult<R> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            // A panic cannot leave a connection inside a statement (rusqlite resets statements
            // on drop), so a poisoned lock is still a usable connection.
            let c: MutexGuard<'_, Connection> = match self.conns[(start + i) % n].try_lock() {
                Ok(c) => c,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            return f(&c);
        }
        let c = self.conns[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&c)
    }
}

/// `Readers::find` on connection `c`: also the group committer's read of a DELETE, inside its
/// write transaction (`committer`).
pub(super) fn find_on(c: &Connection, l: &Lookup) -> MetaResult<Found> {
    let mut stmt = c.prepare_cached(FIND_SQL)?;
    let args: [&dyn ToSql; 4] = [&l.tenant, &l.bucket, &l.key, &l.inline];
    rows::found_of(l, &mut rows::Named::bound(&mut stmt, &args)?)
}

/// A `KeyRange` for a thread of the blocking pool; a walk moves its start.
struct Range {
    bucket_id: String,
    start: String,
    inclusive: bool,
    before: Option<String>,
}

impl Range {
    fn of(r: KeyRange<'_>) -> Range {
        Range {
            bucket_id: r.bucket_id.to_owned(),
            start: r.start.to_owned(),
            inclusive: r.start_inclusive,
            before: r.before.map(str::to_owned),
        }
    }
}

/// `list_walk` as a loop of one-row seeks (`page_sql`, LIMIT 1), each from the previous
/// common prefix's successor. In-process, a seek is a cached statement's reset, bind and step:
/// a few microseconds, where PostgreSQL's recursive statement (`walk_sql`) cost SQLite ~25 µs a
/// step in string functions and its work table. Bounded by `limit` seeks.
fn walk(
    c: &Connection,
    mut from: Range,
    roll: Rollup<'_>,
    limit: usize,
) -> MetaResult<Vec<ListEntry>> {
    let resume = roll.resume_char();
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(mut e) = entries(c, &from, 1)?.pop() else {
            break;
        };
        let Some(cp) = roll.common_prefix(&e.key).map(str::to_owned) else {
            // The walk ends at a key that rolls up into no prefix.
            out.push(e);
            break;
        };
        // Past every key under `cp`: its last character (the delimiter's last) replaced by
        // the next one. Without one (U+10FFFF) the walk stops at this prefix.
        let next = resume.as_deref().map(|r| {
            let mut s = cp.clone();
            s.pop();
            s.push_str(r);
            s
        });
        assert!(
            next.as_deref().is_none_or(|n| n > cp.as_str()),
            "a walk only moves forward"
        );
        e.key = cp;
        out.push(e);
        let Some(n) = next else { break };
        from.start = n;
        from.inclusive = true;
    }
    Ok(out)
}

/// The first `limit` entries of `range` (`page_sql`), in key order.
fn entries(c: &Connection, range: &Range, limit: i64) -> MetaResult<Vec<ListEntry>> {
    let sql = page_sql(range.inclusive, range.before.is_some());
    let args: [&dyn ToSql; 4] = [&range.bucket_id, &range.start, &limit, &range.before];
    conn::rows(c, sql, &args, |r| rows::list_entry_of(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::Tier;
    use crate::meta::{MetaStore, Segment, WriteCondition};

    fn lookup(tenant: &str, bucket: &str, key: Option<&str>, inline: bool) -> Lookup {
        Lookup {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            key: key.map(str::to_owned),
            inline,
        }
    }

    /// A walk returns each common prefix once (with its first key's fields), past every key
    /// under it, and ends at the first key that rolls up into none, at its bound, at its limit,
    /// or at a prefix it cannot seek past (a delimiter ending in U+10FFFF).
    #[tokio::test]
    async fn a_walk_seeks_past_each_common_prefix() {
        let (_dir, meta) = super::super::tests::open().await;
        let tenant = meta.create_tenant("one").await.expect("tenant");
        let b = meta
            .create_bucket(&tenant, "b", false)
            .await
            .expect("bucket");
        let keys = [
            "a/1",
            "a/2",
            "a/3/x",
            "b/1",
            "c",
            "d/x",
            "d\u{10FFFF}x",
            "e",
        ];
        for key in keys {
            let c = super::super::tests::put(&b.id, key, None, WriteCondition::None);
            meta.commit_put(&c, None).await.expect("put");
        }
        let walk = |start: &str, inclusive, before: Option<&str>, delimiter: &str, limit| {
            let c = meta.readers.scans.conns[0].lock().expect("connection");
            let from = Range {
                bucket_id: b.id.clone(),
                start: start.to_owned(),
                inclusive,
                before: before.map(str::to_owned),
            };
            let roll = Rollup {
                prefix: "",
                delimiter,
            };
            let page = walk(&c, from, roll, limit).expect("walk");
            page.into_iter()
                .map(|e| (e.key, e.etag))
                .collect::<Vec<_>>()
        };
        let item = |k: &str, etag_of: &str| (k.to_owned(), format!("etag-{etag_of}"));
        assert_eq!(
            walk("", true, None, "/", 100),
            [item("a/", "a/1"), item("b/", "b/1"), item("c", "c")]
        );
        assert_eq!(
            walk("c", false, None, "/", 100),
            [item("d/", "d/x"), item("d\u{10FFFF}x", "d\u{10FFFF}x")]
        );
        assert_eq!(walk("a/", true, Some("b/"), "/", 100), [item("a/", "a/1")]);
        assert_eq!(walk("", true, None, "/", 1), [item("a/", "a/1")]);
        assert_eq!(
            walk("d/", false, None, "/", 100),
            [item("d/", "d/x"), item("d\u{10FFFF}x", "d\u{10FFFF}x")]
        );
        assert_eq!(
            walk("d0", true, None, "\u{10FFFF}", 100),
            [item("d\u{10FFFF}", "d\u{10FFFF}x")],
            "no successor: the walk stops at this prefix"
        );
        assert_eq!(walk("f", true, None, "/", 100), []);
    }

    /// Columns are found by name whatever order they are asked in, in any case, and a missing
    /// name is an error, not a neighbouring column.
    #[test]
    fn named_rows_find_columns_in_any_order() {
        use crate::meta::rows::{Cols, Named, RowSource};
        let c = Connection::open_in_memory().expect("database");
        let mut stmt = c
            .prepare("SELECT 1 AS a, 'two' AS b, 3 AS c UNION ALL SELECT 4, 'five', 6")
            .expect("prepare");
        let mut rows = Named::bound(&mut stmt, &[]).expect("query");
        let mut seen = Vec::new();
        while let Some(r) = rows.next_row().expect("row") {
            let c: i64 = r.get("c").expect("c");
            let a: i64 = r.get("A").expect("A");
            let b: String = r.get("b").expect("b");
            assert!(r.get::<i64>("d").is_err(), "no column d");
            let again: i64 = r.get("c").expect("c again");
            seen.push((a, b, c, again));
        }
        assert_eq!(
            seen,
            [(1, "two".to_owned(), 3, 3), (4, "five".to_owned(), 6, 6)]
        );
    }

    /// A lookup never waits for a listing: with every listing connection taken (listing
    /// threads mid-page), a lookup on a runtime worker still runs at once.
    #[tokio::test]
    async fn point_reads_do_not_wait_for_scans() {
        let (_dir, meta) = super::super::tests::open().await;
        let tenant = meta.create_tenant("one").await.expect("tenant");
        meta.create_bucket(&tenant, "b", false)
            .await
            .expect("bucket");
        let held: Vec<_> = (meta.readers.scans.conns.iter())
            .map(|c| c.lock().expect("listing connection"))
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let readers = meta.readers.clone();
        std::thread::spawn(move || {
            let _ = tx.send(
                readers
                    .find(&lookup(&tenant, "b", None, false))
                    .map(|f| f.bucket),
            );
        });
        let found = rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        let bucket = found.expect("the lookup waited for the listings' connections");
        assert!(bucket.expect("lookup").is_some(), "the bucket is found");
    }

    /// Each lookup is answered on its own: a missing bucket, another tenant's bucket of the
    /// same name, a missing key, a bucket alone, an empty object, and an inline body with and
    /// without its bytes.
    #[tokio::test]
    async fn each_lookup_finds_its_own_answer() {
        let (_dir, meta) = super::super::tests::open().await;
        let (t1, t2) = (
            meta.create_tenant("one").await.expect("tenant"),
            meta.create_tenant("two").await.expect("tenant"),
        );
        let b1 = meta.create_bucket(&t1, "b", false).await.expect("bucket");
        meta.create_bucket(&t2, "b", false).await.expect("bucket");
        let body = bytes::Bytes::from_static(b"inline body");
        for (key, blob) in [
            ("empty", None),
            (
                "small",
                Some(Segment {
                    tier: Tier::Hot,
                    hash: "ab".repeat(32),
                    size: body.len() as u64,
                    inline: Some(body.clone()),
                }),
            ),
        ] {
            let c = super::super::tests::put(&b1.id, key, blob, WriteCondition::None);
            meta.commit_put(&c, None).await.expect("put");
        }
        let find = |l: Lookup| meta.readers.find(&l).expect("lookup");
        let bucket_of = |f: &Found| f.bucket.as_ref().map(|b| b.id.clone());
        let etag_of = |f: &Found| f.object.as_ref().map(|o| o.etag.clone());

        let f = find(lookup(&t1, "nope", Some("small"), true));
        assert_eq!(bucket_of(&f), None, "a missing bucket");
        let f = find(lookup(&t1, "b", Some("small"), true));
        assert_eq!(bucket_of(&f).as_ref(), Some(&b1.id));
        let small = f.object.as_ref().expect("small is found");
        assert_eq!(small.etag, "etag-small");
        assert_eq!(small.segments.len(), 1);
        assert_eq!(
            small.segments[0].inline.as_ref(),
            Some(&body),
            "with its bytes"
        );
        let f = find(lookup(&t2, "b", Some("small"), true));
        assert!(
            bucket_of(&f).is_some_and(|id| id != b1.id),
            "tenant two's own bucket"
        );
        assert_eq!(etag_of(&f), None, "tenant two has no such key");
        let f = find(lookup(&t1, "b", Some("absent"), false));
        assert_eq!(bucket_of(&f).as_ref(), Some(&b1.id));
        assert_eq!(etag_of(&f), None, "a missing key");
        let f = find(lookup(&t1, "b", None, false));
        assert_eq!(bucket_of(&f).as_ref(), Some(&b1.id));
        assert_eq!(etag_of(&f), None, "a bucket alone");
        let f = find(lookup(&t1, "b", Some("empty"), true));
        let empty = f.object.as_ref().expect("empty is found");
        assert_eq!((empty.size, empty.segments.len()), (0, 0));
        let f = find(lookup(&t1, "b", Some("small"), false));
        let bare = f.object.as_ref().expect("small again");
        assert_eq!(bare.segments[0].inline, None, "without its bytes");
        assert_eq!(bare.segments[0].size, body.len() as u64);
    }
}
