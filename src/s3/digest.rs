//! `Content-MD5` and `x-amz-checksum-*` of XML request bodies (DeleteObjects,
//! CompleteMultipartUpload, PutObjectTagging, every Put…Configuration): s3s reads these bodies
//! whole and acts on them without looking at either header, so a body damaged on the way was
//! acted on. Object bodies (PutObject, UploadPart) are verified by the engine instead.
//!
//! The headers are parsed before s3s (malformed: 400 InvalidDigest / InvalidRequest), and the
//! body passes through `Check`, which hashes it as s3s reads it and, at its end, fails it on a
//! mismatch — before s3s hands the parsed body to the operation, so nothing is acted on. The
//! failure is recorded (`Verdict`) and `Protocol::call` answers 400 BadDigest, as S3 does.

use crate::blobs::{ChecksumAlgo, Hasher};
use base64::Engine as _;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use md5::Digest as _;
use s3s::{S3Error, s3_error};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// PUT subresources whose body is XML (the rest of PUT carries object bytes or nothing).
const XML_PUTS: [&str; 22] = [
    "tagging",
    "acl",
    "cors",
    "lifecycle",
    "policy",
    "versioning",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "ownershipControls",
    "publicAccessBlock",
    "requestPayment",
    "accelerate",
    "object-lock",
    "legal-hold",
    "retention",
    "intelligent-tiering",
    "analytics",
    "inventory",
    "metrics",
];

/// What the client says the body hashes to.
pub struct Expect {
    md5: Option<[u8; 16]>,
    sum: Option<(ChecksumAlgo, Vec<u8>)>,
}

fn has_param(query: Option<&str>, names: &[&str]) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
            .any(|k| names.contains(&k))
    })
}

/// Whether the request's body is an XML document s3s reads whole (not object bytes, not a
/// browser form, not aws-chunked framing).
fn xml_body<B>(req: &http::Request<B>) -> bool {
    if super::aws_chunked::is_aws_chunked(req) || super::form::is_form(req) {
        return false;
    }
    match *req.method() {
        http::Method::POST => true,
        http::Method::PUT => has_param(req.uri().query(), &XML_PUTS),
        _ => false,
    }
}

fn decode(v: &http::HeaderValue) -> Option<Vec<u8>> {
    let v = v.to_str().ok()?;
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()
}

/// The digests an XML-bodied request declares; `None` when it declares none or its body is not
/// XML. A malformed value is the error S3 answers for it.
pub fn expect<B>(req: &http::Request<B>) -> Result<Option<Expect>, S3Error> {
    if !xml_body(req) {
        return Ok(None);
    }
    let md5 = match req.headers().get("content-md5") {
        None => None,
        Some(v) => Some(
            decode(v)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
                })?,
        ),
    };
    // CompleteMultipartUpload's x-amz-checksum-* is the completed object's, not the body's.
    let complete = has_param(req.uri().query(), &["uploadId"]);
    let mut sums = ChecksumAlgo::ALL.into_iter().filter_map(|a| {
        let name = format!("x-amz-checksum-{}", a.as_str().to_ascii_lowercase());
        req.headers().get(name.as_str()).map(|v| (a, v))
    });
    let sum = match (complete, sums.next(), sums.next()) {
        (true, _, _) | (false, None, _) => None,
        (false, Some(_), Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            ));
        }
        (false, Some((a, v)), None) => {
            let raw = decode(v).filter(|b| b.len() == a.digest_len());
            let raw = raw.ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-{} header is invalid.",
                    a.as_str().to_ascii_lowercase()
                )
            })?;
            Some((a, raw))
        }
    };
    Ok((md5.is_some() || sum.is_some()).then_some(Expect { md5, sum }))
}

/// Set when a checked body did not match its digest: the message of the BadDigest answer.
#[derive(Clone, Default)]
pub struct Verdict(Arc<OnceLock<String>>);

impl Verdict {
    /// The BadDigest error, if the body failed its check.
    pub fn failed(&self) -> Option<S3Error> {
        let msg = self.0.get()?;
        Some(S3Error::with_message(
            s3s::S3ErrorCode::BadDigest,
            msg.clone(),
        ))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("BadDigest: {0}")]
pub struct Mismatch(String);

/// A body hashed as it is read and failed at its end if it does not match (see the module doc).
pub struct Check<B> {
    inner: B,
    md5: Option<(md5::Md5, [u8; 16])>,
    sum: Option<(Hasher, ChecksumAlgo, Vec<u8>)>,
    verdict: Verdict,
}

impl<B> Check<B> {
    pub fn new(inner: B, expect: Expect, verdict: Verdict) -> Self {
        Check {
            inner,
            md5: expect.md5.map(|m| (md5::Md5::new(), m)),
            sum: expect.sum.map(|(a, v)| (Hasher::new(a), a, v)),
            verdict,
        }
    }

    /// The mismatch at the body's end, if any.
    fn finish(&mut self) -> Option<String> {
        if let Some((h, want)) = self.md5.take()
            && h.finalize().as_slice() != want
        {
            return Some("The Content-MD5 you specified did not match what we received.".into());
        }
        if let Some((h, algo, want)) = self.sum.take()
            && h.finish(None) != want
        {
            return Some(format!(
                "The {} you specified did not match the calculated checksum.",
                algo.as_str()
            ));
        }
        None
    }
}

impl<B> Body for Check<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some((h, _)) = this.md5.as_mut() {
                        h.update(data);
                    }
                    if let Some((h, _, _)) = this.sum.as_mut() {
                        h.update(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => match this.finish() {
                Some(msg) => {
                    let _ = this.verdict.0.set(msg.clone());
                    Poll::Ready(Some(Err(Mismatch(msg).into())))
                }
                None => Poll::Ready(None),
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        // The end must be polled, for the check.
        self.md5.is_none() && self.sum.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
