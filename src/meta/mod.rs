//! Metadata: the `MetaStore` trait, and its implementations on SQLite (`sqlite`, rusqlite) and
//! PostgreSQL (`postgres`, sqlx). All SQL lives in this module.
//!
//! Shared by both: the schema's shape (`migrations/<db>/0001_init.sql`: the same tables and
//! columns), the statements both run as they are (`statements`), the row decoders (`rows`) and
//! the planning of a commit (`plan`: conditions, the new version, reference changes). Each
//! database writes the version and reference rule once: SQLite in `sqlite::rule`, PostgreSQL in
//! its function `js_commit`.

mod migrations;
mod plan;
mod postgres;
mod rows;
mod sqlite;
mod statements;

use crate::blobs::{ChecksumAlgo, Tier};
use futures::future::BoxFuture;
use std::collections::BTreeMap;

pub use postgres::PgMeta;
pub use sqlite::SqliteMeta;

/// Opens the database named by `url` (`postgres:`/`postgresql:`, else SQLite), migrating it.
pub async fn open(url: &str) -> MetaResult<std::sync::Arc<dyn MetaStore>> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PgMeta::connect(url).await?))
    } else {
        Ok(std::sync::Arc::new(SqliteMeta::connect(url).await?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// SQLite's.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket not empty")]
    BucketNotEmpty,
    #[error("tenant owns buckets")]
    TenantNotEmpty,
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such key")]
    NoSuchKey,
    #[error("precondition failed")]
    PreconditionFailed,
    /// The write would take its bucket or tenant over a quota.
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("no such upload")]
    NoSuchUpload,
    /// The version named is a delete marker, which has no body.
    #[error("the version is a delete marker")]
    DeleteMarker,
    /// The version is under Object Lock (retention or legal hold).
    #[error("the object version is locked")]
    Locked,
    /// CompleteMultipartUpload's part list was rejected by the engine's `assemble` (the error
    /// is the engine's own, passed through).
    #[error("{0}")]
    Rejected(Box<dyn std::error::Error + Send + Sync>),
    #[error("tenant {0:?} not found")]
    NoSuchTenant(String),
    #[error("blob file placement: {0}")]
    Place(std::io::Error),
    #[error("syncing the database log: {0}")]
    Sync(std::io::Error),
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// Another commit of the same SQLite group commit failed with this error; this one was
    /// rolled back with it.
    #[error("group commit failed: {0}")]
    Batch(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type MetaResult<T> = Result<T, MetaError>;

impl MetaError {
    /// The database refused a text value it cannot hold (PostgreSQL: U+0000, SQLSTATE 22021):
    /// the request's input is at fault, not the server.
    pub fn is_unstorable_text(&self) -> bool {
        matches!(self, MetaError::Db(sqlx::Error::Database(d)) if d.code().as_deref() == Some("22021"))
    }

    /// "The database is not reachable now" (retry later) rather than "this request is wrong".
    pub fn is_unavailable(&self) -> bool {
        if let MetaError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) = self {
            // Still locked after the busy timeout (a WAL index being recovered).
            return matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            );
        }
        let MetaError::Db(e) = self else { return false };
        matches!(
            e,
            sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
        ) || matches!(e, sqlx::Error::Database(d)
            if d.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
    }
}

#[derive(Debug, Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret: String,
    pub tenant_id: String,
    pub read_only: bool,
    /// Refused from this time on (microseconds).
    pub expires_at: Option<i64>,
}

impl AccessKey {
    /// Whether the key is past its expiry at `now` (microseconds).
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// A tenant, for the admin surface.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// An access key as the admin surface lists it: never its secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyRow {
    pub access_key_id: String,
    pub tenant_id: String,
    pub tenant: String,
    pub read_only: bool,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct BucketRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub created_at: i64,
    pub versioning: Versioning,
    /// Created with Object Lock (its versioning is Enabled for good).
    pub object_lock: bool,
}

/// A bucket's versioning state. Once enabled it can be suspended, never turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Versioning {
    /// Never enabled: a write replaces the key's only version.
    #[default]
    Unversioned,
    /// Every write adds a version; a DELETE adds a delete marker.
    Enabled,
    /// Writes (and DELETE's markers) replace the key's `null` version; other versions stay.
    Suspended,
}

