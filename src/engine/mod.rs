//! Object semantics: buckets, the write path, reads, copies, deletes and listings.
//!
//! The engine never parses HTTP or XML: the `s3` layer hands it typed requests and a body
//! stream. It never writes SQL (that is `meta`) nor touches paths (that is `blobs`).

pub mod acl;
mod admin;
mod bucket_access;
mod checksum;
pub mod cors;
mod error;
mod keys;
pub mod lifecycle;
mod list;
mod multipart;
pub mod policy;
mod quota;
mod read;
mod search;
mod torrent;
mod versions;

pub use admin::{
    MeterRange, MeterReport, ROOT_TENANT, StoreFigures, TenantUsage, TokenScope, UsageReport,
    generate_key, rfc3339,
};
pub use bucket_access::{BucketAccess, OWNER_ENFORCED};
pub use checksum::{ChecksumSpec, TrailerValue};
pub use error::{Error, Result};
pub use list::{ListItem, ListQuery, ListResult};
pub use multipart::{
    CompleteChecksum, ListedPart, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, UploadChecksum,
    UploadItem, UploadList, UploadQuery,
};
pub use read::{BodyStream, ByteRange};
pub use search::{SearchItem, SearchPage, SearchQuery};
pub use versions::{
    DefaultRetention, DeleteOutcome, LockRequest, RetentionPeriod, VersionItem, VersionPage,
    VersionQuery, check_version_id,
};

use crate::blobs::{BlobStore, BodyError, Tier};
use crate::meta::{
    AccessKey, BucketRow, CopyCommit, Lock, MetaStore, ObjectHeaders, ObjectRow, PutCommit,
    Segment, SourceCondition, WriteCondition,
};
use bytes::Bytes;
use futures::{FutureExt, Stream};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Limits on everything a client controls (DESIGN.md, "Tenancy, auth, limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest single PUT (S3: 5 GiB; larger objects are multipart, up to 10,000 × 5 GiB).
    pub max_put_size: u64,
    pub max_key_bytes: usize,
    pub max_user_meta_bytes: usize,
    /// PUT bodies up to this size are kept in the database, not in a file: a small write then
    /// costs one transaction and one log fsync instead of a file create, fsync, link, directory
    /// fsync and unlink. At most `blobs::INLINE_LIMIT`.
    pub inline_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_put_size: 5 << 30,
            max_key_bytes: 1024,
            max_user_meta_bytes: 2048,
            inline_max: 16 << 10,
        }
    }
}

/// Who is asking: resolved from the access key of a verified request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    pub read_only: bool,
}

/// Everything a PUT carries besides its body.
#[derive(Debug, Clone, Default)]
pub struct PutRequest {
    pub headers: ObjectHeaders,
    pub storage_class: Option<String>,
    /// Decoded `Content-MD5`, verified before the object becomes visible.
    pub content_md5: Option<[u8; 16]>,
    pub condition: WriteCondition,
    pub checksum: ChecksumSpec,
    /// The signed `x-amz-decoded-content-length` of an aws-chunked body: the bytes must match.
    pub expected_size: Option<u64>,
    /// The request's `Content-Length` (of an aws-chunked body: its encoded length).
    pub content_length: Option<u64>,
    pub lock: LockRequest,
}

/// A CopyObject request (metadata-only: the new version shares the source's blobs).
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// The tenant whose bucket `src_bucket` is (`None`: the caller's); access control checked
    /// that the caller may read the source.
    pub src_tenant: Option<String>,
    pub src_bucket: String,
    pub src_key: String,
    /// The source version (`None`: the current one).
    pub src_version: Option<String>,
    /// `None`: COPY the source's headers; `Some`: REPLACE them.
    pub headers: Option<ObjectHeaders>,
    /// `None`: COPY the source's tags; `Some`: REPLACE them.
    pub tags: Option<BTreeMap<String, String>>,
    pub storage_class: Option<String>,
    pub source_condition: SourceCondition,
    pub lock: LockRequest,
}

#[derive(Clone)]
pub struct Engine {
    meta: Arc<dyn MetaStore>,
    blobs: BlobStore,
    limits: Limits,
    keys: Arc<keys::KeyCache>,
    access: Arc<bucket_access::AccessCache>,
    /// This process among the gateways sharing the database (the holder of worker leases).
    instance: Arc<str>,
    /// `store_figures`' last answer and when it was read.
    store_figures: Arc<tokio::sync::Mutex<Option<admin::StoreFiguresRead>>>,
}

