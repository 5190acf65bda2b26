//! Lifecycle rules: the configuration as S3 validates and returns it, `x-amz-expiration`, and
//! the worker's passes (run here with one-second days, on demand) over plain, versioned and
//! locked buckets and incomplete uploads.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator,
    LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, Tag, Transition, TransitionStorageClass, VersioningConfiguration,
};
use just_storage::workers::{LifecycleReport, lifecycle_once};

/// A lifecycle day in these tests.
const DAY: i64 = 1;

async fn pass(s: &TestServer) -> LifecycleReport {
    // Past one test day since anything the test wrote.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    lifecycle_once(s.engine(), DAY)
        .await
        .expect("lifecycle pass")
}

fn expire_days(id: &str, prefix: &str, days: i32) -> LifecycleRule {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .expect("rule")
}

async fn set_rules(c: &aws_sdk_s3::Client, bucket: &str, rules: Vec<LifecycleRule>) {
    let conf = BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .expect("conf");
    c.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(conf)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put lifecycle: {e:?}"));
}

async fn keys(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = c
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn configuration(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("lc-conf")
        .send()
        .await
        .expect("bucket");
    let e = c
        .get_bucket_lifecycle_configuration()
        .bucket("lc-conf")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");
    // Deleting none is fine, as in S3.
    c.delete_bucket_lifecycle()
        .bucket("lc-conf")
        .send()
        .await
        .expect("delete none");

    let tagged = LifecycleRule::builder()
        .status(ExpirationStatus::Disabled)
        .filter(
            LifecycleRuleFilter::builder()
                .and(
                    LifecycleRuleAndOperator::builder()
                        .prefix("t/")
                        .tags(Tag::builder().key("k").value("v").build().expect("tag"))
                        .object_size_greater_than(10)
                        .build(),
                )
                .build(),
        )
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(3)
                .newer_noncurrent_versions(2)
                .build(),
        )
        .build()
        .expect("rule");
    set_rules(c, "lc-conf", vec![expire_days("a", "logs/", 31), tagged]).await;
    let got = c
        .get_bucket_lifecycle_configuration()
        .bucket("lc-conf")
        .send()
        .await
        .expect("get");
    let rules = got.rules();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].id(), Some("a"));
    assert_eq!(rules[0].expiration().and_then(|e| e.days()), Some(31));
    // A rule without an ID gets one.
    assert!(rules[1].id().is_some_and(|id| !id.is_empty()));
    assert_eq!(rules[1].status(), &ExpirationStatus::Disabled);
    let and = rules[1].filter().and_then(|f| f.and()).expect("and");
    assert_eq!(and.prefix(), Some("t/"));
    assert_eq!(and.tags().len(), 1);
    assert_eq!(
        rules[1]
            .noncurrent_version_expiration()
            .and_then(|n| n.newer_noncurrent_versions()),
        Some(2)
    );

    // What S3 refuses; the stored configuration stays.
    let bad: Vec<(Vec<LifecycleRule>, &str)> = vec![
        (
            vec![expire_days("x", "a/", 1), expire_days("x", "b/", 2)],
            "InvalidArgument",
        ),
        (
            vec![expire_days(&"i".repeat(256), "a/", 1)],
            "InvalidArgument",
        ),
        (vec![expire_days("z", "a/", 0)], "InvalidArgument"),
        (
            vec![
                LifecycleRule::builder()
                    .id("t")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().prefix("a/").build())
                    .transitions(
                        Transition::builder()
                            .days(30)
                            .storage_class(TransitionStorageClass::Glacier)
                            .build(),
                    )
                    .build()
                    .expect("rule"),
            ],
            "NotImplemented",
        ),
        (
            vec![
                LifecycleRule::builder()
                    .id("none")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().prefix("a/").build())
                    .build()
                    .expect("rule"),
            ],
            "InvalidArgument",
        ),
    ];
    for (rules, want) in bad {
        let conf = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .expect("conf");
        let e = c
            .put_bucket_lifecycle_configuration()
            .bucket("lc-conf")
            .lifecycle_configuration(conf)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), want);
    }
    let body: &[u8] = br#"<LifecycleConfiguration><Rule><ID>r</ID><Prefix>a/</Prefix><Status>enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>"#;
    let raw = signed_raw(
        s.addr(),
        "PUT",
        "/lc-conf?lifecycle",
        &[],
        body,
        &sha256_hex(body),
    )
    .await;
    assert_eq!(raw.status, 400, "{raw:?}");
    assert!(raw.body.contains("MalformedXML"), "{raw:?}");
    let got = c
        .get_bucket_lifecycle_configuration()
        .bucket("lc-conf")
        .send()
        .await
        .expect("get");
    assert_eq!(got.rules().len(), 2);

    c.delete_bucket_lifecycle()
        .bucket("lc-conf")
        .send()
        .await
        .expect("delete");
    let e = c
        .get_bucket_lifecycle_configuration()
        .bucket("lc-conf")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");
}
both_dbs!(configuration);

