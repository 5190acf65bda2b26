//! The scrubber finds a flipped byte and GET refuses the object (HEAD still answers); a blob
//! file cut short is never served short; fsck finds
//! rows without files, files without rows and wrong reference counts, and repairs them.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use just_storage::blobs::Tier;
use just_storage::meta::{BlobId, BlobRepair};
use std::time::Duration;

async fn put(s: &TestServer, key: &str, body: &[u8]) {
    s.client
        .put_object()
        .bucket("integrity")
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("put");
}

async fn scrub_finds_a_flipped_byte(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("integrity")
        .send()
        .await
        .expect("bucket");
    let good = bytes(1 << 20, 1);
    let bad = bytes(1 << 20, 2);
    put(s, "good", &good).await;
    put(s, "bad", &bad).await;
    let r = just_storage::workers::scrub_once(s.engine(), 0, 100)
        .await
        .expect("scrub");
    assert_eq!((r.checked, r.corrupted), (2, 0));

    let path = s
        .data_dir()
        .join("hot/sha256")
        .join(&sha256_hex(&bad)[..2])
        .join(sha256_hex(&bad));
    let mut data = std::fs::read(&path).expect("blob file");
    data[12345] ^= 0x01;
    std::fs::write(&path, &data).expect("flip");

    let r = just_storage::workers::scrub_once(s.engine(), 0, 100)
        .await
        .expect("scrub");
    assert_eq!((r.checked, r.corrupted), (2, 1));
    let e = s
        .client
        .get_object()
        .bucket("integrity")
        .key("bad")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 500);
    assert_eq!(code(&e), "InternalError");
    // ...loudly: logged, and counted on /metrics (per-bucket gauges for a token holder).
    let (_, token) = (s.engine())
        .create_admin_token("scraper", just_storage::engine::TokenScope::Metrics)
        .await
        .expect("token");
    let req = format!(
        "GET /metrics HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
         connection: close\r\n\r\n",
        s.addr()
    );
    let m = raw(s.addr(), req.as_bytes()).await;
    assert_eq!(m.status, 200);
    let corrupted: u64 = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("juststorage_corrupted_reads_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("corrupted reads counter");
    assert!(corrupted >= 1, "{}", m.body);
    assert!(
        m.body
            .contains("juststorage_requests_total{operation=\"GetObject\",status=\"500\"}"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("juststorage_bucket_objects{tenant=\"root\",bucket=\"integrity\"} 2"),
        "{}",
        m.body
    );
    let h = s
        .client
        .head_object()
        .bucket("integrity")
        .key("bad")
        .send()
        .await
        .expect("HEAD answers");
    assert_eq!(h.content_length(), Some(bad.len() as i64));
    let got = s
        .client
        .get_object()
        .bucket("integrity")
        .key("good")
        .send()
        .await
        .expect("get good");
    assert!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref()
            == good.as_slice()
    );
    // A corrupted blob is not scrubbed again.
    let r = just_storage::workers::scrub_once(s.engine(), 0, 100)
        .await
        .expect("scrub");
    assert_eq!((r.checked, r.corrupted), (1, 0));
}
both_dbs!(scrub_finds_a_flipped_byte);

/// A blob file cut short on disk (here by an unaligned amount) is never served as a short
/// object: a GET fails before its body ends, through the page cache (1 MiB) and through
/// `O_DIRECT` (12 MiB: reads of 8 MiB or more); a range inside what is left still reads; the
/// scrubber marks both corrupted.
async fn a_short_blob_file_is_never_served_short(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("integrity")
        .send()
        .await
        .expect("bucket");
    // The SDK would check the body against the stored CRC and fail a wrong one itself: turned
    // off, so that only the server's own check can fail the GET.
    let conf = s.client.config().to_builder();
    let unchecked = aws_sdk_s3::Client::from_conf(
        conf.response_checksum_validation(
            aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
        )
        .build(),
    );
    let sizes = [("cached", 1usize << 20), ("direct", 12 << 20)];
    for (key, len) in sizes {
        let body = bytes(len, len as u64);
        put(s, key, &body).await;
        let path = s
            .data_dir()
            .join("hot/sha256")
            .join(&sha256_hex(&body)[..2])
            .join(sha256_hex(&body));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("blob file");
        f.set_len((len - 5000) as u64).expect("truncate");
        drop(f);

        let got = unchecked
            .get_object()
            .bucket("integrity")
            .key(key)
            .send()
            .await;
        if let Ok(out) = got {
            let read = out.body.collect().await.map(|b| b.into_bytes().len());
            assert!(
                read.is_err(),
                "{key}: a short blob was served as {read:?} bytes"
            );
        }
        let head = len - 5000 - 4096 - 7;
        let out = s
            .client
            .get_object()
            .bucket("integrity")
            .key(key)
            .range(format!("bytes=3-{head}"))
            .send()
            .await
            .expect("range inside the file");
        let read = out.body.collect().await.expect("range body").into_bytes();
        assert!(read.as_ref() == &body[3..=head], "{key}: range");
    }
    let r = just_storage::workers::scrub_once(s.engine(), 0, 100)
        .await
        .expect("scrub");
    assert_eq!((r.checked, r.corrupted), (2, 2));
}
both_dbs!(a_short_blob_file_is_never_served_short);

