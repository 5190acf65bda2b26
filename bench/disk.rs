//! The disk's own read speed, measured in the same run as the servers: JustStorage reads large
//! blobs with `O_DIRECT` (512 KiB reads, eight in flight for a lone stream), so a GET of an object just written runs
//! at the disk's speed of that moment, which varies on this VM. Each 1 GiB GET sample is
//! followed by this probe, read the same way, so the table can show GET ÷ disk.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

const ALIGN: usize = 4096;
/// The server's direct read size and a lone stream's depth (`blobs/direct.rs`).
const READ: usize = 512 << 10;
const DEPTH: u64 = 8;

/// A zeroed slice of `len` bytes aligned to `ALIGN`, inside `v`.
fn aligned(v: &mut Vec<u8>, len: usize) -> &mut [u8] {
    *v = vec![0u8; len + ALIGN];
    let off = v.as_ptr().align_offset(ALIGN);
    &mut v[off..off + len]
}

fn open_direct(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .create(write)
        .truncate(write)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("open {} with O_DIRECT", path.display()))
}

/// A file on the run's temp directory, read by every probe; removed on drop.
pub struct Probe {
    path: PathBuf,
    len: u64,
}

impl Probe {
    /// Writes a probe file about as large as the GET (`len`, rounded up to whole reads).
    pub fn create(dir: &Path, run_id: &str, len: u64) -> Result<Probe> {
        let path = dir.join(format!("js-bench-{run_id}-disk-probe"));
        // Built first, so a failed write still removes the file.
        let mut probe = Probe { len: 0, path };
        probe.len = write(&probe.path, len)?;
        Ok(probe)
    }

    /// Reads the whole file the way the server reads a large blob; MB/s.
    pub fn read_mbps(&self) -> Result<f64> {
        read_mbps(&self.path, self.len)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `len` bytes (rounded up to whole reads) of pseudo-random data to `path`, bypassing
/// the page cache, so later probes read the disk. Returns the size written.
fn write(path: &Path, len: u64) -> Result<u64> {
    let mut f = open_direct(path, true)?;
    let mut store = Vec::new();
    let buf = aligned(&mut store, READ);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let chunks = len.div_ceil(READ as u64).max(DEPTH);
    for _ in 0..chunks {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(buf).context("write disk probe")?;
    }
    f.sync_all().context("fsync disk probe")?;
    Ok(chunks * READ as u64)
}

fn read_mbps(path: &Path, len: u64) -> Result<f64> {
    let f = open_direct(path, false)?;
    let chunks = len / READ as u64;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..DEPTH)
            .map(|lane| {
                let f = &f;
                s.spawn(move || -> std::io::Result<()> {
                    let mut store = Vec::new();
                    let buf = aligned(&mut store, READ);
                    let mut i = lane;
                    while i < chunks {
                        f.read_exact_at(buf, i * READ as u64)?;
                        i += DEPTH;
                    }
                    Ok(())
                })
            })
            .collect();
        for r in readers {
            r.join()
                .map_err(|_| anyhow::anyhow!("disk probe reader panicked"))?
                .context("read disk probe")?;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(len as f64 / 1e6 / t0.elapsed().as_secs_f64().max(1e-9))
}
