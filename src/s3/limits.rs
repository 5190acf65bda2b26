//! Checks on a request's head, made in front of s3s before any of its body is read: declared
//! sizes and presigned-URL lifetime (s3s has no limit of its own for these; for an XML body, one
//! that answers 500), the head's own size, `%00` in the path or query (PostgreSQL text cannot
//! hold it) and an empty Content-MD5 (which s3s takes for none).

use s3s::{S3Error, s3_error};

/// Largest single PUT or part (S3: 5 GiB). Larger objects are multipart.
pub const MAX_SINGLE_UPLOAD: u64 = 5 << 30;
/// Presigned URLs live at most 7 days (S3's limit).
pub const MAX_PRESIGN_SECS: u64 = 604_800;
/// Largest XML request body (DeleteObjects with 1,000 keys, CompleteMultipartUpload with 10,000
/// parts fit). s3s's own check answers 500 when it trips, so it is enforced here first.
pub const MAX_XML_BODY: u64 = 4 << 20;
/// Largest browser POST upload: s3s holds the file part in memory.
pub const MAX_POST_FILE: u64 = 64 << 20;
/// Largest request head (request line and headers) accepted; S3's is 8 KiB, and presigned URLs
/// with long keys plus SDK headers fit easily. The HTTP layer's buffer (4 × this) refuses larger
/// heads with a bare 431 before they reach here.
pub(super) const MAX_HEAD: usize = 64 << 10;

fn header_u64<B>(req: &http::Request<B>, name: &str) -> Option<u64> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Rejects requests whose declared sizes or presigned lifetime are over the limits.
pub fn check<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    check_head(req)?;
    check_no_nul(req.uri())?;
    check_no_c1_controls(req.uri())?;
    super::sse::check_headers(req.headers())?;
    let declared = header_u64(req, "x-amz-decoded-content-length")
        .or_else(|| header_u64(req, "content-length"))
        .unwrap_or(0);
    if req.method() == http::Method::PUT && declared > MAX_SINGLE_UPLOAD {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }
    if req.method() == http::Method::POST && !super::form::is_form(req) && declared > MAX_XML_BODY {
        return Err(s3_error!(
            MaxMessageLengthExceeded,
            "Your request was too big."
        ));
    }
    check_content_md5(req)?;
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded_pairs(q) {
            if k.eq_ignore_ascii_case("X-Amz-Expires") {
                // A negative lifetime has expired before it began (403, as the conformance
                // suite expects); one that is not a number is malformed (400).
                match v.parse::<i64>() {
                    Ok(n) if n < 0 => {
                        return Err(s3_error!(AccessDenied, "Request has expired"));
                    }
                    Ok(n) if n.unsigned_abs() <= MAX_PRESIGN_SECS => {}
                    Ok(_) => {
                        // Over a week: a signature S3 will never honour, refused as
                        // forbidden like an expired one (403, as RGW and the suite).
                        let mut err = s3_error!(
                            AuthorizationQueryParametersError,
                            "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds"
                        );
                        err.set_status_code(http::StatusCode::FORBIDDEN);
                        return Err(err);
                    }
                    Err(_) => {
                        return Err(s3_error!(
                            AuthorizationQueryParametersError,
                            "X-Amz-Expires should be a number"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Refuses a request head over `MAX_HEAD` bytes, counted as on the wire (`name: value\r\n`).
fn check_head<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if line + headers <= MAX_HEAD {
        return Ok(());
    }
    let mut err = S3Error::with_message(
        s3s::S3ErrorCode::Custom(HEAD_TOO_LARGE.into()),
        head_too_large_message(),
    );
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    Err(err)
}

const HEAD_TOO_LARGE: &str = "RequestHeaderSectionTooLarge";

fn head_too_large_message() -> String {
    format!("Your request header section exceeds the maximum allowed size of {MAX_HEAD} bytes.")
}

/// The XML error body for a head too large for the HTTP layer's buffer (the server writes it
/// in place of hyper's bare 431): the same code and message as `check_head`'s.
pub fn head_too_large_body(request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{HEAD_TOO_LARGE}</Code>\
         <Message>{}</Message><RequestId>{request_id}</RequestId></Error>",
        head_too_large_message()
    )
}

/// Refuses U+0000 (`%00`) in the path or query: PostgreSQL text cannot hold it, so such a key,
/// prefix or marker could be neither stored nor looked up there; refused on SQLite alike so
/// both backends answer the same. (Values from headers and bodies are checked by the engine.)
fn check_no_nul(uri: &http::Uri) -> Result<(), S3Error> {
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    if !target.contains("%00") {
        return Ok(());
    }
    Err(s3_error!(
        InvalidArgument,
        "U+0000 (NUL) is not supported in object keys or request parameters."
    ))
}

/// A path holding a C1 control character (U+0080..U+009F) is a client's Latin-1 bytes taken
/// for code points; S3 refuses such a URI (400 InvalidURI) rather than name a key by it.
fn check_no_c1_controls(uri: &http::Uri) -> Result<(), S3Error> {
    let path = uri.path();
    // Every C1 control is `%C2%80`..`%C2%9F` in UTF-8 percent-encoding.
    if !path.contains("%C2") && !path.contains("%c2") {
        return Ok(());
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if !decoded.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        return Ok(());
    }
    Err(s3_error!(InvalidURI, "Couldn't parse the specified URI."))
}

/// An empty `Content-MD5` is an invalid digest to S3 (400 InvalidDigest); s3s reads an empty
/// header as an absent one, and the body would be stored unchecked.
fn check_content_md5<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    let empty = req
        .headers()
        .get_all("content-md5")
        .iter()
        .any(|v| v.as_bytes().trim_ascii().is_empty());
    if !empty {
        return Ok(());
    }
    Err(s3_error!(
        InvalidDigest,
        "The Content-MD5 you specified was invalid."
    ))
}

fn form_urlencoded_pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&').map(|p| p.split_once('=').unwrap_or((p, "")))
}
