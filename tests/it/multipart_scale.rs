//! How long CompleteMultipartUpload takes for 10,000 parts (S3's maximum). Completion writes
//! rows only, so the parts here are real part rows holding real references, all on one 5 MiB
//! blob (uploaded once), to keep the setup from moving 50 GB. Run on demand:
//! `cargo test --test multipart_scale -- --ignored --nocapture`.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use just_storage::blobs::Tier;
use just_storage::meta::{PartRow, Segment};
use std::time::Instant;

const PARTS: i32 = 10_000;

async fn ten_thousand_parts(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("scale")
        .send()
        .await
        .expect("bucket");
    let body = bytes(5 << 20, 1);
    c.put_object()
        .bucket("scale")
        .key("seed")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("seed");
    let id = c
        .create_multipart_upload()
        .bucket("scale")
        .key("big")
        .send()
        .await
        .expect("create")
        .upload_id
        .expect("id");
    let hash = sha256_hex(&body);
    let etag = md5_hex(&body);
    let crc = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(just_storage::blobs::ChecksumAlgo::Crc64Nvme.digest(&body))
    };
    let t = Instant::now();
    for n in 1..=PARTS {
        let part = PartRow {
            part_number: n,
            size: body.len() as u64,
            etag: etag.clone(),
            created_at: just_storage::now_micros(),
            blob: Some(Segment {
                tier: Tier::Hot,
                hash: hash.clone(),
                size: body.len() as u64,
                inline: None,
            }),
            checksum: Some(crc.clone()),
        };
        s.engine()
            .meta()
            .commit_part(&id, &part, None)
            .await
            .expect("part row");
    }
    let setup = t.elapsed();
    let parts: Vec<CompletedPart> = (1..=PARTS)
        .map(|n| {
            CompletedPart::builder()
                .part_number(n)
                .e_tag(format!("\"{etag}\""))
                .build()
        })
        .collect();
    let t = Instant::now();
    let out = c
        .complete_multipart_upload()
        .bucket("scale")
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
    let took = t.elapsed();
    eprintln!(
        "{:?}: CompleteMultipartUpload of {PARTS} parts (50 GB logical) took {:.3} s (part rows set up in {:.1} s)",
        s.db,
        took.as_secs_f64(),
        setup.as_secs_f64()
    );
    assert!(out.e_tag().is_some_and(|e| e.ends_with("-10000\"")));
    let h = c
        .head_object()
        .bucket("scale")
        .key("big")
        .send()
        .await
        .expect("head");
    assert_eq!(h.content_length(), Some(i64::from(PARTS) * (5 << 20)));
    assert_refcounts(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand"]
async fn complete_10000_parts_sqlite() {
    let s = TestServer::start(Db::Sqlite).await;
    ten_thousand_parts(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand"]
async fn complete_10000_parts_postgres() {
    let s = TestServer::start(Db::Postgres).await;
    ten_thousand_parts(&s).await;
    s.stop().await;
}
