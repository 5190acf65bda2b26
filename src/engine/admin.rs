//! Tenants and access keys (the `admin` CLI and first-start bootstrap).

use super::{Caller, Engine, Error, Result};
use crate::meta::{
    AdminTokenRow, BucketRow, KeyRow, MetaError, Quota, QuotaOf, TenantRow, UsageRow,
};
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

/// `admin usage`: what each bucket holds per tier, and per tenant what it stored (logical)
/// against the disk its blobs take (attributed physical).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageReport {
    pub buckets: Vec<UsageRow>,
    pub tenants: Vec<TenantUsage>,
}

/// One tenant's figures, summed over its buckets and tiers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TenantUsage {
    pub tenant: String,
    pub objects: i64,
    /// Bytes of every stored version (current and noncurrent): what the tenant stored.
    pub logical_bytes: i64,
    pub noncurrent_versions: i64,
    pub noncurrent_bytes: i64,
    pub delete_markers: i64,
    /// The blobs its versions reference, each shared among the tenants that reference it.
    pub physical_bytes: i64,
    pub physical_by_tier: std::collections::BTreeMap<String, i64>,
    /// `logical_bytes / physical_bytes` (`None` while nothing is stored).
    pub dedup_ratio: Option<f64>,
    pub quota: Quota,
}

impl Engine {
    /// Usage of every tenant, or of one (`tenant`), or of one bucket of it.
    pub async fn usage_report(
        &self,
        tenant: Option<&str>,
        bucket: Option<&str>,
    ) -> Result<UsageReport> {
        if let Some(t) = tenant {
            self.tenant(t).await?;
        }
        let wanted = |t: &str| tenant.is_none_or(|w| w == t);
        // Tenant rows always sum the whole tenant, whatever bucket is asked for.
        let all_buckets = self.meta.usage().await?;
        let buckets: Vec<UsageRow> = (all_buckets.iter())
            .filter(|u| wanted(&u.tenant) && bucket.is_none_or(|b| b == u.bucket))
            .cloned()
            .collect();
        let mut tenants: std::collections::BTreeMap<String, TenantUsage> = Default::default();
        for t in self.meta.tenants().await? {
            if wanted(&t.name) && (bucket.is_none() || buckets.iter().any(|u| u.tenant == t.name)) {
                let quota = self.meta.quota(QuotaOf::Tenant(&t.id)).await?;
                let entry = TenantUsage {
                    tenant: t.name.clone(),
                    quota: quota.unwrap_or_default(),
                    ..TenantUsage::default()
                };
                tenants.insert(t.name, entry);
            }
        }
        for u in &all_buckets {
            if let Some(t) = tenants.get_mut(&u.tenant) {
                t.objects += u.objects;
                t.logical_bytes += u.bytes + u.noncurrent_bytes;
                t.noncurrent_versions += u.noncurrent_versions;
                t.noncurrent_bytes += u.noncurrent_bytes;
                t.delete_markers += u.delete_markers;
            }
        }
        for p in self.meta.physical().await? {
            if let Some(t) = tenants.get_mut(&p.tenant) {
                t.physical_bytes += p.bytes;
                *t.physical_by_tier.entry(p.tier).or_default() += p.bytes;
            }
        }
        for t in tenants.values_mut() {
            t.dedup_ratio =
                (t.physical_bytes > 0).then(|| t.logical_bytes as f64 / t.physical_bytes as f64);
        }
        Ok(UsageReport {
            buckets,
            tenants: tenants.into_values().collect(),
        })
    }
}

/// Metered requests and bytes of one period (an hour or a UTC day), tenant, bucket and pricing
/// class (`metering::Class`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MeterReport {
    pub tenant: String,
    pub bucket: String,
    /// The period's start, RFC 3339.
    pub period: String,
    pub class: String,
    pub requests: i64,
    pub bytes_received: i64,
    pub bytes_sent: i64,
}

/// `admin metering`'s and the admin API's question: a tenant's (or every tenant's) figures
/// between two times (microseconds), per hour or per day.
#[derive(Debug, Clone, Copy)]
pub struct MeterRange<'a> {
    pub tenant: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub from: i64,
    pub to: i64,
    pub by_day: bool,
}

