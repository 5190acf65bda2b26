//! SQLite's hot reads — HEAD's and GET's lookups, listing pages — through connections of our
//! own (rusqlite), on the calling thread, instead of through sqlx.
//!
//! Why: sqlx-sqlite runs each connection on a thread of its own. A query is a message to that
//! thread and its rows a message back, each a futex wake-up and a context switch, and the
//! lookups also went through a batching task (`lookup`) to share them. With the benchmark's SDK
//! client at c32, more than half of the server's HEAD samples were in the kernel's scheduler
//! and futexes, and a HEAD cost the server twice the CPU it cost under the lean client.
//!
//! A lookup is a few index probes in pages the OS caches, tens of microseconds, about what
//! checking a SigV4 signature costs, so it runs on the request's own worker thread. A listing
//! page (up to 1,000 rows, about half a millisecond) runs on tokio's blocking pool, so that a
//! long page does not hold up the requests queued behind it on a worker.
//!
//! WAL mode: a reader sees the last commit before its statement began and never waits for the
//! writer (sqlx's one write connection, or the group committer's, `batch`), nor the writer
//! for it.
//!
//! Only reads come here; every write goes through sqlx's writer or the group committer. Colder reads (access keys, upload
//! and part listings, the workers' scans) stay on sqlx's read pool.

use super::decode::{self, Found, Lookup, RowSource};
use super::{OBJECT_COLS, READER_CACHE_KIB, SEGMENT_COLS, SEGMENT_JOIN, page_sql, walk_sql};
use crate::meta::{ListEntry, MetaError, MetaResult, Rollup};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// Connections for the listings, whose threads (the blocking pool's) wait for one when all are
/// taken. The lookups have connections of their own, one per core (a runtime worker's thread
/// holds one only while its statement runs), so a lookup never waits on the reactor for a
/// listing page to finish.
const LISTING_CONNECTIONS: usize = 2;
/// Prepared statements kept per connection: the lookup, four page and two walk statements.
const STATEMENTS: usize = 16;
/// A WAL reader waits only while another connection recovers the WAL index, which takes
/// milliseconds; past this, the request fails as unavailable rather than hold a thread.
const BUSY: Duration = Duration::from_secs(5);

/// A key's current version with its segments, and its bucket, by tenant and bucket name: no
/// row when there is no such bucket, else one per segment (the object's columns NULL when there
/// is no current version; `?3` NULL finds only the bucket). The columns are `decode::found_of`'s.
const FIND_SQL: &str = const_format::concatcp!(
    "SELECT k.id AS k_id, k.created_at AS k_created_at, ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    ", ",
    inline_data_col!("?4"),
    " FROM buckets k \
     LEFT JOIN objects o ON o.bucket_id = k.id AND o.key = ?3 AND o.is_latest ",
    SEGMENT_JOIN,
    " WHERE k.tenant_id = ?1 AND k.name = ?2 ORDER BY s.seq"
);

pub(in crate::meta) struct Readers {
    lookups: Pool,
    listings: Pool,
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
            lookups: Pool::open(path, cores)?,
            listings: Pool::open(path, LISTING_CONNECTIONS)?,
        })
    }

    /// The lookup's bucket and, with a key, that key's current version.
    pub fn find(&self, l: &Lookup) -> MetaResult<Found> {
        self.lookups.with(|c| {
            let mut stmt = c.prepare_cached(FIND_SQL)?;
            let params = rusqlite::params![l.tenant, l.bucket, l.key, l.inline];
            decode::found_of(l, &mut decode::Named::query(&mut stmt, params)?)
        })
    }

    /// `MetaStore::list_page`, on the blocking pool.
    pub async fn list_page(
        self: &Arc<Self>,
        bucket_id: &str,
        start: &str,
        start_inclusive: bool,
        before: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        let (bucket_id, start) = (bucket_id.to_owned(), start.to_owned());
        let before = before.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |c| {
            let sql = page_sql(start_inclusive, before.is_some());
            let mut params: Vec<(&str, &dyn ToSql)> =
                vec![("$1", &bucket_id), ("$2", &start), ("$3", &limit)];
            if let Some(b) = &before {
                params.push(("$4", b));
            }
            entries(c, sql, &params)
        })
        .await
    }

    /// `MetaStore::list_walk`, on the blocking pool.
    pub async fn list_walk(
        self: &Arc<Self>,
        bucket_id: &str,
        start: &str,
        start_inclusive: bool,
        before: Option<&str>,
        roll: Rollup<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        let owned = |s: &str| s.to_owned();
        let (bucket_id, start, before) = (owned(bucket_id), owned(start), before.map(owned));
        let (prefix, delimiter) = (owned(roll.prefix), owned(roll.delimiter));
        let resume = roll.resume_char();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |c| {
            let sql = walk_sql(false, before.is_some());
            let mut params: Vec<(&str, &dyn ToSql)> = vec![
                ("$1", &bucket_id),
                ("$2", &start),
                ("$3", &start_inclusive),
                ("$4", &prefix),
                ("$5", &delimiter),
                ("$6", &resume),
                ("$7", &limit),
            ];
            if let Some(b) = &before {
                params.push(("$8", b));
            }
            entries(c, sql, &params)
        })
        .await
    }

    /// `f` on a connection, on tokio's blocking pool.
    async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> MetaResult<R> + Send + 'static,
    ) -> MetaResult<R> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.listings.with(f))
            .await
            .map_err(|e| MetaError::Invariant(format!("a listing's read panicked: {e}")))?
    }
}

