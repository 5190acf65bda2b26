//! The isolation matrix: two tenants (the root tenant and another), each with a read-write and
//! a read-only key, plus anonymous callers and presigned URLs, against every kind of operation
//! on each tenant's private bucket, with the exact status S3 would answer.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketCannedAcl, CompletedMultipartUpload};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    List,
    Get,
    Head,
    Put,
    Delete,
    CopyOut,
    Multipart,
    ListUploads,
    GetAcl,
    PutAcl,
    GetPolicy,
    PutPolicy,
    GetVersioning,
    DeleteBucket,
}

const OPS: [Op; 14] = [
    Op::List,
    Op::Get,
    Op::Head,
    Op::Put,
    Op::Delete,
    Op::CopyOut,
    Op::Multipart,
    Op::ListUploads,
    Op::GetAcl,
    Op::PutAcl,
    Op::PutPolicy,
    Op::GetPolicy,
    Op::GetVersioning,
    Op::DeleteBucket,
];

fn writes(op: Op) -> bool {
    matches!(
        op,
        Op::Put | Op::Delete | Op::CopyOut | Op::Multipart | Op::PutAcl | Op::PutPolicy
    )
}

/// Runs `op` on `bucket` (object `doc` exists there; `scratch` is the caller's own bucket for
/// copies out); the HTTP status of the answer.
async fn run(c: &Client, op: Op, bucket: &str, scratch: &str) -> u16 {
    type Raw = aws_smithy_runtime_api::http::Response;
    fn st<T, E>(r: Result<T, aws_sdk_s3::error::SdkError<E, Raw>>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(e) => status(&e),
        }
    }
    match op {
        Op::List => st(c.list_objects_v2().bucket(bucket).send().await),
        Op::Get => st(c.get_object().bucket(bucket).key("doc").send().await),
        Op::Head => st(c.head_object().bucket(bucket).key("doc").send().await),
        Op::Put => st(c
            .put_object()
            .bucket(bucket)
            .key("new")
            .body(ByteStream::from_static(b"n"))
            .send()
            .await),
        Op::Delete => st(c.delete_object().bucket(bucket).key("new").send().await),
        Op::CopyOut => st(c
            .copy_object()
            .bucket(scratch)
            .key("copied")
            .copy_source(format!("{bucket}/doc"))
            .send()
            .await),
        Op::Multipart => {
            let up = c.create_multipart_upload().bucket(bucket).key("mp").send().await;
            let id = match up {
                Ok(u) => u.upload_id().expect("id").to_owned(),
                Err(e) => return status(&e),
            };
            let part = c
                .upload_part()
                .bucket(bucket)
                .key("mp")
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from_static(b"p"))
                .send()
                .await
                .expect("part after a create that succeeded");
            let done = CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().expect("etag"))
                        .build(),
                )
                .build();
            st(c
                .complete_multipart_upload()
                .bucket(bucket)
                .key("mp")
                .upload_id(&id)
                .multipart_upload(done)
                .send()
                .await)
        }
        Op::ListUploads => st(c.list_multipart_uploads().bucket(bucket).send().await),
        Op::GetAcl => st(c.get_bucket_acl().bucket(bucket).send().await),
        Op::PutAcl => st(c
            .put_bucket_acl()
            .bucket(bucket)
            .acl(BucketCannedAcl::Private)
            .send()
            .await),
        Op::GetPolicy => st(c.get_bucket_policy().bucket(bucket).send().await),
        Op::PutPolicy => st(c
            .put_bucket_policy()
            .bucket(bucket)
            .policy(format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/never/*"}}]}}"#
            ))
            .send()
            .await),
        Op::GetVersioning => st(c.get_bucket_versioning().bucket(bucket).send().await),
        // A bucket that holds `doc` is never empty: 409 for whom may try.
        Op::DeleteBucket => st(c.delete_bucket().bucket(bucket).send().await),
    }
}

/// What the bucket's owner gets: everything (the policy is read after it was put) but deleting
/// a bucket that holds objects.
fn owner(op: Op, read_only: bool) -> u16 {
    match op {
        _ if read_only && writes(op) => 403,
        Op::DeleteBucket if read_only => 403,
        Op::DeleteBucket => 409,
        _ => 200,
    }
}

/// A read-only key is refused object writes and DeleteBucket before the bucket is looked up,
/// wherever it points (ACL and policy writes look the bucket up first); `otherwise` is what
/// the rest of the operations get.
fn read_only(op: Op, otherwise: u16) -> u16 {
    match op {
        Op::Put | Op::Delete | Op::CopyOut | Op::Multipart | Op::DeleteBucket => 403,
        _ => otherwise,
    }
}

/// A caller, the bucket it names, its own scratch bucket, and the status each operation gets.
type Case<'a> = (&'a Client, &'a str, &'a str, &'a dyn Fn(Op) -> u16);

async fn isolation_matrix(s: &TestServer) {
    let root_rw = s.client.clone();
    let root_ro = s.tenant_client("root", true).await;
    let other_rw = s.tenant_client("iso-other", false).await;
    let other_ro = s.tenant_client("iso-other", true).await;
    for (c, bucket, scratch) in [
        (&root_rw, "root-private", "root-scratch"),
        (&other_rw, "other-private", "other-scratch"),
    ] {
        for b in [bucket, scratch] {
            c.create_bucket().bucket(b).send().await.expect("bucket");
        }
        c.put_object()
            .bucket(bucket)
            .key("doc")
            .body(ByteStream::from_static(b"secret"))
            .send()
            .await
            .expect("doc");
    }
    // The other tenant's private bucket of the root tenant is refused (it exists in the
    // global namespace); the root tenant cannot even see the other tenant's bucket.
    let cases: [Case; 8] = [
        (&root_rw, "root-private", "root-scratch", &|op| {
            owner(op, false)
        }),
        (&root_ro, "root-private", "root-scratch", &|op| {
            owner(op, true)
        }),
        (&other_rw, "other-private", "other-scratch", &|op| {
            owner(op, false)
        }),
        (&other_ro, "other-private", "other-scratch", &|op| {
            owner(op, true)
        }),
        (&other_rw, "root-private", "other-scratch", &|op| match op {
            // No list grants these: they answer for the caller's own (missing) bucket.
            Op::GetPolicy | Op::PutPolicy | Op::GetVersioning | Op::DeleteBucket => 404,
            _ => 403,
        }),
        (&other_ro, "root-private", "other-scratch", &|op| match op {
            Op::GetPolicy | Op::PutPolicy | Op::GetVersioning => 404,
            _ => 403,
        }),
        (&root_rw, "other-private", "root-scratch", &|_| 404),
        (&root_ro, "other-private", "root-scratch", &|op| {
            read_only(op, 404)
        }),
    ];
    let mut wrong = Vec::new();
    for (i, (c, bucket, scratch, want)) in cases.iter().enumerate() {
        for op in OPS {
            let got = run(c, op, bucket, scratch).await;
            if got != want(op) {
                wrong.push(format!(
                    "case {i} {bucket} {op:?}: {got}, want {}",
                    want(op)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Nothing another tenant tried changed what the root tenant stored.
    let got = root_rw
        .get_object()
        .bucket("root-private")
        .key("doc")
        .send()
        .await
        .expect("doc");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"secret");

    // Presigned URLs carry their signer's rights, no more.
    let presign = |c: &Client, bucket: &str| {
        let c = c.clone();
        let bucket = bucket.to_owned();
        async move {
            c.get_object()
                .bucket(bucket)
                .key("doc")
                .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("cfg"))
                .await
                .expect("presign")
                .uri()
                .to_owned()
        }
    };
    for (c, bucket, want) in [
        (&root_rw, "root-private", 200),
        (&other_rw, "root-private", 403),
        (&root_ro, "root-private", 200),
        (&root_rw, "other-private", 404),
    ] {
        let url = presign(c, bucket).await;
        let r = fetch(s.addr(), &url).await;
        assert_eq!(r.status, want, "{bucket}: {r:?}");
    }
    // Anonymous callers: the root tenant's bucket exists but is private; the other tenant's is
    // reachable only by its qualified name, and is private too.
    assert_eq!(anon(s, "GET", "/root-private/doc", b"").await.status, 403);
    assert_eq!(anon(s, "GET", "/other-private/doc", b"").await.status, 404);
    let qualified = anon(s, "GET", "/iso-other:other-private/doc", b"").await;
    assert_eq!(qualified.status, 403);
}
both_dbs!(isolation_matrix);
