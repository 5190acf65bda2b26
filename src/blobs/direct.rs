//! Large blob I/O that bypasses the page cache (Linux `O_DIRECT`).
//!
//! Why: a streamed body written through the page cache costs the kernel a copy into freshly
//! allocated cache pages, and on a VM whose balloon reports free memory to the host every such
//! page is faulted in again: measured here, a 1 GiB buffered write took 0.28 s of system time
//! when the freed pages were still warm and 2.49 s when they were not, while `O_DIRECT` took
//! 0.20–0.28 s every time. A large body is also rarely read back soon, so caching it only
//! evicts small hot objects. Small bodies keep the page cache (they are written whole by the
//! small path and read from the cache).
//!
//! `O_DIRECT` needs the buffer, the file offset and the length aligned to the device's logical
//! block; `ALIGN` (4 KiB) covers every common device. A filesystem that refuses the flag
//! (`fcntl` answers EINVAL, e.g. an older tmpfs) gets ordinary buffered I/O; so does a file
//! whose device refuses a direct request after accepting the flag, or that had a short direct
//! write, and every stream beyond the direct places (`MAX_DIRECT_READERS`,
//! `MAX_DIRECT_WRITERS`), which bound the memory in aligned blocks.

use bytes::Bytes;
use std::fs::File;
use std::io::{self, Write};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Alignment of buffers, offsets and lengths in direct I/O.
pub const ALIGN: usize = 4096;

/// Size of every aligned buffer: one direct write or read. Direct I/O is synchronous, so it
/// must be large to keep the disk busy (measured here with fio, one request at a time: writes
/// 1.35 GB/s with 256 KiB, 1.76 GB/s with 512 KiB, 1.85 GB/s with 1 MiB).
pub const BUF_LEN: usize = 512 << 10;

/// Free buffers kept for reuse, at most. Reuse matters: a fresh buffer's pages are faulted in
/// on first touch (on a ballooned VM each fault goes to the host), which made direct GETs cost
/// more CPU than page-cache ones when every chunk had a new buffer (1.3 s against 0.6 s per
/// GiB, measured). Beyond the pool, buffers go back to the kernel at once.
const POOL_KEEP: usize = 16;

static POOL: std::sync::Mutex<Vec<Block>> = std::sync::Mutex::new(Vec::new());

/// `BUF_LEN` bytes of their own anonymous mapping (so page-aligned, zero-filled, and returned
/// to the kernel by `munmap` when dropped: the allocator would keep freed buffers resident).
struct Block(NonNull<u8>);

// SAFETY: a `Block` is a uniquely owned mapping, like a `Box<[u8]>`.
unsafe impl Send for Block {}
// SAFETY: shared access only reads.
unsafe impl Sync for Block {}

impl Block {
    fn map() -> io::Result<Block> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BUF_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        match NonNull::new(raw.cast::<u8>()) {
            Some(ptr) => {
                // Mappings are page-aligned, and pages are at least ALIGN bytes.
                assert!(
                    ptr.as_ptr().addr().is_multiple_of(ALIGN),
                    "unaligned mapping"
                );
                Ok(Block(ptr))
            }
            None => Err(io::Error::other("mmap returned null")),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping holds BUF_LEN readable bytes (zero-filled when new) for the life
        // of `self`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), BUF_LEN) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), BUF_LEN) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `map` with this length and nothing borrows it.
        unsafe {
            libc::munmap(self.0.as_ptr().cast(), BUF_LEN);
        }
    }
}

/// An aligned buffer of `BUF_LEN` bytes from the pool, returned to it on drop.
pub struct AlignedBuf {
    block: Option<Block>,
    /// Bytes in use (`as_ref` shows these).
    len: usize,
}

impl AlignedBuf {
    pub fn take() -> io::Result<AlignedBuf> {
        let block = match POOL.lock().ok().and_then(|mut p| p.pop()) {
            Some(b) => b,
            None => Block::map()?,
        };
        Ok(AlignedBuf {
            block: Some(block),
            len: 0,
        })
    }

    fn block_mut(&mut self) -> &mut [u8] {
        match self.block.as_mut() {
            Some(b) => b.bytes_mut(),
            None => unreachable!("the block is only taken in drop"),
        }
    }

