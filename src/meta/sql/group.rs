//! PostgreSQL group commit: PUTs of inline bodies and DELETEs that queue up together are one
//! call of `js_commit_many` (migration 0010): one round trip, one transaction, one WAL flush
//! for the group, where each had cost the backend a statement's and a commit's overhead (two
//! fifths of its time per PUT in perf, beside the work of `js_commit_put` itself). Since
//! migration 0012 a group on distinct keys is also set-based inside the call: a handful of
//! statements for the whole group rather than five to seven per item.
//!
//! One group runs at a time (`IN_FLIGHT`), so groups never wait on each other's key or blob
//! locks. If a group's call fails (an item raised: a bucket deleted under a PUT, a broken
//! invariant, a deadlock that outlasted `DEADLOCK_TRIES`), every item runs again alone, so each
//! gets its own outcome and no item fails for another's sake.

use super::batcher::Batcher;
use super::hot::Hot;
use super::{headers_json, pg_commit_error, tags_json, to_i64};
use crate::blobs::Tier;
use crate::meta::{Checksum, MetaError, MetaResult, ObjectRow, Segment};
use std::sync::Arc;

/// Items per call, at most (a PUT's inline body is at most 16 KiB).
const MAX_GROUP: usize = 64;
const IN_FLIGHT: usize = 1;

const COMMIT_MANY_SQL: &str = "SELECT js_commit_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
    $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, \
    $29, $30)";

/// A PUT commit as `js_commit_put` takes it.
pub(super) struct Put {
    pub row: ObjectRow,
    pub bucket_id: String,
    pub tier: Tier,
    /// 0: none, 1: If-None-Match `*`, 2: If-Match (`cond_etag`: the ETag, `None` for `*`),
    /// 3: If-None-Match with an ETag (`cond_etag`; migration 0018).
    pub cond: i32,
    pub cond_etag: Option<String>,
    pub blob: Option<Segment>,
}

pub(super) enum Item {
    Put(Box<Put>),
    Delete {
        tenant_id: String,
        bucket: String,
        key: String,
    },
}

pub(super) struct Group {
    /// Answers are `js_commit_put`'s or `js_delete_key`'s outcomes.
    batcher: Batcher<Item, String>,
}

impl Group {
    pub fn start(hot: Arc<Hot>) -> Group {
        let batcher = Batcher::start(IN_FLIGHT, MAX_GROUP, move |items: Vec<Item>| {
            let hot = hot.clone();
            async move {
                // A deadlock victim runs again whole before its items are split up.
                let outcomes = super::retry_deadlocks(|| call(&hot, &items)).await;
                (items, outcomes)
            }
        });
        Group { batcher }
    }

    /// Commits `item` (with whatever else is queued) and returns its outcome once the group's
    /// transaction has committed.
    pub async fn commit(&self, item: Item) -> MetaResult<String> {
        self.batcher.submit(item).await
    }
}

/// One `js_commit_many` call; the outcomes in the items' order.
async fn call(hot: &Hot, items: &[Item]) -> MetaResult<Vec<String>> {
    let mut puts = PutColumns::default();
    let (mut d_tenant, mut d_bucket, mut d_key) = (Vec::new(), Vec::new(), Vec::new());
    for item in items {
        match item {
            Item::Put(p) => puts.push(p),
            Item::Delete {
                tenant_id,
                bucket,
                key,
            } => {
                d_tenant.push(tenant_id.as_str());
                d_bucket.push(bucket.as_str());
                d_key.push(key.as_str());
            }
        }
    }
    let n_puts = puts.id.len();
    let q = puts
        .bind(sqlx::query_scalar::<_, Vec<String>>(COMMIT_MANY_SQL))
        .bind(d_tenant)
        .bind(d_bucket)
        .bind(d_key)
        .bind(crate::now_micros());
    let mut conn = hot.get().await?;
    let out = q.fetch_one(conn.conn()).await;
    conn.done(&out);
    let out = out.map_err(pg_commit_error)?;
    if out.len() != items.len() {
        return Err(MetaError::Invariant(format!(
            "js_commit_many answered {} outcomes for {} items",
            out.len(),
            items.len()
        )));
    }
    // The function answers the PUTs first, then the DELETEs: back into the items' order.
    let (put_out, del_out) = out.split_at(n_puts);
    let (mut put_out, mut del_out) = (put_out.iter(), del_out.iter());
    Ok(items
        .iter()
        .filter_map(|item| match item {
            Item::Put(_) => put_out.next().cloned(),
            Item::Delete { .. } => del_out.next().cloned(),
        })
        .collect())
}

