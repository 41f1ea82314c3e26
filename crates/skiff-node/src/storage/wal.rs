//! The write-ahead log: entries in segment files that are only appended to.
//!
//! # Files
//!
//! Segments are named `00000000000000000001.wal`, `...0002.wal` and so on,
//! numbered from 1 without gaps. Each starts with the common header (magic
//! `SKIFFWAL`), its own sequence number and a CRC32C of those bytes, then
//! records (see `record`). When a segment passes the size limit it is
//! synced and sealed, and a new one is started.
//!
//! # Truncation
//!
//! `LogTruncate` appends a truncate record instead of cutting files. The
//! files are then strictly append-only: a crash can only lose a suffix of
//! what was written since the last sync, never damage bytes that were
//! already durable, and a truncation costs one small record, however long
//! the log. Cutting the segment in place would overwrite durable records
//! with new ones before the next sync, so a crash could leave old and new
//! records interleaved. The cost is that removed entries stay on disk and
//! are read (then dropped) again at recovery; truncations remove only
//! uncommitted entries after a change of leader, so this is little.
//!
//! # Recovery
//!
//! Records are replayed in order. A record cut short, or a damaged record
//! with nothing but zeros after it in the last segment, is
//! the trace of a crash during a write that was never synced, so never
//! acknowledged: it is cut off with a warning. Any other damage, a gap in
//! the indices, a missing segment or a file of another node or cluster stops
//! the recovery with an error naming the file and the offset.
//!
//! A process crash (even SIGKILL) loses nothing that was written, since the
//! page cache survives it. On power loss the kernel may have persisted the
//! pages of an unsynced write out of order, leaving a damaged record with
//! valid ones after it; those records were never acknowledged, but recovery
//! cannot tell them from real damage, so it refuses to start rather than guess.

use super::error::StorageError;
use super::header::{check_header, encode_header, Identity, HEADER_BYTES};
use super::record::{self, Decoded, Record};
use super::sync_dir;
use bytes::Bytes;
use skiff_core::{Entry, LogIndex};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKIFFWAL";
const SEGMENT_EXTENSION: &str = "wal";
/// Common header, sequence number, CRC32C.
pub const SEGMENT_HEADER_BYTES: usize = HEADER_BYTES + 8 + 4;

/// The segment being appended to.
#[derive(Debug)]
struct Segment {
    file: File,
    path: PathBuf,
    sequence: u64,
    /// Bytes written to the file, header included.
    bytes: u64,
}

/// An open write-ahead log. Appends and truncations are buffered until
/// [`Wal::flush`], which writes them and syncs once.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    identity: Identity,
    segment_bytes_max: u64,
    segment: Segment,
    /// Encoded records not yet written to the segment.
    pending: Vec<u8>,
    /// The last index of the log, pending records included.
    last_index: LogIndex,
}

/// How a segment's replay ended.
enum SegmentEnd {
    /// Every byte was a valid record; the segment is `bytes` long.
    Clean { bytes: u64 },
    /// A torn record starts at `offset`; what follows must be cut off.
    Torn { offset: u64, reason: String },
    /// The segment's own header was never completely written.
    TornHeader,
}

impl Wal {
    /// Opens the log in `dir`, recovering its entries, or starts an empty one.
    pub fn open(
        dir: &Path,
        identity: Identity,
        segment_bytes_max: u64,
    ) -> Result<(Wal, Vec<Entry>), StorageError> {
        let mut sequences = list_segments(dir)?;
        if let Some(missing) = first_missing(&sequences) {
            return Err(StorageError::MissingSegment {
                path: segment_path(dir, missing),
            });
        }
        let mut entries = Vec::new();
        let mut last_bytes = 0;
        for (position, &sequence) in sequences.clone().iter().enumerate() {
            let is_last = position + 1 == sequences.len();
            let path = segment_path(dir, sequence);
            let bytes = Bytes::from(fs::read(&path).map_err(StorageError::io(&path))?);
            match replay_segment(&path, identity, sequence, &bytes, is_last, &mut entries)? {
                SegmentEnd::Clean { bytes } => last_bytes = bytes,
                SegmentEnd::Torn { offset, reason } => {
                    cut_torn_tail(&path, offset, bytes.len() as u64, &reason)?;
                    last_bytes = offset;
                }
                SegmentEnd::TornHeader => {
                    tracing::warn!(path = %path.display(), "removing a segment whose header was never completely written");
                    fs::remove_file(&path).map_err(StorageError::io(&path))?;
                    sync_dir(dir)?;
                    // The previous segment, if any, was sealed and replayed
                    // clean, so `last_bytes` already holds its length.
                    sequences.pop();
                }
            }
        }
        let segment = match sequences.last() {
            Some(&sequence) => open_for_append(dir, sequence, last_bytes)?,
            None => create_segment(dir, identity, 1)?,
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            identity,
            segment_bytes_max,
            segment,
            pending: Vec::new(),
            last_index: LogIndex(entries.len() as u64),
        };
        Ok((wal, entries))
    }

