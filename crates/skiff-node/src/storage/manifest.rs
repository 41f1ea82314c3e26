//! The manifest: which log segments must exist, so that recovery notices a
//! segment that vanished, the last ones and all of them included.
//!
//! ```text
//! header (magic "SKIFFMAN") | first sequence: u64 LE | last sequence: u64 LE | crc: u32 LE
//! ```
//!
//! It changes only when a segment is added, which is rare, so it is
//! replaced atomically and durably every time (write a temporary file, sync
//! it, rename it, sync the directory). The new segment is created and
//! synced first and named here second, before it receives a record: a crash
//! in between leaves an empty segment one past the last named, which
//! recovery removes.

use super::header::{check_sealed, encode_header, seal, Fault, Identity, HEADER_BYTES};
use super::{replace_file, StorageError};
use std::fs;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKIFFMAN";
/// The manifest's file name in the data directory.
pub const FILE: &str = "manifest";
/// Bytes of the manifest file.
pub const FILE_BYTES: usize = HEADER_BYTES + 8 + 8 + 4;

/// The segments that must exist: `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The first segment's sequence number.
    pub first: u64,
    /// The last segment's sequence number.
    pub last: u64,
}

/// The manifest's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the manifest of `dir`: `Ok(None)` when there is none.
pub fn load(dir: &Path, identity: Identity) -> Result<Option<Manifest>, Fault> {
    let path = path(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Fault::Refused(StorageError::io(&path)(e))),
    };
    check_sealed(&path, MAGIC, identity, &bytes, FILE_BYTES)?;
    if bytes.len() != FILE_BYTES {
        return Err(Fault::Damaged {
            offset: FILE_BYTES as u64,
            reason: format!("{} bytes, expected {FILE_BYTES}", bytes.len()),
        });
    }
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let manifest = Manifest {
        first: read_u64(HEADER_BYTES),
        last: read_u64(HEADER_BYTES + 8),
    };
    if manifest.first == 0 || manifest.first > manifest.last {
        return Err(Fault::Damaged {
            offset: HEADER_BYTES as u64,
            reason: format!("segments {}..={}", manifest.first, manifest.last),
        });
    }
    Ok(Some(manifest))
}

/// Replaces the manifest of `dir` with `manifest`, durably.
pub fn store(dir: &Path, identity: Identity, manifest: Manifest) -> Result<(), StorageError> {
    let mut bytes = Vec::with_capacity(FILE_BYTES);
    encode_header(MAGIC, identity, &mut bytes);
    bytes.extend_from_slice(&manifest.first.to_le_bytes());
    bytes.extend_from_slice(&manifest.last.to_le_bytes());
    seal(&mut bytes);
    replace_file(dir, FILE, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Identity = Identity {
        cluster_id: 4,
        node_id: 2,
    };

    #[test]
    fn a_manifest_round_trips_and_damage_is_told_from_absence() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path(), ME), Ok(None)));
        let manifest = Manifest { first: 1, last: 3 };
        store(dir.path(), ME, manifest).unwrap();
        assert_eq!(load(dir.path(), ME).unwrap(), Some(manifest));
        let mut bytes = fs::read(path(dir.path())).unwrap();
        bytes[HEADER_BYTES + 8] ^= 4;
        fs::write(path(dir.path()), &bytes).unwrap();
        assert!(matches!(load(dir.path(), ME), Err(Fault::Damaged { .. })));
    }
}
