//! The protocol edge: conditional requests, presigned URLs, hostile or malformed requests, each
//! answered with its precise S3 error while nothing stored changes.

use crate::common::*;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use std::time::Duration;

async fn setup(s: &TestServer, bucket: &str) -> String {
    s.client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
    s.client
        .put_object()
        .bucket(bucket)
        .key("k")
        .body(ByteStream::from_static(b"original"))
        .send()
        .await
        .expect("put")
        .e_tag
        .expect("etag")
}

async fn body_is(s: &TestServer, bucket: &str, key: &str, want: &[u8]) {
    let got = s
        .client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        want
    );
}

async fn conditional_reads(s: &TestServer) {
    let etag = setup(s, "cond-read").await;
    let c = &s.client;
    let past = DateTime::from_secs(1_000_000_000);
    let future = DateTime::from_secs(4_000_000_000);
    c.get_object()
        .bucket("cond-read")
        .key("k")
        .if_match(&etag)
        .send()
        .await
        .expect("if-match ok");
    let e = c
        .get_object()
        .bucket("cond-read")
        .key("k")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    assert_eq!(code(&e), "PreconditionFailed");
    let e = c
        .head_object()
        .bucket("cond-read")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    let e = c
        .get_object()
        .bucket("cond-read")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    c.get_object()
        .bucket("cond-read")
        .key("k")
        .if_none_match("\"0000\"")
        .send()
        .await
        .expect("changed");
    let e = c
        .get_object()
        .bucket("cond-read")
        .key("k")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    c.get_object()
        .bucket("cond-read")
        .key("k")
        .if_modified_since(past)
        .send()
        .await
        .expect("modified");
    let e = c
        .head_object()
        .bucket("cond-read")
        .key("k")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    // If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since.
    c.get_object()
        .bucket("cond-read")
        .key("k")
        .if_match(&etag)
        .if_unmodified_since(past)
        .send()
        .await
        .expect("precedence");
    let e = c
        .get_object()
        .bucket("cond-read")
        .key("k")
        .if_none_match(&etag)
        .if_modified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
}
both_dbs!(conditional_reads);

