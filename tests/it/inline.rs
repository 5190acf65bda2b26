//! Inline blobs: PUT bodies up to `inline_max_bytes` live in their blob row, not in a file.
//! Reads, ranges, copies, dedup, GC, the scrubber and fsck treat them like any other blob.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;

/// The server's default threshold (`engine::Limits::default().inline_max`).
const INLINE_MAX: usize = 16 << 10;

async fn put(c: &aws_sdk_s3::Client, key: &str, body: &[u8]) -> String {
    c.put_object()
        .bucket("inl")
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag
        .unwrap_or_default()
}

async fn get(c: &aws_sdk_s3::Client, key: &str, range: Option<&str>) -> Vec<u8> {
    c.get_object()
        .bucket("inl")
        .key(key)
        .set_range(range.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn inline_objects(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("inl")
        .send()
        .await
        .expect("bucket");
    let hot = s.data_dir().join("hot");
    let small = bytes(4096, 1);
    let edge = bytes(INLINE_MAX, 2);
    let big = bytes(INLINE_MAX + 1, 3);

    assert_eq!(
        put(c, "small", &small).await,
        format!("\"{}\"", md5_hex(&small))
    );
    put(c, "edge", &edge).await;
    assert!(
        blob_files(&hot).is_empty(),
        "bodies up to the threshold make no file"
    );
    put(c, "big", &big).await;
    assert_eq!(blob_files(&hot).len(), 1, "a larger body is a file");
    put(c, "empty", b"").await;

    assert_eq!(get(c, "small", None).await, small);
    assert_eq!(get(c, "edge", None).await, edge);
    assert_eq!(get(c, "big", None).await, big);
    assert_eq!(get(c, "empty", None).await, b"");
    assert_eq!(
        get(c, "small", Some("bytes=100-1099")).await,
        small[100..1100]
    );
    assert_eq!(get(c, "small", Some("bytes=-10")).await, small[4086..]);
    let head = c
        .head_object()
        .bucket("inl")
        .key("small")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length, Some(4096));

    // Dedup and copies share the one row; overwriting with the same bytes keeps it.
    put(c, "small-again", &small).await;
    put(c, "small", &small).await;
    c.copy_object()
        .bucket("inl")
        .key("small-copy")
        .copy_source("inl/small")
        .send()
        .await
        .expect("copy");
    assert_eq!(get(c, "small-copy", None).await, small);
    let report = just_storage::workers::fsck(s.engine(), false, std::time::Duration::ZERO)
        .await
        .expect("fsck");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.blob_rows, 3, "small, edge and big: one row each");

    // The bytes survive until the last reference goes, then the collector drops the row.
    for key in ["small", "small-again"] {
        c.delete_object()
            .bucket("inl")
            .key(key)
            .send()
            .await
            .expect("delete");
    }
    s.gc(0).await;
    assert_eq!(get(c, "small-copy", None).await, small);
    c.delete_object()
        .bucket("inl")
        .key("small-copy")
        .send()
        .await
        .expect("delete");
    let r = s.gc(0).await;
    assert_eq!(r.blobs_removed, 1);
    let blob = just_storage::meta::BlobId {
        tier: just_storage::blobs::Tier::Hot,
        hash: sha256_hex(&small),
    };
    assert!(!s.engine().meta().blob_exists(&blob).await.expect("q"));
    assert_eq!(get(c, "edge", None).await, edge);
}
both_dbs!(inline_objects);

