//! Versioning and Object Lock with the SDK, on both databases: the S3 documentation's
//! versioning examples (versions, delete markers, restoring by deleting a marker, permanent
//! deletes), suspended buckets and the null version, copies, tags and multipart by version,
//! version listings page by page, Object Lock retention and legal holds, and many writers and
//! deleters on one key.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete,
    ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, Tag, Tagging, VersioningConfiguration,
};
use std::collections::BTreeSet;

async fn set_versioning(c: &Client, bucket: &str, status: BucketVersioningStatus) {
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .expect("put versioning");
}

async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    let out = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("put");
    out.version_id().map(str::to_owned)
}

async fn body_of(c: &Client, bucket: &str, key: &str, version: Option<&str>) -> Vec<u8> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key} {version:?}: {e:?}"));
    out.body.collect().await.expect("body").to_vec()
}

/// `(version id, is latest, is a delete marker)` of a key's versions, as listed: newest first.
async fn versions_of(c: &Client, bucket: &str, key: &str) -> Vec<(String, bool, bool)> {
    let out = c
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .expect("list versions");
    // Versions and markers come in two lists; merged back by the order of the page's
    // LastModified is not exact, so the test lists each kind in order and compares them apart.
    let mut all: Vec<(String, bool, bool)> = out
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| {
            let id = v.version_id().expect("version id").to_owned();
            (id, v.is_latest() == Some(true), false)
        })
        .collect();
    all.extend(
        out.delete_markers()
            .iter()
            .filter(|m| m.key() == Some(key))
            .map(|m| {
                let id = m.version_id().expect("marker id").to_owned();
                (id, m.is_latest() == Some(true), true)
            }),
    );
    all
}

/// The references held on the blob of `body` (its row's count; 0 when it has no row).
async fn refs_on(s: &TestServer, body: &[u8]) -> i64 {
    let hash = sha256_hex(body);
    let rows = s
        .engine()
        .meta()
        .blob_rows("", 10_000)
        .await
        .expect("blob rows");
    rows.iter()
        .find(|r| r.blob.hash == hash)
        .map_or(0, |r| r.ref_count)
}

