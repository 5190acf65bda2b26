//! Lifecycle configurations on the wire (Put/Get/DeleteBucketLifecycleConfiguration) and the
//! `x-amz-expiration` header of writes and reads.

use super::{Gateway, to_s3_error};
use crate::engine::lifecycle::{
    And, Expiration, Filter, Lifecycle, NoncurrentExpiration, Rule, Subject,
};
use crate::meta::ObjectRow;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

pub async fn put(
    g: &Gateway,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let rules = input
        .lifecycle_configuration
        .map(|c| c.rules)
        .unwrap_or_default();
    let config = Lifecycle {
        rules: rules.into_iter().map(rule_from).collect::<S3Result<_>>()?,
    };
    g.engine
        .set_lifecycle(&caller, &input.bucket, Some(&config))
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub async fn get(
    g: &Gateway,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let caller = g.caller(&req).await?;
    let b = (g.engine.bucket(&caller, &req.input.bucket).await).map_err(to_s3_error)?;
    let config = g.engine.lifecycle(&b.id).await.map_err(to_s3_error)?;
    let config = config.ok_or_else(|| {
        s3_error!(
            NoSuchLifecycleConfiguration,
            "The lifecycle configuration does not exist"
        )
    })?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(config.rules.into_iter().map(rule_to).collect()),
        ..Default::default()
    }))
}

pub async fn delete(
    g: &Gateway,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .set_lifecycle(&caller, &req.input.bucket, None)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
}

/// `x-amz-expiration` for a current version: when the bucket's rules expire it, and by which.
pub fn expiration(ext: &http::Extensions, row: &ObjectRow) -> Option<String> {
    let named = ext.get::<super::access::Named>()?;
    let lc = named.lifecycle()?;
    let s = Subject {
        key: &row.key,
        size: row.size,
        tags: &row.headers.tags,
    };
    let (at, id) = lc.expiry_of(&s, row.created_at)?;
    let date = super::convert::http_date(&super::convert::timestamp(at))?;
    Some(format!("expiry-date=\"{date}\", rule-id=\"{id}\""))
}

fn tag_pair(t: Tag) -> S3Result<(String, String)> {
    match (t.key, t.value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(s3_error!(MalformedXML, "A tag needs a Key and a Value")),
    }
}

fn rule_from(r: LifecycleRule) -> S3Result<Rule> {
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "Lifecycle transitions between storage classes are not implemented"
        ));
    }
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "Status must be Enabled or Disabled"
            ));
        }
    };
    let filter = match r.filter {
        None => None,
        Some(f) => Some(Filter {
            prefix: f.prefix,
            tag: f.tag.map(tag_pair).transpose()?,
            size_gt: f.object_size_greater_than,
            size_lt: f.object_size_less_than,
            and: match f.and {
                None => None,
                Some(a) => Some(And {
                    prefix: a.prefix,
                    tags: (a.tags.unwrap_or_default().into_iter())
                        .map(tag_pair)
                        .collect::<S3Result<_>>()?,
                    size_gt: a.object_size_greater_than,
                    size_lt: a.object_size_less_than,
                }),
            },
        }),
    };
    Ok(Rule {
        // S3 names a rule that has no ID.
        id: r
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        enabled,
        prefix: r.prefix,
        filter,
        expiration: r.expiration.map(|e| Expiration {
            days: e.days,
            date: e
                .date
                .map(|d| time::OffsetDateTime::from(d).unix_timestamp()),
            expired_object_delete_marker: e.expired_object_delete_marker,
        }),
        noncurrent: r
            .noncurrent_version_expiration
            .map(|n| NoncurrentExpiration {
                noncurrent_days: n.noncurrent_days,
                newer_noncurrent_versions: n.newer_noncurrent_versions,
            }),
        abort_upload_days: r
            .abort_incomplete_multipart_upload
            .and_then(|a| a.days_after_initiation),
    })
}

fn tag_of((key, value): (String, String)) -> Tag {
    Tag {
        key: Some(key),
        value: Some(value),
    }
}

fn rule_to(r: Rule) -> LifecycleRule {
    LifecycleRule {
        id: Some(r.id),
        status: ExpirationStatus::from_static(match r.enabled {
            true => ExpirationStatus::ENABLED,
            false => ExpirationStatus::DISABLED,
        }),
        prefix: r.prefix,
        filter: r.filter.map(|f| LifecycleRuleFilter {
            prefix: f.prefix,
            tag: f.tag.map(tag_of),
            object_size_greater_than: f.size_gt,
            object_size_less_than: f.size_lt,
            and: f.and.map(|a| LifecycleRuleAndOperator {
                prefix: a.prefix,
                tags: (!a.tags.is_empty()).then(|| a.tags.into_iter().map(tag_of).collect()),
                object_size_greater_than: a.size_gt,
                object_size_less_than: a.size_lt,
            }),
        }),
        expiration: r.expiration.map(|e| LifecycleExpiration {
            days: e.days,
            date: e
                .date
                .and_then(|d| time::OffsetDateTime::from_unix_timestamp(d).ok())
                .map(Timestamp::from),
            expired_object_delete_marker: e.expired_object_delete_marker,
        }),
        noncurrent_version_expiration: r.noncurrent.map(|n| NoncurrentVersionExpiration {
            noncurrent_days: n.noncurrent_days,
            newer_noncurrent_versions: n.newer_noncurrent_versions,
        }),
        abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d),
            }
        }),
        noncurrent_version_transitions: None,
        transitions: None,
    }
}
