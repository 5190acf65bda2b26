//! The lean client: SigV4-signed requests over a bare hyper HTTP/1.1 connection pool, for the
//! small-object and listing steps.
//!
//! `aws-sdk-s3` spends 220-270 µs of CPU per request (its orchestrator, interceptors, XML
//! parsing: ~5 ms per 1,000-key page), on the same two cores as the server, so at concurrency
//! 32 the SDK steps measure the client as much as the server. This client signs the same way
//! (header SigV4, the body's real SHA-256 as `x-amz-content-sha256`), keeps connections alive,
//! and reads listings with a string scan: the server does exactly the work an SDK request asks
//! of it, and the client's own share of the machine is small. The bench reports both.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::SystemTime;

/// Everything but SigV4's unreserved characters is percent-encoded (query values, key bytes).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same for a path, whose `/` separators stay as they are (S3 does not double-encode).
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');
const REGION: &str = "us-east-1";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The signing key and the UTC day (`YYYYMMDD`) it was derived for.
type DayKey = Option<(String, Vec<u8>)>;

pub struct Lean {
    http: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port`, and `host:port` as signed.
    endpoint: String,
    host: String,
    access_key: String,
    secret_key: String,
    /// The SigV4 signing key of the current UTC day, derived once per day, not per request.
    key: Mutex<DayKey>,
}

/// A response with the status the caller expected.
pub struct Response {
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Lean {
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str) -> Result<Lean> {
        let host = endpoint
            .strip_prefix("http://")
            .with_context(|| format!("lean client: {endpoint} is not an http:// endpoint"))?
            .trim_end_matches('/')
            .to_owned();
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(conn);
        Ok(Lean {
            http,
            endpoint: format!("http://{host}"),
            host,
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            key: Default::default(),
        })
    }

    /// Sends one signed request and reads the whole answer; a status other than `expect` is an
    /// error that quotes the start of the body (the S3 error XML).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Bytes,
        expect: StatusCode,
    ) -> Result<Response> {
        let path = utf8_percent_encode(path, PATH).to_string();
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| {
                (
                    utf8_percent_encode(k, UNRESERVED).to_string(),
                    utf8_percent_encode(v, UNRESERVED).to_string(),
                )
            })
            .collect();
        q.sort();
        let query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let payload = if body.is_empty() {
            EMPTY_SHA256.to_owned()
        } else {
            hex::encode(Sha256::digest(&body))
        };
        let now = SystemTime::now();
        let amz_date = httpdate_compact(now);
        let auth = self.authorization(&method, &path, &query, &payload, &amz_date, now);
        let uri = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header("host", &self.host)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &payload)
            .header("authorization", auth)
            .header("content-length", body.len())
            .body(Full::new(body))
            .context("lean client: request")?;
        let res = self
            .http
            .request(req)
            .await
            .with_context(|| format!("{method} {uri}"))?;
        let (parts, b) = res.into_parts();
        let body = b
            .collect()
            .await
            .with_context(|| format!("{method} {uri}: body"))?
            .to_bytes();
        if parts.status != expect {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            bail!(
                "{method} {uri}: {} (expected {expect}): {text}",
                parts.status
            );
        }
        Ok(Response {
            headers: parts.headers,
            body,
        })
    }

    fn authorization(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        payload: &str,
        amz_date: &str,
        now: SystemTime,
    ) -> String {
        const SIGNED: &str = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{}\nx-amz-content-sha256:{payload}\n\
             x-amz-date:{amz_date}\n\n{SIGNED}\n{payload}",
            self.host
        );
        let day = &amz_date[..8];
        let scope = format!("{day}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let signature = {
            let mut cached = self.key.lock().unwrap_or_else(|e| e.into_inner());
            if cached.as_ref().is_none_or(|(d, _)| d != day) {
                let key =
                    aws_sigv4::sign::v4::generate_signing_key(&self.secret_key, now, REGION, "s3");
                *cached = Some((day.to_owned(), key.as_ref().to_vec()));
            }
            let (_, key) = cached.as_ref().expect("signing key just set");
            aws_sigv4::sign::v4::calculate_signature(key, to_sign.as_bytes())
        };
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={SIGNED}, \
             Signature={signature}",
            self.access_key
        )
    }
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC, as `x-amz-date` wants.
fn httpdate_compact(t: SystemTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from(t)
        .format(&f)
        .expect("a UTC time formats")
}

/// The text of every `<tag>…</tag>` in `xml`, in order (no nesting of the same tag in S3's
/// listing answers); entities are decoded.
pub fn elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = String> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let text = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(unescape(text))
    })
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#xD;", "\r")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        use std::time::{Duration, SystemTime};
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_645);
        assert_eq!(super::httpdate_compact(t), "20261201T120405Z");
        assert_eq!(
            super::httpdate_compact(SystemTime::UNIX_EPOCH),
            "19700101T000000Z"
        );
    }
}
