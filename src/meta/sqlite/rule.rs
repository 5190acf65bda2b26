//! The version and reference rule on SQLite, written once: every commit that changes a key's
//! current version (PUT, DELETE, copy, completion) and every reference change of an upload's
//! parts is planned here as a `Script`, run by the group committer or by a transaction of its
//! own.
//!
//! A change of a key's versions (`Change`, decided by `plan::replaced`): the version that goes
//! is DELETING and no longer current, the one that stays is no longer current, the new one is
//! inserted COMMITTED and current with its segments (or, when a permanent delete removed the
//! current version, the newest remaining one becomes current), and the blob reference counts
//! change by +1 per new segment and -1 per segment of the version gone, in lock order.

use super::conn::bind;
use crate::blobs::Tier;
use crate::meta::plan::{Delta, deltas};
use crate::meta::rows::{tags_json, to_i64, user_meta_json};
use crate::meta::{Checksum, MetaError, MetaResult, ObjectRow, Segment};
use rusqlite::Connection;
use rusqlite::types::{ToSql, Value};

const REMOVE_SQL: &str = "UPDATE objects SET is_latest = FALSE, status = 'DELETING', \
    deleted_at = $2 WHERE id = $1";

const NONCURRENT_SQL: &str = "UPDATE objects SET is_latest = FALSE WHERE id = $1";

/// After the current version was removed: the newest remaining one is current.
const PROMOTE_SQL: &str = "UPDATE objects SET is_latest = TRUE WHERE id = (SELECT id FROM \
    objects WHERE bucket_id = $1 AND key = $2 AND status = 'COMMITTED' AND NOT is_latest \
    ORDER BY version_seq DESC LIMIT 1)";

/// A version that is COMMITTED and current from the start.
const INSERT_OBJECT_SQL: &str = "INSERT INTO objects (id, bucket_id, key, status, is_latest, \
    size, etag, content_type, content_encoding, content_disposition, content_language, \
    cache_control, expires, user_meta, storage_class, tier, created_at, parts_count, \
    checksum_algo, checksum_value, checksum_type, tags, version_id, version_seq, delete_marker, \
    lock_mode, lock_until, legal_hold) \
    VALUES ($1, $2, $3, 'COMMITTED', TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
    $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)";

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

/// Adds to a bucket's counters on one tier ($3..$7: objects, bytes, noncurrent versions and
/// bytes, delete markers).
const USAGE_SQL: &str = "INSERT INTO usage_counters (bucket_id, tier, shard, objects, bytes, \
    noncurrent_versions, noncurrent_bytes, delete_markers) VALUES ($1, $2, 0, $3, $4, $5, $6, $7) \
    ON CONFLICT (bucket_id, tier, shard) DO UPDATE SET objects = objects + excluded.objects, \
    bytes = bytes + excluded.bytes, \
    noncurrent_versions = noncurrent_versions + excluded.noncurrent_versions, \
    noncurrent_bytes = noncurrent_bytes + excluded.noncurrent_bytes, \
    delete_markers = delete_markers + excluded.delete_markers";

/// The version `PROMOTE_SQL` made current leaves the noncurrent counters for the current ones
/// (a delete marker stays a marker).
const PROMOTED_USAGE_SQL: &str = "INSERT INTO usage_counters (bucket_id, tier, shard, objects, \
    bytes, noncurrent_versions, noncurrent_bytes, delete_markers) \
    SELECT bucket_id, tier, 0, 1, size, -1, -size, 0 FROM objects \
    WHERE bucket_id = $1 AND key = $2 AND is_latest AND NOT delete_marker \
    ON CONFLICT (bucket_id, tier, shard) DO UPDATE SET objects = objects + excluded.objects, \
    bytes = bytes + excluded.bytes, \
    noncurrent_versions = noncurrent_versions + excluded.noncurrent_versions, \
    noncurrent_bytes = noncurrent_bytes + excluded.noncurrent_bytes";

/// One more reference of the bucket's tenant on a blob (`$4`: its size).
const HOLD_SQL: &str = "INSERT INTO blob_tenants (tier, hash, tenant_id, size, refs) \
    SELECT $1, $2, tenant_id, $4, 1 FROM buckets WHERE id = $3 \
    ON CONFLICT (tier, hash, tenant_id) DO UPDATE SET refs = refs + 1";

/// One reference fewer (at zero the holder row goes: `holders_drop_empty`).
const UNHOLD_SQL: &str = "UPDATE blob_tenants SET refs = refs - 1 \
    WHERE tier = $1 AND hash = $2 AND tenant_id = (SELECT tenant_id FROM buckets WHERE id = $3)";

