use super::Body;
use crate::engine::Error;
use http_body_util::BodyExt;
use s3s::{S3Error, S3ErrorCode};

/// Error bodies larger than this are passed through untouched.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Maps each engine error to exactly one S3 error. Internal failures are logged here with
/// their cause and answered with a generic message (no internals leak to clients).
/// `x-amz-delete-marker` (and the marker's `x-amz-version-id`) of an error about a key.
fn delete_marker_headers(marker: bool, version_id: Option<&str>) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    let flag = if marker { "true" } else { "false" };
    h.insert("x-amz-delete-marker", http::HeaderValue::from_static(flag));
    if let Some(v) = version_id.and_then(|v| http::HeaderValue::from_str(v).ok()) {
        h.insert("x-amz-version-id", v);
    }
    h
}

pub fn to_s3_error(e: Error) -> S3Error {
    use S3ErrorCode as C;
    let code = match &e {
        Error::NoSuchBucket => C::NoSuchBucket,
        Error::NoSuchKey => {
            // s3-tests (and SDKs that read it) expect the header on every missing key.
            let mut err = S3Error::with_message(C::NoSuchKey, e.to_string());
            err.set_headers(delete_marker_headers(false, None));
            return err;
        }
        Error::NoSuchVersion => C::NoSuchVersion,
        Error::DeleteMarker {
            version_id,
            by_version,
        } => {
            let (code, status) = match by_version {
                true => (C::MethodNotAllowed, http::StatusCode::METHOD_NOT_ALLOWED),
                false => (C::NoSuchKey, http::StatusCode::NOT_FOUND),
            };
            let mut err = S3Error::with_message(code, e.to_string());
            err.set_status_code(status);
            err.set_headers(delete_marker_headers(true, Some(version_id)));
            return err;
        }
        Error::InvalidBucketState(_) => C::InvalidBucketState,
        Error::InvalidRequest(_) => C::InvalidRequest,
        Error::MalformedPolicy(_) => C::MalformedPolicy,
        Error::NoSuchBucketPolicy => C::NoSuchBucketPolicy,
        Error::NotImplemented(_) => C::NotImplemented,
        Error::ObjectLockConfigurationNotFound => {
            let mut err = S3Error::with_message(
                C::Custom("ObjectLockConfigurationNotFoundError".into()),
                e.to_string(),
            );
            err.set_status_code(http::StatusCode::NOT_FOUND);
            return err;
        }
        Error::InvalidRetentionPeriod => {
            let mut err =
                S3Error::with_message(C::Custom("InvalidRetentionPeriod".into()), e.to_string());
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            return err;
        }
        Error::BucketAlreadyOwnedByYou => C::BucketAlreadyOwnedByYou,
        Error::BucketNotEmpty => C::BucketNotEmpty,
        Error::KeyTooLong => C::KeyTooLongError,
        Error::MetadataTooLarge => C::MetadataTooLarge,
        Error::EntityTooLarge => C::EntityTooLarge,
        Error::BadDigest => C::BadDigest,
        Error::Sha256Mismatch => {
            let mut err =
                S3Error::with_message(C::Custom("XAmzContentSHA256Mismatch".into()), e.to_string());
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            return err;
        }
        Error::SignatureMismatch => C::SignatureDoesNotMatch,
        Error::IncompleteBody(_) => C::IncompleteBody,
        Error::PreconditionFailed => C::PreconditionFailed,
        Error::QuotaExceeded(_) => {
            let mut err = S3Error::with_message(C::Custom("QuotaExceeded".into()), e.to_string());
            err.set_status_code(http::StatusCode::FORBIDDEN);
            return err;
        }
        Error::AccessDenied => C::AccessDenied,
        Error::InvalidStorageClass => C::InvalidStorageClass,
        Error::InvalidArgument(_) => C::InvalidArgument,
        Error::NoSuchUpload => C::NoSuchUpload,
        Error::InvalidPart(_) => C::InvalidPart,
        Error::InvalidPartOrder => C::InvalidPartOrder,
        Error::EntityTooSmall => C::EntityTooSmall,
        Error::InvalidRange => C::InvalidRange,
        Error::MalformedXml(_) => C::MalformedXML,
        Error::ChecksumMismatch(_) => C::BadDigest,
        Error::InvalidChecksum(_) => C::InvalidRequest,
        Error::InvalidTag(_) => C::InvalidTag,
        Error::Corrupted => C::InternalError,
        Error::Storage(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            tracing::error!(error = %e, "storage full");
            let mut err = S3Error::with_message(
                C::Custom("InsufficientStorage".into()),
                "The server has insufficient storage to complete this request.",
            );
            err.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
            return err;
        }
        Error::Unavailable(_) => {
            tracing::error!(error = %e, "database unavailable");
            let mut err = S3Error::with_message(
                C::ServiceUnavailable,
                "The metadata database is unavailable. Please retry.",
            );
            let mut h = http::HeaderMap::new();
            h.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            err.set_headers(h);
            return err;
        }
        Error::Storage(_) | Error::Meta(_) | Error::Internal(_) => {
            tracing::error!(error = %e, "internal error");
            return S3Error::with_message(
                C::InternalError,
                "We encountered an internal error. Please try again.",
            );
        }
    };
    S3Error::with_message(code, e.to_string())
}

