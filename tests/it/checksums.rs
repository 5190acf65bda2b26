//! x-amz-checksum-*: all five algorithms from the SDK (header and aws-chunked trailer), wrong
//! and malformed values, the default CRC64NVME, ranged reads, multipart COMPOSITE and
//! FULL_OBJECT checksums.

use crate::common::*;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use just_storage::blobs::ChecksumAlgo;

const MIB: usize = 1 << 20;

fn b64(raw: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn sdk_algo(a: ChecksumAlgo) -> ChecksumAlgorithm {
    match a {
        ChecksumAlgo::Crc32 => ChecksumAlgorithm::Crc32,
        ChecksumAlgo::Crc32c => ChecksumAlgorithm::Crc32C,
        ChecksumAlgo::Crc64Nvme => ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgo::Sha1 => ChecksumAlgorithm::Sha1,
        ChecksumAlgo::Sha256 => ChecksumAlgorithm::Sha256,
    }
}

fn head_value(
    h: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
    a: ChecksumAlgo,
) -> Option<String> {
    match a {
        ChecksumAlgo::Crc32 => h.checksum_crc32(),
        ChecksumAlgo::Crc32c => h.checksum_crc32_c(),
        ChecksumAlgo::Crc64Nvme => h.checksum_crc64_nvme(),
        ChecksumAlgo::Sha1 => h.checksum_sha1(),
        ChecksumAlgo::Sha256 => h.checksum_sha256(),
    }
    .map(str::to_owned)
}

async fn head_checksum(
    s: &TestServer,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    s.client
        .head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head")
}

async fn all_algorithms_round_trip(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("sums")
        .send()
        .await
        .expect("bucket");
    let body = bytes(300_000, 77);
    let file = s.dir.path().join("body.bin");
    std::fs::write(&file, &body).expect("file");
    for algo in ChecksumAlgo::ALL {
        // A sized in-memory body goes as a header; a file body streams as aws-chunked with
        // the checksum in a trailer.
        for streamed in [false, true] {
            let key = format!("{}-{streamed}", algo.as_str());
            let stream = if streamed {
                ByteStream::from_path(&file).await.expect("file body")
            } else {
                ByteStream::from(body.clone())
            };
            let put = c
                .put_object()
                .bucket("sums")
                .key(&key)
                .checksum_algorithm(sdk_algo(algo))
                .body(stream)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}"));
            let want = b64(&algo.digest(&body));
            let h = head_checksum(s, "sums", &key).await;
            assert_eq!(head_value(&h, algo), Some(want.clone()), "{key}");
            assert_eq!(h.checksum_type(), Some(&ChecksumType::FullObject));
            let put_value = match algo {
                ChecksumAlgo::Crc32 => put.checksum_crc32(),
                ChecksumAlgo::Crc32c => put.checksum_crc32_c(),
                ChecksumAlgo::Crc64Nvme => put.checksum_crc64_nvme(),
                ChecksumAlgo::Sha1 => put.checksum_sha1(),
                ChecksumAlgo::Sha256 => put.checksum_sha256(),
            };
            assert_eq!(put_value, Some(want.as_str()), "{key}");
            // The SDK validates the returned checksum against the bytes it reads.
            let got = c
                .get_object()
                .bucket("sums")
                .key(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .expect("get")
                .body
                .collect()
                .await
                .expect("validated body")
                .into_bytes();
            assert!(got.as_ref() == body.as_slice(), "{key}");
        }
    }
    // No checksum asked for: S3's default CRC64NVME is stored and returned.
    let plain = s.client_with_checksums(RequestChecksumCalculation::WhenRequired);
    plain
        .put_object()
        .bucket("sums")
        .key("plain")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let h = head_checksum(s, "sums", "plain").await;
    assert_eq!(
        h.checksum_crc64_nvme(),
        Some(b64(&ChecksumAlgo::Crc64Nvme.digest(&body)).as_str())
    );
    // Without x-amz-checksum-mode no checksum is returned; a ranged GET never carries one.
    let h = c
        .head_object()
        .bucket("sums")
        .key("plain")
        .send()
        .await
        .expect("head");
    assert!(h.checksum_crc64_nvme().is_none());
    let out = c
        .get_object()
        .bucket("sums")
        .key("plain")
        .range("bytes=0-99")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("ranged");
    assert!(out.checksum_crc64_nvme().is_none());
    assert_eq!(
        out.body.collect().await.expect("body").into_bytes().len(),
        100
    );
}
both_dbs!(all_algorithms_round_trip);

async fn wrong_and_malformed_values(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("bad-sums")
        .send()
        .await
        .expect("bucket");
    c.put_object()
        .bucket("bad-sums")
        .key("k")
        .body(ByteStream::from_static(b"original"))
        .send()
        .await
        .expect("put");
    let wrong = c
        .put_object()
        .bucket("bad-sums")
        .key("k")
        .checksum_crc32(b64(&ChecksumAlgo::Crc32.digest(b"something else")))
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), "BadDigest");
    assert_eq!(status(&wrong), 400);
    let wrong = c
        .put_object()
        .bucket("bad-sums")
        .key("k")
        .checksum_sha256(b64(&ChecksumAlgo::Sha256.digest(b"something else")))
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), "BadDigest");
    let malformed = c
        .put_object()
        .bucket("bad-sums")
        .key("k")
        .checksum_crc32_c("not base64!")
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .unwrap_err();
    // Not a digest at all cannot match either (as the conformance suite expects of S3).
    assert_eq!(code(&malformed), "BadDigest");
    let got = c
        .get_object()
        .bucket("bad-sums")
        .key("k")
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
        b"original"
    );
    assert_eq!(
        std::fs::read_dir(s.data_dir().join("hot/tmp"))
            .expect("tmp")
            .count(),
        0
    );
}
both_dbs!(wrong_and_malformed_values);

