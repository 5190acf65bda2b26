//! Versioning and Object Lock on the wire: PutBucketVersioning, the Object Lock configuration,
//! retention and legal hold, and the version and lock headers of object responses.

use super::convert::{micros, timestamp};
use super::{Gateway, to_s3_error};
use crate::engine::{DefaultRetention, LockRequest, RetentionPeriod};
use crate::meta::{LockChange, LockMode, NULL_VERSION, ObjectRow, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// The `x-amz-version-id` a response shows: a version's own id; the null version's only when
/// the request named it (S3 sends none for writes to unversioned or suspended buckets).
pub fn shown_version(row: &ObjectRow, asked: Option<&str>) -> Option<String> {
    (row.version_id != NULL_VERSION || asked.is_some()).then(|| row.version_id.clone())
}

fn mode_of(m: &str) -> S3Result<LockMode> {
    LockMode::parse(m).ok_or_else(|| s3_error!(MalformedXML, "Unknown Object Lock mode {m:?}"))
}

/// A retain-until date as microseconds; S3 refuses one that is not in the future.
fn future(t: &Timestamp) -> S3Result<i64> {
    let until = micros(t);
    if until <= crate::now_micros() {
        return Err(s3_error!(
            InvalidArgument,
            "The retain until date must be in the future!"
        ));
    }
    Ok(until)
}

/// A write's `x-amz-object-lock-*` headers: mode and date come together, the date in the
/// future.
pub fn lock_request(
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<LockRequest> {
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(m), Some(t)) => {
            let mode = LockMode::parse(m.as_str())
                .ok_or_else(|| s3_error!(InvalidArgument, "Unknown wormMode directive."))?;
            Some((mode, future(t)?))
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be \
                 supplied"
            ));
        }
    };
    let legal_hold = hold.map(|h| legal_hold_of(h.as_str())).transpose()?;
    Ok(LockRequest {
        retention,
        legal_hold,
    })
}

fn legal_hold_of(s: &str) -> S3Result<bool> {
    match s {
        ObjectLockLegalHoldStatus::ON => Ok(true),
        ObjectLockLegalHoldStatus::OFF => Ok(false),
        _ => Err(s3_error!(MalformedXML, "Unknown legal hold status {s:?}")),
    }
}

/// A version's lock headers for GET and HEAD: mode, date, legal hold.
pub fn lock_output(
    row: &ObjectRow,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    let (mode, until) = match row.lock.retention {
        Some((m, t)) => (
            Some(ObjectLockMode::from(m.as_str().to_owned())),
            Some(timestamp(t)),
        ),
        None => (None, None),
    };
    let hold = row
        .lock
        .legal_hold
        .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
    (mode, until, hold)
}

pub async fn get_versioning(
    g: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let caller = g.caller(&req).await?;
    let b = (g.engine.bucket(&caller, &req.input.bucket).await).map_err(to_s3_error)?;
    let status = match b.versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::ENABLED),
        Versioning::Suspended => Some(BucketVersioningStatus::SUSPENDED),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: status.map(BucketVersioningStatus::from_static),
        mfa_delete: None,
    }))
}

pub async fn put_versioning(
    g: &Gateway,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    let c = i.versioning_configuration;
    if c.mfa_delete
        .as_ref()
        .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
    {
        return Err(s3_error!(
            NotImplemented,
            "MFA Delete is not supported by this server"
        ));
    }
    let enabled = match c.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => true,
        Some(BucketVersioningStatus::SUSPENDED) => false,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "The versioning Status must be Enabled or Suspended"
            ));
        }
    };
    (g.engine.set_versioning(&caller, &i.bucket, enabled).await).map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub async fn get_object_lock(
    g: &Gateway,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let caller = g.caller(&req).await?;
    let rule = (g.engine.object_lock(&caller, &req.input.bucket).await).map_err(to_s3_error)?;
    let rule = rule.map(|r| {
        let (days, years) = match r.period {
            RetentionPeriod::Days(d) => (Some(d), None),
            RetentionPeriod::Years(y) => (None, Some(y)),
        };
        ObjectLockRule {
            default_retention: Some(s3s::dto::DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from(r.mode.as_str().to_owned())),
                days,
                years,
            }),
        }
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

pub async fn put_object_lock(
    g: &Gateway,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    let c = i
        .object_lock_configuration
        .ok_or_else(|| s3_error!(MalformedXML, "ObjectLockConfiguration is required"))?;
    if c.object_lock_enabled
        .as_ref()
        .map(ObjectLockEnabled::as_str)
        != Some(ObjectLockEnabled::ENABLED)
    {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let rule = match c.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => Some(default_retention(d)?),
    };
    (g.engine.set_object_lock(&caller, &i.bucket, rule).await).map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

/// A DefaultRetention rule: a mode and either a positive number of days or of years.
fn default_retention(d: s3s::dto::DefaultRetention) -> S3Result<DefaultRetention> {
    let mode = match d.mode {
        Some(m) => mode_of(m.as_str())?,
        None => return Err(s3_error!(MalformedXML, "DefaultRetention needs a Mode")),
    };
    let period = match (d.days, d.years) {
        (Some(days), None) => RetentionPeriod::Days(days),
        (None, Some(years)) => RetentionPeriod::Years(years),
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "DefaultRetention needs either Days or Years"
            ));
        }
    };
    let n = match period {
        RetentionPeriod::Days(n) | RetentionPeriod::Years(n) => n,
    };
    if n <= 0 {
        return Err(to_s3_error(crate::engine::Error::InvalidRetentionPeriod));
    }
    Ok(DefaultRetention { mode, period })
}

pub async fn get_retention(
    g: &Gateway,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let version = i.version_id.as_deref();
    let lock = g
        .engine
        .object_lock_state(&caller, &i.bucket, &i.key, version)
        .await
        .map_err(to_s3_error)?;
    let Some((mode, until)) = lock.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(mode.as_str().to_owned())),
            retain_until_date: Some(timestamp(until)),
        }),
    }))
}

pub async fn put_retention(
    g: &Gateway,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    let retention = match i.retention {
        None => None,
        Some(r) => match (r.mode, r.retain_until_date) {
            (None, None) => None,
            (Some(m), Some(t)) => Some((mode_of(m.as_str())?, future(&t)?)),
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "Retention needs both Mode and RetainUntilDate"
                ));
            }
        },
    };
    let change = LockChange::Retention {
        retention,
        bypass: i.bypass_governance_retention.unwrap_or(false),
    };
    let version = i.version_id.as_deref();
    g.engine
        .change_lock(&caller, &i.bucket, &i.key, version, change)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub async fn get_legal_hold(
    g: &Gateway,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let version = i.version_id.as_deref();
    let lock = g
        .engine
        .object_lock_state(&caller, &i.bucket, &i.key, version)
        .await
        .map_err(to_s3_error)?;
    let status = match lock.legal_hold {
        true => ObjectLockLegalHoldStatus::ON,
        false => ObjectLockLegalHoldStatus::OFF,
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from_static(status)),
        }),
    }))
}

pub async fn put_legal_hold(
    g: &Gateway,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    let status = i.legal_hold.and_then(|h| h.status);
    let Some(status) = status else {
        return Err(s3_error!(MalformedXML, "LegalHold needs a Status"));
    };
    let change = LockChange::LegalHold(legal_hold_of(status.as_str())?);
    let version = i.version_id.as_deref();
    g.engine
        .change_lock(&caller, &i.bucket, &i.key, version, change)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}
