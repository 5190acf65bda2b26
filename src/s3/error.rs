use crate::engine::Error;
use s3s::{S3Error, S3ErrorCode};

/// Maps each engine error to exactly one S3 error. Internal failures are logged here with
/// their cause and answered with a generic message (no internals leak to clients).
pub fn to_s3_error(e: Error) -> S3Error {
    use S3ErrorCode as C;
    let code = match &e {
        Error::NoSuchBucket => C::NoSuchBucket,
        Error::NoSuchKey => C::NoSuchKey,
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
        Error::AccessDenied => C::AccessDenied,
        Error::InvalidStorageClass => C::InvalidStorageClass,
        Error::InvalidArgument(_) => C::InvalidArgument,
        Error::Storage(_) | Error::Meta(_) => {
            tracing::error!(error = %e, "internal error");
            return S3Error::with_message(
                C::InternalError,
                "We encountered an internal error. Please try again.",
            );
        }
    };
    S3Error::with_message(code, e.to_string())
}
