//! Point lookups (a key's current version for HEAD and GET, a bucket by name), batched:
//! lookups that arrive together share one query. A batch forms only under load (`batcher`).
//!
//! Why, on PostgreSQL: every statement costs the backend a wake-up, a transaction, executor
//! start-up and the protocol, and on two cores that work, not the index probes, was the price of
//! a lookup (pgbench, HEAD's query, 10,000 keys: one key per statement 28-30k keys/s; this query
//! with sixteen keys 7.3-8.8k statements/s, i.e. 117-140k keys/s).
//!
//! Why, on SQLite: a query is a hand-off to the connection's thread and its rows a hand-off
//! back, each a thread wake-up; with 32 HEADs in flight, context switches were the largest
//! item of the server's profile (a third of its samples), above SQLite itself.

use super::batcher::Batcher;
use super::hot::Hot;
use super::{OBJECT_COLS, SEGMENT_COLS, SEGMENT_JOIN};
use crate::meta::{BucketRow, MetaResult, ObjectRow, PgMeta, SqliteMeta};
use std::future::Future;
use std::sync::Arc;

/// Lookups per query, at most.
const MAX_BATCH: usize = 64;
/// Batch queries running at once. One: a batch takes tens of microseconds on SQLite's
/// connection thread and a round trip on PostgreSQL, so one query in flight never starves the
/// lookups, and everything that arrives meanwhile forms the next batch; two let most lookups run
/// alone or in pairs. Measured with the benchmark's SDK client at c32, alternated: SQLite HEAD
/// 6.5-8.4k -> 8.3-9.7k/s and GET 5.9-7.9k -> 7.3-11.7k/s, the server's CPU per HEAD a third
/// lower; PostgreSQL HEAD 7.6-9.2k -> 9.1-10.4k/s, lean-client HEAD 22.5-24.7k -> 27.2-27.4k/s.
const IN_FLIGHT: usize = 1;

/// One query for a batch: `i` is the lookup's position (from 1). A lookup without a key finds
/// only its bucket; with a key, also the key's current version and its segments, in order (one
/// row per segment; one row with NULL segment columns for an empty object; one row with NULL
/// object columns when there is no version, and NULL bucket columns when there is no bucket).
/// `inline_data` is read only where asked (on PostgreSQL an inline body is a TOAST fetch).
///
/// Each lookup is a LATERAL subquery fenced by `OFFSET 0`, so it is planned as the single-key
/// query is: with bucket and key as index conditions whatever the statistics say. Joined
/// plainly, a table never analyzed (autovacuum off, or a young deployment) had the planner
/// scan a whole bucket per lookup and filter the key (88 ms for 16 lookups of 10,000 keys).
const PG_BATCH_SQL: &str = const_format::concatcp!(
    "SELECT q.i, k.id AS k_id, k.created_at AS k_created_at, x.* \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) \
        WITH ORDINALITY AS q(tenant, bucket, key, inline, i) \
     LEFT JOIN LATERAL (SELECT k.id, k.created_at FROM buckets k \
        WHERE k.tenant_id = q.tenant AND k.name = q.bucket OFFSET 0) k ON TRUE \
     LEFT JOIN LATERAL (SELECT ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    ", s.seq, CASE WHEN q.inline THEN b.data END AS inline_data FROM objects o ",
    SEGMENT_JOIN,
    " WHERE o.bucket_id = k.id AND o.key = q.key AND o.is_latest OFFSET 0) x ON TRUE \
     ORDER BY q.i, x.seq"
);

/// `PG_BATCH_SQL` for SQLite, the lookups given as one JSON array of `[tenant, bucket, key or
/// null, inline]`. SQLite plans the joins as index searches (`buckets` by tenant and name,
/// `objects_latest`, the segments' and blobs' keys) whatever its statistics.
const SQLITE_BATCH_SQL: &str = const_format::concatcp!(
    "SELECT q.key + 1 AS i, k.id AS k_id, k.created_at AS k_created_at, ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    ", s.seq, CASE WHEN q.value ->> 3 THEN b.data END AS inline_data \
     FROM json_each($1) q \
     LEFT JOIN buckets k ON k.tenant_id = q.value ->> 0 AND k.name = q.value ->> 1 \
     LEFT JOIN objects o ON o.bucket_id = k.id AND o.key = q.value ->> 2 AND o.is_latest ",
    SEGMENT_JOIN,
    " ORDER BY q.key, s.seq"
);

pub(in crate::meta) struct Lookup {
    pub tenant: String,
    pub bucket: String,
    pub key: Option<String>,
    pub inline: bool,
}

/// What a lookup found.
pub(in crate::meta) struct Found {
    pub bucket: Option<BucketRow>,
    /// Always `None` for a lookup without a key, or without a bucket.
    pub object: Option<ObjectRow>,
}

/// The handle: its dispatcher task ends when the handle is dropped.
pub(in crate::meta) struct Lookups {
    batcher: Batcher<Lookup, Found>,
}

impl Lookups {
    pub fn postgres(hot: Arc<Hot>) -> Lookups {
        Self::start(move |batch| {
            let hot = hot.clone();
            async move {
                let found = pg_query(&hot, &batch).await;
                (batch, found)
            }
        })
    }

    pub fn sqlite(read: sqlx::SqlitePool) -> Lookups {
        Self::start(move |batch| {
            let read = read.clone();
            async move {
                let found = sqlite_query(&read, &batch).await;
                (batch, found)
            }
        })
    }

