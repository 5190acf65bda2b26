//! Request authentication as S3 does it where s3s 0.14.1 does not (`src/s3/authcheck.rs`,
//! `src/s3/chunked.rs`): unsigned `x-amz-*` headers added to a captured request, a presigned URL with an
//! `Authorization` header too, credentials scoped to another service, SigV2 and SigV4 dates in
//! `Date` or `x-amz-date` in RFC 1123 forms, an empty `Content-MD5`, and a chunked PUT without a
//! length whose signature covers its hash.
//!
//! Requests are signed by hand (HMAC over `sha2`/`sha1`), so that a header can be left out of
//! the signature, and a scope or date header chosen, as no SDK would; each signer is checked by
//! an honest request the server accepts.

use crate::common::*;
use aws_sdk_s3::presigning::PresigningConfig;
use base64::Engine as _;
use std::time::{Duration, SystemTime};

fn hmac(hash: fn(&[u8]) -> Vec<u8>, block: usize, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > block {
        hash(key)
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = hash(&[pad(0x36), msg.to_vec()].concat());
    hash(&[pad(0x5c), inner].concat())
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

fn sha1(b: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(b).to_vec()
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac(sha256, 64, key, msg)
}

fn iso_basic(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("format")
}

/// `t` as RFC 1123 with the given zone text (`GMT`, `+0000`, `-0000`).
fn rfc1123(t: SystemTime, zone: &str) -> String {
    let d = time::OffsetDateTime::from(t)
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second]"
        ))
        .expect("format");
    format!("{d} {zone}")
}

/// What a hand-made SigV4 header signature covers.
struct V4<'a> {
    method: &'a str,
    path: &'a str,
    /// Canonical already (sorted, encoded).
    query: &'a str,
    /// Signed headers besides `host` and `x-amz-content-sha256` (lower-case names).
    signed: Vec<(&'a str, String)>,
    payload_hash: String,
    region: &'a str,
    service: &'a str,
    when: SystemTime,
    /// Whether `x-amz-date` is added (and signed); without it the request must carry `date`.
    amz_date: bool,
}

impl<'a> V4<'a> {
    fn new(method: &'a str, path: &'a str, body: &[u8]) -> V4<'a> {
        V4 {
            method,
            path,
            query: "",
            signed: Vec::new(),
            payload_hash: sha256_hex(body),
            region: "us-east-1",
            service: "s3",
            when: SystemTime::now(),
            amz_date: true,
        }
    }

    /// The signed headers, `authorization` last.
    fn headers(&self, addr: std::net::SocketAddr) -> Vec<(String, String)> {
        let stamp = iso_basic(self.when);
        let day = &stamp[..8];
        let mut hs: Vec<(String, String)> = vec![
            ("host".into(), addr.to_string()),
            ("x-amz-content-sha256".into(), self.payload_hash.clone()),
        ];
        if self.amz_date {
            hs.push(("x-amz-date".into(), stamp.clone()));
        }
        hs.extend(
            self.signed
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone())),
        );
        hs.sort();
        let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let names: Vec<&str> = hs.iter().map(|(k, _)| k.as_str()).collect();
        let names = names.join(";");
        let canonical = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{names}\n{}",
            self.method, self.path, self.query, self.payload_hash
        );
        let scope = format!("{day}/{}/{}/aws4_request", self.region, self.service);
        let sts = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(sha256(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{ROOT_SECRET}").into_bytes();
        for part in [day, self.region, self.service, "aws4_request"] {
            key = hmac256(&key, part.as_bytes());
        }
        let sig = hex::encode(hmac256(&key, sts.as_bytes()));
        hs.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={ROOT_KEY}/{scope}, SignedHeaders={names}, Signature={sig}"
            ),
        ));
        hs
    }
}

