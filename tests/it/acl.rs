//! ACLs and anonymous access: canned and granted lists on buckets and objects, what an unsigned
//! request may do under each, and what it may never do (other tenants' buckets, ACP changes,
//! versions that replaced the one whose list allowed the read).

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, Permission, Type};

fn assert_code(r: &RawResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(
        r.body.contains(&format!("<Code>{code}</Code>")),
        "expected {code}: {r:?}"
    );
    assert!(r.body.contains("<RequestId>"), "{r:?}");
}

async fn anonymous_access_follows_the_lists(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("acl")
        .send()
        .await
        .expect("bucket");
    put_bytes(c, "acl", "private", b"secret").await;

    // Private by default: nothing, and no existence, is revealed.
    assert_code(
        &anon(s, "GET", "/acl/private", b"").await,
        403,
        "AccessDenied",
    );
    assert_eq!(anon(s, "HEAD", "/acl/private", b"").await.status, 403);
    assert_code(
        &anon(s, "GET", "/acl/missing", b"").await,
        403,
        "AccessDenied",
    );
    assert_code(
        &anon(s, "GET", "/acl?list-type=2", b"").await,
        403,
        "AccessDenied",
    );
    assert_code(
        &anon(s, "GET", "/nobucket/k", b"").await,
        404,
        "NoSuchBucket",
    );
    assert_code(&anon(s, "PUT", "/acl/new", b"x").await, 403, "AccessDenied");

    // public-read on the bucket: listing, and NoSuchKey for missing keys; objects stay private.
    c.put_bucket_acl()
        .bucket("acl")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("put bucket acl");
    let r = anon(s, "GET", "/acl?list-type=2", b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("<Key>private</Key>"), "{r:?}");
    assert_code(
        &anon(s, "GET", "/acl/private", b"").await,
        403,
        "AccessDenied",
    );
    assert_code(&anon(s, "GET", "/acl/missing", b"").await, 404, "NoSuchKey");
    assert_code(&anon(s, "PUT", "/acl/new", b"x").await, 403, "AccessDenied");
    assert_code(&anon(s, "GET", "/acl?acl", b"").await, 403, "AccessDenied");
    assert_code(&anon(s, "PUT", "/acl?acl", b"").await, 403, "AccessDenied");
    assert_code(
        &anon(s, "DELETE", "/acl/private", b"").await,
        403,
        "AccessDenied",
    );

    // public-read on the object (x-amz-acl at PUT and PutObjectAcl).
    c.put_object()
        .bucket("acl")
        .key("open")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .expect("put public-read");
    let r = anon(s, "GET", "/acl/open", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello"), "{r:?}");
    assert_eq!(anon(s, "HEAD", "/acl/open", b"").await.status, 200);
    assert_code(
        &anon(s, "GET", "/acl/open?acl", b"").await,
        403,
        "AccessDenied",
    );
    assert_code(
        &anon(s, "GET", "/acl/open?tagging", b"").await,
        403,
        "AccessDenied",
    );
    c.put_object_acl()
        .bucket("acl")
        .key("private")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("put object acl");
    assert_eq!(anon(s, "GET", "/acl/private", b"").await.status, 200);

    // A new version starts private: the list belongs to the version, not the key.
    put_bytes(c, "acl", "open", b"replaced").await;
    assert_code(&anon(s, "GET", "/acl/open", b"").await, 403, "AccessDenied");

    // public-read-write: anonymous writes and deletes.
    c.put_bucket_acl()
        .bucket("acl")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .expect("public-read-write");
    assert_eq!(
        anon(s, "PUT", "/acl/anon", b"from anyone").await.status,
        200
    );
    let got = c
        .get_object()
        .bucket("acl")
        .key("anon")
        .send()
        .await
        .expect("get");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"from anyone");
    assert_eq!(anon(s, "DELETE", "/acl/anon", b"").await.status, 204);

    // Back to private: everything anonymous is refused again.
    c.put_bucket_acl()
        .bucket("acl")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .expect("private");
    assert_code(
        &anon(s, "PUT", "/acl/anon", b"x").await,
        403,
        "AccessDenied",
    );
    assert_code(
        &anon(s, "GET", "/acl?list-type=2", b"").await,
        403,
        "AccessDenied",
    );
    // Anonymous requests never create or list buckets.
    assert_code(
        &anon(s, "PUT", "/anon-bucket", b"").await,
        403,
        "AccessDenied",
    );
    assert_code(&anon(s, "GET", "/", b"").await, 403, "AccessDenied");
}
both_dbs!(anonymous_access_follows_the_lists);

