use super::convert::timestamp;
use super::{Gateway, to_s3_error};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

pub async fn create(
    g: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let caller = g.caller(&req).await?;
    let name = req.input.bucket;
    g.engine
        .create_bucket(&caller, &name)
        .await
        .map_err(to_s3_error)?;
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

pub async fn list(
    g: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = g.caller(&req).await?;
    let rows = g.engine.list_buckets(&caller).await.map_err(to_s3_error)?;
    let buckets = rows
        .into_iter()
        .filter(|b| {
            req.input
                .prefix
                .as_deref()
                .is_none_or(|p| b.name.starts_with(p))
        })
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_at)),
            bucket_region: Some(g.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner {
            id: Some(caller.tenant_id.clone()),
            display_name: Some(caller.tenant_id),
        }),
        ..Default::default()
    }))
}

pub async fn location(
    g: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .bucket(&caller, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    // S3 answers an empty LocationConstraint for us-east-1.
    let location_constraint =
        (g.region != "us-east-1").then(|| BucketLocationConstraint::from(g.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

/// Versioning has never been enabled on any bucket: S3 answers an empty configuration.
pub async fn versioning(
    g: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .bucket(&caller, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
