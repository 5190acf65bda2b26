//! Streaming reads of an object's segments, whole or by byte range.

use super::Result;
use crate::blobs::{BlobStore, Tier};
use crate::meta::Segment;
use bytes::Bytes;
use futures::Stream;
use std::io::Read;
use std::pin::Pin;

/// Read size per chunk: big reads are cheap on the disk and on loopback.
const READ_CHUNK: usize = 256 * 1024;

/// `[start, end)` within an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

pub type BodyStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync>>;

/// One segment's part of the requested range.
struct Piece {
    tier: Tier,
    hash: String,
    offset: u64,
    len: u64,
    /// The segment's bytes when its blob is inline (then there is no file to open).
    inline: Option<Bytes>,
}

fn pieces(segments: &[Segment], range: ByteRange) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut base = 0u64;
    for s in segments {
        let (lo, hi) = (base, base + s.size);
        base = hi;
        let start = range.start.max(lo);
        let end = range.end.min(hi);
        if start < end {
            out.push(Piece {
                tier: s.tier,
                hash: s.hash.clone(),
                offset: start - lo,
                len: end - start,
                inline: s.inline.clone(),
            });
        }
    }
    out
}

/// Where the current piece's bytes come from.
enum Source {
    File(FileReader),
    /// The rest of an inline piece, sent as one chunk.
    Memory(Bytes),
}

/// A blob file read one chunk ahead: the next chunk's read runs on a blocking thread while the
/// caller sends the current one, so the page-cache copy overlaps the socket's.
struct FileReader {
    next: tokio::task::JoinHandle<(std::fs::File, std::io::Result<Bytes>)>,
    /// Bytes of the piece not yet asked for.
    left: u64,
}

impl FileReader {
    fn start(file: std::fs::File, left: u64) -> FileReader {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK);
        let next = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let chunk = read_chunk(&mut file, want);
            (file, chunk)
        });
        FileReader {
            next,
            left: left - want as u64,
        }
    }
}

struct State {
    blobs: BlobStore,
    pieces: std::vec::IntoIter<Piece>,
    current: Option<Source>,
}

/// Opens the first segment now (errors surface before the response starts), the rest lazily.
pub(super) async fn open(
    blobs: &BlobStore,
    segments: &[Segment],
    range: ByteRange,
) -> Result<BodyStream> {
    let mut pieces = pieces(segments, range).into_iter();
    let current = match pieces.next() {
        Some(p) => Some(open_piece(blobs, p).await?),
        None => None,
    };
    let state = State {
        blobs: blobs.clone(),
        pieces,
        current,
    };
    Ok(Box::pin(futures::stream::try_unfold(state, next_chunk)))
}

async fn open_piece(blobs: &BlobStore, p: Piece) -> std::io::Result<Source> {
    if let Some(bytes) = p.inline {
        let range = usize::try_from(p.offset)
            .ok()
            .zip(usize::try_from(p.offset + p.len).ok());
        return match range {
            Some((lo, hi)) if hi <= bytes.len() => Ok(Source::Memory(bytes.slice(lo..hi))),
            // The row's bytes disagree with its recorded size: never serve them.
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "inline blob shorter than recorded size",
            )),
        };
    }
    let f = blobs.open_read(p.tier, &p.hash, p.offset).await?;
    Ok(Source::File(FileReader::start(f, p.len)))
}

async fn next_chunk(mut st: State) -> std::io::Result<Option<(Bytes, State)>> {
    loop {
        match &mut st.current {
            None => {
                let Some(p) = st.pieces.next() else {
                    return Ok(None);
                };
                st.current = Some(open_piece(&st.blobs, p).await?);
            }
            Some(Source::Memory(bytes)) => {
                let bytes = std::mem::take(bytes);
                st.current = None;
                return Ok(Some((bytes, st)));
            }
            Some(Source::File(reader)) => {
                let (file, chunk) = (&mut reader.next).await.map_err(std::io::Error::other)?;
                let chunk = chunk?;
                st.current = match reader.left {
                    0 => None,
                    left => Some(Source::File(FileReader::start(file, left))),
                };
                return Ok(Some((chunk, st)));
            }
        }
    }
}

/// The next `want` bytes of `file` (blocking). Reads into the buffer's spare capacity: no
/// zeroing, no intermediate copy.
fn read_chunk(file: &mut std::fs::File, want: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(want);
    let n = file.by_ref().take(want as u64).read_to_end(&mut buf)?;
    if n < want {
        // The blob is shorter than its row says: never serve a short object silently.
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "blob file shorter than recorded size",
        ));
    }
    Ok(Bytes::from(buf))
}
