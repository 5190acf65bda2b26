//! Bucket policies on the wire: Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, and what a
//! request is to a policy (its IAM action, resource ARN and condition keys). `access` decides
//! with them; `engine::policy` evaluates.

use super::{Gateway, to_s3_error};
use crate::engine::Error;
use crate::engine::acl::{BucketConfig, PublicAccessBlock, Target};
use crate::engine::policy::{Context, Policy};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// The client's connection, put in each request's extensions by the server (for
/// `aws:SourceIp` and `aws:SecureTransport`).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub ip: std::net::IpAddr,
    /// The request came over TLS.
    pub tls: bool,
}

pub async fn put(
    g: &Gateway,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let b = g
        .engine
        .bucket(&caller, &i.bucket)
        .await
        .map_err(to_s3_error)?;
    let block: Option<PublicAccessBlock> = g
        .engine
        .bucket_config(&b.id, BucketConfig::PublicAccessBlock)
        .await
        .map_err(to_s3_error)?;
    if block.is_some_and(|p| p.block_public_policy)
        && Policy::parse(&i.policy, &b.name).is_ok_and(|p| p.is_public())
    {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    g.engine
        .set_bucket_policy(&caller, &i.bucket, Some(&i.policy))
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketPolicyOutput {}))
}

pub async fn get(
    g: &Gateway,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let caller = g.caller(&req).await?;
    let b = (g.engine.bucket(&caller, &req.input.bucket).await).map_err(to_s3_error)?;
    let policy = g.engine.bucket_policy(&b.id).await.map_err(to_s3_error)?;
    let policy = policy.ok_or_else(|| to_s3_error(Error::NoSuchBucketPolicy))?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

pub async fn delete(
    g: &Gateway,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .set_bucket_policy(&caller, &req.input.bucket, None)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketPolicyOutput {}))
}

/// Public when its policy grants everyone something or its list grants a group.
pub async fn status(
    g: &Gateway,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let caller = g.caller(&req).await?;
    let b = (g.engine.bucket(&caller, &req.input.bucket).await).map_err(to_s3_error)?;
    let access = g
        .engine
        .bucket_access(&b.tenant_id, &b.name)
        .await
        .map_err(to_s3_error)?;
    let by_policy = access.is_some_and(|a| a.policy.as_ref().is_some_and(Policy::is_public));
    let acl = g
        .engine
        .acl(Target::Bucket(&b.id), &b.tenant_id)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(by_policy || acl.is_public()),
        }),
    }))
}

/// The IAM action of operation `op` (s3s's name), as S3 documents the mapping.
pub fn action(op: &str, versioned: bool) -> String {
    let named = match op {
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "ListParts" => "ListMultipartUploadParts",
        "HeadObject" => "GetObject",
        "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "PostObject" => "PutObject",
        "DeleteObjects" => "DeleteObject",
        "DeleteBucketTagging" => "PutBucketTagging",
        "GetBucketCors" => "GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "PutBucketObjectLockConfiguration",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "GetBucketOwnershipControls"
        | "PutBucketOwnershipControls"
        | "DeleteBucketOwnershipControls" => "PutBucketOwnershipControls",
        "GetObjectAttributes" => "GetObject",
        other => other,
    };
    // Reads and deletes of a named version are their own actions.
    let version = match (versioned, named) {
        (true, "GetObject") => "GetObjectVersion",
        (true, "DeleteObject") => "DeleteObjectVersion",
        (true, "GetObjectAcl") => "GetObjectVersionAcl",
        (true, "PutObjectAcl") => "PutObjectVersionAcl",
        (true, "GetObjectTagging") => "GetObjectVersionTagging",
        (true, "PutObjectTagging") => "PutObjectVersionTagging",
        (true, "DeleteObjectTagging") => "DeleteObjectVersionTagging",
        _ => named,
    };
    format!("s3:{version}")
}

/// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
pub fn resource(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

/// The condition keys of a request: its query's listing and version parameters, its `x-amz-*`
/// headers, how it was signed, where it came from and when.
pub fn context(
    headers: &http::HeaderMap,
    uri: &http::Uri,
    peer: Option<Peer>,
    tenant: Option<&str>,
) -> Context {
    let mut cx = Context::default();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "prefix" | "delimiter" | "max-keys" => cx.set(&format!("s3:{k}"), v),
            "versionId" => cx.set("s3:VersionId", v),
            _ => {}
        }
    }
    for (name, v) in headers {
        let Ok(v) = v.to_str() else { continue };
        let n = name.as_str();
        if n.starts_with("x-amz-") {
            cx.add(&format!("s3:{n}"), v);
        }
        match n {
            "user-agent" => cx.set("aws:UserAgent", v),
            "referer" => cx.set("aws:Referer", v),
            "x-amz-object-lock-mode" => cx.set("s3:object-lock-mode", v),
            "x-amz-object-lock-retain-until-date" => cx.set("s3:object-lock-retain-until-date", v),
            "x-amz-object-lock-legal-hold" => cx.set("s3:object-lock-legal-hold", v),
            "x-amz-tagging" => request_tags(&mut cx, v),
            _ => {}
        }
    }
    signing(&mut cx, headers, uri);
    if let Some(p) = peer {
        cx.set("aws:SourceIp", p.ip.to_string());
    }
    let tls = peer.is_some_and(|p| p.tls);
    cx.set("aws:SecureTransport", if tls { "true" } else { "false" });
    let now = time::OffsetDateTime::now_utc();
    cx.set("aws:EpochTime", now.unix_timestamp().to_string());
    if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
        cx.set("aws:CurrentTime", t);
    }
    match tenant {
        Some(t) => {
            cx.set("aws:PrincipalType", "Account");
            cx.set("aws:PrincipalAccount", t);
        }
        None => cx.set("aws:PrincipalType", "Anonymous"),
    }
    cx
}

/// `s3:authType` and `s3:signatureversion`.
fn signing(cx: &mut Context, headers: &http::HeaderMap, uri: &http::Uri) {
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let query = uri.query().unwrap_or("");
    let (kind, version) = match auth {
        Some(a) if a.starts_with("AWS4-") => ("REST-HEADER", Some("AWS4-HMAC-SHA256")),
        Some(_) => ("REST-HEADER", Some("AWS")),
        None if query.contains("X-Amz-Signature=") => {
            ("REST-QUERY-STRING", Some("AWS4-HMAC-SHA256"))
        }
        None if query.contains("Signature=") => ("REST-QUERY-STRING", Some("AWS")),
        None => ("REST-HEADER", None),
    };
    cx.set("s3:authType", kind);
    if let Some(v) = version {
        cx.set("s3:signatureversion", v);
    }
}

/// `s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys` of an `x-amz-tagging` header.
fn request_tags(cx: &mut Context, tagging: &str) {
    for (k, v) in url::form_urlencoded::parse(tagging.as_bytes()) {
        cx.set(&format!("s3:RequestObjectTag/{k}"), v.as_ref());
        cx.add("s3:RequestObjectTagKeys", k.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_s3s_names() {
        assert_eq!(action("ListObjectsV2", false), "s3:ListBucket");
        assert_eq!(action("HeadObject", true), "s3:GetObjectVersion");
        assert_eq!(action("UploadPart", false), "s3:PutObject");
        assert_eq!(action("DeleteObjects", true), "s3:DeleteObjectVersion");
        assert_eq!(action("GetBucketPolicy", false), "s3:GetBucketPolicy");
    }

    #[test]
    fn context_takes_query_headers_and_tags() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-acl", "public-read".parse().unwrap());
        h.insert("x-amz-tagging", "security=public&a=b".parse().unwrap());
        let uri: http::Uri = "/b?list-type=2&prefix=public%2F&max-keys=5"
            .parse()
            .unwrap();
        let cx = context(&h, &uri, None, None);
        assert_eq!(cx.get("s3:prefix"), Some(&["public/".to_owned()][..]));
        assert_eq!(cx.get("s3:max-keys"), Some(&["5".to_owned()][..]));
        assert_eq!(
            cx.get("s3:x-amz-acl"),
            Some(&["public-read".to_owned()][..])
        );
        assert_eq!(
            cx.get("s3:RequestObjectTag/security"),
            Some(&["public".to_owned()][..])
        );
        assert_eq!(
            cx.get("aws:PrincipalType"),
            Some(&["Anonymous".to_owned()][..])
        );
    }
}
