//! fsck: compares blob files and blob rows both ways and checks every reference count against
//! the references that exist. `--repair` applies only safe fixes.

use crate::blobs::Tier;
use crate::engine::{Engine, Error, Result};
use crate::meta::{BlobId, BlobRepair, RefMismatch, UsageCheck};
use std::time::{Duration, SystemTime};

/// Rows read per query while walking the blobs table.
const PAGE: usize = 1000;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FsckReport {
    pub blob_rows: u64,
    pub blob_files: u64,
    /// `tier/hash` of rows whose file is missing (and whose bytes are not inline).
    pub rows_without_file: Vec<String>,
    /// `tier/hash` of files no row knows.
    pub files_without_row: Vec<String>,
    /// Counts that differ from the references, and references to blobs without a row.
    pub refcount_mismatches: Vec<RefMismatch>,
    /// Usage figures (kept with every commit) that differ from a recount.
    pub usage: UsageCheck,
    pub repaired: u64,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.rows_without_file.is_empty()
            && self.files_without_row.is_empty()
            && self.refcount_mismatches.is_empty()
            && self.usage.is_clean()
    }
}

impl std::fmt::Display for FsckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "blob rows: {}, blob files: {}",
            self.blob_rows, self.blob_files
        )?;
        let lists = [
            ("rows whose file is missing", &self.rows_without_file),
            ("files no row knows", &self.files_without_row),
        ];
        for (what, list) in lists {
            writeln!(f, "{what}: {}", list.len())?;
            for blob in list {
                writeln!(f, "  {blob}")?;
            }
        }
        let n = self.refcount_mismatches.len();
        writeln!(f, "reference counts that differ from the references: {n}")?;
        for m in &self.refcount_mismatches {
            match m.ref_count {
                Some(c) => writeln!(
                    f,
                    "  {}/{}: recorded {c}, referenced {}",
                    m.tier, m.hash, m.actual
                )?,
                None => writeln!(
                    f,
                    "  {}/{}: no row, referenced {}",
                    m.tier, m.hash, m.actual
                )?,
            }
        }
        let u = &self.usage;
        writeln!(
            f,
            "usage counters that differ from a recount: {}",
            u.usage.len()
        )?;
        for (kept, real) in &u.usage {
            writeln!(
                f,
                "  {}/{} ({}): kept {} objects, {} bytes; recounted {} objects, {} bytes",
                kept.tenant,
                kept.bucket,
                kept.tier,
                kept.objects,
                kept.bytes,
                real.objects,
                real.bytes
            )?;
        }
        writeln!(
            f,
            "attributed bytes that differ from a recount: {}",
            u.physical.len()
        )?;
        for (kept, real) in &u.physical {
            writeln!(
                f,
                "  {} ({}): kept {}, recounted {}",
                kept.tenant, kept.tier, kept.bytes, real.bytes
            )?;
        }
        writeln!(f, "repaired: {}", self.repaired)?;
        let verdict = if self.is_clean() {
            "clean"
        } else {
            "PROBLEMS FOUND"
        };
        write!(f, "fsck: {verdict}")
    }
}

/// Runs the checks; with `repair`, fixes what is safe:
/// - a count that differs from the references is set to the references;
/// - a row without a file is dropped when unreferenced, else marked corrupted (GET refuses it);
/// - a file without a row is removed once older than `file_grace` (a younger one may belong to a
///   commit in flight).
///
/// References to a blob with no row cannot be repaired: they are reported.
pub async fn fsck(engine: &Engine, repair: bool, file_grace: Duration) -> Result<FsckReport> {
    let mut r = FsckReport::default();
    check_rows(engine, repair, &mut r).await?;
    check_files(engine, repair, file_grace, &mut r).await?;
    for m in engine.meta().refcount_mismatches().await? {
        if repair
            && m.ref_count.is_some()
            && let Some(tier) = Tier::parse(&m.tier)
        {
            let blob = BlobId {
                tier,
                hash: m.hash.clone(),
            };
            engine
                .meta()
                .repair_blob(&blob, BlobRepair::SetRefCount(m.actual))
                .await?;
            r.repaired += 1;
        }
        r.refcount_mismatches.push(m);
    }
    r.usage = engine.meta().check_usage(repair).await?;
    if repair {
        r.repaired += (r.usage.usage.len() + r.usage.physical.len()) as u64;
    }
    Ok(r)
}

async fn check_rows(engine: &Engine, repair: bool, r: &mut FsckReport) -> Result<()> {
    let mut after = String::new();
    loop {
        let rows = engine.meta().blob_rows(&after, PAGE).await?;
        for row in &rows {
            r.blob_rows += 1;
            let b = &row.blob;
            if row.inline || engine.blobs().blob_file_exists(b.tier, &b.hash) {
                continue;
            }
            r.rows_without_file
                .push(format!("{}/{}", b.tier.as_str(), b.hash));
            if repair {
                let fix = if row.ref_count == 0 {
                    BlobRepair::Delete
                } else {
                    BlobRepair::MarkCorrupted
                };
                engine.meta().repair_blob(b, fix).await?;
                r.repaired += 1;
            }
        }
        match rows.last() {
            Some(last) if rows.len() == PAGE => after.clone_from(&last.blob.hash),
            _ => return Ok(()),
        }
    }
}

async fn check_files(
    engine: &Engine,
    repair: bool,
    file_grace: Duration,
    r: &mut FsckReport,
) -> Result<()> {
    let old = SystemTime::now()
        .checked_sub(file_grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for tier in [Tier::Hot, Tier::Cold] {
        let store = engine.blobs().clone();
        let files = tokio::task::spawn_blocking(move || store.blob_files(tier))
            .await
            .map_err(|e| Error::Storage(std::io::Error::other(e)))??;
        for (hash, modified) in files {
            r.blob_files += 1;
            let blob = BlobId { tier, hash };
            if engine.meta().blob_exists(&blob).await? {
                continue;
            }
            r.files_without_row
                .push(format!("{}/{}", tier.as_str(), blob.hash));
            if repair && modified < old {
                engine.blobs().unlink(tier, &blob.hash).await?;
                r.repaired += 1;
            }
        }
    }
    Ok(())
}
