//! What a commit does, decided the same way on both databases: whether its condition holds,
//! the version it inserts, and the blob reference changes it makes. Each database's module
//! writes these down in its own statements (SQLite: `sqlite::rule`; PostgreSQL: the function
//! `js_commit`, which checks the conditions itself).

use super::rows::to_i64;
use super::*;
use crate::blobs::Tier;
use std::collections::HashMap;

/// Conditional writes, checked against the current version inside the commit transaction.
pub(super) fn check_condition(c: &WriteCondition, current: Option<&ObjectRow>) -> MetaResult<()> {
    // A delete marker is no object.
    let current = current.filter(|o| !o.delete_marker);
    match (c, current) {
        (WriteCondition::IfNoneMatchAny, Some(_)) => Err(MetaError::PreconditionFailed),
        (WriteCondition::IfNoneMatch(etag), Some(o)) if *etag == o.etag => {
            Err(MetaError::PreconditionFailed)
        }
        (WriteCondition::IfMatch(_), None) => Err(MetaError::NoSuchKey),
        (WriteCondition::IfMatch(Some(etag)), Some(o)) if *etag != o.etag => {
            Err(MetaError::PreconditionFailed)
        }
        _ => Ok(()),
    }
}

/// What a write (or a DELETE's marker) does to a key's versions, by the bucket's versioning:
/// the version that goes (DELETING, its references released) and the one that stays but is
/// no longer current. Unversioned: the current version goes. Enabled: it stays. Suspended: the
/// `null` version goes (current or not: `null` is the key's null version when it is not the
/// current one), and the current one stays if it is another.
pub(super) fn replaced<'a>(
    v: Versioning,
    current: Option<&'a ObjectRow>,
    null: Option<&'a ObjectRow>,
) -> (Option<&'a ObjectRow>, Option<&'a ObjectRow>) {
    match v {
        Versioning::Unversioned => {
            debug_assert!(
                current.is_none_or(|c| c.version_id == NULL_VERSION),
                "an unversioned bucket holds null versions only"
            );
            (current, None)
        }
        Versioning::Enabled => (None, current),
        Versioning::Suspended => {
            let is_null = |c: &&ObjectRow| c.version_id == NULL_VERSION;
            (
                null.or(current.filter(is_null)),
                current.filter(|c| !is_null(c)),
            )
        }
    }
}

/// What versions entering or leaving a state do to a bucket's counters, per tier: `[objects,
/// bytes, noncurrent versions, noncurrent bytes, delete markers]`.
#[derive(Default)]
pub(super) struct UsageDelta {
    tiers: Vec<(Tier, [i64; 5])>,
}

impl UsageDelta {
    /// Counts `o` (`sign` 1) or uncounts it (-1) as current (`latest`) or noncurrent.
    pub fn add(&mut self, o: &ObjectRow, latest: bool, sign: i64) {
        let tier = tier_of_segments(&o.segments);
        let size = to_i64(o.size);
        let v = match (o.delete_marker, latest) {
            (true, _) => [0, 0, 0, 0, 1],
            (false, true) => [1, size, 0, 0, 0],
            (false, false) => [0, 0, 1, size, 0],
        };
        let i = match self.tiers.iter().position(|(t, _)| *t == tier) {
            Some(i) => i,
            None => {
                self.tiers.push((tier, [0; 5]));
                self.tiers.len() - 1
            }
        };
        for (acc, x) in self.tiers[i].1.iter_mut().zip(v) {
            *acc += sign * x;
        }
    }

    /// The tiers whose counters change.
    pub fn nonzero(&self) -> impl Iterator<Item = (Tier, [i64; 5])> + '_ {
        self.tiers
            .iter()
            .filter(|(_, d)| d.iter().any(|v| *v != 0))
            .copied()
    }
}

