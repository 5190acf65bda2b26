//! Multipart uploads: round trip and ETag, partNumber reads, every error code, part
//! replacement, UploadPartCopy with ranges, abort, listings, reference counts, the stale-upload
//! worker.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;

const MIB: usize = 1 << 20;

pub(crate) async fn create(c: &Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-test")
        .metadata("origin", "multipart")
        .send()
        .await
        .expect("create upload")
        .upload_id
        .expect("upload id")
}

pub(crate) async fn part(
    c: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    n: i32,
    body: &[u8],
) -> String {
    c.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("part {n}: {e:?}"))
        .e_tag
        .expect("part etag")
}

pub(crate) fn done(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

fn multipart_etag(parts: &[&[u8]]) -> String {
    use md5::Digest;
    let mut h = md5::Md5::new();
    for p in parts {
        h.update(md5::Md5::digest(p));
    }
    format!("\"{}-{}\"", hex::encode(h.finalize()), parts.len())
}

async fn body_of(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn round_trip(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu")
        .send()
        .await
        .expect("bucket");
    let (a, b, z) = (bytes(5 * MIB, 1), bytes(5 * MIB + 7, 2), bytes(1000, 3));
    let id = create(c, "mpu", "obj").await;
    let ea = part(c, "mpu", "obj", &id, 1, &a).await;
    let eb = part(c, "mpu", "obj", &id, 2, &b).await;
    let ez = part(c, "mpu", "obj", &id, 3, &z).await;
    assert_eq!(ea, format!("\"{}\"", md5_hex(&a)));
    let out = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .multipart_upload(done(&[(1, &ea), (2, &eb), (3, &ez)]))
        .send()
        .await
        .expect("complete");
    let want_etag = multipart_etag(&[&a, &b, &z]);
    assert_eq!(out.e_tag(), Some(want_etag.as_str()));
    let whole: Vec<u8> = [a.clone(), b.clone(), z.clone()].concat();
    let got = body_of(
        c.get_object()
            .bucket("mpu")
            .key("obj")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert!(got == whole, "bytes identical");

    let h = c
        .head_object()
        .bucket("mpu")
        .key("obj")
        .send()
        .await
        .expect("head");
    assert_eq!(h.e_tag(), Some(want_etag.as_str()));
    assert_eq!(h.content_type(), Some("application/x-test"));
    assert_eq!(
        h.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("multipart")
    );
    assert_eq!(h.content_length(), Some(whole.len() as i64));

    // partNumber reads.
    let h = c
        .head_object()
        .bucket("mpu")
        .key("obj")
        .part_number(2)
        .send()
        .await
        .expect("head part");
    assert_eq!(h.content_length(), Some(b.len() as i64));
    assert_eq!(h.parts_count(), Some(3));
    let got = body_of(
        c.get_object()
            .bucket("mpu")
            .key("obj")
            .part_number(3)
            .send()
            .await
            .expect("get part"),
    )
    .await;
    assert!(got == z, "part 3: got {} bytes", got.len());
    let e = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .part_number(4)
        .send()
        .await
        .unwrap_err();
    // S3 (ceph/s3-tests test_multipart_get_part): 400 InvalidPart, not 416.
    assert_eq!(status(&e), 400);
    assert_eq!(code(&e), "InvalidPart");

    // A range across the part boundary.
    let lo = 5 * MIB - 10;
    let hi = 5 * MIB + 10;
    let out = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .range(format!("bytes={lo}-{}", hi - 1))
        .send()
        .await
        .expect("range");
    assert!(body_of(out).await == whole[lo..hi], "range across parts");

    // The upload is gone; parts' references moved to the object.
    let e = c
        .list_parts()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    assert_refcounts(s).await;
    // Overwriting the object releases every segment.
    c.put_object()
        .bucket("mpu")
        .key("obj")
        .body(ByteStream::from_static(b"small"))
        .send()
        .await
        .expect("put");
    assert_refcounts(s).await;
    assert_eq!(s.gc(0).await.blobs_removed, 3);
}
both_dbs!(round_trip);

async fn errors(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-err")
        .send()
        .await
        .expect("bucket");
    let e = c
        .upload_part()
        .bucket("mpu-err")
        .key("k")
        .upload_id("nope")
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let e = c
        .complete_multipart_upload()
        .bucket("mpu-err")
        .key("k")
        .upload_id("nope")
        .multipart_upload(done(&[(1, "\"x\"")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let e = c
        .abort_multipart_upload()
        .bucket("mpu-err")
        .key("k")
        .upload_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    let id = create(c, "mpu-err", "k").await;
    // The upload belongs to its key.
    let e = c
        .upload_part()
        .bucket("mpu-err")
        .key("other")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    for n in [0, 10_001] {
        let e = c
            .upload_part()
            .bucket("mpu-err")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidArgument", "part {n}");
    }
    let small = bytes(1000, 5);
    let big = bytes(5 * MIB, 6);
    let e1 = part(c, "mpu-err", "k", &id, 1, &small).await;
    let e2 = part(c, "mpu-err", "k", &id, 2, &big).await;
    let e3 = part(c, "mpu-err", "k", &id, 3, &small).await;
    let complete = |parts: CompletedMultipartUpload| {
        c.complete_multipart_upload()
            .bucket("mpu-err")
            .key("k")
            .upload_id(&id)
            .multipart_upload(parts)
            .send()
    };
    let e = complete(done(&[(2, &e2), (1, &e1)])).await.unwrap_err();
    assert_eq!(code(&e), "InvalidPartOrder");
    let e = complete(done(&[(1, &e1), (2, &e2)])).await.unwrap_err();
    assert_eq!(code(&e), "EntityTooSmall");
    let e = complete(done(&[(2, &e2), (4, &e3)])).await.unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(done(&[
        (2, &e2),
        (3, "\"0123456789abcdef0123456789abcdef\""),
    ]))
    .await
    .unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(done(&[])).await.unwrap_err();
    assert_eq!(code(&e), "MalformedXML");
    // None of the failures consumed the upload; a valid list completes it, dropping part 1.
    complete(done(&[(2, &e2), (3, &e3)]))
        .await
        .expect("complete");
    let got = body_of(
        c.get_object()
            .bucket("mpu-err")
            .key("k")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert!(got == [big.clone(), small.clone()].concat());
    assert_refcounts(s).await;
    // Part 1's blob was released at completion.
    assert_eq!(
        s.gc(0).await.blobs_removed,
        0,
        "part 1 has the same bytes as part 3"
    );
    // The same list again is a retry (S3 answers it again); another list finds no upload.
    complete(done(&[(2, &e2), (3, &e3)]))
        .await
        .expect("retried complete");
    let e = complete(done(&[(1, &e1), (3, &e3)])).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
}
both_dbs!(errors);

async fn part_replacement_and_races(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-race")
        .send()
        .await
        .expect("bucket");
    let id = create(c, "mpu-race", "k").await;
    part(c, "mpu-race", "k", &id, 1, &bytes(MIB, 10)).await;
    let last = part(c, "mpu-race", "k", &id, 1, &bytes(MIB, 11)).await;
    assert_refcounts(s).await;
    let parts = c
        .list_parts()
        .bucket("mpu-race")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("list");
    assert_eq!(parts.parts().len(), 1);
    assert_eq!(parts.parts()[0].e_tag(), Some(last.as_str()));

    // Eight concurrent uploads of part 2: exactly one winner, no leaked reference.
    let results: Vec<String> = futures::stream::iter(0..8u64)
        .map(|i| {
            let c = c.clone();
            let id = id.clone();
            async move { part(&c, "mpu-race", "k", &id, 2, &bytes(MIB, 100 + i)).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let parts = c
        .list_parts()
        .bucket("mpu-race")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("list");
    assert_eq!(parts.parts().len(), 2);
    let winner = parts.parts()[1].e_tag().expect("etag").to_owned();
    assert!(results.contains(&winner));
    assert_refcounts(s).await;
    assert_eq!(
        s.gc(0).await.blobs_removed,
        8,
        "the first part 1 and seven losing part 2s"
    );

    // Abort releases everything.
    c.abort_multipart_upload()
        .bucket("mpu-race")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    assert_refcounts(s).await;
    assert_eq!(s.gc(0).await.blobs_removed, 2);
    assert!(blob_files(&s.data_dir().join("hot")).is_empty());
    let e = c
        .list_parts()
        .bucket("mpu-race")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
}
both_dbs!(part_replacement_and_races);

async fn upload_part_copy(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-copy")
        .send()
        .await
        .expect("bucket");
    let src = bytes(12 * MIB + 3, 20);
    c.put_object()
        .bucket("mpu-copy")
        .key("src")
        .body(ByteStream::from(src.clone()))
        .send()
        .await
        .expect("put");
    let id = create(c, "mpu-copy", "dst").await;
    let mut etags = Vec::new();
    for (n, (lo, hi)) in [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, src.len())]
        .into_iter()
        .enumerate()
    {
        let out = c
            .upload_part_copy()
            .bucket("mpu-copy")
            .key("dst")
            .upload_id(&id)
            .part_number(n as i32 + 1)
            .copy_source("mpu-copy/src")
            .copy_source_range(format!("bytes={lo}-{}", hi - 1))
            .send()
            .await
            .expect("upload part copy");
        let etag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .expect("etag")
            .to_owned();
        assert_eq!(etag, format!("\"{}\"", md5_hex(&src[lo..hi])));
        etags.push(etag);
    }
    // Whole-source copy as a part, and out-of-range / malformed ranges.
    let whole_id = create(c, "mpu-copy", "whole").await;
    c.upload_part_copy()
        .bucket("mpu-copy")
        .key("whole")
        .upload_id(&whole_id)
        .part_number(1)
        .copy_source("mpu-copy/src")
        .send()
        .await
        .expect("whole copy");
    let e = c
        .upload_part_copy()
        .bucket("mpu-copy")
        .key("whole")
        .upload_id(&whole_id)
        .part_number(2)
        .copy_source("mpu-copy/src")
        .copy_source_range(format!("bytes=0-{}", src.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRange");
    let e = c
        .upload_part_copy()
        .bucket("mpu-copy")
        .key("whole")
        .upload_id(&whole_id)
        .part_number(2)
        .copy_source("mpu-copy/src")
        .copy_source_range("bytes=9-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let e = c
        .upload_part_copy()
        .bucket("mpu-copy")
        .key("whole")
        .upload_id(&whole_id)
        .part_number(2)
        .copy_source("mpu-copy/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");

    let parts: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    c.complete_multipart_upload()
        .bucket("mpu-copy")
        .key("dst")
        .upload_id(&id)
        .multipart_upload(done(&parts))
        .send()
        .await
        .expect("complete");
    let got = body_of(
        c.get_object()
            .bucket("mpu-copy")
            .key("dst")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert!(got == src, "copied bytes identical");
    assert_refcounts(s).await;
}
both_dbs!(upload_part_copy);

async fn listings(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-list")
        .send()
        .await
        .expect("bucket");
    let id = create(c, "mpu-list", "parts").await;
    for n in 1..=5 {
        part(
            c,
            "mpu-list",
            "parts",
            &id,
            n,
            format!("part {n}").as_bytes(),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut marker = None;
    for _ in 0..10 {
        let out = c
            .list_parts()
            .bucket("mpu-list")
            .key("parts")
            .upload_id(&id)
            .max_parts(2)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .expect("list parts");
        seen.extend(out.parts().iter().filter_map(|p| p.part_number()));
        for p in out.parts() {
            assert_eq!(p.size(), Some(6));
        }
        if !out.is_truncated().unwrap_or(false) {
            break;
        }
        marker = out.next_part_number_marker().map(str::to_owned);
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);

    let mut ids = std::collections::BTreeMap::new();
    for key in ["a/1", "a/2", "a/2", "b", "c/x/y"] {
        ids.entry(key)
            .or_insert_with(Vec::new)
            .push(create(c, "mpu-list", key).await);
    }
    let all = c
        .list_multipart_uploads()
        .bucket("mpu-list")
        .send()
        .await
        .expect("list uploads");
    let keys: Vec<&str> = all.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, ["a/1", "a/2", "a/2", "b", "c/x/y", "parts"]);

    let out = c
        .list_multipart_uploads()
        .bucket("mpu-list")
        .delimiter("/")
        .send()
        .await
        .expect("delim");
    let keys: Vec<&str> = out.uploads().iter().filter_map(|u| u.key()).collect();
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["b", "parts"]);
    assert_eq!(prefixes, ["a/", "c/"]);

    let out = c
        .list_multipart_uploads()
        .bucket("mpu-list")
        .prefix("a/")
        .send()
        .await
        .expect("prefix");
    assert_eq!(out.uploads().len(), 3);

    // Paging with key-marker + upload-id-marker visits each upload once.
    let mut got = Vec::new();
    let (mut km, mut um) = (None::<String>, None::<String>);
    for _ in 0..10 {
        let out = c
            .list_multipart_uploads()
            .bucket("mpu-list")
            .max_uploads(2)
            .set_key_marker(km.clone())
            .set_upload_id_marker(um.clone())
            .send()
            .await
            .expect("page");
        got.extend(out.uploads().iter().map(|u| {
            (
                u.key().unwrap_or_default().to_owned(),
                u.upload_id().unwrap_or_default().to_owned(),
            )
        }));
        if !out.is_truncated().unwrap_or(false) {
            break;
        }
        km = out.next_key_marker().map(str::to_owned);
        um = out.next_upload_id_marker().map(str::to_owned);
    }
    assert_eq!(got.len(), 6);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(dedup, got);
    // key-marker alone skips every upload of that key.
    let out = c
        .list_multipart_uploads()
        .bucket("mpu-list")
        .key_marker("a/2")
        .send()
        .await
        .expect("km");
    let keys: Vec<&str> = out.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, ["b", "c/x/y", "parts"]);
}
both_dbs!(listings);

async fn abandoned_uploads_are_aborted(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-old")
        .send()
        .await
        .expect("bucket");
    let id = create(c, "mpu-old", "k").await;
    part(c, "mpu-old", "k", &id, 1, &bytes(MIB, 1)).await;
    let r = s.gc(0).await;
    assert_eq!(r.uploads_aborted, 1);
    assert_eq!(
        r.blobs_removed, 1,
        "the aborted part's blob is collected in the same run"
    );
    let e = c
        .list_parts()
        .bucket("mpu-old")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    assert_refcounts(s).await;
}
both_dbs!(
    abandoned_uploads_are_aborted,
    Options {
        upload_max_age_secs: 0,
        ..Options::default()
    }
);

/// S3 deletes a bucket's incomplete uploads with it: DeleteBucket succeeds, the parts' blob
/// references are released (a body shared with another bucket's object stays), and a bucket
/// that still holds an object keeps both its object and its uploads.
async fn delete_bucket_with_open_uploads(s: &TestServer) {
    let c = &s.client;
    for b in ["mpu-del", "mpu-keep"] {
        c.create_bucket().bucket(b).send().await.expect("bucket");
    }
    let shared = bytes(MIB, 7);
    c.put_object()
        .bucket("mpu-keep")
        .key("shared")
        .body(ByteStream::from(shared.clone()))
        .send()
        .await
        .expect("put shared");
    let a = create(c, "mpu-del", "a").await;
    part(c, "mpu-del", "a", &a, 1, &bytes(MIB, 8)).await;
    part(c, "mpu-del", "a", &a, 2, &shared).await;
    let b = create(c, "mpu-del", "b").await;
    part(c, "mpu-del", "b", &b, 1, &bytes(MIB, 9)).await;
    let keep = create(c, "mpu-keep", "k").await;
    part(c, "mpu-keep", "k", &keep, 1, &bytes(MIB, 10)).await;

    let e = c
        .delete_bucket()
        .bucket("mpu-keep")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    c.delete_bucket()
        .bucket("mpu-del")
        .send()
        .await
        .expect("DeleteBucket with open uploads");
    let e = c.head_bucket().bucket("mpu-del").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    assert_refcounts(s).await;
    let r = s.gc(0).await;
    assert_eq!(
        r.blobs_removed, 2,
        "the two parts only the deleted bucket held"
    );
    let parts = c
        .list_parts()
        .bucket("mpu-keep")
        .key("k")
        .upload_id(&keep)
        .send()
        .await
        .expect("the other bucket's upload survives");
    assert_eq!(parts.parts().len(), 1);
    let got = c
        .get_object()
        .bucket("mpu-keep")
        .key("shared")
        .send()
        .await
        .expect("shared body still readable");
    assert_eq!(body_of(got).await, shared);
    // The name is free again, and the new bucket has no uploads.
    c.create_bucket()
        .bucket("mpu-del")
        .send()
        .await
        .expect("re-create");
    let ups = c
        .list_multipart_uploads()
        .bucket("mpu-del")
        .send()
        .await
        .expect("list uploads");
    assert!(ups.uploads().is_empty());
    assert_refcounts(s).await;
}
both_dbs!(delete_bucket_with_open_uploads);

/// A retried CompleteMultipartUpload (its first answer lost) gets the same answer while the
/// version it made is current; once that version is replaced, the upload is simply gone.
async fn complete_retried(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-retry")
        .send()
        .await
        .expect("bucket");
    let id = create(c, "mpu-retry", "k").await;
    let e1 = part(c, "mpu-retry", "k", &id, 1, b"only part").await;
    let complete = || {
        c.complete_multipart_upload()
            .bucket("mpu-retry")
            .key("k")
            .upload_id(&id)
            .multipart_upload(done(&[(1, e1.as_str())]))
            .send()
    };
    let first = complete().await.expect("complete");
    let again = complete().await.expect("retried complete");
    assert_eq!(first.e_tag(), again.e_tag());
    assert_eq!(
        first.e_tag(),
        Some(multipart_etag(&[b"only part"]).as_str())
    );
    c.put_object()
        .bucket("mpu-retry")
        .key("k")
        .body(ByteStream::from_static(b"newer"))
        .send()
        .await
        .expect("overwrite");
    let e = complete().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    assert_refcounts(s).await;
}
both_dbs!(complete_retried);

/// GetObjectAttributes' ObjectParts pages through a multipart version's parts (numbered as
/// uploaded, with their checksums), and a `?partNumber=` GET returns that part's checksum.
async fn object_parts_and_part_checksums(s: &TestServer) {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, ObjectAttributes};
    use base64::Engine as _;
    let sha = |b: &[u8]| {
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b))
    };
    let c = &s.client;
    c.create_bucket()
        .bucket("mpu-parts")
        .send()
        .await
        .expect("bucket");
    let id = c
        .create_multipart_upload()
        .bucket("mpu-parts")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create")
        .upload_id
        .expect("id");
    let bodies = [
        (1, bytes(5 * MIB, 1)),
        (3, bytes(5 * MIB, 3)),
        (5, bytes(1000, 5)),
    ];
    let mut listed = Vec::new();
    for (n, body) in &bodies {
        let out = c
            .upload_part()
            .bucket("mpu-parts")
            .key("k")
            .upload_id(&id)
            .part_number(*n)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("part");
        assert_eq!(out.checksum_sha256(), Some(sha(body).as_str()));
        listed.push(
            CompletedPart::builder()
                .part_number(*n)
                .e_tag(out.e_tag.expect("etag"))
                .checksum_sha256(sha(body))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("mpu-parts")
        .key("k")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(listed))
                .build(),
        )
        .send()
        .await
        .expect("complete");

    let page = |marker: Option<i32>| {
        c.get_object_attributes()
            .bucket("mpu-parts")
            .key("k")
            .object_attributes(ObjectAttributes::ObjectParts)
            .max_parts(2)
            .set_part_number_marker(marker.map(|m| m.to_string()))
            .send()
    };
    let first = page(None).await.expect("attributes");
    let parts = first.object_parts().expect("object parts");
    assert_eq!(parts.total_parts_count(), Some(3));
    assert_eq!(parts.is_truncated(), Some(true));
    assert_eq!(parts.next_part_number_marker(), Some("3"));
    let got: Vec<(Option<i32>, Option<i64>, Option<&str>)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size(), p.checksum_sha256()))
        .collect();
    let (s1, s3) = (sha(&bodies[0].1), sha(&bodies[1].1));
    let mib5 = Some(5 * MIB as i64);
    assert_eq!(
        got,
        [
            (Some(1), mib5, Some(s1.as_str())),
            (Some(3), mib5, Some(s3.as_str()))
        ]
    );
    let second = page(Some(3)).await.expect("second page");
    let parts = second.object_parts().expect("object parts");
    assert_eq!(parts.is_truncated(), Some(false));
    let numbers: Vec<Option<i32>> = parts.parts().iter().map(|p| p.part_number()).collect();
    assert_eq!(numbers, [Some(5)]);

    // partNumber reads by position: the second part is the one uploaded as 3.
    let part = c
        .get_object()
        .bucket("mpu-parts")
        .key("k")
        .part_number(2)
        .send()
        .await
        .expect("part 2");
    assert_eq!(part.checksum_sha256(), Some(s3.as_str()));
    assert_eq!(part.checksum_type(), Some(&ChecksumType::Composite));
    assert_eq!(part.parts_count(), Some(3));
    assert_eq!(body_of(part).await, bodies[1].1);
}
both_dbs!(object_parts_and_part_checksums);