/// A multipart object whose later part's blob file is gone (volumes restored from an older
/// snapshot than the database) fails before its response starts: a 500, never a 200 that
/// stops short. A range within the first part still reads.
async fn a_missing_later_part_fails_before_the_body(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("integrity")
        .send()
        .await
        .expect("bucket");
    let parts = [bytes(5 << 20, 31), bytes(1 << 20, 32)];
    multipart_put(&s.client, "integrity", "mp", &parts).await;
    let second = sha256_hex(&parts[1]);
    std::fs::remove_file(
        s.data_dir()
            .join("hot/sha256")
            .join(&second[..2])
            .join(&second),
    )
    .expect("remove the second part's file");
    let e = s
        .client
        .get_object()
        .bucket("integrity")
        .key("mp")
        .send()
        .await
        .expect_err("refused before the body");
    assert_eq!(status(&e), 500);
    let first = s
        .client
        .get_object()
        .bucket("integrity")
        .key("mp")
        .range("bytes=0-99")
        .send()
        .await
        .expect("a range in the first part");
    let read = first.body.collect().await.expect("body").into_bytes();
    assert!(read.as_ref() == &parts[0][..100]);
}
both_dbs!(a_missing_later_part_fails_before_the_body);

async fn fsck_finds_and_repairs(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("integrity")
        .send()
        .await
        .expect("bucket");
    let (a, b) = (bytes(100_000, 3), bytes(100_000, 4));
    put(s, "a", &a).await;
    put(s, "b", &b).await;
    let e = s.engine();
    let r = just_storage::workers::fsck(e, false, Duration::ZERO)
        .await
        .expect("fsck");
    assert!(r.is_clean(), "{r:?}");
    assert_eq!((r.blob_rows, r.blob_files), (2, 2));

    // Three kinds of damage.
    let hot = s.data_dir().join("hot/sha256");
    let (ha, hb) = (sha256_hex(&a), sha256_hex(&b));
    std::fs::remove_file(hot.join(&ha[..2]).join(&ha)).expect("remove a's file");
    let stray = "ab".repeat(32);
    std::fs::create_dir_all(hot.join("ab")).expect("fan dir");
    std::fs::write(hot.join("ab").join(&stray), b"stray").expect("stray file");
    let blob_b = BlobId {
        tier: Tier::Hot,
        hash: hb.clone(),
    };
    e.meta()
        .repair_blob(&blob_b, BlobRepair::SetRefCount(5))
        .await
        .expect("skew count");

    let r = just_storage::workers::fsck(e, false, Duration::ZERO)
        .await
        .expect("fsck");
    assert_eq!(r.rows_without_file, [format!("hot/{ha}")]);
    assert_eq!(r.files_without_row, [format!("hot/{stray}")]);
    assert_eq!(r.refcount_mismatches.len(), 1);
    assert_eq!(r.refcount_mismatches[0].hash, hb);
    assert_eq!(
        (
            r.refcount_mismatches[0].ref_count,
            r.refcount_mismatches[0].actual
        ),
        (Some(5), 1)
    );

    let r = just_storage::workers::fsck(e, true, Duration::ZERO)
        .await
        .expect("repair");
    assert_eq!(r.repaired, 3);
    let r = just_storage::workers::fsck(e, false, Duration::ZERO)
        .await
        .expect("fsck");
    assert!(
        r.files_without_row.is_empty() && r.refcount_mismatches.is_empty(),
        "{r:?}"
    );
    // The referenced blob whose file vanished stays listed, marked corrupted: GET refuses it.
    assert_eq!(r.rows_without_file.len(), 1);
    let err = s
        .client
        .get_object()
        .bucket("integrity")
        .key("a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 500);
    let got = s
        .client
        .get_object()
        .bucket("integrity")
        .key("b")
        .send()
        .await
        .expect("b intact");
    assert!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref()
            == b.as_slice()
    );
}
both_dbs!(fsck_finds_and_repairs);
