//! Streaming reads of an object's segments, whole or by byte range.

use super::Result;
use crate::blobs::{BlobStore, Tier};
use crate::meta::Segment;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::io::SeekFrom;
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

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
            });
        }
    }
    out
}

struct State {
    blobs: BlobStore,
    pieces: std::vec::IntoIter<Piece>,
    file: Option<(tokio::fs::File, u64)>,
}

/// Opens the first segment now (errors surface before the response starts), the rest lazily.
pub(super) async fn open(
    blobs: &BlobStore,
    segments: &[Segment],
    range: ByteRange,
) -> Result<BodyStream> {
    let mut pieces = pieces(segments, range).into_iter();
    let file = match pieces.next() {
        Some(p) => Some((open_piece(blobs, &p).await?, p.len)),
        None => None,
    };
    let state = State {
        blobs: blobs.clone(),
        pieces,
        file,
    };
    Ok(Box::pin(futures::stream::try_unfold(state, next_chunk)))
}

async fn open_piece(blobs: &BlobStore, p: &Piece) -> std::io::Result<tokio::fs::File> {
    let mut f = blobs.open_read(p.tier, &p.hash).await?;
    if p.offset > 0 {
        f.seek(SeekFrom::Start(p.offset)).await?;
    }
    Ok(f)
}

async fn next_chunk(mut st: State) -> std::io::Result<Option<(Bytes, State)>> {
    loop {
        let Some((file, left)) = st.file.as_mut() else {
            let Some(p) = st.pieces.next() else {
                return Ok(None);
            };
            st.file = Some((open_piece(&st.blobs, &p).await?, p.len));
            continue;
        };
        if *left == 0 {
            st.file = None;
            continue;
        }
        let want = usize::try_from(*left).unwrap_or(usize::MAX).min(READ_CHUNK);
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            let n = file.read(&mut buf[filled..]).await?;
            if n == 0 {
                // The blob is shorter than its row says: never serve a short object silently.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob file shorter than recorded size",
                ));
            }
            filled += n;
        }
        *left -= want as u64;
        return Ok(Some((buf.freeze(), st)));
    }
}