/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` by hand: correct, wrong and missing trailers.
async fn hand_made_trailers(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("trailers")
        .send()
        .await
        .expect("bucket");
    let body = bytes(70_000, 5);
    let frame = |trailer: Option<String>| {
        let mut v = format!("{:x}\r\n", 65_536).into_bytes();
        v.extend_from_slice(&body[..65_536]);
        v.extend_from_slice(format!("\r\n{:x}\r\n", body.len() - 65_536).as_bytes());
        v.extend_from_slice(&body[65_536..]);
        v.extend_from_slice(b"\r\n0\r\n");
        if let Some(t) = trailer {
            v.extend_from_slice(format!("x-amz-checksum-crc32:{t}\r\n").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v
    };
    let len = body.len().to_string();
    let headers = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", len.as_str()),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
    ];
    let good = b64(&ChecksumAlgo::Crc32.digest(&body));
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/trailers/ok",
        &headers,
        &frame(Some(good.clone())),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = s
        .client
        .get_object()
        .bucket("trailers")
        .key("ok")
        .send()
        .await
        .expect("get");
    assert!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref()
            == body.as_slice(),
        "de-chunked bytes"
    );
    let h = head_checksum(s, "trailers", "ok").await;
    assert_eq!(h.checksum_crc32(), Some(good.as_str()));

    let bad = b64(&ChecksumAlgo::Crc32.digest(b"nope"));
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/trailers/ok",
        &headers,
        &frame(Some(bad)),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>BadDigest</Code>"), "{}", r.body);
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/trailers/missing",
        &headers,
        &frame(None),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    .await;
    assert!(r.status == 400, "{r:?}");
    let e = s
        .client
        .head_object()
        .bucket("trailers")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    // A truncated chunked body is a client error and leaves nothing behind.
    let mut cut = frame(Some(good));
    cut.truncate(30_000);
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/trailers/cut",
        &headers,
        &cut,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    .await;
    assert!((400..500).contains(&r.status), "{r:?}");
    let h = head_checksum(s, "trailers", "ok").await;
    assert_eq!(h.content_length(), Some(body.len() as i64));
    assert_eq!(
        std::fs::read_dir(s.data_dir().join("hot/tmp"))
            .expect("tmp")
            .count(),
        0
    );
}
both_dbs!(hand_made_trailers);

async fn multipart_checksums(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-sums")
        .send()
        .await
        .expect("bucket");
    let parts = [bytes(5 * MIB, 1), bytes(5 * MIB, 2), bytes(1234, 3)];
    let whole = parts.concat();
    for (algo, kind) in [
        (ChecksumAlgo::Crc32, None),
        (ChecksumAlgo::Crc32c, Some(ChecksumType::FullObject)),
        (ChecksumAlgo::Sha256, None),
        (ChecksumAlgo::Crc64Nvme, None),
    ] {
        let key = format!("{}-{kind:?}", algo.as_str());
        let id = c
            .create_multipart_upload()
            .bucket("mpu-sums")
            .key(&key)
            .checksum_algorithm(sdk_algo(algo))
            .set_checksum_type(kind.clone())
            .send()
            .await
            .expect("create")
            .upload_id
            .expect("id");
        let mut done = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let out = c
                .upload_part()
                .bucket("mpu-sums")
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .checksum_algorithm(sdk_algo(algo))
                .body(ByteStream::from(p.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key} part {n}: {e:?}"));
            let sum = b64(&algo.digest(p));
            let mut cp = CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("etag"));
            cp = match algo {
                ChecksumAlgo::Crc32 => cp.checksum_crc32(&sum),
                ChecksumAlgo::Crc32c => cp.checksum_crc32_c(&sum),
                ChecksumAlgo::Crc64Nvme => cp.checksum_crc64_nvme(&sum),
                ChecksumAlgo::Sha1 => cp.checksum_sha1(&sum),
                ChecksumAlgo::Sha256 => cp.checksum_sha256(&sum),
            };
            done.push(cp.build());
        }
        c.complete_multipart_upload()
            .bucket("mpu-sums")
            .key(&key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key} complete: {e:?}"));
        let h = head_checksum(s, "mpu-sums", &key).await;
        let full = algo == ChecksumAlgo::Crc64Nvme || kind.is_some();
        let want = if full {
            b64(&algo.digest(&whole))
        } else {
            let raw: Vec<u8> = parts.iter().flat_map(|p| algo.digest(p)).collect();
            format!("{}-3", b64(&algo.digest(&raw)))
        };
        assert_eq!(head_value(&h, algo), Some(want), "{key}");
        let want_type = if full {
            ChecksumType::FullObject
        } else {
            ChecksumType::Composite
        };
        assert_eq!(h.checksum_type(), Some(&want_type), "{key}");
        let got = c
            .get_object()
            .bucket("mpu-sums")
            .key(&key)
            .send()
            .await
            .expect("get");
        assert!(
            got.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .as_ref()
                == whole.as_slice()
        );
    }

    // A part checked with another algorithm than the upload's, and a wrong listed checksum.
    let id = c
        .create_multipart_upload()
        .bucket("mpu-sums")
        .key("strict")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create")
        .upload_id
        .expect("id");
    let e = c
        .upload_part()
        .bucket("mpu-sums")
        .key("strict")
        .upload_id(&id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    let out = c
        .upload_part()
        .bucket("mpu-sums")
        .key("strict")
        .upload_id(&id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    let listed = CompletedPart::builder()
        .part_number(1)
        .e_tag(out.e_tag().expect("etag"))
        .checksum_sha256(b64(&ChecksumAlgo::Sha256.digest(b"other")))
        .build();
    let e = c
        .complete_multipart_upload()
        .bucket("mpu-sums")
        .key("strict")
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(listed).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    assert_refcounts(s).await;
}
both_dbs!(multipart_checksums);

async fn both_calculation_modes(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("modes")
        .send()
        .await
        .expect("bucket");
    let body = bytes(6 * MIB + 5, 8);
    for mode in [
        RequestChecksumCalculation::WhenSupported,
        RequestChecksumCalculation::WhenRequired,
    ] {
        let c = s.client_with_checksums(mode);
        let key = format!("{mode:?}");
        c.put_object()
            .bucket("modes")
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
        let id = c
            .create_multipart_upload()
            .bucket("modes")
            .key(&key)
            .send()
            .await
            .expect("create")
            .upload_id
            .expect("id");
        let p1 = c
            .upload_part()
            .bucket("modes")
            .key(&key)
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(body[..5 * MIB].to_vec()))
            .send()
            .await
            .expect("p1");
        let p2 = c
            .upload_part()
            .bucket("modes")
            .key(&key)
            .upload_id(&id)
            .part_number(2)
            .body(ByteStream::from(body[5 * MIB..].to_vec()))
            .send()
            .await
            .expect("p2");
        let parts = vec![
            CompletedPart::builder()
                .part_number(1)
                .e_tag(p1.e_tag().expect("e1"))
                .build(),
            CompletedPart::builder()
                .part_number(2)
                .e_tag(p2.e_tag().expect("e2"))
                .build(),
        ];
        c.complete_multipart_upload()
            .bucket("modes")
            .key(&key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .expect("complete");
        let h = head_checksum(s, "modes", &key).await;
        assert_eq!(
            h.checksum_crc64_nvme(),
            Some(b64(&ChecksumAlgo::Crc64Nvme.digest(&body)).as_str()),
            "{key}"
        );
        let got = c
            .get_object()
            .bucket("modes")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        assert!(
            got.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .as_ref()
                == body.as_slice()
        );
    }
}
both_dbs!(both_calculation_modes);
