//! The aws-chunked chunk-size cap: `ChunkCap` follows the chunk framing of a streaming upload
//! (`x-amz-content-sha256: STREAMING-…`) and fails the body as soon as a chunk header announces
//! more than `MAX_CHUNK` bytes. s3s buffers a chunk whole before verifying it, so an unbounded
//! chunk would be unbounded memory. (Unrelated to `chunked`, which is `Transfer-Encoding`.)

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest aws-chunked chunk accepted (SDKs send 64 KiB–8 MiB chunks).
pub const MAX_CHUNK: u64 = 16 << 20;
/// Longest chunk header line (`<hex size>;chunk-signature=<64 hex>`) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Whether the body is aws-chunked framing (signed or unsigned streaming payloads).
pub fn is_aws_chunked<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
}

/// Watches aws-chunked framing go by and fails the body as soon as a chunk header announces
/// more than `MAX_CHUNK` bytes. It never buffers: data bytes are skipped by count.
pub struct ChunkCap<B> {
    inner: B,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Reading a chunk header line; `line` holds its bytes so far.
    Header { line: Vec<u8> },
    /// Skipping `left` data bytes plus the CRLF after them.
    Data { left: u64 },
    /// The last chunk was seen; trailers follow and are not ours to check.
    Done,
}

impl<B> ChunkCap<B> {
    pub fn new(inner: B) -> Self {
        ChunkCap {
            inner,
            state: State::Header { line: Vec::new() },
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("ChunkTooLarge: an aws-chunked chunk exceeds {MAX_CHUNK} bytes")]
pub struct ChunkTooLarge;

#[derive(Debug, thiserror::Error)]
#[error("FormatError: malformed aws-chunked header")]
pub struct BadChunkHeader;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl State {
    /// Advances over `data`; errors when the framing is over the limit or unreadable.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), BoxError> {
        while !data.is_empty() {
            match self {
                State::Done => return Ok(()),
                State::Data { left } => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        *self = State::Header { line: Vec::new() };
                    }
                }
                State::Header { line } => {
                    let Some(pos) = data.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_CHUNK_LINE {
                            return Err(BadChunkHeader.into());
                        }
                        return Ok(());
                    };
                    line.extend_from_slice(&data[..pos]);
                    data = &data[pos + 1..];
                    let text = std::str::from_utf8(line).map_err(|_| BadChunkHeader)?;
                    let text = text.trim_end_matches('\r');
                    // The CRLF that ends the previous chunk's data shows up as an empty line.
                    if text.is_empty() {
                        line.clear();
                        continue;
                    }
                    let hex = text.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| BadChunkHeader)?;
                    if size > MAX_CHUNK {
                        return Err(ChunkTooLarge.into());
                    }
                    *self = if size == 0 {
                        State::Done
                    } else {
                        State::Data { left: size }
                    };
                }
            }
        }
        Ok(())
    }
}

impl<B> Body for ChunkCap<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.state.feed(data.chunk())?;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], split: usize) -> Result<(), BoxError> {
        let mut st = State::Header { line: Vec::new() };
        for piece in input.chunks(split.max(1)) {
            st.feed(piece)?;
        }
        Ok(())
    }

    #[test]
    fn accepts_framing_in_any_split() {
        let mut body = b"4;chunk-signature=abc\r\nwiki\r\n5\r\npedia\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n".to_vec();
        for split in [1, 2, 3, 7, 100] {
            run(&body, split).unwrap();
        }
        body.extend_from_slice(b"anything after the last chunk is trailer");
        run(&body, 5).unwrap();
    }

    #[test]
    fn rejects_oversized_and_malformed_chunks() {
        let big = format!("{:x}\r\n", MAX_CHUNK + 1);
        let err = run(big.as_bytes(), 3).unwrap_err();
        assert!(err.to_string().contains("ChunkTooLarge"));
        assert!(run(b"zz\r\n", 1).is_err());
        assert!(run(&vec![b'1'; MAX_CHUNK_LINE + 10], 64).is_err());
        let ok = format!("{:x}\r\n", MAX_CHUNK);
        run(ok.as_bytes(), 2).unwrap();
    }
}
