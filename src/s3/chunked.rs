//! A PUT sent with `Transfer-Encoding: chunked` and no `Content-Length`, whose SigV4 signature
//! covers the body's SHA-256 (`x-amz-content-sha256: <hex>`): S3 accepts it; s3s needs the
//! length up front to verify the hash and answers 411 MissingContentLength. A client that
//! hashed its whole body before sending it holds that body anyway, so such bodies are small in
//! practice: up to `MAX_UNSIZED` bytes are read here and handed to s3s with their length known.
//! A longer one is refused as before (411). It is read before the signature is verified, hence
//! the same bound as a browser form's head (`form::FilenameKey`).

use http_body_util::BodyExt;
use s3s::{S3Error, s3_error};

/// Largest chunked body without a length accepted.
const MAX_UNSIZED: usize = 1 << 20;

/// Whether the request is such a PUT (or POST): no length, a chunked body, a signed hash.
pub fn needs_length<B>(req: &http::Request<B>) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let chunked = header(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let hashed = header(http::header::HeaderName::from_static(
        "x-amz-content-sha256",
    ))
    .is_some_and(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    chunked && hashed && !req.headers().contains_key(http::header::CONTENT_LENGTH)
}

/// The request with its body read into memory (its length then known to s3s).
pub async fn buffer<B>(req: http::Request<B>) -> Result<http::Request<s3s::Body>, S3Error>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let collected = http_body_util::Limited::new(body, MAX_UNSIZED)
        .collect()
        .await;
    match collected {
        Ok(c) => Ok(http::Request::from_parts(
            parts,
            s3s::Body::from(c.to_bytes()),
        )),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(s3_error!(
            MissingContentLength,
            "You must provide the Content-Length HTTP header."
        )),
        Err(e) => Err(s3_error!(
            IncompleteBody,
            "The request body ended early: {e}"
        )),
    }
}
