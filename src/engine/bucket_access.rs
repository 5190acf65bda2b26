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
}

type Entries = HashMap<(String, String), (Instant, Arc<BucketAccess>)>;

#[derive(Default)]
pub struct AccessCache {
    map: Mutex<Entries>,
}

impl AccessCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, tenant_id: &str, name: &str) -> Option<Arc<BucketAccess>> {
        // The tuple key wants owned strings; names are short and this is one allocation pair
        // against a database round trip.
        let map = self.lock();
        map.get(&(tenant_id.to_owned(), name.to_owned()))
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, b)| b.clone())
    }

    fn put(&self, b: Arc<BucketAccess>) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert((b.tenant_id.clone(), b.name.clone()), (Instant::now(), b));
    }

    /// Forgets bucket `id` (its policy or lifecycle changed, or it was deleted).
    pub fn forget(&self, id: &str) {
        self.lock().retain(|_, (_, b)| b.id != id);
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
        let b = Arc::new(BucketAccess {
            id: row.id,
            tenant_id: row.tenant_id,
            name: row.name,
            policy,
            lifecycle,
            acls_disabled: ownership.is_some(),
            cors,
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
