//! CORS preflights (`OPTIONS`). Bucket CORS configurations are not built yet, so every bucket
//! answers as an S3 bucket without one: 400 without an `Origin`, else 403.

use s3s::{S3Error, s3_error};

/// `Err` with S3's answer for an `OPTIONS` request; `Ok` for every other method.
pub fn preflight<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    if req.method() != http::Method::OPTIONS {
        return Ok(());
    }
    if !req.headers().contains_key(http::header::ORIGIN) {
        return Err(s3_error!(
            InvalidRequest,
            "Insufficient information. Origin request header needed."
        ));
    }
    let mut e = S3Error::with_message(
        s3s::S3ErrorCode::Custom("AccessForbidden".into()),
        "CORSResponse: CORS is not enabled for this bucket.",
    );
    e.set_status_code(http::StatusCode::FORBIDDEN);
    Err(e)
}
