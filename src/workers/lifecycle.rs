//! The lifecycle worker: applies each bucket's lifecycle rules through the engine's ordinary
//! delete and abort paths (so versioning, Object Lock and reference counting hold as for any
//! client's request). One pass reads every version of a bucket with rules, a page at a time,
//! in key order and newest first, holding one key's state at a time.

use crate::engine::lifecycle::{Lifecycle, Subject, after_days};
use crate::engine::{
    Caller, Engine, Error, Result, UploadItem, UploadQuery, VersionItem, VersionQuery,
};
use crate::meta::{BucketRow, VersionEntry};
use std::collections::BTreeMap;

/// Versions (or uploads) read per page.
const PAGE: usize = 1000;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LifecycleReport {
    pub buckets: u64,
    /// Current versions expired (removed, or hidden behind a delete marker).
    pub expired: u64,
    /// Noncurrent versions removed for good.
    pub noncurrent_removed: u64,
    /// Delete markers removed because nothing was left behind them.
    pub markers_removed: u64,
    pub uploads_aborted: u64,
    /// Versions a rule selected that Object Lock keeps.
    pub locked: u64,
}

/// One pass over every bucket with a lifecycle configuration; `day_secs` is a day's length.
pub async fn lifecycle_once(engine: &Engine, day_secs: i64) -> Result<LifecycleReport> {
    lifecycle_pass(engine, day_secs, None).await
}