/// A change of one key's versions in bucket `bucket_id`.
pub(in crate::meta) struct Change<'a> {
    pub bucket_id: &'a str,
    /// Removed: DELETING, its references released (a locked one is refused before).
    pub gone: Option<&'a ObjectRow>,
    /// Kept, no longer current.
    pub noncurrent: Option<&'a ObjectRow>,
    /// Inserted as the current version (numbered by `plan::number_version`).
    pub new: Option<&'a ObjectRow>,
    /// The body the commit just wrote (its row may not exist yet; its inline bytes are
    /// stored).
    pub new_blob: Option<&'a Segment>,
    /// References released besides `gone`'s (a completed upload's parts).
    pub release: &'a [Segment],
}

impl<'a> Change<'a> {
    /// A key's change with nothing else released and no new blob.
    pub fn of(
        bucket_id: &'a str,
        (gone, noncurrent): (Option<&'a ObjectRow>, Option<&'a ObjectRow>),
        new: Option<&'a ObjectRow>,
    ) -> Change<'a> {
        Change {
            bucket_id,
            gone,
            noncurrent,
            new,
            new_blob: None,
            release: &[],
        }
    }
}

/// Writes a change of a key's versions and its reference changes.
pub(in crate::meta) fn apply(w: &mut Script, c: &Change<'_>, now: i64) {
    if let Some(o) = c.gone {
        debug_assert!(
            !o.lock.legal_hold,
            "a version on legal hold is never removed"
        );
        w.stmt(REMOVE_SQL, vec![o.id.clone().into(), now.into()]);
    }
    if let Some(o) = c.noncurrent {
        w.stmt(NONCURRENT_SQL, vec![o.id.clone().into()]);
    }
    let mut gone: Vec<Segment> = c.gone.map(|o| o.segments.clone()).unwrap_or_default();
    gone.extend_from_slice(c.release);
    let added = c.new.map_or(&[][..], |n| n.segments.as_slice());
    match (c.new, c.gone) {
        (Some(n), _) => insert_object(w, c.bucket_id, n),
        (None, Some(g)) if g.is_latest => {
            let args = || vec![c.bucket_id.to_owned().into(), g.key.clone().into()];
            w.stmt(PROMOTE_SQL, args());
            w.stmt(PROMOTED_USAGE_SQL, args());
        }
        (None, _) => {}
    }
    usage(w, c);
    holders(
        w,
        c.bucket_id,
        &deltas(added, &gone[..gone.len() - c.release.len()]),
    );
    let (new, new_blob) = (c.new, c.new_blob);
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

/// The change's effect on its bucket's counters, one statement per tier it touches.
fn usage(w: &mut Script, c: &Change<'_>) {
    let mut by_tier = crate::meta::plan::UsageDelta::default();
    if let Some(g) = c.gone {
        by_tier.add(g, g.is_latest, -1);
    }
    if let Some(k) = c.noncurrent {
        by_tier.add(k, true, -1);
        by_tier.add(k, false, 1);
    }
    if let Some(n) = c.new {
        by_tier.add(n, true, 1);
    }
    for (tier, d) in by_tier.nonzero() {
        let mut args = vec![c.bucket_id.to_owned().into(), text(tier.as_str())];
        args.extend(d.iter().map(|v| Value::from(*v)));
        w.stmt(USAGE_SQL, args);
    }
}

/// The bucket's tenant's references on blobs (`blob_tenants`): one up or down per segment its
/// versions gained or lost (an upload's parts are not held).
fn holders(w: &mut Script, bucket_id: &str, ds: &[Delta]) {
    for d in ds {
        let mut args = vec![
            text(d.tier.as_str()),
            d.hash.clone().into(),
            bucket_id.to_owned().into(),
        ];
        match d.release {
            true => w.stmt(UNHOLD_SQL, args),
            false => {
                args.push(to_i64(d.size).into());
                w.stmt(HOLD_SQL, args);
            }
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
        row.version_id.clone().into(),
        row.version_seq.into(),
        row.delete_marker.into(),
        opt(&row.lock.retention.map(|(m, _)| m.as_str().to_owned())),
        row.lock.retention.map_or(Value::Null, |(_, u)| u.into()),
        row.lock.legal_hold.into(),
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
    /// Adds `other`'s statements after these.
    pub fn append(&mut self, other: Script) {
        self.stmts.extend(other.stmts);
    }

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