/// The request as bytes: `headers`, then `extra` (unsigned), `connection: close`, the body.
fn request(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in extra {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("connection: close\r\n\r\n");
    [text.into_bytes(), body.to_vec()].concat()
}

/// Sends a SigV4 PUT of `body` to `path`, signed by `v4`, with `extra` headers unsigned.
async fn put_v4(s: &TestServer, v4: &V4<'_>, extra: &[(&str, &str)], body: &[u8]) -> RawResponse {
    let mut hs = v4.headers(s.addr());
    hs.push(("content-length".into(), body.len().to_string()));
    raw(s.addr(), &request("PUT", v4.path, &hs, extra, body)).await
}

fn error_code(r: &RawResponse) -> &str {
    r.body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(c, _)| c)
}

async fn make_bucket(s: &TestServer, bucket: &str) {
    s.client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
}

async fn exists(s: &TestServer, bucket: &str, key: &str) -> bool {
    s.client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

// ------------------------------------------------------------------ unsigned x-amz-* headers

/// An attacker holding a captured, validly signed PutObject adds `x-amz-*` headers the
/// signature does not cover: S3 refuses the request (403 AccessDenied) and stores nothing.
async fn unsigned_amz_headers_refused(s: &TestServer) {
    make_bucket(s, "unsigned").await;
    let body = b"captured body";
    for (k, v) in [
        ("x-amz-meta-evil", "1"),
        ("x-amz-tagging", "evil=1"),
        ("x-amz-storage-class", "STANDARD_IA"),
    ] {
        let v4 = V4::new("PUT", "/unsigned/k", body);
        let r = put_v4(s, &v4, &[(k, v)], body).await;
        assert_eq!(
            (r.status, error_code(&r)),
            (403, "AccessDenied"),
            "{k}: {r:?}"
        );
        assert!(r.body.contains("not signed"), "{k}: {}", r.body);
        assert!(!exists(s, "unsigned", "k").await, "{k}: stored");
    }
    // The same request with the header signed is accepted (the signer is right), and an
    // unsigned x-amz-content-sha256 is tolerated, as S3 does (the signature covers its value).
    let mut v4 = V4::new("PUT", "/unsigned/k", body);
    v4.signed.push(("x-amz-meta-colour", "blue".into()));
    let r = put_v4(s, &v4, &[], body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let head = s
        .client
        .head_object()
        .bucket("unsigned")
        .key("k")
        .send()
        .await
        .expect("head");
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("colour").map(String::as_str), Some("blue"));
    assert!(!meta.contains_key("evil"), "{meta:?}");

    // Presigned: the URL signs host only; an added x-amz-* header is refused and nothing is
    // stored, while the URL alone (and with x-amz-content-sha256) works.
    let url = s
        .client
        .put_object()
        .bucket("unsigned")
        .key("pre")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign")
        .uri()
        .to_owned();
    let target = url
        .split_once(&s.addr().to_string())
        .map(|(_, p)| p.to_owned())
        .expect("path");
    let host = vec![
        ("host".to_owned(), s.addr().to_string()),
        ("content-length".to_owned(), body.len().to_string()),
    ];
    for (k, v) in [
        ("x-amz-meta-evil", "1"),
        ("x-amz-tagging", "evil=1"),
        ("x-amz-storage-class", "STANDARD_IA"),
    ] {
        let r = raw(s.addr(), &request("PUT", &target, &host, &[(k, v)], body)).await;
        assert_eq!(
            (r.status, error_code(&r)),
            (403, "AccessDenied"),
            "{k}: {r:?}"
        );
        assert!(!exists(s, "unsigned", "pre").await, "presigned {k}: stored");
    }
    let hash = sha256_hex(body);
    let extra = [("x-amz-content-sha256", hash.as_str())];
    let r = raw(s.addr(), &request("PUT", &target, &host, &extra, body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(exists(s, "unsigned", "pre").await);
}
both_dbs!(unsigned_amz_headers_refused);

// ------------------------------------------------------------------ one mechanism, one service

/// A presigned URL sent with an Authorization header as well: 400 InvalidArgument.
async fn one_auth_mechanism(s: &TestServer) {
    make_bucket(s, "mech").await;
    s.client
        .put_object()
        .bucket("mech")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("put");
    let url = s
        .client
        .get_object()
        .bucket("mech")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign")
        .uri()
        .to_owned();
    let target = url
        .split_once(&s.addr().to_string())
        .map(|(_, p)| p.to_owned())
        .expect("path");
    let hs = V4::new("GET", "/mech/k", b"").headers(s.addr());
    let r = raw(s.addr(), &request("GET", &target, &hs, &[], b"")).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "InvalidArgument"),
        "{r:?}"
    );
    assert!(r.body.contains("Only one auth mechanism"), "{}", r.body);
    // Each alone is accepted.
    let alone = vec![("host".to_owned(), s.addr().to_string())];
    let r = raw(s.addr(), &request("GET", &target, &alone, &[], b"")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = raw(s.addr(), &request("GET", "/mech/k", &hs, &[], b"")).await;
    assert_eq!(r.status, 200, "{r:?}");
}
both_dbs!(one_auth_mechanism);

/// A SigV4 credential scoped to another service is refused (s3s took `sts` for `s3`, and
/// answered 501 to others); nothing is stored.
async fn credential_for_another_service(s: &TestServer) {
    make_bucket(s, "svc").await;
    let body = b"svc";
    for service in ["sts", "ec2"] {
        let mut v4 = V4::new("PUT", "/svc/k", body);
        v4.service = service;
        let r = put_v4(s, &v4, &[], body).await;
        assert_eq!(
            (r.status, error_code(&r)),
            (400, "AuthorizationHeaderMalformed"),
            "{service}: {r:?}"
        );
        assert!(r.body.contains("incorrect service"), "{}", r.body);
        assert!(!exists(s, "svc", "k").await, "{service}: stored");
    }
    let r = put_v4(s, &V4::new("PUT", "/svc/k", body), &[], body).await;
    assert_eq!(r.status, 200, "{r:?}");
}
both_dbs!(credential_for_another_service);

// ------------------------------------------------------------------ dates

/// SigV4 dated by `Date` alone (botocore does this when a `Date` header is set): accepted,
/// in RFC 1123 with `GMT` or `-0000`; a stale one is refused.
async fn sigv4_dated_by_date_header(s: &TestServer) {
    make_bucket(s, "v4date").await;
    let body = b"dated";
    for (key, zone) in [("gmt", "GMT"), ("minus", "-0000")] {
        let mut v4 = V4::new("PUT", "/v4date/k", body);
        v4.amz_date = false;
        v4.signed.push(("date", rfc1123(v4.when, zone)));
        v4.path = if key == "gmt" {
            "/v4date/gmt"
        } else {
            "/v4date/minus"
        };
        let r = put_v4(s, &v4, &[], body).await;
        assert_eq!(r.status, 200, "{zone}: {r:?}");
        assert!(exists(s, "v4date", key).await);
    }
    let mut v4 = V4::new("PUT", "/v4date/stale", body);
    v4.amz_date = false;
    v4.when = SystemTime::now() - Duration::from_secs(3600);
    v4.signed.push(("date", rfc1123(v4.when, "GMT")));
    let r = put_v4(s, &v4, &[], body).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "RequestTimeTooSkewed"),
        "{r:?}"
    );
    // Neither header: S3's 403, not s3s's "missing header".
    let mut v4 = V4::new("PUT", "/v4date/none", body);
    v4.amz_date = false;
    let r = put_v4(s, &v4, &[], body).await;
    assert_eq!((r.status, error_code(&r)), (403, "AccessDenied"), "{r:?}");
    assert!(!exists(s, "v4date", "stale").await && !exists(s, "v4date", "none").await);
}
both_dbs!(sigv4_dated_by_date_header);

