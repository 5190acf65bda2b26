use super::acl::{self, acl_headers};
use super::convert::{self, HeaderFields, Sums, timestamp};
use super::versioning::{lock_output, lock_request, shown_version};
use super::{Gateway, to_s3_error};
use crate::engine::acl::Target;
use crate::engine::{ByteRange, CopyRequest, PutRequest};
use crate::meta::{ObjectRow, SourceCondition, WriteCondition};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// DeleteObjects takes at most this many keys (S3's limit).
const MAX_DELETE_KEYS: usize = 1000;

pub async fn put(
    g: &Gateway,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    super::sse::check_put(&input)?;
    let condition = match (&input.if_none_match, &input.if_match) {
        (Some(ETagCondition::Any), _) => WriteCondition::IfNoneMatchAny,
        (Some(ETagCondition::ETag(e)), _) => WriteCondition::IfNoneMatch(e.value().to_owned()),
        (None, Some(ETagCondition::Any)) => WriteCondition::IfMatch(None),
        (None, Some(ETagCondition::ETag(e))) => WriteCondition::IfMatch(Some(e.value().to_owned())),
        (None, None) => WriteCondition::None,
    };
    let checksum = convert::checksum_spec(
        input.checksum_algorithm.as_ref(),
        Sums {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
        },
        &req.headers,
        req.trailing_headers.as_ref(),
    )?;
    let put = PutRequest {
        headers: convert::headers(HeaderFields {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
            tags: convert::tagging_header(input.tagging.as_deref())?,
        }),
        storage_class: input.storage_class.map(|s| s.as_str().to_owned()),
        content_md5: convert::content_md5(input.content_md5.as_deref())?,
        condition,
        checksum,
        expected_size: convert::decoded_length(&req.headers),
        content_length: input.content_length.and_then(|n| u64::try_from(n).ok()),
        lock: lock_request(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?,
    };
    let acl_request = acl_headers!(input, no_write);
    let acl = acl_request.acl(&caller.tenant_id)?;
    let target = (&caller, input.bucket.as_str());
    acl::admit(g, &req.extensions, &acl_request, target, acl.as_ref()).await?;
    let body = input.body.unwrap_or_else(convert::empty_body);
    let row = g
        .engine
        .put_object(&caller, &input.bucket, &input.key, put, convert::body(body))
        .await
        .map_err(to_s3_error)?;
    acl::apply(g, &caller, Target::Object(&row.id), acl).await?;
    let sums = Sums::of(row.checksum.as_ref());
    Ok(S3Response::new(PutObjectOutput {
        expiration: super::lifecycle::expiration(&req.extensions, &row),
        version_id: shown_version(&row, None),
        e_tag: Some(ETag::Strong(row.etag)),
        size: i64::try_from(row.size).ok(),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: convert::checksum_type(row.checksum.as_ref()),
        ..Default::default()
    }))
}

/// GET/HEAD preconditions, with S3's precedence: If-Match beats If-Unmodified-Since (412),
/// If-None-Match beats If-Modified-Since (304, carrying the ETag and Last-Modified).
fn check_read_conditions(
    row: &ObjectRow,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let cond = SourceCondition {
        if_match: if_match.map(etag_text),
        if_none_match: None,
        if_modified_since: None,
        if_unmodified_since: if_unmodified_since.map(convert::micros),
    };
    if !cond.holds(row) {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    let cond = SourceCondition {
        if_match: None,
        if_none_match: if_none_match.map(etag_text),
        if_modified_since: if_modified_since.map(convert::micros),
        if_unmodified_since: None,
    };
    if !cond.holds(row) {
        let mut e = s3s::S3Error::new(s3s::S3ErrorCode::NotModified);
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", row.etag)) {
            h.insert(http::header::ETAG, v);
        }
        let mut date = Vec::new();
        if timestamp(row.created_at)
            .format(TimestampFormat::HttpDate, &mut date)
            .is_ok()
            && let Ok(v) = http::HeaderValue::from_bytes(&date)
        {
            h.insert(http::header::LAST_MODIFIED, v);
        }
        e.set_headers(h);
        return Err(e);
    }
    Ok(())
}

/// The checksum a GET or HEAD returns: a multipart object's `?partNumber=` read carries that
/// part's (as S3 does, asked for or not); otherwise `returned_checksum`.
async fn read_checksum(
    g: &Gateway,
    row: &ObjectRow,
    part_number: Option<i32>,
    mode: Option<&ChecksumMode>,
    whole: bool,
) -> S3Result<Option<crate::meta::Checksum>> {
    if let (Some(n), Some(_), Some(object)) = (part_number, row.parts_count, &row.checksum) {
        let parts = g
            .engine
            .object_parts(row, n - 1, 1)
            .await
            .map_err(to_s3_error)?;
        let value = parts
            .into_iter()
            .find(|p| p.seq == n)
            .and_then(|p| p.checksum);
        return Ok(value.map(|value| crate::meta::Checksum {
            value,
            ..object.clone()
        }));
    }
    Ok(returned_checksum(row, mode, whole).cloned())
}

/// The stored checksum, when the client asked for it (`x-amz-checksum-mode: ENABLED`) and the
/// response carries the whole object (a ranged body must not carry the full-object checksum).
fn returned_checksum<'a>(
    row: &'a ObjectRow,
    mode: Option<&ChecksumMode>,
    whole: bool,
) -> Option<&'a crate::meta::Checksum> {
    let enabled = mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
    row.checksum.as_ref().filter(|_| enabled && whole)
}

