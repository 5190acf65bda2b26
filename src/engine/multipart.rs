//! Multipart uploads. Each part is a content-addressed blob holding its own reference;
//! CompleteMultipartUpload moves those references to the object's segments in one transaction,
//! so completion costs O(parts) rows and moves no bytes.

use super::checksum::{self, ChecksumSpec};
use super::{ByteRange, Caller, Engine, Error, Result, storage_tier};
use crate::blobs::{BodyError, ChecksumAlgo};
use crate::meta::{
    AclOf, Assembled, Checksum, CompleteCommit, MetaError, ObjectHeaders, ObjectPart, ObjectRow,
    PartRow, Segment, SourceCondition, UploadRow, WriteCondition,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};

/// Part numbers run from 1 to this (S3's limit).
pub const MAX_PARTS: i32 = 10_000;
/// Largest part (S3: 5 GiB).
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// Every part but the last must be at least this big (S3: 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// One entry of CompleteMultipartUpload's list.
#[derive(Debug, Clone)]
pub struct ListedPart {
    pub part_number: i32,
    pub etag: String,
    /// The part checksum the client lists (base64), verified against the stored one.
    pub checksum: Option<String>,
}

/// CompleteMultipartUpload's checksum expectations.
#[derive(Debug, Clone, Default)]
pub struct CompleteChecksum {
    /// A whole-object checksum header (`x-amz-checksum-*`) and its algorithm.
    pub expected: Option<(ChecksumAlgo, String)>,
}

/// CreateMultipartUpload's checksum choice: algorithm and type (`None`: S3's default).
#[derive(Debug, Clone, Default)]
pub struct UploadChecksum {
    pub algo: Option<ChecksumAlgo>,
    pub full_object: Option<bool>,
}

impl UploadChecksum {
    /// S3's rules: no algorithm → CRC64NVME full-object; CRC64NVME is full-object only; other
    /// algorithms default to COMPOSITE; SHA algorithms cannot be full-object.
    fn resolve(&self) -> Result<(Option<ChecksumAlgo>, bool)> {
        let algo = self.algo.unwrap_or(ChecksumAlgo::Crc64Nvme);
        let full = self
            .full_object
            .unwrap_or(algo == ChecksumAlgo::Crc64Nvme || self.algo.is_none());
        match (algo.crc(), full) {
            (None, true) => Err(Error::InvalidChecksum(format!(
                "The FULL_OBJECT checksum type cannot be used with the {} algorithm.",
                algo.as_str()
            ))),
            _ if algo == ChecksumAlgo::Crc64Nvme && !full => Err(Error::InvalidChecksum(
                "The COMPOSITE checksum type cannot be used with the CRC64NVME algorithm.".into(),
            )),
            _ => Ok((self.algo, full)),
        }
    }
}

#[derive(Debug, Clone)]
pub enum UploadItem {
    Upload(Box<UploadRow>),
    Prefix(String),
}

#[derive(Debug, Clone, Default)]
pub struct UploadList {
    pub items: Vec<UploadItem>,
    pub truncated: bool,
}

/// ListMultipartUploads parameters.
#[derive(Debug, Clone, Default)]
pub struct UploadQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub max_uploads: usize,
}

