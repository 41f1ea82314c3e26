//! The snapshot file: an application's state as of one log index, framed
//! and checksummed so that it is written and read as a stream, never held
//! whole in memory.
//!
//! ```text
//! header (magic "SKIFFSNP", naming the node that wrote it) | index: u64 LE | term: u64 LE | crc: u32 LE
//! frame*   = length: u32 LE | crc: u32 LE | data (length bytes)
//! crc      = CRC32C of the frame's number (u64 LE, from 0), its length, its data
//! ```
//!
//! The application's bytes are cut into frames of the configured chunk
//! size; a frame of length 0 ends the file, so a file cut at a frame
//! boundary is told from a whole one. Each frame's checksum covers its
//! number, so frames swapped or repeated are caught too.
//!
//! A snapshot a node received was written by the leader, another node of
//! the same cluster: a reader accepts the header of any node of its cluster.
//!
//! A file is written under a temporary name, synced, renamed to
//! `<index>-<term>.snap` and its directory synced: a crash leaves the whole
//! file or none.

use super::error::StorageError;
use super::header::{check_header, encode_header, seal, Identity, HEADER_BYTES};
use super::sync_dir;
use skiff_core::{LogIndex, SnapshotMeta, Term};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKIFFSNP";
/// Bytes of the sealed block the file starts with.
const HEAD_BYTES: usize = HEADER_BYTES + 8 + 8 + 4;
const FRAME_HEADER_BYTES: usize = 8;
/// The longest frame a reader accepts: a longer length is damage.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// The extension of a complete snapshot file.
pub const EXTENSION: &str = "snap";
/// The extension of a snapshot file being written.
const TEMPORARY_EXTENSION: &str = "snap.tmp";

/// A snapshot file on disk and the snapshot it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Which snapshot: its last included index and term.
    pub meta: SnapshotMeta,
    /// The file.
    pub path: PathBuf,
}

/// The name of the file holding `meta`.
pub fn file_name(meta: SnapshotMeta) -> String {
    format!("{:020}-{:020}.{EXTENSION}", meta.index.0, meta.term.0)
}

/// The snapshot a file name names, if it is one of [`file_name`]'s.
pub fn parse_file_name(name: &str) -> Option<SnapshotMeta> {
    let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
    let (index, term) = stem.split_once('-')?;
    Some(SnapshotMeta {
        index: LogIndex(index.parse().ok()?),
        term: Term(term.parse().ok()?),
    })
}

/// Whether `name` is a snapshot file being written when a crash came.
pub fn is_temporary(name: &str) -> bool {
    name.ends_with(&format!(".{TEMPORARY_EXTENSION}"))
}

