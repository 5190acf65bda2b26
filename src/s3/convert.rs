//! Conversions between s3s DTO fields and engine types.

use crate::blobs::{BodyError, ChecksumAlgo};
use crate::engine::{ChecksumSpec, TrailerValue};
use crate::meta::{Checksum, ObjectHeaders};
use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::dto::{
    ChecksumAlgorithm, ChecksumType, Metadata, StreamingBlob, Timestamp, TimestampFormat,
};
use s3s::{S3Result, TrailingHeaders, s3_error};
use std::collections::BTreeMap;

/// Stored microseconds → an S3 timestamp.
pub fn timestamp(micros: i64) -> Timestamp {
    let nanos = i128::from(micros) * 1000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub fn micros(t: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = t.clone().into();
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// A time as an HTTP-date (`Sat, 09 Jan 2027 00:00:00 GMT`); `Expires` is kept in this form.
pub fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

pub fn expires_from_string(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

/// `x-amz-tagging` (`k1=v1&k2=v2`, URL-encoded) → tags; duplicates are InvalidTag.
pub fn tagging_header(v: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(out);
    };
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."
                )
            })
    };
    for pair in v.split('&') {
        let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
        if out.insert(decode(k)?, decode(val)?).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(out)
}

/// A TagSet → tags; duplicate keys are InvalidTag.
pub fn tag_set(set: Vec<s3s::dto::Tag>) -> S3Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in set {
        let k = t.key.unwrap_or_default();
        if out.insert(k, t.value.unwrap_or_default()).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(out)
}

/// Stored tags as a response's TagSet.
pub fn tag_list(tags: BTreeMap<String, String>) -> Vec<s3s::dto::Tag> {
    tags.into_iter()
        .map(|(k, v)| s3s::dto::Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

pub struct HeaderFields {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
    pub tags: BTreeMap<String, String>,
}

pub fn headers(f: HeaderFields) -> ObjectHeaders {
    ObjectHeaders {
        content_type: f.content_type,
        // aws-chunked is transfer framing that s3s already removed, not the object's encoding.
        content_encoding: f.content_encoding.and_then(|e| {
            let rest: Vec<&str> = e
                .split(',')
                .map(str::trim)
                .filter(|p| !p.eq_ignore_ascii_case("aws-chunked") && !p.is_empty())
                .collect();
            (!rest.is_empty()).then(|| rest.join(", "))
        }),
        content_disposition: f.content_disposition,
        content_language: f.content_language,
        cache_control: f.cache_control,
        expires: f.expires.as_ref().and_then(http_date),
        user_meta: f
            .metadata
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect()
            })
            .unwrap_or_default(),
        tags: f.tags,
    }
}

pub fn metadata(h: &ObjectHeaders) -> Option<Metadata> {
    (!h.user_meta.is_empty()).then(|| h.user_meta.clone().into_iter().collect())
}

/// Decodes `Content-MD5` (base64 of 16 bytes); anything else is InvalidDigest.
pub fn content_md5(v: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    Ok(Some(arr))
}

/// The request body as the engine wants it: errors classified. s3s's stream errors are private
/// types, so they are recognised by their stable `Display` names.
pub fn body(blob: StreamingBlob) -> impl Stream<Item = Result<Bytes, BodyError>> + Send {
    blob.map(|r| {
        r.map_err(|e| {
            let msg = e.to_string();
            if msg.contains("Sha256Mismatch") {
                BodyError::Sha256Mismatch
            } else if msg.contains("ChunkTooLarge") {
                BodyError::TooLarge(super::aws_chunked::MAX_CHUNK)
            } else if msg.contains("SignatureMismatch") {
                BodyError::SignatureMismatch
            } else if msg.contains("Incomplete")
                || msg.contains("FormatError")
                || msg.contains("LengthMismatch")
            {
                BodyError::Incomplete(msg)
            } else {
                BodyError::Client(msg)
            }
        })
    })
}

