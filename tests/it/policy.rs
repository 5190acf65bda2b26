//! Bucket policies and access across tenants: what a policy allows and denies (the owner's own
//! requests included), and what another tenant may do to a root-tenant bucket under its lists
//! and policy — reads, writes, copies out of it, deletes — and never beyond them.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketCannedAcl, Delete, ObjectCannedAcl, ObjectIdentifier, PublicAccessBlockConfiguration,
};

async fn set_policy(c: &aws_sdk_s3::Client, bucket: &str, policy: &str) {
    c.put_bucket_policy()
        .bucket(bucket)
        .policy(policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put policy: {e:?}"));
}

/// A one-statement policy document.
fn statement(effect: &str, principal: &str, action: &str, resource: &str, cond: &str) -> String {
    let cond = match cond {
        "" => String::new(),
        c => format!(r#","Condition":{c}"#),
    };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Principal":{principal},"Action":"{action}","Resource":"{resource}"{cond}}}]}}"#
    )
}

async fn policy_documents(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("pol")
        .send()
        .await
        .expect("bucket");
    let e = c
        .get_bucket_policy()
        .bucket("pol")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucketPolicy");

    // Malformed documents are refused and nothing is stored.
    for bad in [
        "not json",
        r#"{"Statement":[]}"#,
        &statement("Permit", r#""*""#, "s3:GetObject", "arn:aws:s3:::pol/*", ""),
        &statement(
            "Allow",
            r#""*""#,
            "ec2:RunInstances",
            "arn:aws:s3:::pol/*",
            "",
        ),
        &statement(
            "Allow",
            r#""*""#,
            "s3:GetObject",
            "arn:aws:s3:::other/*",
            "",
        ),
        &statement(
            "Allow",
            r#""*""#,
            "s3:GetObject",
            "arn:aws:s3:::pol/*",
            r#"{"StringSortOf":{"s3:prefix":"a"}}"#,
        ),
        r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"x"},"Action":"s3:*","Resource":"arn:aws:s3:::pol"}]}"#,
    ] {
        let e = c
            .put_bucket_policy()
            .bucket("pol")
            .policy(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "MalformedPolicy", "{bad}");
    }
    let huge = format!(
        r#"{{"Version":"2012-10-17","Id":"{}","Statement":[]}}"#,
        "x".repeat(21 * 1024)
    );
    let e = c
        .put_bucket_policy()
        .bucket("pol")
        .policy(huge)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MalformedPolicy");
    // A condition this server cannot evaluate is refused rather than ignored.
    let tag_cond = statement(
        "Deny",
        r#""*""#,
        "s3:GetObject",
        "arn:aws:s3:::pol/*",
        r#"{"StringEquals":{"s3:ExistingObjectTag/secret":"yes"}}"#,
    );
    let e = c
        .put_bucket_policy()
        .bucket("pol")
        .policy(tag_cond)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .get_bucket_policy()
        .bucket("pol")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucketPolicy");

    // Stored as given; status; deleted.
    let doc = statement(
        "Allow",
        r#""*""#,
        "s3:GetObject",
        "arn:aws:s3:::pol/public/*",
        "",
    );
    set_policy(c, "pol", &doc).await;
    let got = c
        .get_bucket_policy()
        .bucket("pol")
        .send()
        .await
        .expect("get");
    assert_eq!(got.policy(), Some(doc.as_str()));
    let st = c
        .get_bucket_policy_status()
        .bucket("pol")
        .send()
        .await
        .expect("status");
    assert_eq!(st.policy_status().and_then(|p| p.is_public()), Some(true));
    c.delete_bucket_policy()
        .bucket("pol")
        .send()
        .await
        .expect("delete");
    let e = c
        .get_bucket_policy()
        .bucket("pol")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucketPolicy");
    let st = c
        .get_bucket_policy_status()
        .bucket("pol")
        .send()
        .await
        .expect("status");
    assert_eq!(st.policy_status().and_then(|p| p.is_public()), Some(false));

    // BlockPublicPolicy refuses a public policy, not a private one.
    c.put_public_access_block()
        .bucket("pol")
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_policy(true)
                .build(),
        )
        .send()
        .await
        .expect("block");
    let e = c
        .put_bucket_policy()
        .bucket("pol")
        .policy(&doc)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let deny = statement(
        "Deny",
        r#""*""#,
        "s3:DeleteObject",
        "arn:aws:s3:::pol/*",
        "",
    );
    set_policy(c, "pol", &deny).await;
}
both_dbs!(policy_documents);

