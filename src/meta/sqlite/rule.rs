//! The version and reference rule on SQLite, written once: every commit that changes a key's
//! current version (PUT, DELETE, copy, completion) and every reference change of an upload's
//! parts is planned here as a `Script`, run by the group committer or by a transaction of its
//! own.
//!
//! Superseding a key's current version: the old version is demoted (DELETING, no longer
//! current), the new one inserted COMMITTED and current with its segments, and the blob
//! reference counts change by +1 per new segment and -1 per old one, in lock order.

use super::conn::bind;
use crate::blobs::Tier;
use crate::meta::plan::{Delta, deltas};
use crate::meta::rows::{tags_json, to_i64, user_meta_json};
use crate::meta::{Checksum, MetaError, MetaResult, ObjectRow, Segment};
use rusqlite::Connection;
use rusqlite::types::{ToSql, Value};

const DEMOTE_SQL: &str = "UPDATE objects SET is_latest = FALSE, status = 'DELETING', \
    deleted_at = $2 WHERE id = $1";

/// A version that is COMMITTED and current from the start.
const INSERT_OBJECT_SQL: &str = "INSERT INTO objects (id, bucket_id, key, status, is_latest, \
    size, etag, content_type, content_encoding, content_disposition, content_language, \
    cache_control, expires, user_meta, storage_class, tier, created_at, parts_count, \
    checksum_algo, checksum_value, checksum_type, tags) \
    VALUES ($1, $2, $3, 'COMMITTED', TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
    $16, $17, $18, $19, $20)";

const INSERT_SEGMENT_SQL: &str = "INSERT INTO object_segments (object_id, seq, tier, blob_hash, \
    size) VALUES ($1, $2, $3, $4, $5)";

/// Releases one reference (`$3`: now, the start of a zero count). Returns the new count.
const RELEASE_SQL: &str = "UPDATE blobs SET ref_count = ref_count - 1, \
    zero_since = CASE WHEN ref_count = 1 THEN $3 ELSE zero_since END \
    WHERE tier = $1 AND hash = $2 RETURNING ref_count";

/// Adds a reference to a blob that has a row. Returns the new count.
const ADD_REF_SQL: &str = "UPDATE blobs SET ref_count = ref_count + 1, zero_since = NULL \
    WHERE tier = $1 AND hash = $2 RETURNING ref_count";

/// Adds a reference to the blob the commit just wrote, creating its row if needed.
const UPSERT_BLOB_SQL: &str = "INSERT INTO blobs (tier, hash, size, ref_count, zero_since, \
    created_at) VALUES ($1, $2, $3, 1, NULL, $4) \
    ON CONFLICT (tier, hash) DO UPDATE \
    SET ref_count = blobs.ref_count + 1, zero_since = NULL RETURNING ref_count";

/// An inline blob's bytes, after its row; bytes already there stay.
const INSERT_BLOB_DATA_SQL: &str = "INSERT INTO blob_data (tier, hash, data) \
    VALUES ($1, $2, $3) ON CONFLICT (tier, hash) DO NOTHING";

/// Supersedes the current version `old` of a key in `bucket_id` by `new` (`None`: a DELETE).
/// `new_blob` is the body the commit just wrote (its row may not exist yet; its inline bytes
/// are stored); `release` are references released besides `old`'s (a completed upload's
/// parts).
pub(in crate::meta) fn supersede(
    w: &mut Script,
    bucket_id: &str,
    old: Option<&ObjectRow>,
    new: Option<&ObjectRow>,
    new_blob: Option<&Segment>,
    release: &[Segment],
    now: i64,
) {
    if let Some(o) = old {
        w.stmt(DEMOTE_SQL, vec![o.id.clone().into(), now.into()]);
    }
    let mut gone: Vec<Segment> = old.map(|o| o.segments.clone()).unwrap_or_default();
    gone.extend_from_slice(release);
    let added = new.map_or(&[][..], |n| n.segments.as_slice());
    if let Some(n) = new {
        insert_object(w, bucket_id, n);
    }
    refs(w, &deltas(added, &gone), new_blob, now);
    if let Some(n) = new {
        for (seq, s) in n.segments.iter().enumerate() {
            let args = vec![
                n.id.clone().into(),
                to_i64(seq).into(),
                text(s.tier.as_str()),
                s.hash.clone().into(),
                to_i64(s.size).into(),
            ];
            w.stmt(INSERT_SEGMENT_SQL, args);
        }
    }
}

