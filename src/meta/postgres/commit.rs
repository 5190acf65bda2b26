//! Every change of a key's current version or of a blob's references on PostgreSQL is one call
//! of `js_commit` (migrations/postgres/functions.sql), which holds the version and reference
//! rule: PUTs, DELETEs, copies, completions, permanent deletes of versions, and upload parts'
//! references. This module turns
//! them into the call's arrays.
//!
//! Group commit: PUTs without a file to place (inline and empty bodies) and DELETEs that queue
//! up together are one call (`Group`): one round trip, one transaction, one WAL flush for the
//! group. One group runs at a time, so groups never wait on each other's locks. If a group's
//! call fails (an item raised: a bucket deleted under a PUT, a key twice in the group, a broken
//! invariant, a deadlock that outlasted `DEADLOCK_TRIES`), every item runs again alone
//! (`Batcher`), so each gets its own outcome and no item fails for another's sake.

use super::batcher::Batcher;
use super::unpooled::Unpooled;
use crate::meta::plan::tier_of_segments;
use crate::meta::rows::{lock_cols, tags_json, to_i64, user_meta_json};
use crate::meta::{
    Checksum, Deleted, MetaError, MetaResult, NULL_VERSION, ObjectRow, RemovedVersion, Segment,
    WriteCondition,
};
use std::sync::Arc;

/// Items per group, at most (a PUT's inline body is at most 16 KiB).
const MAX_GROUP: usize = 64;
/// Groups committing at once.
const GROUPS_IN_FLIGHT: usize = 1;

const COMMIT_SQL: &str = "SELECT js_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
    $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, \
    $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44)";

/// A new current version of a key.
pub(super) struct Version {
    pub row: ObjectRow,
    pub bucket_id: String,
    pub condition: WriteCondition,
    /// The body a PUT just wrote (its blob row may not exist yet; its inline bytes are stored).
    pub new_blob: Option<Segment>,
    /// References released with it (a completed upload's parts).
    pub release: Vec<Segment>,
}

pub(super) enum Item {
    Version(Box<Version>),
    /// Reference changes of no version (an upload part's): +1 for each of `add` (`new_blob`,
    /// if among them, was just written), -1 for each of `release`.
    Refs {
        add: Vec<Segment>,
        new_blob: Option<Segment>,
        release: Vec<Segment>,
    },
    /// A DELETE without a version id; its bucket is found by tenant and name in the call.
    /// `marker_id`: the id of the delete marker it adds in a versioned bucket.
    Delete {
        tenant_id: String,
        bucket: String,
        key: String,
        marker_id: String,
    },
    /// One version removed for good.
    RemoveVersion {
        bucket_id: String,
        key: String,
        version_id: String,
        bypass: bool,
    },
}

/// What `js_commit` answered for an item.
pub(super) enum Outcome {
    /// A version was written: whether its version id is its row id (else null), and its
    /// `version_seq`.
    Written { versioned: bool, seq: i64 },
    /// A DELETE (`None`: no such bucket).
    Deleted(Option<Deleted>),
    /// A permanent delete (`None`: no such version).
    Removed(Option<RemovedVersion>),
    /// References changed.
    Counted,
}

impl Outcome {
    fn of(item: &Item, answer: Option<&str>) -> MetaResult<Outcome> {
        let Some(answer) = answer else {
            return match item {
                Item::Refs { .. } => Ok(Outcome::Counted),
                _ => Err(MetaError::Invariant(
                    "js_commit answered too few outcomes".into(),
                )),
            };
        };
        let written = |versioned: bool, seq: &str| match seq.parse() {
            Ok(seq) => Ok(Outcome::Written { versioned, seq }),
            Err(_) => Err(MetaError::Invariant(format!(
                "js_commit answered {answer:?}"
            ))),
        };
        let removed = |delete_marker| Ok(Outcome::Removed(Some(RemovedVersion { delete_marker })));
        match (item, answer) {
            (_, "locked") => Err(MetaError::Locked),
            (Item::Version(_), a) if a.starts_with("ok:") => written(true, &a[3..]),
            (Item::Version(_), a) if a.starts_with("null:") => written(false, &a[5..]),
            (Item::Version(_), "precondition_failed") => Err(MetaError::PreconditionFailed),
            (Item::Version(_), "quota_exceeded") => Err(MetaError::QuotaExceeded),
            (Item::Version(_), "no_such_key") => Err(MetaError::NoSuchKey),
            (Item::Version(_), "no_such_bucket") => Err(MetaError::NoSuchBucket),
            (Item::Delete { .. }, "deleted") => Ok(Outcome::Deleted(Some(Deleted::Removed))),
            (Item::Delete { .. }, "absent") => Ok(Outcome::Deleted(Some(Deleted::Absent))),
            (Item::Delete { marker_id, .. }, "marker") => {
                Ok(Outcome::Deleted(Some(Deleted::Marker(marker_id.clone()))))
            }
            (Item::Delete { .. }, "null_marker") => Ok(Outcome::Deleted(Some(Deleted::Marker(
                NULL_VERSION.to_owned(),
            )))),
            (Item::Delete { .. }, "no_such_bucket") => Ok(Outcome::Deleted(None)),
            (Item::RemoveVersion { .. }, "removed") => removed(false),
            (Item::RemoveVersion { .. }, "removed_marker") => removed(true),
            (Item::RemoveVersion { .. }, "absent") => Ok(Outcome::Removed(None)),
            (_, other) => Err(MetaError::Invariant(format!(
                "js_commit answered {other:?}"
            ))),
        }
    }
}