/// What a new version adds to its bucket's quota scopes, less the version it replaces
/// (`gone`); delete markers count in neither.
pub(super) fn quota_delta(new: &ObjectRow, gone: Option<&ObjectRow>) -> Held {
    let count = |o: &ObjectRow| match o.delete_marker {
        true => Held::default(),
        false => Held {
            bytes: to_i64(o.size),
            objects: 1,
        },
    };
    let (add, sub) = (count(new), gone.map(count).unwrap_or_default());
    Held {
        bytes: add.bytes - sub.bytes,
        objects: add.objects - sub.objects,
    }
}

/// The quota checks of one transaction: what its earlier writes added to each scope, so that
/// every write of a group commit is checked against the ones before it.
#[derive(Default)]
pub(super) struct Ledger {
    added: HashMap<String, Held>,
}

impl Ledger {
    /// Charges `add` to the scopes of `q` if both admit it; `QuotaExceeded` otherwise (and
    /// nothing is charged).
    pub fn admit(&mut self, q: &QuotaState, add: Held) -> MetaResult<()> {
        let scopes = [
            (format!("b:{}", q.bucket_id), q.bucket, q.bucket_held),
            (format!("t:{}", q.tenant_id), q.tenant, q.tenant_held),
        ];
        for (scope, quota, held) in &scopes {
            let before = self.added.get(scope).copied().unwrap_or_default();
            let held = Held {
                bytes: held.bytes + before.bytes,
                objects: held.objects + before.objects,
            };
            if !quota.admits(held, add) {
                return Err(MetaError::QuotaExceeded);
            }
        }
        for (scope, _, _) in scopes {
            let e = self.added.entry(scope).or_default();
            e.bytes += add.bytes;
            e.objects += add.objects;
        }
        Ok(())
    }
}

/// Refuses to remove a locked version (a legal hold, or retention not past `now`; `bypass`
/// lifts GOVERNANCE retention).
pub(super) fn check_removable(gone: Option<&ObjectRow>, now: i64, bypass: bool) -> MetaResult<()> {
    match gone {
        Some(g) if !g.lock.allows_delete(now, bypass) => Err(MetaError::Locked),
        _ => Ok(()),
    }
}

/// Gives a new version its id and place among the key's versions: after the current one.
pub(super) fn number_version(row: &mut ObjectRow, v: Versioning, current: Option<&ObjectRow>) {
    row.version_id = v.version_id(&row.id);
    row.version_seq = current.map_or(1, |c| c.version_seq + 1);
    row.is_latest = true;
}

/// The delete marker a DELETE adds in a versioned (or suspended) bucket.
pub(super) fn delete_marker(id: &str, key: &str, now: i64) -> ObjectRow {
    ObjectRow {
        id: id.to_owned(),
        key: key.to_owned(),
        size: 0,
        etag: String::new(),
        headers: ObjectHeaders::default(),
        storage_class: "STANDARD".to_owned(),
        created_at: now,
        segments: Vec::new(),
        parts_count: None,
        checksum: None,
        corrupted: false,
        version_id: NULL_VERSION.to_owned(),
        version_seq: 0,
        is_latest: true,
        delete_marker: true,
        lock: Lock::default(),
    }
}

/// A new bucket's row: created with Object Lock, its versioning is Enabled from the start.
pub(super) fn new_bucket(tenant_id: &str, name: &str, object_lock: bool) -> BucketRow {
    BucketRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_owned(),
        name: name.to_owned(),
        created_at: crate::now_micros(),
        versioning: match object_lock {
            true => Versioning::Enabled,
            false => Versioning::Unversioned,
        },
        object_lock,
    }
}

/// A copy's source version: a delete marker cannot be copied (by version id S3 answers
/// InvalidRequest, as the current version NoSuchKey).
pub(super) fn copy_source(src: Option<ObjectRow>, by_version: bool) -> MetaResult<ObjectRow> {
    match src {
        None => Err(MetaError::NoSuchKey),
        Some(s) if s.delete_marker && by_version => Err(MetaError::DeleteMarker),
        Some(s) if s.delete_marker => Err(MetaError::NoSuchKey),
        Some(s) => Ok(s),
    }
}

