//! `x-amz-checksum-*`: which checksum a write computes, verifying the client's value (header or
//! trailer) before anything becomes visible, and the checksum of a completed multipart object.
//!
//! Like S3, every object gets a checksum: the one the client named, else CRC64NVME.

use super::{Error, Result};
use crate::blobs::{ChecksumAlgo, Written};
use crate::meta::{Checksum, PartRow};
use base64::Engine as _;
use std::sync::Arc;

/// The value of a trailing `x-amz-checksum-*` header, readable once the body has been consumed.
#[derive(Clone)]
pub struct TrailerValue(pub Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl std::fmt::Debug for TrailerValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrailerValue")
    }
}

/// What a write request says about its checksum.
#[derive(Debug, Clone, Default)]
pub struct ChecksumSpec {
    /// The algorithm the client named (header, SDK algorithm or trailer name).
    pub algo: Option<ChecksumAlgo>,
    /// The value from an `x-amz-checksum-*` header (base64).
    pub value: Option<String>,
    /// Set when the value comes in a trailer instead.
    pub trailer: Option<TrailerValue>,
}

impl ChecksumSpec {
    /// The algorithm this write computes (S3's default is CRC64NVME).
    pub fn effective(&self) -> ChecksumAlgo {
        self.algo.unwrap_or(ChecksumAlgo::Crc64Nvme)
    }

    fn expected(&self) -> Result<Option<String>> {
        if let Some(v) = &self.value {
            return Ok(Some(v.clone()));
        }
        match &self.trailer {
            None => Ok(None),
            Some(t) => match (t.0)() {
                Some(v) => Ok(Some(v)),
                None => Err(Error::InvalidChecksum(
                    "The request declared a trailing checksum but did not send it".into(),
                )),
            },
        }
    }
}

pub fn b64(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Decodes a client's base64 checksum of `algo`; malformed values are InvalidRequest.
pub fn decode(algo: ChecksumAlgo, v: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()
        .filter(|raw| raw.len() == algo.digest_len())
        .ok_or_else(|| {
            Error::InvalidChecksum(format!(
                "Value for x-amz-checksum-{} header is invalid.",
                algo.as_str().to_ascii_lowercase()
            ))
        })
}

/// Checks the client's value (if any) against what was computed; returns the checksum to store.
pub fn settle(spec: &ChecksumSpec, written: &Written) -> Result<Checksum> {
    let algo = spec.effective();
    let computed = written
        .checksum(algo)
        .ok_or_else(|| Error::InvalidChecksum(format!("{} was not computed", algo.as_str())))?;
    // A value that is not even a digest of the right length cannot match: S3 answers
    // BadDigest for it, as for any other mismatch.
    if let Some(want) = spec.expected()?
        && decode(algo, &want).ok().as_deref() != Some(computed)
    {
        return Err(Error::ChecksumMismatch(algo));
    }
    Ok(Checksum {
        algo,
        value: b64(computed),
        full_object: true,
    })
}

/// The checksum of a completed multipart object from its parts' checksums (in order):
/// COMPOSITE = checksum of the concatenated raw part checksums, `-N`; FULL_OBJECT (CRCs only) =
/// the parts' CRCs combined, as if computed over the whole object.
pub fn assemble(algo: ChecksumAlgo, full_object: bool, parts: &[&PartRow]) -> Result<Checksum> {
    let raw: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| {
            let v = p
                .checksum
                .as_deref()
                .ok_or(Error::InvalidPart(p.part_number))?;
            decode(algo, v).map_err(|_| Error::InvalidPart(p.part_number))
        })
        .collect::<Result<_>>()?;
    let value = match (full_object, algo.crc()) {
        (true, Some(crc)) => {
            let mut shifts = Shifts::new(crc);
            let mut acc: Option<u64> = None;
            for (p, r) in parts.iter().zip(&raw) {
                let v = r.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
                acc = Some(match acc {
                    None => v,
                    Some(a) => shifts.shift(a, p.size) ^ v,
                });
            }
            b64(&algo.crc_bytes(acc.unwrap_or(0)))
        }
        (true, None) => {
            return Err(Error::InvalidChecksum(format!(
                "The FULL_OBJECT checksum type is not supported for {}",
                algo.as_str()
            )));
        }
        (false, _) => format!("{}-{}", b64(&algo.digest(&raw.concat())), parts.len()),
    };
    Ok(Checksum {
        algo,
        value,
        full_object,
    })
}