impl Versioning {
    /// As stored (`buckets.versioning`).
    pub fn as_db(self) -> Option<&'static str> {
        match self {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some("Enabled"),
            Versioning::Suspended => Some("Suspended"),
        }
    }

    pub fn from_db(v: Option<&str>) -> MetaResult<Versioning> {
        match v {
            None => Ok(Versioning::Unversioned),
            Some("Enabled") => Ok(Versioning::Enabled),
            Some("Suspended") => Ok(Versioning::Suspended),
            Some(other) => Err(MetaError::Corrupt(format!("versioning {other:?}"))),
        }
    }

    /// The version id a write in this state gives its version (`id`: the row's).
    pub fn version_id(self, id: &str) -> String {
        match self {
            Versioning::Enabled => id.to_owned(),
            _ => NULL_VERSION.to_owned(),
        }
    }
}

/// The version id of a version written while versioning was not enabled.
pub const NULL_VERSION: &str = "null";

/// Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    /// Users with `x-amz-bypass-governance-retention` may shorten it or delete the version.
    Governance,
    /// No one can shorten it or delete the version before its date.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<LockMode> {
        match s {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A version's Object Lock state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lock {
    /// Retention: mode and the time (microseconds) until which it holds.
    pub retention: Option<(LockMode, i64)>,
    pub legal_hold: bool,
}

impl Lock {
    /// Whether the version may be deleted at `now` (`bypass`: the caller sent
    /// `x-amz-bypass-governance-retention: true`).
    pub fn allows_delete(&self, now: i64, bypass: bool) -> bool {
        if self.legal_hold {
            return false;
        }
        match self.retention {
            Some((_, until)) if until <= now => true,
            Some((LockMode::Governance, _)) => bypass,
            Some((LockMode::Compliance, _)) => false,
            None => true,
        }
    }
}

/// The HTTP representation headers and user metadata stored with an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// HTTP-date, as the client sent it.
    pub expires: Option<String>,
    pub user_meta: BTreeMap<String, String>,
    /// Object tags (`x-amz-tagging`, PutObjectTagging).
    pub tags: BTreeMap<String, String>,
}

/// One stretch of an object's bytes: a whole blob.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub tier: Tier,
    pub hash: String,
    pub size: u64,
    /// The bytes of a blob stored in its row (`INLINE_MAX` or less): set on a PUT's new blob
    /// and on the segments `latest` returns; `None` elsewhere, and for blobs kept in files.
    pub inline: Option<bytes::Bytes>,
}

/// An `x-amz-checksum-*` value as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algo: ChecksumAlgo,
    /// Base64; a composite checksum ends in `-N`.
    pub value: String,
    /// FULL_OBJECT (true) or COMPOSITE (false).
    pub full_object: bool,
}

impl Checksum {
    pub fn type_str(&self) -> &'static str {
        if self.full_object {
            "FULL_OBJECT"
        } else {
            "COMPOSITE"
        }
    }
}

/// A COMMITTED object version.
#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub id: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub headers: ObjectHeaders,
    pub storage_class: String,
    pub created_at: i64,
    pub segments: Vec<Segment>,
    /// Number of parts of a multipart object; `None` for a plain PUT or a copy of one.
    pub parts_count: Option<i32>,
    pub checksum: Option<Checksum>,
    /// A blob of this object failed the scrubber's check: its bytes must not be served.
    pub corrupted: bool,
    /// `NULL_VERSION` or the row's id.
    pub version_id: String,
    /// Position among the key's versions (the current one has the highest).
    pub version_seq: i64,
    pub is_latest: bool,
    /// A delete marker: no body, no headers.
    pub delete_marker: bool,
    pub lock: Lock,
}

/// What a DELETE without a version id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Unversioned bucket: the key had no version.
    Absent,
    /// Unversioned bucket: the key's version went.
    Removed,
    /// Versioned or suspended bucket: a delete marker with this version id is now current.
    Marker(String),
}

/// A version a permanent delete removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedVersion {
    pub delete_marker: bool,
}

/// One version of a ListObjectVersions page.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub key: String,
    pub version_id: String,
    pub version_seq: i64,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub storage_class: String,
    pub created_at: i64,
}

/// One entry of a key-ordered listing page.
#[derive(Debug, Clone)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub storage_class: String,
    pub created_at: i64,
}

/// The smallest string greater than every string starting with `p` (in byte order, which for
/// UTF-8 is code-point order), or `None` when `p` is empty or all U+10FFFF.
pub fn prefix_successor(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(last) = chars.pop() {
        let mut n = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&n) {
            n = 0xE000;
        }
        if let Some(c) = char::from_u32(n) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The keys a listing statement reads: current versions of `bucket_id` from `start` (itself
/// included or not) and below `before`, in key order.
#[derive(Debug, Clone, Copy)]
pub struct KeyRange<'a> {
    pub bucket_id: &'a str,
    pub start: &'a str,
    pub start_inclusive: bool,
    pub before: Option<&'a str>,
}

/// How a delimiter listing rolls keys up: everything after `prefix` up to and including the
/// first `delimiter` (non-empty) is a common prefix.
#[derive(Debug, Clone, Copy)]
pub struct Rollup<'a> {
    pub prefix: &'a str,
    pub delimiter: &'a str,
}

