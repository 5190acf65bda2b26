//! The content-addressed store: dedup, the signed-payload check, deferred GC, orphan sweep,
//! and a read that survives DELETE + GC (seed Scenario 2).

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;

const MIB: usize = 1 << 20;

async fn put(s: &TestServer, c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key} ({:?}): {e:?}", s.db));
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get");
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn dedup_across_keys_buckets_tenants(s: &TestServer) {
    let hot = s.data_dir().join("hot");
    let body = bytes(64 * MIB, 42);
    s.client
        .create_bucket()
        .bucket("one")
        .send()
        .await
        .expect("create");
    s.client
        .create_bucket()
        .bucket("two")
        .send()
        .await
        .expect("create");
    let other = s.tenant_client("other", false).await;
    other
        .create_bucket()
        .bucket("one")
        .send()
        .await
        .expect("create");
    let before = du(&hot);
    put(s, &s.client, "one", "a", &body).await;
    put(s, &s.client, "two", "b/c", &body).await;
    put(s, &other, "one", "z", &body).await;
    let grown = du(&hot) - before;
    // One copy of the bytes, not three (a little slack for nothing else).
    assert!(
        grown >= 64 * MIB as u64 && grown < 65 * MIB as u64,
        "grew by {grown}"
    );
    assert_eq!(blob_files(&hot).len(), 1);
    assert_eq!(get(&other, "one", "z").await, body);

    // Removing two references keeps the blob; removing the last one frees it after the grace.
    s.client
        .delete_object()
        .bucket("one")
        .key("a")
        .send()
        .await
        .expect("delete");
    other
        .delete_object()
        .bucket("one")
        .key("z")
        .send()
        .await
        .expect("delete");
    let r = s.gc(0).await;
    assert_eq!(r.blobs_removed, 0);
    assert_eq!(get(&s.client, "two", "b/c").await, body);
    s.client
        .delete_object()
        .bucket("two")
        .key("b/c")
        .send()
        .await
        .expect("delete");
    let r = s.gc(300).await;
    assert_eq!(r.blobs_removed, 0, "grace period honoured");
    assert_eq!(blob_files(&hot).len(), 1);
    let r = s.gc(0).await;
    assert_eq!(r.blobs_removed, 1);
    assert_eq!(r.purged_rows, 1, "the other two rows went in the first run");
    assert!(blob_files(&hot).is_empty());
    assert!(du(&hot) < MIB as u64);
}
both_dbs!(dedup_across_keys_buckets_tenants);

async fn overwrite_releases_old_blob(s: &TestServer) {
    let hot = s.data_dir().join("hot");
    s.client
        .create_bucket()
        .bucket("overwrite")
        .send()
        .await
        .expect("create");
    put(s, &s.client, "overwrite", "k", &bytes(100_000, 1)).await;
    put(s, &s.client, "overwrite", "k", &bytes(100_000, 2)).await;
    // Same content again: refcount moves, no new file.
    put(s, &s.client, "overwrite", "k", &bytes(100_000, 2)).await;
    assert_eq!(blob_files(&hot).len(), 2);
    let r = s.gc(0).await;
    assert_eq!(r.blobs_removed, 1);
    assert_eq!(blob_files(&hot).len(), 1);
    assert_eq!(get(&s.client, "overwrite", "k").await, bytes(100_000, 2));
}
both_dbs!(overwrite_releases_old_blob);

async fn signed_payload_hash_is_verified(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("sig")
        .send()
        .await
        .expect("create");
    put(s, &s.client, "sig", "k", b"original").await;
    let body = b"tampered body";
    let wrong = sha256_hex(b"something else");
    let r = signed_raw(s.addr(), "PUT", "/sig/k", &[], body, &wrong).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("<Code>XAmzContentSHA256Mismatch</Code>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<RequestId>"), "{}", r.body);
    assert!(r.header("x-amz-request-id").is_some());
    assert_eq!(get(&s.client, "sig", "k").await, b"original");
    assert_eq!(
        std::fs::read_dir(s.data_dir().join("hot/tmp"))
            .expect("tmp")
            .count(),
        0
    );

    // The right hash is accepted through the same path.
    let r = signed_raw(s.addr(), "PUT", "/sig/k", &[], body, &sha256_hex(body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get(&s.client, "sig", "k").await, body);
}
both_dbs!(signed_payload_hash_is_verified);