impl Engine {
    pub fn new(meta: Arc<dyn MetaStore>, blobs: BlobStore, limits: Limits) -> Engine {
        Engine {
            meta,
            blobs,
            limits,
            keys: Arc::default(),
            access: Arc::default(),
            instance: uuid::Uuid::new_v4().simple().to_string().into(),
            store_figures: Arc::default(),
        }
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// This process's id among the gateways that share the database.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Drops cached keys when one loses its rights, until `stop` fires (run by `serve`).
    pub async fn watch_keys(&self, stop: tokio::sync::watch::Receiver<bool>) {
        keys::watch(self.keys.clone(), self.meta.clone(), stop).await
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// An enabled access key that has not expired (cached for a couple of seconds; unknown
    /// keys are not cached; expiry is checked on every use).
    pub async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        let now = crate::now_micros();
        if let Some(k) = self.keys.get(access_key_id) {
            return Ok((!k.expired(now)).then_some(k));
        }
        let found = self.meta.access_key(access_key_id).await?;
        if let Some(k) = &found {
            self.keys.put(k);
        }
        Ok(found.filter(|k| !k.expired(now)))
    }

    pub async fn caller(&self, access_key_id: &str) -> Result<Caller> {
        let key = self
            .access_key(access_key_id)
            .await?
            .ok_or(Error::AccessDenied)?;
        Ok(Caller {
            tenant_id: key.tenant_id,
            read_only: key.read_only,
        })
    }

    fn writable(caller: &Caller) -> Result<()> {
        if caller.read_only {
            return Err(Error::AccessDenied);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- buckets

    /// `object_lock`: with Object Lock (and so versioning Enabled for good).
    pub async fn create_bucket(
        &self,
        caller: &Caller,
        name: &str,
        object_lock: bool,
    ) -> Result<BucketRow> {
        Self::writable(caller)?;
        match self
            .meta
            .create_bucket(&caller.tenant_id, name, object_lock)
            .await
        {
            Err(crate::meta::MetaError::BucketExists) => Err(Error::BucketAlreadyOwnedByYou),
            r => Ok(r?),
        }
    }

    /// The caller's bucket; another tenant's bucket of the same name is `NoSuchBucket` too.
    pub async fn bucket(&self, caller: &Caller, name: &str) -> Result<BucketRow> {
        self.meta
            .bucket(&caller.tenant_id, name)
            .await?
            .ok_or(Error::NoSuchBucket)
    }

    pub async fn list_buckets(&self, caller: &Caller) -> Result<Vec<BucketRow>> {
        Ok(self.meta.list_buckets(&caller.tenant_id).await?)
    }

    pub async fn delete_bucket(&self, caller: &Caller, name: &str) -> Result<()> {
        Self::writable(caller)?;
        let b = self.bucket(caller, name).await?;
        self.meta.delete_bucket(&b.id).await?;
        self.access.forget(&b.id);
        Ok(())
    }

    // ---------------------------------------------------------------- objects

    fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(Error::InvalidArgument(
                "object key must not be empty".into(),
            ));
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(Error::KeyTooLong);
        }
        refuse_nul([key])
    }

    fn check_headers(&self, h: &ObjectHeaders) -> Result<()> {
        let bytes: usize = h.user_meta.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > self.limits.max_user_meta_bytes {
            return Err(Error::MetadataTooLarge);
        }
        let fields = [
            &h.content_type,
            &h.content_encoding,
            &h.content_disposition,
            &h.content_language,
            &h.cache_control,
            &h.expires,
        ];
        refuse_nul(fields.into_iter().flatten().map(String::as_str))?;
        refuse_nul(
            h.user_meta
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        )?;
        check_tags(&h.tags)
    }

    /// A version's tags (`version` `None`: the current one's).
    pub async fn get_tags(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<BTreeMap<String, String>> {
        let row = self
            .object_version(caller, bucket, key, version, false)
            .await?;
        Ok(row.headers.tags)
    }

    /// Replaces a version's tags (empty: removes them).
    pub async fn set_tags(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        Self::writable(caller)?;
        check_tags(tags)?;
        if let Some(v) = version {
            check_version_id(v)?;
        }
        let b = self.bucket(caller, bucket).await?;
        if self.meta.set_tags(&b.id, key, version, tags).await? {
            return Ok(());
        }
        // Nothing tagged: a delete marker (405 by version, 404 as the current version, with
        // `x-amz-delete-marker`), or nothing at all.
        let missing = match version {
            Some(_) => Error::NoSuchVersion,
            None => Error::NoSuchKey,
        };
        let found = self
            .object_version(caller, bucket, key, version, false)
            .await;
        Err(found.err().unwrap_or(missing))
    }

    /// The write path: streamed, hashed, fsynced temp file (the WRITING state: the file is
    /// named by the new version's id) → verification → blob placed at its content address →
    /// one commit transaction that inserts the version and takes the blob reference.
    pub async fn put_object<S>(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        req: PutRequest,
        body: S,
    ) -> Result<ObjectRow>
    where
        S: Stream<Item = std::result::Result<Bytes, BodyError>> + Send,
    {
        Self::writable(caller)?;
        self.check_key(key)?;
        self.check_headers(&req.headers)?;
        let (storage_class, tier) = storage_tier(req.storage_class.as_deref())?;
        let b = self.bucket(caller, bucket).await?;
        let lock = self.lock_for_write(&b, req.lock).await?;
        if let Some(size) = req.expected_size.or(req.content_length) {
            let bytes = i64::try_from(size).unwrap_or(i64::MAX);
            let add = crate::meta::Held { bytes, objects: 1 };
            self.precheck_quota(&b, key, add).await?;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let result = self
            .write_and_commit(&id, &b, key, (tier, storage_class, lock), req, body)
            .await;
        if result.is_err() {
            // Nothing became visible; leave no temp file behind (the sweep takes what a crash
            // leaves).
            let _ = self.blobs.remove_temp(tier, &id).await;
        }
        result
    }

    async fn write_and_commit<S>(
        &self,
        id: &str,
        b: &BucketRow,
        key: &str,
        (tier, storage_class, lock): (Tier, String, Lock),
        req: PutRequest,
        body: S,
    ) -> Result<ObjectRow>
    where
        S: Stream<Item = std::result::Result<Bytes, BodyError>> + Send,
    {
        let written = self
            .blobs
            .write_temp(
                tier,
                id,
                body,
                self.limits.max_put_size,
                self.limits.inline_max,
                &[req.checksum.effective()],
            )
            .await?;
        if let Some(want) = req.content_md5
            && want != written.md5
        {
            return Err(Error::BadDigest);
        }
        if let Some(n) = req.expected_size
            && n != written.size
        {
            return Err(Error::IncompleteBody(format!(
                "x-amz-decoded-content-length says {n} bytes, the body had {}",
                written.size
            )));
        }
        let checksum = checksum::settle(&req.checksum, &written)?;
        crate::fault::crash_point(crate::fault::Fault::AfterTempWrite);
        let hash = hex::encode(written.sha256);
        let inline = written.inline.is_some();
        let blob = (written.size > 0).then(|| Segment {
            tier,
            hash: hash.clone(),
            size: written.size,
            inline: written.inline,
        });
        if blob.is_none() && !inline {
            // An empty object has no segments and needs no file.
            self.blobs.remove_temp(tier, id).await?;
        }
        let commit = PutCommit {
            object_id: id.to_owned(),
            bucket_id: b.id.clone(),
            key: key.to_owned(),
            size: written.size,
            etag: hex::encode(written.md5),
            headers: req.headers,
            storage_class,
            blob,
            condition: req.condition,
            checksum: Some(checksum),
            lock,
        };
        if commit.blob.is_none() || inline {
            // No file to place: the bytes (if any) go into the database with the blob's row.
            return Ok(self.meta.commit_put(&commit, None).await?);
        }
        let place = self.placer(tier, id, &hash, written.size).await?;
        let committed = self.meta.commit_put(&commit, Some(&place)).await;
        self.blobs.drop_temp(tier, id);
        if committed.is_err() {
            self.adopt_orphan(tier, &hash, written.size).await;
        }
        Ok(committed?)
    }

    /// Write path step 3a, before the commit: places the temp file at its content address
    /// (`BlobStore::place`). Returns the re-check the commit runs under the blob's row lock.
    async fn placer(
        &self,
        tier: Tier,
        tmp: &str,
        hash: &str,
        size: u64,
    ) -> Result<
        impl Fn() -> futures::future::BoxFuture<'static, std::io::Result<()>> + Send + Sync + use<>,
    > {
        let placed = match self.blobs.place(tier, tmp, hash, size).await {
            Ok(p) => p,
            Err(e) => {
                // It may be linked without a row (e.g. the directory fsync failed).
                self.adopt_orphan(tier, hash, size).await;
                return Err(e.into());
            }
        };
        crate::fault::crash_point(crate::fault::Fault::AfterPlace);
        let (blobs, tmp, hash) = (self.blobs.clone(), tmp.to_owned(), hash.to_owned());
        Ok(move || {
            let (blobs, tmp, hash) = (blobs.clone(), tmp.clone(), hash.clone());
            async move { blobs.confirm(tier, &tmp, &hash, placed).await }.boxed()
        })
    }

    /// After a failed commit the blob may have been placed with its row rolled back: hand such a
    /// file to the collector. Best effort: the startup scan catches whatever this misses.
    pub(crate) async fn adopt_orphan(&self, tier: Tier, hash: &str, size: u64) {
        if size == 0 || !self.blobs.blob_file_exists(tier, hash) {
            return;
        }
        let blob = crate::meta::BlobId {
            tier,
            hash: hash.to_owned(),
        };
        if let Err(e) = self.meta.adopt_blob(&blob, size).await {
            tracing::warn!(%hash, error = %e, "could not adopt a blob file; the startup scan will");
        }
    }

    /// The current version of a key, without the bytes of inline blobs (HEAD, attributes).
    pub async fn head_object(&self, caller: &Caller, bucket: &str, key: &str) -> Result<ObjectRow> {
        self.object_version(caller, bucket, key, None, false).await
    }

    /// The current version of a key, ready for `open_body` (inline blobs carry their bytes).
    pub async fn get_object(&self, caller: &Caller, bucket: &str, key: &str) -> Result<ObjectRow> {
        self.object_version(caller, bucket, key, None, true).await
    }

    /// A body stream of `range` of `row` (whole object when `None`). The first blob is opened
    /// before returning, so a missing file fails the request before any header is sent.
    pub async fn open_body(&self, row: &ObjectRow, range: Option<ByteRange>) -> Result<BodyStream> {
        if row.corrupted {
            // Fail loudly rather than serve bytes that are known to be wrong.
            tracing::error!(key = %row.key, id = %row.id, "refusing to serve a corrupted object");
            crate::metrics::CORRUPTED_READS.inc();
            return Err(Error::Corrupted);
        }
        let range = range.unwrap_or(ByteRange {
            start: 0,
            end: row.size,
        });
        read::open(&self.blobs, &row.segments, range).await
    }

    pub async fn copy_object(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        req: CopyRequest,
    ) -> Result<ObjectRow> {
        Self::writable(caller)?;
        self.check_key(key)?;
        refuse_nul([req.src_key.as_str()])?;
        if let Some(h) = &req.headers {
            self.check_headers(h)?;
        }
        if let Some(t) = &req.tags {
            check_tags(t)?;
        }
        let storage_class = match req.storage_class.as_deref() {
            Some(sc) => Some(storage_tier(Some(sc))?.0),
            None => None,
        };
        if let Some(v) = &req.src_version {
            check_version_id(v)?;
        }
        let src_owner = Caller {
            tenant_id: req.src_tenant.unwrap_or_else(|| caller.tenant_id.clone()),
            read_only: true,
        };
        let src = self.bucket(&src_owner, &req.src_bucket).await?;
        let dst = self.bucket(caller, bucket).await?;
        let lock = self.lock_for_write(&dst, req.lock).await?;
        let commit = CopyCommit {
            new_id: uuid::Uuid::now_v7().to_string(),
            src_bucket_id: src.id,
            src_key: req.src_key,
            src_version: req.src_version,
            lock,
            dst_bucket_id: dst.id,
            dst_key: key.to_owned(),
            headers: req.headers,
            tags: req.tags,
            storage_class,
            source_condition: req.source_condition,
        };
        Ok(self.meta.commit_copy(&commit).await?)
    }

    pub async fn list_objects(
        &self,
        caller: &Caller,
        bucket: &str,
        q: &ListQuery,
    ) -> Result<ListResult> {
        let b = self.bucket(caller, bucket).await?;
        list::list(self.meta.as_ref(), &b.id, q).await
    }
}

/// Text from headers, forms and XML bodies that reaches the database: no U+0000 (see
/// `NUL_REFUSED`; the path and query are checked before the engine).
fn refuse_nul<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<()> {
    match texts.into_iter().any(|t| t.contains('\0')) {
        true => Err(Error::InvalidArgument(error::NUL_REFUSED.into())),
        false => Ok(()),
    }
}

/// An object carries at most this many tags; a bucket at most `MAX_BUCKET_TAGS`.
pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;

/// S3's limits on an object's tags (see `check_tag_set`).
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_OBJECT_TAGS {
        return Err(Error::InvalidTag(
            "Object tags cannot be greater than 10".into(),
        ));
    }
    check_tag_set(tags)
}

/// S3's tag limits: keys 1–128 and values 0–256 characters; no U+0000.
pub fn check_tag_set(tags: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || k.contains('\0') {
            return Err(Error::InvalidTag(
                "The TagKey you have provided is invalid".into(),
            ));
        }
        if v.chars().count() > 256 || v.contains('\0') {
            return Err(Error::InvalidTag(
                "The TagValue you have provided is invalid".into(),
            ));
        }
    }
    Ok(())
}

/// S3 storage class → (stored class name, tier). STANDARD lives on the hot tier; the
/// infrequent-access classes on the cold one.
pub fn storage_tier(class: Option<&str>) -> Result<(String, Tier)> {
    let class = class.unwrap_or("STANDARD");
    let tier = match class {
        "STANDARD" | "REDUCED_REDUNDANCY" => Tier::Hot,
        "STANDARD_IA" | "ONEZONE_IA" | "GLACIER_IR" | "COLD" => Tier::Cold,
        _ => return Err(Error::InvalidStorageClass),
    };
    Ok((class.to_owned(), tier))
}