impl Rollup<'_> {
    /// The character that replaces a common prefix's last one (the delimiter's last) to seek
    /// past every key under it; `None` for U+10FFFF.
    pub fn resume_char(&self) -> Option<String> {
        let last = self.delimiter.chars().last()?;
        prefix_successor(last.encode_utf8(&mut [0u8; 4]))
    }

    /// The common prefix `key` rolls up into: `prefix` and the rest of `key` up to and
    /// including its first delimiter; `None` when `key` is outside `prefix` or the rest has no
    /// delimiter.
    pub fn common_prefix<'k>(&self, key: &'k str) -> Option<&'k str> {
        debug_assert!(
            !self.delimiter.is_empty(),
            "an empty delimiter rolls nothing up"
        );
        let rest = key.strip_prefix(self.prefix)?;
        let pos = rest.find(self.delimiter)?;
        Some(&key[..self.prefix.len() + pos + self.delimiter.len()])
    }
}

/// Conditions checked inside the commit transaction (write path, step 4).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-None-Match: *`: only if no current version exists.
    IfNoneMatchAny,
    /// `If-None-Match: "etag"`: unless the current version has this ETag (an absent key passes).
    IfNoneMatch(String),
    /// `If-Match: "etag"`: only if the current version has this ETag (`*`: exists at all).
    IfMatch(Option<String>),
}

/// The commit of a PUT: the new current version of its key.
#[derive(Debug, Clone)]
pub struct PutCommit {
    pub object_id: String,
    pub bucket_id: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub headers: ObjectHeaders,
    pub storage_class: String,
    /// `None` for an empty body: no blob at all.
    pub blob: Option<Segment>,
    pub condition: WriteCondition,
    pub checksum: Option<Checksum>,
    pub lock: Lock,
}

/// A metadata-only copy: the new version points at the source's blobs.
#[derive(Debug, Clone)]
pub struct CopyCommit {
    pub new_id: String,
    pub src_bucket_id: String,
    pub src_key: String,
    /// The source version (`None`: the current one).
    pub src_version: Option<String>,
    pub dst_bucket_id: String,
    pub dst_key: String,
    /// `None`: COPY the source's headers; `Some`: REPLACE them.
    pub headers: Option<ObjectHeaders>,
    /// `None`: COPY the source's tags; `Some`: REPLACE them (independent of `headers`).
    pub tags: Option<BTreeMap<String, String>>,
    pub storage_class: Option<String>,
    /// Checked against the source inside the transaction.
    pub source_condition: SourceCondition,
    pub lock: Lock,
}

/// `x-amz-copy-source-if-*`, evaluated against the source version under the commit's locks.
#[derive(Debug, Clone, Default)]
pub struct SourceCondition {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

/// A change of a version's Object Lock state (PutObjectRetention, PutObjectLegalHold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockChange {
    /// New retention (`None`: removed); `bypass`: `x-amz-bypass-governance-retention`.
    Retention {
        retention: Option<(LockMode, i64)>,
        bypass: bool,
    },
    LegalHold(bool),
}

/// A blob the collector may remove (ref_count 0 for longer than the grace period).
#[derive(Debug, Clone)]
pub struct BlobId {
    pub tier: Tier,
    pub hash: String,
}

/// Placement of a temp file at its content address, run *inside* the commit transaction while
/// the blob row is locked. Must be idempotent (it may run again after a retried transaction).
pub type PlaceFn<'a> = &'a (dyn Fn() -> BoxFuture<'static, std::io::Result<()>> + Send + Sync);

/// A multipart upload in progress, with the headers its object will get.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub upload_id: String,
    pub bucket_id: String,
    pub key: String,
    pub initiated: i64,
    pub tier: Tier,
    pub storage_class: String,
    pub headers: ObjectHeaders,
    /// The checksum algorithm the client chose for the parts (`None`: S3's default, CRC64NVME
    /// full-object, and parts may carry any checksum), and whether the object's is FULL_OBJECT.
    pub checksum_algo: Option<ChecksumAlgo>,
    pub full_object: bool,
    /// The Object Lock state the object gets.
    pub lock: Lock,
}

impl UploadRow {
    /// The algorithm part checksums are stored in.
    pub fn part_algo(&self) -> ChecksumAlgo {
        self.checksum_algo.unwrap_or(ChecksumAlgo::Crc64Nvme)
    }
}

