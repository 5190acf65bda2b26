use super::acl::{self, acl_headers};
use super::convert::timestamp;
use super::{Gateway, to_s3_error};
use crate::engine::Error;
use crate::engine::acl::{Acl, BucketConfig, Target};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

pub async fn create(
    g: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    // `tenant:bucket` names an existing bucket of a tenant; it is never a new bucket's name.
    if i.bucket.contains(':') {
        return Err(s3s::s3_error!(
            InvalidBucketName,
            "The specified bucket is not valid."
        ));
    }
    let acl = acl_headers!(i).acl(&caller.tenant_id)?;
    if let Some(acl) = &acl {
        acl::known_grantees(g, acl, &caller.tenant_id).await?;
    }
    let enforced = super::bucket_config::ownership_of(i.object_ownership.as_ref())?;
    if enforced
        && acl
            .as_ref()
            .is_some_and(|a| !a.owner_only(&caller.tenant_id))
    {
        return Err(super::bucket_config::acl_with_ownership());
    }
    let constraint = i
        .create_bucket_configuration
        .and_then(|c| c.location_constraint)
        .map(|c| c.as_str().to_owned())
        .filter(|c| !c.is_empty());
    // Like signatures, a constraint naming another region is refused only when the region is
    // enforced; otherwise it is kept and reported back, as clients configured for any region
    // send their own.
    if let Some(c) = &constraint
        && g.enforce_region
        && *c != g.region
    {
        return Err(s3_error!(
            IllegalLocationConstraintException,
            "The {c} location constraint is incompatible for the region specific endpoint this request was sent to."
        ));
    }
    let name = i.bucket;
    let lock = i.object_lock_enabled_for_bucket.unwrap_or(false);
    match g.engine.create_bucket(&caller, &name, lock).await {
        Ok(b) => {
            acl::apply(g, &caller, Target::Bucket(&b.id), acl).await?;
            if enforced {
                (g.engine.set_owner_enforced(&caller, &name, true).await).map_err(to_s3_error)?;
            }
            if let Some(c) = &constraint {
                g.engine
                    .set_bucket_config(&caller, &b.id, BucketConfig::Location, Some(c))
                    .await
                    .map_err(to_s3_error)?;
            }
        }
        // S3's legacy us-east-1 answers the owner's re-creation with 200, keeps the objects
        // and resets the bucket's ACL.
        Err(Error::BucketAlreadyOwnedByYou) if g.region == "us-east-1" => {
            let b = g.engine.bucket(&caller, &name).await.map_err(to_s3_error)?;
            let acl = match acl {
                Some(acl) => acl,
                None => Acl::canned("private", &caller.tenant_id).map_err(to_s3_error)?,
            };
            acl::apply(g, &caller, Target::Bucket(&b.id), Some(acl)).await?;
        }
        Err(e) => return Err(to_s3_error(e)),
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub async fn head(
    g: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .bucket(&caller, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(g.region.clone()),
        ..Default::default()
    }))
}

pub async fn delete(
    g: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .delete_bucket(&caller, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

/// ListBuckets returns at most this many buckets per page (S3: `max-buckets` 1..=10,000).
const MAX_BUCKETS: usize = 10_000;

pub async fn list(
    g: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    let max = match i.max_buckets {
        None => MAX_BUCKETS,
        Some(n) if (1..=MAX_BUCKETS as i32).contains(&n) => n as usize,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and {MAX_BUCKETS}"
            ));
        }
    };
    let after = i
        .continuation_token
        .as_deref()
        .map(super::list::decode_token)
        .transpose()?;
    let mut rows = g.engine.list_buckets(&caller).await.map_err(to_s3_error)?;
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut page: Vec<_> = rows
        .into_iter()
        .filter(|b| i.prefix.as_deref().is_none_or(|p| b.name.starts_with(p)))
        .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
        .take(max + 1)
        .collect();
    let more = page.len() > max;
    page.truncate(max);
    let continuation_token = more
        .then(|| page.last().map(|b| super::list::encode_token(&b.name)))
        .flatten();
    let buckets = page
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_at)),
            bucket_region: Some(g.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(acl::owner(&caller.tenant_id)),
        continuation_token,
        prefix: i.prefix,
    }))
}

pub async fn location(
    g: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let caller = g.caller(&req).await?;
    let b = g
        .engine
        .bucket(&caller, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    let given: Option<String> = g
        .engine
        .bucket_config(&b.id, BucketConfig::Location)
        .await
        .map_err(to_s3_error)?;
    // The constraint given at creation; without one, S3 answers an empty LocationConstraint
    // for us-east-1.
    let location_constraint = given
        .or_else(|| (g.region != "us-east-1").then(|| g.region.clone()))
        .map(BucketLocationConstraint::from);
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}
