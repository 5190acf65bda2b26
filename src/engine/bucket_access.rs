//! What every request must know about the bucket it names before it runs: whose bucket it is,
//! its policy, Object Ownership, CORS and lifecycle rules. Kept in a short-lived cache, so a busy bucket costs a map lookup:
//! an entry lives `TTL`, and this process drops it at once when it changes the policy or
//! deletes the bucket (another gateway's change is seen within `TTL`, as S3's policy changes
//! are eventually consistent too). Only buckets that exist are cached: a name that misses is
//! looked up again on its next request, so a new bucket is never shadowed.

use super::acl::BucketConfig;
use super::policy::{Policy, PolicyError};
use super::{Caller, Engine, Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(2);
/// The one Object Ownership setting stored (the others are not built).
pub const OWNER_ENFORCED: &str = "BucketOwnerEnforced";
/// Entries kept at most; the map is cleared when full (a bound, not an LRU).
const MAX_ENTRIES: usize = 10_000;

/// A bucket as access control sees it.
#[derive(Debug)]
pub struct BucketAccess {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub policy: Option<Policy>,
    /// For the `x-amz-expiration` of reads and writes.
    pub lifecycle: Option<super::lifecycle::Lifecycle>,
    /// Object Ownership `BucketOwnerEnforced`: ACLs neither grant nor may be set.
    pub acls_disabled: bool,
    /// For preflights and the CORS headers of requests that carry an `Origin`.
    pub cors: Option<super::cors::Cors>,
    /// The bucket or its tenant has a quota: a write checks it before streaming its body.
    pub quota_limited: bool,
}

/// Tenant id → bucket name → entry: two borrowed lookups, no allocation per request.
#[derive(Default)]
struct Entries {
    tenants: HashMap<String, HashMap<String, (Instant, Arc<BucketAccess>)>>,
    len: usize,
}

#[derive(Default)]
pub struct AccessCache {
    map: Mutex<Entries>,
}

impl AccessCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, tenant_id: &str, name: &str) -> Option<Arc<BucketAccess>> {
        let map = self.lock();
        (map.tenants.get(tenant_id)?.get(name))
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, b)| b.clone())
    }

    fn put(&self, b: Arc<BucketAccess>) {
        let mut map = self.lock();
        if map.len >= MAX_ENTRIES {
            *map = Entries::default();
        }
        let names = map.tenants.entry(b.tenant_id.clone()).or_default();
        let added = names.insert(b.name.clone(), (Instant::now(), b)).is_none();
        map.len += usize::from(added);
    }

    /// Forgets every bucket of tenant `id` (its quota changed).
    pub fn forget_tenant(&self, id: &str) {
        let mut map = self.lock();
        if let Some(names) = map.tenants.remove(id) {
            map.len -= names.len();
        }
    }

    /// Forgets bucket `id` (its policy or lifecycle changed, or it was deleted).
    pub fn forget(&self, id: &str) {
        let mut map = self.lock();
        let mut removed = 0;
        for names in map.tenants.values_mut() {
            let before = names.len();
            names.retain(|_, (_, b)| b.id != id);
            removed += before - names.len();
        }
        map.len -= removed;
    }
}

impl Engine {
    /// The tenant's bucket `name` with its policy; `None` when the tenant has no such bucket.
    pub async fn bucket_access(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<Arc<BucketAccess>>> {
        if let Some(b) = self.access.get(tenant_id, name) {
            return Ok(Some(b));
        }
        let Some(row) = self.meta.bucket(tenant_id, name).await? else {
            return Ok(None);
        };
        let policy = match self.bucket_policy(&row.id).await? {
            None => None,
            // A stored policy was valid when it was put; one that no longer parses (a newer
            // server's rules) must not open or close anything silently.
            Some(text) => Some(Policy::parse(&text, &row.name).map_err(|e| {
                Error::Internal(format!("stored policy of bucket {}: {e}", row.id))
            })?),
        };
        let lifecycle = self.lifecycle(&row.id).await?;
        let cors = self.cors(&row.id).await?;
        let ownership: Option<String> =
            self.bucket_config(&row.id, BucketConfig::Ownership).await?;
        let quota = self.meta.quota_state(&row.id).await?.unwrap_or_default();
        let b = Arc::new(BucketAccess {
            id: row.id,
            tenant_id: row.tenant_id,
            name: row.name,
            policy,
            lifecycle,
            acls_disabled: ownership.is_some(),
            cors,
            quota_limited: quota.bucket.is_set() || quota.tenant.is_set(),
        });
        self.access.put(b.clone());
        Ok(Some(b))
    }

    /// The policy document as it was put.
    pub async fn bucket_policy(&self, bucket_id: &str) -> Result<Option<String>> {
        self.bucket_config(bucket_id, BucketConfig::Policy).await
    }

    /// Sets (`true`) or removes Object Ownership `BucketOwnerEnforced` on bucket `name`.
    pub async fn set_owner_enforced(&self, caller: &Caller, name: &str, on: bool) -> Result<()> {
        let b = self.bucket(caller, name).await?;
        let value = on.then(|| OWNER_ENFORCED.to_owned());
        let r =
            (self.set_bucket_config(caller, &b.id, BucketConfig::Ownership, value.as_ref())).await;
        self.access.forget(&b.id);
        r
    }

    /// Validates and stores (`None`: removes) bucket `name`'s policy.
    pub async fn set_bucket_policy(
        &self,
        caller: &Caller,
        name: &str,
        text: Option<&str>,
    ) -> Result<()> {
        let b = self.bucket(caller, name).await?;
        if let Some(t) = text {
            Policy::parse(t, &b.name).map_err(|e| match e {
                PolicyError::Malformed(m) => Error::MalformedPolicy(m),
                PolicyError::NotImplemented(m) => Error::NotImplemented(m),
            })?;
        }
        let stored = text.map(str::to_owned);
        let r = self
            .set_bucket_config(caller, &b.id, BucketConfig::Policy, stored.as_ref())
            .await;
        self.access.forget(&b.id);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(id: &str, tenant: &str, name: &str) -> Arc<BucketAccess> {
        Arc::new(BucketAccess {
            id: id.into(),
            tenant_id: tenant.into(),
            name: name.into(),
            policy: None,
            lifecycle: None,
            acls_disabled: false,
            cors: None,
            quota_limited: false,
        })
    }

    #[test]
    fn entries_are_per_tenant_and_forgotten_by_id() {
        let c = AccessCache::default();
        c.put(bucket("1", "t1", "b"));
        c.put(bucket("2", "t2", "b"));
        c.put(bucket("1", "t1", "b"));
        assert_eq!(c.lock().len, 2, "a re-put replaces");
        assert_eq!(c.get("t1", "b").map(|b| b.id.clone()), Some("1".into()));
        assert_eq!(c.get("t2", "b").map(|b| b.id.clone()), Some("2".into()));
        assert!(c.get("t3", "b").is_none());
        c.forget("1");
        assert!(c.get("t1", "b").is_none());
        assert!(c.get("t2", "b").is_some());
        assert_eq!(c.lock().len, 1);
        c.put(bucket("3", "t2", "c"));
        c.forget_tenant("t2");
        assert!(c.get("t2", "b").is_none() && c.get("t2", "c").is_none());
        assert_eq!(c.lock().len, 0);
    }
}
