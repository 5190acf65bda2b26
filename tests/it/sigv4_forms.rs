//! Signature forms and request shapes beyond what the SDK sends: signed aws-chunked uploads
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, with and without a signed trailer, PutObject and
//! UploadPart) framed and signed by hand; tampered chunks, forged trailers and wrong declared
//! lengths; clock skew; SigV2 header auth; oversized headers and DeleteObjects bodies; browser
//! POST policy uploads (correctness and memory bound, on the real binary).
//!
//! SigV4 and SigV2 are computed here from first principles (HMAC over `sha2`, SHA-1 and CRC-32
//! by hand, checked against published vectors), so a bug shared by the server's and the SDK's
//! signing code cannot hide; every hand-made SigV4 header signature is also checked against
//! `aws-sigv4`'s.

use crate::common::*;
use base64::Engine as _;
use std::time::{Duration, SystemTime};

const REGION: &str = "us-east-1";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ------------------------------------------------------------------ primitives by hand

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

fn sha1(data: &[u8]) -> Vec<u8> {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    h.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// RFC 2104 HMAC over a hash with a 64-byte block (SHA-256 and SHA-1 both have one).
fn hmac(hash: fn(&[u8]) -> Vec<u8>, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        hash(key)
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&hash(&inner));
    hash(&outer)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac(sha256, key, msg)
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn hand_made_primitives_match_published_vectors() {
    // FIPS 180 / RFC 2202 / RFC 4231 / the CRC-32 check value.
    assert_eq!(
        hex::encode(sha1(b"abc")),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        hex::encode(sha1(&[b'a'; 1000])),
        "291e9a6c66994949b57ba5e650361e98fc36b1ba"
    );
    assert_eq!(
        hex::encode(hmac(sha1, b"Jefe", b"what do ya want for nothing?")),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex::encode(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

// ------------------------------------------------------------------ SigV4 by hand

fn amz_date(t: SystemTime) -> (String, String) {
    let t = time::OffsetDateTime::from(t);
    let full = t
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("format");
    let day = full[..8].to_owned();
    (full, day)
}

/// A request signed with SigV4 header auth, plus what chunk signatures need.
struct SignedV4 {
    /// Every header to send, `authorization` included.
    headers: Vec<(String, String)>,
    seed: String,
    signing_key: Vec<u8>,
    amz_date: String,
    scope: String,
}

/// Signs `method path?query` with `headers` (all signed) and `payload_hash` as
/// `x-amz-content-sha256`. `query` must already be canonical (sorted, encoded); paths are plain.
/// The result is checked against `aws-sigv4` signing the same request at the same time.
fn sign_v4(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
    payload_hash: &str,
    when: SystemTime,
) -> SignedV4 {
    let (date, day) = amz_date(when);
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), addr.to_string()),
        ("x-amz-date".into(), date.clone()),
        ("x-amz-content-sha256".into(), payload_hash.into()),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())),
    );
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request =
        format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex::encode(sha256(canonical_request.as_bytes()))
    );
    let k_date = hmac_sha256(format!("AWS4{ROOT_SECRET}").as_bytes(), day.as_bytes());
    let k_region = hmac_sha256(&k_date, REGION.as_bytes());
    let k_service = hmac_sha256(&k_region, b"s3");
    let signing_key = hmac_sha256(&k_service, b"aws4_request");
    let seed = hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={ROOT_KEY}/{scope}, SignedHeaders={signed_headers}, Signature={seed}"
    );
    let reference = sdk_authorization(addr, method, path, query, extra, payload_hash, when);
    assert_eq!(
        authorization, reference,
        "hand-made SigV4 differs from aws-sigv4's\ncanonical request:\n{canonical_request}"
    );
    headers.push(("authorization".into(), authorization));
    SignedV4 {
        headers,
        seed,
        signing_key,
        amz_date: date,
        scope,
    }
}

/// The Authorization header `aws-sigv4` computes for the same request (it adds `x-amz-date`).
fn sdk_authorization(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
    payload_hash: &str,
    when: SystemTime,
) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let host = addr.to_string();
    let url = if query.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{query}")
    };
    let mut headers: Vec<(&str, &str)> = vec![
        ("host", host.as_str()),
        ("x-amz-content-sha256", payload_hash),
    ];
    headers.extend(extra.iter().copied());
    let identity =
        aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(when)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Precomputed(payload_hash.to_owned()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let (hs, _) = instructions.into_parts();
    hs.into_iter()
        .find(|h| h.name().eq_ignore_ascii_case("authorization"))
        .map(|h| h.value().to_owned())
        .expect("authorization header")
}

fn chunk_signature(s: &SignedV4, prev: &str, data: &[u8]) -> String {
    let sts = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{EMPTY_SHA256}\n{}",
        s.amz_date,
        s.scope,
        hex::encode(sha256(data))
    );
    hex::encode(hmac_sha256(&s.signing_key, sts.as_bytes()))
}

fn trailer_signature(s: &SignedV4, prev: &str, canonical_trailer: &str) -> String {
    let sts = format!(
        "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{prev}\n{}",
        s.amz_date,
        s.scope,
        hex::encode(sha256(canonical_trailer.as_bytes()))
    );
    hex::encode(hmac_sha256(&s.signing_key, sts.as_bytes()))
}

/// `body` framed as signed aws-chunked chunks of `chunk` bytes, ending with the 0-size chunk and,
/// if given, a trailer (`name:value`) with its `x-amz-trailer-signature`.
fn frame_signed(s: &SignedV4, body: &[u8], chunk: usize, trailer: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = s.seed.clone();
    for piece in body.chunks(chunk).chain(std::iter::once(&[][..])) {
        let sig = chunk_signature(s, &prev, piece);
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        if !(piece.is_empty() && trailer.is_some()) {
            out.extend_from_slice(b"\r\n");
        }
        prev = sig;
    }
    if let Some(t) = trailer {
        let sig = trailer_signature(s, &prev, &format!("{t}\n"));
        out.extend_from_slice(format!("{t}\r\nx-amz-trailer-signature:{sig}\r\n\r\n").as_bytes());
    }
    out
}

/// Length of the framing `frame_signed` produces (the request's content-length).
fn framed_len(body_len: usize, chunk: usize, trailer: Option<&str>) -> usize {
    let sig_line = |n: usize| format!("{n:x}").len() + ";chunk-signature=".len() + 64 + 2;
    let mut total = 0;
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk);
        total += sig_line(n) + n + 2;
        left -= n;
    }
    total += sig_line(0);
    match trailer {
        None => total + 2,
        Some(t) => total + t.len() + 2 + "x-amz-trailer-signature:".len() + 64 + 2 + 2,
    }
}

// ------------------------------------------------------------------ raw exchange

fn request_bytes(method: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("connection: close\r\n\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` while reading the answer (a server may answer before the body is sent and
/// close). `Err` when nothing parseable came back within 20 s.
async fn exchange(addr: std::net::SocketAddr, request: Vec<u8>) -> Result<RawResponse, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut rd, mut wr) = sock.into_split();
    let writer = tokio::spawn(async move {
        let r = wr.write_all(&request).await;
        // Keep the write half open: closing it early could look like a truncated request.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
        r
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 16384];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    writer.abort();
    let how = match read {
        Err(_) => "timed out after 20 s".to_owned(),
        Ok(Ok(())) => "closed".to_owned(),
        Ok(Err(e)) => format!("read error: {e}"),
    };
    let r = parse(&buf);
    if r.status == 0 {
        return Err(format!(
            "no response ({how}); got {} bytes: {:?}",
            buf.len(),
            String::from_utf8_lossy(&buf[..buf.len().min(300)])
        ));
    }
    if how.starts_with("timed out") && r.body.is_empty() && r.status != 204 {
        return Err(format!("response head only, then {how}: {r:?}"));
    }
    Ok(r)
}

fn parse(buf: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A SigV4-signed (by hand) request with a real payload hash.
async fn v4(
    s: &TestServer,
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    when: SystemTime,
) -> Result<RawResponse, String> {
    let len = body.len().to_string();
    let mut hs: Vec<(&str, &str)> = vec![("content-length", len.as_str())];
    hs.extend_from_slice(extra);
    let signed = sign_v4(s.addr(), method, path, query, &hs, &sha256_hex(body), when);
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    exchange(
        s.addr(),
        request_bytes(method, &target, &signed.headers, body),
    )
    .await
}

fn error_code(r: &RawResponse) -> &str {
    r.body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(c, _)| c)
}

// ------------------------------------------------------------------ object helpers

async fn make_bucket(s: &TestServer, bucket: &str) {
    s.client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
}

async fn put(s: &TestServer, bucket: &str, key: &str, body: &[u8]) {
    s.client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .expect("put");
}

async fn get(s: &TestServer, bucket: &str, key: &str) -> Option<Vec<u8>> {
    match s.client.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Some(o.body.collect().await.expect("body").into_bytes().to_vec()),
        Err(e) => {
            assert_eq!(code(&e), "NoSuchKey", "get {bucket}/{key}: {e:?}");
            None
        }
    }
}

