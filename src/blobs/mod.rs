//! Content-addressed blob files: `<tier>/sha256/ab/<hex>`, temp files in `<tier>/tmp/<id>`.
//!
//! This module knows nothing of keys, buckets or tenants. It streams bodies to temp files while
//! hashing them on blocking threads, places temp files at their content address (durably), and
//! opens blobs for reading. It never decides *whether* a blob may be unlinked: that is the
//! collector's job, under the blob row's lock (the GC invariant, see `meta`).

mod checksum;
mod direct;
mod write;

pub use checksum::{ChecksumAlgo, Hasher};
pub use direct::Room;
pub use write::{BodyError, INLINE_LIMIT, WriteError, Written};

use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};

/// Reads of at least this many bytes of one blob (a segment's share of the range) bypass the
/// page cache (`direct`), while `MAX_DIRECT_READERS` allows: a large sequential read runs at
/// the disk's speed either way, and caching it would evict small hot objects.
const DIRECT_READ_MIN: u64 = 8 << 20;

/// Bytes per buffered read.
const READ_CHUNK: usize = 256 << 10;

/// A blob file read forward, chunk by chunk, from an offset to a known end. It hands out the
/// reads (`next_read`) for the caller to run on blocking threads.
pub struct BlobReader {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
    left: u64,
    /// Present when the file was opened with `O_DIRECT`.
    direct: Option<direct::Slot>,
}

/// One chunk's read (blocking: run it on a blocking thread).
pub struct ChunkRead {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
    want: usize,
    direct: bool,
}

impl BlobReader {
    fn open(path: &Path, offset: u64, len: u64) -> io::Result<BlobReader> {
        use std::io::{Seek, SeekFrom};
        let slot = match len >= DIRECT_READ_MIN {
            true => direct::Slot::reader(),
            false => None,
        };
        let direct = match slot {
            Some(slot) => direct::open_read(path)?.map(|f| (f, slot)),
            None => None,
        };
        let (file, direct) = match direct {
            Some((file, slot)) => (file, Some(slot)),
            None => {
                let mut file = std::fs::File::open(path)?;
                if offset > 0 {
                    file.seek(SeekFrom::Start(offset))?;
                }
                (file, None)
            }
        };
        // A file cut short (a restore, a damaged disk) fails the read before a byte is sent,
        // not midway through the body.
        if file.metadata()?.len() < offset.saturating_add(len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob file {} is shorter than its segment", path.display()),
            ));
        }
        Ok(BlobReader {
            file: std::sync::Arc::new(file),
            pos: offset,
            left: len,
            direct,
        })
    }

    /// Whether another read may start while `unconsumed` of this reader's reads are not yet
    /// handed out, and what it holds until then. Buffered reads share the file's position and
    /// run one after another; direct reads are positioned, as many as `direct::room` allows
    /// (the disk keeps working while the socket drains).
    pub fn room(&self, unconsumed: usize) -> Option<Room> {
        match self.direct {
            Some(_) => direct::room(unconsumed),
            None => (unconsumed == 0).then_some(Room::Own),
        }
    }

    /// The next chunk's read; `None` once the range is handed out.
    pub fn next_read(&mut self) -> Option<ChunkRead> {
        if self.left == 0 {
            return None;
        }
        let chunk = match &self.direct {
            // The first chunk of an unaligned range ends on a block boundary, so the later
            // reads start aligned.
            Some(_) => direct::BUF_LEN - (self.pos % direct::ALIGN as u64) as usize,
            None => READ_CHUNK,
        };
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(chunk);
        let read = ChunkRead {
            file: self.file.clone(),
            pos: self.pos,
            want,
            direct: self.direct.is_some(),
        };
        self.pos += want as u64;
        self.left -= want as u64;
        Some(read)
    }
}