    /// Appends as much of `data` as fits; returns how much did.
    fn fill(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(BUF_LEN - self.len);
        let at = self.len;
        self.block_mut()[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    fn is_full(&self) -> bool {
        self.len == BUF_LEN
    }

    /// Drops the first `n` bytes, moving the rest to the start.
    fn drain_front(&mut self, n: usize) {
        let len = self.len;
        assert!(n <= len, "drained past the buffer's length");
        self.block_mut().copy_within(n..len, 0);
        self.len = len - n;
    }

    fn set_len(&mut self, len: usize) {
        assert!(len <= BUF_LEN, "aligned buffer length past its capacity");
        self.len = len;
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        match self.block.as_ref() {
            Some(b) => &b.bytes()[..self.len],
            None => &[],
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        if let Ok(mut pool) = POOL.lock()
            && pool.len() < POOL_KEEP
        {
            pool.push(block);
        }
    }
}

/// Turns `O_DIRECT` on or off for `file`. `Ok(false)`: the filesystem does not support it.
fn set_direct(file: &File, on: bool) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is borrowed from a live `File`; F_GETFL/F_SETFL touch no memory of ours.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let want = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EINVAL) if on => Ok(false),
                _ => Err(e),
            };
        }
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, on);
        Ok(false)
    }
}

/// A new file written sequentially through an aligned buffer, with `O_DIRECT` where the
/// filesystem allows it.
pub struct DirectWriter {
    file: File,
    /// `None`: buffered I/O (no writer place was free, or the filesystem refused `O_DIRECT`).
    buf: Option<AlignedBuf>,
    /// Held while `buf` is.
    slot: Option<Slot>,
}

impl DirectWriter {
    /// Creates `path` (which must not exist).
    pub fn create(path: &std::path::Path) -> io::Result<DirectWriter> {
        let file = File::create_new(path)?;
        let Some(slot) = Slot::writer() else {
            return Ok(DirectWriter {
                file,
                buf: None,
                slot: None,
            });
        };
        let direct = set_direct(&file, true)?;
        Ok(DirectWriter {
            buf: direct.then(AlignedBuf::take).transpose()?,
            slot: direct.then_some(slot),
            file,
        })
    }

    /// Appends `data`. In direct mode whole buffers go to the file; the rest waits in the
    /// buffer for more data or `finish`.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let Some(buf) = self.buf.as_mut() else {
                return self.file.write_all(data);
            };
            let n = buf.fill(data);
            data = &data[n..];
            if buf.is_full() {
                // A full buffer is a multiple of ALIGN and starts at an aligned offset (every
                // earlier write was a full buffer too).
                self.flush_direct(BUF_LEN)?;
            }
        }
        Ok(())
    }

    /// Writes the buffer's first `len` bytes (a multiple of ALIGN) with `O_DIRECT` and keeps
    /// the rest at its start. A device that refuses the I/O after accepting the flag (EINVAL:
    /// a larger logical block, some FUSE filesystems), or a short write (the file offset is
    /// then unaligned; the next call reports the cause, e.g. ENOSPC), turns the file buffered:
    /// the whole buffer is written through the page cache and later writes go there too.
    fn flush_direct(&mut self, len: usize) -> io::Result<()> {
        let Some(buf) = self.buf.as_mut() else {
            return Ok(());
        };
        debug_assert!(len.is_multiple_of(ALIGN) && len <= buf.len);
        let done = match self.file.write(&buf.as_ref()[..len]) {
            Ok(n) if n == len => {
                buf.drain_front(len);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => 0,
            Err(e) => return Err(e),
        };
        set_direct(&self.file, false)?;
        let rest = &buf.as_ref()[done..];
        self.file.write_all(rest)?;
        self.buf = None;
        self.slot = None;
        Ok(())
    }

    /// Writes what is buffered and returns the file (not yet synced). The aligned part of the
    /// tail goes direct; the last partial block is written with `O_DIRECT` turned off, since a
    /// direct write cannot end mid-block.
    pub fn finish(mut self) -> io::Result<File> {
        let whole = self.buf.as_ref().map_or(0, |b| b.len / ALIGN * ALIGN);
        if whole > 0 {
            self.flush_direct(whole)?;
        }
        if let Some(buf) = self.buf.take()
            && !buf.as_ref().is_empty()
        {
            set_direct(&self.file, false)?;
            self.file.write_all(buf.as_ref())?;
        }
        Ok(self.file)
    }

    /// Whether writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.buf.is_some()
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }
}

