//! Background maintenance (orphan sweep, abandoned uploads, collector). Each worker is a loop inside `serve` and a one-shot CLI entry; none
//! keeps state between runs (everything it needs is in the database and the blob tree).

mod fsck;
mod lifecycle;
mod scrub;

pub use fsck::{FsckReport, fsck};
pub use lifecycle::{LifecycleReport, lifecycle_loop, lifecycle_once};
pub use scrub::{ScrubReport, scrub_once};

use crate::blobs::Tier;
use crate::config::GcConfig;
use crate::engine::{Engine, Error, Result};
use crate::meta::BlobId;
use futures::FutureExt;
use std::time::{Duration, SystemTime};

/// Rows or blobs handled per batch, so one run never holds the database for long.
const BATCH: usize = 256;
/// Batches per run: a bound on one run's work; the next run continues.
const MAX_BATCHES: usize = 64;

/// What one collector run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub orphan_temp_files: u64,
    pub purged_rows: u64,
    pub blobs_removed: u64,
    pub uploads_aborted: u64,
}

impl std::fmt::Display for GcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gc: {} orphan temp files removed, {} deleted versions purged, {} blobs removed, \
             {} stale uploads aborted",
            self.orphan_temp_files, self.purged_rows, self.blobs_removed, self.uploads_aborted
        )
    }
}

fn micros_ago(d: Duration) -> i64 {
    crate::now_micros() - i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// One pass of the orphan sweep and the collector.
pub async fn gc_once(engine: &Engine, cfg: &GcConfig) -> Result<GcReport> {
    let mut report = GcReport::default();
    sweep_orphans(engine, cfg, &mut report).await?;
    // Aborted uploads release their parts' blobs, which this same run may then collect.
    let stale = engine
        .meta()
        .stale_uploads(micros_ago(cfg.upload_max_age), BATCH)
        .await?;
    for (bucket_id, upload_id) in stale {
        if engine.meta().abort_upload(&bucket_id, &upload_id).await? {
            report.uploads_aborted += 1;
        }
    }
    let cutoff = micros_ago(cfg.grace);
    for _ in 0..MAX_BATCHES {
        let n = engine.meta().purge_deleted(cutoff, BATCH).await?;
        report.purged_rows += n;
        if n < BATCH as u64 {
            break;
        }
    }
    for _ in 0..MAX_BATCHES {
        let blobs = engine.meta().collectable_blobs(cutoff, BATCH).await?;
        for blob in &blobs {
            if collect(engine, blob, cutoff).await? {
                report.blobs_removed += 1;
            }
        }
        if blobs.len() < BATCH {
            break;
        }
    }
    Ok(report)
}

async fn collect(engine: &Engine, blob: &BlobId, cutoff: i64) -> Result<bool> {
    let store = engine.blobs().clone();
    let (tier, hash) = (blob.tier, blob.hash.clone());
    let unlink = move || {
        let (store, hash) = (store.clone(), hash.clone());
        async move {
            store.unlink(tier, &hash).await?;
            crate::fault::crash_point(crate::fault::Fault::AfterUnlink);
            Ok(())
        }
        .boxed()
    };
    Ok(engine.meta().collect_blob(blob, cutoff, &unlink).await?)
}

/// Blob files that no row knows and that are older than `orphan_age` (a crash between placing a
/// blob and committing its row) get a row with no references; the collector then removes them
/// after the grace period, under the GC invariant. Walks every blob file: run at startup and
/// from `just-storage gc`, not on every collector pass.
pub async fn adopt_orphan_files(engine: &Engine, orphan_age: Duration) -> Result<u64> {
    let older = SystemTime::now()
        .checked_sub(orphan_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut adopted = 0;
    for tier in [Tier::Hot, Tier::Cold] {
        let store = engine.blobs().clone();
        let files = tokio::task::spawn_blocking(move || store.blob_files(tier))
            .await
            .map_err(|e| Error::Storage(std::io::Error::other(e)))??;
        for (hash, modified) in files {
            if modified >= older {
                continue;
            }
            let blob = BlobId { tier, hash };
            if engine.meta().blob_exists(&blob).await? {
                continue;
            }
            let size = std::fs::metadata(engine.blobs().blob_path(tier, &blob.hash))
                .map(|m| m.len())
                .unwrap_or(0);
            if engine.meta().adopt_blob(&blob, size).await? {
                tracing::warn!(tier = tier.as_str(), hash = %blob.hash, "adopted an orphan blob file");
                adopted += 1;
            }
        }
    }
    Ok(adopted)
}

/// Temp files not modified for the orphan age: uploads that crashed or whose cleanup failed
/// (a live upload writes to its file as the body arrives, so its mtime stays fresh).
async fn sweep_orphans(engine: &Engine, cfg: &GcConfig, report: &mut GcReport) -> Result<()> {
    let older = SystemTime::now()
        .checked_sub(cfg.orphan_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for tier in [Tier::Hot, Tier::Cold] {
        let blobs = engine.blobs().clone();
        let stale = tokio::task::spawn_blocking(move || blobs.stale_temp_files(tier, older, BATCH))
            .await
            .map_err(|e| Error::Storage(std::io::Error::other(e)))??;
        for id in stale {
            engine.blobs().remove_temp(tier, &id).await?;
            report.orphan_temp_files += 1;
        }
    }
    Ok(())
}

/// A pass's lease, held by this gateway. Gateways sharing a database each try to take it
/// before every pass; the holder renews it before and during its passes, and when it dies
/// another takes over once it lapses.
pub struct Lease<'a> {
    engine: &'a Engine,
    name: &'static str,
    ttl: Duration,
    renewed: std::time::Instant,
}

impl<'a> Lease<'a> {
    /// The lease for a pass run every `interval`, if this gateway holds (or now takes) it. A
    /// database error skips the pass.
    pub async fn take(engine: &'a Engine, name: &'static str, interval: Duration) -> Option<Self> {
        let mut lease = Lease {
            engine,
            name,
            ttl: lease_ttl(interval),
            renewed: std::time::Instant::now(),
        };
        lease.renew().await.then_some(lease)
    }

    /// Whether the pass may go on: renews the lease once a quarter of it has gone by. False
    /// when another gateway has taken it (this one stalled past its end): the pass stops.
    pub async fn keep(&mut self) -> bool {
        if self.renewed.elapsed() < self.ttl / 4 {
            return true;
        }
        self.renew().await
    }

    async fn renew(&mut self) -> bool {
        let now = crate::now_micros() / 1_000_000;
        let until = now.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX));
        let (meta, me) = (self.engine.meta(), self.engine.instance());
        match meta.take_lease(self.name, me, now, until).await {
            Ok(held) => {
                self.renewed = std::time::Instant::now();
                held
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = self.name, "lease check failed; skipping");
                false
            }
        }
    }
}

