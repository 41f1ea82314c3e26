//! The header every storage file starts with: what kind of file it is, its
//! format version and whose it is, so that a node never reads a file of
//! another format, node or cluster as its own.
//!
//! ```text
//! magic: 8 bytes | version: u32 LE | cluster id: u64 LE | node id: u64 LE
//! ```
//!
//! Each file kind follows the header with its own fields and a CRC32C over
//! everything before it (see `wal`, `manifest` and `hard_state`). A reader
//! checks that checksum before it believes any field, the header's own
//! included: a flipped bit in a cluster id is damage, not a foreign file.

use super::error::StorageError;
use std::path::Path;

/// The storage format version this code writes and reads. Version 2 added
/// sync markers to the log, the segment manifest and the two hard-state
/// copies; version 3 the repair flag in the hard state; version 4 the two
/// sync slots after each log segment's header. A directory of an older
/// version is refused by its headers.
pub const FORMAT_VERSION: u32 = 4;

/// Bytes of the common header.
pub const HEADER_BYTES: usize = 8 + 4 + 8 + 8;

/// Whose files these are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The cluster id from the configuration.
    pub cluster_id: u64,
    /// This node's id.
    pub node_id: u64,
}

/// Appends the header for a file of kind `magic` owned by `identity`.
pub fn encode_header(magic: &[u8; 8], identity: Identity, out: &mut Vec<u8>) {
    out.extend_from_slice(magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&identity.cluster_id.to_le_bytes());
    out.extend_from_slice(&identity.node_id.to_le_bytes());
}

/// Checks the header at the start of `bytes` (at least [`HEADER_BYTES`]
/// long) of the file at `path`.
pub fn check_header(
    path: &Path,
    magic: &[u8; 8],
    identity: Identity,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let bad = |offset: u64, reason: String| StorageError::BadHeader {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if bytes.len() < HEADER_BYTES {
        return Err(bad(0, format!("file is only {} bytes long", bytes.len())));
    }
    if &bytes[0..8] != magic {
        let expected = String::from_utf8_lossy(magic);
        return Err(bad(0, format!("not a {expected} file")));
    }
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(bad(
            8,
            format!("format version {version}, expected {FORMAT_VERSION}"),
        ));
    }
    let found = Identity {
        cluster_id: read_u64(12),
        node_id: read_u64(20),
    };
    if found != identity {
        return Err(StorageError::Foreign {
            path: path.to_path_buf(),
            found_cluster: found.cluster_id,
            found_node: found.node_id,
            cluster: identity.cluster_id,
            node: identity.node_id,
        });
    }
    Ok(())
}

/// Why a checksummed block could not be read.
#[derive(Debug)]
pub enum Fault {
    /// The bytes are damaged: the block is too short or its checksum fails.
    Damaged {
        /// Where the damage shows.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The bytes are intact but not ours to read: another format, node or
    /// cluster.
    Refused(StorageError),
}

/// Checks a block of `length` bytes at the start of `bytes` that ends with
/// a CRC32C of everything before it: first the length and the checksum,
/// and only then the header, so that damage is never taken for a file of
/// another owner.
pub fn check_sealed(
    path: &Path,
    magic: &[u8; 8],
    identity: Identity,
    bytes: &[u8],
    length: usize,
) -> Result<(), Fault> {
    if bytes.len() < length {
        return Err(Fault::Damaged {
            offset: 0,
            reason: format!("{} bytes, expected {length}", bytes.len()),
        });
    }
    let crc_at = length - 4;
    let stored = u32::from_le_bytes(bytes[crc_at..length].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[..crc_at]) != stored {
        return Err(Fault::Damaged {
            offset: crc_at as u64,
            reason: "checksum mismatch".to_string(),
        });
    }
    check_header(path, magic, identity, bytes).map_err(Fault::Refused)
}

/// The owner named by an intact block of `length` bytes at the start of
/// `bytes` (as [`check_sealed`] would accept it), whatever its kind.
pub fn intact_owner(bytes: &[u8], length: usize) -> Option<Identity> {
    let crc_at = length.checked_sub(4)?;
    let stored = u32::from_le_bytes(bytes.get(crc_at..length)?.try_into().ok()?);
    if length < HEADER_BYTES + 4 || crc32c::crc32c(&bytes[..crc_at]) != stored {
        return None;
    }
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    Some(Identity {
        cluster_id: read_u64(12),
        node_id: read_u64(20),
    })
}

/// Appends the CRC32C of everything in `out`, sealing a block for
/// [`check_sealed`].
pub fn seal(out: &mut Vec<u8>) {
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Identity = Identity {
        cluster_id: 7,
        node_id: 2,
    };

    #[test]
    fn a_header_is_accepted_only_by_its_owner() {
        let mut out = Vec::new();
        encode_header(b"SKIFFTST", ME, &mut out);
        let path = Path::new("f");
        check_header(path, b"SKIFFTST", ME, &out).unwrap();
        let other_node = Identity { node_id: 3, ..ME };
        let err = check_header(path, b"SKIFFTST", other_node, &out).unwrap_err();
        assert!(
            err.to_string().contains("belongs to cluster 7 node 2"),
            "{err}"
        );
        let err = check_header(path, b"SKIFFXXX", ME, &out).unwrap_err();
        assert!(
            matches!(err, StorageError::BadHeader { offset: 0, .. }),
            "{err}"
        );
        out[8] = 9;
        let err = check_header(path, b"SKIFFTST", ME, &out).unwrap_err();
        assert!(err.to_string().contains("format version 9"), "{err}");
    }

    #[test]
    fn a_flipped_bit_in_a_sealed_header_is_damage_not_a_foreign_owner() {
        let mut out = Vec::new();
        encode_header(b"SKIFFTST", ME, &mut out);
        seal(&mut out);
        let length = out.len();
        let path = Path::new("f");
        check_sealed(path, b"SKIFFTST", ME, &out, length).unwrap();
        assert_eq!(intact_owner(&out, length), Some(ME));
        for bit in 0..length * 8 {
            let mut damaged = out.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let fault = check_sealed(path, b"SKIFFTST", ME, &damaged, length).unwrap_err();
            assert!(
                matches!(fault, Fault::Damaged { .. }),
                "bit {bit}: {fault:?}"
            );
            assert_eq!(intact_owner(&damaged, length), None, "bit {bit}");
        }
        let other = Identity { node_id: 5, ..ME };
        let fault = check_sealed(path, b"SKIFFTST", other, &out, length).unwrap_err();
        assert!(
            matches!(fault, Fault::Refused(StorageError::Foreign { .. })),
            "{fault:?}"
        );
    }
}