/// One uploaded part; it holds a reference on its blob (none when empty).
#[derive(Debug, Clone)]
pub struct PartRow {
    pub part_number: i32,
    pub size: u64,
    pub etag: String,
    pub created_at: i64,
    pub blob: Option<Segment>,
    /// Base64 checksum of the part, in the upload's algorithm.
    pub checksum: Option<String>,
}

/// One part of a completed multipart object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPart {
    /// Position in the object, from 1 (`?partNumber=` reads by it).
    pub seq: i32,
    /// The number the part was uploaded as.
    pub part_number: i32,
    pub size: u64,
    /// Base64, in the upload's checksum algorithm.
    pub checksum: Option<String>,
}

/// What CompleteMultipartUpload makes of the uploaded parts (decided by the engine).
#[derive(Debug, Clone)]
pub struct Assembled {
    pub etag: String,
    pub size: u64,
    pub parts_count: i32,
    /// The object's segments, in order; their references move from the parts to the object.
    pub segments: Vec<Segment>,
    /// Blobs of uploaded parts the client did not list: released.
    pub unused: Vec<Segment>,
    pub parts: Vec<ObjectPart>,
    pub checksum: Option<Checksum>,
}

/// Txn of CompleteMultipartUpload.
pub struct CompleteCommit<'a> {
    pub upload_id: String,
    pub bucket_id: String,
    pub key: String,
    pub new_id: String,
    pub condition: WriteCondition,
    /// Validates the uploaded parts (in part-number order) against the client's list.
    pub assemble: &'a (dyn Fn(&[PartRow]) -> MetaResult<Assembled> + Send + Sync),
}

/// A blob whose `ref_count` differs from the references that exist (fsck).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefMismatch {
    pub tier: String,
    pub hash: String,
    /// `None`: referenced, but the blob has no row at all.
    pub ref_count: Option<i64>,
    pub actual: i64,
}

/// A `blobs` row as fsck sees it.
#[derive(Debug, Clone)]
pub struct BlobRow {
    pub blob: BlobId,
    pub size: u64,
    pub ref_count: i64,
    pub corrupted: bool,
    /// The bytes are in the row (no file needed).
    pub inline: bool,
}

/// A safe repair of one blob row (fsck --repair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRepair {
    /// Set `ref_count` to the number of references that exist.
    SetRefCount(i64),
    /// Drop a row with no references (its file is gone).
    Delete,
    /// A referenced blob whose file is missing or wrong: refuse to serve it.
    MarkCorrupted,
}

/// What an object access control list belongs to (its row id). A bucket's is one of its
/// `bucket_config`s.
#[derive(Debug, Clone, Copy)]
pub enum AclOf<'a> {
    /// One object version (`ObjectRow::id`).
    Object(&'a str),
    /// A pending multipart upload: the ACL its object gets.
    Upload(&'a str),
}

/// A tenant's or a bucket's limits (`None`: no limit). Bytes count every stored version's size,
/// objects every stored version; delete markers count in neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quota {
    pub bytes: Option<i64>,
    pub objects: Option<i64>,
}

impl Quota {
    pub fn is_set(&self) -> bool {
        self.bytes.is_some() || self.objects.is_some()
    }

    /// Whether a scope holding `held` may take `add` more.
    pub fn admits(&self, held: Held, add: Held) -> bool {
        let within = |limit: Option<i64>, now: i64, more: i64| {
            limit.is_none_or(|l| more <= 0 || now.saturating_add(more) <= l)
        };
        within(self.bytes, held.bytes, add.bytes) && within(self.objects, held.objects, add.objects)
    }
}

/// What a quota scope holds (or a write adds): stored versions and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    pub bytes: i64,
    pub objects: i64,
}

/// A bucket's and its tenant's quotas with what each holds: what a write into the bucket is
/// checked against.
#[derive(Debug, Clone, Default)]
pub struct QuotaState {
    pub bucket_id: String,
    pub tenant_id: String,
    pub bucket: Quota,
    pub tenant: Quota,
    pub bucket_held: Held,
    pub tenant_held: Held,
}

/// What a quota is set on.
#[derive(Debug, Clone, Copy)]
pub enum QuotaOf<'a> {
    Tenant(&'a str),
    Bucket(&'a str),
}

/// What one bucket holds on one tier, as kept with every commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    pub tenant: String,
    pub bucket: String,
    pub tier: String,
    /// Current versions that are not delete markers, and their bytes.
    pub objects: i64,
    pub bytes: i64,
    /// Versions kept besides the current ones (versioning), and their bytes.
    pub noncurrent_versions: i64,
    pub noncurrent_bytes: i64,
    pub delete_markers: i64,
}

