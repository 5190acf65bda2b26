//! Usage kept with every commit (logical per bucket and tier, physical attributed per tenant
//! with deduplication across tenants) and quotas (bytes and versions, per tenant and per
//! bucket), checked against what each test did and against a recount.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, VersioningConfiguration,
};
use just_storage::engine::{TenantUsage, UsageReport};
use just_storage::meta::Quota;

async fn put(c: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
    let r = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await;
    r.map(|_| ()).map_err(|e| {
        assert_eq!(status(&e), 403, "{e:?}");
        code(&e)
    })
}

async fn report(s: &TestServer) -> UsageReport {
    s.engine().usage_report(None, None).await.expect("usage")
}

fn tenant<'a>(r: &'a UsageReport, name: &str) -> &'a TenantUsage {
    r.tenants
        .iter()
        .find(|t| t.tenant == name)
        .expect("tenant row")
}

/// The kept figures equal a recount from the rows.
async fn assert_usage_consistent(s: &TestServer) {
    let check = s.engine().meta().check_usage(false).await.expect("check");
    assert!(check.is_clean(), "usage drifted: {check:?}");
}

async fn usage_with_dedup_across_tenants(s: &TestServer) {
    let other = s.tenant_client("acme", false).await;
    let root = &s.client;
    root.create_bucket()
        .bucket("rb1")
        .send()
        .await
        .expect("rb1");
    other
        .create_bucket()
        .bucket("ab1")
        .send()
        .await
        .expect("ab1");
    let shared = bytes(100_001, 7);
    let own = bytes(50_000, 8);
    put(root, "rb1", "shared", shared.clone())
        .await
        .expect("put");
    put(root, "rb1", "own", own.clone()).await.expect("put");
    put(&other, "ab1", "shared", shared.clone())
        .await
        .expect("put");
    // A copy references the same blob: logical bytes grow, physical do not.
    other
        .copy_object()
        .bucket("ab1")
        .key("copy")
        .copy_source("ab1/shared")
        .send()
        .await
        .expect("copy");
    // Small bodies live in the database; they are attributed too.
    put(&other, "ab1", "small", b"tiny".to_vec())
        .await
        .expect("put");

    let r = report(s).await;
    let (root_u, acme) = (tenant(&r, "root"), tenant(&r, "acme"));
    assert_eq!((root_u.objects, root_u.logical_bytes), (2, 150_001));
    assert_eq!((acme.objects, acme.logical_bytes), (3, 2 * 100_001 + 4));
    // The shared blob is split between the two tenants, the odd byte to the smaller id.
    let total_physical = 100_001 + 50_000 + 4;
    assert_eq!(root_u.physical_bytes + acme.physical_bytes, total_physical);
    let half = 100_001 / 2;
    assert!(
        [half, half + 1].contains(&(acme.physical_bytes - 4)),
        "{acme:?}"
    );
    assert!(acme.dedup_ratio.expect("ratio") > 3.9, "{acme:?}");
    assert_usage_consistent(s).await;

    // The root tenant drops its reference: the blob is the other tenant's alone.
    root.delete_object()
        .bucket("rb1")
        .key("shared")
        .send()
        .await
        .expect("delete");
    let r = report(s).await;
    assert_eq!(tenant(&r, "root").physical_bytes, 50_000);
    assert_eq!(tenant(&r, "acme").physical_bytes, 100_001 + 4);

    // Versions: an overwrite in a versioned bucket keeps the old one as noncurrent; a delete
    // adds a marker.
    let on = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .build();
    let v = root.put_bucket_versioning().bucket("rb1");
    v.versioning_configuration(on)
        .send()
        .await
        .expect("versioning");
    put(root, "rb1", "own", bytes(70_000, 9))
        .await
        .expect("put");
    root.delete_object()
        .bucket("rb1")
        .key("own")
        .send()
        .await
        .expect("delete");
    let r = report(s).await;
    let row = r
        .buckets
        .iter()
        .find(|u| u.bucket == "rb1")
        .expect("rb1 row");
    assert_eq!(
        (row.objects, row.noncurrent_versions, row.noncurrent_bytes),
        (0, 2, 120_000)
    );
    assert_eq!(row.delete_markers, 1);
    assert_eq!(tenant(&r, "root").logical_bytes, 120_000);
    assert_eq!(tenant(&r, "root").physical_bytes, 120_000);
    assert_usage_consistent(s).await;
}
both_dbs!(usage_with_dedup_across_tenants);

