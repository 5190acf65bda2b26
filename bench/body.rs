//! Deterministic request bodies generated in memory, chunk by chunk: client memory stays at a
//! few MiB whatever the object size, and no body is read from disk.
//!
//! Every chunk is a slice of one shared 4 MiB pseudo-random block whose first 16 bytes are
//! replaced by `(seed, chunk index)`, so two bodies with different seeds never share a chunk
//! (a content-addressed server cannot dedup them) while two bodies with the same seed are equal.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// Size of the frames a streamed body yields.
pub const CHUNK: usize = 1 << 20;
const BASE_LEN: usize = 4 << 20;

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(BASE_LEN);
        while v.len() < BASE_LEN {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    })
}

/// Chunk `index` (at most `CHUNK` bytes) of the body identified by `seed`.
pub fn chunk(seed: u64, index: u64, len: usize) -> Bytes {
    assert!(len <= CHUNK);
    let b = base();
    let mix = index
        .wrapping_mul(0x2545_F491_4F6C_DD1D)
        .wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let start = (mix % (BASE_LEN - CHUNK) as u64) as usize;
    let mut m = BytesMut::with_capacity(len);
    m.extend_from_slice(&b[start..start + len]);
    let mut tag = [0u8; 16];
    tag[..8].copy_from_slice(&seed.to_le_bytes());
    tag[8..].copy_from_slice(&index.to_le_bytes());
    let n = tag.len().min(len);
    m[..n].copy_from_slice(&tag[..n]);
    m.freeze()
}

/// A small body held in one buffer (for 4 KiB objects and listing fixtures).
pub fn small(seed: u64, len: usize) -> Bytes {
    chunk(seed, 0, len)
}

/// A body of `len` bytes streamed in `CHUNK`-sized frames, with an exact size hint.
#[derive(Debug)]
pub struct GenBody {
    seed: u64,
    len: u64,
    sent: u64,
}

impl GenBody {
    pub fn new(seed: u64, len: u64) -> GenBody {
        GenBody { seed, len, sent: 0 }
    }
}

impl Body for GenBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.len {
            return Poll::Ready(None);
        }
        let n = (self.len - self.sent).min(CHUNK as u64) as usize;
        let c = chunk(self.seed, self.sent / CHUNK as u64, n);
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}