/// Writes the snapshot `meta` into `dir`: `fill` writes the application's
/// bytes, which go out in frames of `chunk_bytes`. Durable when it returns
/// (file and directory synced). Runs on a blocking thread.
pub fn write(
    dir: &Path,
    identity: Identity,
    meta: SnapshotMeta,
    chunk_bytes: usize,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<StoredSnapshot, StorageError> {
    let name = file_name(meta);
    let temporary = dir.join(format!("{name}.tmp"));
    let file = File::create(&temporary).map_err(StorageError::io(&temporary))?;
    let written = (|| {
        let mut out = BufWriter::new(file);
        let mut head = Vec::with_capacity(HEAD_BYTES);
        encode_header(MAGIC, identity, &mut head);
        head.extend_from_slice(&meta.index.0.to_le_bytes());
        head.extend_from_slice(&meta.term.0.to_le_bytes());
        seal(&mut head);
        out.write_all(&head)?;
        let mut frames = FrameWriter::new(&mut out, chunk_bytes.clamp(1, FRAME_BYTES_MAX));
        fill(&mut frames)?;
        frames.finish()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&temporary);
        return Err(StorageError::io(&temporary)(source));
    }
    let path = dir.join(name);
    fs::rename(&temporary, &path).map_err(StorageError::io(&path))?;
    sync_dir(dir)?;
    Ok(StoredSnapshot { meta, path })
}

/// Cuts what is written to it into checksummed frames.
struct FrameWriter<W: Write> {
    out: W,
    buffer: Vec<u8>,
    chunk_bytes: usize,
    sequence: u64,
}

impl<W: Write> FrameWriter<W> {
    fn new(out: W, chunk_bytes: usize) -> FrameWriter<W> {
        FrameWriter {
            out,
            buffer: Vec::with_capacity(chunk_bytes),
            chunk_bytes,
            sequence: 0,
        }
    }

    fn emit(&mut self, length: usize) -> io::Result<()> {
        let length_bytes = (length as u32).to_le_bytes();
        let data = &self.buffer[..length];
        let crc = frame_crc(self.sequence, &length_bytes, data);
        self.out.write_all(&length_bytes)?;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(data)?;
        self.buffer.drain(..length);
        self.sequence += 1;
        Ok(())
    }

    /// Writes what is buffered and the empty frame that ends the file.
    fn finish(mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.emit(self.buffer.len())?;
        }
        self.emit(0)?;
        self.out.flush()
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let taken = bytes.len().min(self.chunk_bytes - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..taken]);
        if self.buffer.len() == self.chunk_bytes {
            self.emit(self.chunk_bytes)?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn frame_crc(sequence: u64, length: &[u8; 4], data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&sequence.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c_append(crc, length), data)
}

/// Why a snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFault {
    /// The file could not be read (the system's error is the source).
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is damaged, cut short, of another format or of another
    /// cluster.
    #[error("{path} at offset {offset}: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where the damage shows.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the snapshot file at `path` of cluster `cluster_id` through to
/// its end, checking every checksum, a frame at a time. Returns the
/// snapshot it holds.
pub fn verify(path: &Path, cluster_id: u64) -> Result<SnapshotMeta, SnapshotFault> {
    let (meta, mut reader) = open_unverified(path, cluster_id)?;
    let mut scratch = Vec::new();
    while reader.next_frame(&mut scratch)? {}
    let offset = reader.offset;
    let mut rest = [0u8; 1];
    match reader.file.read(&mut rest) {
        Ok(0) => Ok(meta),
        Ok(_) => Err(reader.damaged(offset, "bytes after the frame that ends the file".into())),
        Err(source) => Err(reader.io(source)),
    }
}

/// Opens the snapshot file at `path` after [`verify`]ing it: the
/// application's bytes, read a frame at a time (checked again as they are
/// read, so that a change since the verification is an error, not wrong
/// state).
pub fn open(path: &Path, cluster_id: u64) -> Result<(SnapshotMeta, SnapshotReader), SnapshotFault> {
    let meta = verify(path, cluster_id)?;
    let (_, reader) = open_unverified(path, cluster_id)?;
    Ok((meta, reader))
}

fn open_unverified(
    path: &Path,
    cluster_id: u64,
) -> Result<(SnapshotMeta, SnapshotReader), SnapshotFault> {
    let io = |source| SnapshotFault::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = SnapshotReader {
        path: path.to_path_buf(),
        file: BufReader::new(File::open(path).map_err(io)?),
        offset: 0,
        sequence: 0,
        frame: Vec::new(),
        position: 0,
        ended: false,
    };
    let mut head = [0u8; HEAD_BYTES];
    reader.read_exact_or_damage(&mut head, "header cut short")?;
    let crc_at = HEAD_BYTES - 4;
    let stored = u32::from_le_bytes(head[crc_at..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&head[..crc_at]) != stored {
        return Err(reader.damaged(crc_at as u64, "header checksum mismatch".into()));
    }
    let read_u64 = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    // Any node of this cluster may have written it: a leader's snapshot.
    let writer = Identity {
        cluster_id,
        node_id: read_u64(20),
    };
    check_header(path, MAGIC, writer, &head).map_err(|e| reader.damaged(0, e.to_string()))?;
    let meta = SnapshotMeta {
        index: LogIndex(read_u64(HEADER_BYTES)),
        term: Term(read_u64(HEADER_BYTES + 8)),
    };
    reader.offset = HEAD_BYTES as u64;
    Ok((meta, reader))
}

/// The application's bytes of a snapshot file (see [`open`]).
#[derive(Debug)]
pub struct SnapshotReader {
    path: PathBuf,
    file: BufReader<File>,
    /// Where the next frame starts.
    offset: u64,
    sequence: u64,
    frame: Vec<u8>,
    /// How much of `frame` was read.
    position: usize,
    ended: bool,
}

impl SnapshotReader {
    /// Reads the next frame into `frame`: `false` at the frame that ends
    /// the file.
    fn next_frame(&mut self, frame: &mut Vec<u8>) -> Result<bool, SnapshotFault> {
        if self.ended {
            return Ok(false);
        }
        let at = self.offset;
        let mut head = [0u8; FRAME_HEADER_BYTES];
        self.read_exact_or_damage(&mut head, "cut short: no frame ends the file")?;
        let length_bytes: [u8; 4] = head[..4].try_into().expect("4 bytes");
        let length = u32::from_le_bytes(length_bytes) as usize;
        let stored = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if length > FRAME_BYTES_MAX {
            let reason = format!("frame length {length} exceeds the limit of {FRAME_BYTES_MAX}");
            return Err(self.damaged(at, reason));
        }
        frame.resize(length, 0);
        self.read_exact_or_damage(frame, "frame cut short")?;
        if frame_crc(self.sequence, &length_bytes, frame) != stored {
            let reason = format!("frame {} checksum mismatch", self.sequence);
            return Err(self.damaged(at, reason));
        }
        self.offset += (FRAME_HEADER_BYTES + length) as u64;
        self.sequence += 1;
        self.ended = length == 0;
        Ok(!self.ended)
    }

    fn read_exact_or_damage(&mut self, out: &mut [u8], short: &str) -> Result<(), SnapshotFault> {
        match self.file.read_exact(out) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.damaged(self.offset, short.to_string()))
            }
            Err(source) => Err(self.io(source)),
        }
    }

    fn damaged(&self, offset: u64, reason: String) -> SnapshotFault {
        SnapshotFault::Damaged {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    fn io(&self, source: io::Error) -> SnapshotFault {
        SnapshotFault::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.frame.len() {
            let mut frame = std::mem::take(&mut self.frame);
            let more = self
                .next_frame(&mut frame)
                .map_err(|fault| io::Error::new(io::ErrorKind::InvalidData, fault))?;
            self.frame = frame;
            self.position = 0;
            if !more {
                return Ok(0);
            }
        }
        let taken = out.len().min(self.frame.len() - self.position);
        out[..taken].copy_from_slice(&self.frame[self.position..self.position + taken]);
        self.position += taken;
        Ok(taken)
    }
}

/// The snapshot files in `dir`, newest (highest index) first. Names that
/// are not snapshot files are skipped.
pub fn list(dir: &Path) -> Result<Vec<StoredSnapshot>, StorageError> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let name = item.map_err(StorageError::io(dir))?.file_name();
        if let Some(meta) = name.to_str().and_then(parse_file_name) {
            found.push(StoredSnapshot {
                meta,
                path: dir.join(&name),
            });
        }
    }
    found.sort_by_key(|s| std::cmp::Reverse((s.meta.index, s.meta.term)));
    Ok(found)
}