/// The version a PUT commit inserts.
pub(super) fn put_version(c: &PutCommit) -> ObjectRow {
    ObjectRow {
        id: c.object_id.clone(),
        key: c.key.clone(),
        size: c.size,
        etag: c.etag.clone(),
        headers: c.headers.clone(),
        storage_class: c.storage_class.clone(),
        created_at: crate::now_micros(),
        segments: c.blob.iter().cloned().collect(),
        parts_count: None,
        checksum: c.checksum.clone(),
        corrupted: false,
        version_id: NULL_VERSION.to_owned(),
        version_seq: 0,
        is_latest: true,
        delete_marker: false,
        lock: c.lock,
    }
}

/// The version a copy inserts: the source's bytes, with its headers, tags and storage class
/// unless the copy replaces them.
pub(super) fn copy_version(c: &CopyCommit, src: ObjectRow) -> ObjectRow {
    let mut headers = c.headers.clone().unwrap_or_else(|| src.headers.clone());
    headers.tags = c.tags.clone().unwrap_or(src.headers.tags);
    ObjectRow {
        id: c.new_id.clone(),
        key: c.dst_key.clone(),
        size: src.size,
        etag: src.etag,
        headers,
        storage_class: c.storage_class.clone().unwrap_or(src.storage_class),
        created_at: crate::now_micros(),
        segments: src.segments,
        parts_count: src.parts_count,
        checksum: src.checksum,
        corrupted: src.corrupted,
        version_id: NULL_VERSION.to_owned(),
        version_seq: 0,
        is_latest: true,
        delete_marker: false,
        lock: c.lock,
    }
}

/// The version CompleteMultipartUpload inserts, with the upload's headers.
pub(super) fn completed_version(
    c: &CompleteCommit<'_>,
    up: &UploadRow,
    a: &Assembled,
) -> ObjectRow {
    ObjectRow {
        id: c.new_id.clone(),
        key: c.key.clone(),
        size: a.size,
        etag: a.etag.clone(),
        headers: up.headers.clone(),
        storage_class: up.storage_class.clone(),
        created_at: crate::now_micros(),
        segments: a.segments.clone(),
        parts_count: Some(a.parts_count),
        checksum: a.checksum.clone(),
        corrupted: false,
        version_id: NULL_VERSION.to_owned(),
        version_seq: 0,
        is_latest: true,
        delete_marker: false,
        lock: up.lock,
    }
}

/// The tier a version's row records (its first segment's; hot for an empty object).
pub(super) fn tier_of_segments(segments: &[Segment]) -> Tier {
    segments.first().map(|s| s.tier).unwrap_or(Tier::Hot)
}

/// Checks an upload (found by id) belongs to the bucket (and, for a completion, the key) the
/// request names.
pub(super) fn check_upload(
    up: Option<UploadRow>,
    bucket_id: Option<&str>,
    key: Option<&str>,
) -> MetaResult<UploadRow> {
    match up {
        Some(u) if bucket_id.is_none_or(|b| b == u.bucket_id) && key.is_none_or(|k| k == u.key) => {
            Ok(u)
        }
        _ => Err(MetaError::NoSuchUpload),
    }
}

/// A reference-count change on one blob. Sorted, deltas are in lock order, `(tier, hash)`,
/// and a blob's +1 comes before its -1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Delta {
    pub tier: Tier,
    pub hash: String,
    pub release: bool,
    pub size: u64,
}

impl Delta {
    /// A new reference to `new_blob`, the blob the commit just wrote (its row may not exist).
    pub fn is_new(&self, new_blob: Option<&Segment>) -> bool {
        !self.release && new_blob.is_some_and(|b| b.tier == self.tier && b.hash == self.hash)
    }
}