impl Pool {
    /// `n` read-only connections to the database file at `path`.
    fn open(path: &Path, n: usize) -> MetaResult<Pool> {
        let conns = (0..n)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = Connection::open_with_flags(path, flags)?;
                c.busy_timeout(BUSY)?;
                c.pragma_update(None, "cache_size", format!("-{READER_CACHE_KIB}"))?;
                c.set_prepared_statement_cache_capacity(STATEMENTS);
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

/// A listing statement's rows (`decode::list_entry_of`'s columns), in key order.
fn entries(c: &Connection, sql: &str, params: &[(&str, &dyn ToSql)]) -> MetaResult<Vec<ListEntry>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = decode::Named::query(&mut stmt, params)?;
    let mut page = Vec::new();
    while let Some(r) = rows.next_row()? {
        page.push(decode::list_entry_of(&r)?);
    }
    // The walk joins its keys' rows at the end without an ORDER BY: SQLite reads them in the
    // walk's order, but SQL does not promise that, so the order is checked here (one pass)
    // rather than asked of SQLite, which would sort in a temporary B-tree what came sorted.
    if !page.is_sorted_by(|a, b| a.key <= b.key) {
        page.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(page)
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

    /// A page whose rows SQLite handed over out of order still comes back in key (byte) order.
    #[test]
    fn a_page_comes_back_in_key_order() {
        let c = Connection::open_in_memory().expect("database");
        let sql = "SELECT column1 AS key, column2 AS size, column3 AS etag, \
            column4 AS storage_class, column5 AS created_at FROM (VALUES \
            ('b', 1, 'e1', 'STANDARD', 5), ('a/', 0, NULL, 'STANDARD', 0), \
            ('a', 2, 'e2', 'STANDARD', 7), ('é', 3, 'e3', 'STANDARD', 9))";
        let page = entries(&c, sql, &[]).expect("page");
        let keys: Vec<&str> = page.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "a/", "b", "é"]);
        assert_eq!((page[0].size, page[0].etag.as_str()), (2, "e2"));
        assert_eq!(page[1].etag, "", "a prefix has no ETag");
    }

    /// Columns are found by name whatever order they are asked in, in any case, and a missing
    /// name is an error, not a neighbouring column.
    #[test]
    fn named_rows_find_columns_in_any_order() {
        use crate::meta::sql::decode::{Cols, Named};
        let c = Connection::open_in_memory().expect("database");
        let mut stmt = c
            .prepare("SELECT 1 AS a, 'two' AS b, 3 AS c UNION ALL SELECT 4, 'five', 6")
            .expect("prepare");
        let mut rows = Named::query(&mut stmt, []).expect("query");
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
    async fn lookups_do_not_wait_for_listings() {
        let (_dir, meta) = super::super::test_sqlite().await;
        let tenant = meta.create_tenant("one").await.expect("tenant");
        meta.create_bucket(&tenant, "b").await.expect("bucket");
        let held: Vec<_> = (meta.direct.listings.conns.iter())
            .map(|c| c.lock().expect("listing connection"))
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let direct = meta.direct.clone();
        std::thread::spawn(move || {
            let _ = tx.send(
                direct
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
        let (_dir, meta) = super::super::test_sqlite().await;
        let (t1, t2) = (
            meta.create_tenant("one").await.expect("tenant"),
            meta.create_tenant("two").await.expect("tenant"),
        );
        let b1 = meta.create_bucket(&t1, "b").await.expect("bucket");
        meta.create_bucket(&t2, "b").await.expect("bucket");
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
            let c = super::super::test_put(&b1.id, key, blob, WriteCondition::None);
            meta.commit_put(&c, None).await.expect("put");
        }
        let find = |l: Lookup| meta.direct.find(&l).expect("lookup");
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