/// `js_commit_many`'s PUT arrays, one element per PUT, in parameter order (`$1`-`$26`; the
/// same values `bind_insert_object!` and `commit_put_tx` bind for one `js_commit_put`).
#[derive(Default)]
struct PutColumns {
    id: Vec<String>,
    bucket_id: Vec<String>,
    key: Vec<String>,
    size: Vec<i64>,
    etag: Vec<String>,
    content_type: Vec<Option<String>>,
    content_encoding: Vec<Option<String>>,
    content_disposition: Vec<Option<String>>,
    content_language: Vec<Option<String>>,
    cache_control: Vec<Option<String>>,
    expires: Vec<Option<String>>,
    user_meta: Vec<String>,
    storage_class: Vec<String>,
    tier: Vec<&'static str>,
    created_at: Vec<i64>,
    parts_count: Vec<Option<i32>>,
    checksum_algo: Vec<Option<&'static str>>,
    checksum_value: Vec<Option<String>>,
    checksum_type: Vec<Option<&'static str>>,
    tags: Vec<Option<String>>,
    cond: Vec<i32>,
    cond_etag: Vec<Option<String>>,
    blob_tier: Vec<Option<&'static str>>,
    blob_hash: Vec<Option<String>>,
    blob_size: Vec<Option<i64>>,
    blob_data: Vec<Option<Vec<u8>>>,
}

impl PutColumns {
    fn push(&mut self, p: &Put) {
        let r = &p.row;
        let h = &r.headers;
        let sum: Option<&Checksum> = r.checksum.as_ref();
        let blob = p.blob.as_ref();
        self.id.push(r.id.clone());
        self.bucket_id.push(p.bucket_id.clone());
        self.key.push(r.key.clone());
        self.size.push(to_i64(r.size));
        self.etag.push(r.etag.clone());
        self.content_type.push(h.content_type.clone());
        self.content_encoding.push(h.content_encoding.clone());
        self.content_disposition.push(h.content_disposition.clone());
        self.content_language.push(h.content_language.clone());
        self.cache_control.push(h.cache_control.clone());
        self.expires.push(h.expires.clone());
        self.user_meta.push(headers_json(h));
        self.storage_class.push(r.storage_class.clone());
        self.tier.push(p.tier.as_str());
        self.created_at.push(r.created_at);
        self.parts_count.push(r.parts_count);
        self.checksum_algo.push(sum.map(|k| k.algo.as_str()));
        self.checksum_value.push(sum.map(|k| k.value.clone()));
        self.checksum_type.push(sum.map(Checksum::type_str));
        self.tags.push(tags_json(h));
        self.cond.push(p.cond);
        self.cond_etag.push(p.cond_etag.clone());
        self.blob_tier.push(blob.map(|b| b.tier.as_str()));
        self.blob_hash.push(blob.map(|b| b.hash.clone()));
        self.blob_size.push(blob.map(|b| to_i64(b.size)));
        self.blob_data
            .push(blob.and_then(|b| b.inline.as_ref().map(|v| v.to_vec())));
    }

    fn bind<'q>(
        self,
        q: sqlx::query::QueryScalar<'q, sqlx::Postgres, Vec<String>, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, Vec<String>, sqlx::postgres::PgArguments>
    {
        q.bind(self.id)
            .bind(self.bucket_id)
            .bind(self.key)
            .bind(self.size)
            .bind(self.etag)
            .bind(self.content_type)
            .bind(self.content_encoding)
            .bind(self.content_disposition)
            .bind(self.content_language)
            .bind(self.cache_control)
            .bind(self.expires)
            .bind(self.user_meta)
            .bind(self.storage_class)
            .bind(self.tier)
            .bind(self.created_at)
            .bind(self.parts_count)
            .bind(self.checksum_algo)
            .bind(self.checksum_value)
            .bind(self.checksum_type)
            .bind(self.tags)
            .bind(self.cond)
            .bind(self.cond_etag)
            .bind(self.blob_tier)
            .bind(self.blob_hash)
            .bind(self.blob_size)
            .bind(self.blob_data)
    }
}