/// Physical bytes on one tier attributed to a tenant: each referenced blob's size shared among
/// the tenants whose versions reference it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PhysicalRow {
    pub tenant: String,
    pub tier: String,
    pub bytes: i64,
}

/// The blobs of one tier (`/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobStats {
    pub tier: String,
    /// Blobs kept as files, and their bytes.
    pub files: i64,
    pub file_bytes: i64,
    /// Blobs kept inline in the database, and their bytes.
    pub inline: i64,
    pub inline_bytes: i64,
    /// Blobs no version references, waiting for the collector.
    pub unreferenced: i64,
}

/// A connection pool's state (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open, of which idle, and the most it may open.
    pub size: i64,
    pub idle: i64,
    pub max: i64,
}

/// `fsck`'s check of the usage tables against the rows they summarise.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UsageCheck {
    /// Counters (per tenant, bucket, tier) that differ from a recount: `(kept, recounted)`.
    pub usage: Vec<(UsageRow, UsageRow)>,
    /// Attributed bytes (per tenant, tier) that differ from a recount: `(kept, recounted)`.
    pub physical: Vec<(PhysicalRow, PhysicalRow)>,
}

impl UsageCheck {
    pub fn is_clean(&self) -> bool {
        self.usage.is_empty() && self.physical.is_empty()
    }
}

/// Metered requests and bytes of one tenant's bucket, hour (hours since the Unix epoch) and
/// pricing class (`metering::Class`); summed over a day, `hour` is the day's first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MeterRow {
    pub tenant_id: String,
    pub bucket: String,
    pub hour: i64,
    pub class: String,
    pub requests: i64,
    pub bytes_received: i64,
    pub bytes_sent: i64,
}

/// Which metered figures to read: hours `from..to`, of one tenant and bucket or all, per hour
/// or per day (UTC).
#[derive(Debug, Clone, Copy)]
pub struct MeterQuery<'a> {
    pub tenant_id: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub from_hour: i64,
    pub to_hour: i64,
    pub by_day: bool,
}

/// An admin API bearer token (never the token itself: the database keeps its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminTokenRow {
    pub id: String,
    pub name: String,
    /// `admin` (every call) or `metrics` (`/metrics` only).
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A current version as the admin API's search sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchEntry {
    pub id: String,
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub content_type: Option<String>,
    pub created_at: i64,
}

/// One bucket's step of a search: current versions (not delete markers) created in
/// `(after, before)` (microseconds, exclusive) and before the position `from` (`(created_at,
/// id)`), newest first, `limit` at most.
#[derive(Debug, Clone, Copy)]
pub struct SearchStep<'a> {
    pub bucket_id: &'a str,
    pub from: (i64, &'a str),
    pub after: i64,
    pub before: i64,
    pub limit: usize,
}

