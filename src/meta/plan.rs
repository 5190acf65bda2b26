//! What a commit does, decided the same way on both databases: whether its condition holds,
//! the version it inserts, and the blob reference changes it makes. Each database's module
//! writes these down in its own statements (SQLite: `sqlite::rule`; PostgreSQL: the function
//! `js_commit`, which checks the conditions itself).

use super::*;
use crate::blobs::Tier;

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