/// Gives up the `name` lease if this gateway holds it (on a clean stop: another gateway takes
/// over at its next pass instead of waiting for the lease to lapse).
pub async fn release_lease(engine: &Engine, name: &str) {
    if let Err(e) = engine.meta().release_lease(name, engine.instance()).await {
        tracing::warn!(error = %e, lease = name, "could not release a lease; it will lapse");
    }
}

/// A lease outlives two missed passes and a minute, so a slow pass keeps it.
fn lease_ttl(interval: Duration) -> Duration {
    interval.saturating_mul(2) + Duration::from_secs(60)
}

/// The scrubber loop inside `serve`: one bounded pass every `interval` until `stop` fires.
pub async fn scrub_loop(
    engine: Engine,
    interval: Duration,
    mb_per_sec: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return release_lease(&engine, "scrub").await,
        }
        // Every gateway sees the same blob files: one of them re-reads them.
        let Some(mut lease) = Lease::take(&engine, "scrub", interval).await else {
            continue;
        };
        let result = scrub::scrub_pass(&engine, mb_per_sec, 10_000, Some(&mut lease)).await;
        crate::metrics::worker_run("scrub", result.is_ok());
        if let Ok(r) = &result {
            crate::metrics::SCRUB_BLOBS_CHECKED.inc_by(r.checked);
            crate::metrics::SCRUB_BYTES.inc_by(r.bytes);
            crate::metrics::SCRUB_CORRUPTED.inc_by(r.corrupted);
        }
        match result {
            Ok(r) if r.corrupted > 0 => tracing::error!(?r, "scrub found corrupted blobs"),
            Ok(r) => tracing::debug!(?r, "scrub pass"),
            Err(e) => tracing::warn!(error = %e, "scrub pass failed; will retry"),
        }
    }
}

/// The collector loop inside `serve`: runs every `interval` until `stop` fires.
pub async fn gc_loop(engine: Engine, cfg: GcConfig, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = stop.changed() => return,
        }
        let result = gc_once(&engine, &cfg).await;
        crate::metrics::worker_run("gc", result.is_ok());
        match result {
            Ok(r) if r != GcReport::default() => {
                crate::metrics::GC_BLOBS_REMOVED.inc_by(r.blobs_removed);
                crate::metrics::GC_ROWS_PURGED.inc_by(r.purged_rows);
                crate::metrics::ORPHANS_REMOVED.inc_by(r.orphan_temp_files);
                crate::metrics::UPLOADS_ABORTED.inc_by(r.uploads_aborted);
                tracing::info!(?r, "gc run");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "gc run failed; will retry"),
        }
    }
}