impl ChunkRead {
    /// The chunk's bytes. A short file is an error, never a short object.
    pub fn run(self) -> io::Result<Bytes> {
        use std::io::Read;
        if self.direct {
            return direct::read_at(&self.file, self.pos, self.want);
        }
        // Into the buffer's spare capacity: no zeroing, no intermediate copy.
        let mut buf = Vec::with_capacity(self.want);
        let n = (&*self.file).take(self.want as u64).read_to_end(&mut buf)?;
        if n < self.want {
            return Err(short_blob());
        }
        Ok(Bytes::from(buf))
    }
}

/// A blob file shorter than its row says: never serve a short object silently.
fn short_blob() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "blob file shorter than recorded size",
    )
}

/// A storage tier: a directory tree on its own volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Hot,
    Cold,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Cold => "cold",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "hot" => Some(Tier::Hot),
            "cold" => Some(Tier::Cold),
            _ => None,
        }
    }
}

/// Bytes per message handed from the reactor to the hashing threads: large enough to amortise
/// the hand-off, small enough to keep memory per request bounded (see `write`).
pub const CHUNK: usize = 256 << 10;

#[derive(Debug, Clone)]
pub struct BlobStore {
    hot: PathBuf,
    cold: PathBuf,
}

impl BlobStore {
    /// Opens (and creates) the tier directories.
    pub fn open(hot: &Path, cold: &Path) -> io::Result<BlobStore> {
        for root in [hot, cold] {
            std::fs::create_dir_all(root.join("tmp"))?;
            std::fs::create_dir_all(root.join("sha256"))?;
        }
        Ok(BlobStore {
            hot: hot.to_path_buf(),
            cold: cold.to_path_buf(),
        })
    }

    pub fn root(&self, tier: Tier) -> &Path {
        match tier {
            Tier::Hot => &self.hot,
            Tier::Cold => &self.cold,
        }
    }

    /// Temp file of an upload; `id` is the new version's id (a UUID). The file is the upload's
    /// only trace until the commit, so the orphan sweep ages it by mtime.
    pub fn temp_path(&self, tier: Tier, id: &str) -> PathBuf {
        self.root(tier).join("tmp").join(id)
    }

    pub fn blob_path(&self, tier: Tier, hash: &str) -> PathBuf {
        debug_assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        self.root(tier).join("sha256").join(&hash[..2]).join(hash)
    }

    /// Links a fully written, fsynced temp file at its content address (unless an identical
    /// blob is there already: dedup) and makes the name durable. Runs outside any transaction,
    /// so concurrent writers pay their directory fsyncs in parallel; the commit then `confirm`s
    /// the blob under its row lock. The temp file stays until `drop_temp` after the commit, so
    /// that `confirm` can place it again. Idempotent.
    pub async fn place(&self, tier: Tier, id: &str, hash: &str, size: u64) -> io::Result<Placed> {
        let temp = self.temp_path(tier, id);
        let fin = self.blob_path(tier, hash);
        tokio::task::spawn_blocking(move || place_blocking(&temp, &fin, size))
            .await
            .map_err(io::Error::other)?
    }

    /// Under the blob row lock (write path, step 3): the file `place` made durable is still
    /// the one at its address. Otherwise the collector unlinked it in between (an unreferenced
    /// blob with the same bytes), and it is placed again from the temp file.
    pub async fn confirm(
        &self,
        tier: Tier,
        id: &str,
        hash: &str,
        placed: Placed,
    ) -> io::Result<()> {
        // One stat of a hot directory entry: cheaper inline than a hand-off to a thread.
        if Placed::of(&self.blob_path(tier, hash)).is_ok_and(|p| p == placed) {
            return Ok(());
        }
        self.place(tier, id, hash, placed.size).await.map(|_| ())
    }