/// `lifecycle_once`, under `lease` when given: renewed between buckets, and the pass stops
/// (the rest waits for the next) if another gateway has taken it.
async fn lifecycle_pass(
    engine: &Engine,
    day_secs: i64,
    mut lease: Option<&mut super::Lease<'_>>,
) -> Result<LifecycleReport> {
    let mut report = LifecycleReport::default();
    let buckets = engine.meta().buckets_with_config("lifecycle").await?;
    for b in buckets {
        if let Some(l) = lease.as_deref_mut()
            && !l.keep().await
        {
            break;
        }
        let Some(lc) = engine.lifecycle(&b.id).await? else {
            continue;
        };
        report.buckets += 1;
        let mut pass = Pass {
            engine,
            owner: Caller {
                tenant_id: b.tenant_id.clone(),
                read_only: false,
            },
            bucket: &b,
            lc: &lc,
            now: crate::now_micros(),
            day_secs,
            report: &mut report,
        };
        // A bucket deleted meanwhile ends its own pass, not the others'.
        match pass.run().await {
            Ok(()) | Err(Error::NoSuchBucket) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

struct Pass<'a> {
    engine: &'a Engine,
    owner: Caller,
    bucket: &'a BucketRow,
    lc: &'a Lifecycle,
    now: i64,
    day_secs: i64,
    report: &'a mut LifecycleReport,
}

/// One key's versions as the pass has seen them so far.
#[derive(Default)]
struct KeyState {
    key: String,
    /// The current version is a delete marker (its id).
    marker: Option<String>,
    /// Created time of the next newer version: when the one being read became noncurrent.
    newer_created: Option<i64>,
    noncurrent_seen: usize,
    /// Noncurrent versions that stay after this pass.
    noncurrent_kept: usize,
}

impl Pass<'_> {
    async fn run(&mut self) -> Result<()> {
        let versions = self
            .lc
            .rules
            .iter()
            .any(|r| r.enabled && (r.expiration.is_some() || r.noncurrent.is_some()));
        if versions {
            self.versions().await?;
        }
        if self
            .lc
            .rules
            .iter()
            .any(|r| r.enabled && r.abort_upload_days.is_some())
        {
            self.uploads().await?;
        }
        Ok(())
    }

    async fn versions(&mut self) -> Result<()> {
        let mut q = VersionQuery {
            max_keys: PAGE,
            ..Default::default()
        };
        let mut state = KeyState::default();
        loop {
            let page = (self.engine)
                .list_versions(&self.owner, &self.bucket.name, &q)
                .await?;
            for item in &page.items {
                let VersionItem::Version(v) = item else {
                    continue;
                };
                if v.key != state.key {
                    self.finish_key(&state).await?;
                    state = KeyState {
                        key: v.key.clone(),
                        ..Default::default()
                    };
                }
                self.version(&mut state, v).await?;
                q.key_marker = Some(v.key.clone());
                q.after_seq = Some(v.version_seq);
            }
            if !page.truncated || page.items.is_empty() {
                break;
            }
        }
        self.finish_key(&state).await
    }

    /// The version's tags, read only when a rule filters by tags.
    async fn tags(&self, v: &VersionEntry) -> Result<BTreeMap<String, String>> {
        if !self.lc.rules.iter().any(|r| r.has_tags()) || v.delete_marker {
            return Ok(BTreeMap::new());
        }
        let row = (self.engine)
            .object_version(
                &self.owner,
                &self.bucket.name,
                &v.key,
                Some(&v.version_id),
                false,
            )
            .await;
        match row {
            Ok(r) => Ok(r.headers.tags),
            Err(Error::NoSuchVersion | Error::NoSuchKey) => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    async fn version(&mut self, state: &mut KeyState, v: &VersionEntry) -> Result<()> {
        let newer = state.newer_created.replace(v.created_at);
        let tags = self.tags(v).await?;
        let s = Subject {
            key: &v.key,
            size: v.size,
            tags: &tags,
        };
        let covering = || self.lc.rules.iter().filter(|r| r.covers(&s));
        if v.is_latest {
            if v.delete_marker {
                state.marker = Some(v.version_id.clone());
                return Ok(());
            }
            let due = covering()
                .filter_map(|r| r.current_expiry(v.created_at, self.day_secs))
                .any(|t| t <= self.now);
            if due && self.delete(&v.key, None).await? {
                self.report.expired += 1;
            }
            return Ok(());
        }
        // Noncurrent since the newer version was written.
        let since = newer.unwrap_or(v.created_at);
        let index = state.noncurrent_seen;
        state.noncurrent_seen += 1;
        let due = covering().any(|r| {
            index >= r.keeps_newer()
                && r.noncurrent_expiry(since, self.day_secs)
                    .is_some_and(|t| t <= self.now)
        });
        if due && self.delete(&v.key, Some(&v.version_id)).await? {
            self.report.noncurrent_removed += 1;
            return Ok(());
        }
        state.noncurrent_kept += 1;
        Ok(())
    }

    /// A current delete marker with nothing left behind it goes, if a rule says so.
    async fn finish_key(&mut self, state: &KeyState) -> Result<()> {
        let Some(marker) = &state.marker else {
            return Ok(());
        };
        if state.noncurrent_kept > 0 {
            return Ok(());
        }
        let none = BTreeMap::new();
        let s = Subject {
            key: &state.key,
            size: 0,
            tags: &none,
        };
        let due = self
            .lc
            .rules
            .iter()
            .any(|r| r.covers(&s) && r.expires_markers());
        if due && self.delete(&state.key, Some(marker)).await? {
            self.report.markers_removed += 1;
        }
        Ok(())
    }

    /// Deletes as a client would; a locked version stays (counted) and is no failure.
    async fn delete(&mut self, key: &str, version: Option<&str>) -> Result<bool> {
        let r = (self.engine)
            .delete(&self.owner, &self.bucket.name, key, version, false)
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(Error::AccessDenied) => {
                self.report.locked += 1;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn uploads(&mut self) -> Result<()> {
        let mut q = UploadQuery {
            max_uploads: PAGE,
            ..Default::default()
        };
        loop {
            let page = (self.engine)
                .list_uploads(&self.owner, &self.bucket.name, &q)
                .await?;
            for item in &page.items {
                let UploadItem::Upload(u) = item else {
                    continue;
                };
                q.key_marker.clone_from(&u.key);
                q.upload_id_marker.clone_from(&u.upload_id);
                let none = BTreeMap::new();
                let s = Subject {
                    key: &u.key,
                    size: 0,
                    tags: &none,
                };
                let due = self.lc.rules.iter().any(|r| {
                    r.covers(&s)
                        && r.abort_upload_days
                            .is_some_and(|d| after_days(u.initiated, d, self.day_secs) <= self.now)
                });
                if !due {
                    continue;
                }
                match (self.engine)
                    .abort_upload(&self.owner, &self.bucket.name, &u.key, &u.upload_id)
                    .await
                {
                    Ok(()) => self.report.uploads_aborted += 1,
                    Err(Error::NoSuchUpload) => {}
                    Err(e) => return Err(e),
                }
            }
            if !page.truncated || page.items.is_empty() {
                return Ok(());
            }
        }
    }
}

/// The lifecycle loop inside `serve`: one pass every `cfg.interval` until `stop` fires.
pub async fn lifecycle_loop(
    engine: Engine,
    cfg: crate::config::LifecycleConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = stop.changed() => return super::release_lease(&engine, "lifecycle").await,
        }
        // One gateway applies the rules: two at once would each expire the same versions.
        let Some(mut lease) = super::Lease::take(&engine, "lifecycle", cfg.interval).await else {
            continue;
        };
        let result = lifecycle_pass(&engine, cfg.day_secs, Some(&mut lease)).await;
        crate::metrics::worker_run("lifecycle", result.is_ok());
        match result {
            Ok(r) if r.buckets > 0 => {
                crate::metrics::LIFECYCLE_EXPIRED
                    .inc_by(r.expired + r.noncurrent_removed + r.markers_removed);
                crate::metrics::UPLOADS_ABORTED.inc_by(r.uploads_aborted);
                tracing::debug!(?r, "lifecycle pass");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "lifecycle pass failed; will retry"),
        }
    }
}