/// Applies reference changes (sorted: lock order) to the blobs' counts; a new reference to
/// `new_blob` may create its row (and stores its inline bytes).
pub(in crate::meta) fn refs(w: &mut Script, ds: &[Delta], new_blob: Option<&Segment>, now: i64) {
    debug_assert!(ds.is_sorted(), "reference changes in lock order");
    for d in ds {
        let key = || -> Vec<Value> { vec![text(d.tier.as_str()), d.hash.clone().into()] };
        if d.release {
            let mut args = key();
            args.push(now.into());
            w.counted(RELEASE_SQL, args, d);
        } else if d.is_new(new_blob) {
            let mut args = key();
            args.extend([to_i64(d.size).into(), now.into()]);
            w.counted(UPSERT_BLOB_SQL, args, d);
            if let Some(data) = new_blob.and_then(|b| b.inline.as_ref()) {
                let mut args = key();
                args.push(data.to_vec().into());
                w.stmt(INSERT_BLOB_DATA_SQL, args);
            }
        } else {
            w.counted(ADD_REF_SQL, key(), d);
        }
    }
}

fn insert_object(w: &mut Script, bucket_id: &str, row: &ObjectRow) {
    let h = &row.headers;
    let sum: Option<&Checksum> = row.checksum.as_ref();
    let tier: Tier = crate::meta::plan::tier_of_segments(&row.segments);
    let args: Vec<Value> = vec![
        row.id.clone().into(),
        bucket_id.to_owned().into(),
        row.key.clone().into(),
        to_i64(row.size).into(),
        row.etag.clone().into(),
        opt(&h.content_type),
        opt(&h.content_encoding),
        opt(&h.content_disposition),
        opt(&h.content_language),
        opt(&h.cache_control),
        opt(&h.expires),
        user_meta_json(h).into(),
        row.storage_class.clone().into(),
        text(tier.as_str()),
        row.created_at.into(),
        row.parts_count.map_or(Value::Null, |n| i64::from(n).into()),
        opt(&sum.map(|k| k.algo.as_str().to_owned())),
        opt(&sum.map(|k| k.value.clone())),
        opt(&sum.map(|k| k.type_str().to_owned())),
        opt(&tags_json(&h.tags)),
    ];
    w.stmt(INSERT_OBJECT_SQL, args);
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Null, Value::Text)
}

/// Statements with their values, run in order in one transaction.
#[derive(Default)]
pub(in crate::meta) struct Script {
    stmts: Vec<Stmt>,
}

struct Stmt {
    sql: &'static str,
    /// The values of `$1…$n`, in order.
    args: Vec<Value>,
    /// A reference change: its one row is the blob's new count, which must exist and not be
    /// negative.
    counted: Option<Delta>,
}

impl Script {
    pub fn stmt(&mut self, sql: &'static str, args: Vec<Value>) {
        self.stmts.push(Stmt {
            sql,
            args,
            counted: None,
        });
    }

    fn counted(&mut self, sql: &'static str, args: Vec<Value>, d: &Delta) {
        self.stmts.push(Stmt {
            sql,
            args,
            counted: Some(d.clone()),
        });
    }

    /// Runs the statements in order, and checks each reference change's count.
    pub fn run(self, c: &Connection) -> MetaResult<()> {
        for s in &self.stmts {
            let mut stmt = c.prepare_cached(s.sql)?;
            let args: Vec<&dyn ToSql> = s.args.iter().map(|v| v as &dyn ToSql).collect();
            bind(&mut stmt, &args)?;
            let mut rows = stmt.raw_query();
            let count: Option<i64> = match rows.next()? {
                Some(r) if s.counted.is_some() => Some(r.get(0)?),
                _ => None,
            };
            // Step to the end, so that the statement has run to completion.
            while rows.next()?.is_some() {}
            if let Some(d) = &s.counted {
                check_count(d, count)?;
            }
        }
        Ok(())
    }
}

/// The count a reference change returned: no row, or a negative count, breaks an invariant.
fn check_count(d: &Delta, count: Option<i64>) -> MetaResult<()> {
    match count {
        None => Err(MetaError::Invariant(format!(
            "referenced blob {}/{} has no row",
            d.tier.as_str(),
            d.hash
        ))),
        Some(c) if c < 0 => Err(MetaError::Invariant(format!(
            "negative ref_count on {}",
            d.hash
        ))),
        Some(_) => Ok(()),
    }
}
