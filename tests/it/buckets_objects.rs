//! Every foundation operation and its error cases, through aws-sdk-s3, on both databases.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};

async fn put(s: &TestServer, bucket: &str, key: &str, body: &[u8]) -> String {
    s.client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag
        .expect("etag")
}

async fn get(s: &TestServer, bucket: &str, key: &str) -> Vec<u8> {
    let out = s
        .client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn bucket_lifecycle(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("create");
    c.create_bucket()
        .bucket("beta-2")
        .send()
        .await
        .expect("create");
    // us-east-1's legacy rule: the owner's re-creation succeeds and keeps the bucket's objects.
    c.put_object()
        .bucket("alpha")
        .key("kept")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    c.create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("re-create in us-east-1");
    c.head_object()
        .bucket("alpha")
        .key("kept")
        .send()
        .await
        .expect("the object survives");
    c.delete_object()
        .bucket("alpha")
        .key("kept")
        .send()
        .await
        .expect("delete");

    c.head_bucket().bucket("alpha").send().await.expect("head");
    let e = c.head_bucket().bucket("missing").send().await.unwrap_err();
    assert_eq!(status(&e), 404);

    let names: Vec<String> = c
        .list_buckets()
        .send()
        .await
        .expect("list")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(names, ["alpha", "beta-2"]);

    let loc = c
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .expect("location");
    assert!(
        loc.location_constraint()
            .is_none_or(|l| l.as_str().is_empty())
    );

    for bad in ["ab", "Upper", "under_score", "-dash", "a..b"] {
        let e = c.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidBucketName", "{bad}");
    }

    put(s, "alpha", "k", b"x").await;
    let e = c.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    assert_eq!(get(s, "alpha", "k").await, b"x");
    c.delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .expect("delete");
    c.delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("delete bucket");
    let e = c.head_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    let e = c.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    // The name can be taken again.
    c.create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("re-create");
}
both_dbs!(bucket_lifecycle);

async fn object_round_trip(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("objs")
        .send()
        .await
        .expect("create");
    let keys = [
        "plain",
        "with space",
        "plus+sign",
        "unicode-ü-日本-🎉",
        "nested/dir/leaf.txt",
        "big file+ü.bin",
        "percent%20literal",
        "trailing/",
        "semi;colon&amp=eq?q",
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = bytes(1000 + i * 333, i as u64);
        let etag = put(s, "objs", key, &body).await;
        assert_eq!(etag, format!("\"{}\"", md5_hex(&body)), "{key}");
        assert_eq!(get(s, "objs", key).await, body, "{key}");
    }
    let listed: Vec<String> = c
        .list_objects_v2()
        .bucket("objs")
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);

    // Content-Type and x-amz-meta-* round-trip; overwrite replaces the body.
    c.put_object()
        .bucket("objs")
        .key("plain")
        .body(ByteStream::from_static(b"second version"))
        .content_type("text/x-test; charset=utf-8")
        .content_disposition("attachment; filename=\"a b.txt\"")
        .cache_control("max-age=60")
        .metadata("mtime", "1700000000.5")
        .metadata("Owner", "Alice")
        .send()
        .await
        .expect("put with headers");
    let h = c
        .head_object()
        .bucket("objs")
        .key("plain")
        .send()
        .await
        .expect("head");
    assert_eq!(h.content_length(), Some(14));
    assert_eq!(h.content_type(), Some("text/x-test; charset=utf-8"));
    assert_eq!(
        h.content_disposition(),
        Some("attachment; filename=\"a b.txt\"")
    );
    assert_eq!(h.cache_control(), Some("max-age=60"));
    let m = h.metadata().expect("metadata");
    assert_eq!(m.get("mtime").map(String::as_str), Some("1700000000.5"));
    assert_eq!(m.get("owner").map(String::as_str), Some("Alice"));
    assert!(h.last_modified().is_some());
    assert_eq!(get(s, "objs", "plain").await, b"second version");

    // Empty object.
    let etag = put(s, "objs", "empty", b"").await;
    assert_eq!(etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    assert!(get(s, "objs", "empty").await.is_empty());

    // Missing key / bucket.
    let e = c
        .get_object()
        .bucket("objs")
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let e = c
        .head_object()
        .bucket("objs")
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let e = c
        .get_object()
        .bucket("nobucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = c
        .put_object()
        .bucket("nobucket")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = c
        .delete_object()
        .bucket("nobucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (404, "NoSuchBucket".into()));

    // Delete is idempotent; deleted keys are gone.
    c.delete_object()
        .bucket("objs")
        .key("with space")
        .send()
        .await
        .expect("delete");
    c.delete_object()
        .bucket("objs")
        .key("with space")
        .send()
        .await
        .expect("delete again");
    let e = c
        .get_object()
        .bucket("objs")
        .key("with space")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
}
both_dbs!(object_round_trip);

async fn ranges(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("ranges")
        .send()
        .await
        .expect("create");
    let body = bytes(10_000, 7);
    put(s, "ranges", "r", &body).await;
    for (hdr, lo, hi) in [
        ("bytes=0-0", 0, 1),
        ("bytes=100-199", 100, 200),
        ("bytes=9990-", 9990, 10_000),
        ("bytes=-10", 9990, 10_000),
        ("bytes=9000-20000", 9000, 10_000),
    ] {
        let out = c
            .get_object()
            .bucket("ranges")
            .key("r")
            .range(hdr)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{hdr}: {e:?}"));
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {lo}-{}/10000", hi - 1).as_str()),
            "{hdr}"
        );
        let got = out.body.collect().await.expect("body").into_bytes();
        assert_eq!(&got[..], &body[lo..hi], "{hdr}");
    }
    let e = c
        .get_object()
        .bucket("ranges")
        .key("r")
        .range("bytes=20000-20010")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 416);
    assert_eq!(code(&e), "InvalidRange");
}
both_dbs!(ranges);

async fn content_md5_is_verified(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("digest")
        .send()
        .await
        .expect("create");
    put(s, "digest", "k", b"original").await;
    use base64::Engine as _;
    let wrong = base64::engine::general_purpose::STANDARD.encode(md5::compute_like(b"other"));
    let e = c
        .put_object()
        .bucket("digest")
        .key("k")
        .content_md5(wrong)
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    assert_eq!(status(&e), 400);
    // The old object under that key stays readable, and no temp file is left.
    assert_eq!(get(s, "digest", "k").await, b"original");
    let tmp = std::fs::read_dir(s.data_dir().join("hot/tmp"))
        .expect("tmp")
        .count();
    assert_eq!(tmp, 0);

    let e = c
        .put_object()
        .bucket("digest")
        .key("k")
        .content_md5("not-base64!")
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDigest");

    let right = base64::engine::general_purpose::STANDARD.encode(md5::compute_like(b"replacement"));
    c.put_object()
        .bucket("digest")
        .key("k")
        .content_md5(right)
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .expect("correct md5 accepted");
    assert_eq!(get(s, "digest", "k").await, b"replacement");
}
both_dbs!(content_md5_is_verified);

mod md5 {
    pub fn compute_like(b: &[u8]) -> Vec<u8> {
        use ::md5::Digest;
        ::md5::Md5::digest(b).to_vec()
    }
}

async fn delete_objects(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("multi")
        .send()
        .await
        .expect("create");
    for i in 0..10 {
        put(s, "multi", &format!("k{i}"), b"v").await;
    }
    let ids: Vec<ObjectIdentifier> = ["k1", "k2", "k3", "never-existed"]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
        .collect();
    let out = c
        .delete_objects()
        .bucket("multi")
        .delete(
            Delete::builder()
                .set_objects(Some(ids))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete_objects");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["k1", "k2", "k3", "never-existed"]);
    assert!(out.errors().is_empty());
    let left = c
        .list_objects_v2()
        .bucket("multi")
        .send()
        .await
        .expect("list")
        .key_count();
    assert_eq!(left, Some(7));

    let e = c
        .delete_objects()
        .bucket("no-such-bucket")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("a").build().expect("id"))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
}
both_dbs!(delete_objects);

async fn copy_object(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("src-bkt")
        .send()
        .await
        .expect("create");
    c.create_bucket()
        .bucket("dst-bkt")
        .send()
        .await
        .expect("create");
    let body = bytes(50_000, 3);
    c.put_object()
        .bucket("src-bkt")
        .key("a b+ü")
        .body(ByteStream::from(body.clone()))
        .content_type("image/png")
        .metadata("mtime", "1")
        .send()
        .await
        .expect("put");
    let blobs_before = blob_files(&s.data_dir().join("hot")).len();

    // COPY (default): body and headers carried over; no new blob file.
    let out = c
        .copy_object()
        .bucket("dst-bkt")
        .key("copy")
        .copy_source("src-bkt/a%20b%2B%C3%BC")
        .send()
        .await
        .expect("copy");
    let etag = out
        .copy_object_result()
        .and_then(|r| r.e_tag())
        .map(str::to_owned);
    assert_eq!(etag, Some(format!("\"{}\"", md5_hex(&body))));
    assert_eq!(get(s, "dst-bkt", "copy").await, body);
    let h = c
        .head_object()
        .bucket("dst-bkt")
        .key("copy")
        .send()
        .await
        .expect("head");
    assert_eq!(h.content_type(), Some("image/png"));
    assert_eq!(
        h.metadata()
            .and_then(|m| m.get("mtime"))
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(blob_files(&s.data_dir().join("hot")).len(), blobs_before);

    // rclone's mtime update: self-copy with REPLACE keeps the bytes, replaces the headers.
    c.copy_object()
        .bucket("src-bkt")
        .key("a b+ü")
        .copy_source("src-bkt/a%20b%2B%C3%BC")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("image/png")
        .metadata("mtime", "2")
        .send()
        .await
        .expect("self copy with REPLACE");
    let h = c
        .head_object()
        .bucket("src-bkt")
        .key("a b+ü")
        .send()
        .await
        .expect("head");
    assert_eq!(
        h.metadata()
            .and_then(|m| m.get("mtime"))
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(h.content_type(), Some("image/png"));
    assert_eq!(get(s, "src-bkt", "a b+ü").await, body);

    // Self-copy without changes is illegal in S3.
    let e = c
        .copy_object()
        .bucket("src-bkt")
        .key("a b+ü")
        .copy_source("src-bkt/a%20b%2B%C3%BC")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");

    let e = c
        .copy_object()
        .bucket("dst-bkt")
        .key("x")
        .copy_source("src-bkt/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");

    // Deleting the source leaves the copy intact, even after the collector runs.
    c.delete_object()
        .bucket("src-bkt")
        .key("a b+ü")
        .send()
        .await
        .expect("delete");
    s.gc(0).await;
    assert_eq!(get(s, "dst-bkt", "copy").await, body);
}
both_dbs!(copy_object);

async fn auth_errors(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("authz")
        .send()
        .await
        .expect("create");
    let wrong = s.client_for(ROOT_KEY, "definitely-not-the-secret");
    let e = wrong.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    assert_eq!(status(&e), 403);
    let unknown = s.client_for("JSUNKNOWNKEY00000000", "whatever");
    let e = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidAccessKeyId");

    // A read-only key reads but cannot write.
    put(s, "authz", "k", b"v").await;
    let ro = s.tenant_client("root", true).await;
    let got = ro
        .get_object()
        .bucket("authz")
        .key("k")
        .send()
        .await
        .expect("read");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"v"
    );
    let e = ro
        .put_object()
        .bucket("authz")
        .key("k")
        .body(ByteStream::from_static(b"w"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = ro
        .delete_object()
        .bucket("authz")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert_eq!(get(s, "authz", "k").await, b"v");
}
both_dbs!(auth_errors);

async fn tenants_are_isolated(s: &TestServer) {
    put_bucket(s, "shared-name").await;
    put(s, "shared-name", "root-key", b"root").await;
    let other = s.tenant_client("acme", false).await;
    // A root-tenant bucket is the global namespace's (as for anonymous callers): another
    // tenant may not use it without a grant...
    let e = other
        .get_object()
        .bucket("shared-name")
        .key("root-key")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert!(
        other
            .list_buckets()
            .send()
            .await
            .expect("list")
            .buckets()
            .is_empty()
    );
    // ...and the same name is free in its own namespace.
    other
        .create_bucket()
        .bucket("shared-name")
        .send()
        .await
        .expect("create");
    other
        .put_object()
        .bucket("shared-name")
        .key("root-key")
        .body(ByteStream::from_static(b"acme"))
        .send()
        .await
        .expect("put");
    assert_eq!(get(s, "shared-name", "root-key").await, b"root");
    // Any other tenant's bucket does not exist for anyone else (no existence leak).
    other
        .create_bucket()
        .bucket("acme-only")
        .send()
        .await
        .expect("create");
    let third = s.tenant_client("third", false).await;
    for c in [&s.client, &third] {
        let e = c
            .get_object()
            .bucket("acme-only")
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "NoSuchBucket");
        let e = c
            .list_objects_v2()
            .bucket("acme-only")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "NoSuchBucket");
    }
}
both_dbs!(tenants_are_isolated);

async fn put_bucket(s: &TestServer, name: &str) {
    s.client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .expect("create bucket");
}

async fn limits(s: &TestServer) {
    put_bucket(s, "limits").await;
    let c = &s.client;
    let long = "k".repeat(1025);
    let e = c
        .put_object()
        .bucket("limits")
        .key(&long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KeyTooLongError");
    let ok = "k".repeat(1024);
    put(s, "limits", &ok, b"x").await;

    let e = c
        .put_object()
        .bucket("limits")
        .key("meta")
        .metadata("big", "v".repeat(2100))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MetadataTooLarge");
    let e = c
        .get_object()
        .bucket("limits")
        .key("meta")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
}
both_dbs!(limits);

/// GetBucketLocation reports the LocationConstraint given at creation (any region is accepted
/// unless the region is enforced, as for signatures); without one, us-east-1's empty answer.
async fn location_constraint(s: &TestServer) {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let c = &s.client;
    c.create_bucket()
        .bucket("loc-eu")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .expect("create with constraint");
    let got = c
        .get_bucket_location()
        .bucket("loc-eu")
        .send()
        .await
        .expect("location");
    assert_eq!(
        got.location_constraint(),
        Some(&BucketLocationConstraint::EuWest1)
    );
    c.create_bucket()
        .bucket("loc-none")
        .send()
        .await
        .expect("create");
    let got = c
        .get_bucket_location()
        .bucket("loc-none")
        .send()
        .await
        .expect("location");
    assert_eq!(
        got.location_constraint().map(|l| l.as_str()).unwrap_or(""),
        ""
    );
}
both_dbs!(location_constraint);