fn check_part_number(n: i32) -> Result<()> {
    if !(1..=MAX_PARTS).contains(&n) {
        return Err(Error::InvalidArgument(format!(
            "Part number must be an integer between 1 and {MAX_PARTS}, inclusive"
        )));
    }
    Ok(())
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// The checksums a part computes: the stored one, and the client's if it differs.
fn part_algos(up: &UploadRow, spec: &ChecksumSpec) -> Vec<ChecksumAlgo> {
    let mut v = vec![up.part_algo()];
    if let Some(a) = spec.algo
        && a != up.part_algo()
    {
        v.push(a);
    }
    v
}

/// What a retried CompleteMultipartUpload must match: the version its upload made, and the
/// ETag its list of parts gives.
struct Retry {
    version_id: String,
    etag: Option<String>,
}

/// The multipart ETag of a list of part ETags (`None` if one is not an MD5).
fn multipart_etag(listed: &[&ListedPart]) -> Option<String> {
    let mut md5s = Md5::new();
    for p in listed {
        md5s.update(hex::decode(unquote(&p.etag)).ok()?);
    }
    Some(format!("{}-{}", hex::encode(md5s.finalize()), listed.len()))
}

/// The entries of a CompleteMultipartUpload list that count: a part number listed twice (a
/// client that resent a part and kept both answers) counts once, by its last entry, as the
/// upload that finished last is the part that is stored.
fn counted(listed: &[ListedPart]) -> Vec<&ListedPart> {
    listed
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            listed
                .get(i + 1)
                .is_none_or(|n| n.part_number != p.part_number)
        })
        .map(|(_, p)| p)
        .collect()
}

/// S3's rules for a CompleteMultipartUpload list, and the resulting object.
fn assemble(
    up: &UploadRow,
    listed: &[ListedPart],
    uploaded: &[PartRow],
    want: &CompleteChecksum,
) -> Result<Assembled> {
    if listed.is_empty() {
        return Err(Error::MalformedXml(
            "You must specify at least one part".into(),
        ));
    }
    if listed
        .windows(2)
        .any(|w| w[0].part_number > w[1].part_number)
    {
        return Err(Error::InvalidPartOrder);
    }
    let listed = counted(listed);
    let mut segments = Vec::with_capacity(listed.len());
    let mut size = 0u64;
    let mut used = std::collections::HashSet::with_capacity(listed.len());
    let mut chosen: Vec<&PartRow> = Vec::with_capacity(listed.len());
    let mut parts = Vec::with_capacity(listed.len());
    for (i, want) in listed.iter().enumerate() {
        let part = uploaded
            .binary_search_by_key(&want.part_number, |p| p.part_number)
            .ok()
            .map(|j| &uploaded[j])
            .filter(|p| p.etag == unquote(&want.etag))
            .ok_or_else(|| Error::InvalidPart(want.part_number))?;
        if let Some(c) = &want.checksum
            && part.checksum.as_deref() != Some(c.trim())
        {
            return Err(Error::InvalidPart(want.part_number));
        }
        chosen.push(part);
        parts.push(ObjectPart {
            seq: i32::try_from(i + 1).unwrap_or(i32::MAX),
            part_number: part.part_number,
            size: part.size,
            checksum: part.checksum.clone(),
        });
        let last = i + 1 == listed.len();
        if !last && part.size < MIN_PART_SIZE {
            return Err(Error::EntityTooSmall);
        }
        size += part.size;
        segments.extend(part.blob.clone());
        used.insert(part.part_number);
    }
    let checksum = checksum::assemble(up.part_algo(), up.full_object, &chosen)?;
    if let Some((algo, v)) = &want.expected
        && (*algo != checksum.algo || v.trim() != checksum.value)
    {
        return Err(Error::ChecksumMismatch(*algo));
    }
    let unused: Vec<Segment> = uploaded
        .iter()
        .filter(|p| !used.contains(&p.part_number))
        .filter_map(|p| p.blob.clone())
        .collect();
    // Each listed ETag is its part's (checked above), so this is S3's MD5 of the parts' MD5s.
    let etag = multipart_etag(&listed).ok_or(Error::InvalidPart(listed[0].part_number))?;
    Ok(Assembled {
        etag,
        size,
        parts_count: i32::try_from(listed.len()).unwrap_or(i32::MAX),
        segments,
        unused,
        parts,
        checksum: Some(checksum),
    })
}