async fn nothing_half_written(s: &TestServer) {
    let tmp = s.data_dir().join("hot/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
    assert_refcounts(s).await;
}

// ------------------------------------------------------------------ signed aws-chunked

const CHUNK: usize = 64 * 1024;

fn streaming_headers<'a>(
    decoded: &'a str,
    encoded: &'a str,
    trailer: bool,
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("content-encoding", "aws-chunked"),
        ("content-length", encoded),
        ("x-amz-decoded-content-length", decoded),
    ];
    if trailer {
        h.push(("x-amz-trailer", "x-amz-checksum-crc32"));
    }
    h
}

/// Signs and sends `body` as a signed aws-chunked PUT; `tamper` may alter the framed bytes.
async fn streaming_put(
    s: &TestServer,
    path: &str,
    body: &[u8],
    trailer: Option<&str>,
    tamper: impl FnOnce(&mut Vec<u8>),
) -> RawResponse {
    streaming_put_query(s, path, "", body, body.len(), trailer, tamper).await
}

/// `streaming_put` with a canonical query string (e.g. UploadPart's).
async fn streaming_put_query(
    s: &TestServer,
    path: &str,
    query: &str,
    body: &[u8],
    declared: usize,
    trailer: Option<&str>,
    tamper: impl FnOnce(&mut Vec<u8>),
) -> RawResponse {
    let decoded = declared.to_string();
    let encoded = framed_len(body.len(), CHUNK, trailer).to_string();
    let mode = if trailer.is_some() {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    } else {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    };
    let hs = streaming_headers(&decoded, &encoded, trailer.is_some());
    let signed = sign_v4(s.addr(), "PUT", path, query, &hs, mode, SystemTime::now());
    let mut framed = frame_signed(&signed, body, CHUNK, trailer);
    assert_eq!(framed.len().to_string(), encoded, "framing length");
    tamper(&mut framed);
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    exchange(
        s.addr(),
        request_bytes("PUT", &target, &signed.headers, &framed),
    )
    .await
    .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
}

async fn signed_streaming_upload(s: &TestServer) {
    make_bucket(s, "chunked").await;
    // Three full 64 KiB chunks and a short one.
    let body = bytes(3 * CHUNK + 1234, 11);
    let r = streaming_put(s, "/chunked/multi", &body, None, |_| {}).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("etag").map(|e| e.trim_matches('"').to_owned()),
        Some(md5_hex(&body)),
        "ETag is the MD5 of the decoded body"
    );
    assert_eq!(
        get(s, "chunked", "multi").await.as_deref(),
        Some(&body[..]),
        "stored bytes are exactly the body, no framing"
    );
    let h = s
        .client
        .head_object()
        .bucket("chunked")
        .key("multi")
        .send()
        .await
        .expect("head");
    assert_eq!(h.content_length(), Some(body.len() as i64));
    assert!(
        !h.content_encoding().unwrap_or("").contains("aws-chunked"),
        "aws-chunked stored as the object's Content-Encoding: {:?}",
        h.content_encoding()
    );

    // A body that is an exact multiple of the chunk size, and an empty one (only the 0 chunk).
    let even = bytes(2 * CHUNK, 12);
    let r = streaming_put(s, "/chunked/even", &even, None, |_| {}).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get(s, "chunked", "even").await.as_deref(), Some(&even[..]));
    let r = streaming_put(s, "/chunked/empty", b"", None, |_| {}).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get(s, "chunked", "empty").await.as_deref(), Some(&b""[..]));
    nothing_half_written(s).await;
}
both_dbs!(signed_streaming_upload);

async fn signed_streaming_upload_with_trailer(s: &TestServer) {
    make_bucket(s, "trailer").await;
    let body = bytes(3 * CHUNK + 4321, 21);
    let crc = b64(&crc32(&body).to_be_bytes());
    let trailer = format!("x-amz-checksum-crc32:{crc}");
    let r = streaming_put(s, "/trailer/obj", &body, Some(&trailer), |_| {}).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("x-amz-checksum-crc32"),
        Some(crc.as_str()),
        "{r:?}"
    );
    assert_eq!(get(s, "trailer", "obj").await.as_deref(), Some(&body[..]));
    let h = s
        .client
        .head_object()
        .bucket("trailer")
        .key("obj")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(h.checksum_crc32(), Some(crc.as_str()));
    assert_eq!(h.content_length(), Some(body.len() as i64));

    // A wrong CRC32 under a valid trailer signature: BadDigest, the object is unchanged.
    let other = bytes(CHUNK + 10, 22);
    let wrong = format!(
        "x-amz-checksum-crc32:{}",
        b64(&crc32(b"something else").to_be_bytes())
    );
    let r = streaming_put(s, "/trailer/obj", &other, Some(&wrong), |_| {}).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(error_code(&r), "BadDigest", "{r:?}");
    assert_eq!(get(s, "trailer", "obj").await.as_deref(), Some(&body[..]));

    // The right CRC32 with a forged trailer signature: SignatureDoesNotMatch, nothing stored.
    let good = format!("x-amz-checksum-crc32:{}", b64(&crc32(&other).to_be_bytes()));
    let r = streaming_put(s, "/trailer/forged", &other, Some(&good), |f| {
        let at = find(f, b"x-amz-trailer-signature:").expect("trailer signature") + 24;
        f[at] = if f[at] == b'0' { b'1' } else { b'0' };
    })
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "SignatureDoesNotMatch", "{r:?}");
    assert_eq!(get(s, "trailer", "forged").await, None);

    // The trailer value changed after signing (signature computed over the original).
    let r = streaming_put(s, "/trailer/swapped", &other, Some(&good), |f| {
        let at = find(f, b"x-amz-checksum-crc32:").expect("trailer") + 21;
        f[at] = if f[at] == b'A' { b'B' } else { b'A' };
    })
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "SignatureDoesNotMatch", "{r:?}");
    assert_eq!(get(s, "trailer", "swapped").await, None);
    nothing_half_written(s).await;
}
both_dbs!(signed_streaming_upload_with_trailer);