/// Reads `len` bytes at `offset` of `file` (opened with `O_DIRECT`) into an aligned buffer:
/// the read covers the enclosing aligned blocks and the answer is the wanted slice of it,
/// without a copy. The buffer goes back to the pool when the answer is dropped. Blocking.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let skip = (offset % ALIGN as u64) as usize;
    let start = offset - skip as u64;
    let want = skip + len;
    assert!(
        want <= BUF_LEN,
        "direct read of {want} bytes past the buffer"
    );
    let mut buf = AlignedBuf::take()?;
    let cap = want.next_multiple_of(ALIGN);
    let mut got = 0usize;
    while got < want {
        // Every read but a last short one at the end of the file is whole blocks, so `got`
        // stays aligned.
        match file.read_at(&mut buf.block_mut()[got..cap], start + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The device refuses direct I/O after all (see `DirectWriter::flush_direct`), or
            // a short read left `got` unaligned: read through the page cache from now on.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(file, false)?;
                return read_buffered_at(file, offset, len);
            }
            Err(e) => return Err(e),
        }
    }
    if got < want {
        return Err(super::short_blob());
    }
    buf.set_len(want);
    Ok(Bytes::from_owner(buf).slice(skip..))
}

fn read_buffered_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut v = vec![0u8; len];
    match file.read_exact_at(&mut v, offset) {
        Ok(()) => Ok(Bytes::from(v)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(super::short_blob()),
        Err(e) => Err(e),
    }
}

/// Streams that may read with `O_DIRECT` at once. Further streams read through the page
/// cache, 256 KiB at a time.
const MAX_DIRECT_READERS: usize = 12;

/// Direct reads a stream may always have unconsumed (being read, or read and waiting for the
/// socket).
const OWN_READS: usize = 3;

/// Direct reads for one stream, at most, its own and borrowed. Measured (1 GiB GET right after
/// its PUT, alternated, ÷ a direct-read probe of the disk right after): depth 2 reached
/// 0.79 / 0.88 of the disk, depth 4 0.94 / 1.06 and later 0.74 / 0.70 / 0.94 / 0.93, depth 8
/// 0.99 / 0.78 / 1.00 / 1.02 against those four.
const MAX_READ_DEPTH: usize = 8;

/// Reads beyond their own that the direct streams may borrow, all together: a lone large GET
/// reads eight deep and keeps the disk busy while the socket drains; twelve streams average
/// four each.
const EXTRA_READS: usize = 12;

/// Blocks of all direct reads together, at most: each stream's own reads and the one it is
/// sending, and every borrowed read. 60 blocks are 30 MiB.
const MAX_READ_BLOCKS: usize = MAX_DIRECT_READERS * (OWN_READS + 1) + EXTRA_READS;
const _: () = assert!(MAX_READ_BLOCKS * BUF_LEN <= 30 << 20);
const _: () = assert!(OWN_READS + EXTRA_READS >= MAX_READ_DEPTH);

static EXTRA: AtomicUsize = AtomicUsize::new(0);

/// Why a direct stream may start another read: one of its own, or one borrowed from
/// `EXTRA_READS` and given back when dropped (when the read's chunk is handed to the socket).
pub enum Room {
    Own,
    Borrowed(Slot),
}

/// Whether a direct stream with `unconsumed` reads may start another.
pub fn room(unconsumed: usize) -> Option<Room> {
    if unconsumed < OWN_READS {
        Some(Room::Own)
    } else if unconsumed < MAX_READ_DEPTH {
        Slot::take(&EXTRA, EXTRA_READS).map(Room::Borrowed)
    } else {
        None
    }
}

/// Files that may be written with `O_DIRECT` at once, one block each (8 MiB together). Further
/// uploads write through the page cache: under many concurrent uploads the blocks, on top of
/// each upload's batches in flight, took a 32-upload step to 102 MiB of RSS (measured).
const MAX_DIRECT_WRITERS: usize = 16;

static READERS: AtomicUsize = AtomicUsize::new(0);
static WRITERS: AtomicUsize = AtomicUsize::new(0);