impl Engine {
    async fn upload_of(&self, bucket_id: &str, key: &str, upload_id: &str) -> Result<UploadRow> {
        match self.meta.upload(bucket_id, upload_id).await? {
            Some(u) if u.key == key => Ok(u),
            _ => Err(Error::NoSuchUpload),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create_upload(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        headers: ObjectHeaders,
        storage_class: Option<&str>,
        checksum: &UploadChecksum,
        lock: super::LockRequest,
    ) -> Result<UploadRow> {
        Self::writable(caller)?;
        self.check_key(key)?;
        self.check_headers(&headers)?;
        let (storage_class, tier) = storage_tier(storage_class)?;
        let (checksum_algo, full_object) = checksum.resolve()?;
        let b = self.bucket(caller, bucket).await?;
        let lock = self.lock_for_write(&b, lock).await?;
        let up = UploadRow {
            upload_id: uuid::Uuid::now_v7().simple().to_string(),
            bucket_id: b.id,
            key: key.to_owned(),
            initiated: crate::now_micros(),
            tier,
            storage_class,
            headers,
            checksum_algo,
            full_object,
            lock,
        };
        self.meta.create_upload(&up).await?;
        Ok(up)
    }

    /// Streams one part into a blob and records it (replacing an earlier part of that number).
    /// `declared`: the part's size as the request declares it, if it does: a part that alone
    /// would take the bucket or tenant over a quota is refused before it is stored (the
    /// completion checks the whole object exactly).
    pub async fn upload_part<S>(
        &self,
        caller: &Caller,
        (bucket, key): (&str, &str),
        upload_id: &str,
        part_number: i32,
        (content_md5, checksum, declared): (Option<[u8; 16]>, ChecksumSpec, Option<u64>),
        body: S,
    ) -> Result<(PartRow, Checksum)>
    where
        S: Stream<Item = std::result::Result<Bytes, BodyError>> + Send,
    {
        Self::writable(caller)?;
        check_part_number(part_number)?;
        let b = self.bucket(caller, bucket).await?;
        let up = self.upload_of(&b.id, key, upload_id).await?;
        if let Some(size) = declared {
            let bytes = i64::try_from(size).unwrap_or(i64::MAX);
            let add = crate::meta::Held { bytes, objects: 0 };
            self.precheck_quota(&b, key, add).await?;
        }
        // With an algorithm chosen at creation, parts must use it; without one, a part may
        // carry any checksum (verified), and CRC64NVME is stored for the object's.
        if let (Some(want), Some(got)) = (up.checksum_algo, checksum.algo)
            && want != got
        {
            return Err(Error::InvalidChecksum(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}",
                want.as_str().to_ascii_lowercase()
            )));
        }
        let checksum = ChecksumSpec {
            algo: checksum.algo.or(up.checksum_algo),
            ..checksum
        };
        // Parts have no WRITING row: a crashed part's temp file is a stray the sweep removes.
        let tmp = uuid::Uuid::now_v7().to_string();
        let result = self
            .store_part(&up, &tmp, part_number, content_md5, &checksum, body)
            .await;
        if result.is_err() {
            let _ = self.blobs.remove_temp(up.tier, &tmp).await;
        }
        result
    }

    async fn store_part<S>(
        &self,
        up: &UploadRow,
        tmp: &str,
        part_number: i32,
        content_md5: Option<[u8; 16]>,
        spec: &ChecksumSpec,
        body: S,
    ) -> Result<(PartRow, Checksum)>
    where
        S: Stream<Item = std::result::Result<Bytes, BodyError>> + Send,
    {
        let tier = up.tier;
        let written = self
            .blobs
            .write_temp(tier, tmp, body, MAX_PART_SIZE, 0, &part_algos(up, spec))
            .await?;
        if content_md5.is_some_and(|want| want != written.md5) {
            return Err(Error::BadDigest);
        }
        // The client's checksum (verified) answers the request; the upload's is stored.
        let answered: Checksum = checksum::settle(spec, &written)?;
        let stored = written
            .checksum(up.part_algo())
            .map(checksum::b64)
            .ok_or_else(|| Error::InvalidChecksum("part checksum was not computed".into()))?;
        let hash = hex::encode(written.sha256);
        let blob = (written.size > 0).then(|| Segment {
            tier,
            hash: hash.clone(),
            size: written.size,
            inline: None,
        });
        if blob.is_none() {
            self.blobs.remove_temp(tier, tmp).await?;
        }
        let part = PartRow {
            part_number,
            size: written.size,
            etag: hex::encode(written.md5),
            created_at: crate::now_micros(),
            blob,
            checksum: Some(stored),
        };
        let committed = match &part.blob {
            Some(_) => {
                let place = self.placer(tier, tmp, &hash, written.size).await?;
                let r = self
                    .meta
                    .commit_part(&up.upload_id, &part, Some(&place))
                    .await;
                self.blobs.drop_temp(tier, tmp);
                if r.is_err() {
                    self.adopt_orphan(tier, &hash, written.size).await;
                }
                r
            }
            None => self.meta.commit_part(&up.upload_id, &part, None).await,
        };
        committed?;
        Ok((part, answered))
    }