/// UploadPart with signed chunks and a signed CRC32 trailer, then CompleteMultipartUpload.
async fn signed_streaming_upload_part(s: &TestServer) {
    use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
    make_bucket(s, "chunked-mpu").await;
    let up = s
        .client
        .create_multipart_upload()
        .bucket("chunked-mpu")
        .key("big")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id").to_owned();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
        "upload id needs no encoding: {id}"
    );
    let part1 = bytes(5 << 20, 51);
    let part2 = bytes(CHUNK + 77, 52);
    let mut parts = Vec::new();
    for (n, data) in [(1, &part1), (2, &part2)] {
        let crc = b64(&crc32(data).to_be_bytes());
        let query = format!("partNumber={n}&uploadId={id}");
        let r = streaming_put_query(
            s,
            "/chunked-mpu/big",
            &query,
            data,
            data.len(),
            Some(&format!("x-amz-checksum-crc32:{crc}")),
            |_| {},
        )
        .await;
        assert_eq!(r.status, 200, "part {n}: {r:?}");
        let etag = r.header("etag").expect("part etag").to_owned();
        assert_eq!(etag.trim_matches('"'), md5_hex(data), "part {n} ETag");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(etag)
                .checksum_crc32(crc)
                .build(),
        );
    }
    s.client
        .complete_multipart_upload()
        .bucket("chunked-mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    assert!(
        get(s, "chunked-mpu", "big").await.as_deref() == Some(&whole[..]),
        "completed object differs from the parts"
    );
    nothing_half_written(s).await;
}
both_dbs!(signed_streaming_upload_part);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn tampered_chunks_are_refused(s: &TestServer) {
    make_bucket(s, "tamper").await;
    put(s, "tamper", "victim", b"original").await;
    let body = bytes(3 * CHUNK + 999, 31);
    // Offset of the first data byte of chunk `n` (0-based) in the framing.
    let data_start = |n: usize| {
        let line = format!("{CHUNK:x};chunk-signature=").len() + 64 + 2;
        n * (line + CHUNK + 2) + line
    };

    // One flipped byte in the second chunk's data: new key and overwrite both refused.
    for key in ["fresh", "victim"] {
        let r = streaming_put(s, &format!("/tamper/{key}"), &body, None, |f| {
            f[data_start(1) + 100] ^= 0x01;
        })
        .await;
        assert_eq!(r.status, 403, "{key}: {r:?}");
        assert_eq!(error_code(&r), "SignatureDoesNotMatch", "{key}: {r:?}");
    }
    // A flipped byte in the last (short) chunk: all earlier chunks were valid.
    let r = streaming_put(s, "/tamper/late", &body, None, |f| {
        f[data_start(3) + 5] ^= 0x80;
    })
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "SignatureDoesNotMatch", "{r:?}");
    // A chunk signature replaced by another valid-looking one (the chain is broken).
    let r = streaming_put(s, "/tamper/chain", &body, None, |f| {
        let at = find(f, b";chunk-signature=").expect("sig") + 17;
        let second = data_start(1) - 66;
        let sig2: Vec<u8> = f[second..second + 64].to_vec();
        f[at..at + 64].copy_from_slice(&sig2);
    })
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "SignatureDoesNotMatch", "{r:?}");

    assert_eq!(get(s, "tamper", "fresh").await, None);
    assert_eq!(get(s, "tamper", "late").await, None);
    assert_eq!(get(s, "tamper", "chain").await, None);
    assert_eq!(
        get(s, "tamper", "victim").await.as_deref(),
        Some(&b"original"[..])
    );
    let listed = s
        .client
        .list_objects_v2()
        .bucket("tamper")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(1), "{listed:?}");
    nothing_half_written(s).await;
}
both_dbs!(tampered_chunks_are_refused);

// ------------------------------------------------------------------ clock skew

async fn clock_skew(s: &TestServer) {
    make_bucket(s, "skew").await;
    let now = SystemTime::now();
    let min = |m: u64| Duration::from_secs(60 * m);
    for (what, when) in [
        ("20 minutes in the past", now - min(20)),
        ("20 minutes in the future", now + min(20)),
    ] {
        let r = v4(s, "PUT", "/skew/stale", "", &[], b"stale body", when)
            .await
            .expect("response");
        assert_eq!(r.status, 403, "{what}: {r:?}");
        assert_eq!(error_code(&r), "RequestTimeTooSkewed", "{what}: {r:?}");
        // Reads are refused the same way.
        let r = v4(s, "GET", "/skew", "list-type=2", &[], b"", when)
            .await
            .expect("response");
        assert_eq!(r.status, 403, "{what} (list): {r:?}");
        assert_eq!(error_code(&r), "RequestTimeTooSkewed", "{what}: {r:?}");
    }
    assert_eq!(get(s, "skew", "stale").await, None);

    for (key, when) in [("past5", now - min(5)), ("future5", now + min(5))] {
        let r = v4(
            s,
            "PUT",
            &format!("/skew/{key}"),
            "",
            &[],
            key.as_bytes(),
            when,
        )
        .await
        .expect("response");
        assert_eq!(r.status, 200, "{key}: {r:?}");
        assert_eq!(get(s, "skew", key).await.as_deref(), Some(key.as_bytes()));
    }
}
both_dbs!(clock_skew);

// ------------------------------------------------------------------ SigV2

fn http_date(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .expect("format")
}

/// `Authorization: AWS key:base64(hmac-sha1(secret, StringToSign))` for a path-style resource.
fn sign_v2(
    secret: &str,
    method: &str,
    resource: &str,
    content_type: &str,
    date: &str,
    amz: &[(&str, &str)],
) -> String {
    let mut amz: Vec<(String, String)> = amz
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    amz.sort();
    let amz: String = amz.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let sts = format!("{method}\n\n{content_type}\n{date}\n{amz}{resource}");
    format!(
        "AWS {ROOT_KEY}:{}",
        b64(&hmac(sha1, secret.as_bytes(), sts.as_bytes()))
    )
}

async fn v2(
    s: &TestServer,
    method: &str,
    resource: &str,
    secret: &str,
    when: SystemTime,
    amz: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    v2_signed_as(s, method, resource, resource, secret, when, amz, body).await
}

/// `v2` with the SigV2 resource signed (`signed`) differing from the request target (`target`).
#[allow(clippy::too_many_arguments)]
async fn v2_signed_as(
    s: &TestServer,
    method: &str,
    target: &str,
    signed: &str,
    secret: &str,
    when: SystemTime,
    amz: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let resource = target;
    let date = http_date(when);
    let ctype = if body.is_empty() {
        ""
    } else {
        "application/octet-stream"
    };
    let auth = sign_v2(secret, method, signed, ctype, &date, amz);
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), s.addr().to_string()),
        ("date".into(), date),
        ("authorization".into(), auth),
        ("content-length".into(), body.len().to_string()),
    ];
    if !ctype.is_empty() {
        headers.push(("content-type".into(), ctype.into()));
    }
    headers.extend(amz.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    exchange(s.addr(), request_bytes(method, resource, &headers, body))
        .await
        .unwrap_or_else(|e| panic!("{method} {resource}: {e}"))
}