/// +1 for each of `add`, -1 for each of `release` (a segment each: a blob twice in an object
/// holds two references), in lock order. A blob both gained and released changes by the
/// difference only (a completed upload's parts move their references to its object).
pub(super) fn deltas(add: &[Segment], release: &[Segment]) -> Vec<Delta> {
    let mk = |s: &Segment, release| Delta {
        tier: s.tier,
        hash: s.hash.clone(),
        release,
        size: s.size,
    };
    let mut v: Vec<Delta> = add.iter().map(|s| mk(s, false)).collect();
    v.extend(release.iter().map(|s| mk(s, true)));
    v.sort();
    // Sorted, a blob's +1s come right before its -1s.
    let mut net: Vec<Delta> = Vec::with_capacity(v.len());
    for d in v {
        let cancels = |o: &Delta| !o.release && o.tier == d.tier && o.hash == d.hash;
        if d.release && net.last().is_some_and(cancels) {
            net.pop();
        } else {
            net.push(d);
        }
    }
    net
}

impl SourceCondition {
    /// S3's precedence: If-Match beats If-Unmodified-Since; If-None-Match beats If-Modified-Since.
    pub fn holds(&self, src: &ObjectRow) -> bool {
        let etag_is = |want: &str| want == "*" || want.trim_matches('"') == src.etag;
        // HTTP dates have one-second resolution.
        let secs = |micros: i64| micros.div_euclid(1_000_000);
        let modified = secs(src.created_at);
        let ok_match = match &self.if_match {
            Some(e) => etag_is(e),
            None => self.if_unmodified_since.is_none_or(|t| modified <= secs(t)),
        };
        let ok_none = match &self.if_none_match {
            Some(e) => !etag_is(e),
            None => self.if_modified_since.is_none_or(|t| modified > secs(t)),
        };
        ok_match && ok_none
    }
}

/// An upload listing's page (`key >= prefix` started its range) up to its first key outside
/// the prefix, which ends it.
pub(super) fn uploads_under(prefix: &str, page: Vec<UploadRow>) -> Vec<UploadRow> {
    page.into_iter()
        .take_while(|u| u.key.starts_with(prefix))
        .collect()
}

/// The GC invariant: a blob file is unlinked only at zero references past the grace period
/// (`zero_since` before `cutoff`), decided under the blob row's lock.
pub(super) fn collectable(
    blob: &BlobId,
    refs: i64,
    zero_since: Option<i64>,
    cutoff: i64,
) -> MetaResult<bool> {
    if refs < 0 {
        return Err(MetaError::Invariant(format!(
            "negative ref_count on {}",
            blob.hash
        )));
    }
    Ok(refs == 0 && zero_since.is_some_and(|z| z < cutoff))
}

/// A version's lock state after `change`, or `Locked` when the change would shorten, remove
/// or change the mode of retention still in force: never under COMPLIANCE; under GOVERNANCE
/// only with `bypass`.
pub(super) fn lock_after(current: Lock, change: LockChange, now: i64) -> MetaResult<Lock> {
    let (retention, bypass) = match change {
        LockChange::LegalHold(on) => {
            return Ok(Lock {
                legal_hold: on,
                ..current
            });
        }
        LockChange::Retention { retention, bypass } => (retention, bypass),
    };
    if let Some((mode, until)) = current.retention.filter(|&(_, until)| until > now) {
        let weaker = match retention {
            None => true,
            // Any change of mode needs the right to weaken: GOVERNANCE to COMPLIANCE too.
            Some((new_mode, new_until)) => new_until < until || new_mode != mode,
        };
        let allowed = match mode {
            LockMode::Compliance => false,
            LockMode::Governance => bypass,
        };
        if weaker && !allowed {
            return Err(MetaError::Locked);
        }
    }
    Ok(Lock {
        retention,
        ..current
    })
}

