//! Quotas: limits on what a tenant or a bucket stores (bytes, versions). The commit checks them
//! exactly, in its transaction (`meta`); here a write whose declared size surely cannot fit is
//! refused before its body is streamed, and the admin surface sets and reports them.

use super::{Engine, Error, Result};
use crate::meta::{BucketRow, Held, Quota, QuotaOf};

impl Engine {
    /// Refuses a write of `add` into bucket `b` (key `key`) that its quotas surely cannot take,
    /// before any byte is stored. Only a bucket whose cached access says it has a quota (its
    /// own or its tenant's) costs a read; that read is fresh, so a raised or removed quota
    /// counts at once. The version the write may replace is credited (generously: the commit
    /// decides exactly).
    pub(super) async fn precheck_quota(&self, b: &BucketRow, key: &str, add: Held) -> Result<()> {
        let limited = match self.bucket_access(&b.tenant_id, &b.name).await? {
            Some(a) => a.quota_limited,
            None => return Err(Error::NoSuchBucket),
        };
        if !limited {
            return Ok(());
        }
        let Some(q) = self.meta.quota_state(&b.id).await? else {
            return Err(Error::NoSuchBucket);
        };
        let fits = |credit: Held| {
            let add = Held {
                bytes: add.bytes - credit.bytes,
                objects: add.objects - credit.objects,
            };
            q.bucket.admits(q.bucket_held, add) && q.tenant.admits(q.tenant_held, add)
        };
        if fits(Held::default()) {
            return Ok(());
        }
        // Over at first sight: an overwrite may free what it replaces.
        let current = self.meta.latest(&b.tenant_id, &b.name, key, false).await?;
        let credit = match current {
            Some(o) if !o.delete_marker && b.versioning != crate::meta::Versioning::Enabled => {
                Held {
                    bytes: i64::try_from(o.size).unwrap_or(i64::MAX),
                    objects: 1,
                }
            }
            _ => Held::default(),
        };
        match fits(credit) {
            true => Ok(()),
            false => Err(exceeded(&q.bucket, q.bucket_held, add)),
        }
    }

    /// Sets a tenant's quota (`bucket` `None`) or one of its buckets'. Takes effect at once:
    /// every commit reads the limits in its transaction.
    pub async fn set_quota(&self, tenant: &str, bucket: Option<&str>, q: Quota) -> Result<()> {
        for limit in [q.bytes, q.objects].into_iter().flatten() {
            if limit < 0 {
                return Err(Error::InvalidArgument("a quota cannot be negative".into()));
            }
        }
        let t = self.tenant(tenant).await?;
        let found = match bucket {
            None => self.meta.set_quota(QuotaOf::Tenant(&t.id), q).await?,
            Some(name) => {
                let b = self.meta.bucket(&t.id, name).await?;
                let b = b.ok_or_else(|| no_bucket(tenant, name))?;
                let found = self.meta.set_quota(QuotaOf::Bucket(&b.id), q).await?;
                self.access.forget(&b.id);
                found
            }
        };
        if !found {
            return Err(Error::InvalidArgument(format!("no tenant {tenant:?}")));
        }
        // Another tenant-wide limit changes what every bucket of the tenant must check.
        self.access.forget_tenant(&t.id);
        Ok(())
    }

    /// A tenant's quota (`bucket` `None`) or one of its buckets'.
    pub async fn quota(&self, tenant: &str, bucket: Option<&str>) -> Result<Quota> {
        let t = self.tenant(tenant).await?;
        let q = match bucket {
            None => self.meta.quota(QuotaOf::Tenant(&t.id)).await?,
            Some(name) => {
                let b = self.meta.bucket(&t.id, name).await?;
                let b = b.ok_or_else(|| no_bucket(tenant, name))?;
                self.meta.quota(QuotaOf::Bucket(&b.id)).await?
            }
        };
        q.ok_or_else(|| Error::InvalidArgument(format!("no tenant {tenant:?}")))
    }
}

fn no_bucket(tenant: &str, name: &str) -> Error {
    Error::InvalidArgument(format!("no bucket {name:?} of tenant {tenant:?}"))
}

/// Which quota a refused write exceeds, for the error message.
fn exceeded(bucket: &Quota, held: Held, add: Held) -> Error {
    match bucket.admits(held, add) {
        true => Error::QuotaExceeded("tenant's"),
        false => Error::QuotaExceeded("bucket's"),
    }
}
