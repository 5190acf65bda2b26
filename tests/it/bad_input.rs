//! Requests a bad-input probe found mishandled, each answered as S3 answers it while nothing
//! stored changes: SSE headers (not built: 501), Range on HEAD and unusable Range headers,
//! out-of-range partNumber, and XML bodies whose Content-MD5 or x-amz-checksum-* is wrong.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

const SSE_KEY: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
const SSE_KEY_MD5: &str = "DWygnHRtgiJ77HCm+1rvHw==";

async fn bucket_with(s: &TestServer, bucket: &str, key: &str, body: &'static [u8]) {
    s.client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
    s.client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .expect("put");
}

fn not_implemented<E>(e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    assert_eq!(status(e), 501, "{e:?}");
    assert_eq!(code(e), "NotImplemented");
}

/// Every SSE request header is refused with 501 before anything is stored: PUT (SSE-S3,
/// SSE-KMS, SSE-C), CopyObject (target and copy-source SSE-C), CreateMultipartUpload,
/// UploadPart, GET and HEAD with an SSE-C key.
async fn sse_is_refused(s: &TestServer) {
    bucket_with(s, "sse", "plain", b"plain").await;
    let c = &s.client;
    let put = || {
        c.put_object()
            .bucket("sse")
            .key("k")
            .body(ByteStream::from_static(b"secret"))
    };
    not_implemented(
        &put()
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .unwrap_err(),
    );
    not_implemented(
        &put()
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id("k1")
            .send()
            .await
            .unwrap_err(),
    );
    not_implemented(
        &put()
            .sse_customer_algorithm("AES256")
            .sse_customer_key(SSE_KEY)
            .sse_customer_key_md5(SSE_KEY_MD5)
            .send()
            .await
            .unwrap_err(),
    );
    let e = c
        .copy_object()
        .bucket("sse")
        .key("copy")
        .copy_source("sse/plain")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap_err();
    not_implemented(&e);
    let e = c
        .copy_object()
        .bucket("sse")
        .key("copy")
        .copy_source("sse/plain")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(SSE_KEY)
        .copy_source_sse_customer_key_md5(SSE_KEY_MD5)
        .send()
        .await
        .unwrap_err();
    not_implemented(&e);
    let e = c
        .create_multipart_upload()
        .bucket("sse")
        .key("mpu")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap_err();
    not_implemented(&e);
    let id = c
        .create_multipart_upload()
        .bucket("sse")
        .key("mpu")
        .send()
        .await
        .expect("create upload")
        .upload_id
        .expect("id");
    let e = c
        .upload_part()
        .bucket("sse")
        .key("mpu")
        .upload_id(&id)
        .part_number(1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(SSE_KEY)
        .sse_customer_key_md5(SSE_KEY_MD5)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap_err();
    not_implemented(&e);
    let parts = c
        .list_parts()
        .bucket("sse")
        .key("mpu")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert!(parts.parts().is_empty(), "no part stored");
    let e = c
        .get_object()
        .bucket("sse")
        .key("plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(SSE_KEY)
        .sse_customer_key_md5(SSE_KEY_MD5)
        .send()
        .await
        .unwrap_err();
    not_implemented(&e);
    let e = c
        .head_object()
        .bucket("sse")
        .key("plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(SSE_KEY)
        .sse_customer_key_md5(SSE_KEY_MD5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 501, "{e:?}");
    let listed = c
        .list_objects_v2()
        .bucket("sse")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["plain"], "nothing but the plain object stored");
}
both_dbs!(sse_is_refused);

/// HEAD honours Range as GET does (206 and Content-Range; 416 when unsatisfiable), and a
/// partNumber the object does not have is 400 InvalidPart on GET and HEAD (S3, and ceph's
/// test_non_multipart_get_part / test_multipart_get_part); one outside 1..=10000 is
/// InvalidArgument.
async fn head_range_and_part_numbers(s: &TestServer) {
    bucket_with(s, "hrange", "k", b"0123456789").await;
    let c = &s.client;
    let out = c
        .head_object()
        .bucket("hrange")
        .key("k")
        .range("bytes=0-0")
        .send()
        .await
        .expect("ranged head");
    assert_eq!(out.content_length(), Some(1));
    assert_eq!(out.content_range(), Some("bytes 0-0/10"));
    let raw = signed_raw(
        s.addr(),
        "HEAD",
        "/hrange/k",
        &[("range", "bytes=2-")],
        b"",
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert_eq!(raw.status, 206, "{raw:?}");
    assert_eq!(raw.header("content-range"), Some("bytes 2-9/10"));
    assert_eq!(raw.header("content-length"), Some("8"));
    let e = c
        .head_object()
        .bucket("hrange")
        .key("k")
        .range("bytes=10-20")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 416, "{e:?}");

    // A single-part object has part 1 (the whole object) and no other.
    let got = c
        .get_object()
        .bucket("hrange")
        .key("k")
        .part_number(1)
        .send()
        .await
        .expect("part 1");
    assert_eq!(got.content_length(), Some(10));
    for n in [2, 10_000] {
        let e = c
            .get_object()
            .bucket("hrange")
            .key("k")
            .part_number(n)
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidPart"), "{n}");
        let e = c
            .head_object()
            .bucket("hrange")
            .key("k")
            .part_number(n)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 400, "HEAD part {n}: {e:?}");
    }
    for n in [0, 10_001] {
        let e = c
            .get_object()
            .bucket("hrange")
            .key("k")
            .part_number(n)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&e), code(&e).as_str()),
            (400, "InvalidArgument"),
            "{n}"
        );
    }
}
both_dbs!(head_range_and_part_numbers);