async fn sigv2_header_auth(s: &TestServer) {
    make_bucket(s, "sig-v2").await;
    let now = SystemTime::now();
    let body = bytes(10_000, 41);
    let meta = [("x-amz-meta-colour", "blue")];
    let r = v2(s, "PUT", "/sig-v2/obj", ROOT_SECRET, now, &meta, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("etag").map(|e| e.trim_matches('"').to_owned()),
        Some(md5_hex(&body))
    );
    let r = v2(s, "GET", "/sig-v2/obj", ROOT_SECRET, now, &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-amz-meta-colour"), Some("blue"));
    assert_eq!(get(s, "sig-v2", "obj").await.as_deref(), Some(&body[..]));
    let r = v2(s, "HEAD", "/sig-v2/obj", ROOT_SECRET, now, &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = v2(s, "GET", "/sig-v2", ROOT_SECRET, now, &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("<Key>obj</Key>"), "{}", r.body);

    // Wrong secret, or a signed header changed in flight: refused, nothing changed.
    let r = v2(
        s,
        "PUT",
        "/sig-v2/obj",
        "not-the-secret",
        now,
        &meta,
        b"evil",
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "SignatureDoesNotMatch", "{r:?}");
    let date = http_date(now);
    let auth = sign_v2(
        ROOT_SECRET,
        "PUT",
        "/sig-v2/obj",
        "application/octet-stream",
        &date,
        &meta,
    );
    let headers = vec![
        ("host".to_owned(), s.addr().to_string()),
        ("date".to_owned(), date),
        ("authorization".to_owned(), auth),
        ("content-length".to_owned(), "4".to_owned()),
        (
            "content-type".to_owned(),
            "application/octet-stream".to_owned(),
        ),
        ("x-amz-meta-colour".to_owned(), "red".to_owned()),
    ];
    let r = exchange(
        s.addr(),
        request_bytes("PUT", "/sig-v2/obj", &headers, b"evil"),
    )
    .await
    .expect("response");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "SignatureDoesNotMatch", "{r:?}");
    assert_eq!(get(s, "sig-v2", "obj").await.as_deref(), Some(&body[..]));

    let r = v2(s, "DELETE", "/sig-v2/obj", ROOT_SECRET, now, &[], b"").await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(get(s, "sig-v2", "obj").await, None);
}
both_dbs!(sigv2_header_auth);

/// A SigV2 header-auth request as `v2_signed_as` sends it, with its own Host header and
/// Authorization (for virtual-hosted requests, other keys, changed headers).
async fn v2_raw(
    s: &TestServer,
    method: &str,
    target: &str,
    host: &str,
    date: &str,
    auth: &str,
) -> RawResponse {
    let headers: Vec<(String, String)> = vec![
        ("host".into(), host.into()),
        ("date".into(), date.into()),
        ("authorization".into(), auth.into()),
        ("content-length".into(), "0".into()),
    ];
    exchange(s.addr(), request_bytes(method, target, &headers, b""))
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

async fn bucket_exists(s: &TestServer, bucket: &str) -> bool {
    s.client.head_bucket().bucket(bucket).send().await.is_ok()
}

/// botocore (`signature_version='s3'`, path style) signs a bucket-level request's SigV2 resource
/// as `/bucket/` (its `auth_path`) while the request line says `/bucket`; S3 accepts it. Without
/// this, every bucket-level SigV2 request from boto3 (list, head/create/delete bucket, ?delete,
/// ?uploads, ?location) is SignatureDoesNotMatch. Signed as sent keeps working too.
async fn sigv2_bucket_resource_signed_with_trailing_slash(s: &TestServer) {
    make_bucket(s, "sig-v2-slash").await;
    put(s, "sig-v2-slash", "k", b"v").await;
    let now = SystemTime::now();
    // The control: signed as sent.
    let r = v2(s, "GET", "/sig-v2-slash", ROOT_SECRET, now, &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("<Key>k</Key>"), "{}", r.body);
    for (method, target, signed, status, want) in [
        (
            "GET",
            "/sig-v2-slash",
            "/sig-v2-slash/",
            200,
            "<Key>k</Key>",
        ),
        (
            "GET",
            "/sig-v2-slash?list-type=2&prefix=k",
            "/sig-v2-slash/",
            200,
            "<Key>k</Key>",
        ),
        (
            "GET",
            "/sig-v2-slash?location",
            "/sig-v2-slash/?location",
            200,
            "LocationConstraint",
        ),
        (
            "GET",
            "/sig-v2-slash?uploads",
            "/sig-v2-slash/?uploads",
            200,
            "ListMultipartUploadsResult",
        ),
        ("HEAD", "/sig-v2-slash", "/sig-v2-slash/", 200, ""),
        ("PUT", "/sig-v2-made", "/sig-v2-made/", 200, ""),
        ("DELETE", "/sig-v2-made", "/sig-v2-made/", 204, ""),
    ] {
        let r = v2_signed_as(s, method, target, signed, ROOT_SECRET, now, &[], b"").await;
        assert_eq!(
            (r.status, error_code(&r)),
            (status, ""),
            "{method} {target} signed as botocore signs it ({signed:?}): {r:?}"
        );
        assert!(r.body.contains(want), "{method} {target}: {}", r.body);
    }
    assert!(!bucket_exists(s, "sig-v2-made").await);

    // A presigned SigV2 bucket URL (botocore signs `/bucket/` there too).
    let expires = (SystemTime::now() + Duration::from_secs(300))
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let sts = format!("GET\n\n\n{expires}\n/sig-v2-slash/");
    let sig = b64(&hmac(sha1, ROOT_SECRET.as_bytes(), sts.as_bytes()));
    let sig = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC);
    let target = format!(
        "/sig-v2-slash?list-type=2&AWSAccessKeyId={ROOT_KEY}&Expires={expires}&Signature={sig}"
    );
    let headers = vec![("host".to_owned(), s.addr().to_string())];
    let r = exchange(s.addr(), request_bytes("GET", &target, &headers, b""))
        .await
        .expect("response");
    assert_eq!(
        (r.status, error_code(&r)),
        (200, ""),
        "presigned {target}: {r:?}"
    );
    assert!(r.body.contains("<Key>k</Key>"), "{}", r.body);

    // An object path signed with a trailing slash is another resource: refused.
    let r = v2_signed_as(
        s,
        "GET",
        "/sig-v2-slash/k",
        "/sig-v2-slash/k/",
        ROOT_SECRET,
        now,
        &[],
        b"",
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "SignatureDoesNotMatch"),
        "{r:?}"
    );

    // Virtual-hosted: `/k` is the key, signed as `/<bucket>/k`, never rewritten.
    let date = http_date(now);
    let host = format!("sig-v2-slash.s3.example.test:{}", s.addr().port());
    let auth = sign_v2(ROOT_SECRET, "GET", "/sig-v2-slash/k", "", &date, &[]);
    let r = v2_raw(s, "GET", "/k", &host, &date, &auth).await;
    assert_eq!((r.status, r.body.as_str()), (200, "v"), "{r:?}");
}
both_dbs!(
    sigv2_bucket_resource_signed_with_trailing_slash,
    Options {
        domains: vec!["s3.example.test".to_owned()],
        ..Options::default()
    }
);

/// A bad SigV2 signature on a bare bucket path stays SignatureDoesNotMatch (or
/// InvalidAccessKeyId) whichever resource it was computed over, and changes nothing.
async fn sigv2_bucket_wrong_signature_refused(s: &TestServer) {
    make_bucket(s, "sig-v2-keep").await;
    put(s, "sig-v2-keep", "k", b"v").await;
    let now = SystemTime::now();
    for (method, target, signed) in [
        ("DELETE", "/sig-v2-keep", "/sig-v2-keep/"),
        ("DELETE", "/sig-v2-keep", "/sig-v2-keep"),
        ("PUT", "/sig-v2-never", "/sig-v2-never/"),
        ("PUT", "/sig-v2-never", "/sig-v2-never"),
        ("GET", "/sig-v2-keep", "/sig-v2-keep/"),
        ("GET", "/sig-v2-keep?location", "/sig-v2-keep/?location"),
    ] {
        let r = v2_signed_as(s, method, target, signed, "not-the-secret", now, &[], b"").await;
        assert_eq!(
            (r.status, error_code(&r)),
            (403, "SignatureDoesNotMatch"),
            "{method} {target} signed over {signed:?} with a wrong secret: {r:?}"
        );
    }
    // Right secret over `/bucket/`, but a signed header changed in flight.
    let date = http_date(now);
    let auth = sign_v2(
        ROOT_SECRET,
        "DELETE",
        "/sig-v2-keep/",
        "",
        &date,
        &[("x-amz-meta-a", "1")],
    );
    let headers = vec![
        ("host".to_owned(), s.addr().to_string()),
        ("date".to_owned(), date.clone()),
        ("authorization".to_owned(), auth.clone()),
        ("x-amz-meta-a".to_owned(), "2".to_owned()),
    ];
    let r = exchange(
        s.addr(),
        request_bytes("DELETE", "/sig-v2-keep", &headers, b""),
    )
    .await
    .expect("response");
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "SignatureDoesNotMatch"),
        "{r:?}"
    );
    // An unknown access key.
    let auth = sign_v2(ROOT_SECRET, "DELETE", "/sig-v2-keep/", "", &date, &[]).replacen(
        ROOT_KEY,
        "JSNOSUCHKEY000000000",
        1,
    );
    let r = v2_raw(
        s,
        "DELETE",
        "/sig-v2-keep",
        &s.addr().to_string(),
        &date,
        &auth,
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "InvalidAccessKeyId"),
        "{r:?}"
    );
    assert!(
        r.body.contains("<Resource>/sig-v2-keep</Resource>"),
        "{}",
        r.body
    );

    assert!(bucket_exists(s, "sig-v2-keep").await);
    assert!(!bucket_exists(s, "sig-v2-never").await);
    assert_eq!(get(s, "sig-v2-keep", "k").await.as_deref(), Some(&b"v"[..]));
}
both_dbs!(sigv2_bucket_wrong_signature_refused);

/// S3 refuses SigV2 requests whose Date is more than 15 minutes off (RequestTimeTooSkewed), as
/// for SigV4; otherwise a captured request can be replayed for as long as the key lives.
async fn sigv2_stale_date_refused(s: &TestServer) {
    make_bucket(s, "sig-v2-skew").await;
    let old = SystemTime::now() - Duration::from_secs(20 * 60);
    let r = v2(
        s,
        "PUT",
        "/sig-v2-skew/replayed",
        ROOT_SECRET,
        old,
        &[],
        b"replayed",
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "RequestTimeTooSkewed"),
        "SigV2 PUT dated 20 minutes ago: {r:?}"
    );
    assert_eq!(get(s, "sig-v2-skew", "replayed").await, None);
    let ancient = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let r = v2(s, "GET", "/sig-v2-skew", ROOT_SECRET, ancient, &[], b"").await;
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "RequestTimeTooSkewed"),
        "SigV2 list dated 2001: {r:?}"
    );
}
both_dbs!(sigv2_stale_date_refused);

