//! Crash points for the crash-safety tests. Production never arms them: a point is armed only by
//! `JUST_STORAGE_FAULT=<name>` (read by `config`, documented as test-only), and an unarmed
//! point costs one relaxed load.
//!
//! A crash is `std::process::abort()`: no destructors, no flushes, no graceful shutdown — the
//! same as `kill -9` from the database's and the file system's point of view.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Write path: temp file written and fsynced, before the commit transaction.
    AfterTempWrite,
    /// Write path: blob renamed into place inside the commit transaction, before it commits.
    AfterPlace,
    /// CompleteMultipartUpload: parts validated inside the transaction, before it commits.
    MidComplete,
    /// Collector: blob file unlinked inside its transaction, before the row delete commits.
    AfterUnlink,
    /// Not a crash: every blob write fails with ENOSPC after its first chunk.
    Enospc,
}

impl Fault {
    pub fn parse(s: &str) -> Option<Fault> {
        Some(match s {
            "after-temp-write" => Fault::AfterTempWrite,
            "after-place" => Fault::AfterPlace,
            "mid-complete" => Fault::MidComplete,
            "after-unlink" => Fault::AfterUnlink,
            "enospc" => Fault::Enospc,
            _ => return None,
        })
    }
}

static ARMED: OnceLock<Fault> = OnceLock::new();

/// Arms `f` for the life of the process (the first call wins).
pub fn arm(f: Fault) {
    let _ = ARMED.set(f);
    tracing::warn!(fault = ?f, "TEST FAULT ARMED: this process will fail on purpose");
}

pub fn armed(f: Fault) -> bool {
    ARMED.get() == Some(&f)
}

/// Crashes the process here if `f` is armed.
pub fn crash_point(f: Fault) {
    if armed(f) {
        eprintln!("fault {f:?}: aborting the process");
        std::process::abort();
    }
}