/// A body that finishes streaming after its bucket was deleted is not committed into the void:
/// the commit answers NoSuchBucket (the version's bucket foreign key), and nothing is left.
async fn commit_into_a_deleted_bucket(s: &TestServer) {
    use just_storage::meta::{MetaError, ObjectHeaders, PutCommit, Segment, WriteCondition};
    let meta = s.engine().meta();
    let tenant = meta.tenant_id("root").await.expect("q").expect("root");
    let bucket = meta
        .create_bucket(&tenant, "gone", false)
        .await
        .expect("bucket");
    meta.delete_bucket(&bucket.id).await.expect("delete bucket");
    let body = b"late body";
    let commit = PutCommit {
        object_id: uuid::Uuid::now_v7().to_string(),
        bucket_id: bucket.id.clone(),
        key: "k".into(),
        size: body.len() as u64,
        etag: md5_hex(body),
        headers: ObjectHeaders::default(),
        storage_class: "STANDARD".into(),
        blob: Some(Segment {
            tier: just_storage::blobs::Tier::Hot,
            hash: sha256_hex(body),
            size: body.len() as u64,
            inline: Some(bytes::Bytes::from_static(body)),
        }),
        condition: WriteCondition::None,
        checksum: None,
        lock: Default::default(),
    };
    let e = meta.commit_put(&commit, None).await.expect_err("no bucket");
    assert!(matches!(e, MetaError::NoSuchBucket), "{e:?}");
    let blob = just_storage::meta::BlobId {
        tier: just_storage::blobs::Tier::Hot,
        hash: sha256_hex(body),
    };
    assert!(!meta.blob_exists(&blob).await.expect("q"), "rolled back");
    // The writer is usable afterwards (the failed transaction was rolled back).
    s.client
        .create_bucket()
        .bucket("after")
        .send()
        .await
        .expect("bucket");
    put(s, &s.client, "after", "k", b"v").await;
}
both_dbs!(commit_into_a_deleted_bucket);

fn inline_commit(bucket_id: &str, key: &str, body: &[u8]) -> just_storage::meta::PutCommit {
    just_storage::meta::PutCommit {
        object_id: uuid::Uuid::now_v7().to_string(),
        bucket_id: bucket_id.to_owned(),
        key: key.to_owned(),
        size: body.len() as u64,
        etag: md5_hex(body),
        headers: Default::default(),
        storage_class: "STANDARD".into(),
        blob: Some(just_storage::meta::Segment {
            tier: just_storage::blobs::Tier::Hot,
            hash: sha256_hex(body),
            size: body.len() as u64,
            inline: Some(bytes::Bytes::copy_from_slice(body)),
        }),
        condition: just_storage::meta::WriteCondition::None,
        checksum: None,
        lock: Default::default(),
    }
}

