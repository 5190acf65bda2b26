//! Server-side encryption is not built: bodies are stored as sent. A request that asks for it
//! (SSE-S3 `AES256` included: nothing is encrypted at rest) or hands a customer key (SSE-C, for
//! the object or a copy source) is refused with 501 NotImplemented before anything is read or
//! stored, instead of storing plaintext the client believes encrypted.

use s3s::dto::PutObjectInput;
use s3s::{S3Error, S3Result, s3_error};

/// Header name prefixes of every SSE request header (SSE-S3, SSE-KMS and its context and
/// bucket key, SSE-C, and SSE-C for a copy source).
const PREFIXES: [&str; 2] = [
    "x-amz-server-side-encryption",
    "x-amz-copy-source-server-side-encryption",
];

fn refused(name: &str) -> S3Error {
    s3_error!(
        NotImplemented,
        "Server-side encryption is not implemented; the request carried {name}."
    )
}

/// Refuses a request carrying any SSE header (every operation: PUT, copy, multipart, and
/// GET/HEAD with an SSE-C key).
pub fn check_headers(headers: &http::HeaderMap) -> Result<(), S3Error> {
    let found = headers
        .keys()
        .map(http::HeaderName::as_str)
        .find(|n| PREFIXES.iter().any(|p| n.starts_with(p)));
    match found {
        Some(name) => Err(refused(name)),
        None => Ok(()),
    }
}

/// Refuses SSE fields of a browser POST form (s3s parses them into the PUT input; headers were
/// refused before s3s).
pub fn check_put(input: &PutObjectInput) -> S3Result<()> {
    let fields = [
        (
            input.server_side_encryption.is_some(),
            "x-amz-server-side-encryption",
        ),
        (
            input.sse_customer_algorithm.is_some() || input.sse_customer_key.is_some(),
            "x-amz-server-side-encryption-customer-algorithm",
        ),
        (
            input.sse_customer_key_md5.is_some(),
            "x-amz-server-side-encryption-customer-key-MD5",
        ),
        (
            input.ssekms_key_id.is_some() || input.ssekms_encryption_context.is_some(),
            "x-amz-server-side-encryption-aws-kms-key-id",
        ),
        (
            input.bucket_key_enabled.is_some(),
            "x-amz-server-side-encryption-bucket-key-enabled",
        ),
    ];
    match fields.iter().find(|(set, _)| *set) {
        Some((_, name)) => Err(refused(name)),
        None => Ok(()),
    }
}
