//! The header every storage file starts with: what kind of file it is, its
//! format version and whose it is, so that a node never reads a file of
//! another format, node or cluster as its own.
//!
//! ```text
//! magic: 8 bytes | version: u32 LE | cluster id: u64 LE | node id: u64 LE
//! ```
//!
//! Each file kind follows the header with its own fields and a CRC32C over
//! everything before it (see `wal` and `hard_state`).

use super::error::StorageError;
use std::path::Path;

/// The storage format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

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
}
