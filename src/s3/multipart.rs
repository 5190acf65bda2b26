//! Multipart upload operations.

use super::acl::{self, acl_headers};
use super::convert::{self, HeaderFields, Sums, timestamp, url_encode};
use super::{Gateway, to_s3_error};
use crate::engine::acl::Target;
use crate::engine::{
    ByteRange, CompleteChecksum, ListedPart, UploadChecksum, UploadItem, UploadQuery,
};
use crate::meta::{SourceCondition, WriteCondition};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

const MAX_PARTS_PER_PAGE: i32 = 1000;
const MAX_UPLOADS_PER_PAGE: i32 = 1000;

pub async fn create(
    g: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let acl_request = acl_headers!(input, no_write);
    let acl = acl_request.acl(&caller.tenant_id)?;
    let target = (&caller, input.bucket.as_str());
    acl::admit(g, &req.extensions, &acl_request, target, acl.as_ref()).await?;
    let headers = convert::headers(HeaderFields {
        content_type: input.content_type,
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: input.expires,
        metadata: input.metadata,
        tags: convert::tagging_header(input.tagging.as_deref())?,
    });
    let up = g
        .engine
        .create_upload(
            &caller,
            &input.bucket,
            &input.key,
            headers,
            input.storage_class.as_ref().map(StorageClass::as_str),
            &UploadChecksum {
                algo: convert::algo(input.checksum_algorithm.as_ref())?,
                full_object: match input.checksum_type.as_ref().map(ChecksumType::as_str) {
                    None => None,
                    Some(ChecksumType::FULL_OBJECT) => Some(true),
                    Some(ChecksumType::COMPOSITE) => Some(false),
                    Some(_) => {
                        return Err(s3_error!(
                            InvalidRequest,
                            "Value for x-amz-checksum-type header is invalid."
                        ));
                    }
                },
            },
            super::versioning::lock_request(
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )?,
        )
        .await
        .map_err(to_s3_error)?;
    acl::apply(g, &caller, Target::Upload(&up.upload_id), acl).await?;
    // Echo the checksum choice only when the client made one.
    let chosen = input.checksum_algorithm.is_some() || input.checksum_type.is_some();
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(up.upload_id.clone()),
        checksum_algorithm: chosen
            .then(|| ChecksumAlgorithm::from(up.part_algo().as_str().to_owned())),
        checksum_type: chosen.then(|| {
            ChecksumType::from(
                if up.full_object {
                    "FULL_OBJECT"
                } else {
                    "COMPOSITE"
                }
                .to_owned(),
            )
        }),
        ..Default::default()
    }))
}

pub async fn upload_part(
    g: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let md5 = convert::content_md5(input.content_md5.as_deref())?;
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
    let body = input.body.unwrap_or_else(convert::empty_body);
    let declared = convert::decoded_length(&req.headers)
        .or_else(|| input.content_length.and_then(|n| u64::try_from(n).ok()));
    let (part, answered) = g
        .engine
        .upload_part(
            &caller,
            (&input.bucket, &input.key),
            &input.upload_id,
            input.part_number,
            (md5, checksum, declared),
            convert::body(body),
        )
        .await
        .map_err(to_s3_error)?;
    let sums = Sums::of(Some(&answered));
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        ..Default::default()
    }))
}

/// `x-amz-copy-source-range: bytes=first-last` (both required, inclusive).
fn copy_range(v: Option<&str>) -> S3Result<Option<ByteRange>> {
    let Some(v) = v else { return Ok(None) };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (a, b) = v
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = a.trim().parse().map_err(|_| bad())?;
    let last: u64 = b.trim().parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok(Some(ByteRange {
        start: first,
        end: last + 1,
    }))
}

pub async fn upload_part_copy(
    g: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let (src_bucket, src_key, src_version) = super::object::copy_source(&input.copy_source)?;
    let src_owner = super::access::source_owner(&req.extensions, &caller);
    let src_bucket = super::access::bare(src_bucket);
    let src = (&src_owner, src_bucket, src_key, src_version);
    let range = copy_range(input.copy_source_range.as_deref())?;
    let cond = SourceCondition {
        if_match: input
            .copy_source_if_match
            .as_ref()
            .map(super::object::etag_text),
        if_none_match: input
            .copy_source_if_none_match
            .as_ref()
            .map(super::object::etag_text),
        if_modified_since: input
            .copy_source_if_modified_since
            .as_ref()
            .map(convert::micros),
        if_unmodified_since: input
            .copy_source_if_unmodified_since
            .as_ref()
            .map(convert::micros),
    };
    let (part, answered) = g
        .engine
        .upload_part_copy(
            &caller,
            &input.bucket,
            &input.key,
            &input.upload_id,
            input.part_number,
            src,
            range,
            &cond,
        )
        .await
        .map_err(to_s3_error)?;
    let sums = Sums::of(Some(&answered));
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.created_at)),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
        }),
        ..Default::default()
    }))
}