/// A SigV2 header-auth PUT with its date in `x-amz-date` (or `date` when `amz` is None).
async fn put_v2(s: &TestServer, path: &str, date: &str, in_amz: bool, body: &[u8]) -> RawResponse {
    let amz = if in_amz {
        format!("x-amz-date:{date}\n")
    } else {
        String::new()
    };
    let date_line = if in_amz { "" } else { date };
    let sts = format!("PUT\n\n\n{date_line}\n{amz}{path}");
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac(
        sha1,
        64,
        ROOT_SECRET.as_bytes(),
        sts.as_bytes(),
    ));
    let hs = vec![
        ("host".to_owned(), s.addr().to_string()),
        (
            if in_amz { "x-amz-date" } else { "date" }.to_owned(),
            date.to_owned(),
        ),
        ("authorization".to_owned(), format!("AWS {ROOT_KEY}:{sig}")),
        ("content-length".to_owned(), body.len().to_string()),
    ];
    raw(s.addr(), &request("PUT", path, &hs, &[], body)).await
}

/// SigV2 dates in RFC 1123 with a numeric zone (`+0000`, as in S3's own SigV2 examples, or
/// `-0000`, Python's `formatdate()`), in `x-amz-date` or `Date`, are accepted; a date before
/// 1970 is no valid date (403 AccessDenied), a stale one is RequestTimeTooSkewed.
async fn sigv2_dates(s: &TestServer) {
    make_bucket(s, "v2date").await;
    let now = SystemTime::now();
    for (i, zone) in ["GMT", "+0000", "-0000"].into_iter().enumerate() {
        for in_amz in [true, false] {
            let path = format!("/v2date/k{i}{in_amz}");
            let r = put_v2(s, &path, &rfc1123(now, zone), in_amz, b"v2").await;
            assert_eq!(r.status, 200, "{zone} (x-amz-date: {in_amz}): {r:?}");
        }
    }
    let r = put_v2(
        s,
        "/v2date/old",
        "Tue, 07 Jul 1950 21:53:04 GMT",
        true,
        b"v2",
    )
    .await;
    assert_eq!((r.status, error_code(&r)), (403, "AccessDenied"), "{r:?}");
    let r = put_v2(
        s,
        "/v2date/old",
        "Tue, 07 Jul 2010 21:53:04 +0000",
        true,
        b"v2",
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "RequestTimeTooSkewed"),
        "{r:?}"
    );
    assert!(!exists(s, "v2date", "old").await);
}
both_dbs!(sigv2_dates);

