//! The additional checksums S3 clients ask for, computed in the same pass as SHA-256 and MD5.

use sha1::Digest as _;

/// An `x-amz-checksum-*` algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgo {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgo {
    pub const ALL: [ChecksumAlgo; 5] = [
        ChecksumAlgo::Crc32,
        ChecksumAlgo::Crc32c,
        ChecksumAlgo::Crc64Nvme,
        ChecksumAlgo::Sha1,
        ChecksumAlgo::Sha256,
    ];

    /// S3's name (`CRC32`, …), as in `x-amz-checksum-algorithm`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgo::Crc32 => "CRC32",
            ChecksumAlgo::Crc32c => "CRC32C",
            ChecksumAlgo::Crc64Nvme => "CRC64NVME",
            ChecksumAlgo::Sha1 => "SHA1",
            ChecksumAlgo::Sha256 => "SHA256",
        }
    }

    pub fn parse(s: &str) -> Option<ChecksumAlgo> {
        ChecksumAlgo::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgo::Crc32 | ChecksumAlgo::Crc32c => 4,
            ChecksumAlgo::Crc64Nvme => 8,
            ChecksumAlgo::Sha1 => 20,
            ChecksumAlgo::Sha256 => 32,
        }
    }

    pub fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            ChecksumAlgo::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            ChecksumAlgo::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            ChecksumAlgo::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            ChecksumAlgo::Sha1 | ChecksumAlgo::Sha256 => None,
        }
    }

    /// A CRC value as S3 encodes it: big-endian, 4 or 8 bytes.
    pub fn crc_bytes(self, v: u64) -> Vec<u8> {
        if self.digest_len() == 4 {
            (v as u32).to_be_bytes().to_vec()
        } else {
            v.to_be_bytes().to_vec()
        }
    }

    /// The digest of `data` in one call (for composite checksums of part checksums).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish(None)
    }
}

/// One running checksum (also `s3::digest`'s, for XML request bodies).
pub enum Hasher {
    Crc(ChecksumAlgo, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algo: ChecksumAlgo) -> Hasher {
        match (algo, algo.crc()) {
            (_, Some(c)) => Hasher::Crc(algo, crc_fast::Digest::new(c)),
            (ChecksumAlgo::Sha1, None) => Hasher::Sha1(sha1::Sha1::new()),
            _ => Hasher::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => sha2::Digest::update(h, data),
        }
    }

    /// The raw digest; `sha256` short-cuts the SHA-256 the pipeline computed anyway.
    pub fn finish(self, sha256: Option<&[u8; 32]>) -> Vec<u8> {
        match self {
            Hasher::Crc(a, d) => a.crc_bytes(d.finalize()),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => match sha256 {
                Some(s) => s.to_vec(),
                None => sha2::Digest::finalize(h).to_vec(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values from the AWS SDKs' checksum tests ("Hello world").
        let b64 = |v: Vec<u8>| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(v)
        };
        assert_eq!(b64(ChecksumAlgo::Crc32.digest(b"Hello world")), "i9aeUg==");
        assert_eq!(b64(ChecksumAlgo::Crc32c.digest(b"Hello world")), "crUfeA==");
        assert_eq!(
            b64(ChecksumAlgo::Crc64Nvme.digest(b"Hello world")),
            "OOJZ0D8xKts="
        );
        assert_eq!(
            b64(ChecksumAlgo::Sha1.digest(b"Hello world")),
            "e1AsOh9IyGCa4hLN+2Od7jlnP14="
        );
        assert_eq!(
            b64(ChecksumAlgo::Sha256.digest(b"Hello world")),
            "ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw="
        );
        assert_eq!(
            ChecksumAlgo::parse("crc64nvme"),
            Some(ChecksumAlgo::Crc64Nvme)
        );
    }
}
