//! Authentication rules S3 applies that s3s 0.14.1 does not, checked on the request head before
//! s3s verifies the signature (so nothing here grants anything: a request that passes still has
//! its signature verified by s3s).
//!
//! - One mechanism: a presigned URL that also carries an `Authorization` header is refused
//!   (400 InvalidArgument); s3s silently picks one of them.
//! - Service: a SigV4 credential scoped to another service (`sts`, `ec2`) is refused; s3s
//!   accepts `sts` as if it were `s3` and answers 501 for others.
//! - Unsigned `x-amz-*` headers: SigV4 signs only the headers it lists, and s3s acts on every
//!   header present, so a captured request could gain `x-amz-meta-*`, `x-amz-tagging`,
//!   `x-amz-storage-class`, `x-amz-acl`... S3 refuses any `x-amz-*` header a SigV4 request did
//!   not sign (403 AccessDenied), except `x-amz-content-sha256`, whose value the signature
//!   covers anyway (the payload hash line). SigV2 signs every `x-amz-*` header by construction.
//! - Dates: SigV2 (and SigV4 without `x-amz-date`) carry their time in `x-amz-date` or `Date`,
//!   RFC 1123 with `GMT` or a numeric zone (`+0000`, Python's `-0000`); s3s parses neither for
//!   SigV2, and for SigV4 insists on `x-amz-date`. S3 takes `x-amz-date` over `Date`, refuses a
//!   missing or unparseable one (and one before 1970) with 403 AccessDenied and one more than
//!   15 minutes off with RequestTimeTooSkewed.

use s3s::{S3Error, S3ErrorCode, s3_error};

/// Largest clock difference for a request dated by a header (SigV4's is checked by s3s too).
const MAX_SKEW_SECS: i64 = 15 * 60;

const NOT_SIGNED: &str = "There were headers present in the request which were not signed";
const NO_DATE: &str = "AWS authentication requires a valid Date or x-amz-date header";
const SIGV4: &str = "AWS4-HMAC-SHA256 ";

/// The checks of the module doc, for every request but browser POST forms (signed by their
/// policy, not by headers).
pub fn check<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    if req.method() == http::Method::POST && super::form::is_form(req) {
        return Ok(());
    }
    let query = super::sigv2::parse_query(req.uri().query().unwrap_or(""));
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let presigned_v2 = has("Signature");
    let presigned_v4 = has("X-Amz-Signature") || has("X-Amz-Algorithm") || has("X-Amz-Credential");
    let auth = authorization(req);
    if auth.is_some() && (presigned_v2 || presigned_v4) {
        return Err(only_one_mechanism());
    }
    // s3s's order: SigV2 presigned, SigV2 header, SigV4 presigned, SigV4 header.
    if presigned_v2 {
        return Ok(());
    }
    match auth {
        Some(a) if a.starts_with("AWS ") => {
            check_v2_credential(a)?;
            check_date(req, DateRule::AnyHeader)
        }
        Some(a) if a.starts_with(SIGV4) => check_v4_header(req, a),
        _ if has("X-Amz-Signature") => check_v4_query(req, &query),
        _ => Ok(()),
    }
}

/// The one `Authorization` header (two are anonymous to s3s, and refused as such later).
fn authorization<B>(req: &http::Request<B>) -> Option<&str> {
    let mut all = req.headers().get_all(http::header::AUTHORIZATION).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

fn only_one_mechanism() -> S3Error {
    s3_error!(
        InvalidArgument,
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature \
         query string parameter or the Authorization header should be specified"
    )
}

/// `AWS key:signature`: S3 answers one without the colon with InvalidArgument (s3s would take
/// it for a malformed SigV4 header).
fn check_v2_credential(auth: &str) -> Result<(), S3Error> {
    if auth.contains(':') {
        return Ok(());
    }
    Err(s3_error!(
        InvalidArgument,
        "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature"
    ))
}

/// SigV4 header auth: the credential's service, unsigned `x-amz-*` headers, the date.
fn check_v4_header<B>(req: &http::Request<B>, auth: &str) -> Result<(), S3Error> {
    // Unparseable headers are s3s's to refuse.
    let field = |name: &str| {
        auth[SIGV4.len()..]
            .split(',')
            .find_map(|p| p.trim().strip_prefix(name))
    };
    if let Some(service) = field("Credential=").and_then(scope_service)
        && service != "s3"
    {
        return Err(wrong_service(
            S3ErrorCode::AuthorizationHeaderMalformed,
            "The authorization header is malformed",
            service,
        ));
    }
    if let Some(signed) = field("SignedHeaders=") {
        all_amz_signed(req, signed)?;
    }
    check_date(req, DateRule::V4Header)
}

/// SigV4 presigned URL: the credential's service and unsigned `x-amz-*` headers.
fn check_v4_query<B>(req: &http::Request<B>, query: &[(String, String)]) -> Result<(), S3Error> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(service) = param("X-Amz-Credential").and_then(scope_service)
        && service != "s3"
    {
        return Err(wrong_service(
            S3ErrorCode::AuthorizationQueryParametersError,
            "Error parsing the X-Amz-Credential parameter",
            service,
        ));
    }
    all_amz_signed(req, param("X-Amz-SignedHeaders").unwrap_or(""))
}

