//! The hashing pipeline of the write path (step 2).
//!
//! A body that ends within `SMALL` bytes is read whole, then written, hashed and fsynced in a
//! single hand-off to a blocking thread: for small objects the hand-offs cost more than the
//! hashing. Larger bodies stream: the async side batches chunks into ~256 KiB messages and two
//! blocking threads do the work, one writing the temp file and computing SHA-256 (the content
//! address), the other computing MD5 (the ETag). They run in parallel because MD5 alone is the PUT
//! bottleneck (~0.6 GB/s/core). Both threads receive the same (reference-counted) batches and
//! channels are bounded. The writer copies the batches into an aligned buffer of
//! `direct::BUF_LEN` bytes and writes it with `O_DIRECT`: a streamed body does not go through
//! the page cache. So a request holds about `(DEPTH + 2) × CHUNK + BUF_LEN` (batches in flight,
//! the one being filled, the aligned buffer) ≈ 1.5 MiB whatever its size: 32 concurrent 1 GiB
//! uploads fit in the 100 MiB budget.

use super::checksum::{ChecksumAlgo, Hasher};
use super::direct::DirectWriter;
use super::{BlobStore, CHUNK, Tier};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use tokio::sync::mpsc;

/// Messages in flight per hashing thread.
const DEPTH: usize = 2;

/// A streamed body's file has its writeback started every this many bytes (`start_writeback`).
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Bodies up to this size take the one-hand-off path.
const SMALL: usize = 256 << 10;

/// The most a caller may keep in memory instead of a file (`inline_max`).
pub const INLINE_LIMIT: usize = 64 << 10;

/// Why a request body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The signed `x-amz-content-sha256` did not match the bytes received.
    #[error("x-amz-content-sha256 does not match the body")]
    Sha256Mismatch,
    /// An aws-chunked chunk signature did not verify.
    #[error("chunk signature does not match")]
    SignatureMismatch,
    /// Malformed or truncated body framing.
    #[error("incomplete or malformed body: {0}")]
    Incomplete(String),
    /// The body is larger than allowed.
    #[error("body exceeds {0} bytes")]
    TooLarge(u64),
    /// Reading the body from the client failed.
    #[error("client body: {0}")]
    Client(String),
}

/// A fully written, fsynced temp file (or a body kept in memory) and its digests.
#[derive(Debug, Clone)]
pub struct Written {
    pub size: u64,
    pub sha256: [u8; 32],
    pub md5: [u8; 16],
    /// The requested extra checksums, raw (CRCs big-endian), in request order.
    pub checksums: Vec<(ChecksumAlgo, Vec<u8>)>,
    /// A body of at most the caller's `inline_max` bytes: kept here, no temp file was made.
    pub inline: Option<Bytes>,
}