/// The S3 user guide's walk-through: versions of one key, a delete marker, GET of the key and of
/// the marker, restoring by deleting the marker, permanent deletes; a hundred versions of one
/// body hold one blob; the bucket empties only when every version is gone.
async fn versions_and_delete_markers(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("vers")
        .send()
        .await
        .expect("bucket");
    let none = c.get_bucket_versioning().bucket("vers").send().await;
    assert!(none.expect("versioning").status().is_none(), "never set");
    assert_eq!(
        put(c, "vers", "k", b"before").await,
        None,
        "unversioned: no id"
    );
    set_versioning(c, "vers", BucketVersioningStatus::Enabled).await;
    let got = c.get_bucket_versioning().bucket("vers").send().await;
    let enabled = got.expect("versioning").status().cloned();
    assert_eq!(enabled, Some(BucketVersioningStatus::Enabled));

    let body = bytes(40_000, 7);
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(put(c, "vers", "k", &body).await.expect("a version id"));
    }
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 100, "every version has its own id");
    assert_eq!(
        refs_on(s, &body).await,
        100,
        "one blob, a reference per version"
    );
    let v2 = put(c, "vers", "k", b"second").await.expect("id");
    let v3 = put(c, "vers", "k", b"third").await.expect("id");
    assert_eq!(body_of(c, "vers", "k", None).await, b"third");
    assert_eq!(body_of(c, "vers", "k", Some(&v2)).await, b"second");
    assert_eq!(body_of(c, "vers", "k", Some("null")).await, b"before");
    let head = c.head_object().bucket("vers").key("k").send().await;
    assert_eq!(head.expect("head").version_id(), Some(v3.as_str()));

    let listed = versions_of(c, "vers", "k").await;
    let mut want: Vec<(String, bool, bool)> = vec![(v3.clone(), true, false)];
    want.push((v2.clone(), false, false));
    want.extend(ids.iter().rev().map(|id| (id.clone(), false, false)));
    want.push(("null".into(), false, false));
    assert_eq!(listed, want, "newest first, one current");

    // DELETE adds a marker; the key is gone for GET, HEAD and listings, its versions are not.
    let d = c.delete_object().bucket("vers").key("k").send().await;
    let d = d.expect("delete");
    assert_eq!(d.delete_marker(), Some(true));
    let marker = d.version_id().expect("marker id").to_owned();
    let e = c
        .get_object()
        .bucket("vers")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchKey"));
    let raw = e.raw_response().expect("response");
    assert_eq!(raw.headers().get("x-amz-delete-marker"), Some("true"));
    assert_eq!(raw.headers().get("x-amz-version-id"), Some(marker.as_str()));
    let e = c
        .head_object()
        .bucket("vers")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let e = (c.get_object().bucket("vers").key("k").version_id(&marker))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 405, "a marker by its id: MethodNotAllowed");
    // A marker has no tags: by its id 405, as the current version 404.
    let tagging = || {
        aws_sdk_s3::types::Tagging::builder()
            .tag_set(
                aws_sdk_s3::types::Tag::builder()
                    .key("a")
                    .value("b")
                    .build()
                    .expect("tag"),
            )
            .build()
            .expect("tagging")
    };
    let e = (c.put_object_tagging().bucket("vers").key("k"))
        .version_id(&marker)
        .tagging(tagging())
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (405, "MethodNotAllowed"));
    let e = (c.put_object_tagging().bucket("vers").key("k"))
        .tagging(tagging())
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchKey"));
    let e = (c.get_object_tagging().bucket("vers").key("k"))
        .version_id(&marker)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 405);
    let listing = c
        .list_objects_v2()
        .bucket("vers")
        .send()
        .await
        .expect("list");
    assert!(listing.contents().is_empty(), "{listing:?}");
    let usage = s.engine().meta().usage().await.expect("usage");
    let u = usage
        .iter()
        .find(|u| u.bucket == "vers")
        .expect("the bucket's usage");
    let noncurrent_bytes = 100 * body.len() as i64 + (6 + 6 + 5);
    assert_eq!(
        (
            u.objects,
            u.noncurrent_versions,
            u.noncurrent_bytes,
            u.delete_markers
        ),
        (0, 103, noncurrent_bytes, 1),
        "noncurrent versions and markers apart"
    );
    assert_eq!(body_of(c, "vers", "k", Some(&v3)).await, b"third");
    let e = c.delete_bucket().bucket("vers").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    let e = (c.get_object().bucket("vers").key("k").version_id("nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument", "not a version id");
    let missing = "0190a0d0-0000-7000-8000-000000000000";
    let e = (c.get_object().bucket("vers").key("k").version_id(missing))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchVersion");

    // Deleting the marker restores the version before it.
    let d = c
        .delete_object()
        .bucket("vers")
        .key("k")
        .version_id(&marker);
    let d = d.send().await.expect("delete the marker");
    assert_eq!(d.delete_marker(), Some(true), "it was a marker");
    assert_eq!(body_of(c, "vers", "k", None).await, b"third");
    // Permanent deletes: of a noncurrent version, then of the current one.
    let d = c.delete_object().bucket("vers").key("k").version_id(&v2);
    assert_eq!(d.send().await.expect("delete v2").delete_marker(), None);
    let d = c.delete_object().bucket("vers").key("k").version_id(&v3);
    d.send().await.expect("delete v3");
    assert_eq!(
        body_of(c, "vers", "k", None).await,
        body,
        "the newest left is current"
    );
    let latest: Vec<_> = versions_of(c, "vers", "k").await;
    assert_eq!(latest.len(), 101);
    assert_eq!(latest[0], (ids[99].clone(), true, false));
    // A version that does not exist (any more) is no error.
    let again = c.delete_object().bucket("vers").key("k").version_id(&v3);
    again.send().await.expect("delete again");

    // Remove the hundred through DeleteObjects: the blob's references go with them.
    let objects: Vec<ObjectIdentifier> = ids
        .iter()
        .map(|id| {
            let o = ObjectIdentifier::builder().key("k").version_id(id);
            o.build().expect("identifier")
        })
        .collect();
    let del = Delete::builder().set_objects(Some(objects)).build();
    let out = c
        .delete_objects()
        .bucket("vers")
        .delete(del.expect("delete"))
        .send();
    let out = out.await.expect("delete objects");
    assert_eq!(out.deleted().len(), 100);
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert_eq!(refs_on(s, &body).await, 0);
    assert_eq!(
        body_of(c, "vers", "k", None).await,
        b"before",
        "the null version"
    );
    let d = c.delete_object().bucket("vers").key("k").version_id("null");
    d.send().await.expect("delete null");
    let e = c
        .get_object()
        .bucket("vers")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    assert!(versions_of(c, "vers", "k").await.is_empty());
    assert_refcounts(s).await;
    c.delete_bucket()
        .bucket("vers")
        .send()
        .await
        .expect("empty now");
}
both_dbs!(versions_and_delete_markers);

