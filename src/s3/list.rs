//! ListObjects (v1) and ListObjectsV2 over the engine's key-ordered listing.

use super::acl::owner;
use super::convert::{timestamp, url_encode};
use super::{Gateway, to_s3_error};
use crate::engine::{ListItem, ListQuery, ListResult, VersionItem, VersionQuery};
use base64::Engine as _;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

const MAX_KEYS: i32 = 1000;

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

pub(super) fn wants_url(e: &Option<EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

/// Applies `encoding-type=url` to a key-like field of the response.
fn enc(url: bool, s: String) -> String {
    if url { url_encode(&s) } else { s }
}

/// The rows as Contents and CommonPrefixes; `owner`: each object's Owner (v1 always, v2 with
/// `fetch-owner=true`; every object belongs to the bucket's owner).
fn split(url: bool, r: ListResult, owner: Option<&Owner>) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for item in r.items {
        match item {
            ListItem::Object(e) => objects.push(Object {
                key: Some(enc(url, e.key)),
                size: i64::try_from(e.size).ok(),
                e_tag: Some(ETag::Strong(e.etag)),
                last_modified: Some(timestamp(e.created_at)),
                storage_class: Some(ObjectStorageClass::from(e.storage_class)),
                owner: owner.cloned(),
                ..Default::default()
            }),
            ListItem::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(url, p)),
            }),
        }
    }
    (objects, prefixes)
}

pub async fn v1(
    g: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let r = g
        .engine
        .list_objects(&caller, &input.bucket, &q)
        .await
        .map_err(to_s3_error)?;
    // NextMarker is returned only with a delimiter; without one clients resume from the last key.
    let next_marker = (r.truncated && q.delimiter.is_some())
        .then(|| r.items.last().map(|i| enc(url, i.resume_key().to_owned())))
        .flatten();
    let truncated = r.truncated;
    let (objects, prefixes) = split(url, r, Some(&owner(&caller.tenant_id)));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // v1 returns Prefix as given, even with encoding-type=url (clients decode only Marker,
        // NextMarker, Delimiter, keys and common prefixes).
        prefix: Some(q.prefix),
        marker: Some(enc(url, input.marker.unwrap_or_default())),
        delimiter: input
            .delimiter
            .filter(|d| !d.is_empty())
            .map(|d| enc(url, d)),
        max_keys: Some(q.max_keys as i32),
        is_truncated: Some(truncated),
        next_marker,
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// Continuation tokens are opaque to clients: the resume key, base64url-encoded.
pub(super) fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

pub(super) fn decode_token(t: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        // Never one of ours (keys have no U+0000), and PostgreSQL could not look it up.
        .filter(|k| !k.contains('\0'))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub async fn v2(
    g: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let after = match &input.continuation_token {
        Some(t) => Some(decode_token(t)?),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after,
        max_keys: max_keys(input.max_keys)?,
    };
    let r = g
        .engine
        .list_objects(&caller, &input.bucket, &q)
        .await
        .map_err(to_s3_error)?;
    let next = r
        .truncated
        .then(|| r.items.last().map(|i| encode_token(i.resume_key())))
        .flatten();
    let truncated = r.truncated;
    let count = r.items.len();
    let fetch_owner = input.fetch_owner == Some(true);
    let owner = fetch_owner.then(|| owner(&caller.tenant_id));
    let (objects, prefixes) = split(url, r, owner.as_ref());
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc(url, q.prefix)),
        delimiter: input
            .delimiter
            .filter(|d| !d.is_empty())
            .map(|d| enc(url, d)),
        max_keys: Some(q.max_keys as i32),
        key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
        is_truncated: Some(truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        start_after: input.start_after.map(|s| enc(url, s)),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// ListObjectVersions: versions and delete markers in key order, newest first.
pub async fn versions(
    g: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let version_marker = input.version_id_marker.clone().filter(|v| !v.is_empty());
    if version_marker.is_some() && key_marker.is_none() {
        return Err(s3_error!(
            InvalidArgument,
            "A version-id marker cannot be specified without a key marker."
        ));
    }
    let q = VersionQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        key_marker,
        version_marker,
        after_seq: None,
        max_keys: max_keys(input.max_keys)?,
    };
    let page = g
        .engine
        .list_versions(&caller, &input.bucket, &q)
        .await
        .map_err(to_s3_error)?;
    let next = match page.items.last().filter(|_| page.truncated) {
        Some(VersionItem::Version(v)) => Some((v.key.clone(), Some(v.version_id.clone()))),
        Some(VersionItem::Prefix(p)) => Some((p.clone(), None)),
        None => None,
    };
    let owner = owner(&caller.tenant_id);
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut prefixes = Vec::new();
    for item in page.items {
        match item {
            VersionItem::Version(e) if e.delete_marker => markers.push(DeleteMarkerEntry {
                key: Some(enc(url, e.key)),
                version_id: Some(e.version_id),
                is_latest: Some(e.is_latest),
                last_modified: Some(timestamp(e.created_at)),
                owner: Some(owner.clone()),
            }),
            VersionItem::Version(e) => versions.push(ObjectVersion {
                key: Some(enc(url, e.key)),
                version_id: Some(e.version_id),
                is_latest: Some(e.is_latest),
                size: i64::try_from(e.size).ok(),
                e_tag: Some(ETag::Strong(e.etag)),
                last_modified: Some(timestamp(e.created_at)),
                storage_class: Some(ObjectVersionStorageClass::from(e.storage_class)),
                owner: Some(owner.clone()),
                ..Default::default()
            }),
            VersionItem::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(url, p)),
            }),
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(url, q.prefix)),
        delimiter: input.delimiter.map(|d| enc(url, d)),
        key_marker: Some(enc(url, input.key_marker.unwrap_or_default())),
        version_id_marker: input.version_id_marker,
        max_keys: Some(q.max_keys as i32),
        is_truncated: Some(page.truncated),
        next_key_marker: next.as_ref().map(|(k, _)| enc(url, k.clone())),
        next_version_id_marker: next.and_then(|(_, v)| v),
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