#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// A cheap round trip, for `/ready`.
    async fn ping(&self) -> MetaResult<()>;

    // --- tenants and keys ---
    async fn create_tenant(&self, name: &str) -> MetaResult<String>;
    async fn tenant_id(&self, name: &str) -> MetaResult<Option<String>>;
    /// The name of the tenant with id `id` (`None`: no such tenant).
    async fn tenant_name(&self, id: &str) -> MetaResult<Option<String>>;
    async fn create_access_key(
        &self,
        tenant_id: &str,
        access_key_id: &str,
        secret: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> MetaResult<()>;
    /// An enabled key (it may have expired: `AccessKey::expired`).
    async fn access_key(&self, access_key_id: &str) -> MetaResult<Option<AccessKey>>;
    async fn tenant_has_keys(&self, tenant_id: &str) -> MetaResult<bool>;
    async fn tenants(&self) -> MetaResult<Vec<TenantRow>>;
    /// Deletes a tenant and its keys; `TenantNotEmpty` while it owns a bucket. Returns whether
    /// it existed.
    async fn delete_tenant(&self, tenant_id: &str) -> MetaResult<bool>;
    /// Every access key, by tenant name.
    async fn keys(&self) -> MetaResult<Vec<KeyRow>>;
    /// Disables a key (at `at`) or, with `None`, enables it. Returns whether it exists.
    async fn set_key_disabled(&self, access_key_id: &str, at: Option<i64>) -> MetaResult<bool>;
    /// Returns whether it existed.
    async fn delete_access_key(&self, access_key_id: &str) -> MetaResult<bool>;
    /// A number that moves whenever a key loses its rights (disabled, deleted, its tenant
    /// deleted): a server that caches keys drops them when it changes.
    async fn key_epoch(&self) -> MetaResult<i64>;

    // --- buckets ---
    /// `object_lock`: created with Object Lock (and so with versioning Enabled).
    async fn create_bucket(
        &self,
        tenant_id: &str,
        name: &str,
        object_lock: bool,
    ) -> MetaResult<BucketRow>;
    /// Sets a bucket's versioning state and whether it has Object Lock. Returns whether the
    /// bucket exists.
    async fn set_versioning(
        &self,
        bucket_id: &str,
        v: Versioning,
        object_lock: bool,
    ) -> MetaResult<bool>;
    async fn bucket(&self, tenant_id: &str, name: &str) -> MetaResult<Option<BucketRow>>;
    async fn list_buckets(&self, tenant_id: &str) -> MetaResult<Vec<BucketRow>>;
    /// Every bucket (of any tenant) that has a sub-resource of `kind`.
    async fn buckets_with_config(&self, kind: &str) -> MetaResult<Vec<BucketRow>>;
    /// Fails with `BucketNotEmpty` while any version (a delete marker too) exists.
    async fn delete_bucket(&self, bucket_id: &str) -> MetaResult<()>;

    /// A bucket's stored sub-resource of `kind` (the engine names the kinds and owns the
    /// values); `None` when it is not set.
    async fn bucket_config(&self, bucket_id: &str, kind: &str) -> MetaResult<Option<String>>;
    /// Sets (or, with `None`, removes) a bucket's sub-resource. Returns whether the bucket
    /// exists.
    async fn set_bucket_config(
        &self,
        bucket_id: &str,
        kind: &str,
        value: Option<&str>,
    ) -> MetaResult<bool>;
    /// The stored access control list of a version or upload: `None` when it does not exist,
    /// `Some(None)` for the canned `private`.
    async fn acl(&self, of: AclOf<'_>) -> MetaResult<Option<Option<String>>>;
    /// Replaces an access control list. Returns whether the row exists.
    async fn set_acl(&self, of: AclOf<'_>, acl: Option<&str>) -> MetaResult<bool>;

    // --- objects ---
    /// The commit of the write path: inserts the version (its id names the temp file) as the
    /// current one. `NoSuchBucket` if the bucket went away while the body streamed.
    async fn commit_put(&self, c: &PutCommit, place: Option<PlaceFn<'_>>) -> MetaResult<ObjectRow>;
    async fn commit_copy(&self, c: &CopyCommit) -> MetaResult<ObjectRow>;
    /// The current version of `key` in the tenant's bucket named `bucket` (NoSuchBucket when
    /// there is no such bucket). `with_inline`: also the bytes of inline blobs (GET needs them;
    /// HEAD does not, and on PostgreSQL they are a second, TOAST, lookup).
    async fn latest(
        &self,
        tenant_id: &str,
        bucket: &str,
        key: &str,
        with_inline: bool,
    ) -> MetaResult<Option<ObjectRow>>;
    /// A version of `key` by its version id (`NULL_VERSION` too), a delete marker included.
    async fn version(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: &str,
        with_inline: bool,
    ) -> MetaResult<Option<ObjectRow>>;
    /// DELETE without a version id in the tenant's bucket `bucket`, by the bucket's versioning
    /// (`plan::replaced`): unversioned, the key's version goes (DELETING, its blob references
    /// released); else a delete marker becomes current. `None` if there is no such bucket.
    /// The bucket is resolved by the same call (one round trip on PostgreSQL).
    async fn delete_key(
        &self,
        tenant_id: &str,
        bucket: &str,
        key: &str,
    ) -> MetaResult<Option<Deleted>>;
    /// Removes one version for good (DELETING, its references released); if it was current,
    /// the newest remaining version becomes current. `Locked` under Object Lock (`bypass`
    /// lifts GOVERNANCE retention). `None`: no such version.
    async fn delete_version(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: &str,
        bypass: bool,
    ) -> MetaResult<Option<RemovedVersion>>;
    /// Replaces a version's tags (`version_id` `None`: the current one). Returns whether that
    /// version exists and is not a delete marker.
    async fn set_tags(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> MetaResult<bool>;
    /// Changes a version's Object Lock state, checked against the stored one in the same
    /// transaction (`plan::check_lock_change`). Returns the new state (`None`: no such
    /// version).
    async fn set_lock(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: Option<&str>,
        change: LockChange,
    ) -> MetaResult<Option<Lock>>;
    /// Versions of the keys in `range`, in key order and newest first; with `after_seq`, the
    /// range's start key contributes only its versions older than that (`version_seq` below).
    async fn list_versions(
        &self,
        range: KeyRange<'_>,
        after_seq: Option<i64>,
        limit: usize,
    ) -> MetaResult<Vec<VersionEntry>>;
    /// The first `limit` current versions in `range`.
    async fn list_page(&self, range: KeyRange<'_>, limit: usize) -> MetaResult<Vec<ListEntry>>;
    /// A delimiter listing's run of common prefixes, one index seek each: from the start of
    /// `range`, the keys under each common prefix of `roll` come as one entry whose `key`
    /// is that prefix (its other fields are those of the first such key), and the walk goes on
    /// past it, one index seek per prefix, until it reaches a key that rolls up into none
    /// (returned last) or `limit` entries. A delimiter ending in U+10FFFF (no successor for a
    /// prefix's last character) ends the walk at its first common prefix.
    async fn list_walk(
        &self,
        range: KeyRange<'_>,
        roll: Rollup<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>>;

    // --- multipart uploads ---
    async fn create_upload(&self, u: &UploadRow) -> MetaResult<()>;
    async fn upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<Option<UploadRow>>;
    /// Records (or replaces) a part; `place` runs under the new blob's row lock.
    async fn commit_part(
        &self,
        upload_id: &str,
        part: &PartRow,
        place: Option<PlaceFn<'_>>,
    ) -> MetaResult<()>;
    /// Parts with `part_number > after`, in order.
    async fn list_parts(
        &self,
        upload_id: &str,
        after: i32,
        limit: usize,
    ) -> MetaResult<Vec<PartRow>>;
    async fn complete_upload(&self, c: &CompleteCommit<'_>) -> MetaResult<ObjectRow>;
    /// A completed multipart version's parts with `seq > after`, in order (empty for a
    /// version that is not multipart).
    async fn object_parts(
        &self,
        object_id: &str,
        after: i32,
        limit: usize,
    ) -> MetaResult<Vec<ObjectPart>>;
    /// Releases every part's reference and forgets the upload. Returns whether it existed.
    async fn abort_upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<bool>;
    /// Uploads with `(key, upload_id) > (after_key, after_id)` and `key` starting with `prefix`,
    /// in that order.
    async fn list_uploads(
        &self,
        bucket_id: &str,
        prefix: &str,
        after_key: &str,
        after_id: &str,
        limit: usize,
    ) -> MetaResult<Vec<UploadRow>>;
    /// Uploads initiated before `cutoff`: `(bucket_id, upload_id)`.
    async fn stale_uploads(&self, cutoff: i64, limit: usize) -> MetaResult<Vec<(String, String)>>;

    // --- maintenance (workers) ---
    /// Removes DELETING rows (and their segments) deleted before `cutoff`. Returns the count.
    async fn purge_deleted(&self, cutoff: i64, limit: usize) -> MetaResult<u64>;
    /// Blobs with `ref_count = 0` since before `cutoff`.
    async fn collectable_blobs(&self, cutoff: i64, limit: usize) -> MetaResult<Vec<BlobId>>;
    /// Re-checks one blob under its row lock and, if still collectable, runs `unlink` and deletes
    /// the row in the same transaction. Returns whether it was collected.
    async fn collect_blob(
        &self,
        blob: &BlobId,
        cutoff: i64,
        unlink: PlaceFn<'_>,
    ) -> MetaResult<bool>;
    /// What every bucket holds per tier, from the counters kept with every commit.
    async fn usage(&self) -> MetaResult<Vec<UsageRow>>;
    /// Physical bytes attributed to each tenant per tier, kept with every commit.
    async fn physical(&self) -> MetaResult<Vec<PhysicalRow>>;
    /// Takes or renews the lease `name` for `holder` until `until` (Unix seconds) if no other
    /// holder's lease runs past `now`; true when `holder` holds it.
    async fn take_lease(&self, name: &str, holder: &str, now: i64, until: i64) -> MetaResult<bool>;
    /// Gives up the lease `name` if `holder` has it (a gateway stopping hands it on at once).
    async fn release_lease(&self, name: &str, holder: &str) -> MetaResult<()>;
    /// Blobs per tier (a scan of the blob rows).
    async fn blob_stats(&self) -> MetaResult<Vec<BlobStats>>;
    /// The connection pool's state, where the store has one.
    fn pool_state(&self) -> Option<PoolState> {
        None
    }
    /// Recounts usage and attribution from the version and segment rows and compares them with
    /// the kept figures; with `repair`, replaces the kept figures by the recount (in one
    /// transaction). Returns the differences found.
    async fn check_usage(&self, repair: bool) -> MetaResult<UsageCheck>;
    /// A bucket's and its tenant's quotas, with what each holds where it has one (`None`: no
    /// such bucket).
    async fn quota_state(&self, bucket_id: &str) -> MetaResult<Option<QuotaState>>;
    /// Sets a tenant's or a bucket's quota (both limits at once). Returns whether it exists.
    async fn set_quota(&self, of: QuotaOf<'_>, q: Quota) -> MetaResult<bool>;
    /// A tenant's or a bucket's quota (`None`: no such tenant or bucket).
    async fn quota(&self, of: QuotaOf<'_>) -> MetaResult<Option<Quota>>;
    /// Stores a new admin token by its SHA-256 (hex).
    async fn create_admin_token(&self, t: &AdminTokenRow, sha256: &str) -> MetaResult<()>;
    async fn admin_tokens(&self) -> MetaResult<Vec<AdminTokenRow>>;
    /// The token whose SHA-256 is `sha256` (revoked ones too).
    async fn admin_token(&self, sha256: &str) -> MetaResult<Option<AdminTokenRow>>;
    /// Revokes a token for good. Returns whether an unrevoked token had that id.
    async fn revoke_admin_token(&self, id: &str, at: i64) -> MetaResult<bool>;
    /// One bucket's step of an admin search, from the index `objects_created`.
    async fn search_step(&self, s: SearchStep<'_>) -> MetaResult<Vec<SearchEntry>>;
    /// Adds metered figures to the stored ones (in one transaction).
    async fn add_metering(&self, rows: &[MeterRow]) -> MetaResult<()>;
    /// Metered figures, summed per hour or per day, by period, tenant, bucket and class.
    async fn metering(&self, q: MeterQuery<'_>) -> MetaResult<Vec<MeterRow>>;
    /// Blobs whose `ref_count` is not the number of COMMITTED segments plus upload parts that
    /// point at them, and references to blobs without a row. Empty when consistent.
    async fn refcount_mismatches(&self) -> MetaResult<Vec<RefMismatch>>;
    /// Scrubber: intact blobs, least recently verified first.
    async fn blobs_to_verify(&self, limit: usize) -> MetaResult<Vec<BlobRow>>;
    /// The bytes of an inline blob (`None`: no row, or the blob is in a file).
    async fn blob_data(&self, blob: &BlobId) -> MetaResult<Option<Vec<u8>>>;
    /// Records a verification; a mismatch marks the blob corrupted (for good).
    async fn mark_verified(&self, blob: &BlobId, intact: bool) -> MetaResult<()>;
    /// fsck: blob rows with `hash > after`, in hash order.
    async fn blob_rows(&self, after: &str, limit: usize) -> MetaResult<Vec<BlobRow>>;
    async fn blob_exists(&self, blob: &BlobId) -> MetaResult<bool>;
    /// Gives a blob file that no row knows (left by a crash or a failed commit after `place`) a
    /// row with no references, so the collector removes it under the GC invariant. A row that
    /// already exists is left alone. Returns whether a row was created.
    async fn adopt_blob(&self, blob: &BlobId, size: u64) -> MetaResult<bool>;
    async fn repair_blob(&self, blob: &BlobId, fix: BlobRepair) -> MetaResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SQLite read still locked after its busy timeout is "unavailable" (a 503 the
    /// client retries), like a lost PostgreSQL connection; other SQLite failures are not.
    #[test]
    fn a_busy_sqlite_read_is_unavailable() {
        let failure = |code| {
            MetaError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert!(failure(rusqlite::ffi::SQLITE_BUSY).is_unavailable());
        assert!(failure(rusqlite::ffi::SQLITE_LOCKED).is_unavailable());
        assert!(!failure(rusqlite::ffi::SQLITE_CORRUPT).is_unavailable());
        assert!(
            !MetaError::Sqlite(rusqlite::Error::InvalidColumnName("x".into())).is_unavailable()
        );
    }

    #[test]
    fn common_prefix_rolls_up_at_first_delimiter() {
        let roll = |prefix, delimiter| Rollup { prefix, delimiter };
        assert_eq!(roll("", "/").common_prefix("a/b/c"), Some("a/"));
        assert_eq!(roll("a/", "/").common_prefix("a/b/c"), Some("a/b/"));
        assert_eq!(roll("a/", "/").common_prefix("a/b"), None);
        assert_eq!(roll("b/", "/").common_prefix("a/b/c"), None);
        assert_eq!(roll("", "::").common_prefix("ab::c"), Some("ab::"));
        assert_eq!(roll("ü", "é").common_prefix("üxéy"), Some("üxé"));
    }

    #[test]
    fn successor_orders_after_every_extension() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        for p in ["a/", "ü/", "x\u{7F}", "photos/2024/"] {
            let s = prefix_successor(p).unwrap();
            for ext in ["", "\u{0}", "zzz", "\u{10FFFF}\u{10FFFF}"] {
                let k = format!("{p}{ext}");
                assert!(k.as_bytes() < s.as_bytes(), "{k:?} < {s:?}");
            }
            assert!(p.as_bytes() < s.as_bytes());
        }
    }
}