    /// Removes a temp file whose blob is placed and committed (or whose commit failed).
    /// Inline: unlinking one name of a file that stays linked is a directory update, no I/O
    /// wait, cheaper than a hand-off to a thread. A leftover is a stray the sweep removes.
    pub fn drop_temp(&self, tier: Tier, id: &str) {
        if let Err(e) = ignore_not_found(std::fs::remove_file(self.temp_path(tier, id))) {
            tracing::warn!(%id, error = %e, "could not remove a temp file; the sweep will");
        }
    }

    pub async fn remove_temp(&self, tier: Tier, id: &str) -> io::Result<()> {
        ignore_not_found(tokio::fs::remove_file(self.temp_path(tier, id)).await)
    }

    /// Unlinks a blob file. Only the collector calls this, holding the blob row lock.
    pub async fn unlink(&self, tier: Tier, hash: &str) -> io::Result<()> {
        ignore_not_found(tokio::fs::remove_file(self.blob_path(tier, hash)).await)
    }

    /// Blob `hash` opened for reading `len` bytes from `offset`, in one hand-off to a
    /// blocking thread. A read of `DIRECT_READ_MIN` bytes or more bypasses the page cache.
    pub async fn open_read(
        &self,
        tier: Tier,
        hash: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<BlobReader> {
        let path = self.blob_path(tier, hash);
        tokio::task::spawn_blocking(move || BlobReader::open(&path, offset, len))
            .await
            .map_err(io::Error::other)?
    }

    /// SHA-256 of a blob file, read at most `bytes_per_sec` (0: unlimited). Blocking: call it
    /// from a blocking thread.
    pub fn hash_file(&self, tier: Tier, hash: &str, bytes_per_sec: u64) -> io::Result<[u8; 32]> {
        use sha2::Digest;
        let path = self.blob_path(tier, hash);
        let len = std::fs::metadata(&path)?.len();
        // The reads' way: a large blob bypasses the page cache, so a scrub does not evict
        // the hot objects.
        let mut reader = BlobReader::open(&path, 0, len)?;
        let mut sha = sha2::Sha256::new();
        let start = std::time::Instant::now();
        let mut total = 0u64;
        while let Some(read) = reader.next_read() {
            let chunk = read.run()?;
            sha.update(&chunk);
            total += chunk.len() as u64;
            if bytes_per_sec > 0 {
                // Sleep off any lead over the allowed rate.
                let due = std::time::Duration::from_secs_f64(total as f64 / bytes_per_sec as f64);
                if let Some(ahead) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
        Ok(sha.finalize().into())
    }

    /// Every blob file of a tier: `(hash, modified)`. For fsck.
    pub fn blob_files(&self, tier: Tier) -> io::Result<Vec<(String, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for fan in std::fs::read_dir(self.root(tier).join("sha256"))? {
            let fan = fan?;
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(fan.path())? {
                let f = f?;
                if let Some(name) = f.file_name().to_str() {
                    out.push((name.to_owned(), f.metadata()?.modified()?));
                }
            }
        }
        Ok(out)
    }

    pub fn blob_file_exists(&self, tier: Tier, hash: &str) -> bool {
        self.blob_path(tier, hash).is_file()
    }

    /// Temp files whose modification time is older than `older_than` (for the orphan sweep).
    pub fn stale_temp_files(
        &self,
        tier: Tier,
        older_than: std::time::SystemTime,
        limit: usize,
    ) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root(tier).join("tmp"))? {
            if out.len() >= limit {
                break;
            }
            let entry = entry?;
            // Another upload (of this gateway or another) may commit or sweep it meanwhile.
            let modified = match entry.metadata() {
                Ok(m) => m.modified()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if modified < older_than
                && let Some(name) = entry.file_name().to_str()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }
}

fn ignore_not_found(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Identity of a placed blob file: which inode holds the name, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    dev: u64,
    ino: u64,
    size: u64,
}

impl Placed {
    fn of(path: &Path) -> io::Result<Placed> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Placed {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
        })
    }
}

fn place_blocking(temp: &Path, fin: &Path, size: u64) -> io::Result<Placed> {
    // No lock is held here: the collector may unlink an unreferenced blob with these bytes at
    // any moment, so try again a few times (`confirm` re-checks under the lock in any case).
    let mut tries = 0;
    let placed = loop {
        match std::fs::metadata(fin) {
            // Same content address and same size: the bytes are there already (dedup).
            Ok(m) if m.len() == size => {}
            // Wrong size at this address: a damaged blob; ours replaces it.
            Ok(_) => {
                ignore_not_found(std::fs::remove_file(fin))?;
                link(temp, fin)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => link(temp, fin)?,
            Err(e) => return Err(e),
        }
        match Placed::of(fin) {
            Ok(p) => break p,
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 3 => tries += 1,
            Err(e) => return Err(e),
        }
    };
    // Also when the file was there: a concurrent writer may have linked it without having
    // synced the directory yet. The name is durable only once the directory entry is.
    let dir = fin
        .parent()
        .ok_or_else(|| io::Error::other("blob path has no parent"))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(placed)
}

/// Hard-links `temp` at `fin` (keeping `temp`), creating the fan-out directory durably.
fn link(temp: &Path, fin: &Path) -> io::Result<()> {
    let dir = fin
        .parent()
        .ok_or_else(|| io::Error::other("blob path has no parent"))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        // A new fan-out directory must itself be durable in `sha256/`.
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    match std::fs::hard_link(temp, fin) {
        // A concurrent writer of the same bytes linked it first.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_blob(store: &BlobStore, id: &str, bytes: &[u8]) {
        std::fs::write(store.temp_path(Tier::Hot, id), bytes).expect("write temp");
    }

    const HASH: &str = "00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa";

    #[tokio::test]
    async fn place_links_and_confirm_restores_a_collected_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            BlobStore::open(&dir.path().join("hot"), &dir.path().join("cold")).expect("open");
        temp_blob(&store, "t1", b"hello");
        let placed = store.place(Tier::Hot, "t1", HASH, 5).await.expect("place");
        let fin = store.blob_path(Tier::Hot, HASH);
        assert_eq!(std::fs::read(&fin).expect("read blob"), b"hello");
        // The temp name stays until the commit is done.
        assert!(store.temp_path(Tier::Hot, "t1").exists());
        store
            .confirm(Tier::Hot, "t1", HASH, placed)
            .await
            .expect("confirm as placed");

        // The collector unlinked the blob between place and commit: confirm places it again.
        std::fs::remove_file(&fin).expect("unlink");
        store
            .confirm(Tier::Hot, "t1", HASH, placed)
            .await
            .expect("confirm re-places");
        assert_eq!(std::fs::read(&fin).expect("read blob"), b"hello");

        store.drop_temp(Tier::Hot, "t1");
        assert!(!store.temp_path(Tier::Hot, "t1").exists());
        assert_eq!(
            std::fs::read(&fin).expect("blob outlives its temp name"),
            b"hello"
        );
    }

    #[tokio::test]
    async fn place_dedups_and_replaces_a_damaged_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            BlobStore::open(&dir.path().join("hot"), &dir.path().join("cold")).expect("open");
        temp_blob(&store, "a", b"same!");
        let first = store.place(Tier::Hot, "a", HASH, 5).await.expect("place a");
        temp_blob(&store, "b", b"same!");
        let second = store.place(Tier::Hot, "b", HASH, 5).await.expect("place b");
        // Dedup: the second writer keeps the file that was there.
        assert_eq!(first, second);

        // A file of the wrong size at the address is damaged: the next writer replaces it.
        let fin = store.blob_path(Tier::Hot, HASH);
        std::fs::remove_file(&fin).expect("unlink");
        std::fs::write(&fin, b"bad").expect("damage");
        temp_blob(&store, "c", b"same!");
        store.place(Tier::Hot, "c", HASH, 5).await.expect("place c");
        assert_eq!(std::fs::read(&fin).expect("read"), b"same!");
    }
}
