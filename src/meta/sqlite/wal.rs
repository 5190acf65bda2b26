//! Group commit for SQLite.
//!
//! SQLite runs with `synchronous = NORMAL` in WAL mode: a commit appends its frames to the WAL
//! with `write()` but does not fsync. Before a mutation is acknowledged, its caller passes the
//! `barrier` below, which fdatasyncs the WAL file. Concurrent callers share one fsync: whoever
//! holds the lock syncs everything committed so far, and callers whose commit it covered return
//! without syncing again. With FULL every commit paid its own fsync on the single writer
//! connection, so small writes were serialised behind the disk.
//!
//! Why this is as durable as FULL: WAL recovery replays frames in order and stops at the first
//! frame whose checksum chain breaks, so what survives a crash is a prefix of the commits; a
//! fsync issued after a commit returned makes that commit and every earlier one durable.
//! Checkpoints keep their own ordering (NORMAL syncs the WAL before a checkpoint and the
//! database after it). The file is opened per sync because SQLite deletes and recreates the WAL
//! when the last connection closes; a missing WAL means it was checkpointed into the (synced)
//! database file.

use crate::meta::{MetaError, MetaResult};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) struct WalSync {
    /// `<database>-wal`; `None` for a database without a file (in memory).
    wal: Option<PathBuf>,
    /// Tickets handed out: one per caller, taken after its commit returned.
    issued: AtomicU64,
    /// The highest ticket known durable. The lock also serialises the fsyncs.
    synced: tokio::sync::Mutex<u64>,
}

impl WalSync {
    pub(super) fn new(wal: Option<PathBuf>) -> WalSync {
        WalSync {
            wal,
            issued: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
        }
    }

    /// Returns once every commit that returned before this call is on stable storage.
    pub(super) async fn barrier(&self) -> MetaResult<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            // A sync that started after our commit already finished.
            return Ok(());
        }
        // Every ticket issued by now belongs to a commit that has returned: this sync covers it.
        let upto = self.issued.load(Ordering::SeqCst);
        let wal = wal.clone();
        tokio::task::spawn_blocking(move || sync_file(&wal))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(MetaError::Sync)?;
        debug_assert!(upto >= ticket);
        *synced = upto;
        Ok(())
    }
}

fn sync_file(path: &std::path::Path) -> io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