impl Engine {
    /// Metered figures, by period, tenant, bucket and class. Gateways add theirs every
    /// `metering::FLUSH_EVERY`.
    pub async fn metering(&self, r: MeterRange<'_>) -> Result<Vec<MeterReport>> {
        const HOUR: i64 = 3_600_000_000;
        let tenant_id = match r.tenant {
            Some(name) => Some(self.tenant(name).await?.id),
            None => None,
        };
        let names: std::collections::HashMap<String, String> = (self.meta.tenants().await?)
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let q = crate::meta::MeterQuery {
            tenant_id: tenant_id.as_deref(),
            bucket: r.bucket,
            from_hour: r.from.div_euclid(HOUR),
            to_hour: r.to.div_euclid(HOUR) + 1,
            by_day: r.by_day,
        };
        let rows = self.meta.metering(q).await?;
        Ok(rows
            .into_iter()
            .map(|m| MeterReport {
                tenant: names.get(&m.tenant_id).cloned().unwrap_or(m.tenant_id),
                bucket: m.bucket,
                period: rfc3339(m.hour.saturating_mul(HOUR)),
                class: m.class,
                requests: m.requests,
                bytes_received: m.bytes_received,
                bytes_sent: m.bytes_sent,
            })
            .collect())
    }
}

/// A stored time (microseconds since the epoch) as RFC 3339.
pub fn rfc3339(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000);
    t.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| micros.to_string())
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Every admin API call, and `/metrics` with per-tenant figures.
    Admin,
    /// `/metrics` with per-tenant figures, nothing else.
    Metrics,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Admin => "admin",
            TokenScope::Metrics => "metrics",
        }
    }
}

/// The SHA-256 of a token, as stored.
fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

impl Engine {
    /// A new admin API token: its row and the token, shown this once (only its SHA-256 is kept).
    pub async fn create_admin_token(
        &self,
        name: &str,
        scope: TokenScope,
    ) -> Result<(AdminTokenRow, String)> {
        if name.is_empty() || name.len() > 200 {
            return Err(Error::InvalidArgument(
                "a token's name is 1 to 200 bytes".into(),
            ));
        }
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let token = format!("jst_{}", random_string(43, alphabet));
        let row = AdminTokenRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            scope: scope.as_str().to_owned(),
            created_at: crate::now_micros(),
            revoked_at: None,
        };
        self.meta
            .create_admin_token(&row, &token_digest(&token))
            .await?;
        Ok((row, token))
    }

    pub async fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>> {
        Ok(self.meta.admin_tokens().await?)
    }

    /// Revokes a token; every listener refuses it from its next request on.
    pub async fn revoke_admin_token(&self, id: &str) -> Result<()> {
        match self
            .meta
            .revoke_admin_token(id, crate::now_micros())
            .await?
        {
            true => Ok(()),
            false => Err(Error::InvalidArgument(format!(
                "no unrevoked admin token {id:?}"
            ))),
        }
    }

    /// What a presented bearer token may do (`None`: unknown or revoked). Looked up by its
    /// SHA-256, so the lookup's timing tells nothing about stored tokens.
    pub async fn admin_scope(&self, token: &str) -> Result<Option<TokenScope>> {
        let Some(row) = self.meta.admin_token(&token_digest(token)).await? else {
            return Ok(None);
        };
        Ok(match (row.revoked_at, row.scope.as_str()) {
            (Some(_), _) => None,
            (None, "admin") => Some(TokenScope::Admin),
            (None, "metrics") => Some(TokenScope::Metrics),
            (None, _) => None,
        })
    }
}

/// Figures of the whole store for `/metrics`, each a scan or an aggregate over all buckets.
#[derive(Debug, Clone, Default)]
pub struct StoreFigures {
    /// Blobs per tier.
    pub blobs: Vec<crate::meta::BlobStats>,
    /// Logical bytes (current and noncurrent versions) over the physical bytes they reference;
    /// `None` while nothing is stored.
    pub dedup_ratio: Option<f64>,
}

/// `Engine::store_figures`' last read, and when it was made.
pub(super) type StoreFiguresRead = (std::time::Instant, StoreFigures);

/// How long `Engine::store_figures` serves a read again.
const STORE_FIGURES_FOR: std::time::Duration = std::time::Duration::from_secs(60);

impl Engine {
    /// Blobs per tier and the dedup ratio, read at most once a minute: scrapes come more often
    /// than that, from every replica, and anonymous ones too.
    pub async fn store_figures(&self) -> Result<StoreFigures> {
        // Held across the read: concurrent scrapes wait for one read instead of each running it.
        let mut cached = self.store_figures.lock().await;
        if let Some((at, figures)) = &*cached
            && at.elapsed() < STORE_FIGURES_FOR
        {
            return Ok(figures.clone());
        }
        let blobs = self.meta.blob_stats().await?;
        let logical: i64 = (self.meta.usage().await?)
            .iter()
            .map(|r| r.bytes + r.noncurrent_bytes)
            .sum();
        let stored: i64 = (self.meta.physical().await?).iter().map(|r| r.bytes).sum();
        let figures = StoreFigures {
            blobs,
            dedup_ratio: (stored > 0).then(|| logical as f64 / stored as f64),
        };
        *cached = Some((std::time::Instant::now(), figures.clone()));
        Ok(figures)
    }
}