/// A suspended bucket writes the null version: a PUT replaces it (current or not), a DELETE
/// replaces it with a null delete marker; versions with ids stay. Writes there answer no
/// version id.
async fn suspended_buckets_replace_the_null_version(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("susp")
        .send()
        .await
        .expect("bucket");
    put(c, "susp", "k", b"plain").await;
    set_versioning(c, "susp", BucketVersioningStatus::Enabled).await;
    let v1 = put(c, "susp", "k", b"one").await.expect("id");
    set_versioning(c, "susp", BucketVersioningStatus::Suspended).await;
    assert_eq!(
        put(c, "susp", "k", b"null two").await,
        None,
        "suspended: no id"
    );
    let listed = versions_of(c, "susp", "k").await;
    let want = [("null".into(), true, false), (v1.clone(), false, false)];
    assert_eq!(listed, want, "the plain version was replaced");
    assert_eq!(body_of(c, "susp", "k", Some("null")).await, b"null two");
    assert_eq!(refs_on(s, b"plain").await, 0);

    let d = c.delete_object().bucket("susp").key("k").send().await;
    let d = d.expect("delete");
    assert_eq!(d.delete_marker(), Some(true));
    assert_eq!(d.version_id(), Some("null"));
    let listed = versions_of(c, "susp", "k").await;
    let want = [(v1.clone(), false, false), ("null".into(), true, true)];
    assert_eq!(listed, want, "the null version became a null marker");
    assert_eq!(refs_on(s, b"null two").await, 0);
    assert_eq!(put(c, "susp", "k", b"null three").await, None);
    let listed = versions_of(c, "susp", "k").await;
    let want = [("null".into(), true, false), (v1.clone(), false, false)];
    assert_eq!(listed, want, "and back");
    assert_eq!(body_of(c, "susp", "k", None).await, b"null three");
    assert_eq!(body_of(c, "susp", "k", Some(&v1)).await, b"one");

    // Re-enabled: new versions stack on the null one.
    set_versioning(c, "susp", BucketVersioningStatus::Enabled).await;
    let v2 = put(c, "susp", "k", b"two").await.expect("id");
    let ids: Vec<String> = versions_of(c, "susp", "k")
        .await
        .into_iter()
        .map(|v| v.0)
        .collect();
    assert_eq!(ids, [v2, "null".into(), v1]);
    let e = c
        .put_bucket_versioning()
        .bucket("susp")
        .versioning_configuration(VersioningConfiguration::builder().build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MalformedXML", "a status is required");
    assert_refcounts(s).await;
}
both_dbs!(suspended_buckets_replace_the_null_version);

/// Copies, tags and GetObjectAttributes name a version; a completed multipart upload is a new
/// version; ListObjectVersions pages by key and version markers, with a delimiter too.
async fn versions_by_id_and_pages(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("pages")
        .send()
        .await
        .expect("bucket");
    set_versioning(c, "pages", BucketVersioningStatus::Enabled).await;
    let a1 = put(c, "pages", "a", b"a one").await.expect("id");
    let a2 = put(c, "pages", "a", b"a two").await.expect("id");
    let copied = c
        .copy_object()
        .bucket("pages")
        .key("copy")
        .copy_source(format!("pages/a?versionId={a1}"))
        .send()
        .await
        .expect("copy by version");
    assert_eq!(copied.copy_source_version_id(), Some(a1.as_str()));
    assert!(copied.version_id().is_some());
    assert_eq!(body_of(c, "pages", "copy", None).await, b"a one");

    let tags = Tagging::builder()
        .tag_set(Tag::builder().key("old").value("yes").build().expect("tag"))
        .build()
        .expect("tagging");
    let t = c
        .put_object_tagging()
        .bucket("pages")
        .key("a")
        .version_id(&a1);
    t.tagging(tags).send().await.expect("tag a version");
    let got = c
        .get_object_tagging()
        .bucket("pages")
        .key("a")
        .version_id(&a1);
    assert_eq!(got.send().await.expect("tags").tag_set().len(), 1);
    let got = c.get_object_tagging().bucket("pages").key("a").send().await;
    assert!(
        got.expect("tags").tag_set().is_empty(),
        "the current one has none"
    );

    let up = c
        .create_multipart_upload()
        .bucket("pages")
        .key("a")
        .send()
        .await;
    let up = up.expect("create upload");
    let id = up.upload_id().expect("upload id");
    let part = c
        .upload_part()
        .bucket("pages")
        .key("a")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"a three"))
        .send()
        .await
        .expect("part");
    let done = c
        .complete_multipart_upload()
        .bucket("pages")
        .key("a")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let a3 = done.version_id().expect("completion's version").to_owned();
    assert_eq!(body_of(c, "pages", "a", Some(&a2)).await, b"a two");
    assert_eq!(body_of(c, "pages", "a", None).await, b"a three");

    // Pages of two: every version once, in key order, newest first.
    for k in ["b/1", "b/2", "c"] {
        put(c, "pages", k, k.as_bytes()).await;
        put(c, "pages", k, k.as_bytes()).await;
    }
    let all = c.list_object_versions().bucket("pages").send().await;
    let all = all.expect("all");
    let full: Vec<(String, String)> = all
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap_or("").into(),
                v.version_id().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(full.len(), 10);
    assert_eq!(
        full[..3],
        [("a".into(), a3.clone()), ("a".into(), a2), ("a".into(), a1)]
    );
    let (mut paged, mut markers) = (Vec::new(), (None::<String>, None::<String>));
    for _ in 0..10 {
        let page = c
            .list_object_versions()
            .bucket("pages")
            .max_keys(2)
            .set_key_marker(markers.0.clone())
            .set_version_id_marker(markers.1.clone())
            .send()
            .await
            .expect("page");
        paged.extend(page.versions().iter().map(|v| {
            (
                v.key().unwrap_or("").to_owned(),
                v.version_id().unwrap_or("").to_owned(),
            )
        }));
        if page.is_truncated() != Some(true) {
            break;
        }
        let next = (page.next_key_marker(), page.next_version_id_marker());
        markers = (next.0.map(str::to_owned), next.1.map(str::to_owned));
    }
    assert_eq!(paged, full, "the pages add up to the whole listing");
    let rolled = c
        .list_object_versions()
        .bucket("pages")
        .delimiter("/")
        .send();
    let rolled = rolled.await.expect("delimiter");
    let prefixes: Vec<&str> = rolled
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["b/"]);
    let keys: BTreeSet<&str> = rolled.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, BTreeSet::from(["a", "c", "copy"]));
    let e = c
        .list_object_versions()
        .bucket("pages")
        .version_id_marker(a3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "InvalidArgument",
        "a version marker needs a key marker"
    );
    assert_refcounts(s).await;
}
both_dbs!(versions_by_id_and_pages);