/// S3's answer to a request body that stopped arriving (`linger`'s body timeout).
pub fn request_timeout() -> http::Response<Body> {
    let mut e = S3Error::with_message(
        S3ErrorCode::RequestTimeout,
        "Your socket connection to the server was not read from or written to within the \
         timeout period. Idle connections will be closed.",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    response(e)
}

/// `e` as a response (a bare 400 in the unlikely case it cannot be serialised).
pub fn response(e: S3Error) -> http::Response<Body> {
    e.to_http_response().unwrap_or_else(|err| {
        tracing::error!(error = ?err, "serialising an error");
        let mut r = http::Response::new(Body::empty());
        *r.status_mut() = http::StatusCode::BAD_REQUEST;
        r
    })
}

/// S3's messages for errors that s3s raises without one (auth, routing, parsing).
fn default_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "AccessDenied" => "Access Denied",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method."
        }
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema."
        }
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the server's time is too large."
        }
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "InvalidRange" => "The requested range is not satisfiable",
        "AuthorizationHeaderMalformed" => "The authorization header is malformed.",
        "InvalidRequest" => "Invalid Request",
        "InvalidArgument" => "Invalid Argument",
        _ => return None,
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every S3 error body carries Code, Message, Resource and RequestId. s3s omits all but Code for
/// errors it raises itself, so they are filled in here, once, for every error response.
pub async fn complete(
    resp: http::Response<Body>,
    request_id: &str,
    resource: &str,
) -> http::Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let small = http_body::Body::size_hint(&body)
        .upper()
        .is_some_and(|n| n <= MAX_ERROR_BODY);
    if !small {
        return http::Response::from_parts(parts, body);
    }
    let Ok(collected) = body.collect().await else {
        return http::Response::from_parts(parts, Body::empty());
    };
    let bytes = collected.to_bytes();
    let Some(xml) = std::str::from_utf8(&bytes)
        .ok()
        .filter(|x| x.contains("</Error>"))
    else {
        return http::Response::from_parts(parts, Body::from(bytes));
    };
    let code = xml
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(c, _)| c);
    let mut extra = String::new();
    if !xml.contains("<Message>") {
        let msg = default_message(code)
            .or(parts.status.canonical_reason())
            .unwrap_or("Error");
        extra.push_str(&format!("<Message>{}</Message>", xml_escape(msg)));
    }
    if !xml.contains("<Resource>") {
        extra.push_str(&format!("<Resource>{}</Resource>", xml_escape(resource)));
    }
    if !xml.contains("<RequestId>") {
        extra.push_str(&format!("<RequestId>{request_id}</RequestId>"));
    }
    let end = xml.rfind("</Error>").unwrap_or(xml.len());
    let patched = format!("{}{}{}", &xml[..end], extra, &xml[end..]);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, Body::from(patched))
}
