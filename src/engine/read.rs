//! Streaming reads of an object's segments, whole or by byte range.

use super::Result;
use crate::blobs::{BlobReader, BlobStore, Room, Tier};
use crate::meta::Segment;
use bytes::Bytes;
use futures::Stream;
use std::collections::VecDeque;
use std::pin::Pin;

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

/// A blob file read ahead: the next chunks' reads run on blocking threads (as many as the
/// reader allows) while the caller sends the current one, so the disk or page-cache copy
/// overlaps the socket's.
struct FileReader {
    reader: BlobReader,
    /// Reads started and not yet handed out, each with its place (`BlobReader::room`).
    running: VecDeque<(tokio::task::JoinHandle<std::io::Result<Bytes>>, Room)>,
}

impl FileReader {
    fn start(reader: BlobReader) -> FileReader {
        let mut f = FileReader {
            reader,
            running: VecDeque::new(),
        };
        f.refill();
        f
    }

    /// Starts reads while the reader has room. Called only after the previous read was
    /// handed out, which keeps buffered reads (one at a time) in file order.
    fn refill(&mut self) {
        while let Some(room) = self.reader.room(self.running.len()) {
            let Some(read) = self.reader.next_read() else {
                return;
            };
            let task = tokio::task::spawn_blocking(move || read.run());
            self.running.push_back((task, room));
        }
    }

    /// The next chunk, or `None` at the end of the piece.
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        let (read, room) = self.running.pop_front()?;
        let chunk = read.await.map_err(std::io::Error::other).and_then(|r| r);
        // The chunk goes to the socket: its place is free for the next read.
        drop(room);
        self.refill();
        Some(chunk)
    }
}

struct State {
    blobs: BlobStore,
    pieces: std::vec::IntoIter<Piece>,
    current: Option<Source>,
}

/// Opens the first segment now (its reader checks the file's length) and checks that every
/// later segment's file holds its bytes, so that a missing or short blob (a restore from
/// snapshots of different times) fails the request before the response starts instead of
/// cutting it short; the rest open lazily.
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
    check_files(blobs, pieces.as_slice()).await?;
    let state = State {
        blobs: blobs.clone(),
        pieces,
        current,
    };
    Ok(Box::pin(futures::stream::try_unfold(state, next_chunk)))
}

/// Every file piece's blob exists and is long enough (one blocking hand-off for all).
async fn check_files(blobs: &BlobStore, pieces: &[Piece]) -> std::io::Result<()> {
    let wanted: Vec<(std::path::PathBuf, u64)> = pieces
        .iter()
        .filter(|p| p.inline.is_none())
        .map(|p| (blobs.blob_path(p.tier, &p.hash), p.offset + p.len))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let checked = tokio::task::spawn_blocking(move || {
        for (path, end) in wanted {
            let len = std::fs::metadata(&path)?.len();
            if len < end {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("blob file {} is shorter than its segment", path.display()),
                ));
            }
        }
        Ok(())
    });
    checked.await.map_err(std::io::Error::other)?
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
    let reader = blobs.open_read(p.tier, &p.hash, p.offset, p.len).await?;
    Ok(Source::File(FileReader::start(reader)))
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
            Some(Source::File(reader)) => match reader.next().await {
                Some(chunk) => return Ok(Some((chunk?, st))),
                None => st.current = None,
            },
        }
    }
}