/// `admin tenant delete --force` empties versioned buckets too: every version and delete
/// marker goes, then the bucket.
async fn forced_tenant_delete_removes_every_version(s: &TestServer) {
    let c = s.tenant_client("leaving", false).await;
    c.create_bucket()
        .bucket("hist")
        .send()
        .await
        .expect("bucket");
    set_versioning(&c, "hist", BucketVersioningStatus::Enabled).await;
    put(&c, "hist", "k", b"one").await;
    put(&c, "hist", "k", b"two").await;
    c.delete_object()
        .bucket("hist")
        .key("k")
        .send()
        .await
        .expect("marker");
    let deleted = s.engine().delete_tenant("leaving", true).await;
    assert_eq!(
        deleted.expect("forced delete"),
        3,
        "two versions and a marker"
    );
    assert_eq!(refs_on(s, b"two").await, 0);
    assert_refcounts(s).await;
}
both_dbs!(forced_tenant_delete_removes_every_version);

fn days(n: i32, mode: ObjectLockRetentionMode) -> ObjectLockConfiguration {
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(DefaultRetention::builder().mode(mode).days(n).build())
                .build(),
        )
        .build()
}

fn in_days(n: i64) -> aws_sdk_s3::primitives::DateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    aws_sdk_s3::primitives::DateTime::from_secs(secs + n * 86_400)
}