async fn policies_allow_and_deny(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("pold")
        .send()
        .await
        .expect("bucket");
    put_bytes(c, "pold", "public/a", b"open").await;
    put_bytes(c, "pold", "private/b", b"closed").await;

    // Allow: anonymous reads under public/, and listing only that prefix.
    let doc = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pold/public/*"},
        {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::pold",
         "Condition":{"StringLike":{"s3:prefix":"public/*"}}}]}"#;
    set_policy(c, "pold", doc).await;
    let r = anon(s, "GET", "/pold/public/a", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "open"), "{r:?}");
    assert_eq!(anon(s, "GET", "/pold/private/b", b"").await.status, 403);
    assert_eq!(anon(s, "PUT", "/pold/public/new", b"x").await.status, 403);
    let r = anon(s, "GET", "/pold?list-type=2&prefix=public/", b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("<Key>public/a</Key>"), "{r:?}");
    assert_eq!(anon(s, "GET", "/pold?list-type=2", b"").await.status, 403);
    assert_eq!(
        anon(s, "GET", "/pold?list-type=2&prefix=private/", b"")
            .await
            .status,
        403
    );
    // A missing key is NoSuchKey to whom may list its name, AccessDenied to others.
    assert_eq!(
        anon(s, "HEAD", "/pold/public/missing", b"").await.status,
        404
    );
    assert_eq!(
        anon(s, "HEAD", "/pold/private/missing", b"").await.status,
        403
    );

    // Deny binds the owner too, but never locks it out of the policy itself.
    let doc = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Principal":"*","Action":["s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::pold/locked/*"},
        {"Effect":"Deny","Principal":"*","Action":"s3:GetBucketPolicy","Resource":"arn:aws:s3:::pold"}]}"#;
    set_policy(c, "pold", doc).await;
    let e = c
        .put_object()
        .bucket("pold")
        .key("locked/x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = c
        .create_multipart_upload()
        .bucket("pold")
        .key("locked/mp")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    put_bytes(c, "pold", "open/x", b"x").await;
    // DeleteObjects is denied as a whole when the policy denies one of its keys.
    let del = Delete::builder()
        .objects(
            ObjectIdentifier::builder()
                .key("open/x")
                .build()
                .expect("id"),
        )
        .objects(
            ObjectIdentifier::builder()
                .key("locked/y")
                .build()
                .expect("id"),
        )
        .build()
        .expect("delete");
    let e = c
        .delete_objects()
        .bucket("pold")
        .delete(del)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    c.head_object()
        .bucket("pold")
        .key("open/x")
        .send()
        .await
        .expect("kept");
    c.get_bucket_policy()
        .bucket("pold")
        .send()
        .await
        .expect("owner reads its policy");
    c.delete_bucket_policy()
        .bucket("pold")
        .send()
        .await
        .expect("delete policy");
    put_bytes(c, "pold", "locked/x", b"now allowed").await;

    // A condition on the request: only PUTs that set a given ACL header.
    let doc = statement(
        "Deny",
        r#""*""#,
        "s3:PutObject",
        "arn:aws:s3:::pold/*",
        r#"{"StringNotEquals":{"s3:x-amz-acl":"bucket-owner-full-control"}}"#,
    );
    set_policy(c, "pold", &doc).await;
    let e = c
        .put_object()
        .bucket("pold")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    c.put_object()
        .bucket("pold")
        .key("k")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put with the acl the policy wants");
    // aws:SourceIp: the test client is on loopback.
    let doc = statement(
        "Deny",
        r#""*""#,
        "s3:GetObject",
        "arn:aws:s3:::pold/*",
        r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    );
    set_policy(c, "pold", &doc).await;
    let e = c
        .get_object()
        .bucket("pold")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let doc = statement(
        "Deny",
        r#""*""#,
        "s3:GetObject",
        "arn:aws:s3:::pold/*",
        r#"{"NotIpAddress":{"aws:SourceIp":["127.0.0.0/8","::1/128"]}}"#,
    );
    set_policy(c, "pold", &doc).await;
    c.get_object()
        .bucket("pold")
        .key("k")
        .send()
        .await
        .expect("from loopback");
}
both_dbs!(policies_allow_and_deny);

async fn other_tenants(s: &TestServer) {
    let root = &s.client;
    let other = s.tenant_client("pol-other", false).await;
    let other_ro = s.tenant_client("pol-other", true).await;
    let other_id = s
        .engine()
        .meta()
        .tenant_id("pol-other")
        .await
        .expect("lookup")
        .expect("tenant");
    root.create_bucket()
        .bucket("shared")
        .send()
        .await
        .expect("bucket");
    put_bytes(root, "shared", "doc", b"root's").await;

    // Private: another tenant may neither read, list, write nor delete; S3 says AccessDenied.
    let e = other
        .get_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = other
        .list_objects_v2()
        .bucket("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = other
        .put_object()
        .bucket("shared")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = other
        .delete_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // Operations no list can grant answer for the caller's own (missing) bucket.
    let e = other
        .delete_bucket()
        .bucket("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = other
        .get_bucket_policy()
        .bucket("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");

    // A grant to the tenant: reads of that object only.
    root.put_object_acl()
        .bucket("shared")
        .key("doc")
        .grant_read(format!("id={other_id}"))
        .send()
        .await
        .expect("grant");
    let got = other
        .get_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .expect("get");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"root's");
    let e = other
        .get_object_acl()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");

    // Copy out of the shared bucket into the tenant's own: needs READ on the source.
    other
        .create_bucket()
        .bucket("mine")
        .send()
        .await
        .expect("own bucket");
    put_bytes(root, "shared", "secret", b"not for you").await;
    let e = other
        .copy_object()
        .bucket("mine")
        .key("stolen")
        .copy_source("shared/secret")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    other
        .copy_object()
        .bucket("mine")
        .key("copied")
        .copy_source("shared/doc")
        .send()
        .await
        .expect("copy of a readable object");
    let got = other
        .get_object()
        .bucket("mine")
        .key("copied")
        .send()
        .await
        .expect("get");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"root's");

    // `tenant:bucket` names another tenant's bucket (`:bucket` the root tenant's), for anonymous
    // callers too, under that bucket's lists.
    let path = "/pol-other:mine/copied";
    assert_eq!(anon(s, "GET", path, b"").await.status, 403);
    other
        .put_object_acl()
        .bucket("mine")
        .key("copied")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("public object");
    let r = anon(s, "GET", path, b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "root's"), "{r:?}");
    assert_eq!(anon(s, "GET", "/pol-other:none/x", b"").await.status, 404);
    assert_eq!(anon(s, "GET", "/nobody:mine/copied", b"").await.status, 404);
    let r = anon(s, "GET", "/:shared/doc", b"").await;
    assert_eq!(r.status, 403, "{r:?}");
    // A qualified name names existing buckets only.
    let r = signed_raw(
        s.addr(),
        "PUT",
        "/pol-other:new",
        &[],
        b"",
        &sha256_hex(b""),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("InvalidBucketName"), "{r:?}");
    let got = root
        .get_object()
        .bucket("pol-other:mine")
        .key("copied")
        .send()
        .await
        .expect("a public object of another tenant");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"root's");
    let e = root
        .list_objects_v2()
        .bucket("pol-other:mine")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");

    // public-read-write on the bucket: the tenant writes; its read-only key does not.
    root.put_bucket_acl()
        .bucket("shared")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .expect("prw");
    put_bytes(&other, "shared", "from-other", b"hi").await;
    root.head_object()
        .bucket("shared")
        .key("from-other")
        .send()
        .await
        .expect("the owner sees it");
    let e = other_ro
        .put_object()
        .bucket("shared")
        .key("ro")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // A write grant on the bucket is not a read of its objects, nor a copy of them.
    let e = other
        .copy_object()
        .bucket("shared")
        .key("leak")
        .copy_source("shared/secret")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");

    // A policy naming the tenant lets it read everything; a Deny beats the list.
    root.put_bucket_acl()
        .bucket("shared")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .expect("private");
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{other_id}:root"}},"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::shared","arn:aws:s3:::shared/*"]}},
        {{"Effect":"Deny","Principal":{{"AWS":"{other_id}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/doc"}}]}}"#
    );
    set_policy(root, "shared", &doc).await;
    other
        .get_object()
        .bucket("shared")
        .key("secret")
        .send()
        .await
        .expect("allowed");
    let listed = other
        .list_objects_v2()
        .bucket("shared")
        .send()
        .await
        .expect("list");
    assert!(listed.contents().len() >= 3);
    let e = other
        .get_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // The root tenant is not named: its own reads are unaffected.
    root.get_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .expect("owner");

    // The tenant's own bucket of the same name shadows the root tenant's, for it alone.
    other
        .create_bucket()
        .bucket("shared")
        .send()
        .await
        .expect("own shared");
    let e = other
        .get_object()
        .bucket("shared")
        .key("secret")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    root.get_object()
        .bucket("shared")
        .key("secret")
        .send()
        .await
        .expect("root's own");
}
both_dbs!(other_tenants);

/// Object Ownership `BucketOwnerEnforced`: ACLs can neither be set nor grant anything; the
/// two settings that would let writers own objects are not built.
async fn ownership_controls(s: &TestServer) {
    use aws_sdk_s3::types::{ObjectOwnership, OwnershipControls, OwnershipControlsRule};
    let c = &s.client;
    let other = s.tenant_client("own-other", false).await;
    let other_id = s
        .engine()
        .meta()
        .tenant_id("own-other")
        .await
        .expect("lookup")
        .expect("tenant");
    let controls = |o: ObjectOwnership| {
        OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(o)
                    .build()
                    .expect("rule"),
            )
            .build()
            .expect("controls")
    };
    c.create_bucket()
        .bucket("owned")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("bucket");
    let e = c
        .get_bucket_ownership_controls()
        .bucket("owned")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "OwnershipControlsNotFoundError");
    let enforce = || {
        c.put_bucket_ownership_controls()
            .bucket("owned")
            .ownership_controls(controls(ObjectOwnership::BucketOwnerEnforced))
    };
    let e = enforce().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidBucketAclWithObjectOwnership");
    c.put_bucket_acl()
        .bucket("owned")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .expect("private");
    put_bytes(c, "owned", "shared", b"granted before").await;
    c.put_object_acl()
        .bucket("owned")
        .key("shared")
        .grant_read(format!("id={other_id}"))
        .send()
        .await
        .expect("grant");
    other
        .get_object()
        .bucket("owned")
        .key("shared")
        .send()
        .await
        .expect("granted");

    enforce().send().await.expect("enforce");
    let got = c
        .get_bucket_ownership_controls()
        .bucket("owned")
        .send()
        .await
        .expect("get");
    let rule = &got.ownership_controls().expect("controls").rules()[0];
    assert_eq!(
        rule.object_ownership(),
        &ObjectOwnership::BucketOwnerEnforced
    );
    // The earlier grant grants nothing now.
    let e = other
        .get_object()
        .bucket("owned")
        .key("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // Only bucket-owner-full-control (or no list) may be named.
    let e = c
        .put_object()
        .bucket("owned")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessControlListNotSupported");
    c.put_object()
        .bucket("owned")
        .key("k")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("bucket-owner-full-control");
    put_bytes(c, "owned", "k2", b"x").await;
    let e = c
        .put_bucket_acl()
        .bucket("owned")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessControlListNotSupported");
    let e = c
        .put_object_acl()
        .bucket("owned")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessControlListNotSupported");
    let e = c
        .create_multipart_upload()
        .bucket("owned")
        .key("mp")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessControlListNotSupported");
    // Writers owning their objects is not built: refused, never pretended.
    let e = c
        .put_bucket_ownership_controls()
        .bucket("owned")
        .ownership_controls(controls(ObjectOwnership::ObjectWriter))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .create_bucket()
        .bucket("writer-owned")
        .object_ownership(ObjectOwnership::BucketOwnerPreferred)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .head_bucket()
        .bucket("writer-owned")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404, "nothing created");

    // Removed: ACLs work again.
    c.delete_bucket_ownership_controls()
        .bucket("owned")
        .send()
        .await
        .expect("delete");
    let e = c
        .get_bucket_ownership_controls()
        .bucket("owned")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "OwnershipControlsNotFoundError");
    other
        .get_object()
        .bucket("owned")
        .key("shared")
        .send()
        .await
        .expect("granted again");
    c.put_object_acl()
        .bucket("owned")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("acl");
}
both_dbs!(ownership_controls);