pub async fn complete(
    g: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let mut listed = Vec::new();
    for p in input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
    {
        let (Some(n), Some(etag)) = (p.part_number, p.e_tag) else {
            return Err(s3_error!(
                MalformedXML,
                "Each part needs a PartNumber and an ETag"
            ));
        };
        let sum = Sums {
            crc32: p.checksum_crc32,
            crc32c: p.checksum_crc32c,
            crc64nvme: p.checksum_crc64nvme,
            sha1: p.checksum_sha1,
            sha256: p.checksum_sha256,
        };
        listed.push(ListedPart {
            part_number: n,
            etag: etag.value().to_owned(),
            checksum: sum.single()?.map(|(_, v)| v),
        });
    }
    let want = CompleteChecksum {
        expected: Sums {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
        }
        .single()?,
    };
    let condition = match (&input.if_none_match, &input.if_match) {
        (Some(ETagCondition::Any), _) => WriteCondition::IfNoneMatchAny,
        (Some(ETagCondition::ETag(e)), _) => WriteCondition::IfNoneMatch(e.value().to_owned()),
        (None, Some(ETagCondition::Any)) => WriteCondition::IfMatch(None),
        (None, Some(ETagCondition::ETag(e))) => WriteCondition::IfMatch(Some(e.value().to_owned())),
        (None, None) => WriteCondition::None,
    };
    let row = g
        .engine
        .complete_upload(
            &caller,
            &input.bucket,
            &input.key,
            &input.upload_id,
            listed,
            condition,
            want,
        )
        .await
        .map_err(to_s3_error)?;
    let sums = Sums::of(row.checksum.as_ref());
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        expiration: super::lifecycle::expiration(&req.extensions, &row),
        version_id: super::versioning::shown_version(&row, None),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(ETag::Strong(row.etag)),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: convert::checksum_type(row.checksum.as_ref()),
        ..Default::default()
    }))
}

pub async fn abort(
    g: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    g.engine
        .abort_upload(&caller, &i.bucket, &i.key, &i.upload_id)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

fn page_size(v: Option<i32>, max: i32, what: &str) -> S3Result<usize> {
    match v {
        None => Ok(max as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "{what} must be non-negative")),
        Some(n) => Ok(n.min(max) as usize),
    }
}

pub async fn list_parts(
    g: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let max = page_size(input.max_parts, MAX_PARTS_PER_PAGE, "max-parts")?;
    let marker = input.part_number_marker.unwrap_or(0).max(0);
    let (up, parts, truncated) = g
        .engine
        .list_parts(
            &caller,
            &input.bucket,
            &input.key,
            &input.upload_id,
            marker,
            max,
        )
        .await
        .map_err(to_s3_error)?;
    let next = parts.last().map(|p| p.part_number).filter(|_| truncated);
    let owner = acl::owner(&caller.tenant_id);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(up.upload_id),
        part_number_marker: Some(marker),
        next_part_number_marker: next,
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        storage_class: Some(StorageClass::from(up.storage_class.clone())),
        initiator: Some(Initiator {
            id: owner.id.clone(),
            display_name: owner.display_name.clone(),
        }),
        owner: Some(owner),
        // The checksum choice, and each part's checksum, when the client made one at creation.
        checksum_algorithm: up
            .checksum_algo
            .map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
        checksum_type: up.checksum_algo.map(|_| {
            ChecksumType::from(
                if up.full_object {
                    "FULL_OBJECT"
                } else {
                    "COMPOSITE"
                }
                .to_owned(),
            )
        }),
        parts: Some(
            parts
                .into_iter()
                .map(|p| {
                    let sum = up.checksum_algo.zip(p.checksum).map(|(algo, value)| {
                        crate::meta::Checksum {
                            algo,
                            value,
                            full_object: true,
                        }
                    });
                    let sums = Sums::of(sum.as_ref());
                    Part {
                        part_number: Some(p.part_number),
                        e_tag: Some(ETag::Strong(p.etag)),
                        size: i64::try_from(p.size).ok(),
                        last_modified: Some(timestamp(p.created_at)),
                        checksum_crc32: sums.crc32,
                        checksum_crc32c: sums.crc32c,
                        checksum_crc64nvme: sums.crc64nvme,
                        checksum_sha1: sums.sha1,
                        checksum_sha256: sums.sha256,
                    }
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub async fn list_uploads(
    g: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let url = super::list::wants_url(&input.encoding_type)?;
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let q = UploadQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        key_marker: input.key_marker.clone().unwrap_or_default(),
        upload_id_marker: input.upload_id_marker.clone().unwrap_or_default(),
        max_uploads: page_size(input.max_uploads, MAX_UPLOADS_PER_PAGE, "max-uploads")?,
    };
    let r = g
        .engine
        .list_uploads(&caller, &input.bucket, &q)
        .await
        .map_err(to_s3_error)?;
    let (mut next_key, mut next_id) = (None, None);
    if r.truncated {
        match r.items.last() {
            Some(UploadItem::Upload(u)) => {
                next_key = Some(enc(u.key.clone()));
                next_id = Some(u.upload_id.clone());
            }
            Some(UploadItem::Prefix(p)) => next_key = Some(enc(p.clone())),
            None => {}
        }
    }
    let owner = acl::owner(&caller.tenant_id);
    let mut uploads = Vec::new();
    let mut prefixes = Vec::new();
    for item in r.items {
        match item {
            UploadItem::Upload(u) => uploads.push(MultipartUpload {
                key: Some(enc(u.key)),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.initiated)),
                storage_class: Some(StorageClass::from(u.storage_class)),
                owner: Some(owner.clone()),
                initiator: Some(Initiator {
                    id: owner.id.clone(),
                    display_name: owner.display_name.clone(),
                }),
                ..Default::default()
            }),
            UploadItem::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p)),
            }),
        }
    }
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix.map(enc),
        delimiter: input.delimiter.map(enc),
        key_marker: input.key_marker.map(enc),
        upload_id_marker: input.upload_id_marker,
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        max_uploads: Some(q.max_uploads as i32),
        is_truncated: Some(r.truncated),
        uploads: Some(uploads),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges() {
        assert_eq!(
            copy_range(Some("bytes=0-9")).unwrap(),
            Some(ByteRange { start: 0, end: 10 })
        );
        assert_eq!(copy_range(None).unwrap(), None);
        for bad in ["bytes=5-1", "bytes=-5", "bytes=1-", "0-5", "bytes=a-b"] {
            assert!(copy_range(Some(bad)).is_err(), "{bad}");
        }
    }
}
