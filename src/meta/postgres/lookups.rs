//! PostgreSQL's point lookups (a key's current version for HEAD and GET, a bucket by name),
//! batched: lookups that arrive together share one query. A batch forms only under load
//! (`batcher`).
//!
//! Why: every statement costs the backend a wake-up, a transaction, executor
//! start-up and the protocol, and on two cores that work, not the index probes, was the price of
//! a lookup (pgbench, HEAD's query, 10,000 keys: one key per statement 28-30k keys/s; this query
//! with sixteen keys 7.3-8.8k statements/s, i.e. 117-140k keys/s).

use super::batcher::Batcher;
use super::unpooled::Unpooled;
use crate::meta::rows::{self, Found, Lookup};
use crate::meta::statements::{OBJECT_COLS, SEGMENT_COLS, SEGMENT_JOIN, inline_data_col};
use crate::meta::{MetaError, MetaResult};
use std::sync::Arc;

/// Lookups per query, at most.
const MAX_LOOKUP_BATCH: usize = 64;
/// Batch queries running at once. One: a batch takes a round trip, so one query in flight never
/// starves the lookups, and everything that arrives meanwhile forms the next batch; two let
/// most lookups run alone or in pairs. Measured with the benchmark's SDK client at c32,
/// alternated: PostgreSQL HEAD 7.6-9.2k -> 9.1-10.4k/s, lean-client HEAD 22.5-24.7k -> 27.2-27.4k/s.
const LOOKUPS_IN_FLIGHT: usize = 1;

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
const BATCH_SQL: &str = const_format::concatcp!(
    "SELECT q.i, k.id AS k_id, k.created_at AS k_created_at, k.versioning AS k_versioning, \
        k.object_lock AS k_object_lock, x.* \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) \
        WITH ORDINALITY AS q(tenant, bucket, key, inline, i) \
     LEFT JOIN LATERAL (SELECT k.id, k.created_at, k.versioning, k.object_lock FROM buckets k \
        WHERE k.tenant_id = q.tenant AND k.name = q.bucket OFFSET 0) k ON TRUE \
     LEFT JOIN LATERAL (SELECT ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    ", s.seq, ",
    inline_data_col!("q.inline"),
    " FROM objects o ",
    SEGMENT_JOIN,
    " WHERE o.bucket_id = k.id AND o.key = q.key AND o.is_latest OFFSET 0) x ON TRUE \
     ORDER BY q.i, x.seq"
);

/// The handle: its dispatcher task ends when the handle is dropped.
pub(in crate::meta) struct Lookups {
    batcher: Batcher<Lookup, Found>,
}

impl Lookups {
    pub fn start(conns: Arc<Unpooled>) -> Lookups {
        let call = move |batch: Vec<Lookup>| {
            let conns = conns.clone();
            async move {
                let found = query(&conns, &batch).await;
                (batch, found)
            }
        };
        Lookups {
            batcher: Batcher::start(LOOKUPS_IN_FLIGHT, MAX_LOOKUP_BATCH, call),
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
async fn query(conns: &Unpooled, batch: &[Lookup]) -> MetaResult<Vec<Found>> {
    let tenants: Vec<&str> = batch.iter().map(|l| l.tenant.as_str()).collect();
    let buckets: Vec<&str> = batch.iter().map(|l| l.bucket.as_str()).collect();
    let keys: Vec<Option<&str>> = batch.iter().map(|l| l.key.as_deref()).collect();
    let inline: Vec<bool> = batch.iter().map(|l| l.inline).collect();
    let mut conn = conns.get().await?;
    let rows = sqlx::query(BATCH_SQL)
        .bind(tenants)
        .bind(buckets)
        .bind(keys)
        .bind(inline)
        .fetch_all(conn.conn())
        .await
        .map_err(MetaError::from);
    conn.done(&rows);
    rows::founds_of(batch, &rows?)
}
