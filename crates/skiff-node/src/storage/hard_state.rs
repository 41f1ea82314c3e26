//! The hard state (current term and vote) and the repair flag, kept in two copies,
//! `hardstate.a` and `hardstate.b`, each replaced atomically (see
//! `replace_file`): a crash leaves each copy either old or new, never a mix,
//! and one damaged copy leaves the other to read.
//!
//! ```text
//! header (magic "SKIFFHST") | term: u64 LE | has vote: u8 | vote: u64 LE
//!     | repairing: u8 | crc: u32 LE
//! ```
//!
//! The repair flag says that the log lost entries the node may have
//! acknowledged and that the node has not yet caught up from its peers
//! (see `repair`): it is kept with the term and vote because it must
//! survive as durably as they do.
//!
//! A store writes `a`, then `b`, and is done when both are durable. On load
//! an intact copy is taken over a damaged or missing one, and of two intact
//! copies that differ (a crash between the two writes) the newer: the higher
//! term, or at the same term the one with a vote, or at the same term and
//! vote the one that says repairing. The flag only changes with term and
//! vote unchanged, so of two copies differing in the flag alone one write
//! of it was cut short; taking "repairing" then errs on the safe side.

use super::header::{check_sealed, encode_header, seal, Fault, Identity, HEADER_BYTES};
use super::{replace_file, StorageError};
use skiff_core::{HardState, NodeId, Term};
use std::fs;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKIFFHST";
/// The names of the two copies, in the order they are written.
pub const FILES: [&str; 2] = ["hardstate.a", "hardstate.b"];
/// Bytes of a hard-state file.
pub const FILE_BYTES: usize = HEADER_BYTES + 8 + 1 + 8 + 1 + 4;

/// What a hard-state file holds: the machine's term and vote, and whether
/// the node is repairing a damaged log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredState {
    /// Term and vote.
    pub state: HardState,
    /// Whether the node is repairing (see the module's comment).
    pub repairing: bool,
}

/// Where the hard state lives and whose it is.
#[derive(Debug)]
pub struct HardStateFile {
    dir: PathBuf,
    identity: Identity,
}

/// What one copy holds: `Ok(None)` when the file does not exist, an error
/// naming the file when it cannot be used.
pub type Copy = Result<Option<StoredState>, StorageError>;

impl HardStateFile {
    /// The hard-state files of the data directory `dir`.
    pub fn new(dir: &Path, identity: Identity) -> HardStateFile {
        HardStateFile {
            dir: dir.to_path_buf(),
            identity,
        }
    }

    /// Each copy as it is on disk, in the order of [`FILES`].
    pub fn load_copies(&self) -> [Copy; 2] {
        FILES.map(|name| self.load_copy(&self.dir.join(name)))
    }

    /// The stored state: `Ok(None)` when neither copy exists; an error when
    /// one cannot be read because it is another owner's, or when neither
    /// can be used.
    pub fn load(&self) -> Result<Option<StoredState>, StorageError> {
        let [a, b] = self.load_copies();
        choose(&self.dir, a, b)
    }

    /// The refusal for a directory whose log exists but whose hard state
    /// is missing in both copies.
    pub fn both_missing(&self) -> StorageError {
        lost(&self.dir, Ok(None), Ok(None))
    }

    /// Replaces both copies with `state`, durably.
    pub fn store(&self, state: StoredState) -> Result<(), StorageError> {
        let bytes = encode(self.identity, state);
        for name in FILES {
            replace_file(&self.dir, name, &bytes)?;
        }
        Ok(())
    }

    fn load_copy(&self, path: &Path) -> Copy {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(path)(e)),
        };
        let damaged = |offset: u64, reason: String| StorageError::BadHeader {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        match check_sealed(path, MAGIC, self.identity, &bytes, FILE_BYTES) {
            Ok(()) => {}
            Err(Fault::Damaged { offset, reason }) => return Err(damaged(offset, reason)),
            Err(Fault::Refused(error)) => return Err(error),
        }
        if bytes.len() != FILE_BYTES {
            let reason = format!("{} bytes, expected {FILE_BYTES}", bytes.len());
            return Err(damaged(FILE_BYTES as u64, reason));
        }
        decode_body(&bytes)
            .map(Some)
            .map_err(|(offset, reason)| damaged(offset, reason))
    }
}

/// The state to recover from the two copies (see the module's rules).
fn choose(dir: &Path, a: Copy, b: Copy) -> Result<Option<StoredState>, StorageError> {
    let refused = |copy: &Copy| matches!(copy, Err(StorageError::Foreign { .. }));
    if refused(&a) {
        return a;
    }
    if refused(&b) {
        return b;
    }
    match (a, b) {
        (Ok(Some(a)), Ok(Some(b))) => Ok(Some(newer(a, b))),
        (Ok(Some(intact)), Err(error)) | (Err(error), Ok(Some(intact))) => {
            tracing::warn!(%error, "one copy of the hard state is damaged; using the other");
            Ok(Some(intact))
        }
        (Ok(None), Ok(None)) => Ok(None),
        (Ok(only @ Some(_)), Ok(None)) | (Ok(None), Ok(only @ Some(_))) => Ok(only),
        (first, second) => Err(lost(dir, first, second)),
    }
}