/// A place among the direct readers or writers, held while the stream is open.
pub struct Slot(&'static AtomicUsize);

impl Slot {
    /// A direct reader's place, if one is free.
    pub fn reader() -> Option<Slot> {
        Slot::take(&READERS, MAX_DIRECT_READERS)
    }

    fn writer() -> Option<Slot> {
        Slot::take(&WRITERS, MAX_DIRECT_WRITERS)
    }

    fn take(count: &'static AtomicUsize, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(count))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Opens `path` for direct reads. `Ok(None)`: the filesystem refuses `O_DIRECT`.
pub fn open_read(path: &std::path::Path) -> io::Result<Option<File>> {
    let file = File::open(path)?;
    Ok(set_direct(&file, true)?.then_some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream reads up to eight deep while reads are left to borrow, and never fewer than
    /// its own three when none are; a borrowed read is given back when dropped.
    #[test]
    fn streams_borrow_reads_up_to_their_depth() {
        let lone: Vec<Room> = (0..MAX_READ_DEPTH).map_while(room).collect();
        assert_eq!(lone.len(), MAX_READ_DEPTH);
        assert!(room(MAX_READ_DEPTH).is_none());
        let mut held: Vec<Room> = std::iter::from_fn(|| room(OWN_READS)).take(64).collect();
        assert!(held.len() <= EXTRA_READS, "{} borrowed", held.len());
        assert!(room(OWN_READS).is_none());
        assert!(matches!(room(OWN_READS - 1), Some(Room::Own)));
        held.pop();
        assert!(matches!(room(OWN_READS), Some(Room::Borrowed(_))));
        drop((lone, held));
    }

    /// A direct write the device refuses (EINVAL; here forced by an unaligned file offset)
    /// turns the file buffered with nothing lost.
    #[test]
    fn a_refused_direct_write_falls_back_to_buffered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut w = DirectWriter::create(&path).expect("create");
        if !w.is_direct() {
            return; // This filesystem has no O_DIRECT: nothing to refuse.
        }
        set_direct(w.file(), false).expect("off");
        w.file_mut().write_all(b"x").expect("one byte");
        assert!(set_direct(w.file(), true).expect("on"));
        let data: Vec<u8> = (0..BUF_LEN * 2 + 100).map(|i| (i % 253) as u8).collect();
        w.write(&data).expect("write");
        assert!(!w.is_direct(), "still direct after EINVAL");
        w.finish().expect("finish").sync_data().expect("sync");
        let back = std::fs::read(&path).expect("read");
        assert!(
            back[0] == b'x' && back[1..] == data[..],
            "{} bytes back",
            back.len()
        );
    }

    #[test]
    fn writes_and_reads_back_every_alignment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..(2 * BUF_LEN + 3 * ALIGN + 777) as u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for (n, pieces) in [
            vec![7usize],
            vec![ALIGN],
            vec![ALIGN - 1, 5000],
            vec![BUF_LEN + 3],
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("f{n}"));
            let mut w = DirectWriter::create(&path).expect("create");
            let mut at = 0;
            for (i, p) in pieces.iter().cycle().enumerate() {
                if at == data.len() || i > data.len() {
                    break;
                }
                let end = (at + p).min(data.len());
                w.write(&data[at..end]).expect("write");
                at = end;
            }
            let f = w.finish().expect("finish");
            f.sync_data().expect("sync");
            let back = std::fs::read(&path).expect("read");
            assert!(back == data, "pieces {pieces:?}: {} bytes back", back.len());
            let r = open_read(&path)
                .expect("open")
                .unwrap_or_else(|| File::open(&path).expect("open buffered"));
            let at = [
                (0, 1),
                (1, ALIGN),
                (ALIGN, ALIGN),
                (4000, 5000),
                (0, BUF_LEN),
            ];
            let tail = (data.len() - 1000, 1000);
            for (off, len) in at.into_iter().chain([tail]) {
                let got = read_at(&r, off as u64, len).expect("read_at");
                assert!(got[..] == data[off..off + len], "at {off} len {len}");
            }
            let past = read_at(&r, (data.len() - 10) as u64, 11);
            assert_eq!(
                past.expect_err("short").kind(),
                io::ErrorKind::UnexpectedEof
            );
        }
    }
}
