//! Tenants and access keys (the `admin` CLI and first-start bootstrap).

use super::{Caller, Engine, Error, Result};
use crate::meta::{BucketRow, KeyRow, MetaError, TenantRow};
use rand::Rng;

/// The tenant created on first start.
pub const ROOT_TENANT: &str = "root";

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new access key id and secret, shaped like AWS's (20 and 40 characters).
pub fn generate_key() -> (String, String) {
    let id = format!(
        "JS{}",
        random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    );
    let secret = random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    (id, secret)
}

impl Engine {
    /// Ensures the root tenant and its key exist. Returns the credentials when they were created
    /// now (so `serve` prints them exactly once), `None` when they were already there.
    pub async fn ensure_root(
        &self,
        key: Option<(String, String)>,
    ) -> Result<Option<(String, String)>> {
        let tenant = match self.meta.tenant_id(ROOT_TENANT).await? {
            Some(t) => t,
            None => self.meta.create_tenant(ROOT_TENANT).await?,
        };
        match key {
            Some((id, secret)) => match self.meta.access_key(&id).await? {
                Some(existing) if existing.tenant_id == tenant => {
                    if existing.secret != secret {
                        tracing::warn!(access_key = %id, "root secret differs from the stored one; the stored one is kept");
                    }
                    Ok(None)
                }
                Some(_) => Err(Error::InvalidArgument(format!(
                    "access key {id} belongs to another tenant"
                ))),
                None => {
                    self.meta
                        .create_access_key(&tenant, &id, &secret, false, None)
                        .await?;
                    Ok(Some((id, secret)))
                }
            },
            None if self.meta.tenant_has_keys(&tenant).await? => Ok(None),
            None => {
                let (id, secret) = generate_key();
                self.meta
                    .create_access_key(&tenant, &id, &secret, false, None)
                    .await?;
                Ok(Some((id, secret)))
            }
        }
    }

    pub async fn create_tenant(&self, name: &str) -> Result<()> {
        if self.meta.tenant_id(name).await?.is_some() {
            return Err(Error::InvalidArgument(format!(
                "tenant {name:?} already exists"
            )));
        }
        self.meta.create_tenant(name).await?;
        Ok(())
    }

    /// A new key for `tenant`, refused from `expires_at` (microseconds) on if given.
    pub async fn create_key(
        &self,
        tenant: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> Result<(String, String)> {
        if expires_at.is_some_and(|t| t <= crate::now_micros()) {
            return Err(Error::InvalidArgument("the expiry is in the past".into()));
        }
        let tenant_id = self.tenant(tenant).await?.id;
        let (id, secret) = generate_key();
        self.meta
            .create_access_key(&tenant_id, &id, &secret, read_only, expires_at)
            .await?;
        Ok((id, secret))
    }

    pub async fn tenants(&self) -> Result<Vec<TenantRow>> {
        Ok(self.meta.tenants().await?)
    }

    pub async fn tenant(&self, name: &str) -> Result<TenantRow> {
        let all = self.meta.tenants().await?;
        all.into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::InvalidArgument(format!("no tenant {name:?}")))
    }

    /// Keys, of one tenant or of all; never their secrets.
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRow>> {
        let all = self.meta.keys().await?;
        Ok(all
            .into_iter()
            .filter(|k| tenant.is_none_or(|t| k.tenant == t))
            .collect())
    }

    /// Disables or enables a key. Running servers drop their cached keys within
    /// `keys::EPOCH_POLL` (the disable moves the key epoch).
    pub async fn set_key_enabled(&self, access_key_id: &str, enabled: bool) -> Result<()> {
        let at = (!enabled).then(crate::now_micros);
        match self.meta.set_key_disabled(access_key_id, at).await? {
            true => Ok(()),
            false => Err(no_key(access_key_id)),
        }
    }

    pub async fn delete_key(&self, access_key_id: &str) -> Result<()> {
        match self.meta.delete_access_key(access_key_id).await? {
            true => Ok(()),
            false => Err(no_key(access_key_id)),
        }
    }

    /// Buckets with their tenant's name, of one tenant or of all, by tenant then name.
    pub async fn all_buckets(&self, tenant: Option<&str>) -> Result<Vec<(String, BucketRow)>> {
        let mut out = Vec::new();
        for t in self.meta.tenants().await? {
            if tenant.is_some_and(|name| name != t.name) {
                continue;
            }
            for b in self.meta.list_buckets(&t.id).await? {
                out.push((t.name.clone(), b));
            }
        }
        Ok(out)
    }

    /// Deletes a tenant and its keys. It must own no bucket, unless `force`: then every object,
    /// upload and bucket of it goes first, through the same deletes a client's requests make.
    /// Returns the objects deleted. The root tenant is refused (a restart would create it anew
    /// with a new key).
    pub async fn delete_tenant(&self, name: &str, force: bool) -> Result<u64> {
        if name == ROOT_TENANT {
            return Err(Error::InvalidArgument(
                "the root tenant cannot be deleted".into(),
            ));
        }
        let t = self.tenant(name).await?;
        let mut deleted = 0;
        if force {
            let owner = Caller {
                tenant_id: t.id.clone(),
                read_only: false,
            };
            for b in self.meta.list_buckets(&t.id).await? {
                deleted += self.empty_bucket(&owner, &b.name).await?;
                self.delete_bucket(&owner, &b.name).await?;
            }
        }
        match self.meta.delete_tenant(&t.id).await {
            Err(MetaError::TenantNotEmpty) => Err(Error::InvalidArgument(format!(
                "tenant {name:?} owns buckets; --force deletes them with everything in them"
            ))),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(deleted),
        }
    }

    /// Deletes every version (and delete marker) of a bucket for good, a listing page at a
    /// time, without bypassing Object Lock (a locked version fails the delete). Returns how many
    /// versions went.
    async fn empty_bucket(&self, owner: &Caller, bucket: &str) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let q = super::VersionQuery {
                max_keys: 1000,
                ..Default::default()
            };
            let page = self.list_versions(owner, bucket, &q).await?;
            if page.items.is_empty() {
                return Ok(deleted);
            }
            for item in page.items {
                if let super::VersionItem::Version(v) = item {
                    let id = Some(v.version_id.as_str());
                    self.delete(owner, bucket, &v.key, id, false).await?;
                    deleted += 1;
                }
            }
        }
    }
}

fn no_key(id: &str) -> Error {
    Error::InvalidArgument(format!("no access key {id:?}"))
}