/// The service of `key/date/region/service/aws4_request` (access keys hold no `/`).
fn scope_service(credential: &str) -> Option<&str> {
    let parts: Vec<&str> = credential.split('/').collect();
    (parts.len() == 5).then(|| parts[3])
}

fn wrong_service(code: S3ErrorCode, what: &str, service: &str) -> S3Error {
    let mut e = S3Error::with_message(
        code,
        format!("{what}; incorrect service \"{service}\". This endpoint belongs to \"s3\"."),
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

/// Refuses an `x-amz-*` header missing from `signed` (`a;b;c`, lower case).
fn all_amz_signed<B>(req: &http::Request<B>, signed: &str) -> Result<(), S3Error> {
    let unsigned = req
        .headers()
        .keys()
        .map(http::HeaderName::as_str)
        .find(|h| {
            h.starts_with("x-amz-")
                && *h != "x-amz-content-sha256"
                && !signed.split(';').any(|s| s.trim().eq_ignore_ascii_case(h))
        });
    match unsigned {
        None => Ok(()),
        Some(h) => {
            tracing::debug!(header = h, "unsigned x-amz header");
            Err(s3_error!(AccessDenied, "{NOT_SIGNED}"))
        }
    }
}

/// Which headers may date a request.
#[derive(Clone, Copy, PartialEq)]
enum DateRule {
    /// SigV2: `x-amz-date`, else `Date`.
    AnyHeader,
    /// SigV4: `x-amz-date` is s3s's to parse and bound; without it, `Date` is checked here.
    V4Header,
}

/// The request's date is present, valid, not before 1970 and within 15 minutes of now.
fn check_date<B>(req: &http::Request<B>, rule: DateRule) -> Result<(), S3Error> {
    let header = |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap_or(""));
    let amz = header("x-amz-date");
    if rule == DateRule::V4Header && amz.is_some() {
        return Ok(());
    }
    let when = amz
        .or_else(|| header("date"))
        .and_then(parse_date)
        .filter(|t| t.unix_timestamp() >= 0)
        .ok_or_else(|| s3_error!(AccessDenied, "{NO_DATE}"))?;
    let skew = (time::OffsetDateTime::now_utc() - when)
        .whole_seconds()
        .abs();
    if skew > MAX_SKEW_SECS {
        return Err(s3_error!(
            RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large."
        ));
    }
    Ok(())
}

/// RFC 1123 / RFC 2822 (`GMT`, `UT` or a numeric zone) or ISO 8601 basic (`20130524T000000Z`).
fn parse_date(v: &str) -> Option<time::OffsetDateTime> {
    let v = v.trim();
    let basic = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822)
        .ok()
        .or_else(|| {
            time::PrimitiveDateTime::parse(v, basic)
                .ok()
                .map(time::PrimitiveDateTime::assume_utc)
        })
}

/// SigV4 header auth dated by `Date` alone (botocore does this when a `Date` header is set):
/// S3 accepts it, s3s insists on `x-amz-date`, so the same instant is given to s3s in that
/// header. The signature covers the instant through its string to sign and `Date` through the
/// signed headers; an added `x-amz-date` is not among them and changes neither.
pub fn add_amz_date<B>(req: &mut http::Request<B>) {
    let v4 = authorization(req).is_some_and(|a| a.starts_with(SIGV4));
    if !v4 || req.headers().contains_key("x-amz-date") {
        return;
    }
    let basic = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let amz = req
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date)
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(basic).ok())
        .and_then(|s| http::HeaderValue::from_str(&s).ok());
    if let Some(amz) = amz {
        req.headers_mut().insert("x-amz-date", amz);
    }
}