/// A Range header S3 cannot use (reversed, not bytes, several ranges) is ignored: 200 and the
/// whole object, for GET and HEAD, signed in the header or presigned; the signature still
/// counts (anonymous: 403), and a usable range still reads its bytes.
async fn unusable_ranges_are_ignored(s: &TestServer) {
    bucket_with(s, "irange", "k", b"0123456789").await;
    let c = &s.client;
    for bad in ["bytes=5-2", "bytes=abc", "bytes=0-1,3-4", "items=0-1"] {
        let out = c
            .get_object()
            .bucket("irange")
            .key("k")
            .range(bad)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{bad}: {e:?}"));
        assert_eq!(out.content_range(), None, "{bad}");
        let got = out.body.collect().await.expect("body").into_bytes();
        assert_eq!(&got[..], b"0123456789", "{bad}");
        let r = signed_raw(
            s.addr(),
            "HEAD",
            "/irange/k",
            &[("range", bad)],
            b"",
            "UNSIGNED-PAYLOAD",
        )
        .await;
        assert_eq!(r.status, 200, "HEAD {bad}: {r:?}");
        assert_eq!(r.header("content-length"), Some("10"), "HEAD {bad}");
    }
    let presigned = c
        .get_object()
        .bucket("irange")
        .key("k")
        .range("bytes=9-1")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                600,
            ))
            .expect("config"),
        )
        .await
        .expect("presign");
    let path = presigned
        .uri()
        .split_once(&s.addr().to_string())
        .map(|(_, p)| p.to_owned())
        .expect("url on server");
    let mut req = format!("GET {path} HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in presigned.headers() {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !presigned
        .headers()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        req.push_str(&format!("host: {}\r\n", s.addr()));
    }
    req.push_str("\r\n");
    let r = raw(s.addr(), req.as_bytes()).await;
    assert_eq!(r.status, 200, "presigned: {r:?}");
    assert_eq!(r.body, "0123456789");

    let anon = format!(
        "GET /irange/k HTTP/1.1\r\nhost: {}\r\nrange: bytes=5-2\r\nconnection: close\r\n\r\n",
        s.addr()
    );
    let r = raw(s.addr(), anon.as_bytes()).await;
    assert_eq!(r.status, 403, "anonymous: {r:?}");

    let out = c
        .get_object()
        .bucket("irange")
        .key("k")
        .range("bytes=2-4")
        .send()
        .await
        .expect("usable range");
    assert_eq!(out.content_range(), Some("bytes 2-4/10"));
    let got = out.body.collect().await.expect("body").into_bytes();
    assert_eq!(&got[..], b"234");
}
both_dbs!(unusable_ranges_are_ignored);

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn md5_b64(b: &[u8]) -> String {
    use md5::Digest;
    b64(&md5::Md5::digest(b))
}