impl Written {
    pub fn checksum(&self, algo: ChecksumAlgo) -> Option<&[u8]> {
        self.checksums
            .iter()
            .find(|(a, _)| *a == algo)
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("blob store i/o: {0}")]
    Io(#[from] io::Error),
}

impl BlobStore {
    /// Streams `body` into `<tier>/tmp/<id>`, hashing it off the reactor (SHA-256, MD5 and the
    /// `extra` checksums), and fsyncs the file. On any error the temp file is removed. A body
    /// that ends within `inline_max` bytes is hashed on the spot (a few microseconds) and
    /// returned in `Written::inline` instead: no file at all.
    pub async fn write_temp<S>(
        &self,
        tier: Tier,
        id: &str,
        body: S,
        max_size: u64,
        inline_max: usize,
        extra: &[ChecksumAlgo],
    ) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, BodyError>> + Send,
    {
        let path = self.temp_path(tier, id);
        let result = pump(&path, body, max_size, inline_max, extra).await;
        if result.is_err() {
            let _ = self.remove_temp(tier, id).await;
        }
        result
    }
}

type Batch = Vec<Bytes>;

async fn pump<S>(
    path: &std::path::Path,
    body: S,
    max_size: u64,
    inline_max: usize,
    extra: &[ChecksumAlgo],
) -> Result<Written, WriteError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send,
{
    debug_assert!(inline_max <= INLINE_LIMIT);
    let mut body = std::pin::pin!(body);
    // The extra checksums ride with SHA-256: CRCs cost nothing next to it, and MD5's thread is
    // the bottleneck already.
    let digests = Digests::new(extra);
    let mut head: Batch = Vec::new();
    let mut size: u64 = 0;
    while size < SMALL as u64 {
        let Some(chunk) = body.next().await else {
            if size <= inline_max as u64 {
                return Ok(keep_inline(head, digests));
            }
            let path = path.to_owned();
            return tokio::task::spawn_blocking(move || write_small(&path, head, digests))
                .await
                .map_err(io::Error::other)?;
        };
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > max_size {
            return Err(BodyError::TooLarge(max_size).into());
        }
        head.push(chunk);
    }

    let (file_tx, file_rx) = mpsc::channel::<Batch>(DEPTH);
    let (md5_tx, md5_rx) = mpsc::channel::<Batch>(DEPTH);
    let file_path = path.to_owned();
    let writer =
        tokio::task::spawn_blocking(move || write_and_sha256(&file_path, file_rx, digests));
    let md5er = tokio::task::spawn_blocking(move || md5_all(md5_rx));
    let seeded = async {
        let closed = || io::Error::other("hashing thread stopped");
        md5_tx.send(head.clone()).await.map_err(|_| closed())?;
        file_tx.send(head).await.map_err(|_| closed())?;
        Ok::<(), WriteError>(())
    };
    let fed = match seeded.await {
        Ok(()) => feed(body, size, max_size, &file_tx, &md5_tx).await,
        Err(e) => Err(e),
    };
    // Closing the channels ends both threads; join them even on error so no thread outlives
    // the request and the file is closed before the caller removes it.
    drop(file_tx);
    drop(md5_tx);
    let written = writer.await.map_err(io::Error::other)?;
    let md5 = md5er.await.map_err(io::Error::other)?;
    // A failed writer (e.g. ENOSPC) explains a failed feed, so report it first.
    let (sha256, checksums) = written?;
    let size = fed?;
    Ok(Written {
        size,
        sha256,
        md5,
        checksums,
        inline: None,
    })
}

/// Batches the rest of the body (after `size` bytes already sent) into ~CHUNK messages for both
/// threads. Returns the byte count.
async fn feed<S>(
    mut body: std::pin::Pin<&mut S>,
    mut size: u64,
    max_size: u64,
    file_tx: &mpsc::Sender<Batch>,
    md5_tx: &mpsc::Sender<Batch>,
) -> Result<u64, WriteError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send,
{
    let mut batch: Batch = Vec::new();
    let mut batch_len = 0usize;
    loop {
        let next = body.next().await;
        let done = next.is_none();
        if let Some(chunk) = next {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > max_size {
                return Err(BodyError::TooLarge(max_size).into());
            }
            batch_len += chunk.len();
            batch.push(chunk);
        }
        if (done && !batch.is_empty()) || batch_len >= CHUNK {
            let out = std::mem::take(&mut batch);
            batch_len = 0;
            let closed = || io::Error::other("hashing thread stopped");
            md5_tx.send(out.clone()).await.map_err(|_| closed())?;
            file_tx.send(out).await.map_err(|_| closed())?;
        }
        if done {
            return Ok(size);
        }
    }
}

type Checksums = Vec<(ChecksumAlgo, Vec<u8>)>;

/// SHA-256 (the content address) and the requested extra checksums.
struct Digests {
    sha: Sha256,
    extra: Vec<(ChecksumAlgo, Hasher)>,
}

impl Digests {
    fn new(extra: &[ChecksumAlgo]) -> Digests {
        Digests {
            sha: Sha256::new(),
            extra: extra.iter().map(|a| (*a, Hasher::new(*a))).collect(),
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.sha.update(chunk);
        for (algo, h) in self.extra.iter_mut() {
            // SHA-256 is the content address, computed above already.
            if *algo != ChecksumAlgo::Sha256 {
                h.update(chunk);
            }
        }
    }

    fn finish(self) -> ([u8; 32], Checksums) {
        let sha256: [u8; 32] = self.sha.finalize().into();
        let sums = self
            .extra
            .into_iter()
            .map(|(a, h)| (a, h.finish(Some(&sha256))))
            .collect();
        (sha256, sums)
    }
}

/// Writes a batch of chunks to the temp file with as few `writev` calls as the kernel allows
/// (no copy into a buffer of ours), and honours the test-only ENOSPC fault.
fn write_batch(out: &mut impl Write, batch: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = batch.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    fault_enospc()
}

/// The test-only ENOSPC fault, checked after each batch is written.
fn fault_enospc() -> io::Result<()> {
    if crate::fault::armed(crate::fault::Fault::Enospc) {
        return Err(io::Error::from(io::ErrorKind::StorageFull));
    }
    Ok(())
}

/// A small body hashed where it is (bounded by `INLINE_LIMIT`, so tens of microseconds of
/// CPU at most: less than a hand-off to a blocking thread).
fn keep_inline(chunks: Batch, mut digests: Digests) -> Written {
    let mut md5 = Md5::new();
    for chunk in &chunks {
        digests.update(chunk);
        md5.update(chunk);
    }
    let bytes = match <[Bytes; 1]>::try_from(chunks) {
        Ok([one]) => one,
        Err(chunks) => Bytes::from(chunks.concat()),
    };
    let (sha256, checksums) = digests.finish();
    Written {
        size: bytes.len() as u64,
        sha256,
        md5: md5.finalize().into(),
        checksums,
        inline: Some(bytes),
    }
}

/// The whole small-body path on one blocking thread: create, write, hash, fsync.
fn write_small(
    path: &std::path::Path,
    chunks: Batch,
    mut digests: Digests,
) -> Result<Written, WriteError> {
    let mut file = std::fs::File::create_new(path)?;
    let mut md5 = Md5::new();
    let mut size = 0u64;
    for chunk in &chunks {
        digests.update(chunk);
        md5.update(chunk);
        size += chunk.len() as u64;
    }
    write_batch(&mut file, &chunks)?;
    // Durability of the bytes before anything refers to them (write path, step 2).
    file.sync_data()?;
    let (sha256, checksums) = digests.finish();
    Ok(Written {
        size,
        sha256,
        md5: md5.finalize().into(),
        checksums,
        inline: None,
    })
}

fn write_and_sha256(
    path: &std::path::Path,
    mut rx: mpsc::Receiver<Batch>,
    mut digests: Digests,
) -> io::Result<([u8; 32], Checksums)> {
    let mut out = DirectWriter::create(path)?;
    let (mut total, mut flushed) = (0u64, 0u64);
    while let Some(batch) = rx.blocking_recv() {
        for chunk in &batch {
            digests.update(chunk);
            total += chunk.len() as u64;
        }
        if out.is_direct() {
            for chunk in &batch {
                out.write(chunk)?;
            }
            fault_enospc()?;
        } else {
            write_batch(out.file_mut(), &batch)?;
            if total - flushed >= WRITEBACK_EVERY {
                start_writeback(out.file(), flushed, total - flushed);
                flushed = total;
            }
        }
    }
    // Durability of the bytes before anything refers to them (write path, step 2).
    out.finish()?.sync_data()?;
    Ok(digests.finish())
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk, without waiting
/// (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`; nothing elsewhere). Without it the page cache
/// keeps a streamed body dirty until the closing fsync (writeback starts only at 10% of RAM
/// dirty), so the disk idled while the body arrived and then the fsync wrote it all: a 1 GiB
/// PUT spent ~2 of its 3.5 s in that fsync with both cores idle. Advisory: errors are left to
/// the fsync, which still makes the bytes durable.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor is borrowed from a live `File` for the duration of the call,
        // and sync_file_range neither retains it nor touches memory of ours.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

fn md5_all(mut rx: mpsc::Receiver<Batch>) -> [u8; 16] {
    let mut md5 = Md5::new();
    while let Some(batch) = rx.blocking_recv() {
        for chunk in &batch {
            md5.update(chunk);
        }
    }
    md5.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `max` bytes per call, as a kernel may.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_resume_where_they_stopped() {
        let batch: Batch = [b"abc".as_slice(), b"", b"defghij", b"k"]
            .iter()
            .map(|c| Bytes::copy_from_slice(c))
            .collect();
        for max in 1..12 {
            let mut t = Trickle {
                out: Vec::new(),
                max,
            };
            write_batch(&mut t, &batch).expect("write");
            assert_eq!(t.out, b"abcdefghijk", "max {max}");
        }
    }
}