/// The body of a request that has none.
pub fn empty_body() -> StreamingBlob {
    StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
}

/// Percent-encoding for `encoding-type=url`: everything but RFC 3986 unreserved characters
/// and `/` (what S3 emits; botocore decodes it with `unquote`, so a space must be `%20`).
const URL_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, URL_ENCODE).to_string()
}

/// The five `x-amz-checksum-*` value fields of a DTO, one set at most.
#[derive(Debug, Default)]
pub struct Sums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Sums {
    /// The fields for a stored checksum (all `None` without one).
    pub fn of(c: Option<&Checksum>) -> Sums {
        let mut s = Sums::default();
        if let Some(c) = c {
            let v = Some(c.value.clone());
            match c.algo {
                ChecksumAlgo::Crc32 => s.crc32 = v,
                ChecksumAlgo::Crc32c => s.crc32c = v,
                ChecksumAlgo::Crc64Nvme => s.crc64nvme = v,
                ChecksumAlgo::Sha1 => s.sha1 = v,
                ChecksumAlgo::Sha256 => s.sha256 = v,
            }
        }
        s
    }

    /// The one value the client sent, with its algorithm; two or more is InvalidRequest.
    pub fn single(self) -> S3Result<Option<(ChecksumAlgo, String)>> {
        let all = [
            (ChecksumAlgo::Crc32, self.crc32),
            (ChecksumAlgo::Crc32c, self.crc32c),
            (ChecksumAlgo::Crc64Nvme, self.crc64nvme),
            (ChecksumAlgo::Sha1, self.sha1),
            (ChecksumAlgo::Sha256, self.sha256),
        ];
        let mut given = all.into_iter().filter_map(|(a, v)| v.map(|v| (a, v)));
        let first = given.next();
        if given.next().is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            ));
        }
        Ok(first)
    }
}

pub fn checksum_type(c: Option<&Checksum>) -> Option<ChecksumType> {
    c.map(|c| ChecksumType::from(c.type_str().to_owned()))
}

pub fn algo(a: Option<&ChecksumAlgorithm>) -> S3Result<Option<ChecksumAlgo>> {
    a.map(|a| {
        ChecksumAlgo::parse(a.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Value for x-amz-sdk-checksum-algorithm header is invalid."
            )
        })
    })
    .transpose()
}

/// What a write request says about its checksum: a header value, a declared algorithm, or a
/// trailer (`x-amz-trailer: x-amz-checksum-…`, read after the body). Conflicts are
/// InvalidRequest.
pub fn checksum_spec(
    declared: Option<&ChecksumAlgorithm>,
    values: Sums,
    headers: &http::HeaderMap,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<ChecksumSpec> {
    let declared = algo(declared)?;
    let value = values.single()?;
    let trailer_name = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v.starts_with("x-amz-checksum-"));
    let trailer_algo = match &trailer_name {
        Some(n) => Some(
            ChecksumAlgo::parse(&n["x-amz-checksum-".len()..]).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "The value specified in the x-amz-trailer header is not supported"
                )
            })?,
        ),
        None => None,
    };
    let named = [value.as_ref().map(|v| v.0), trailer_algo, declared];
    let mut algos = named.iter().flatten();
    let algo = algos.next().copied();
    if algos.any(|a| Some(*a) != algo) {
        return Err(s3_error!(
            InvalidRequest,
            "Value for x-amz-sdk-checksum-algorithm header is invalid."
        ));
    }
    let trailer = match (trailer_name, trailers, &value) {
        (Some(name), Some(t), None) => {
            let t = t.clone();
            Some(TrailerValue(std::sync::Arc::new(move || {
                t.read(|h| {
                    h.get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .flatten()
            })))
        }
        _ => None,
    };
    Ok(ChecksumSpec {
        algo,
        value: value.map(|v| v.1),
        trailer,
    })
}

/// The signed `x-amz-decoded-content-length` of an aws-chunked body.
pub fn decoded_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