// ------------------------------------------------------------------ bodies

/// `Content-MD5:` with no value is an invalid digest (400 InvalidDigest), not an absent one.
async fn empty_content_md5(s: &TestServer) {
    make_bucket(s, "md5").await;
    let body = b"bar";
    let mut v4 = V4::new("PUT", "/md5/k", body);
    v4.signed.push(("content-md5", String::new()));
    let r = put_v4(s, &v4, &[], body).await;
    assert_eq!((r.status, error_code(&r)), (400, "InvalidDigest"), "{r:?}");
    assert!(!exists(s, "md5", "k").await);
}
both_dbs!(empty_content_md5);

/// `Transfer-Encoding: chunked` without Content-Length, the body's SHA-256 signed: stored (up
/// to 1 MiB; beyond, 411 as before). A body that does not match its signed hash is refused.
async fn chunked_put_without_length(s: &TestServer) {
    make_bucket(s, "tenc").await;
    let te = [("transfer-encoding", "chunked")];
    let frame = |b: &[u8]| {
        let mut out = Vec::new();
        for piece in b.chunks(100_000) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    };
    let send = |path: &'static str, body: Vec<u8>, signed_as: Vec<u8>| async move {
        let hs = V4::new("PUT", path, &signed_as).headers(s.addr());
        raw(s.addr(), &request("PUT", path, &hs, &te, &frame(&body))).await
    };
    let body = bytes(300_000, 7);
    let r = send("/tenc/k", body.clone(), body.clone()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = s
        .client
        .get_object()
        .bucket("tenc")
        .key("k")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(&got[..], &body[..]);
    let r = send("/tenc/bad", b"tampered".to_vec(), b"original".to_vec()).await;
    assert_eq!(r.status / 100, 4, "{r:?}");
    assert!(!exists(s, "tenc", "bad").await);
    let big = bytes((1 << 20) + 1, 8);
    let r = send("/tenc/big", big.clone(), big).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (411, "MissingContentLength"),
        "{r:?}"
    );
    assert!(!exists(s, "tenc", "big").await);
}
both_dbs!(chunked_put_without_length);