    /// Buffers `entry` at `index`, which must be one past the last index.
    pub fn append(&mut self, index: LogIndex, entry: &Entry) -> Result<(), StorageError> {
        assert_eq!(
            index,
            self.last_index.next(),
            "LogStore must continue the log (the machine's contract)"
        );
        self.maybe_roll_segment()?;
        record::encode_entry(index, entry, &mut self.pending);
        self.last_index = index;
        Ok(())
    }

    /// The index of the last entry appended, flushed or not.
    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// Buffers the removal of the entries at `from` and after.
    pub fn truncate(&mut self, from: LogIndex) -> Result<(), StorageError> {
        assert!(
            from.0 >= 1 && from <= self.last_index.next(),
            "LogTruncate from {from} outside a log ending at {}",
            self.last_index
        );
        self.maybe_roll_segment()?;
        record::encode_truncate(from, &mut self.pending);
        self.last_index = from.prev();
        Ok(())
    }

    /// Whether there are buffered records that [`Wal::flush`] would write.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the buffered records with one write and one `fdatasync`.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let segment = &mut self.segment;
        segment
            .file
            .write_all(&self.pending)
            .and_then(|()| segment.file.sync_data())
            .map_err(StorageError::io(&segment.path))?;
        segment.bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Seals the current segment and starts the next one when the current
    /// one is full. A segment always takes at least one record, so a record
    /// larger than the limit still finds a home.
    fn maybe_roll_segment(&mut self) -> Result<(), StorageError> {
        let size = self.segment.bytes + self.pending.len() as u64;
        if size < self.segment_bytes_max || size <= SEGMENT_HEADER_BYTES as u64 {
            return Ok(());
        }
        self.flush()?;
        let next = self.segment.sequence + 1;
        self.segment = create_segment(&self.dir, self.identity, next)?;
        Ok(())
    }
}

fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.{SEGMENT_EXTENSION}"))
}

/// The sequence numbers of the segments in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut sequences = Vec::new();
    for item in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let name = item.map_err(StorageError::io(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_EXTENSION}")) {
            if let Ok(sequence) = stem.parse::<u64>() {
                sequences.push(sequence);
            }
        }
    }
    sequences.sort_unstable();
    Ok(sequences)
}

/// The first sequence number missing from a run that must be `1..=n`.
fn first_missing(sequences: &[u64]) -> Option<u64> {
    (1..)
        .zip(sequences)
        .find(|(expected, found)| *expected != **found)
        .map(|(expected, _)| expected)
}