/// Many commits at once (SQLite commits them in groups): each gets its own answer — a failed
/// condition or a vanished bucket fails only that commit — and the counts add up.
async fn concurrent_commits_keep_their_own_outcomes(s: &TestServer) {
    use just_storage::meta::{MetaError, WriteCondition};
    let meta = s.engine().meta();
    let tenant = meta.tenant_id("root").await.expect("q").expect("root");
    let live = meta
        .create_bucket(&tenant, "live", false)
        .await
        .expect("bucket");
    let gone = meta
        .create_bucket(&tenant, "gone", false)
        .await
        .expect("bucket");
    meta.delete_bucket(&gone.id).await.expect("delete bucket");
    // Another tenant's bucket of the same name, with the same keys: DELETEs name their bucket
    // (SQLite resolves it inside the group commit), and must stay in their tenant.
    let other = meta.create_tenant("other").await.expect("tenant");
    let theirs = meta
        .create_bucket(&other, "live", false)
        .await
        .expect("bucket");
    for i in 30..40 {
        meta.commit_put(
            &inline_commit(&theirs.id, &format!("k{i}"), &bytes(70, i)),
            None,
        )
        .await
        .expect("their put");
    }
    let shared = b"the same bytes".to_vec();
    let mut commits = Vec::new();
    for i in 0..40 {
        commits.push((
            "new",
            inline_commit(&live.id, &format!("k{i}"), &bytes(100, i)),
        ));
    }
    for _ in 0..20 {
        commits.push(("hot", inline_commit(&live.id, "hot", &shared)));
    }
    for i in 0..10 {
        let mut c = inline_commit(&live.id, "once", &bytes(50, 100 + i));
        c.condition = WriteCondition::IfNoneMatchAny;
        commits.push(("once", c));
    }
    for i in 0..10 {
        commits.push((
            "gone",
            inline_commit(&gone.id, &format!("g{i}"), &bytes(10, 200 + i)),
        ));
    }
    let puts = futures::future::join_all(commits.iter().map(|(_, c)| meta.commit_put(c, None)));
    let doomed: Vec<String> = (30..40).map(|i| format!("k{i}")).collect();
    let deletes =
        futures::future::join_all(doomed.iter().map(|k| meta.delete_key(&tenant, "live", k)));
    // Same key names, in buckets that are not there for this tenant.
    let strays = futures::future::join_all(doomed.iter().flat_map(|k| {
        [
            meta.delete_key(&tenant, "gone", k),
            meta.delete_key(&tenant, "never", k),
        ]
    }));
    let (puts, deletes, strays) = futures::join!(puts, deletes, strays);
    for d in &strays {
        assert!(matches!(d, Ok(None)), "a DELETE in a missing bucket: {d:?}");
    }
    let mut once_ok = 0;
    for ((what, _), r) in commits.iter().zip(&puts) {
        match (*what, r) {
            ("new" | "hot", Ok(_)) => {}
            ("once", Ok(_)) => once_ok += 1,
            ("once", Err(MetaError::PreconditionFailed)) => {}
            ("gone", Err(MetaError::NoSuchBucket)) => {}
            (w, r) => panic!("{w}: unexpected {r:?}"),
        }
    }
    assert_eq!(once_ok, 1, "exactly one If-None-Match: * commit wins");
    for d in &deletes {
        assert!(matches!(d, Ok(Some(_))), "{d:?}");
    }
    assert_eq!(
        meta.delete_key(&tenant, "gone", "g0")
            .await
            .expect("delete"),
        None,
        "a DELETE in a deleted bucket finds no bucket"
    );
    for i in 0..30 {
        let row = meta
            .latest(&tenant, "live", &format!("k{i}"), true)
            .await
            .expect("q");
        assert_eq!(row.map(|r| r.size), Some(100));
    }
    for i in 30..40 {
        let key = format!("k{i}");
        let mine = meta.latest(&tenant, "live", &key, true).await.expect("q");
        let row = meta.latest(&other, "live", &key, true).await.expect("q");
        // Each of mine was either deleted, or written after its DELETE.
        assert!(
            mine.as_ref().is_none_or(|r| r.size == 100),
            "{key}: {mine:?}"
        );
        assert_eq!(row.map(|r| r.size), Some(70), "their {key} is untouched");
    }
    let hot = meta
        .latest(&tenant, "live", "hot", true)
        .await
        .expect("q")
        .expect("hot");
    assert_eq!(hot.segments[0].inline.as_deref(), Some(shared.as_slice()));
    let report = just_storage::workers::fsck(s.engine(), false, std::time::Duration::ZERO)
        .await
        .expect("fsck");
    assert!(report.refcount_mismatches.is_empty(), "{report:?}");
    assert!(report.rows_without_file.is_empty(), "{report:?}");
}
both_dbs!(concurrent_commits_keep_their_own_outcomes);

async fn error_bodies_are_complete(s: &TestServer) {
    // An error raised inside the protocol layer (no such bucket for a signed GET).
    let r = signed_raw(
        s.addr(),
        "GET",
        "/no-such-bucket/key",
        &[],
        b"",
        &sha256_hex(b""),
    )
    .await;
    assert_eq!(r.status, 404);
    for part in [
        "<Code>NoSuchBucket</Code>",
        "<Message>",
        "<Resource>/no-such-bucket/key</Resource>",
        "<RequestId>",
    ] {
        assert!(r.body.contains(part), "{part} in {}", r.body);
    }
    let id = r.header("x-amz-request-id").expect("request id header");
    assert!(r.body.contains(&format!("<RequestId>{id}</RequestId>")));
    // An auth failure raised by s3s itself: a malformed Authorization header.
    let head = "GET / HTTP/1.1\r\nhost: x\r\nauthorization: AWS4-HMAC-SHA256 Credential=nonsense\r\n\
                x-amz-date: 20260101T000000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\
                connection: close\r\n\r\n";
    let r = raw(s.addr(), head.as_bytes()).await;
    assert!(r.status == 403 || r.status == 400, "{r:?}");
    assert!(
        r.body.contains("<Message>") && r.body.contains("<RequestId>"),
        "{}",
        r.body
    );
}
both_dbs!(error_bodies_are_complete);