/// The refusal for two copies of which neither can be used.
fn lost(dir: &Path, first: Copy, second: Copy) -> StorageError {
    StorageError::HardStateLost {
        first: Box::new(unusable(first, &dir.join(FILES[0]))),
        second: Box::new(unusable(second, &dir.join(FILES[1]))),
    }
}

/// Why a copy that `choose` could not use is unusable.
fn unusable(copy: Copy, path: &Path) -> StorageError {
    match copy {
        Err(error) => error,
        Ok(_) => StorageError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "missing"),
        },
    }
}

/// The later of two states: the higher term, or at the same term the one
/// with a vote (a vote is only ever added within a term), or the one that
/// says repairing (see the module's comment).
fn newer(a: StoredState, b: StoredState) -> StoredState {
    let rank = |s: StoredState| (s.state.term, s.state.voted_for.is_some(), s.repairing);
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn encode(identity: Identity, stored: StoredState) -> Vec<u8> {
    let StoredState { state, repairing } = stored;
    let mut out = Vec::with_capacity(FILE_BYTES);
    encode_header(MAGIC, identity, &mut out);
    out.extend_from_slice(&state.term.0.to_le_bytes());
    out.push(u8::from(state.voted_for.is_some()));
    out.extend_from_slice(&state.voted_for.map_or(0, |id| id.0).to_le_bytes());
    out.push(u8::from(repairing));
    seal(&mut out);
    out
}

/// Decodes the fields of an intact file; on failure, the offset and what
/// is wrong.
fn decode_body(bytes: &[u8]) -> Result<StoredState, (u64, String)> {
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let term = Term(read_u64(HEADER_BYTES));
    let voted_for = match bytes[HEADER_BYTES + 8] {
        0 => None,
        1 => Some(NodeId(read_u64(HEADER_BYTES + 9))),
        flag => return Err(((HEADER_BYTES + 8) as u64, format!("vote flag {flag}"))),
    };
    let repairing = match bytes[HEADER_BYTES + 17] {
        0 => false,
        1 => true,
        flag => return Err(((HEADER_BYTES + 17) as u64, format!("repair flag {flag}"))),
    };
    Ok(StoredState {
        state: HardState { term, voted_for },
        repairing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Identity = Identity {
        cluster_id: 1,
        node_id: 3,
    };

    fn state(term: u64, vote: Option<u64>) -> StoredState {
        StoredState {
            state: HardState {
                term: Term(term),
                voted_for: vote.map(NodeId),
            },
            repairing: false,
        }
    }

    fn repairing(stored: StoredState) -> StoredState {
        StoredState {
            repairing: true,
            ..stored
        }
    }

    #[test]
    fn state_survives_a_reopen_and_starts_absent() {
        let dir = tempfile::tempdir().unwrap();
        let file = HardStateFile::new(dir.path(), ME);
        assert_eq!(file.load().unwrap(), None);
        file.store(state(5, Some(2))).unwrap();
        file.store(state(6, None)).unwrap();
        let reopened = HardStateFile::new(dir.path(), ME);
        assert_eq!(reopened.load().unwrap(), Some(state(6, None)));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn any_single_flipped_bit_is_survived_and_a_second_copy_damaged_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = HardStateFile::new(dir.path(), ME);
        file.store(state(5, Some(1))).unwrap();
        let [a, b] = FILES.map(|name| dir.path().join(name));
        let intact = fs::read(&a).unwrap();
        for bit in 0..FILE_BYTES * 8 {
            let mut damaged = intact.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            fs::write(&a, &damaged).unwrap();
            assert_eq!(file.load().unwrap(), Some(state(5, Some(1))), "bit {bit}");
            fs::write(&b, &damaged).unwrap();
            let err = file.load().unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, StorageError::HardStateLost { .. })
                    && text.contains(FILES[0])
                    && text.contains(FILES[1]),
                "bit {bit}: {text}"
            );
            fs::write(&b, &intact).unwrap();
        }
    }

    #[test]
    fn of_two_intact_copies_the_newer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = HardStateFile::new(dir.path(), ME);
        let older = encode(ME, state(4, Some(2)));
        for (a, b, expected) in [
            (state(5, None), state(4, Some(2)), state(5, None)),
            (state(4, None), state(4, Some(2)), state(4, Some(2))),
            // A write of the flag cut short, setting it or clearing it.
            (
                repairing(state(4, None)),
                state(4, None),
                repairing(state(4, None)),
            ),
            (
                state(4, None),
                repairing(state(4, None)),
                repairing(state(4, None)),
            ),
            // A store after the flag was cleared.
            (state(5, None), repairing(state(4, None)), state(5, None)),
        ] {
            fs::write(dir.path().join(FILES[0]), encode(ME, a)).unwrap();
            fs::write(dir.path().join(FILES[1]), encode(ME, b)).unwrap();
            assert_eq!(file.load().unwrap(), Some(expected));
        }
        fs::remove_file(dir.path().join(FILES[0])).unwrap();
        fs::write(dir.path().join(FILES[1]), older).unwrap();
        assert_eq!(file.load().unwrap(), Some(state(4, Some(2))));
    }

    #[test]
    fn a_foreign_copy_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        HardStateFile::new(dir.path(), ME)
            .store(state(5, None))
            .unwrap();
        let other = Identity {
            cluster_id: 2,
            ..ME
        };
        let err = HardStateFile::new(dir.path(), other).load().unwrap_err();
        assert!(matches!(err, StorageError::Foreign { .. }), "{err}");
    }
}