async fn quota_edges(s: &TestServer) {
    let c = &s.client;
    let e = s.engine();
    c.create_bucket()
        .bucket("qa1")
        .send()
        .await
        .expect("bucket");
    let limit = Quota {
        bytes: Some(1000),
        objects: None,
    };
    e.set_quota("root", Some("qa1"), limit)
        .await
        .expect("quota");
    // Exactly at the limit, then one byte over.
    put(c, "qa1", "a", bytes(600, 1)).await.expect("600");
    put(c, "qa1", "b", bytes(400, 2))
        .await
        .expect("exactly at the limit");
    assert_eq!(
        put(c, "qa1", "c", vec![7]).await,
        Err("QuotaExceeded".into())
    );
    // An overwrite that takes no more passes; one that takes more does not.
    put(c, "qa1", "b", bytes(400, 3))
        .await
        .expect("same size overwrite");
    put(c, "qa1", "b", bytes(100, 4))
        .await
        .expect("smaller overwrite");
    put(c, "qa1", "b", bytes(400, 5))
        .await
        .expect("back to the limit");
    assert_eq!(
        put(c, "qa1", "b", bytes(401, 5)).await,
        Err("QuotaExceeded".into())
    );
    // The refused write left nothing: the object is the last accepted one.
    let got = c
        .get_object()
        .bucket("qa1")
        .key("b")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_length(), Some(400));
    let held = e.meta().usage().await.expect("usage");
    let q_row = held.iter().find(|u| u.bucket == "qa1").expect("row");
    assert_eq!((q_row.objects, q_row.bytes), (2, 1000));

    // A quota change counts at once: raised, the same write passes.
    let raised = Quota {
        bytes: Some(5000),
        objects: Some(3),
    };
    e.set_quota("root", Some("qa1"), raised)
        .await
        .expect("raise");
    put(c, "qa1", "c", vec![7]).await.expect("after raise");
    assert_eq!(
        put(c, "qa1", "d", vec![7]).await,
        Err("QuotaExceeded".into())
    );

    // A tenant quota binds across the tenant's buckets.
    c.create_bucket()
        .bucket("qb2")
        .send()
        .await
        .expect("bucket");
    let tenant_limit = Quota {
        bytes: Some(2000),
        objects: None,
    };
    e.set_quota("root", None, tenant_limit)
        .await
        .expect("tenant");
    put(c, "qb2", "x", bytes(900, 6))
        .await
        .expect("within the tenant");
    assert_eq!(
        put(c, "qb2", "y", bytes(200, 6)).await,
        Err("QuotaExceeded".into())
    );
    e.set_quota("root", None, Quota::default())
        .await
        .expect("lift");
    put(c, "qb2", "y", bytes(200, 6)).await.expect("lifted");

    // A multipart upload whose completion would go over is refused, and nothing is kept.
    let small = Quota {
        bytes: Some(6 << 20),
        objects: None,
    };
    e.set_quota("root", Some("qb2"), small)
        .await
        .expect("quota");
    let up = c
        .create_multipart_upload()
        .bucket("qb2")
        .key("big")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    let mut parts = Vec::new();
    for n in 1..=2 {
        let p = c
            .upload_part()
            .bucket("qb2")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(bytes(5 << 20, n as u64)))
            .send()
            .await
            .expect("part");
        let part = CompletedPart::builder().part_number(n);
        parts.push(part.e_tag(p.e_tag().expect("etag")).build());
    }
    let done = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    let err = c
        .complete_multipart_upload()
        .bucket("qb2")
        .key("big")
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .expect_err("over the bucket quota");
    assert_eq!((status(&err), code(&err).as_str()), (403, "QuotaExceeded"));
    let head = c.head_object().bucket("qb2").key("big").send().await;
    assert_eq!(head.err().map(|e| status(&e)), Some(404));
    // A part that alone would go over is refused before it is stored.
    let over = c
        .upload_part()
        .bucket("qb2")
        .key("big")
        .upload_id(id)
        .part_number(3)
        .body(ByteStream::from(bytes(7 << 20, 3)))
        .send()
        .await
        .expect_err("a part over the quota");
    assert_eq!(
        (status(&over), code(&over).as_str()),
        (403, "QuotaExceeded")
    );
    assert_usage_consistent(s).await;
    assert_refcounts(s).await;
}
both_dbs!(quota_edges);