fn storage_class(row: &ObjectRow) -> Option<StorageClass> {
    (row.storage_class != "STANDARD").then(|| StorageClass::from(row.storage_class.clone()))
}

pub async fn get(
    g: &Gateway,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let version = input.version_id.as_deref();
    let row = g
        .engine
        .object_version(&caller, &input.bucket, &input.key, version, true)
        .await
        .map_err(to_s3_error)?;
    super::access::same_version(&req.extensions, &row)?;
    check_read_conditions(
        &row,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let range = read_range(&row, input.range.as_ref(), input.part_number)?;
    let content_range = range.map(|r| content_range(r, row.size));
    let body = g.engine.open_body(&row, range).await.map_err(to_s3_error)?;
    let len = range.map_or(row.size, |r| r.end - r.start);
    let sum = read_checksum(
        g,
        &row,
        input.part_number,
        input.checksum_mode.as_ref(),
        range.is_none(),
    )
    .await?;
    let sum = sum.as_ref();
    let sums = Sums::of(sum);
    let h = &row.headers;
    let lock = lock_output(&row);
    Ok(S3Response::new(GetObjectOutput {
        expiration: current_expiration(&req.extensions, &row),
        version_id: shown_version(&row, version),
        object_lock_mode: lock.0,
        object_lock_retain_until_date: lock.1,
        object_lock_legal_hold_status: lock.2,
        body: Some(StreamingBlob::wrap(body)),
        content_length: i64::try_from(len).ok(),
        content_range,
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(ETag::Strong(row.etag.clone())),
        last_modified: Some(timestamp(row.created_at)),
        metadata: convert::metadata(h),
        content_type: input
            .response_content_type
            .or_else(|| h.content_type.clone()),
        content_encoding: input
            .response_content_encoding
            .or_else(|| h.content_encoding.clone()),
        content_disposition: input
            .response_content_disposition
            .or_else(|| h.content_disposition.clone()),
        content_language: input
            .response_content_language
            .or_else(|| h.content_language.clone()),
        cache_control: input
            .response_cache_control
            .or_else(|| h.cache_control.clone()),
        expires: input
            .response_expires
            .or_else(|| h.expires.as_deref().and_then(convert::expires_from_string)),
        tag_count: (!h.tags.is_empty()).then_some(h.tags.len() as i32),
        storage_class: storage_class(&row),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: convert::checksum_type(sum),
        parts_count: row.parts_count.filter(|_| input.part_number.is_some()),
        ..Default::default()
    }))
}

/// GetObjectTorrent: the current version's metainfo, web-seeded from the URL it was asked at.
pub async fn torrent(
    g: &Gateway,
    req: S3Request<GetObjectTorrentInput>,
) -> S3Result<S3Response<GetObjectTorrentOutput>> {
    let caller = g.caller(&req).await?;
    let input = &req.input;
    let row = g
        .engine
        .object_version(&caller, &input.bucket, &input.key, None, true)
        .await
        .map_err(to_s3_error)?;
    super::access::same_version(&req.extensions, &row)?;
    let name = input
        .key
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("object");
    let https = req.extensions.get::<super::Peer>().is_some_and(|p| p.tls)
        || req
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let url = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| {
            let scheme = if https { "https" } else { "http" };
            format!("{scheme}://{host}{}", req.uri.path())
        });
    let metainfo = g
        .engine
        .torrent(&row, name, url.as_deref())
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(GetObjectTorrentOutput {
        body: Some(StreamingBlob::from(s3s::Body::from(bytes::Bytes::from(
            metainfo,
        )))),
        request_charged: None,
    }))
}