/// Object Lock: a bucket created with it is versioned for good; a locked version cannot be
/// deleted (GOVERNANCE only with the bypass header, COMPLIANCE not at all, a legal hold not at
/// all) nor its retention shortened, and the collector keeps its blob. A delete marker on a
/// locked key is allowed. Lock headers on a bucket without Object Lock are refused.
async fn object_lock_holds_versions(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("bucket");
    let e = (c.put_object().bucket("plain").key("k"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_days(1))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest", "no Object Lock on this bucket");
    let e = c
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ObjectLockConfigurationNotFoundError");
    let e = c.put_object_lock_configuration().bucket("plain");
    let e = e.object_lock_configuration(days(1, ObjectLockRetentionMode::Governance));
    assert_eq!(code(&e.send().await.unwrap_err()), "InvalidBucketState");

    let create = c
        .create_bucket()
        .bucket("worm")
        .object_lock_enabled_for_bucket(true);
    create.send().await.expect("bucket with Object Lock");
    let v = c
        .get_bucket_versioning()
        .bucket("worm")
        .send()
        .await
        .expect("versioning");
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let e = c
        .put_bucket_versioning()
        .bucket("worm")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidBucketState");
    let e = c.put_object_lock_configuration().bucket("worm");
    let e = e.object_lock_configuration(days(0, ObjectLockRetentionMode::Governance));
    assert_eq!(code(&e.send().await.unwrap_err()), "InvalidRetentionPeriod");
    let p = c.put_object_lock_configuration().bucket("worm");
    let p = p.object_lock_configuration(days(1, ObjectLockRetentionMode::Governance));
    p.send().await.expect("default retention");
    let got = c
        .get_object_lock_configuration()
        .bucket("worm")
        .send()
        .await;
    let got = got
        .expect("get config")
        .object_lock_configuration()
        .cloned();
    assert_eq!(got, Some(days(1, ObjectLockRetentionMode::Governance)));

    // The default applies: GOVERNANCE for a day.
    let body = bytes(50_000, 3);
    let v1 = put(c, "worm", "k", &body).await.expect("id");
    let head = c
        .head_object()
        .bucket("worm")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = head.object_lock_retain_until_date().expect("date").secs();
    assert!(
        (until - in_days(1).secs()).abs() < 120,
        "a day from now: {until}"
    );
    let del = |v: &str, bypass: bool| {
        let d = c.delete_object().bucket("worm").key("k").version_id(v);
        d.bypass_governance_retention(bypass).send()
    };
    let e = del(&v1, false).await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    // A plain DELETE is a marker: allowed, and the version stays, blob and all.
    let d = c
        .delete_object()
        .bucket("worm")
        .key("k")
        .send()
        .await
        .expect("marker");
    let marker = d.version_id().expect("marker id").to_owned();
    s.gc(0).await;
    assert_eq!(body_of(c, "worm", "k", Some(&v1)).await, body);
    del(&marker, false).await.expect("a marker is not locked");

    // Retention can grow without the bypass, and shrink only with it.
    let retention = |mode: ObjectLockRetentionMode, n: i64| {
        ObjectLockRetention::builder()
            .mode(mode)
            .retain_until_date(in_days(n))
            .build()
    };
    let set = |mode, n, bypass: bool| {
        c.put_object_retention()
            .bucket("worm")
            .key("k")
            .version_id(&v1)
            .retention(retention(mode, n))
            .bypass_governance_retention(bypass)
            .send()
    };
    set(ObjectLockRetentionMode::Governance, 3, false)
        .await
        .expect("longer");
    let e = set(ObjectLockRetentionMode::Governance, 2, false)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "shorter without the bypass");
    let e = set(ObjectLockRetentionMode::Compliance, 3, false)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "a new mode without the bypass");
    set(ObjectLockRetentionMode::Governance, 2, true)
        .await
        .expect("shorter with it");
    let r = c
        .get_object_retention()
        .bucket("worm")
        .key("k")
        .version_id(&v1);
    let r = r.send().await.expect("retention");
    let r = r.retention().expect("retention");
    assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Governance));

    // A legal hold holds even against the bypass.
    let hold = |on: bool| {
        let status = match on {
            true => ObjectLockLegalHoldStatus::On,
            false => ObjectLockLegalHoldStatus::Off,
        };
        c.put_object_legal_hold()
            .bucket("worm")
            .key("k")
            .version_id(&v1)
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
    };
    hold(true).await.expect("hold on");
    let e = del(&v1, true).await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "held");
    hold(false).await.expect("hold off");

    // COMPLIANCE: no one shortens it or deletes the version, bypass or not.
    set(ObjectLockRetentionMode::Compliance, 2, true)
        .await
        .expect("to compliance");
    let e = set(ObjectLockRetentionMode::Compliance, 1, true)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "compliance is not shortened");
    let e = set(ObjectLockRetentionMode::Governance, 2, true)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "nor weakened");
    let e = del(&v1, true).await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let id = ObjectIdentifier::builder().key("k").version_id(&v1).build();
    let batch = Delete::builder().set_objects(Some(vec![id.expect("id")]));
    let out = c
        .delete_objects()
        .bucket("worm")
        .delete(batch.build().expect("delete"))
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("delete objects answers per key");
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
    assert_eq!(out.errors()[0].version_id(), Some(v1.as_str()));
    s.gc(0).await;
    assert_eq!(
        body_of(c, "worm", "k", Some(&v1)).await,
        body,
        "the blob stays"
    );
    assert_eq!(refs_on(s, &body).await, 1);

    // A GOVERNANCE version goes with the bypass.
    let v2 = put(c, "worm", "k", b"governed").await.expect("id");
    del(&v2, true).await.expect("bypassed");
    assert_refcounts(s).await;
}
both_dbs!(object_lock_holds_versions);

