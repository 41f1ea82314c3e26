//! The hard state (current term and vote) in its own small file, replaced
//! atomically: write a temporary file, sync it, rename it over the old one,
//! sync the directory. A crash leaves either the old or the new state,
//! never a mix.
//!
//! ```text
//! header (magic "SKIFFHST") | term: u64 LE | has vote: u8 | vote: u64 LE | crc: u32 LE
//! ```

use super::error::StorageError;
use super::header::{check_header, encode_header, Identity, HEADER_BYTES};
use super::sync_dir;
use skiff_core::{HardState, NodeId, Term};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKIFFHST";
const FILE: &str = "hard-state";
const TEMPORARY_FILE: &str = "hard-state.tmp";
const FILE_BYTES: usize = HEADER_BYTES + 8 + 1 + 8 + 4;

/// Where the hard state lives and whose it is.
#[derive(Debug)]
pub struct HardStateFile {
    dir: PathBuf,
    identity: Identity,
}

impl HardStateFile {
    /// The hard-state file of the data directory `dir`.
    pub fn new(dir: &Path, identity: Identity) -> HardStateFile {
        HardStateFile {
            dir: dir.to_path_buf(),
            identity,
        }
    }

    /// The stored state, or the initial state when none was ever stored.
    pub fn load(&self) -> Result<HardState, StorageError> {
        let path = self.dir.join(FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HardState::default()),
            Err(e) => return Err(StorageError::io(&path)(e)),
        };
        check_header(&path, MAGIC, self.identity, &bytes)?;
        decode_body(&bytes).map_err(|(offset, reason)| StorageError::BadHeader {
            path,
            offset,
            reason,
        })
    }

    /// Replaces the stored state with `state`, durably.
    pub fn store(&self, state: HardState) -> Result<(), StorageError> {
        let temporary = self.dir.join(TEMPORARY_FILE);
        let mut file = File::create(&temporary).map_err(StorageError::io(&temporary))?;
        file.write_all(&encode(self.identity, state))
            .and_then(|()| file.sync_all())
            .map_err(StorageError::io(&temporary))?;
        let path = self.dir.join(FILE);
        fs::rename(&temporary, &path).map_err(StorageError::io(&path))?;
        sync_dir(&self.dir)
    }
}

fn encode(identity: Identity, state: HardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_BYTES);
    encode_header(MAGIC, identity, &mut out);
    out.extend_from_slice(&state.term.0.to_le_bytes());
    out.push(u8::from(state.voted_for.is_some()));
    out.extend_from_slice(&state.voted_for.map_or(0, |id| id.0).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the fields after a checked header; on failure, the offset and
/// what is wrong.
fn decode_body(bytes: &[u8]) -> Result<HardState, (u64, String)> {
    if bytes.len() != FILE_BYTES {
        return Err((0, format!("{} bytes, expected {FILE_BYTES}", bytes.len())));
    }
    let crc_at = FILE_BYTES - 4;
    let stored = u32::from_le_bytes(bytes[crc_at..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[..crc_at]) != stored {
        return Err((crc_at as u64, "checksum mismatch".to_string()));
    }
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let term = Term(read_u64(HEADER_BYTES));
    let voted_for = match bytes[HEADER_BYTES + 8] {
        0 => None,
        1 => Some(NodeId(read_u64(HEADER_BYTES + 9))),
        flag => return Err(((HEADER_BYTES + 8) as u64, format!("vote flag {flag}"))),
    };
    Ok(HardState { term, voted_for })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Identity = Identity {
        cluster_id: 1,
        node_id: 3,
    };

    #[test]
    fn state_survives_a_reopen_and_starts_at_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = HardStateFile::new(dir.path(), ME);
        assert_eq!(file.load().unwrap(), HardState::default());
        let state = HardState {
            term: Term(5),
            voted_for: Some(NodeId(2)),
        };
        file.store(state).unwrap();
        file.store(HardState {
            term: Term(6),
            voted_for: None,
        })
        .unwrap();
        let reopened = HardStateFile::new(dir.path(), ME);
        assert_eq!(
            reopened.load().unwrap(),
            HardState {
                term: Term(6),
                voted_for: None
            }
        );
        assert!(!dir.path().join(TEMPORARY_FILE).exists());
    }

    #[test]
    fn damage_and_foreign_owners_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        HardStateFile::new(dir.path(), ME)
            .store(HardState {
                term: Term(5),
                voted_for: None,
            })
            .unwrap();
        let other = Identity {
            cluster_id: 2,
            ..ME
        };
        let err = HardStateFile::new(dir.path(), other).load().unwrap_err();
        assert!(matches!(err, StorageError::Foreign { .. }), "{err}");
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_BYTES] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = HardStateFile::new(dir.path(), ME).load().unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
}