/// CRC combination for many parts of few distinct sizes. `combine(a, b, len)` is
/// `shift_len(a) ^ b` with `shift_len` linear over GF(2); one `checksum_combine` costs ~0.25 ms,
/// so 10,000 parts would take seconds. Instead each distinct length's shift is tabulated once
/// (64 combines, on basis vectors) and then applied by XOR-ing columns.
struct Shifts {
    crc: crc_fast::CrcAlgorithm,
    tables: std::collections::HashMap<u64, [u64; 64]>,
}

impl Shifts {
    fn new(crc: crc_fast::CrcAlgorithm) -> Shifts {
        Shifts {
            crc,
            tables: std::collections::HashMap::new(),
        }
    }

    fn shift(&mut self, a: u64, len: u64) -> u64 {
        let crc = self.crc;
        let cols = self.tables.entry(len).or_insert_with(|| {
            std::array::from_fn(|i| crc_fast::checksum_combine(crc, 1u64 << i, 0, len))
        });
        (0..64)
            .filter(|i| a >> i & 1 == 1)
            .fold(0, |acc, i| acc ^ cols[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: i32, algo: ChecksumAlgo, data: &[u8]) -> PartRow {
        PartRow {
            part_number: n,
            size: data.len() as u64,
            etag: String::new(),
            created_at: 0,
            blob: None,
            checksum: Some(b64(&algo.digest(data))),
        }
    }

    #[test]
    fn full_object_crc_equals_crc_of_the_whole() {
        for algo in [
            ChecksumAlgo::Crc32,
            ChecksumAlgo::Crc32c,
            ChecksumAlgo::Crc64Nvme,
        ] {
            let (a, b, c) = (
                b"first part".as_slice(),
                b"second".as_slice(),
                b"3".as_slice(),
            );
            let parts = [part(1, algo, a), part(2, algo, b), part(3, algo, c)];
            let refs: Vec<&PartRow> = parts.iter().collect();
            let got = assemble(algo, true, &refs).unwrap();
            assert_eq!(
                got.value,
                b64(&algo.digest(&[a, b, c].concat())),
                "{algo:?}"
            );
        }
    }

    #[test]
    fn tabulated_shift_equals_checksum_combine() {
        for algo in [
            ChecksumAlgo::Crc32,
            ChecksumAlgo::Crc32c,
            ChecksumAlgo::Crc64Nvme,
        ] {
            let crc = algo.crc().unwrap();
            let mut s = Shifts::new(crc);
            for (a, b, len) in [
                (0u64, 0u64, 7u64),
                (0xdead_beef, 0x1234, 5 << 20),
                (0xffff_ffff, 1, 1),
            ] {
                let mask = if algo.digest_len() == 4 {
                    0xffff_ffff
                } else {
                    u64::MAX
                };
                let (a, b) = (a & mask, b & mask);
                assert_eq!(
                    s.shift(a, len) ^ b,
                    crc_fast::checksum_combine(crc, a, b, len),
                    "{algo:?}"
                );
            }
        }
    }

    #[test]
    fn composite_is_checksum_of_checksums() {
        let algo = ChecksumAlgo::Sha256;
        let parts = [part(1, algo, b"x"), part(2, algo, b"y")];
        let refs: Vec<&PartRow> = parts.iter().collect();
        let got = assemble(algo, false, &refs).unwrap();
        let raw = [algo.digest(b"x"), algo.digest(b"y")].concat();
        assert_eq!(got.value, format!("{}-2", b64(&algo.digest(&raw))));
        assert!(assemble(ChecksumAlgo::Sha1, true, &refs).is_err());
    }
}