/// `x-amz-expiration` of a read: only the current version expires by a rule's date.
fn current_expiration(ext: &http::Extensions, row: &ObjectRow) -> Option<String> {
    row.is_latest
        .then(|| super::lifecycle::expiration(ext, row))
        .flatten()
}

pub async fn head(
    g: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let version = i.version_id.as_deref();
    let row = g
        .engine
        .object_version(&caller, &i.bucket, &i.key, version, false)
        .await
        .map_err(to_s3_error)?;
    super::access::same_version(&req.extensions, &row)?;
    check_read_conditions(
        &row,
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    )?;
    let range = read_range(&row, i.range.as_ref(), i.part_number)?;
    let len = range.map_or(row.size, |r| r.end - r.start);
    let sum = read_checksum(
        g,
        &row,
        i.part_number,
        i.checksum_mode.as_ref(),
        range.is_none(),
    )
    .await?;
    let sum = sum.as_ref();
    let sums = Sums::of(sum);
    let h = &row.headers;
    let lock = lock_output(&row);
    let mut resp = S3Response::new(HeadObjectOutput {
        expiration: current_expiration(&req.extensions, &row),
        version_id: shown_version(&row, version),
        object_lock_mode: lock.0,
        object_lock_retain_until_date: lock.1,
        object_lock_legal_hold_status: lock.2,
        content_length: i64::try_from(len).ok(),
        content_range: range.map(|r| content_range(r, row.size)),
        parts_count: row.parts_count.filter(|_| req.input.part_number.is_some()),
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(ETag::Strong(row.etag.clone())),
        last_modified: Some(timestamp(row.created_at)),
        metadata: convert::metadata(h),
        content_type: h.content_type.clone(),
        content_encoding: h.content_encoding.clone(),
        content_disposition: h.content_disposition.clone(),
        content_language: h.content_language.clone(),
        cache_control: h.cache_control.clone(),
        expires: h.expires.as_deref().and_then(convert::expires_from_string),
        storage_class: storage_class(&row),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: convert::checksum_type(sum),
        ..Default::default()
    });
    if range.is_some() {
        // s3s answers a HEAD 200 whatever its Content-Range; S3 answers 206, as for GET.
        resp.extensions.insert(super::PartialContent);
    }
    // HeadObjectOutput has no tag count; S3 sends it on HEAD as on GET.
    if !row.headers.tags.is_empty() {
        resp.headers.insert(
            "x-amz-tagging-count",
            http::HeaderValue::from(row.headers.tags.len()),
        );
    }
    Ok(resp)
}

/// The byte range a GET or HEAD reads: its `Range` (416 InvalidRange if unsatisfiable), its
/// `partNumber`, or the whole object (`None`); both at once is InvalidRequest.
fn read_range(
    row: &ObjectRow,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<Option<ByteRange>> {
    match (range, part_number) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        )),
        (Some(r), None) => {
            let r = r.check(row.size)?;
            Ok(Some(ByteRange {
                start: r.start,
                end: r.end,
            }))
        }
        (None, n) => part_range(row, n),
    }
}

pub async fn delete(
    g: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let bypass = i.bypass_governance_retention.unwrap_or(false);
    let done = g
        .engine
        .delete(&caller, &i.bucket, &i.key, i.version_id.as_deref(), bypass)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: done.delete_marker.then_some(true),
        version_id: done.version_id,
        ..Default::default()
    }))
}

