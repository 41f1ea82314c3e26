//! The cluster configuration in force at a snapshot's index, kept beside
//! the snapshot file, with the same name and the extension `config`:
//!
//! ```text
//! header (magic "SKIFFCFG") | length: u32 LE | configuration (length bytes) | crc: u32 LE
//! ```
//!
//! The configuration is `skiff_core::Membership`'s own encoding (that of a
//! configuration entry's data), address book included. A restart starts
//! the machine with it (`StartState::membership`): the configuration
//! entries the snapshot covers are no longer in the log to replay.
//!
//! The file is written, durably, before its snapshot becomes the current
//! one, so that a current snapshot never lacks it. A snapshot without one
//! was kept before membership changes existed, when the configuration was
//! always the bootstrap one (`cluster.toml`'s nodes): it reads as `None`.

use super::header::{check_sealed, encode_header, seal, Fault, Identity, HEADER_BYTES};
use super::{replace_file, StorageError};
use skiff_core::Membership;
use std::fs;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKIFFCFG";
/// The extension of a snapshot's configuration file.
pub const EXTENSION: &str = "config";

/// The configuration file of the snapshot file `snapshot`.
pub fn path_of(snapshot: &Path) -> PathBuf {
    snapshot.with_extension(EXTENSION)
}

/// Stores `membership` as the configuration of the snapshot file
/// `snapshot`, durably (written aside, synced, renamed, directory synced).
pub fn store(
    snapshot: &Path,
    identity: Identity,
    membership: &Membership,
) -> Result<(), StorageError> {
    let path = path_of(snapshot);
    let encoded = membership.encode();
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 4 + encoded.len() + 4);
    encode_header(MAGIC, identity, &mut bytes);
    bytes.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&encoded);
    seal(&mut bytes);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(StorageError::io(&path)(std::io::Error::other(
            "a snapshot configuration needs a file name in a directory",
        )));
    };
    replace_file(dir, name, &bytes)
}

/// The configuration kept with the snapshot file `snapshot`: `Ok(None)`
/// when it has none (see the module's comment).
pub fn load(snapshot: &Path, identity: Identity) -> Result<Option<Membership>, Fault> {
    let path = path_of(snapshot);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Fault::Refused(StorageError::io(&path)(e))),
    };
    let damaged = |offset: usize, reason: String| Fault::Damaged {
        offset: offset as u64,
        reason,
    };
    let length_at = HEADER_BYTES;
    let Some(length) = bytes.get(length_at..length_at + 4) else {
        return Err(damaged(0, format!("only {} bytes", bytes.len())));
    };
    let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
    let total = length_at + 4 + length + 4;
    if bytes.len() != total {
        return Err(damaged(
            length_at,
            format!("{} bytes, expected {total}", bytes.len()),
        ));
    }
    check_sealed(&path, MAGIC, identity, &bytes, total)?;
    let encoded = &bytes[length_at + 4..total - 4];
    Membership::decode(encoded)
        .map(Some)
        .map_err(|_| damaged(length_at + 4, "not a configuration".to_string()))
}

/// Removes the configuration of the snapshot file `snapshot`, if any.
pub fn remove(snapshot: &Path) -> Result<(), StorageError> {
    super::snapshot::remove(&path_of(snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::NodeId;

    const ME: Identity = Identity {
        cluster_id: 4,
        node_id: 2,
    };

    #[test]
    fn a_configuration_round_trips_its_absence_is_none_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir
            .path()
            .join("00000000000000000007-00000000000000000002.snap");
        assert!(matches!(load(&snapshot, ME), Ok(None)));
        let membership = Membership::new(vec![NodeId(1), NodeId(2)], vec![NodeId(4)])
            .unwrap()
            .with_context(bytes::Bytes::from_static(b"\x01book"));
        store(&snapshot, ME, &membership).unwrap();
        assert_eq!(load(&snapshot, ME).unwrap(), Some(membership));
        let path = path_of(&snapshot);
        let good = fs::read(&path).unwrap();
        for at in [0, HEADER_BYTES, HEADER_BYTES + 5, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(
                matches!(load(&snapshot, ME), Err(Fault::Damaged { .. })),
                "a flip at {at}"
            );
        }
        fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(matches!(load(&snapshot, ME), Err(Fault::Damaged { .. })));
        remove(&snapshot).unwrap();
        assert!(matches!(load(&snapshot, ME), Ok(None)));
    }
}