/// XML bodies are verified against Content-MD5 and x-amz-checksum-* before they are acted on:
/// a mismatch is 400 BadDigest, a malformed MD5 400 InvalidDigest, and nothing changes; the
/// right digest acts.
async fn xml_bodies_are_verified(s: &TestServer) {
    bucket_with(s, "xdigest", "k", b"kept").await;
    let c = &s.client;
    let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: &'static [u8]| {
        let addr = s.addr();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            signed_raw(addr, "POST", path, &h, body, "UNSIGNED-PAYLOAD").await
        }
    };
    let delete: &[u8] = b"<Delete><Object><Key>k</Key></Object></Delete>";
    let other_md5 = md5_b64(b"something else");
    let r = post("/xdigest?delete", vec![("content-md5", other_md5)], delete).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>BadDigest</Code>"), "{}", r.body);
    assert!(r.body.contains("<RequestId>"), "{}", r.body);
    let r = post(
        "/xdigest?delete",
        vec![("content-md5", "bm90LW1kNQ==".into())],
        delete,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>InvalidDigest</Code>"), "{}", r.body);
    let crc = b64(&[0, 0, 0, 0]);
    let r = post(
        "/xdigest?delete",
        vec![("x-amz-checksum-crc32", crc)],
        delete,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>BadDigest</Code>"), "{}", r.body);
    c.head_object()
        .bucket("xdigest")
        .key("k")
        .send()
        .await
        .expect("the key survives refused deletes");

    // PutObjectTagging with a wrong checksum leaves the tags as they were.
    let tagging: &'static [u8] =
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>";
    let bad = b64(&[1, 2, 3, 4]);
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/xdigest/k?tagging",
        &[("x-amz-checksum-crc32c", bad.as_str())],
        tagging,
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>BadDigest</Code>"), "{}", r.body);
    let tags = c
        .get_object_tagging()
        .bucket("xdigest")
        .key("k")
        .send()
        .await
        .expect("tags");
    assert!(tags.tag_set().is_empty(), "tags unchanged");

    // CompleteMultipartUpload: a wrong Content-MD5 leaves the upload open.
    let id = c
        .create_multipart_upload()
        .bucket("xdigest")
        .key("mpu")
        .send()
        .await
        .expect("create")
        .upload_id
        .expect("id");
    let etag = c
        .upload_part()
        .bucket("xdigest")
        .key("mpu")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .expect("part")
        .e_tag
        .expect("etag");
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>\
         </CompleteMultipartUpload>"
    );
    let path = format!("/xdigest/mpu?uploadId={id}");
    let wrong = md5_b64(b"nope");
    let r = signed_raw(
        s.addr(),
        "POST",
        &path,
        &[("content-md5", wrong.as_str())],
        complete.as_bytes(),
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>BadDigest</Code>"), "{}", r.body);
    let parts = c
        .list_parts()
        .bucket("xdigest")
        .key("mpu")
        .upload_id(&id)
        .send()
        .await
        .expect("the upload is still open");
    assert_eq!(parts.parts().len(), 1);
    let right = md5_b64(complete.as_bytes());
    let r = signed_raw(
        s.addr(),
        "POST",
        &path,
        &[("content-md5", right.as_str())],
        complete.as_bytes(),
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // The right digests act (the SDK sends its own checksum on DeleteObjects too).
    let r = post(
        "/xdigest?delete",
        vec![("content-md5", md5_b64(delete))],
        delete,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let e = c
        .head_object()
        .bucket("xdigest")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    c.put_object_tagging()
        .bucket("xdigest")
        .key("mpu")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("a")
                        .value("b")
                        .build()
                        .expect("tag"),
                )
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("SDK PutObjectTagging with its checksum");
}
both_dbs!(xml_bodies_are_verified);