// ------------------------------------------------------------------ oversized requests

async fn oversized_headers(s: &TestServer) {
    make_bucket(s, "bighdr").await;
    put(s, "bighdr", "k", b"small").await;

    // A signed PUT carrying a 200 KiB user-metadata header (S3 allows 2 KiB of metadata).
    let big = "m".repeat(200 * 1024);
    let r = v4(
        s,
        "PUT",
        "/bighdr/meta",
        "",
        &[("x-amz-meta-big", big.as_str())],
        b"body",
        SystemTime::now(),
    )
    .await
    .expect("200 KiB x-amz-meta-big: a response");
    assert_head_too_large(&r, "200 KiB x-amz-meta-big");
    assert_eq!(get(s, "bighdr", "meta").await, None);

    // Unsigned: a 1 MiB header, and 300 small headers.
    let huge = format!(
        "GET /bighdr/k HTTP/1.1\r\nhost: {}\r\nx-huge: {}\r\nconnection: close\r\n\r\n",
        s.addr(),
        "h".repeat(1 << 20)
    );
    let r = exchange(s.addr(), huge.into_bytes())
        .await
        .expect("1 MiB header: a response");
    // Past the HTTP layer's read buffer: hyper refuses it, and S3's error goes out in place of
    // its bare 431.
    assert_head_too_large(&r, "1 MiB header");
    let mut lots = format!("GET /bighdr/k HTTP/1.1\r\nhost: {}\r\n", s.addr());
    for i in 0..300 {
        lots.push_str(&format!("x-h-{i}: v\r\n"));
    }
    lots.push_str("connection: close\r\n\r\n");
    let r = exchange(s.addr(), lots.into_bytes())
        .await
        .expect("300 headers: a response");
    // More than hyper's 100 headers: the same S3 error in place of hyper's bare 431.
    assert_head_too_large(&r, "300 headers");

    // The server still serves, and nothing changed.
    assert_eq!(get(s, "bighdr", "k").await.as_deref(), Some(&b"small"[..]));
    nothing_half_written(s).await;
}
both_dbs!(oversized_headers);

/// 100 KiB of request headers (50 signed headers of 2 KiB) is refused with S3's error (S3 caps
/// the header section at 8 KiB; ours is 64 KiB).
async fn hundred_kib_of_headers_refused(s: &TestServer) {
    make_bucket(s, "manyhdr").await;
    put(s, "manyhdr", "k", b"small").await;
    let pad = "p".repeat(2048);
    let names: Vec<String> = (0..50).map(|i| format!("x-pad-{i:02}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), pad.as_str())).collect();
    let r = v4(s, "GET", "/manyhdr/k", "", &many, b"", SystemTime::now())
        .await
        .expect("100 KiB of headers: a response");
    assert_head_too_large(&r, "GET with 100 KiB of request headers");
    // Just under the limit is served.
    let pad = "p".repeat(1024);
    let names: Vec<String> = (0..40).map(|i| format!("x-pad-{i:02}")).collect();
    let some: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), pad.as_str())).collect();
    let r = v4(s, "GET", "/manyhdr/k", "", &some, b"", SystemTime::now())
        .await
        .expect("40 KiB of headers: a response");
    assert_eq!(r.status, 200, "40 KiB of headers: {r:?}");
}

/// A head over 64 KiB (but within the HTTP layer's buffer) is S3's 400
/// RequestHeaderSectionTooLarge, with an XML body naming the request.
fn assert_head_too_large(r: &RawResponse, what: &str) {
    assert_eq!(r.status, 400, "{what}: {r:?}");
    assert_eq!(
        error_code(r),
        "RequestHeaderSectionTooLarge",
        "{what}: {r:?}"
    );
    assert!(r.body.contains("<RequestId>"), "{what}: {r:?}");
}
both_dbs!(hundred_kib_of_headers_refused);

async fn delete_objects_request(s: &TestServer, xml: &str) -> RawResponse {
    let md5 = {
        use md5::Digest;
        b64(&md5::Md5::digest(xml.as_bytes()))
    };
    v4(
        s,
        "POST",
        &format!("/{}", DEL_BUCKET),
        "delete=",
        &[("content-md5", md5.as_str())],
        xml.as_bytes(),
        SystemTime::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("DeleteObjects of {} bytes: {e}", xml.len()))
}

const DEL_BUCKET: &str = "bigdel";
const DEL_KEYS: [&str; 3] = ["d/0", "d/1", "d/2"];

async fn delete_setup(s: &TestServer) {
    make_bucket(s, DEL_BUCKET).await;
    for k in DEL_KEYS {
        put(s, DEL_BUCKET, k, k.as_bytes()).await;
    }
}

async fn none_deleted(s: &TestServer, what: &str) {
    for k in DEL_KEYS {
        assert_eq!(
            get(s, DEL_BUCKET, k).await.as_deref(),
            Some(k.as_bytes()),
            "{what}: {k} was deleted"
        );
    }
}

fn delete_xml(quiet: bool, extra_keys: impl Iterator<Item = String>, padding: usize) -> String {
    let mut xml = String::from("<Delete>");
    if quiet {
        xml.push_str("<Quiet>true</Quiet>");
    }
    for k in DEL_KEYS.iter().map(|k| (*k).to_owned()).chain(extra_keys) {
        xml.push_str(&format!("<Object><Key>{k}</Key></Object>"));
    }
    xml.push_str(&" ".repeat(padding));
    xml.push_str("</Delete>");
    xml
}

/// A DeleteObjects body over the 4 MiB XML cap: a client error (S3: MaxMessageLengthExceeded or
/// MalformedXML), never a 500, and nothing is deleted.
async fn oversized_delete_objects(s: &TestServer) {
    delete_setup(s).await;
    let pad = "x".repeat(900);
    // 5,000 keys of ~900 bytes (~4.5 MiB), and 3 keys padded with 5 MiB of whitespace.
    let cases = [
        (
            "5000 keys",
            delete_xml(true, (0..5000).map(|i| format!("pad/{i}/{pad}")), 0),
        ),
        ("whitespace", delete_xml(true, std::iter::empty(), 5 << 20)),
    ];
    let mut outcomes = Vec::new();
    for (what, xml) in &cases {
        assert!(xml.len() > 4 << 20, "{what}: {} bytes", xml.len());
        let r = delete_objects_request(s, xml).await;
        outcomes.push((*what, xml.len(), r.status, error_code(&r).to_owned()));
        none_deleted(s, what).await;
    }
    for (what, len, status, code) in &outcomes {
        assert!(
            *status == 400 && ["MaxMessageLengthExceeded", "MalformedXML"].contains(&code.as_str()),
            "DeleteObjects with a {len}-byte body ({what}): expected 400 MaxMessageLengthExceeded \
             or MalformedXML, got {status} {code}; all: {outcomes:?}"
        );
    }
}
both_dbs!(oversized_delete_objects);

/// 1,001 small keys (well under the size cap) are refused: S3 deletes at most 1,000 per request.
async fn delete_objects_over_1000_keys(s: &TestServer) {
    delete_setup(s).await;
    let xml = delete_xml(false, (0..998).map(|i| format!("other/{i}")), 0);
    let r = delete_objects_request(s, &xml).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(error_code(&r), "MalformedXML", "{r:?}");
    none_deleted(s, "1001 keys").await;
    // 1,000 are fine.
    let xml = delete_xml(false, (0..997).map(|i| format!("other/{i}")), 0);
    let r = delete_objects_request(s, &xml).await;
    assert_eq!(r.status, 200, "{r:?}");
    for k in DEL_KEYS {
        assert_eq!(get(s, DEL_BUCKET, k).await, None, "{k} not deleted");
    }
}
both_dbs!(delete_objects_over_1000_keys);

// ------------------------------------------------------------------ browser POST, memory