/// One `js_commit` call for `items` on `conn` (in its transaction, if one is open); their
/// outcomes, in order. The call's own failure is the error; an item's refusal is its outcome.
pub(super) async fn call(
    conn: &mut sqlx::PgConnection,
    items: &[Item],
) -> MetaResult<Vec<MetaResult<Outcome>>> {
    let mut args = Call::default();
    for item in items {
        args.push(item);
    }
    let n_versions = args.id.len();
    let n_deletes = args.d_key.len();
    let n_answered = items
        .iter()
        .filter(|i| !matches!(i, Item::Refs { .. }))
        .count();
    let answers: Vec<String> = args
        .bind(sqlx::query_scalar(COMMIT_SQL))
        .fetch_one(conn)
        .await
        .map_err(super::commit_error)?;
    if answers.len() != n_answered {
        return Err(MetaError::Invariant(format!(
            "js_commit answered {} outcomes for {n_answered} items",
            answers.len(),
        )));
    }
    // The function answers the versions first, then the DELETEs, then the permanent deletes:
    // back into the items' order.
    let (versions, rest) = answers.split_at(n_versions);
    let (deletes, removals) = rest.split_at(n_deletes.min(rest.len()));
    let (mut versions, mut deletes) = (versions.iter(), deletes.iter());
    let mut removals = removals.iter();
    Ok(items
        .iter()
        .map(|item| {
            let answer = match item {
                Item::Version(_) => versions.next(),
                Item::Delete { .. } => deletes.next(),
                Item::RemoveVersion { .. } => removals.next(),
                Item::Refs { .. } => None,
            };
            Outcome::of(item, answer.map(String::as_str))
        })
        .collect())
}

/// The group commit.
pub(super) struct Group {
    batcher: Batcher<Item, MetaResult<Outcome>>,
}

impl Group {
    pub fn start(conns: Arc<Unpooled>) -> Group {
        let batcher = Batcher::start(GROUPS_IN_FLIGHT, MAX_GROUP, move |items: Vec<Item>| {
            let conns = conns.clone();
            crate::metrics::commit_batch(items.len());
            async move {
                // A deadlock victim runs again whole before its items are split up.
                let outcomes = super::retry_deadlocks(|| async {
                    let mut conn = conns.get().await?;
                    let out = call(conn.conn(), &items).await;
                    conn.done(&out);
                    out
                })
                .await;
                (items, outcomes)
            }
        });
        Group { batcher }
    }

    /// Commits `item` with whatever else is queued; its outcome once the group has committed.
    pub async fn commit(&self, item: Item) -> MetaResult<Outcome> {
        self.batcher.submit(item).await?
    }
}

/// `js_commit`'s arguments: per version (`$1`-`$25`), per reference added (`$26`-`$32`), per
/// release (`$33`-`$35`), per DELETE (`$36`-`$39`), per permanent delete (`$40`-`$43`), and the
/// time.
#[derive(Default)]
struct Call {
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
    lock_mode: Vec<Option<&'static str>>,
    lock_until: Vec<Option<i64>>,
    legal_hold: Vec<bool>,
    s_item: Vec<i32>,
    s_seq: Vec<i32>,
    s_tier: Vec<&'static str>,
    s_hash: Vec<String>,
    s_size: Vec<i64>,
    s_new: Vec<bool>,
    s_data: Vec<Option<Vec<u8>>>,
    r_item: Vec<i32>,
    r_tier: Vec<&'static str>,
    r_hash: Vec<String>,
    d_tenant_id: Vec<String>,
    d_bucket: Vec<String>,
    d_key: Vec<String>,
    d_id: Vec<String>,
    x_bucket_id: Vec<String>,
    x_key: Vec<String>,
    x_version: Vec<String>,
    x_bypass: Vec<bool>,
}