/// Removes the file at `path` if it exists.
pub fn remove(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: Identity = Identity {
        cluster_id: 9,
        node_id: 1,
    };
    const META: SnapshotMeta = SnapshotMeta {
        index: LogIndex(42),
        term: Term(3),
    };

    fn state(bytes: usize) -> Vec<u8> {
        (0..bytes).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn write_state(dir: &Path, bytes: &[u8], chunk: usize) -> StoredSnapshot {
        write(dir, LEADER, META, chunk, |out| {
            // In pieces of odd sizes, as an application writes.
            for piece in bytes.chunks(37) {
                out.write_all(piece)?;
            }
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn a_snapshot_round_trips_through_frames_for_any_node_of_the_cluster() {
        let dir = tempfile::tempdir().unwrap();
        for (bytes, chunk) in [(0, 16), (1, 16), (16, 16), (1000, 16), (1000, 4096)] {
            let written = state(bytes);
            let stored = write_state(dir.path(), &written, chunk);
            assert_eq!(stored.path, dir.path().join(file_name(META)));
            // Written by node 1, read by any node of cluster 9.
            let (meta, mut reader) = open(&stored.path, 9).unwrap();
            assert_eq!(meta, META);
            let mut read = Vec::new();
            reader.read_to_end(&mut read).unwrap();
            assert_eq!(read, written, "{bytes} bytes in chunks of {chunk}");
        }
        assert_eq!(list(dir.path()).unwrap().len(), 1);
        let fault = verify(&dir.path().join(file_name(META)), 8).unwrap_err();
        assert!(
            fault.to_string().contains("belongs to cluster 9"),
            "{fault}"
        );
    }

    #[test]
    fn any_flipped_bit_or_a_cut_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_state(dir.path(), &state(100), 32);
        let good = fs::read(&stored.path).unwrap();
        for bit in 0..good.len() * 8 {
            let mut damaged = good.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            fs::write(&stored.path, &damaged).unwrap();
            let fault = verify(&stored.path, 9).unwrap_err();
            assert!(
                matches!(fault, SnapshotFault::Damaged { .. }),
                "bit {bit}: {fault}"
            );
        }
        for cut in 0..good.len() {
            fs::write(&stored.path, &good[..cut]).unwrap();
            assert!(verify(&stored.path, 9).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        fs::write(&stored.path, &longer).unwrap();
        let fault = verify(&stored.path, 9).unwrap_err();
        assert!(fault.to_string().contains("bytes after"), "{fault}");
    }

    #[test]
    fn the_reader_checks_each_frame_again_as_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_state(dir.path(), &state(200), 32);
        let mut bytes = fs::read(&stored.path).unwrap();
        let last_data = bytes.len() - FRAME_HEADER_BYTES - 1;
        bytes[last_data] ^= 1;
        fs::write(&stored.path, &bytes).unwrap();
        // As if the file changed between `verify` and the read.
        let (_, mut reader) = open_unverified(&stored.path, 9).unwrap();
        let mut read = Vec::new();
        let error = reader.read_to_end(&mut read).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }

    #[test]
    fn names_parse_back_and_other_files_are_not_snapshots() {
        assert_eq!(parse_file_name(&file_name(META)), Some(META));
        assert_eq!(parse_file_name("00000000000000000042-3.snap.tmp"), None);
        assert_eq!(parse_file_name("notes.txt"), None);
        assert!(is_temporary(&format!("{}.tmp", file_name(META))));
    }
}