async fn conditional_writes(s: &TestServer) {
    let etag = setup(s, "cond-write").await;
    let c = &s.client;
    let e = c
        .put_object()
        .bucket("cond-write")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    c.put_object()
        .bucket("cond-write")
        .key("new")
        .if_none_match("*")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .expect("create-only write of a new key");
    let e = c
        .put_object()
        .bucket("cond-write")
        .key("k")
        .if_match("\"0123\"")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    body_is(s, "cond-write", "k", b"original").await;
    c.put_object()
        .bucket("cond-write")
        .key("k")
        .if_match(&etag)
        .body(ByteStream::from_static(b"swapped"))
        .send()
        .await
        .expect("compare-and-swap");
    body_is(s, "cond-write", "k", b"swapped").await;

    // Many racing create-only writers: exactly one wins.
    let results = futures::future::join_all((0..8).map(|i| {
        let c = c.clone();
        async move {
            c.put_object()
                .bucket("cond-write")
                .key("race")
                .if_none_match("*")
                .body(ByteStream::from(format!("writer {i}").into_bytes()))
                .send()
                .await
                .is_ok()
        }
    }))
    .await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
    assert_refcounts(s).await;

    // x-amz-copy-source-if-*.
    let e = c
        .copy_object()
        .bucket("cond-write")
        .key("copy")
        .copy_source("cond-write/k")
        .copy_source_if_match("\"0123\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    let e = c
        .copy_object()
        .bucket("cond-write")
        .key("copy")
        .copy_source("cond-write/k")
        .copy_source_if_modified_since(DateTime::from_secs(4_000_000_000))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    let e = c
        .head_object()
        .bucket("cond-write")
        .key("copy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
}
both_dbs!(conditional_writes);

/// A conditional PUT's outcome: the new ETag, or the refusal's status and code.
type Outcome = Result<String, (u16, String)>;

/// PutObject with `If-None-Match` and/or `If-Match` (`None`: header absent).
async fn put_if(
    s: &TestServer,
    bucket: &str,
    body: &[u8],
    if_none_match: Option<&str>,
    if_match: Option<&str>,
) -> Outcome {
    s.client
        .put_object()
        .bucket(bucket)
        .key("obj")
        .set_if_none_match(if_none_match.map(str::to_owned))
        .set_if_match(if_match.map(str::to_owned))
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(|o| o.e_tag.expect("etag"))
        .map_err(|e| (status(&e), code(&e)))
}

fn refused(status: u16, code: &str) -> Outcome {
    Err((status, code.to_owned()))
}

/// ceph/s3-tests `test_put_object_if_match`, step by step (empty bodies, so every version has
/// the same ETag), then the same conditions on bodies large enough to be files (PostgreSQL's
/// one `js_commit` call in a transaction rather than the group commit).
async fn put_object_if_match(s: &TestServer) {
    let b = "put-if-match";
    s.client
        .create_bucket()
        .bucket(b)
        .send()
        .await
        .expect("bucket");
    let etag = put_if(s, b, b"", Some("*"), None).await.expect("create");
    assert_eq!(
        put_if(s, b, b"", Some("*"), None).await,
        refused(412, "PreconditionFailed")
    );
    assert_eq!(
        put_if(s, b, b"", Some(&etag), None).await,
        refused(412, "PreconditionFailed")
    );
    put_if(s, b, b"", Some("badetag"), None)
        .await
        .expect("other etag");
    put_if(s, b, b"", None, Some(&etag))
        .await
        .expect("if-match");
    s.client
        .delete_object()
        .bucket(b)
        .key("obj")
        .send()
        .await
        .expect("delete");
    assert_eq!(
        put_if(s, b, b"", None, Some("*")).await,
        refused(404, "NoSuchKey")
    );
    assert_eq!(
        put_if(s, b, b"", None, Some("badetag")).await,
        refused(404, "NoSuchKey")
    );
    put_if(s, b, b"", Some(&etag), None)
        .await
        .expect("absent key");
    put_if(s, b, b"", None, Some("*")).await.expect("exists");
    assert_eq!(
        put_if(s, b, b"", None, Some("badetag")).await,
        refused(412, "PreconditionFailed")
    );
    put_if(s, b, b"", None, Some(&etag))
        .await
        .expect("same etag");

    // A body past the inline limit, conditioned on the current (empty) version's ETag.
    let big = bytes(256 << 10, 7);
    assert_eq!(
        put_if(s, b, &big, Some(&etag), None).await,
        refused(412, "PreconditionFailed")
    );
    let big_etag = put_if(s, b, &big, Some("\"0123\""), None)
        .await
        .expect("other etag");
    assert_eq!(big_etag, format!("\"{}\"", md5_hex(&big)));
    assert_eq!(
        put_if(s, b, &big, Some(&big_etag), None).await,
        refused(412, "PreconditionFailed")
    );
    body_is(s, b, "obj", &big).await;
    put_if(s, b, b"", Some(&etag), None)
        .await
        .expect("etag differs");
    body_is(s, b, "obj", b"").await;
    assert_refcounts(s).await;
}
both_dbs!(put_object_if_match);

/// CompleteMultipartUpload of a one-part upload of `abc` with the given conditions.
async fn complete_if(
    s: &TestServer,
    bucket: &str,
    if_none_match: Option<&str>,
    if_match: Option<&str>,
) -> Outcome {
    let c = &s.client;
    let id = crate::multipart::create(c, bucket, "obj").await;
    let part = crate::multipart::part(c, bucket, "obj", &id, 1, b"abc").await;
    c.complete_multipart_upload()
        .bucket(bucket)
        .key("obj")
        .upload_id(&id)
        .set_if_none_match(if_none_match.map(str::to_owned))
        .set_if_match(if_match.map(str::to_owned))
        .multipart_upload(crate::multipart::done(&[(1, part.trim_matches('"'))]))
        .send()
        .await
        .map(|o| o.e_tag.expect("etag"))
        .map_err(|e| (status(&e), code(&e)))
}

/// ceph/s3-tests `test_multipart_put_object_if_match`, step by step.
async fn multipart_put_object_if_match(s: &TestServer) {
    let b = "mpu-if-match";
    s.client
        .create_bucket()
        .bucket(b)
        .send()
        .await
        .expect("bucket");
    let etag = complete_if(s, b, Some("*"), None).await.expect("create");
    assert_eq!(
        complete_if(s, b, Some("*"), None).await,
        refused(412, "PreconditionFailed")
    );
    assert_eq!(
        complete_if(s, b, Some(&etag), None).await,
        refused(412, "PreconditionFailed")
    );
    let etag = complete_if(s, b, Some("badetag"), None)
        .await
        .expect("other etag");
    let etag = complete_if(s, b, None, Some(&etag))
        .await
        .expect("if-match");
    s.client
        .delete_object()
        .bucket(b)
        .key("obj")
        .send()
        .await
        .expect("delete");
    assert_eq!(
        complete_if(s, b, None, Some("*")).await,
        refused(404, "NoSuchKey")
    );
    assert_eq!(
        complete_if(s, b, None, Some("badetag")).await,
        refused(404, "NoSuchKey")
    );
    complete_if(s, b, Some(&etag), None)
        .await
        .expect("absent key");
    let etag = complete_if(s, b, None, Some("*")).await.expect("exists");
    assert_eq!(
        complete_if(s, b, None, Some("badetag")).await,
        refused(412, "PreconditionFailed")
    );
    complete_if(s, b, None, Some(&etag))
        .await
        .expect("same etag");
    body_is(s, b, "obj", b"abc").await;
    assert_refcounts(s).await;
}
both_dbs!(multipart_put_object_if_match);

/// GET over a raw socket; returns (status, body).
async fn presigned_urls(s: &TestServer) {
    setup(s, "presign").await;
    let c = &s.client;
    let url = c
        .get_object()
        .bucket("presign")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign")
        .uri()
        .to_owned();
    let r = fetch(s.addr(), &url).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "original");

    // A lifetime over 7 days is refused before signature checks, as forbidden.
    let long = url.replace("X-Amz-Expires=600", "X-Amz-Expires=604801");
    assert_ne!(long, url);
    let r = fetch(s.addr(), &long).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body.contains("AuthorizationQueryParametersError"),
        "{}",
        r.body
    );

    // An expired URL.
    let short = c
        .get_object()
        .bucket("presign")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).expect("config"))
        .await
        .expect("presign")
        .uri()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = fetch(s.addr(), &short).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("Request has expired"), "{}", r.body);

    // A presigned PUT.
    let put_url = c
        .put_object()
        .bucket("presign")
        .key("uploaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign put")
        .uri()
        .to_owned();
    let path = put_url
        .split_once(&s.addr().to_string())
        .map(|(_, p)| p)
        .expect("path");
    let req = format!(
        "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 8\r\nconnection: close\r\n\r\npresigns",
        s.addr()
    );
    let r = raw(s.addr(), req.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    body_is(s, "presign", "uploaded", b"presigns").await;
}
both_dbs!(presigned_urls);

