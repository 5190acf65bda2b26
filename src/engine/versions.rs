//! Versioning and Object Lock: a bucket's versioning state, reads and permanent deletes of one
//! version, version listings (ListObjectVersions), and the lock on versions.
//!
//! What a write or DELETE does to a key's versions is decided in `meta` (`plan::replaced`),
//! inside the commit: the engine only names the version a request is about.

use super::{Caller, Engine, Error, Result};
use crate::meta::{
    BucketRow, Deleted, KeyRange, Lock, LockChange, LockMode, NULL_VERSION, ObjectRow, Rollup,
    VersionEntry, Versioning, prefix_successor,
};
use serde::{Deserialize, Serialize};

/// Rows fetched per listing statement, at most.
const BATCH: usize = 1000;
const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// A bucket's default retention (PutObjectLockConfiguration's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub period: RetentionPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionPeriod {
    Days(i32),
    Years(i32),
}

impl DefaultRetention {
    /// The retention a version written at `now` gets (a year is 365 days).
    pub fn from(&self, now: i64) -> (LockMode, i64) {
        let days = match self.period {
            RetentionPeriod::Days(d) => i64::from(d),
            RetentionPeriod::Years(y) => i64::from(y) * 365,
        };
        (
            self.mode,
            now.saturating_add(days.saturating_mul(DAY_MICROS)),
        )
    }
}

/// The Object Lock headers of a write (`x-amz-object-lock-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockRequest {
    pub retention: Option<(LockMode, i64)>,
    pub legal_hold: Option<bool>,
}

/// What a DELETE did, for its response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// A delete marker was added, or the version removed was one.
    pub delete_marker: bool,
    /// The marker added, or the version removed.
    pub version_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct VersionQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume after this key (or, with `version_marker`, after that version of it).
    pub key_marker: Option<String>,
    pub version_marker: Option<String>,
    /// Resume after this version of `key_marker` by its sequence number, which (unlike a
    /// version id) still places the cursor once that version is gone (the lifecycle worker
    /// deletes as it reads).
    pub after_seq: Option<i64>,
    pub max_keys: usize,
}

#[derive(Debug, Clone)]
pub enum VersionItem {
    Version(VersionEntry),
    Prefix(String),
}

#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub items: Vec<VersionItem>,
    pub truncated: bool,
}

/// A version id as clients send it: `null`, or one this store made (a UUID).
pub fn check_version_id(v: &str) -> Result<()> {
    if v == NULL_VERSION || uuid::Uuid::try_parse(v).is_ok() {
        return Ok(());
    }
    Err(Error::InvalidArgument(
        "Invalid version id specified".into(),
    ))
}