async fn expiration_header_and_plain_buckets(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("lc-plain")
        .send()
        .await
        .expect("bucket");
    let size_rule = LifecycleRule::builder()
        .id("big")
        .status(ExpirationStatus::Enabled)
        .filter(
            LifecycleRuleFilter::builder()
                .object_size_greater_than(5)
                .build(),
        )
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .expect("rule");
    let tag_rule = LifecycleRule::builder()
        .id("tagged")
        .status(ExpirationStatus::Enabled)
        .filter(
            LifecycleRuleFilter::builder()
                .tag(
                    Tag::builder()
                        .key("temp")
                        .value("yes")
                        .build()
                        .expect("tag"),
                )
                .build(),
        )
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .expect("rule");
    set_rules(
        c,
        "lc-plain",
        vec![expire_days("logs", "logs/", 2), size_rule, tag_rule],
    )
    .await;

    // The header names the rule and S3's date: the midnight after creation plus the days.
    let out = c
        .put_object()
        .bucket("lc-plain")
        .key("logs/a")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .expect("put");
    let header = out.expiration().expect("x-amz-expiration").to_owned();
    assert!(header.contains(r#"rule-id="logs""#), "{header}");
    let midnight = (time::OffsetDateTime::now_utc() + time::Duration::days(3)).date();
    let want = format!(
        "{:02} {} {}",
        midnight.day(),
        &format!("{:?}", midnight.month())[..3],
        midnight.year()
    );
    assert!(
        header.contains(&want) && header.contains("00:00:00 GMT"),
        "{header} vs {want}"
    );
    let head = c
        .head_object()
        .bucket("lc-plain")
        .key("logs/a")
        .send()
        .await
        .expect("head");
    assert_eq!(head.expiration(), Some(header.as_str()));
    let out = c
        .put_object()
        .bucket("lc-plain")
        .key("keep/small")
        .body(ByteStream::from_static(b"tiny"))
        .send()
        .await
        .expect("put");
    assert_eq!(out.expiration(), None);
    put_bytes(c, "lc-plain", "keep/large-body", b"more than five").await;
    c.put_object()
        .bucket("lc-plain")
        .key("keep/tagged")
        .tagging("temp=yes")
        .body(ByteStream::from_static(b"t"))
        .send()
        .await
        .expect("put tagged");

    // One day: the large and the tagged object expire; logs/ (two days) and the small stay.
    let r = pass(s).await;
    assert_eq!(r.expired, 2, "{r:?}");
    assert_eq!(keys(c, "lc-plain").await, ["keep/small", "logs/a"]);
    let r = pass(s).await;
    assert_eq!(r.expired, 1, "{r:?}");
    assert_eq!(keys(c, "lc-plain").await, ["keep/small"]);
    // Their blobs are released like any delete's.
    let fsck = just_storage::workers::fsck(s.engine(), false, std::time::Duration::ZERO)
        .await
        .expect("fsck");
    assert!(fsck.is_clean(), "{fsck:?}");
}
both_dbs!(expiration_header_and_plain_buckets);

async fn versioned_buckets(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("lc-ver")
        .send()
        .await
        .expect("bucket");
    c.put_bucket_versioning()
        .bucket("lc-ver")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    put_bytes(c, "lc-ver", "doc", b"one").await;
    let _v2 = put_bytes(c, "lc-ver", "doc", b"two").await;
    let v3 = put_bytes(c, "lc-ver", "doc", b"three").await;
    let _v4 = put_bytes(c, "lc-ver", "doc", b"four").await;
    put_bytes(c, "lc-ver", "gone", b"x").await;
    c.delete_object()
        .bucket("lc-ver")
        .key("gone")
        .send()
        .await
        .expect("marker");
    let noncurrent = LifecycleRule::builder()
        .id("noncurrent")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("doc").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(1)
                .newer_noncurrent_versions(1)
                .build(),
        )
        .build()
        .expect("rule");
    let gone = LifecycleRule::builder()
        .id("gone")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("gone").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(1)
                .build(),
        )
        .build()
        .expect("rule");
    let markers = LifecycleRule::builder()
        .id("markers")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(
            LifecycleExpiration::builder()
                .expired_object_delete_marker(true)
                .build(),
        )
        .build()
        .expect("rule");
    set_rules(c, "lc-ver", vec![noncurrent, gone, markers]).await;

    // doc: v4 current; v3 is the one newer noncurrent version kept; v2 and v1 go. gone: its
    // one noncurrent version goes, then its marker, with nothing behind it.
    let r = pass(s).await;
    assert_eq!(r.noncurrent_removed, 3, "{r:?}");
    assert_eq!(r.markers_removed, 1, "{r:?}");
    let listed = c
        .list_object_versions()
        .bucket("lc-ver")
        .send()
        .await
        .expect("versions");
    let ids: Vec<&str> = listed
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(ids.len(), 2, "{listed:?}");
    assert!(ids.contains(&v3.as_str()));
    assert!(listed.delete_markers().is_empty(), "{listed:?}");

    // Expiring a current version in a versioned bucket adds a delete marker.
    set_rules(c, "lc-ver", vec![expire_days("all", "", 1)]).await;
    let r = pass(s).await;
    assert_eq!(r.expired, 1, "{r:?}");
    let e = c
        .get_object()
        .bucket("lc-ver")
        .key("doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let listed = c
        .list_object_versions()
        .bucket("lc-ver")
        .send()
        .await
        .expect("versions");
    assert_eq!(listed.delete_markers().len(), 1);
    assert_eq!(listed.versions().len(), 2);
    let fsck = just_storage::workers::fsck(s.engine(), false, std::time::Duration::ZERO)
        .await
        .expect("fsck");
    assert!(fsck.is_clean(), "{fsck:?}");
}
both_dbs!(versioned_buckets);

async fn locked_versions_and_uploads(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("lc-lock")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("bucket");
    let v1 = put_bytes(c, "lc-lock", "held", b"one").await;
    c.put_object_legal_hold()
        .bucket("lc-lock")
        .key("held")
        .version_id(&v1)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .expect("hold");
    put_bytes(c, "lc-lock", "held", b"two").await;
    let up = c
        .create_multipart_upload()
        .bucket("lc-lock")
        .key("uploads/big")
        .send()
        .await
        .expect("upload");
    let kept = c
        .create_multipart_upload()
        .bucket("lc-lock")
        .key("other/big")
        .send()
        .await
        .expect("upload");
    let noncurrent = LifecycleRule::builder()
        .id("noncurrent")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(1)
                .build(),
        )
        .build()
        .expect("rule");
    let abort = LifecycleRule::builder()
        .id("abort")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("uploads/").build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()
        .expect("rule");
    set_rules(c, "lc-lock", vec![noncurrent, abort]).await;
    let r = pass(s).await;
    assert_eq!((r.locked, r.noncurrent_removed), (1, 0), "{r:?}");
    assert_eq!(r.uploads_aborted, 1, "{r:?}");
    c.get_object()
        .bucket("lc-lock")
        .key("held")
        .version_id(&v1)
        .send()
        .await
        .expect("held version kept");
    let e = c
        .list_parts()
        .bucket("lc-lock")
        .key("uploads/big")
        .upload_id(up.upload_id().expect("id"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    c.list_parts()
        .bucket("lc-lock")
        .key("other/big")
        .upload_id(kept.upload_id().expect("id"))
        .send()
        .await
        .expect("outside the rule's prefix");
}
both_dbs!(locked_versions_and_uploads);