async fn hostile_requests(s: &TestServer) {
    setup(s, "hostile").await;
    // A chunk header announcing more than the cap: rejected without reading (or buffering) it.
    let big = format!(
        "{:x};chunk-signature={}\r\nabc",
        64u64 << 20,
        "0".repeat(64)
    );
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/hostile/k",
        &[
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "67108864"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ],
        big.as_bytes(),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    .await;
    assert!((400..500).contains(&r.status), "{r:?}");
    assert!(r.body.contains("EntityTooLarge"), "{}", r.body);

    // Signed chunks with bad chunk signatures.
    let bad = format!(
        "3;chunk-signature={}\r\nabc\r\n0;chunk-signature={}\r\n\r\n",
        "1".repeat(64),
        "2".repeat(64)
    );
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/hostile/k",
        &[
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "3"),
        ],
        bad.as_bytes(),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    .await;
    assert!(r.status == 403 || r.status == 400, "{r:?}");
    assert!(
        r.body.contains("SignatureDoesNotMatch") || r.body.contains("IncompleteBody"),
        "{}",
        r.body
    );

    // A single PUT over 5 GiB is refused up front.
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/hostile/huge",
        &[("x-amz-decoded-content-length", "6000000000")],
        b"",
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("EntityTooLarge"), "{}", r.body);

    // Malformed XML in DeleteObjects.
    let xml = b"<Delete><Object><Key>k</Key></Object";
    let md5 = {
        use base64::Engine as _;
        use md5::Digest;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(xml))
    };
    let r = signed_raw(
        s.addr(),
        "POST",
        "/hostile?delete",
        &[("content-md5", md5.as_str())],
        xml,
        &sha256_hex(xml),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("MalformedXML"), "{}", r.body);

    // An unknown operation is NotImplemented (501), not a 500.
    let r = signed_raw(
        s.addr(),
        "GET",
        "/hostile?website",
        &[],
        b"",
        &sha256_hex(b""),
    )
    .await;
    assert_eq!(r.status, 501, "{r:?}");
    assert!(
        r.body.contains("<Code>NotImplemented</Code>") && r.body.contains("<RequestId>"),
        "{}",
        r.body
    );

    // Nothing stored changed.
    body_is(s, "hostile", "k", b"original").await;
    assert_eq!(
        std::fs::read_dir(s.data_dir().join("hot/tmp"))
            .expect("tmp")
            .count(),
        0
    );
    assert_refcounts(s).await;
}
both_dbs!(hostile_requests);