impl Engine {
    /// PutBucketVersioning: `Enabled` or `Suspended`. A bucket with Object Lock cannot be
    /// suspended.
    pub async fn set_versioning(&self, caller: &Caller, bucket: &str, enabled: bool) -> Result<()> {
        Self::writable(caller)?;
        let b = self.bucket(caller, bucket).await?;
        if !enabled && b.object_lock {
            return Err(Error::InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning \
                 state cannot be changed."
                    .into(),
            ));
        }
        let v = match enabled {
            true => Versioning::Enabled,
            false => Versioning::Suspended,
        };
        if !self.meta.set_versioning(&b.id, v, b.object_lock).await? {
            return Err(Error::NoSuchBucket);
        }
        Ok(())
    }

    /// A key's version: the current one (`version` `None`) or the one named, with the bytes
    /// of inline blobs when `inline`. A delete marker is `Error::DeleteMarker`.
    pub async fn object_version(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        inline: bool,
    ) -> Result<ObjectRow> {
        let row = match version {
            None => self
                .meta
                .latest(&caller.tenant_id, bucket, key, inline)
                .await?
                .ok_or(Error::NoSuchKey)?,
            Some(v) => {
                check_version_id(v)?;
                let b = self.bucket(caller, bucket).await?;
                let found = self.meta.version(&b.id, key, v, inline).await?;
                found.ok_or(Error::NoSuchVersion)?
            }
        };
        if row.delete_marker {
            return Err(Error::DeleteMarker {
                version_id: row.version_id,
                by_version: version.is_some(),
            });
        }
        Ok(row)
    }

    /// DeleteObject: without `version`, by the bucket's versioning (a delete marker, or the
    /// key's only version goes); with it, that version goes for good (`bypass` lifts GOVERNANCE
    /// retention). A version that does not exist is no error.
    pub async fn delete(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        bypass: bool,
    ) -> Result<DeleteOutcome> {
        Self::writable(caller)?;
        let Some(v) = version else {
            let deleted = self.meta.delete_key(&caller.tenant_id, bucket, key).await?;
            return match deleted.ok_or(Error::NoSuchBucket)? {
                Deleted::Absent | Deleted::Removed => Ok(DeleteOutcome::default()),
                Deleted::Marker(id) => Ok(DeleteOutcome {
                    delete_marker: true,
                    version_id: Some(id),
                }),
            };
        };
        check_version_id(v)?;
        let b = self.bucket(caller, bucket).await?;
        let removed = self.meta.delete_version(&b.id, key, v, bypass).await;
        let removed = removed.map_err(|e| match e {
            crate::meta::MetaError::Locked => Error::AccessDenied,
            e => e.into(),
        })?;
        Ok(DeleteOutcome {
            delete_marker: removed.is_some_and(|r| r.delete_marker),
            version_id: Some(v.to_owned()),
        })
    }

    /// ListObjectVersions: versions in key order, newest first, delimiter roll-ups as in
    /// `list`. A page costs O(page size) rows, plus one seek per common prefix.
    pub async fn list_versions(
        &self,
        caller: &Caller,
        bucket: &str,
        q: &VersionQuery,
    ) -> Result<VersionPage> {
        let b = self.bucket(caller, bucket).await?;
        let mut out = VersionPage::default();
        if q.max_keys == 0 {
            return Ok(out);
        }
        let upper = prefix_successor(&q.prefix);
        let marker = q.key_marker.as_deref().filter(|m| !m.is_empty());
        let mut cursor = self.version_cursor(&b, q, marker).await?;
        let roll = (q.delimiter.as_deref())
            .filter(|d| !d.is_empty())
            .map(|delimiter| Rollup {
                prefix: &q.prefix,
                delimiter,
            });
        // Every round but the last emits or skips at least one item.
        for _ in 0..(q.max_keys + 3) * 2 {
            let want = (q.max_keys - out.items.len() + 1).min(BATCH);
            let range = KeyRange {
                bucket_id: &b.id,
                start: &cursor.key,
                start_inclusive: cursor.inclusive,
                before: upper.as_deref(),
            };
            let rows = self
                .meta
                .list_versions(range, cursor.after_seq, want)
                .await?;
            let exhausted = rows.len() < want;
            match take(&mut out, rows, roll, marker, q.max_keys, &mut cursor) {
                Taken::Full => {
                    out.truncated = true;
                    return Ok(out);
                }
                Taken::End => return Ok(out),
                Taken::Reseek => {}
                Taken::All if exhausted => return Ok(out),
                Taken::All => {}
            }
        }
        Err(Error::InvalidArgument("listing did not converge".into()))
    }

    /// Where a version listing starts: after the marker's version (or key), else at the prefix.
    async fn version_cursor(
        &self,
        b: &BucketRow,
        q: &VersionQuery,
        marker: Option<&str>,
    ) -> Result<Cursor> {
        let Some(m) = marker.filter(|m| *m >= q.prefix.as_str()) else {
            return Ok(Cursor {
                key: q.prefix.clone(),
                inclusive: true,
                after_seq: None,
            });
        };
        let after = match q.version_marker.as_deref().filter(|v| !v.is_empty()) {
            _ if q.after_seq.is_some() => q.after_seq,
            Some(v) => {
                check_version_id(v)?;
                let found = self.meta.version(&b.id, m, v, false).await?;
                found.map(|r| r.version_seq)
            }
            None => None,
        };
        Ok(Cursor {
            key: m.to_owned(),
            inclusive: after.is_some(),
            after_seq: after,
        })
    }

    /// The Object Lock state a new version of bucket `b` gets: the request's, else the
    /// bucket's default retention. Lock headers on a bucket without Object Lock are refused.
    pub(super) async fn lock_for_write(&self, b: &BucketRow, req: LockRequest) -> Result<Lock> {
        if !b.object_lock {
            if req != LockRequest::default() {
                return Err(Error::InvalidRequest(
                    "Bucket is missing Object Lock Configuration".into(),
                ));
            }
            return Ok(Lock::default());
        }
        let retention = match req.retention {
            Some(r) => Some(r),
            None => self
                .bucket_config::<DefaultRetention>(&b.id, super::acl::BucketConfig::ObjectLock)
                .await?
                .map(|d| d.from(crate::now_micros())),
        };
        Ok(Lock {
            retention,
            legal_hold: req.legal_hold.unwrap_or(false),
        })
    }

    /// GetObjectLockConfiguration: whether the bucket has Object Lock, and its default.
    pub async fn object_lock(
        &self,
        caller: &Caller,
        bucket: &str,
    ) -> Result<Option<DefaultRetention>> {
        let b = self.bucket(caller, bucket).await?;
        if !b.object_lock {
            return Err(Error::ObjectLockConfigurationNotFound);
        }
        self.bucket_config(&b.id, super::acl::BucketConfig::ObjectLock)
            .await
    }

    /// PutObjectLockConfiguration: turns Object Lock on (a bucket whose versioning is Enabled
    /// may get it after its creation) and sets the default retention.
    pub async fn set_object_lock(
        &self,
        caller: &Caller,
        bucket: &str,
        rule: Option<DefaultRetention>,
    ) -> Result<()> {
        Self::writable(caller)?;
        let b = self.bucket(caller, bucket).await?;
        if !b.object_lock {
            if b.versioning != Versioning::Enabled {
                return Err(Error::InvalidBucketState(
                    "Versioning must be 'Enabled' on the bucket to apply an Object Lock \
                     configuration"
                        .into(),
                ));
            }
            self.meta
                .set_versioning(&b.id, Versioning::Enabled, true)
                .await?;
        }
        let which = super::acl::BucketConfig::ObjectLock;
        self.set_bucket_config(caller, &b.id, which, rule.as_ref())
            .await
    }

    /// A version's lock state (GetObjectRetention, GetObjectLegalHold).
    pub async fn object_lock_state(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Lock> {
        self.lock_bucket(caller, bucket).await?;
        Ok(self
            .object_version(caller, bucket, key, version, false)
            .await?
            .lock)
    }

    /// PutObjectRetention, PutObjectLegalHold.
    pub async fn change_lock(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        change: LockChange,
    ) -> Result<Lock> {
        Self::writable(caller)?;
        if let Some(v) = version {
            check_version_id(v)?;
        }
        let b = self.lock_bucket(caller, bucket).await?;
        match self.meta.set_lock(&b.id, key, version, change).await {
            Ok(Some(lock)) => Ok(lock),
            Ok(None) if version.is_some() => Err(Error::NoSuchVersion),
            Ok(None) => Err(Error::NoSuchKey),
            Err(crate::meta::MetaError::Locked) => Err(Error::AccessDenied),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's bucket, which must have Object Lock.
    async fn lock_bucket(&self, caller: &Caller, bucket: &str) -> Result<BucketRow> {
        let b = self.bucket(caller, bucket).await?;
        if !b.object_lock {
            return Err(Error::InvalidRequest(
                "Bucket is missing Object Lock Configuration".into(),
            ));
        }
        Ok(b)
    }
}

/// Where the next listing statement starts: `key` (itself included or not) and, with
/// `after_seq`, only `key`'s versions older than that one.
struct Cursor {
    key: String,
    inclusive: bool,
    after_seq: Option<i64>,
}

enum Taken {
    /// The page is full and more follow.
    Full,
    /// No key can follow.
    End,
    /// A common prefix moved the cursor past its keys: read again from there.
    Reseek,
    /// Every row was taken.
    All,
}

/// Takes a statement's rows into the page.
fn take(
    out: &mut VersionPage,
    rows: Vec<VersionEntry>,
    roll: Option<Rollup<'_>>,
    marker: Option<&str>,
    max_keys: usize,
    cursor: &mut Cursor,
) -> Taken {
    for e in rows {
        let rolled = roll.and_then(|r| r.common_prefix(&e.key).map(str::to_owned));
        let Some(cp) = rolled else {
            if out.items.len() == max_keys {
                return Taken::Full;
            }
            *cursor = Cursor {
                key: e.key.clone(),
                inclusive: true,
                after_seq: Some(e.version_seq),
            };
            out.items.push(VersionItem::Version(e));
            continue;
        };
        // A marker inside a common prefix: the prefix was on an earlier page.
        let seen = marker.is_some_and(|m| cp.as_str() <= m);
        if !seen && out.items.len() == max_keys {
            return Taken::Full;
        }
        let Some(next) = prefix_successor(&cp) else {
            if !seen {
                out.items.push(VersionItem::Prefix(cp));
            }
            return Taken::End;
        };
        if !seen {
            out.items.push(VersionItem::Prefix(cp));
        }
        *cursor = Cursor {
            key: next,
            inclusive: true,
            after_seq: None,
        };
        return Taken::Reseek;
    }
    Taken::All
}
