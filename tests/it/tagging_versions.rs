//! Object tagging, ListObjectVersions and GetBucketVersioning on unversioned buckets,
//! GetObjectAttributes.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectAttributes, Tag, Tagging, TaggingDirective};

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"))
                .collect(),
        ))
        .build()
        .expect("tagging")
}

async fn tags_of(s: &TestServer, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = s
        .client
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get tagging");
    let mut v: Vec<(String, String)> = out
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    v.sort();
    v
}

async fn object_tagging(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("tags")
        .send()
        .await
        .expect("bucket");
    c.put_object()
        .bucket("tags")
        .key("k")
        .tagging("project=apollo&owner=J%C3%BCrgen%20S")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put with tags");
    assert_eq!(
        tags_of(s, "tags", "k").await,
        [
            ("owner".into(), "Jürgen S".into()),
            ("project".into(), "apollo".into())
        ]
    );
    let got = c
        .get_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(got.tag_count(), Some(2));
    // HEAD tells the count too (s3s's HEAD output has no field for it).
    let head = signed_raw(s.addr(), "HEAD", "/tags/k", &[], b"", &sha256_hex(b"")).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("x-amz-tagging-count"), Some("2"), "{head:?}");

    c.put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(tagging(&[("a", "1")]))
        .send()
        .await
        .expect("put tagging");
    assert_eq!(tags_of(s, "tags", "k").await, [("a".into(), "1".into())]);

    // COPY keeps the source's tags; REPLACE takes the request's.
    c.copy_object()
        .bucket("tags")
        .key("copied")
        .copy_source("tags/k")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        tags_of(s, "tags", "copied").await,
        [("a".into(), "1".into())]
    );
    c.copy_object()
        .bucket("tags")
        .key("replaced")
        .copy_source("tags/k")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("b=2")
        .send()
        .await
        .expect("copy replace");
    assert_eq!(
        tags_of(s, "tags", "replaced").await,
        [("b".into(), "2".into())]
    );

    c.delete_object_tagging()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .expect("delete tagging");
    assert!(tags_of(s, "tags", "k").await.is_empty());

    let eleven: Vec<(String, String)> =
        (0..11).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let refs: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let e = c
        .put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(tagging(&refs))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
    let long_key = "k".repeat(129);
    let e = c
        .put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(tagging(&[(long_key.as_str(), "v")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
    let e = c
        .put_object_tagging()
        .bucket("tags")
        .key("missing")
        .tagging(tagging(&[("a", "1")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let e = c
        .put_object()
        .bucket("tags")
        .key("dup")
        .tagging("a=1&a=2")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
}
both_dbs!(object_tagging);

async fn versions_and_attributes(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("vers")
        .send()
        .await
        .expect("bucket");
    for k in ["a", "b/1", "b/2", "c"] {
        c.put_object()
            .bucket("vers")
            .key(k)
            .body(ByteStream::from(k.as_bytes().to_vec()))
            .send()
            .await
            .expect("put");
    }
    let v = c
        .get_bucket_versioning()
        .bucket("vers")
        .send()
        .await
        .expect("versioning");
    assert!(v.status().is_none());
    let out = c
        .list_object_versions()
        .bucket("vers")
        .delimiter("/")
        .send()
        .await
        .expect("versions");
    let keys: Vec<&str> = out.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, ["a", "c"]);
    assert!(
        out.versions()
            .iter()
            .all(|v| v.version_id() == Some("null") && v.is_latest() == Some(true))
    );
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["b/"]);
    let page = c
        .list_object_versions()
        .bucket("vers")
        .max_keys(2)
        .send()
        .await
        .expect("page");
    assert_eq!(page.is_truncated(), Some(true));
    let next = c
        .list_object_versions()
        .bucket("vers")
        .key_marker(page.next_key_marker().expect("marker"))
        .version_id_marker(page.next_version_id_marker().expect("vmarker"))
        .send()
        .await
        .expect("next page");
    let keys: Vec<&str> = next.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, ["b/2", "c"]);

    let attrs = c
        .get_object_attributes()
        .bucket("vers")
        .key("a")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::StorageClass)
        .send()
        .await
        .expect("attributes");
    // S3 sends this ETag unquoted (unlike the ETag header and other XML bodies).
    assert_eq!(attrs.e_tag(), Some(md5_hex(b"a").as_str()));
    let r = signed_raw(
        s.addr(),
        "GET",
        "/vers/a?attributes",
        // One comma-separated header, as botocore and the CLI send it.
        &[("x-amz-object-attributes", "ETag, ObjectSize")],
        b"",
        &sha256_hex(b""),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let etag = format!("<ETag>{}</ETag>", md5_hex(b"a"));
    assert!(r.body.contains(&etag), "{}", r.body);
    assert!(r.body.contains("<ObjectSize>1</ObjectSize>"), "{}", r.body);
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str()),
        "{r:?}"
    );
    assert_eq!(attrs.object_size(), Some(1));
    assert!(
        attrs
            .checksum()
            .and_then(|c| c.checksum_crc64_nvme())
            .is_some()
            || attrs.checksum().and_then(|c| c.checksum_crc32()).is_some()
    );
    let e = c
        .get_object_attributes()
        .bucket("vers")
        .key("zzz")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
}
both_dbs!(versions_and_attributes);