pub async fn delete_many(
    g: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "DeleteObjects takes at most 1000 keys"
        ));
    }
    // The bucket must exist even when the key list is empty.
    g.engine
        .bucket(&caller, &input.bucket)
        .await
        .map_err(to_s3_error)?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in input.delete.objects {
        let version = obj.version_id.as_deref();
        match g
            .engine
            .delete(&caller, &input.bucket, &obj.key, version, bypass)
            .await
        {
            Ok(_) if quiet => {}
            Ok(done) => deleted.push(match obj.version_id {
                // A version removed by its id (perhaps a delete marker).
                Some(v) => DeletedObject {
                    key: Some(obj.key),
                    version_id: Some(v),
                    delete_marker: done.delete_marker.then_some(true),
                    delete_marker_version_id: None,
                },
                // A marker added (versioned bucket), or the key's only version gone.
                None => DeletedObject {
                    key: Some(obj.key),
                    version_id: None,
                    delete_marker: done.delete_marker.then_some(true),
                    delete_marker_version_id: done.version_id,
                },
            }),
            Err(e) => {
                let e = to_s3_error(e);
                errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(obj.key),
                    version_id: obj.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub async fn copy(
    g: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let (bucket, key, src_version) = copy_source(&input.copy_source)?;
    let acl_request = acl_headers!(input, no_write);
    let acl = acl_request.acl(&caller.tenant_id)?;
    let target = (&caller, input.bucket.as_str());
    acl::admit(g, &req.extensions, &acl_request, target, acl.as_ref()).await?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let same = bucket == input.bucket && key == input.key && src_version.is_none();
    if same && !replace && input.storage_class.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location \
             or encryption attributes."
        ));
    }
    let replace_tags = input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
    let tags = match replace_tags {
        true => Some(convert::tagging_header(input.tagging.as_deref())?),
        false => None,
    };
    let headers = replace.then(|| {
        convert::headers(HeaderFields {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
            tags: Default::default(),
        })
    });
    let lock = lock_request(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    let src_owner = super::access::source_owner(&req.extensions, &caller);
    let copy = CopyRequest {
        src_tenant: Some(src_owner.tenant_id),
        src_bucket: super::access::bare(bucket).to_owned(),
        src_key: key.to_owned(),
        src_version: src_version.map(str::to_owned),
        lock,
        headers,
        tags,
        storage_class: input.storage_class.map(|s| s.as_str().to_owned()),
        source_condition: SourceCondition {
            if_match: input.copy_source_if_match.as_ref().map(etag_text),
            if_none_match: input.copy_source_if_none_match.as_ref().map(etag_text),
            if_modified_since: input
                .copy_source_if_modified_since
                .as_ref()
                .map(convert::micros),
            if_unmodified_since: input
                .copy_source_if_unmodified_since
                .as_ref()
                .map(convert::micros),
        },
    };
    let row = g
        .engine
        .copy_object(&caller, &input.bucket, &input.key, copy)
        .await
        .map_err(to_s3_error)?;
    acl::apply(g, &caller, Target::Object(&row.id), acl).await?;
    Ok(S3Response::new(CopyObjectOutput {
        version_id: shown_version(&row, None),
        copy_source_version_id: src_version.map(str::to_owned),
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(row.etag)),
            last_modified: Some(timestamp(row.created_at)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// The bucket, key and version (`None`: the current one) of `x-amz-copy-source`.
pub(super) fn copy_source(src: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = src
    else {
        return Err(s3_error!(
            NotImplemented,
            "Only bucket copy sources are supported"
        ));
    };
    Ok((bucket, key, version_id.as_deref()))
}

/// An `x-amz-copy-source-if-(none-)match` value as text (`*` for any).
pub(super) fn etag_text(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => e.value().to_owned(),
    }
}

/// Part numbers run from 1 to this (S3's limit).
const MAX_PART_NUMBER: i32 = 10_000;

/// `partNumber` on GET/HEAD: the part's range. A number outside 1..=10000 is InvalidArgument;
/// one the object does not have is 400 InvalidPart, as S3 answers (ceph/s3-tests
/// test_multipart_get_part, test_non_multipart_get_part: a single-part object has part 1).
fn part_range(row: &ObjectRow, n: Option<i32>) -> S3Result<Option<ByteRange>> {
    let Some(n) = n else { return Ok(None) };
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    match crate::engine::Engine::part_range(row, n) {
        Some(r) => Ok(Some(r)),
        None => Err(s3_error!(
            InvalidPart,
            "The requested partnumber is not satisfiable"
        )),
    }
}

fn content_range(r: ByteRange, size: u64) -> String {
    if r.start == r.end {
        // An empty part: there is no last byte to name.
        return format!("bytes */{size}");
    }
    format!("bytes {}-{}/{}", r.start, r.end - 1, size)
}

pub async fn get_tagging(
    g: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let version = i.version_id.as_deref();
    let tags = g
        .engine
        .get_tags(&caller, &i.bucket, &i.key, version)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: super::convert::tag_list(tags),
        version_id: i.version_id.clone(),
    }))
}

pub async fn put_tagging(
    g: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let tags = convert::tag_set(input.tagging.tag_set)?;
    let version = input.version_id.as_deref();
    g.engine
        .set_tags(&caller, &input.bucket, &input.key, version, &tags)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectTaggingOutput {
        version_id: input.version_id,
    }))
}