/// A file blob and a later inline PUT of the same bytes share one row, which then holds both
/// copies. The file comes from a one-part multipart upload (parts are always files).
async fn inline_joins_a_file_blob(s: &TestServer) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let c = &s.client;
    c.create_bucket()
        .bucket("inl")
        .send()
        .await
        .expect("bucket");
    let body = bytes(8000, 4);
    let up = c
        .create_multipart_upload()
        .bucket("inl")
        .key("mp")
        .send()
        .await
        .expect("create");
    let id = up.upload_id.unwrap_or_default();
    let etag = c
        .upload_part()
        .bucket("inl")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("part")
        .e_tag
        .unwrap_or_default();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
        .build();
    c.complete_multipart_upload()
        .bucket("inl")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete");
    let hot = s.data_dir().join("hot");
    assert_eq!(blob_files(&hot).len(), 1, "the part is a file");
    let blob = just_storage::meta::BlobId {
        tier: just_storage::blobs::Tier::Hot,
        hash: sha256_hex(&body),
    };
    assert_eq!(s.engine().meta().blob_data(&blob).await.expect("q"), None);

    put(c, "a", &body).await;
    assert_eq!(blob_files(&hot).len(), 1, "no second file");
    assert_eq!(
        s.engine().meta().blob_data(&blob).await.expect("q"),
        Some(body.clone()),
        "the inline PUT joined the file blob's row and stored its bytes there"
    );
    let report = just_storage::workers::fsck(s.engine(), false, std::time::Duration::ZERO)
        .await
        .expect("fsck");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.blob_rows, 1);
    assert_eq!(get(c, "a", None).await, body);
    assert_eq!(get(c, "mp", None).await, body);
}
both_dbs!(inline_joins_a_file_blob);

/// The scrubber re-hashes inline bytes and marks a damaged row corrupted; GET then refuses.
async fn scrub_checks_inline_bytes(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("inl")
        .send()
        .await
        .expect("bucket");
    let body = bytes(3000, 5);
    put(c, "k", &body).await;
    let r = just_storage::workers::scrub_once(s.engine(), 0, 100)
        .await
        .expect("scrub");
    assert_eq!((r.checked, r.corrupted), (1, 0));
    // Flip the stored bytes behind the server's back.
    let hash = sha256_hex(&body);
    let mut damaged = body.clone();
    damaged[10] ^= 0xff;
    match &s.pg {
        Some(pg) => {
            let pool = sqlx::PgPool::connect(&pg.url()).await.expect("pg");
            sqlx::query("UPDATE blob_data SET data = $1 WHERE hash = $2")
                .bind(&damaged)
                .bind(&hash)
                .execute(&pool)
                .await
                .expect("update");
        }
        None => {
            let c = rusqlite::Connection::open(s.data_dir().join("meta.db")).expect("sqlite");
            c.busy_timeout(std::time::Duration::from_secs(10))
                .expect("busy timeout");
            c.execute(
                "UPDATE blob_data SET data = ?1 WHERE hash = ?2",
                rusqlite::params![damaged, hash],
            )
            .expect("update");
        }
    }
    let r = just_storage::workers::scrub_once(s.engine(), 0, 100)
        .await
        .expect("scrub");
    assert_eq!((r.checked, r.corrupted), (1, 1));
    let e = c
        .get_object()
        .bucket("inl")
        .key("k")
        .send()
        .await
        .expect_err("corrupted");
    assert_eq!(status(&e), 500, "{e:?}");
}
both_dbs!(scrub_checks_inline_bytes);

/// UploadPartCopy reads its source like GET does: an inline source's bytes come from its row.
/// HEAD fetches rows without those bytes; a copy that used that row would find no file.
async fn part_copy_from_an_inline_source(s: &TestServer) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let c = &s.client;
    c.create_bucket()
        .bucket("inl")
        .send()
        .await
        .expect("bucket");
    let src = bytes(5000, 7);
    put(c, "src", &src).await;
    let head = c
        .head_object()
        .bucket("inl")
        .key("src")
        .send()
        .await
        .expect("HEAD an inline object");
    assert_eq!(head.content_length(), Some(src.len() as i64));
    let up = c
        .create_multipart_upload()
        .bucket("inl")
        .key("dst")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id.unwrap_or_default();
    let part = c
        .upload_part_copy()
        .bucket("inl")
        .key("dst")
        .upload_id(&id)
        .part_number(1)
        .copy_source("inl/src")
        .copy_source_range("bytes=100-4099")
        .send()
        .await
        .expect("UploadPartCopy from an inline source");
    let etag = part
        .copy_part_result
        .and_then(|r| r.e_tag)
        .unwrap_or_default();
    c.complete_multipart_upload()
        .bucket("inl")
        .key("dst")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(get(c, "dst", None).await, src[100..4100].to_vec());
}
both_dbs!(part_copy_from_an_inline_source);
