//! A bucket's stored sub-resources: its public access block and its tags.

use super::{Gateway, to_s3_error};
use crate::engine::OWNER_ENFORCED;
use crate::engine::acl::{BucketConfig, PublicAccessBlock, Target};
use crate::engine::{Caller, Error, MAX_BUCKET_TAGS, check_tag_set};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;

/// The bucket named by a request, by id.
async fn bucket_id<T>(g: &Gateway, req: &S3Request<T>, name: &str) -> S3Result<(Caller, String)> {
    let caller = g.caller(req).await?;
    let b = g.engine.bucket(&caller, name).await.map_err(to_s3_error)?;
    Ok((caller, b.id))
}

pub async fn put_public_access_block(
    g: &Gateway,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let (caller, id) = bucket_id(g, &req, &req.input.bucket).await?;
    let c = &req.input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    g.engine
        .set_bucket_config(&caller, &id, BucketConfig::PublicAccessBlock, Some(&block))
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

pub async fn get_public_access_block(
    g: &Gateway,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let (_, id) = bucket_id(g, &req, &req.input.bucket).await?;
    let block: PublicAccessBlock = g
        .engine
        .bucket_config(&id, BucketConfig::PublicAccessBlock)
        .await
        .map_err(to_s3_error)?
        .ok_or_else(|| {
            let mut e = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                "The public access block configuration was not found",
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            e
        })?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(block.block_public_acls),
            ignore_public_acls: Some(block.ignore_public_acls),
            block_public_policy: Some(block.block_public_policy),
            restrict_public_buckets: Some(block.restrict_public_buckets),
        }),
    }))
}

pub async fn delete_public_access_block(
    g: &Gateway,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let (caller, id) = bucket_id(g, &req, &req.input.bucket).await?;
    g.engine
        .set_bucket_config::<PublicAccessBlock>(&caller, &id, BucketConfig::PublicAccessBlock, None)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
}

pub async fn put_tagging(
    g: &Gateway,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let (caller, id) = bucket_id(g, &req, &req.input.bucket).await?;
    let tags = super::convert::tag_set(req.input.tagging.tag_set)?;
    if tags.len() > MAX_BUCKET_TAGS {
        return Err(to_s3_error(Error::InvalidTag(
            "Bucket tag count cannot be greater than 50".into(),
        )));
    }
    check_tag_set(&tags).map_err(to_s3_error)?;
    g.engine
        .set_bucket_config(&caller, &id, BucketConfig::Tagging, Some(&tags))
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketTaggingOutput {}))
}

pub async fn get_tagging(
    g: &Gateway,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let (_, id) = bucket_id(g, &req, &req.input.bucket).await?;
    let tags: BTreeMap<String, String> = g
        .engine
        .bucket_config(&id, BucketConfig::Tagging)
        .await
        .map_err(to_s3_error)?
        .ok_or_else(|| s3_error!(NoSuchTagSet, "The TagSet does not exist"))?;
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: super::convert::tag_list(tags),
    }))
}

pub async fn delete_tagging(
    g: &Gateway,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let (caller, id) = bucket_id(g, &req, &req.input.bucket).await?;
    g.engine
        .set_bucket_config::<BTreeMap<String, String>>(&caller, &id, BucketConfig::Tagging, None)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketTaggingOutput {}))
}

/// Whether an `ObjectOwnership` asks for `BucketOwnerEnforced`; the two settings under which a
/// writer other than the owner would own its objects are not built (objects here always belong
/// to the bucket's owner).
pub fn ownership_of(o: Option<&ObjectOwnership>) -> S3Result<bool> {
    match o.map(ObjectOwnership::as_str) {
        None => Ok(false),
        Some(ObjectOwnership::BUCKET_OWNER_ENFORCED) => Ok(true),
        Some(ObjectOwnership::OBJECT_WRITER | ObjectOwnership::BUCKET_OWNER_PREFERRED) => {
            Err(s3_error!(
                NotImplemented,
                "Object Ownership other than BucketOwnerEnforced is not implemented: objects \
                 always belong to the bucket owner"
            ))
        }
        Some(other) => Err(s3_error!(MalformedXML, "Unknown ObjectOwnership {other:?}")),
    }
}

pub fn acl_with_ownership() -> s3s::S3Error {
    s3_error!(
        InvalidBucketAclWithObjectOwnership,
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
    )
}

pub async fn put_ownership_controls(
    g: &Gateway,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let (caller, id) = bucket_id(g, &req, &req.input.bucket).await?;
    let rules = &req.input.ownership_controls.rules;
    let [rule] = rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "OwnershipControls takes exactly one rule"
        ));
    };
    if !ownership_of(Some(&rule.object_ownership))? {
        return Err(s3_error!(
            MalformedXML,
            "OwnershipControls takes exactly one rule"
        ));
    }
    let acl = g
        .engine
        .acl(Target::Bucket(&id), &caller.tenant_id)
        .await
        .map_err(to_s3_error)?;
    if !acl.owner_only(&caller.tenant_id) {
        return Err(acl_with_ownership());
    }
    g.engine
        .set_owner_enforced(&caller, &req.input.bucket, true)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

pub async fn get_ownership_controls(
    g: &Gateway,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let (_, id) = bucket_id(g, &req, &req.input.bucket).await?;
    let stored: Option<String> = g
        .engine
        .bucket_config(&id, BucketConfig::Ownership)
        .await
        .map_err(to_s3_error)?;
    if stored.is_none() {
        let mut e = s3s::S3Error::with_message(
            s3s::S3ErrorCode::OwnershipControlsNotFoundError,
            "The bucket ownership controls were not found",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    }
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls {
            rules: vec![OwnershipControlsRule {
                object_ownership: ObjectOwnership::from_static(OWNER_ENFORCED),
            }],
        }),
    }))
}

pub async fn delete_ownership_controls(
    g: &Gateway,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .set_owner_enforced(&caller, &req.input.bucket, false)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketOwnershipControlsOutput {}))
}