pub async fn delete_tagging(
    g: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let version = i.version_id.as_deref();
    g.engine
        .set_tags(&caller, &i.bucket, &i.key, version, &Default::default())
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteObjectTaggingOutput {
        version_id: i.version_id.clone(),
    }))
}

pub async fn attributes(
    g: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let version = input.version_id.as_deref();
    let row = g
        .engine
        .object_version(&caller, &input.bucket, &input.key, version, false)
        .await
        .map_err(to_s3_error)?;
    // One header per attribute (the Rust SDK) or one comma-separated header (botocore, the CLI);
    // s3s takes each header value as one attribute.
    let wants = |a: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|x| x.as_str().split(','))
            .any(|x| x.trim() == a)
    };
    let sums = Sums::of(row.checksum.as_ref());
    let parts = match row.parts_count {
        Some(n) if wants(ObjectAttributes::OBJECT_PARTS) => Some(
            object_parts(
                g,
                &row,
                n,
                input.part_number_marker.unwrap_or(0),
                input.max_parts,
            )
            .await?,
        ),
        _ => None,
    };
    let mut resp = S3Response::new(GetObjectAttributesOutput {
        version_id: shown_version(&row, version),
        e_tag: wants(ObjectAttributes::ETAG).then(|| ETag::Strong(row.etag.clone())),
        object_size: wants(ObjectAttributes::OBJECT_SIZE)
            .then(|| i64::try_from(row.size).ok())
            .flatten(),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from(row.storage_class.clone())),
        checksum: wants(ObjectAttributes::CHECKSUM)
            .then_some(row.checksum.as_ref())
            .flatten()
            .map(|c| Checksum {
                checksum_crc32: sums.crc32,
                checksum_crc32c: sums.crc32c,
                checksum_crc64nvme: sums.crc64nvme,
                checksum_sha1: sums.sha1,
                checksum_sha256: sums.sha256,
                checksum_type: convert::checksum_type(Some(c)),
            }),
        object_parts: parts,
        last_modified: Some(timestamp(row.created_at)),
        ..Default::default()
    });
    resp.extensions.insert(super::UnquoteXmlEtag);
    Ok(resp)
}

/// GetObjectAttributes returns at most this many parts per page (S3's `max-parts` default).
const MAX_ATTRIBUTE_PARTS: i32 = 1000;

/// GetObjectAttributes' ObjectParts: a page of a multipart version's parts (with their
/// checksums, in the object's algorithm) after `marker`, a part number.
async fn object_parts(
    g: &Gateway,
    row: &ObjectRow,
    total: i32,
    marker: i32,
    max: Option<i32>,
) -> S3Result<GetObjectAttributesParts> {
    let max = match max {
        None => MAX_ATTRIBUTE_PARTS,
        Some(n) if n >= 0 => n.min(MAX_ATTRIBUTE_PARTS),
        Some(_) => return Err(s3_error!(InvalidArgument, "max-parts must be non-negative")),
    };
    // Pages follow the position; the marker is a part number: start after the parts numbered
    // up to it (numbers grow with the position).
    let mut after = 0;
    let mut page = Vec::new();
    let want = usize::try_from(max).unwrap_or(0) + 1;
    while page.len() < want {
        let batch = g
            .engine
            .object_parts(row, after, want)
            .await
            .map_err(to_s3_error)?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        page.extend(batch.into_iter().filter(|p| p.part_number > marker));
    }
    let truncated = page.len() > usize::try_from(max).unwrap_or(0);
    page.truncate(usize::try_from(max).unwrap_or(0));
    let algo = row.checksum.as_ref();
    let parts = page
        .iter()
        .map(|p| {
            let sum = algo
                .zip(p.checksum.clone())
                .map(|(c, value)| crate::meta::Checksum { value, ..c.clone() });
            let sums = Sums::of(sum.as_ref());
            ObjectPart {
                checksum_crc32: sums.crc32,
                checksum_crc32c: sums.crc32c,
                checksum_crc64nvme: sums.crc64nvme,
                checksum_sha1: sums.sha1,
                checksum_sha256: sums.sha256,
                part_number: Some(p.part_number),
                size: i64::try_from(p.size).ok(),
            }
        })
        .collect();
    Ok(GetObjectAttributesParts {
        total_parts_count: Some(total),
        part_number_marker: Some(marker),
        next_part_number_marker: truncated
            .then(|| page.last().map(|p| p.part_number))
            .flatten(),
        max_parts: Some(max),
        is_truncated: Some(truncated),
        parts: Some(parts),
    })
}