/// A SigV4 POST policy form for `bucket` allowing keys under `prefix` up to `max` bytes, with
/// `file` as the upload: (content-type, body).
fn post_form(bucket: &str, key: &str, prefix: &str, max: u64, file: &[u8]) -> (String, Vec<u8>) {
    post_form_with(bucket, key, prefix, max, file, Some("f.bin"), &[])
}

/// `post_form` with the file part's `filename` (none: no filename parameter) and `extra` fields,
/// each also an exact-match condition of the policy.
fn post_form_with(
    bucket: &str,
    key: &str,
    prefix: &str,
    max: u64,
    file: &[u8],
    filename: Option<&str>,
    extra: &[(&str, &str)],
) -> (String, Vec<u8>) {
    let now = SystemTime::now();
    let (date, day) = amz_date(now);
    let credential = format!("{ROOT_KEY}/{day}/{REGION}/s3/aws4_request");
    let expiration = time::OffsetDateTime::from(now + Duration::from_secs(3600))
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
        ))
        .expect("format");
    let policy = format!(
        r#"{{"expiration":"{expiration}","conditions":[{{"bucket":"{bucket}"}},["starts-with","$key","{prefix}"],{{"x-amz-algorithm":"AWS4-HMAC-SHA256"}},{{"x-amz-credential":"{credential}"}},{{"x-amz-date":"{date}"}},["content-length-range",0,{max}]{extra_conditions}]}}"#,
        extra_conditions = extra
            .iter()
            .map(|(k, v)| format!(r#",{{"{k}":"{v}"}}"#))
            .collect::<String>()
    );
    let policy = b64(policy.as_bytes());
    let k_date = hmac_sha256(format!("AWS4{ROOT_SECRET}").as_bytes(), day.as_bytes());
    let k_region = hmac_sha256(&k_date, REGION.as_bytes());
    let k_service = hmac_sha256(&k_region, b"s3");
    let signing_key = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&signing_key, policy.as_bytes()));
    let boundary = "----sigv4formsboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in [
        ("key", key),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", credential.as_str()),
        ("x-amz-date", date.as_str()),
        ("policy", policy.as_str()),
        ("x-amz-signature", signature.as_str()),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"{}\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            filename.map_or(String::new(), |f| format!("; filename=\"{f}\""))
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_object(
    addr: std::net::SocketAddr,
    bucket: &str,
    form: (String, Vec<u8>),
) -> RawResponse {
    let (ctype, body) = form;
    let headers = vec![
        ("host".to_owned(), addr.to_string()),
        ("content-type".to_owned(), ctype),
        ("content-length".to_owned(), body.len().to_string()),
    ];
    exchange(
        addr,
        request_bytes("POST", &format!("/{bucket}"), &headers, &body),
    )
    .await
    .expect("POST response")
}