async fn read_survives_delete_and_gc(s: &TestServer) {
    let hot = s.data_dir().join("hot");
    let body = bytes(48 * MIB, 9);
    s.client
        .create_bucket()
        .bucket("scn2")
        .send()
        .await
        .expect("create");
    put(s, &s.client, "scn2", "big", &body).await;
    let mut out = s
        .client
        .get_object()
        .bucket("scn2")
        .key("big")
        .send()
        .await
        .expect("get");
    let mut got = Vec::with_capacity(body.len());
    let first = out
        .body
        .next()
        .await
        .expect("a first chunk")
        .expect("chunk");
    got.extend_from_slice(&first);
    // DELETE and a forced collection while the response is streaming.
    s.client
        .delete_object()
        .bucket("scn2")
        .key("big")
        .send()
        .await
        .expect("delete");
    let r = s.gc(0).await;
    assert_eq!(r.blobs_removed, 1);
    assert!(blob_files(&hot).is_empty(), "file unlinked");
    while let Some(chunk) = out.body.next().await {
        got.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(got.len(), body.len());
    assert!(got == body, "bytes identical after delete + gc");
    let e = s
        .client
        .get_object()
        .bucket("scn2")
        .key("big")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
}
both_dbs!(read_survives_delete_and_gc);

async fn orphans_are_swept(s: &TestServer) {
    let tmp = s.data_dir().join("hot/tmp");
    s.client
        .create_bucket()
        .bucket("orph")
        .send()
        .await
        .expect("create");
    put(s, &s.client, "orph", "kept", b"committed").await;
    // A crashed upload's half-written temp file, and a crashed part's.
    std::fs::write(tmp.join(uuid::Uuid::now_v7().to_string()), b"partial").expect("temp");
    std::fs::write(tmp.join(uuid::Uuid::now_v7().to_string()), b"stray").expect("stray");
    let r = s.gc(0).await;
    assert_eq!(r.orphan_temp_files, 2);
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);
    assert_eq!(get(&s.client, "orph", "kept").await, b"committed");
}
both_dbs!(
    orphans_are_swept,
    Options {
        orphan_age_secs: 0,
        ..Options::default()
    }
);

/// Large reads bypass the page cache with aligned direct reads; every range, however it falls
/// on the 4 KiB blocks and 512 KiB chunks, must still be exact. The body is streamed (so written
/// with `O_DIRECT` too) and ends mid-block.
async fn large_ranges_are_exact(s: &TestServer) {
    let body = bytes(20 * MIB + 4321, 77);
    s.client
        .create_bucket()
        .bucket("big")
        .send()
        .await
        .expect("create");
    put(s, &s.client, "big", "obj", &body).await;
    assert!(get(&s.client, "big", "obj").await == body, "whole object");
    let n = body.len();
    let ranges = [
        (1, 9 * MIB),                          // unaligned start, past the direct threshold
        (4095, n),                             // to the end, which is mid-block
        (MIB - 1, 10 * MIB + 1),               // straddles chunk boundaries at both ends
        (n - 8 * MIB - 7, n - 3),              // ends short of the last block
        (12 * MIB + 17, 12 * MIB + 4096 + 18), // a small range: through the page cache
    ];
    for (lo, hi) in ranges {
        let out = s
            .client
            .get_object()
            .bucket("big")
            .key("obj")
            .range(format!("bytes={lo}-{}", hi - 1))
            .send()
            .await
            .unwrap_or_else(|e| panic!("range {lo}-{hi} ({:?}): {e:?}", s.db));
        assert_eq!(out.content_length(), Some((hi - lo) as i64));
        let got = out.body.collect().await.expect("body").into_bytes();
        assert!(got[..] == body[lo..hi], "range {lo}-{hi} ({:?})", s.db);
    }
}
both_dbs!(large_ranges_are_exact);