impl Call {
    fn push(&mut self, item: &Item) {
        match item {
            Item::Version(v) => self.push_version(v),
            Item::Refs {
                add,
                new_blob,
                release,
            } => {
                self.push_refs(0, add, new_blob.as_ref());
                self.push_releases(0, release);
            }
            Item::Delete {
                tenant_id,
                bucket,
                key,
                marker_id,
            } => {
                self.d_tenant_id.push(tenant_id.clone());
                self.d_bucket.push(bucket.clone());
                self.d_key.push(key.clone());
                self.d_id.push(marker_id.clone());
            }
            Item::RemoveVersion {
                bucket_id,
                key,
                version_id,
                bypass,
            } => {
                self.x_bucket_id.push(bucket_id.clone());
                self.x_key.push(key.clone());
                self.x_version.push(version_id.clone());
                self.x_bypass.push(*bypass);
            }
        }
    }

    fn push_version(&mut self, v: &Version) {
        let r = &v.row;
        let h = &r.headers;
        let sum: Option<&Checksum> = r.checksum.as_ref();
        self.id.push(r.id.clone());
        self.bucket_id.push(v.bucket_id.clone());
        self.key.push(r.key.clone());
        self.size.push(to_i64(r.size));
        self.etag.push(r.etag.clone());
        self.content_type.push(h.content_type.clone());
        self.content_encoding.push(h.content_encoding.clone());
        self.content_disposition.push(h.content_disposition.clone());
        self.content_language.push(h.content_language.clone());
        self.cache_control.push(h.cache_control.clone());
        self.expires.push(h.expires.clone());
        self.user_meta.push(user_meta_json(h));
        self.storage_class.push(r.storage_class.clone());
        self.tier.push(tier_of_segments(&r.segments).as_str());
        self.created_at.push(r.created_at);
        self.parts_count.push(r.parts_count);
        self.checksum_algo.push(sum.map(|k| k.algo.as_str()));
        self.checksum_value.push(sum.map(|k| k.value.clone()));
        self.checksum_type.push(sum.map(Checksum::type_str));
        self.tags.push(tags_json(&h.tags));
        let (cond, etag) = match &v.condition {
            WriteCondition::None => (0, None),
            WriteCondition::IfNoneMatchAny => (1, None),
            WriteCondition::IfMatch(etag) => (2, etag.clone()),
            WriteCondition::IfNoneMatch(etag) => (3, Some(etag.clone())),
        };
        self.cond.push(cond);
        self.cond_etag.push(etag);
        let (mode, until, hold) = lock_cols(&r.lock);
        self.lock_mode.push(mode);
        self.lock_until.push(until);
        self.legal_hold.push(hold);
        let item = i32::try_from(self.id.len()).unwrap_or(i32::MAX);
        self.push_refs(item, &r.segments, v.new_blob.as_ref());
        self.push_releases(item, &v.release);
    }

    /// A reference per segment, of version `item` (its segments, numbered from 0) or, 0, of
    /// none. `new_blob`, if among them, was just written.
    fn push_refs(&mut self, item: i32, segments: &[Segment], new_blob: Option<&Segment>) {
        for (seq, s) in (0..).zip(segments) {
            let new = new_blob.filter(|b| b.tier == s.tier && b.hash == s.hash);
            self.s_item.push(item);
            self.s_seq.push(seq);
            self.s_tier.push(s.tier.as_str());
            self.s_hash.push(s.hash.clone());
            self.s_size.push(to_i64(s.size));
            self.s_new.push(new.is_some());
            self.s_data
                .push(new.and_then(|b| b.inline.as_ref()).map(|d| d.to_vec()));
        }
    }

    fn push_releases(&mut self, item: i32, release: &[Segment]) {
        for s in release {
            self.r_item.push(item);
            self.r_tier.push(s.tier.as_str());
            self.r_hash.push(s.hash.clone());
        }
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
            .bind(self.lock_mode)
            .bind(self.lock_until)
            .bind(self.legal_hold)
            .bind(self.s_item)
            .bind(self.s_seq)
            .bind(self.s_tier)
            .bind(self.s_hash)
            .bind(self.s_size)
            .bind(self.s_new)
            .bind(self.s_data)
            .bind(self.r_item)
            .bind(self.r_tier)
            .bind(self.r_hash)
            .bind(self.d_tenant_id)
            .bind(self.d_bucket)
            .bind(self.d_key)
            .bind(self.d_id)
            .bind(self.x_bucket_id)
            .bind(self.x_key)
            .bind(self.x_version)
            .bind(self.x_bypass)
            .bind(crate::now_micros())
    }
}