/// A request refused before its body is read still gets its error response: the server reads
/// the rest of a modest body (`s3::linger`) instead of closing a socket with unread bytes, which
/// resets the connection and loses the response while the client is still sending.
async fn early_error_while_the_body_streams(s: &TestServer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.client
        .create_bucket()
        .bucket("early")
        .send()
        .await
        .expect("create bucket");
    const LEN: usize = 2 << 20;
    for round in 0..3 {
        let mut sock = tokio::net::TcpStream::connect(s.addr())
            .await
            .expect("connect");
        // Anonymous: refused with AccessDenied as soon as the head is read.
        let head = format!(
            "PUT /early/k{round} HTTP/1.1\r\nhost: {}\r\ncontent-length: {LEN}\r\n\
             connection: close\r\n\r\n",
            s.addr()
        );
        sock.write_all(head.as_bytes()).await.expect("write head");
        let piece = vec![b'x'; 64 << 10];
        for _ in 0..LEN / piece.len() {
            // An SDK stops at a write error and never reads the response: so must this.
            sock.write_all(&piece)
                .await
                .unwrap_or_else(|e| panic!("round {round}: the server stopped reading: {e}"));
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            sock.read_to_end(&mut buf),
        )
        .await
        .expect("response within 30 s");
        assert!(
            read.is_ok(),
            "round {round}: reading the response: {read:?}"
        );
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 403"), "round {round}: {text}");
        assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
        assert!(text.contains("<RequestId>"), "{text}");
    }
    let listed = s
        .client
        .list_objects_v2()
        .bucket("early")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(0), "nothing was stored");
}
both_dbs!(early_error_while_the_body_streams);

/// Reads one response (head and a `content-length` body) from a connection kept open.
async fn read_one(sock: &mut tokio::net::TcpStream) -> RawResponse {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let whole = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().expect("content-length"));
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
            let n = sock.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed mid-response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), whole)
        .await
        .expect("response within 30 s");
    parse_response(&buf)
}

/// A request answered before its body was read leaves the connection unusable unless the body
/// is read: under `Expect: 100-continue` botocore then never sends it, so the server must say
/// `Connection: close` and close, or it takes the next request's first bytes for the body and
/// answers what is left with a bare 400 (seen in CI: list_parts right after a refused
/// upload_part). A body that did arrive and was drained keeps the connection.
async fn early_answer_under_expect_closes(s: &TestServer) {
    use tokio::io::AsyncWriteExt;
    s.client
        .create_bucket()
        .bucket("expect")
        .send()
        .await
        .expect("create bucket");
    let id = s
        .client
        .create_multipart_upload()
        .bucket("expect")
        .key("k")
        .send()
        .await
        .expect("create upload")
        .upload_id
        .expect("upload id");
    s.client
        .abort_multipart_upload()
        .bucket("expect")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    let path = format!("/expect/k?partNumber=2&uploadId={id}");
    let hash = sha256_hex(b"late");
    let list = signed_head(
        s.addr(),
        "GET",
        "/expect?list-type=2",
        &[],
        "0",
        &sha256_hex(b""),
    );
    for round in 0..10 {
        // Under 100-continue, the body is never sent: the answer must end the connection.
        let mut sock = tokio::net::TcpStream::connect(s.addr())
            .await
            .expect("connect");
        let head = signed_head(
            s.addr(),
            "PUT",
            &path,
            &[("expect", "100-continue")],
            "4",
            &hash,
        );
        sock.write_all(head.as_bytes()).await.expect("write head");
        let r = read_one(&mut sock).await;
        assert_eq!(r.status, 404, "round {round}: {r:?}");
        assert!(r.body.contains("<Code>NoSuchUpload</Code>"), "{r:?}");
        closes(&mut sock, &r, &list).await;

        // The same refusal with its body sent: drained, and the connection carries on.
        let mut sock = tokio::net::TcpStream::connect(s.addr())
            .await
            .expect("connect");
        let head = signed_head(s.addr(), "PUT", &path, &[], "4", &hash);
        sock.write_all(format!("{head}late").as_bytes())
            .await
            .expect("write");
        let r = read_one(&mut sock).await;
        assert_eq!(r.status, 404, "round {round}: {r:?}");
        assert_eq!(r.header("connection"), None, "round {round}: {r:?}");
        sock.write_all(list.as_bytes()).await.expect("write list");
        let r = read_one(&mut sock).await;
        assert_eq!(r.status, 200, "round {round}: {r:?}");
        assert!(r.body.contains("<KeyCount>0</KeyCount>"), "{r:?}");
    }
}
both_dbs!(early_answer_under_expect_closes);