    /// UploadPartCopy: the bytes of `range` of the source become this part's blob.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        (src_owner, src_bucket, src_key, src_version): (&Caller, &str, &str, Option<&str>),
        range: Option<ByteRange>,
        cond: &SourceCondition,
    ) -> Result<(PartRow, Checksum)> {
        super::refuse_nul([src_key])?;
        let src = (self.object_version(src_owner, src_bucket, src_key, src_version, true))
            .await
            .map_err(|e| match e {
                Error::DeleteMarker {
                    by_version: true, ..
                } => Error::from(crate::meta::MetaError::DeleteMarker),
                e => e,
            })?;
        if !cond.holds(&src) {
            return Err(Error::PreconditionFailed);
        }
        if let Some(r) = range
            && (r.start >= r.end || r.end > src.size)
        {
            return Err(Error::InvalidRange);
        }
        let size = range.map_or(src.size, |r| r.end - r.start);
        let body = self.open_body(&src, range).await?;
        let body = body.map(|r| r.map_err(|e| BodyError::Client(format!("reading source: {e}"))));
        let spec = ChecksumSpec::default();
        let part = (None, spec, Some(size));
        (self.upload_part(caller, (bucket, key), upload_id, part_number, part, body)).await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn complete_upload(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        listed: Vec<ListedPart>,
        condition: WriteCondition,
        want: CompleteChecksum,
    ) -> Result<ObjectRow> {
        Self::writable(caller)?;
        let b = self.bucket(caller, bucket).await?;
        // The version an upload completes is named by the upload's id, so that a retried
        // CompleteMultipartUpload (the first answer lost) finds it and answers it again.
        let new_id = uuid::Uuid::parse_str(upload_id)
            .map_err(|_| Error::NoSuchUpload)?
            .hyphenated()
            .to_string();
        let retry = Retry {
            version_id: new_id.clone(),
            etag: multipart_etag(&counted(&listed)),
        };
        let up = match self.upload_of(&b.id, key, upload_id).await {
            Err(Error::NoSuchUpload) => return self.completed(caller, bucket, key, &retry).await,
            r => r?,
        };
        // The list asked for at CreateMultipartUpload is the new version's; the upload's row
        // goes with the commit. Not in the commit: a crash between leaves the version private.
        let acl = self.meta.acl(AclOf::Upload(upload_id)).await?.flatten();
        let check = move |uploaded: &[PartRow]| {
            let a = assemble(&up, &listed, uploaded, &want)
                .map_err(|e| MetaError::Rejected(Box::new(e)))?;
            crate::fault::crash_point(crate::fault::Fault::MidComplete);
            Ok(a)
        };
        let commit = CompleteCommit {
            upload_id: upload_id.to_owned(),
            bucket_id: b.id,
            key: key.to_owned(),
            new_id: new_id.clone(),
            condition,
            assemble: &check,
        };
        let row = match self.meta.complete_upload(&commit).await {
            Err(MetaError::NoSuchUpload) => {
                return self.completed(caller, bucket, key, &retry).await;
            }
            r => r?,
        };
        if let Some(acl) = acl {
            self.meta
                .set_acl(AclOf::Object(&row.id), Some(&acl))
                .await?;
        }
        Ok(row)
    }

    /// The parts of a completed multipart version with `seq > after`, at most `max`.
    pub async fn object_parts(
        &self,
        row: &ObjectRow,
        after: i32,
        max: usize,
    ) -> Result<Vec<ObjectPart>> {
        Ok(self.meta.object_parts(&row.id, after, max).await?)
    }

    /// The version a completed upload made, while it is still the key's current one and the
    /// retried list names the same parts (S3 answers a retried completion with the same
    /// result); else the upload is gone.
    async fn completed(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        retry: &Retry,
    ) -> Result<ObjectRow> {
        match self.head_object(caller, bucket, key).await {
            Ok(row) if row.id == retry.version_id && Some(&row.etag) == retry.etag.as_ref() => {
                Ok(row)
            }
            Ok(_) | Err(Error::NoSuchKey) => Err(Error::NoSuchUpload),
            Err(e) => Err(e),
        }
    }

    pub async fn abort_upload(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        Self::writable(caller)?;
        let b = self.bucket(caller, bucket).await?;
        self.upload_of(&b.id, key, upload_id).await?;
        if !self.meta.abort_upload(&b.id, upload_id).await? {
            return Err(Error::NoSuchUpload);
        }
        Ok(())
    }

    /// ListParts: the upload and up to `max` parts after `marker`; `bool` = truncated.
    pub async fn list_parts(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: i32,
        max: usize,
    ) -> Result<(UploadRow, Vec<PartRow>, bool)> {
        let b = self.bucket(caller, bucket).await?;
        let up = self.upload_of(&b.id, key, upload_id).await?;
        let mut parts = self.meta.list_parts(upload_id, marker, max + 1).await?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((up, parts, truncated))
    }

    /// ListMultipartUploads, in (key, upload id) order, with common prefixes rolled up.
    pub async fn list_uploads(
        &self,
        caller: &Caller,
        bucket: &str,
        q: &UploadQuery,
    ) -> Result<UploadList> {
        let b = self.bucket(caller, bucket).await?;
        let mut out = UploadList::default();
        if q.max_uploads == 0 {
            return Ok(out);
        }
        let (mut after_key, mut after_id) = (q.key_marker.clone(), q.upload_id_marker.clone());
        // A key marker without an upload-id marker skips every upload of that key.
        if after_id.is_empty() && !after_key.is_empty() {
            after_id = "\u{10FFFF}".to_owned();
        }
        for _ in 0..=q.max_uploads {
            let rows = self
                .meta
                .list_uploads(&b.id, &q.prefix, &after_key, &after_id, 1000)
                .await?;
            let exhausted = rows.len() < 1000;
            for u in rows {
                let cp = q
                    .delimiter
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .and_then(|d| {
                        let rest = &u.key[q.prefix.len()..];
                        rest.find(d)
                            .map(|p| format!("{}{}", q.prefix, &rest[..p + d.len()]))
                    });
                let seen = cp.as_ref().is_some_and(|c| {
                    matches!(out.items.last(), Some(UploadItem::Prefix(p)) if p == c)
                        || c.as_str() <= q.key_marker.as_str()
                });
                if seen {
                    (after_key, after_id) = (u.key.clone(), u.upload_id.clone());
                    continue;
                }
                if out.items.len() == q.max_uploads {
                    out.truncated = true;
                    return Ok(out);
                }
                (after_key, after_id) = (u.key.clone(), u.upload_id.clone());
                out.items.push(match cp {
                    Some(c) => UploadItem::Prefix(c),
                    None => UploadItem::Upload(Box::new(u)),
                });
            }
            if exhausted {
                break;
            }
        }
        Ok(out)
    }

    /// The byte range of part `n` of an object (`None`: no such part).
    pub fn part_range(row: &ObjectRow, n: i32) -> Option<ByteRange> {
        let count = row.parts_count.unwrap_or(1);
        if n < 1 || n > count {
            return None;
        }
        if row.parts_count.is_none() {
            return Some(ByteRange {
                start: 0,
                end: row.size,
            });
        }
        // Only the last part may be empty (and then has no segment).
        let idx = usize::try_from(n - 1).ok()?;
        let start: u64 = row.segments.iter().take(idx).map(|s| s.size).sum();
        let len = row.segments.get(idx).map_or(0, |s| s.size);
        Some(ByteRange {
            start,
            end: start + len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::Tier;

    fn part(n: i32, size: u64, body: &[u8]) -> PartRow {
        PartRow {
            part_number: n,
            size,
            etag: hex::encode(Md5::digest(body)),
            created_at: 0,
            blob: Some(Segment {
                tier: Tier::Hot,
                hash: format!("{n:064x}"),
                size,
                inline: None,
            }),
            checksum: Some(checksum::b64(&ChecksumAlgo::Crc64Nvme.digest(body))),
        }
    }

    fn up() -> UploadRow {
        UploadRow {
            upload_id: "u".into(),
            bucket_id: "b".into(),
            key: "k".into(),
            initiated: 0,
            tier: Tier::Hot,
            storage_class: "STANDARD".into(),
            headers: ObjectHeaders::default(),
            checksum_algo: None,
            full_object: true,
            lock: Default::default(),
        }
    }

    fn asm(l: &[ListedPart], u: &[PartRow]) -> Result<Assembled> {
        assemble(&up(), l, u, &CompleteChecksum::default())
    }

    fn listed(p: &PartRow) -> ListedPart {
        ListedPart {
            part_number: p.part_number,
            etag: format!("\"{}\"", p.etag),
            checksum: None,
        }
    }

    #[test]
    fn etag_is_md5_of_part_md5s() {
        let a = part(1, MIN_PART_SIZE, b"a");
        let b = part(2, 1, b"b");
        let out = asm(&[listed(&a), listed(&b)], &[a.clone(), b.clone()]).unwrap();
        let mut h = Md5::new();
        h.update(Md5::digest(b"a"));
        h.update(Md5::digest(b"b"));
        assert_eq!(out.etag, format!("{}-2", hex::encode(h.finalize())));
        assert_eq!(out.size, MIN_PART_SIZE + 1);
        assert_eq!(out.segments.len(), 2);
        assert!(out.unused.is_empty());
    }

    #[test]
    fn rules() {
        let a = part(1, MIN_PART_SIZE, b"a");
        let small = part(2, 10, b"s");
        let c = part(3, 10, b"c");
        let all = [a.clone(), small.clone(), c.clone()];
        assert!(matches!(
            asm(&[listed(&small), listed(&a)], &all),
            Err(Error::InvalidPartOrder)
        ));
        assert!(matches!(
            asm(&[listed(&a), listed(&small), listed(&c)], &all),
            Err(Error::EntityTooSmall)
        ));
        let mut wrong = listed(&c);
        wrong.etag = "\"00\"".into();
        assert!(matches!(
            asm(&[listed(&a), wrong], &all),
            Err(Error::InvalidPart(3))
        ));
        let out = asm(&[listed(&a), listed(&c)], &all).unwrap();
        assert_eq!(out.unused, vec![small.blob.clone().unwrap()]);
        assert!(matches!(asm(&[], &all), Err(Error::MalformedXml(_))));
        // A part listed twice counts once, by its last entry.
        let stale = ListedPart {
            etag: "\"00\"".into(),
            ..listed(&a)
        };
        let out = asm(&[stale, listed(&a), listed(&c)], &all).unwrap();
        assert_eq!(out.parts_count, 2);
        assert_eq!(out.size, MIN_PART_SIZE + 10);
        assert!(matches!(
            asm(&[listed(&a), listed(&a), listed(&small)], &all).map(|o| o.parts_count),
            Ok(2)
        ));
    }
}