async fn post_policy_upload(s: &TestServer) {
    make_bucket(s, "form").await;
    let file = bytes(300_000, 61);
    let r = post_object(
        s.addr(),
        "form",
        post_form("form", "in/a.bin", "in/", 1 << 20, &file),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(get(s, "form", "in/a.bin").await.as_deref(), Some(&file[..]));
    // Over the policy's content-length-range: refused, nothing stored.
    let r = post_object(
        s.addr(),
        "form",
        post_form("form", "in/b.bin", "in/", 1000, &file),
    )
    .await;
    assert_eq!((r.status, error_code(&r)), (400, "EntityTooLarge"), "{r:?}");
    assert_eq!(get(s, "form", "in/b.bin").await, None);
    nothing_half_written(s).await;
}
both_dbs!(post_policy_upload);

/// S3 replaces `${filename}` in a POST form's key with the file part's filename; the policy,
/// the stored key and the 201 answer all see the final key.
async fn post_filename_variable(s: &TestServer) {
    make_bucket(s, "form-named").await;
    let up = |key: &str, prefix: &str, filename: Option<&str>, extra: &[(&str, &str)]| {
        post_form_with(
            "form-named",
            key,
            prefix,
            1 << 20,
            b"photo bytes",
            filename,
            extra,
        )
    };
    let r = post_object(
        s.addr(),
        "form-named",
        up("up/${filename}", "up/", Some("photo.jpg"), &[]),
    )
    .await;
    assert_eq!((r.status, error_code(&r)), (204, ""), "{r:?}");
    assert_eq!(
        get(s, "form-named", "up/photo.jpg").await.as_deref(),
        Some(&b"photo bytes"[..])
    );
    assert_eq!(get(s, "form-named", "up/${filename}").await, None);

    let status = [("success_action_status", "201")];
    let r = post_object(
        s.addr(),
        "form-named",
        up("up/${filename}", "up/", Some("a b.pdf"), &status),
    )
    .await;
    assert_eq!((r.status, error_code(&r)), (201, ""), "{r:?}");
    assert!(r.body.contains("<Key>up/a b.pdf</Key>"), "{}", r.body);
    assert!(get(s, "form-named", "up/a b.pdf").await.is_some());

    // A key without the variable, or a file part without a filename: the key as sent.
    let r = post_object(
        s.addr(),
        "form-named",
        up("up/plain", "up/", Some("photo.jpg"), &[]),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert!(get(s, "form-named", "up/plain").await.is_some());
    let r = post_object(
        s.addr(),
        "form-named",
        up("up/${filename}", "up/", None, &[]),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert!(get(s, "form-named", "up/${filename}").await.is_some());

    // The policy is checked against the final key: `${filename}` alone is not under `up/`.
    let r = post_object(
        s.addr(),
        "form-named",
        up("${filename}", "up/", Some("escape.jpg"), &[]),
    )
    .await;
    assert!((400..500).contains(&r.status), "{r:?}");
    assert_eq!(get(s, "form-named", "escape.jpg").await, None);
    assert_eq!(get(s, "form-named", "${filename}").await, None);
    nothing_half_written(s).await;
}
both_dbs!(post_filename_variable);

/// A 16 MiB text file with CRLF line endings (a CSV saved on Windows) uploaded through a
/// browser POST form is stored intact. s3s 0.14.1's form parser refuses it ("failed to read file
/// stream", 400) whenever a body frame ends inside `\r\n--boundary` look-alike bytes (a lone `\r`
/// at a frame's end) and the next frame is over 64 KiB.
async fn post_policy_upload_crlf_text(s: &TestServer) {
    make_bucket(s, "form-text").await;
    let mut file = Vec::with_capacity(16 << 20);
    let mut n = 0u64;
    while file.len() < 16 << 20 {
        file.extend_from_slice(format!("{n},row {n},{}\r\n", n * 7919 % 1000).as_bytes());
        n += 1;
    }
    let r = post_object(
        s.addr(),
        "form-text",
        post_form("form-text", "data.csv", "", 1 << 30, &file),
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (204, ""),
        "POST of a {} byte CRLF text file: {r:?}",
        file.len()
    );
    assert!(get(s, "form-text", "data.csv").await.as_deref() == Some(&file[..]));
    nothing_half_written(s).await;
}
both_dbs!(post_policy_upload_crlf_text);

/// A browser POST upload stays within the memory bound. s3s 0.14.1 holds the file part in
/// memory, so the server caps POST files at 64 MiB (MAX_POST_FILE); a 48 MiB one must fit. The
/// server must stream the file part to disk, not buffer it whole (s3s 0.14.1 collects the file
/// in memory up to the policy's content-length-range maximum, or 5 GiB without one).
async fn post_upload_bounded_memory(db: Db) {
    const RSS_LIMIT: u64 = 100 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgDb::create().await),
    };
    let url = pg.as_ref().map(PgDb::url);
    let proc = Proc::spawn_root(&dir.path().join("data"), url.as_deref(), &[]);
    let c = client(proc.addr, ROOT_KEY, ROOT_SECRET);
    c.create_bucket()
        .bucket("posted")
        .send()
        .await
        .expect("create");
    // No CR bytes: keeps clear of the form parser's boundary bug (see above); memory is the point.
    let file: Vec<u8> = bytes(48 << 20, 71)
        .into_iter()
        .map(|b| if b == b'\r' { b'R' } else { b })
        .collect();
    let md5 = md5_hex(&file);
    let form = post_form("posted", "video.bin", "", 1 << 30, &file);
    drop(file);
    let r = post_object(proc.addr, "posted", form).await;
    assert_eq!(r.status, 204, "{r:?}");
    let head = c
        .head_object()
        .bucket("posted")
        .key("video.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(48 << 20));
    assert_eq!(head.e_tag(), Some(format!("\"{md5}\"").as_str()));
    let rss = proc.peak_rss();
    eprintln!(
        "{db:?}: peak RSS after a 48 MiB POST upload: {} MiB",
        rss >> 20
    );
    assert!(
        rss < RSS_LIMIT,
        "peak RSS {} MiB after a 48 MiB browser POST upload (limit {} MiB; a PUT of 1 GiB stays under it)",
        rss >> 20,
        RSS_LIMIT >> 20
    );
    assert!(proc.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_upload_bounded_memory_sqlite() {
    post_upload_bounded_memory(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_upload_bounded_memory_postgres() {
    post_upload_bounded_memory(Db::Postgres).await;
}

/// Correctly signed chunks whose total differs from the signed `x-amz-decoded-content-length`
/// (off by one either way): S3 refuses the upload (IncompleteBody or similar 4xx); nothing is
/// stored.
async fn decoded_length_mismatch_refused(s: &TestServer) {
    make_bucket(s, "declared").await;
    let body = bytes(3 * CHUNK + 999, 32);
    let mut outcomes = Vec::new();
    for (key, declared) in [("longer", body.len() + 1), ("shorter", body.len() - 1)] {
        let path = format!("/declared/{key}");
        let r = streaming_put_query(s, &path, "", &body, declared, None, |_| {}).await;
        let stored = get(s, "declared", key).await.map(|b| b.len());
        outcomes.push((key, declared, r.status, error_code(&r).to_owned(), stored));
    }
    for (key, declared, status, code, stored) in &outcomes {
        assert!(
            (400..500).contains(status) && stored.is_none(),
            "{} bytes sent as signed chunks with x-amz-decoded-content-length {declared} ({key}): \
             HTTP {status} {code}, stored {stored:?} bytes; all: {outcomes:?}",
            body.len()
        );
    }
    nothing_half_written(s).await;
}
both_dbs!(decoded_length_mismatch_refused);

/// U+0000 cannot be stored in PostgreSQL text: wherever it comes from (path, query, copy
/// source, tagging header, form field, XML body), the request is a 400 on both backends, never
/// a 500, and nothing stored changes.
async fn nul_is_refused(s: &TestServer) {
    make_bucket(s, "nul").await;
    put(s, "nul", "k", b"small").await;
    let now = SystemTime::now();
    for (method, path, query) in [
        ("PUT", "/nul/a%00b", ""),
        ("GET", "/nul/a%00b", ""),
        ("HEAD", "/nul/a%00b", ""),
        ("DELETE", "/nul/a%00b", ""),
        ("POST", "/nul/a%00b", "uploads="),
        ("GET", "/nul", "list-type=2&prefix=a%00"),
        ("GET", "/nul", "list-type=2&start-after=k%00"),
        ("GET", "/nul", "delimiter=%00"),
        ("GET", "/nul", "prefix=&uploads=&key-marker=%00"),
        ("GET", "/nul/k", "uploadId=x%00y"),
    ] {
        // Refused before the signature is checked (the test signer, which checks itself
        // against aws-sigv4, cannot sign a `%00` path the same way).
        let target = format!("{path}?{query}");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            s.addr()
        );
        let r = exchange(s.addr(), head.into_bytes())
            .await
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert_eq!(r.status, 400, "{method} {path}?{query}: {r:?}");
        if method != "HEAD" {
            assert_eq!(
                error_code(&r),
                "InvalidArgument",
                "{method} {path}?{query}: {r:?}"
            );
        }
    }
    let refused = |what: &str, r: &RawResponse, code: &str| {
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert_eq!(error_code(r), code, "{what}: {r:?}");
    };
    // base64url of "a\0b"
    let r = v4(
        s,
        "GET",
        "/nul",
        "continuation-token=YQBi&list-type=2",
        &[],
        b"",
        now,
    )
    .await;
    refused(
        "continuation token",
        &r.expect("token: a response"),
        "InvalidArgument",
    );
    let r = v4(
        s,
        "PUT",
        "/nul/c",
        "",
        &[("x-amz-copy-source", "/nul/k%00")],
        b"",
        now,
    )
    .await;
    refused(
        "copy source",
        &r.expect("copy: a response"),
        "InvalidArgument",
    );
    let r = v4(
        s,
        "PUT",
        "/nul/t",
        "",
        &[("x-amz-tagging", "a=b%00")],
        b"x",
        now,
    )
    .await;
    refused(
        "tagging header",
        &r.expect("tagging: a response"),
        "InvalidTag",
    );
    let r = v4(
        s,
        "PUT",
        "/nul/k",
        "tagging=",
        &[],
        TAGGING_NUL.as_bytes(),
        now,
    )
    .await;
    // `&#0;` is not XML at all.
    refused(
        "tagging body",
        &r.expect("tagging body: a response"),
        "MalformedXML",
    );
    let form = post_form("nul", "f\0x", "", 1024, b"form body");
    refused(
        "form key",
        &post_object(s.addr(), "nul", form).await,
        "InvalidArgument",
    );

    assert_eq!(get(s, "nul", "k").await.as_deref(), Some(&b"small"[..]));
    for k in ["c", "t", "f"] {
        assert_eq!(get(s, "nul", k).await, None, "{k}");
    }
    nothing_half_written(s).await;
}
both_dbs!(nul_is_refused);

const TAGGING_NUL: &str =
    "<Tagging><TagSet><Tag><Key>a</Key><Value>b&#0;</Value></Tag></TagSet></Tagging>";

// ------------------------------------------------------------------ browser POST, S3's answers

/// A SigV2 POST form as browsers and the s3-tests suite send it: with `policy` (expiration,
/// conditions JSON) the policy and its signature, then `fields` in order, then the file part.
fn v2_form(
    policy: Option<(&str, &str)>,
    fields: &[(&str, &str)],
    file: &[u8],
) -> (String, Vec<u8>) {
    let boundary = "----v2formboundaryQ3x";
    let mut all: Vec<(String, String)> = Vec::new();
    if let Some((expiration, conditions)) = policy {
        let doc = format!(r#"{{"expiration":"{expiration}","conditions":{conditions}}}"#);
        let policy = b64(doc.as_bytes());
        let signature = b64(&hmac(sha1, ROOT_SECRET.as_bytes(), policy.as_bytes()));
        all.push(("AWSAccessKeyId".into(), ROOT_KEY.into()));
        all.push(("policy".into(), policy));
        all.push(("signature".into(), signature));
    }
    all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut body = Vec::new();
    for (name, value) in all {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn future_expiration() -> String {
    time::OffsetDateTime::from(SystemTime::now() + Duration::from_secs(3600))
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("format")
}

fn assert_error(r: &RawResponse, status: u16, code: &str, message: &str) {
    assert_eq!((r.status, error_code(r)), (status, code), "{r:?}");
    assert!(r.body.contains(message), "expected {message:?}: {}", r.body);
    assert!(r.body.contains("<RequestId>"), "{r:?}");
}

/// A form that the policy does not allow is S3's 403 AccessDenied "Invalid according to
/// Policy", naming the condition that failed or the fields no condition names (s3s answered
/// 400 InvalidPolicyDocument); an expiration that is not ISO 8601 is 400 InvalidPolicyDocument
/// (s3s took RFC 3339's space-separated form).
async fn post_policy_refusals(s: &TestServer) {
    make_bucket(s, "pform").await;
    make_bucket(s, "pother").await;
    let exp = future_expiration();
    let base = r#"{"bucket":"pform"},["starts-with","$key","foo"],{"acl":"private"},["content-length-range",0,1024]"#;
    let with = |extra: &str| format!("[{base}{extra}]");
    let post =
        |bucket: &'static str, conditions: String, fields: Vec<(&'static str, &'static str)>| {
            let exp = exp.clone();
            async move {
                let form = v2_form(Some((&exp, &conditions)), &fields, b"bar");
                post_object(s.addr(), bucket, form).await
            }
        };
    const FAILED: &str = "Invalid according to Policy: Policy Condition failed: ";

    // A condition the form fails.
    let r = post(
        "pform",
        with(""),
        vec![("key", "bar.txt"), ("acl", "private")],
    )
    .await;
    assert_error(
        &r,
        403,
        "AccessDenied",
        &format!("{FAILED}[&quot;starts-with&quot;, &quot;$key&quot;, &quot;foo&quot;]"),
    );
    // A field the policy requires is missing.
    let r = post(
        "pform",
        with(r#",["starts-with","$x-amz-meta-foo","bar"]"#),
        vec![("key", "foo.txt"), ("acl", "private")],
    )
    .await;
    assert_error(&r, 403, "AccessDenied", "$x-amz-meta-foo");
    // A field whose value the policy does not allow.
    let r = post(
        "pform",
        with(r#",["eq","$x-amz-meta-foo",""]"#),
        vec![
            ("key", "foo.txt"),
            ("acl", "private"),
            ("x-amz-meta-foo", "barclamp"),
        ],
    )
    .await;
    assert_error(&r, 403, "AccessDenied", "$x-amz-meta-foo");
    // Another bucket than the policy's, named in the form or not.
    for fields in [
        vec![("key", "foo.txt"), ("acl", "private"), ("bucket", "pform")],
        vec![("key", "foo.txt"), ("acl", "private")],
    ] {
        let r = post("pother", with(""), fields).await;
        assert_error(
            &r,
            403,
            "AccessDenied",
            &format!("{FAILED}[&quot;eq&quot;, &quot;$bucket&quot;, &quot;pform&quot;]"),
        );
    }
    // A field no condition names.
    let r = post(
        "pform",
        with(""),
        vec![
            ("key", "foo.txt"),
            ("acl", "private"),
            ("x-amz-meta-extra", "1"),
        ],
    )
    .await;
    assert_error(
        &r,
        403,
        "AccessDenied",
        "Invalid according to Policy: Extra input fields: x-amz-meta-extra",
    );
    // Not ISO 8601, or not a policy at all: 400 InvalidPolicyDocument.
    let form = v2_form(
        Some(("2030-01-01 00:00:00.123456+00:00", &with(""))),
        &[("key", "foo.txt"), ("acl", "private")],
        b"bar",
    );
    let r = post_object(s.addr(), "pform", form).await;
    assert_error(&r, 400, "InvalidPolicyDocument", "expiration");
    let form = v2_form(
        Some(("never", &with(""))),
        &[("key", "foo.txt"), ("acl", "private")],
        b"bar",
    );
    let r = post_object(s.addr(), "pform", form).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "InvalidPolicyDocument"),
        "{r:?}"
    );
    // A policy without its signature: 400 InvalidArgument (s3s took the form for anonymous).
    let doc = format!(r#"{{"expiration":"{exp}","conditions":{}}}"#, with(""));
    let policy = b64(doc.as_bytes());
    for key in ["foo.txt", "bar.txt"] {
        let fields = [
            ("key", key),
            ("acl", "private"),
            ("AWSAccessKeyId", ROOT_KEY),
            ("policy", policy.as_str()),
        ];
        let r = post_object(s.addr(), "pform", v2_form(None, &fields, b"bar")).await;
        assert_error(&r, 400, "InvalidArgument", "Signature");
    }
    assert_eq!(get(s, "pform", "foo.txt").await, None);
    assert_eq!(get(s, "pother", "foo.txt").await, None);
    assert_eq!(get(s, "pform", "bar.txt").await, None);

    // The form the policy allows is stored.
    let r = post(
        "pform",
        with(""),
        vec![("key", "foo.txt"), ("acl", "private")],
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        get(s, "pform", "foo.txt").await.as_deref(),
        Some(&b"bar"[..])
    );
}
both_dbs!(post_policy_refusals);

/// `success_action_redirect`: 303 to the URL with bucket, key and the ETag quoted, as S3 does
/// (`etag=%22…%22`; s3s left it bare).
async fn post_redirect_quotes_the_etag(s: &TestServer) {
    make_bucket(s, "predir").await;
    let to = "http://example.com/done?x=1";
    let conditions = format!(
        r#"[{{"bucket":"predir"}},["starts-with","$key",""],["eq","$success_action_redirect","{to}"]]"#
    );
    let exp = future_expiration();
    let form = v2_form(
        Some((&exp, &conditions)),
        &[("key", "a b.txt"), ("success_action_redirect", to)],
        b"bar",
    );
    let r = post_object(s.addr(), "predir", form).await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(
            format!(
                "{to}&bucket=predir&key=a+b.txt&etag=%22{}%22",
                md5_hex(b"bar")
            )
            .as_str()
        ),
        "{r:?}"
    );
}
both_dbs!(post_redirect_quotes_the_etag);

/// An `x-amz-checksum-*` form field needs no policy condition (s3s refused it, 403): it is
/// verified (BadDigest when the file does not match) and stored.
async fn post_checksum_field(s: &TestServer) {
    make_bucket(s, "pcsum").await;
    let exp = future_expiration();
    let conditions = r#"[{"bucket":"pcsum"},["starts-with","$key","c"],["starts-with","$Content-Type","text/plain"]]"#;
    let file = vec![b'x'; 2 << 20];
    let good = b64(&sha256(&file));
    let post = |key: &'static str, sum: String| {
        let (exp, file) = (exp.clone(), file.clone());
        async move {
            let fields = [
                ("key", key),
                ("Content-Type", "text/plain"),
                ("x-amz-checksum-sha256", sum.as_str()),
            ];
            post_object(
                s.addr(),
                "pcsum",
                v2_form(Some((&exp, conditions)), &fields, &file),
            )
            .await
        }
    };
    let r = post("c1", good.clone()).await;
    assert_eq!(r.status, 204, "{r:?}");
    let head = s
        .client
        .head_object()
        .bucket("pcsum")
        .key("c1")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_sha256(), Some(good.as_str()));

    let r = post("c2", b64(&sha256(b"other"))).await;
    assert_eq!((r.status, error_code(&r)), (400, "BadDigest"), "{r:?}");
    let r = post("c3", "sailorjerry".into()).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<RequestId>"), "{r:?}");
    assert_eq!(get(s, "pcsum", "c2").await, None);
    assert_eq!(get(s, "pcsum", "c3").await, None);
    nothing_half_written(s).await;
}
both_dbs!(post_checksum_field);

/// An unsigned form to a public-read-write bucket is stored, with the form's `acl` and its
/// `tagging` document (s3s read only `x-amz-acl` and the URL-encoded `x-amz-tagging`); to a
/// private bucket it is AccessDenied.
async fn post_anonymous_to_public_write_bucket(s: &TestServer) {
    use aws_sdk_s3::types::BucketCannedAcl;
    s.client
        .create_bucket()
        .bucket("ppublic")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .expect("bucket");
    make_bucket(s, "pprivate").await;
    let tagging = "<Tagging><TagSet><Tag><Key>0</Key><Value>0</Value></Tag>\
                   <Tag><Key>k 1</Key><Value>v&amp;1</Value></Tag></TagSet></Tagging>";
    let fields = [
        ("key", "foo.txt"),
        ("acl", "public-read"),
        ("Content-Type", "text/plain"),
        ("tagging", tagging),
    ];
    let r = post_object(s.addr(), "ppublic", v2_form(None, &fields, b"bar")).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        get(s, "ppublic", "foo.txt").await.as_deref(),
        Some(&b"bar"[..])
    );
    let tags = s
        .client
        .get_object_tagging()
        .bucket("ppublic")
        .key("foo.txt")
        .send()
        .await
        .expect("tagging");
    let tags: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, [("0", "0"), ("k 1", "v&1")]);
    let acl = s
        .client
        .get_object_acl()
        .bucket("ppublic")
        .key("foo.txt")
        .send()
        .await
        .expect("acl");
    assert!(
        acl.grants().iter().any(|g| g
            .grantee()
            .and_then(|g| g.uri())
            .is_some_and(|u| u.ends_with("/global/AllUsers"))),
        "{acl:?}"
    );

    let r = post_object(s.addr(), "pprivate", v2_form(None, &fields, b"bar")).await;
    assert_eq!((r.status, error_code(&r)), (403, "AccessDenied"), "{r:?}");
    assert_eq!(get(s, "pprivate", "foo.txt").await, None);
}
both_dbs!(post_anonymous_to_public_write_bucket);