async fn acl_documents_round_trip(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("acl-doc")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("bucket with x-amz-acl");
    let acl = c
        .get_bucket_acl()
        .bucket("acl-doc")
        .send()
        .await
        .expect("get bucket acl");
    let owner = acl.owner().and_then(|o| o.id()).expect("owner").to_owned();
    type Row<'a> = (
        Option<Type>,
        Option<&'a str>,
        Option<&'a str>,
        Option<Permission>,
    );
    let grants: Vec<Row> = acl
        .grants()
        .iter()
        .map(|g| {
            let ge = g.grantee().expect("grantee");
            (
                Some(ge.r#type().clone()),
                ge.id(),
                ge.uri(),
                g.permission().cloned(),
            )
        })
        .collect();
    assert_eq!(
        grants,
        // A canned ACL lists the groups' grants first, then the owner's (as RGW does).
        vec![
            (
                Some(Type::Group),
                None,
                Some("http://acs.amazonaws.com/groups/global/AllUsers"),
                Some(Permission::Read)
            ),
            (
                Some(Type::CanonicalUser),
                Some(owner.as_str()),
                None,
                Some(Permission::FullControl)
            ),
        ]
    );
    // The owner's ListBuckets id is the ACL's owner.
    let lb = c.list_buckets().send().await.expect("list buckets");
    assert_eq!(lb.owner().and_then(|o| o.id()), Some(owner.as_str()));

    // Header grants.
    put_bytes(c, "acl-doc", "k", b"v").await;
    c.put_object_acl()
        .bucket("acl-doc")
        .key("k")
        .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
        .grant_full_control(format!("id=\"{owner}\""))
        .send()
        .await
        .expect("grant headers");
    let oa = c
        .get_object_acl()
        .bucket("acl-doc")
        .key("k")
        .send()
        .await
        .expect("get object acl");
    assert_eq!(oa.grants().len(), 2);
    assert_eq!(anon(s, "GET", "/acl-doc/k", b"").await.status, 200);

    // Bad requests: both canned and grants, an unknown canned ACL, e-mail grantees, no ACL at
    // all, an ACL on a missing key.
    let e = c
        .put_object_acl()
        .bucket("acl-doc")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    let e = c
        .put_object_acl()
        .bucket("acl-doc")
        .key("k")
        .grant_read("emailAddress=\"someone@example.com\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "UnresolvableGrantByEmailAddress");
    let e = c
        .put_object_acl()
        .bucket("acl-doc")
        .key("k")
        .grant_read("uri=\"http://example.com/not-a-group\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let e = c
        .put_bucket_acl()
        .bucket("acl-doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MissingSecurityHeader");
    let e = c
        .get_object_acl()
        .bucket("acl-doc")
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/acl-doc/k?acl",
        &[("x-amz-acl", "public-everything")],
        b"",
        &sha256_hex(b""),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");

    // A read-only key changes no list; another tenant does not see the bucket at all.
    let ro = s.tenant_client("root", true).await;
    let e = ro
        .put_bucket_acl()
        .bucket("acl-doc")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let other = s.tenant_client("acl-other", false).await;
    let e = other
        .put_bucket_acl()
        .bucket("acl-doc")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert_code(
        &anon(s, "PUT", "/acl-doc/x", b"x").await,
        403,
        "AccessDenied",
    );
}
both_dbs!(acl_documents_round_trip);

/// x-amz-acl on CreateMultipartUpload is the completed object's list; CopyObject's new version
/// starts private unless the copy asks for a list.
async fn multipart_and_copy_lists(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("acl-mpu")
        .send()
        .await
        .expect("bucket");
    let id = c
        .create_multipart_upload()
        .bucket("acl-mpu")
        .key("m")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("create")
        .upload_id
        .expect("id");
    let etag = c
        .upload_part()
        .bucket("acl-mpu")
        .key("m")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part")
        .e_tag
        .expect("etag");
    c.complete_multipart_upload()
        .bucket("acl-mpu")
        .key("m")
        .upload_id(&id)
        .multipart_upload(crate::multipart::done(&[(1, etag.as_str())]))
        .send()
        .await
        .expect("complete");
    let r = anon(s, "GET", "/acl-mpu/m", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "part"), "{r:?}");

    c.copy_object()
        .bucket("acl-mpu")
        .key("copy")
        .copy_source("acl-mpu/m")
        .send()
        .await
        .expect("copy");
    assert_code(
        &anon(s, "GET", "/acl-mpu/copy", b"").await,
        403,
        "AccessDenied",
    );
    c.copy_object()
        .bucket("acl-mpu")
        .key("copy2")
        .copy_source("acl-mpu/m")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("copy with acl");
    assert_eq!(anon(s, "GET", "/acl-mpu/copy2", b"").await.status, 200);
}
both_dbs!(multipart_and_copy_lists);

/// The public access block: BlockPublicAcls refuses public lists before anything is stored,
/// IgnorePublicAcls makes existing ones grant nothing; deleting it restores both.
async fn public_access_block(s: &TestServer) {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration as Pab;
    let c = &s.client;
    c.create_bucket()
        .bucket("pab")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("bucket");
    let e = c
        .get_public_access_block()
        .bucket("pab")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchPublicAccessBlockConfiguration");
    assert_eq!(anon(s, "GET", "/pab?list-type=2", b"").await.status, 200);
    let block = |acls: bool, ignore: bool| {
        Pab::builder()
            .block_public_acls(acls)
            .ignore_public_acls(ignore)
            .block_public_policy(true)
            .restrict_public_buckets(false)
            .build()
    };
    c.put_public_access_block()
        .bucket("pab")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .expect("put block");
    let got = c
        .get_public_access_block()
        .bucket("pab")
        .send()
        .await
        .expect("get block");
    assert_eq!(
        got.public_access_block_configuration(),
        Some(&block(true, false))
    );
    // A public list is refused and nothing is stored; a private one is fine.
    let e = c
        .put_object()
        .bucket("pab")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = c
        .head_object()
        .bucket("pab")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let e = c
        .put_bucket_acl()
        .bucket("pab")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    put_bytes(c, "pab", "k", b"x").await;
    // The list set before the block still works until IgnorePublicAcls.
    assert_eq!(anon(s, "GET", "/pab?list-type=2", b"").await.status, 200);
    c.put_public_access_block()
        .bucket("pab")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .expect("ignore");
    assert_code(
        &anon(s, "GET", "/pab?list-type=2", b"").await,
        403,
        "AccessDenied",
    );
    c.delete_public_access_block()
        .bucket("pab")
        .send()
        .await
        .expect("delete block");
    assert_eq!(anon(s, "GET", "/pab?list-type=2", b"").await.status, 200);
}
both_dbs!(public_access_block);

async fn bucket_tagging(s: &TestServer) {
    use aws_sdk_s3::types::{Tag, Tagging};
    let c = &s.client;
    c.create_bucket()
        .bucket("btag")
        .send()
        .await
        .expect("bucket");
    let e = c
        .get_bucket_tagging()
        .bucket("btag")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchTagSet");
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().expect("tag");
    c.put_bucket_tagging()
        .bucket("btag")
        .tagging(
            Tagging::builder()
                .tag_set(tag("team", "storage"))
                .tag_set(tag("env", ""))
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("put tagging");
    let got = c
        .get_bucket_tagging()
        .bucket("btag")
        .send()
        .await
        .expect("get tagging");
    let mut pairs: Vec<(&str, &str)> = got.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    pairs.sort();
    assert_eq!(pairs, [("env", ""), ("team", "storage")]);
    let many = (0..51).fold(Tagging::builder(), |b, i| {
        b.tag_set(tag(&format!("k{i}"), "v"))
    });
    let e = c
        .put_bucket_tagging()
        .bucket("btag")
        .tagging(many.build().expect("tagging"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
    let dup = Tagging::builder()
        .tag_set(tag("a", "1"))
        .tag_set(tag("a", "2"))
        .build()
        .expect("tagging");
    let e = c
        .put_bucket_tagging()
        .bucket("btag")
        .tagging(dup)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
    c.delete_bucket_tagging()
        .bucket("btag")
        .send()
        .await
        .expect("delete");
    let e = c
        .get_bucket_tagging()
        .bucket("btag")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchTagSet");
    // A deleted bucket takes its configuration with it.
    c.put_bucket_tagging()
        .bucket("btag")
        .tagging(
            Tagging::builder()
                .tag_set(tag("a", "1"))
                .build()
                .expect("t"),
        )
        .send()
        .await
        .expect("put tagging");
    c.delete_bucket()
        .bucket("btag")
        .send()
        .await
        .expect("delete bucket");
    c.create_bucket()
        .bucket("btag")
        .send()
        .await
        .expect("re-create");
    let e = c
        .get_bucket_tagging()
        .bucket("btag")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchTagSet");
}
both_dbs!(bucket_tagging);

/// A grant must name a tenant that exists (S3: InvalidArgument "Invalid id"), in headers and
/// in bodies, at creation and after; nothing is changed by a refused list.
async fn grants_to_unknown_ids(s: &TestServer) {
    let c = &s.client;
    let e = c
        .create_bucket()
        .bucket("ghost-grant")
        .grant_read("id=no-such-tenant")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    c.create_bucket()
        .bucket("ghost-grant")
        .send()
        .await
        .expect("bucket");
    put_bytes(c, "ghost-grant", "k", b"x").await;
    let e = c
        .put_object_acl()
        .bucket("ghost-grant")
        .key("k")
        .grant_read("id=_foo")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let e = c
        .put_object()
        .bucket("ghost-grant")
        .key("k2")
        .grant_full_control("id=_foo")
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let e = c
        .head_object()
        .bucket("ghost-grant")
        .key("k2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404, "nothing stored");
    // A tenant that exists may be granted.
    s.tenant_client("real-grantee", false).await;
    let id = s
        .engine()
        .meta()
        .tenant_id("real-grantee")
        .await
        .expect("lookup")
        .expect("tenant");
    c.put_object_acl()
        .bucket("ghost-grant")
        .key("k")
        .grant_read(format!("id={id}"))
        .send()
        .await
        .expect("grant to a tenant");
    let acl = c
        .get_object_acl()
        .bucket("ghost-grant")
        .key("k")
        .send()
        .await
        .expect("acl");
    assert!(
        acl.grants()
            .iter()
            .any(|g| g.grantee().and_then(|g| g.id()) == Some(id.as_str())),
        "{acl:?}"
    );
}
both_dbs!(grants_to_unknown_ids);