fn replay_segment(
    path: &Path,
    identity: Identity,
    sequence: u64,
    bytes: &Bytes,
    is_last: bool,
    entries: &mut Vec<Entry>,
) -> Result<SegmentEnd, StorageError> {
    if bytes.len() < SEGMENT_HEADER_BYTES && is_last {
        return Ok(SegmentEnd::TornHeader);
    }
    check_segment_header(path, identity, sequence, bytes)?;
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset < bytes.len() {
        let rest = bytes.slice(offset..);
        let corrupt = |reason: String| StorageError::CorruptRecord {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        match record::decode(&rest) {
            Decoded::Record { record, bytes } => {
                apply_record(record, entries).map_err(corrupt)?;
                offset += bytes;
            }
            Decoded::Incomplete if is_last => {
                let reason = format!("record cut short after {} bytes", rest.len());
                return Ok(SegmentEnd::Torn {
                    offset: offset as u64,
                    reason,
                });
            }
            Decoded::Incomplete => {
                return Err(corrupt("record cut short in a sealed segment".into()))
            }
            Decoded::Invalid { reason, end } => {
                // Only zeros (or nothing) after it: nothing was written
                // after this record, so it is the torn last write.
                let zeros_after = |from: usize| {
                    rest.get(from..)
                        .is_some_and(|after| after.iter().all(|b| *b == 0))
                };
                let is_tail = zeros_after(end) || zeros_after(0);
                if is_last && is_tail {
                    return Ok(SegmentEnd::Torn {
                        offset: offset as u64,
                        reason,
                    });
                }
                return Err(corrupt(reason));
            }
        }
    }
    Ok(SegmentEnd::Clean {
        bytes: offset as u64,
    })
}

fn check_segment_header(
    path: &Path,
    identity: Identity,
    sequence: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let bad = |offset: usize, reason: String| StorageError::BadHeader {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(bad(
            0,
            format!("segment is only {} bytes long", bytes.len()),
        ));
    }
    check_header(path, MAGIC, identity, bytes)?;
    let crc_at = SEGMENT_HEADER_BYTES - 4;
    let stored = u32::from_le_bytes(bytes[crc_at..SEGMENT_HEADER_BYTES].try_into().expect("4"));
    if crc32c::crc32c(&bytes[..crc_at]) != stored {
        return Err(bad(crc_at, "checksum mismatch".into()));
    }
    let found = u64::from_le_bytes(bytes[HEADER_BYTES..crc_at].try_into().expect("8"));
    if found != sequence {
        return Err(bad(
            HEADER_BYTES,
            format!("sequence number {found}, expected {sequence}"),
        ));
    }
    Ok(())
}

/// Replays one record onto `entries`, or says why it cannot follow them.
fn apply_record(record: Record, entries: &mut Vec<Entry>) -> Result<(), String> {
    let next = entries.len() as u64 + 1;
    match record {
        Record::Entry { index, entry } => {
            if index.0 != next {
                return Err(format!("entry index {index} where {next} was expected"));
            }
            if let Some(previous) = entries.last().filter(|p| p.term > entry.term) {
                return Err(format!("term {} after term {}", entry.term, previous.term));
            }
            entries.push(entry);
        }
        Record::Truncate { from } => {
            if from.0 == 0 || from.0 > next {
                return Err(format!(
                    "truncation from {from} of a log ending at {}",
                    next - 1
                ));
            }
            entries.truncate((from.0 - 1) as usize);
        }
    }
    Ok(())
}

fn cut_torn_tail(path: &Path, offset: u64, length: u64, reason: &str) -> Result<(), StorageError> {
    tracing::warn!(
        path = %path.display(),
        offset,
        discarded_bytes = length - offset,
        reason,
        "cutting off a torn record at the end of the log (a write interrupted by a crash)"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io(path))?;
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(StorageError::io(path))
}

fn open_for_append(dir: &Path, sequence: u64, bytes: u64) -> Result<Segment, StorageError> {
    let path = segment_path(dir, sequence);
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(StorageError::io(&path))?;
    Ok(Segment {
        file,
        path,
        sequence,
        bytes,
    })
}

/// Creates segment `sequence` with its header, durably (file and directory).
fn create_segment(dir: &Path, identity: Identity, sequence: u64) -> Result<Segment, StorageError> {
    let path = segment_path(dir, sequence);
    let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES);
    encode_header(MAGIC, identity, &mut header);
    header.extend_from_slice(&sequence.to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(StorageError::io(&path))?;
    file.write_all(&header)
        .and_then(|()| file.sync_all())
        .map_err(StorageError::io(&path))?;
    sync_dir(dir)?;
    Ok(Segment {
        file,
        path,
        sequence,
        bytes: SEGMENT_HEADER_BYTES as u64,
    })
}