    fn start<F, Fut>(call: F) -> Lookups
    where
        F: Fn(Vec<Lookup>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Vec<Lookup>, MetaResult<Vec<Found>>)> + Send + 'static,
    {
        Lookups {
            batcher: Batcher::start(IN_FLIGHT, MAX_BATCH, call),
        }
    }

    /// The tenant's bucket `bucket` and, with `key`, that key's current version (with the
    /// bytes of inline blobs when `inline`).
    pub async fn find(
        &self,
        tenant: &str,
        bucket: &str,
        key: Option<&str>,
        inline: bool,
    ) -> MetaResult<Found> {
        let lookup = Lookup {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            key: key.map(str::to_owned),
            inline,
        };
        self.batcher.submit(lookup).await
    }
}

/// One `Found` per lookup, in order.
async fn pg_query(hot: &Hot, batch: &[Lookup]) -> MetaResult<Vec<Found>> {
    let tenants: Vec<&str> = batch.iter().map(|l| l.tenant.as_str()).collect();
    let buckets: Vec<&str> = batch.iter().map(|l| l.bucket.as_str()).collect();
    let keys: Vec<Option<&str>> = batch.iter().map(|l| l.key.as_deref()).collect();
    let inline: Vec<bool> = batch.iter().map(|l| l.inline).collect();
    let mut conn = hot.get().await?;
    let rows = sqlx::query(PG_BATCH_SQL)
        .bind(tenants)
        .bind(buckets)
        .bind(keys)
        .bind(inline)
        .fetch_all(conn.conn())
        .await;
    conn.done(&rows);
    PgMeta::founds_of(batch, &rows?)
}

/// One `Found` per lookup, in order.
async fn sqlite_query(read: &sqlx::SqlitePool, batch: &[Lookup]) -> MetaResult<Vec<Found>> {
    let lookups: Vec<serde_json::Value> = batch
        .iter()
        .map(|l| serde_json::json!([l.tenant, l.bucket, l.key, l.inline]))
        .collect();
    let rows = sqlx::query(SQLITE_BATCH_SQL)
        .bind(serde_json::Value::Array(lookups).to_string())
        .fetch_all(read)
        .await?;
    SqliteMeta::founds_of(batch, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::Tier;
    use crate::meta::{MetaStore, PutCommit, Segment, WriteCondition};

    fn lookup(tenant: &str, bucket: &str, key: Option<&str>, inline: bool) -> Lookup {
        Lookup {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            key: key.map(str::to_owned),
            inline,
        }
    }

    /// One SQLite query answers every lookup of a batch on its own: a missing bucket, another
    /// tenant's bucket of the same name, a missing key, a bucket alone, an empty object, and an
    /// inline body with and without its bytes, in the batch's order.
    #[tokio::test]
    async fn a_sqlite_batch_answers_each_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("meta.db").display());
        let meta = SqliteMeta::connect(&url).await.expect("open");
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
            let c = PutCommit {
                object_id: uuid::Uuid::now_v7().to_string(),
                bucket_id: b1.id.clone(),
                key: key.to_owned(),
                size: blob.as_ref().map_or(0, |s| s.size),
                etag: format!("etag-{key}"),
                headers: Default::default(),
                storage_class: "STANDARD".into(),
                blob,
                condition: WriteCondition::None,
                checksum: None,
            };
            meta.commit_put(&c, None).await.expect("put");
        }
        let batch = [
            lookup(&t1, "nope", Some("small"), true),
            lookup(&t1, "b", Some("small"), true),
            lookup(&t2, "b", Some("small"), true),
            lookup(&t1, "b", Some("absent"), false),
            lookup(&t1, "b", None, false),
            lookup(&t1, "b", Some("empty"), true),
            lookup(&t1, "b", Some("small"), false),
        ];
        let found = sqlite_query(&meta.read, &batch).await.expect("query");
        assert_eq!(found.len(), batch.len());
        let bucket_of = |f: &Found| f.bucket.as_ref().map(|b| b.id.clone());
        let etag_of = |f: &Found| f.object.as_ref().map(|o| o.etag.clone());
        assert_eq!(bucket_of(&found[0]), None, "a missing bucket");
        assert_eq!(bucket_of(&found[1]).as_ref(), Some(&b1.id));
        let small = found[1].object.as_ref().expect("small is found");
        assert_eq!(small.etag, "etag-small");
        assert_eq!(small.segments.len(), 1);
        assert_eq!(
            small.segments[0].inline.as_ref(),
            Some(&body),
            "with its bytes"
        );
        assert!(
            bucket_of(&found[2]).is_some_and(|id| id != b1.id),
            "tenant two's own bucket"
        );
        assert_eq!(etag_of(&found[2]), None, "tenant two has no such key");
        assert_eq!(bucket_of(&found[3]).as_ref(), Some(&b1.id));
        assert_eq!(etag_of(&found[3]), None, "a missing key");
        assert_eq!(bucket_of(&found[4]).as_ref(), Some(&b1.id));
        assert_eq!(etag_of(&found[4]), None, "a bucket alone");
        let empty = found[5].object.as_ref().expect("empty is found");
        assert_eq!((empty.size, empty.segments.len()), (0, 0));
        let bare = found[6].object.as_ref().expect("small again");
        assert_eq!(bare.segments[0].inline, None, "without its bytes");
        assert_eq!(bare.segments[0].size, body.len() as u64);
    }
}