/// A version listing page from its two ranges, each in key order and newest first: the current
/// versions and the noncurrent ones. Merged the same way, by key then newest first, at most
/// `limit`.
pub(super) fn merge_versions(
    current: Vec<VersionEntry>,
    noncurrent: Vec<VersionEntry>,
    limit: usize,
) -> Vec<VersionEntry> {
    let order = |v: &VersionEntry| (v.key.clone(), std::cmp::Reverse(v.version_seq));
    let mut out: Vec<VersionEntry> = current.into_iter().chain(noncurrent).collect();
    out.sort_by_key(order);
    out.truncate(limit);
    out
}

/// A row of `statements::HOLDERS_RECOUNT`: one tenant's references to one blob.
pub(super) struct Holder {
    pub tier: String,
    pub hash: String,
    pub tenant: String,
    pub tenant_id: String,
    pub size: i64,
}

/// Physical bytes per tenant and tier from who references each blob: its size shared among
/// its holders, the remainder to the smallest tenant id (as the share triggers do).
pub(super) fn attributed(mut holders: Vec<Holder>) -> Vec<PhysicalRow> {
    holders.sort_by(|a, b| (&a.tier, &a.hash, &a.tenant_id).cmp(&(&b.tier, &b.hash, &b.tenant_id)));
    let mut out: BTreeMap<(String, String), i64> = BTreeMap::new();
    for blob in holders.chunk_by(|a, b| a.tier == b.tier && a.hash == b.hash) {
        let n = to_i64(blob.len());
        for (i, h) in blob.iter().enumerate() {
            let share = h.size / n + if i == 0 { h.size % n } else { 0 };
            *out.entry((h.tenant.clone(), h.tier.clone())).or_default() += share;
        }
    }
    out.into_iter()
        .map(|((tenant, tier), bytes)| PhysicalRow {
            tenant,
            tier,
            bytes,
        })
        .collect()
}

/// The kept usage figures against a recount: rows that differ (a missing row counts as
/// zeros).
pub(super) fn usage_check(
    kept: Vec<UsageRow>,
    recount: Vec<UsageRow>,
    kept_physical: Vec<PhysicalRow>,
    holders: Vec<Holder>,
) -> UsageCheck {
    let zero_usage = |t: &str, b: &str, tier: &str| UsageRow {
        tenant: t.to_owned(),
        bucket: b.to_owned(),
        tier: tier.to_owned(),
        objects: 0,
        bytes: 0,
        noncurrent_versions: 0,
        noncurrent_bytes: 0,
        delete_markers: 0,
    };
    let key = |u: &UsageRow| (u.tenant.clone(), u.bucket.clone(), u.tier.clone());
    let usage = differences(
        kept.into_iter().map(|u| (key(&u), u)).collect(),
        recount.into_iter().map(|u| (key(&u), u)).collect(),
        |(t, b, tier)| zero_usage(t, b, tier),
    );
    let pkey = |p: &PhysicalRow| (p.tenant.clone(), p.tier.clone());
    let physical = differences(
        kept_physical.into_iter().map(|p| (pkey(&p), p)).collect(),
        attributed(holders)
            .into_iter()
            .map(|p| (pkey(&p), p))
            .collect(),
        |(tenant, tier)| PhysicalRow {
            tenant: tenant.clone(),
            tier: tier.clone(),
            bytes: 0,
        },
    );
    UsageCheck { usage, physical }
}

/// Pairs `(kept, recounted)` of every key where the two maps differ, a missing entry being
/// `zero(key)`.
fn differences<K: Ord + Clone, V: PartialEq + Clone>(
    kept: BTreeMap<K, V>,
    recount: BTreeMap<K, V>,
    zero: impl Fn(&K) -> V,
) -> Vec<(V, V)> {
    let keys: std::collections::BTreeSet<&K> = kept.keys().chain(recount.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let a = kept.get(k).cloned().unwrap_or_else(|| zero(k));
            let b = recount.get(k).cloned().unwrap_or_else(|| zero(k));
            (a != b).then_some((a, b))
        })
        .collect()
}