/// Writers and deleters on one key of a versioned bucket at once: the versions listed are
/// exactly the acknowledged versions and markers less the acknowledged permanent deletes,
/// one of them current, with exact reference counts.
async fn concurrent_writers_and_deleters(s: &TestServer) {
    let c = s.client.clone();
    c.create_bucket()
        .bucket("race")
        .send()
        .await
        .expect("bucket");
    set_versioning(&c, "race", BucketVersioningStatus::Enabled).await;
    let mut tasks = Vec::new();
    for w in 0..6u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (mut kept, mut removed) = (Vec::new(), Vec::new());
            for i in 0..15u64 {
                // Two bodies shared by every writer: dedup under contention.
                let body = if i % 2 == 0 {
                    b"even".as_slice()
                } else {
                    b"odd"
                };
                match (w % 3, i % 4) {
                    (0, 3) => {
                        let d = c.delete_object().bucket("race").key("k").send().await;
                        kept.push(d.expect("marker").version_id().expect("id").to_owned());
                    }
                    (1, 3) => {
                        // Remove this writer's own latest version for good.
                        if let Some(v) = kept.pop() {
                            let d = c.delete_object().bucket("race").key("k").version_id(&v);
                            d.send().await.expect("permanent delete");
                            removed.push(v);
                        }
                    }
                    _ => kept.push(put(&c, "race", "k", body).await.expect("id")),
                }
            }
            (kept, removed)
        }));
    }
    let (mut want, mut gone) = (BTreeSet::new(), Vec::new());
    for t in tasks {
        let (kept, removed) = t.await.expect("task");
        want.extend(kept);
        gone.extend(removed);
    }
    assert!(!gone.is_empty(), "the deleters removed versions");
    for v in &gone {
        let e = c
            .get_object()
            .bucket("race")
            .key("k")
            .version_id(v)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "NoSuchVersion", "removed version {v}");
    }
    let listed = versions_of(&c, "race", "k").await;
    let got: BTreeSet<String> = listed.iter().map(|v| v.0.clone()).collect();
    assert_eq!(got, want, "exactly the acknowledged versions");
    assert_eq!(
        listed.iter().filter(|v| v.1).count(),
        1,
        "one current version"
    );
    let versions = listed.iter().filter(|v| !v.2).count() as i64;
    let even = refs_on(s, b"even").await;
    let odd = refs_on(s, b"odd").await;
    assert_eq!(even + odd, versions, "a reference per version kept");
    assert_refcounts(s).await;
}
both_dbs!(concurrent_writers_and_deleters);

