//! The scrubber: re-hashes blob files (and inline blobs' bytes) at a bounded rate, records `verified_at`, and marks blobs
//! whose bytes no longer match their address `corrupted` (GET then refuses them; HEAD answers).

use crate::engine::{Engine, Error, Result};

/// What one scrub pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScrubReport {
    pub checked: u64,
    pub bytes: u64,
    pub corrupted: u64,
}

impl std::fmt::Display for ScrubReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scrub: {} blobs checked ({} bytes), {} corrupted",
            self.checked, self.bytes, self.corrupted
        )
    }
}

/// Verifies up to `max_blobs` blobs, least recently verified first, reading at most
/// `mb_per_sec` MB/s (0: unlimited).
pub async fn scrub_once(engine: &Engine, mb_per_sec: u64, max_blobs: usize) -> Result<ScrubReport> {
    scrub_pass(engine, mb_per_sec, max_blobs, None).await
}

/// `scrub_once`, under `lease` when given: renewed between blobs, and the pass stops (the
/// rest waits for the next) if another gateway has taken it.
pub(super) async fn scrub_pass(
    engine: &Engine,
    mb_per_sec: u64,
    max_blobs: usize,
    mut lease: Option<&mut super::Lease<'_>>,
) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    let todo = engine.meta().blobs_to_verify(max_blobs).await?;
    for row in todo {
        if let Some(l) = lease.as_deref_mut()
            && !l.keep().await
        {
            break;
        }
        let (blob, size) = (row.blob, row.size);
        let got = if row.inline {
            inline_sha256(engine, &blob).await?
        } else {
            let store = engine.blobs().clone();
            let (tier, hash) = (blob.tier, blob.hash.clone());
            let rate = mb_per_sec.saturating_mul(1_000_000);
            tokio::task::spawn_blocking(move || store.hash_file(tier, &hash, rate))
                .await
                .map_err(|e| Error::Storage(std::io::Error::other(e)))?
        };
        let intact = match got {
            Ok(sha) => hex::encode(sha) == blob.hash,
            // The row may have been collected between listing and reading: not corruption.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !engine.meta().blob_exists(&blob).await? {
                    continue;
                }
                false
            }
            Err(e) => return Err(Error::Storage(e)),
        };
        if !intact {
            tracing::error!(tier = blob.tier.as_str(), hash = %blob.hash, "scrub: blob does not match its address; marked corrupted");
            report.corrupted += 1;
        }
        engine.meta().mark_verified(&blob, intact).await?;
        report.checked += 1;
        report.bytes += size;
    }
    Ok(report)
}

/// SHA-256 of an inline blob's bytes (NotFound: the row is gone). The bytes are bounded by
/// `blobs::INLINE_LIMIT`, so this hashes in place.
async fn inline_sha256(
    engine: &Engine,
    blob: &crate::meta::BlobId,
) -> Result<std::io::Result<[u8; 32]>> {
    use sha2::Digest;
    Ok(match engine.meta().blob_data(blob).await? {
        Some(data) => Ok(sha2::Sha256::digest(&data).into()),
        None => Err(std::io::ErrorKind::NotFound.into()),
    })
}