/// Writers racing for the last places: exactly as many win as the quota holds.
async fn concurrent_writers_race(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("race")
        .send()
        .await
        .expect("bucket");
    let limit = Quota {
        bytes: Some(10 * 20_000),
        objects: Some(10),
    };
    s.engine()
        .set_quota("root", Some("race"), limit)
        .await
        .expect("quota");
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let c = c.clone();
        // Large bodies (files placed apart) and small ones (group commit) alike.
        let len = if i % 2 == 0 { 20_000 } else { 2_000 };
        tasks.push(tokio::spawn(async move {
            put(&c, "race", &format!("k{i}"), bytes(len, i)).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => won += 1,
            Err(code) => assert_eq!(code, "QuotaExceeded"),
        }
    }
    assert_eq!(won, 10, "the object quota admits exactly ten");
    let listed = c
        .list_objects_v2()
        .bucket("race")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(10));
    assert_usage_consistent(s).await;
}
both_dbs!(concurrent_writers_race);

/// The commit checks the quota itself: a limit set behind this server's cache (as another
/// process's `admin quota set` is) refuses the next write at its commit, once the body is
/// streamed, and nothing of it is kept.
async fn commit_checks_behind_the_cache(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("stq")
        .send()
        .await
        .expect("bucket");
    // The bucket is cached as having no quota.
    put(c, "stq", "first", vec![1]).await.expect("put");
    let meta = s.engine().meta();
    let root = meta.tenant_id("root").await.expect("tenant").expect("root");
    let b = meta
        .bucket(&root, "stq")
        .await
        .expect("bucket")
        .expect("stq");
    let limit = Quota {
        bytes: Some(100),
        objects: None,
    };
    let of = just_storage::meta::QuotaOf::Bucket(&b.id);
    assert!(meta.set_quota(of, limit).await.expect("set"));
    assert_eq!(
        put(c, "stq", "big", bytes(50_000, 3)).await,
        Err("QuotaExceeded".into())
    );
    s.gc(0).await;
    let hot = blob_files(&s.data_dir().join("hot"));
    assert!(hot.is_empty(), "the refused body was kept: {hot:?}");
    assert_usage_consistent(s).await;
}
both_dbs!(commit_checks_behind_the_cache);

/// fsck recounts the usage figures, reports what drifted and, with `--repair`, rebuilds them.
async fn fsck_repairs_usage(s: &TestServer) {
    let other = s.tenant_client("acme", false).await;
    s.client
        .create_bucket()
        .bucket("fs1")
        .send()
        .await
        .expect("b");
    other.create_bucket().bucket("fs2").send().await.expect("b");
    let body = bytes(30_001, 5);
    put(&s.client, "fs1", "k", body.clone()).await.expect("put");
    put(&other, "fs2", "k", body).await.expect("put");
    let before = report(s).await;
    exec_sql(
        s,
        "UPDATE usage_counters SET bytes = bytes + 5, objects = objects + 1; \
         UPDATE tenant_physical SET bytes = bytes + 3",
    )
    .await;
    let e = s.engine();
    let zero = std::time::Duration::ZERO;
    let r = just_storage::workers::fsck(e, false, zero)
        .await
        .expect("fsck");
    assert!(!r.is_clean());
    assert_eq!(
        (r.usage.usage.len(), r.usage.physical.len()),
        (2, 2),
        "{r:?}"
    );
    assert!(
        r.to_string()
            .contains("usage counters that differ from a recount: 2")
    );
    just_storage::workers::fsck(e, true, zero)
        .await
        .expect("repair");
    let r = just_storage::workers::fsck(e, false, zero)
        .await
        .expect("fsck");
    assert!(r.is_clean(), "{r}");
    let after = report(s).await;
    for (a, b) in before.tenants.iter().zip(&after.tenants) {
        assert_eq!(
            (a.objects, a.logical_bytes, a.physical_bytes),
            (b.objects, b.logical_bytes, b.physical_bytes)
        );
    }
    // The kept figures go on from the rebuilt ones.
    put(&s.client, "fs1", "k2", vec![1, 2, 3])
        .await
        .expect("put");
    assert_usage_consistent(s).await;
}
both_dbs!(fsck_repairs_usage);