/// What S3 refuses around versions and locks, with the codes it answers.
async fn version_and_lock_bad_inputs(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("locked-bad")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("bucket");
    // A mode without a date, a date without a mode, a date in the past.
    let e = (c.put_object().bucket("locked-bad").key("k"))
        .object_lock_mode(ObjectLockMode::Governance)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let e = (c.put_object().bucket("locked-bad").key("k"))
        .object_lock_retain_until_date(in_days(1))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let e = (c.put_object().bucket("locked-bad").key("k"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_days(-1))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let v = put(c, "locked-bad", "k", b"x").await.expect("put");
    let e = (c.put_object_retention().bucket("locked-bad").key("k"))
        .version_id(&v)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Governance)
                .retain_until_date(in_days(-1))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    // Nothing was stored by the refused requests: one version.
    let listed = c
        .list_object_versions()
        .bucket("locked-bad")
        .send()
        .await
        .expect("versions");
    assert_eq!(listed.versions().len(), 1);

    // MFA Delete is not built: refused, never pretended.
    let e = c
        .put_bucket_versioning()
        .bucket("locked-bad")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .mfa_delete(aws_sdk_s3::types::MfaDelete::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (501, "NotImplemented"));

    // A malformed version-id-marker is refused; a well-formed one that names no version
    // resumes after its key.
    put(c, "locked-bad", "later", b"y").await.expect("put");
    let e = c
        .list_object_versions()
        .bucket("locked-bad")
        .key_marker("k")
        .version_id_marker("not-a-version")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let stale = c
        .list_object_versions()
        .bucket("locked-bad")
        .key_marker("k")
        .version_id_marker("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        .send()
        .await
        .expect("stale marker");
    let keys: Vec<&str> = stale.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, ["later"]);
}
both_dbs!(version_and_lock_bad_inputs);
