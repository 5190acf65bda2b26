use crate::blobs::{BodyError, WriteError};
use crate::meta::MetaError;

/// What can go wrong in an engine call, in S3's vocabulary (the `s3` layer maps each variant to
/// exactly one S3 error code).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    #[error("The specified key does not exist.")]
    NoSuchKey,
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    /// The version asked for is a delete marker: the current one (404 NoSuchKey) or one named
    /// by its id (405 MethodNotAllowed).
    #[error("{}", if *.by_version { "The specified method is not allowed against this resource." } else { "The specified key does not exist." })]
    DeleteMarker {
        version_id: String,
        by_version: bool,
    },
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    MalformedPolicy(String),
    #[error("The bucket policy does not exist")]
    NoSuchBucketPolicy,
    /// A capability that is not built (S3's 501).
    #[error("{0}")]
    NotImplemented(String),
    #[error("Object Lock configuration does not exist for this bucket")]
    ObjectLockConfigurationNotFound,
    #[error("The retention period must be a positive integer")]
    InvalidRetentionPeriod,
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("Your key is too long")]
    KeyTooLong,
    #[error("Your metadata headers exceed the maximum allowed metadata size")]
    MetadataTooLarge,
    #[error("Your proposed upload exceeds the maximum allowed object size")]
    EntityTooLarge,
    #[error("The Content-MD5 you specified did not match what we received.")]
    BadDigest,
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    Sha256Mismatch,
    #[error("The request signature we calculated does not match the signature you provided.")]
    SignatureMismatch,
    #[error(
        "You did not provide the number of bytes specified by the Content-Length HTTP header: {0}"
    )]
    IncompleteBody(String),
    #[error("At least one of the preconditions you specified did not hold")]
    PreconditionFailed,
    /// The write would take its bucket or its tenant over a quota (bytes or versions).
    #[error("The write would exceed the {0} quota.")]
    QuotaExceeded(&'static str),
    #[error("Access Denied")]
    AccessDenied,
    #[error("The storage class you specified is not valid")]
    InvalidStorageClass,
    #[error("{0}")]
    InvalidArgument(String),
    #[error(
        "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed."
    )]
    NoSuchUpload,
    #[error(
        "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag. (part {0})"
    )]
    InvalidPart(i32),
    #[error(
        "The list of parts was not in ascending order. The parts list must be specified in order by part number."
    )]
    InvalidPartOrder,
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    EntityTooSmall,
    #[error("The requested range is not satisfiable")]
    InvalidRange,
    #[error("{0}")]
    MalformedXml(String),
    #[error("The {} you specified did not match the calculated checksum.", .0.as_str())]
    ChecksumMismatch(crate::blobs::ChecksumAlgo),
    #[error("{0}")]
    InvalidChecksum(String),
    #[error("{0}")]
    InvalidTag(String),
    #[error("The object's data failed an integrity check and cannot be served.")]
    Corrupted,
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("metadata: {0}")]
    Meta(MetaError),
    /// An invariant of stored data does not hold (e.g. a stored ACL that does not parse).
    #[error("internal: {0}")]
    Internal(String),
    #[error("metadata database unavailable: {0}")]
    Unavailable(MetaError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a key, tag or metadata value with U+0000 is refused (PostgreSQL text cannot hold it;
/// refused on SQLite alike).
pub(super) const NUL_REFUSED: &str = "U+0000 (NUL) is not supported in keys, tags or metadata";

impl From<MetaError> for Error {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoSuchBucket => Error::NoSuchBucket,
            MetaError::NoSuchKey => Error::NoSuchKey,
            MetaError::BucketNotEmpty => Error::BucketNotEmpty,
            MetaError::BucketExists => Error::BucketAlreadyOwnedByYou,
            MetaError::PreconditionFailed => Error::PreconditionFailed,
            MetaError::QuotaExceeded => Error::QuotaExceeded("bucket's or tenant's"),
            MetaError::Place(io) | MetaError::Sync(io) => Error::Storage(io),
            MetaError::NoSuchUpload => Error::NoSuchUpload,
            MetaError::Locked => Error::AccessDenied,
            MetaError::DeleteMarker => Error::InvalidRequest(
                "The source of a copy request may not specifically refer to a delete marker by \
                 version id."
                    .into(),
            ),
            MetaError::Rejected(e) => match e.downcast::<Error>() {
                Ok(e) => *e,
                Err(e) => Error::Meta(MetaError::Rejected(e)),
            },
            e if e.is_unavailable() => Error::Unavailable(e),
            e if e.is_unstorable_text() => Error::InvalidArgument(NUL_REFUSED.into()),
            e => Error::Meta(e),
        }
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Io(io) => Error::Storage(io),
            WriteError::Body(BodyError::Sha256Mismatch) => Error::Sha256Mismatch,
            WriteError::Body(BodyError::SignatureMismatch) => Error::SignatureMismatch,
            WriteError::Body(BodyError::TooLarge(_)) => Error::EntityTooLarge,
            WriteError::Body(BodyError::Incomplete(m) | BodyError::Client(m)) => {
                Error::IncompleteBody(m)
            }
        }
    }
}