/// `r` said `Connection: close`, and the server closed: the client's next request, sent at
/// once as botocore does, is never read (and so never misread).
async fn closes(sock: &mut tokio::net::TcpStream, r: &RawResponse, next: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    let _ = sock.write_all(next.as_bytes()).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut rest))
        .await
        .expect("closed within 10 s");
    assert!(
        read.is_err() || rest.is_empty(),
        "answered after close: {}",
        String::from_utf8_lossy(&rest)
    );
}

/// A request refused on its head by the size limits (here a 6 GiB single PUT, whose body the
/// client has not sent) goes through the same bookkeeping: it ends the connection. A small
/// body refused there is read, and the connection carries on.
async fn refused_heads_end_or_keep_the_connection(s: &TestServer) {
    use tokio::io::AsyncWriteExt;
    let list = signed_head(s.addr(), "GET", "/", &[], "0", &sha256_hex(b""));
    let mut sock = tokio::net::TcpStream::connect(s.addr())
        .await
        .expect("connect");
    let huge = (6u64 << 30).to_string();
    let head = signed_head(s.addr(), "PUT", "/big/k", &[], &huge, "UNSIGNED-PAYLOAD");
    sock.write_all(head.as_bytes()).await.expect("write head");
    let r = read_one(&mut sock).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>EntityTooLarge</Code>"), "{r:?}");
    closes(&mut sock, &r, &list).await;

    // A presigned lifetime over 7 days, with a small body sent: drained, connection kept.
    let mut sock = tokio::net::TcpStream::connect(s.addr())
        .await
        .expect("connect");
    let path = "/big/k?X-Amz-Expires=604801";
    let head = signed_head(s.addr(), "PUT", path, &[], "4", &sha256_hex(b"body"));
    sock.write_all(format!("{head}body").as_bytes())
        .await
        .expect("write");
    let r = read_one(&mut sock).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body.contains("AuthorizationQueryParametersError"),
        "{r:?}"
    );
    assert_eq!(r.header("connection"), None, "{r:?}");
    sock.write_all(list.as_bytes()).await.expect("write list");
    let r = read_one(&mut sock).await;
    assert_eq!(r.status, 200, "{r:?}");
}
both_dbs!(refused_heads_end_or_keep_the_connection);

async fn virtual_hosted_style(s: &TestServer) {
    setup(s, "vhost").await;
    let host = format!("vhost.s3.example.test:{}", s.addr().port());
    let r = signed_raw(
        s.addr(),
        "GET",
        "/k",
        &[("host", host.as_str())],
        b"",
        &sha256_hex(b""),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "original");
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/via-host",
        &[("host", host.as_str())],
        b"vh",
        &sha256_hex(b"vh"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    body_is(s, "vhost", "via-host", b"vh").await;
    // Path style keeps working next to it.
    body_is(s, "vhost", "k", b"original").await;
}
both_dbs!(
    virtual_hosted_style,
    Options {
        domains: vec!["s3.example.test".to_owned()],
        ..Options::default()
    }
);

async fn any_region_by_default(s: &TestServer) {
    setup(s, "regions").await;
    let conf = s
        .client
        .config()
        .to_builder()
        .region(aws_sdk_s3::config::Region::new("eu-central-1"))
        .build();
    let other = aws_sdk_s3::Client::from_conf(conf);
    other
        .head_object()
        .bucket("regions")
        .key("k")
        .send()
        .await
        .expect("any region accepted");
}
both_dbs!(any_region_by_default);

async fn enforced_region(s: &TestServer) {
    setup(s, "regions").await;
    let conf = s
        .client
        .config()
        .to_builder()
        .region(aws_sdk_s3::config::Region::new("eu-central-1"))
        .build();
    let other = aws_sdk_s3::Client::from_conf(conf);
    let e = other
        .get_object()
        .bucket("regions")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AuthorizationHeaderMalformed");
}
both_dbs!(
    enforced_region,
    Options {
        enforce_region: true,
        ..Options::default()
    }
);
