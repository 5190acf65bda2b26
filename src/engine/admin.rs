//! Tenants and access keys (the `admin` CLI and first-start bootstrap).

use super::{Engine, Error, Result};
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
                        .create_access_key(&tenant, &id, &secret, false)
                        .await?;
                    Ok(Some((id, secret)))
                }
            },
            None if self.meta.tenant_has_keys(&tenant).await? => Ok(None),
            None => {
                let (id, secret) = generate_key();
                self.meta
                    .create_access_key(&tenant, &id, &secret, false)
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

    pub async fn create_key(&self, tenant: &str, read_only: bool) -> Result<(String, String)> {
        let tenant_id = self
            .meta
            .tenant_id(tenant)
            .await?
            .ok_or_else(|| Error::InvalidArgument(format!("no tenant {tenant:?}")))?;
        let (id, secret) = generate_key();
        self.meta
            .create_access_key(&tenant_id, &id, &secret, read_only)
            .await?;
        Ok((id, secret))
    }
}
