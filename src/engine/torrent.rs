//! GetObjectTorrent: a BitTorrent metainfo file (BEP 3) for one object version, with the
//! object's URL as a web seed (BEP 19), so any BitTorrent client can fetch a public object.
//!
//! The metainfo's shape is fixed (six keys), so it is written here rather than through a
//! bencode crate: byte strings, integers and sorted dictionaries are all it needs.

use super::{Engine, Error, Result};
use crate::meta::ObjectRow;
use futures::StreamExt;
use sha1::Digest as _;

/// S3 serves torrents only for objects of at most 5 GB; hashing a larger one per request would
/// read more than a torrent is worth.
pub const MAX_TORRENT_OBJECT: u64 = 5 * 1024 * 1024 * 1024;
/// Smallest piece: clients handle 256 KiB pieces well; larger objects get larger pieces.
const MIN_PIECE: u64 = 256 * 1024;
/// Most pieces in one torrent (the piece size doubles until the object fits).
const MAX_PIECES: u64 = 2048;

/// The piece length for an object of `size` bytes: a power of two from `MIN_PIECE`.
fn piece_length(size: u64) -> u64 {
    let mut piece = MIN_PIECE;
    while size.div_ceil(piece) > MAX_PIECES {
        piece *= 2;
    }
    piece
}

impl Engine {
    /// The metainfo of `row`'s body, named `name`, web-seeded from `url` (if known).
    pub async fn torrent(&self, row: &ObjectRow, name: &str, url: Option<&str>) -> Result<Vec<u8>> {
        if row.delete_marker {
            return Err(Error::NoSuchKey);
        }
        if row.size > MAX_TORRENT_OBJECT {
            return Err(Error::InvalidArgument(format!(
                "Torrents are served for objects of at most {MAX_TORRENT_OBJECT} bytes"
            )));
        }
        let piece = piece_length(row.size);
        let mut body = self.open_body(row, None).await?;
        let mut pieces =
            Vec::with_capacity(20 * usize::try_from(row.size.div_ceil(piece)).unwrap_or(0));
        let mut hasher = sha1::Sha1::new();
        let mut filled = 0u64;
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk?;
            total += chunk.len() as u64;
            while !chunk.is_empty() {
                let room = usize::try_from(piece - filled).unwrap_or(usize::MAX);
                let take = chunk.split_to(room.min(chunk.len()));
                hasher.update(&take);
                filled += take.len() as u64;
                if filled == piece {
                    pieces.extend_from_slice(&hasher.finalize_reset());
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            pieces.extend_from_slice(&hasher.finalize());
        }
        if total != row.size {
            return Err(Error::Internal(format!(
                "object {} read {total} bytes of {}",
                row.id, row.size
            )));
        }
        Ok(metainfo(name, row.size, piece, &pieces, url))
    }
}

/// `d[8:url-list <url>]4:infod6:lengthi<n>e4:name<name>12:piece lengthi<p>e6:pieces<…>ee`
/// (dictionary keys in byte order, as BEP 3 requires).
fn metainfo(name: &str, length: u64, piece: u64, pieces: &[u8], url: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(pieces.len() + name.len() + 128);
    out.push(b'd');
    bytes(&mut out, b"info");
    out.push(b'd');
    bytes(&mut out, b"length");
    int(&mut out, length);
    bytes(&mut out, b"name");
    bytes(&mut out, name.as_bytes());
    bytes(&mut out, b"piece length");
    int(&mut out, piece);
    bytes(&mut out, b"pieces");
    bytes(&mut out, pieces);
    out.push(b'e');
    if let Some(url) = url {
        bytes(&mut out, b"url-list");
        bytes(&mut out, url.as_bytes());
    }
    out.push(b'e');
    out
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

fn int(out: &mut Vec<u8>, n: u64) {
    out.push(b'i');
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_lengths_bound_the_piece_count() {
        assert_eq!(piece_length(0), MIN_PIECE);
        assert_eq!(piece_length(7 << 20), MIN_PIECE);
        assert_eq!(piece_length(MIN_PIECE * MAX_PIECES), MIN_PIECE);
        assert_eq!(piece_length(MIN_PIECE * MAX_PIECES + 1), 2 * MIN_PIECE);
        assert!(MAX_TORRENT_OBJECT.div_ceil(piece_length(MAX_TORRENT_OBJECT)) <= MAX_PIECES);
    }

    #[test]
    fn metainfo_is_bencoded_with_sorted_keys() {
        let m = metainfo("a.txt", 3, MIN_PIECE, &[7u8; 20], Some("http://h/b/a.txt"));
        let mut want =
            b"d4:infod6:lengthi3e4:name5:a.txt12:piece lengthi262144e6:pieces20:".to_vec();
        want.extend_from_slice(&[7u8; 20]);
        want.extend_from_slice(b"e8:url-list16:http://h/b/a.txte");
        assert_eq!(m, want);
    }
}
