//! The write-ahead log: entries in segment files that are only appended to.
//!
//! # Files
//!
//! Segments are named `00000000000000000001.wal`, `...0002.wal` and so on,
//! numbered from 1 without gaps. Each starts with the common header (magic
//! `SKIFFWAL`), its own sequence number, the length it was created with and
//! a CRC32C of those bytes, then two sync slots (see `sync_slot`), then
//! records (see `record`), then zeros: a
//! segment is created at its full length (the size limit), so a segment
//! cut short is told by its length, and the log ends where the zeros start.
//! When a segment passes the size limit it is synced and sealed, and a new
//! one is started: created and synced first, then named in the manifest
//! (see `manifest`), then written to.
//!
//! Every sync writes a sync record at the end of its batch, in the same
//! write, just before the `fdatasync`: the last sync record on disk marks
//! how far the log was acknowledged, at the cost of one small record per
//! sync and no extra system call. A sealed segment ends with one.
//!
//! Every sync also writes the segment's next sync slot, alternating
//! between the two at the start of the file, just before the same
//! `fdatasync`: the slot records the sync's counter, the log's last index
//! and where the synced records end. It costs one more `pwrite` and no
//! extra sync. Damage to the end of the records, where the sync records
//! are, does not reach the slots, so the slots tell recovery how far the
//! segment was synced however its end is damaged.
//!
//! # Compaction
//!
//! Entries a snapshot covers may go: [`Wal::compact`] deletes the sealed
//! segments whose entries all lie at or below the snapshot's index, after
//! storing a manifest that no longer names them (recovery removes segments
//! before the manifest's first, which a crash in between leaves).
//! [`Wal::reset`] discards the whole log for an installed snapshot. Every
//! record names its index, so the log read back starts wherever its first
//! record says; whether that start is right (at most one past the
//! snapshot's index) is judged by the storage, which knows the snapshot.
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
//! [`replay`] reads the log without changing anything; [`Wal::open`] then
//! makes the few changes a crash calls for. Only what was written after the
//! last completed sync can be torn by a crash, so:
//!
//! * The valid sync slot with the higher counter says where the segment's
//!   synced records end and the log's last index there. Up to that end the
//!   records must be intact, end exactly there and bring the log to that
//!   index; anything else is damage (its `synced_through` is the slot's
//!   index). One slot damaged while the other is valid is not: the other
//!   is one sync older, a lower bound, and the fault is noted (a crash
//!   while a slot is written leaves just this). Both slots damaged, or
//!   both empty in a sealed segment, where the segment holds records, is
//!   damage.
//! * A bad record (checksum, impossible length, cut short) in the last
//!   segment, after the end its slot names, with no intact sync record of
//!   that segment anywhere after it is a torn tail: never synced, so never
//!   acknowledged. It is cut off with a warning. With a damaged length the
//!   frame boundaries are lost, so the rest of the segment is searched at
//!   every offset for a valid sync record.
//! * A bad record with an intact sync record after it, or in a sealed
//!   segment; a record whose checksum holds but which does not follow the
//!   log (an index gap, a sync record for another index or segment); a sealed
//!   segment that does not end with a sync record; a segment the manifest
//!   names that is missing; a segment it does not name that holds records; a
//!   damaged or missing manifest where segments exist: all are damage
//!   ([`LogDamage`]). Recovery returns the log up to the damage and changes
//!   nothing on disk; the node then repairs the directory (see `repair`:
//!   the damaged files are moved aside, never deleted, and a fresh log of
//!   the intact prefix is written) and catches up from its peers.
//! * An empty segment one past the manifest's last is the trace of a
//!   rotation cut short, and is removed.
//! * A segment shorter than the length in its header was cut short: damage.
//!
//! So zeros written over the end of the last segment's records, its sync
//! records included, are damage, not a torn tail: the slot still names the
//! end they covered. Every loss of synced records is reported, as long as
//! the damage spares one of the two slots; zeros over both, where the
//! segment holds records, are reported too.
//!
//! A process crash (even SIGKILL) loses nothing that was written, since the
//! page cache survives it. On power loss the kernel may have persisted the
//! pages of an unsynced write out of order; if a sync record or the sync
//! slot of that write reached the disk while an earlier page of its
//! records did not (the `fdatasync` had not completed), recovery reports
//! damage, erring on the side of a repair: those records were never
//! acknowledged, but the log cannot tell.

use super::damage::LogDamage;
use super::error::StorageError;
use super::header::{check_sealed, encode_header, seal, Fault, Identity, HEADER_BYTES};
use super::manifest::{self, Manifest};
use super::record::{self, Decoded, Record};
use super::sync_dir;
use super::sync_slot::{Slots, SyncSlot, SLOTS_BYTES, SLOT_BYTES};
use bytes::Bytes;
use skiff_core::{Entry, LogIndex};
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKIFFWAL";
const SEGMENT_EXTENSION: &str = "wal";
/// Common header, sequence number, length at creation, CRC32C.
pub const SEGMENT_HEADER_BYTES: usize = HEADER_BYTES + 8 + 8 + 4;
/// Where a segment's records start: after its header and sync slots.
pub const RECORDS_START: usize = SEGMENT_HEADER_BYTES + SLOTS_BYTES;

/// The segment being appended to.
#[derive(Debug)]
struct Segment {
    file: File,
    path: PathBuf,
    sequence: u64,
    /// Where the records end (the file is longer, zeros after them), and
    /// so where the next are written.
    bytes: u64,
    /// Syncs of this segment so far: the counter of its latest sync slot.
    syncs: u64,
}

/// An open write-ahead log. Appends and truncations are buffered until
/// [`Wal::flush`], which writes them and syncs once.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    identity: Identity,
    segment_bytes_max: u64,
    /// The first segment, as the manifest names it.
    first_sequence: u64,
    segment: Segment,
    /// Encoded records not yet written to the segment.
    pending: Vec<u8>,
    /// The last index of the log, pending records included.
    last_index: LogIndex,
    /// The highest entry index each segment, the current one included,
    /// received (`None` for one without entries), oldest first: which
    /// segments a compaction may delete.
    segment_last: Vec<(u64, Option<LogIndex>)>,
}

/// What a read of the log found, before anything on disk is changed.
#[derive(Debug, Default)]
pub struct Replay {
    /// The entries recovered: the whole log, or the prefix before `damage`,
    /// from index `start` on.
    pub entries: Vec<Entry>,
    /// The index of the first entry of `entries`, known from the first
    /// record read (every record names its index). A log that was compacted
    /// or reset after a snapshot starts after 1; `None` when no segment
    /// holds a record.
    pub start: Option<LogIndex>,
    /// The highest entry index in each segment read (see
    /// [`Wal`]'s `segment_last`).
    pub segment_last: Vec<(u64, Option<LogIndex>)>,
    /// Segments before the manifest's first: left by a compaction cut
    /// short (the manifest is stored before they are deleted), to remove.
    pub compacted: Vec<PathBuf>,
    /// The manifest, when it is intact.
    pub manifest: Option<Manifest>,
    /// Where appends would continue in the last segment.
    pub last_bytes: u64,
    /// A torn write at the end of the last segment, to cut off.
    pub torn: Option<TornTail>,
    /// An empty segment past the manifest's last, left by a rotation cut
    /// short, to remove.
    pub leftover: Option<PathBuf>,
    /// Damage that no crash explains.
    pub damage: Option<LogDamage>,
    /// Segments read.
    pub segments: u64,
    /// Valid records read, sync records included.
    pub records: u64,
    /// The log's last index at the last sync record read.
    pub synced_through: Option<LogIndex>,
    /// The latest valid sync slot of the last segment read.
    pub last_slot: Option<SyncSlot>,
    /// Sync slots found damaged while the segment's other slot was valid:
    /// not damage to the log, but worth a note.
    pub slot_faults: Vec<String>,
}

impl Replay {
    /// The index of the last entry recovered; 0 when no record says.
    pub fn last_index(&self) -> LogIndex {
        match self.start {
            Some(start) => LogIndex(start.0 + self.entries.len() as u64 - 1),
            None => LogIndex(0),
        }
    }

    /// Where the next entry goes, once a record has said.
    fn next_index(&self) -> Option<u64> {
        self.start.map(|start| start.0 + self.entries.len() as u64)
    }
}

/// A write cut short by a crash at the end of the last segment.
#[derive(Clone, Debug)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Where the torn record starts; the segment is cut to this length.
    pub offset: u64,
    /// How many bytes are cut off.
    pub bytes: u64,
    /// What is wrong with the torn record.
    pub reason: String,
}

/// How a segment's replay ended.
enum SegmentEnd {
    /// Every byte was a valid record; the segment is `bytes` long.
    Clean { bytes: u64 },
    /// A write after the last sync was cut short.
    Torn(TornTail),
    /// Damage that no crash explains, at `offset`.
    Damaged {
        offset: u64,
        reason: String,
        synced_through: Option<LogIndex>,
    },
}

/// Reads the log in `dir` as recovery finds it, changing nothing.
pub fn replay(dir: &Path, identity: Identity) -> Result<Replay, StorageError> {
    let present = list_segments(dir)?;
    let highest = present.last().copied().unwrap_or(0);
    let manifest_path = manifest::path(dir);
    let mut replay = Replay::default();
    // Without an intact manifest the segments present are read anyway, to
    // return the intact prefix along with the damage.
    let (first, last, manifest_damage) = match manifest::load(dir, identity) {
        Ok(Some(manifest)) => {
            replay.manifest = Some(manifest);
            (manifest.first, manifest.last, None)
        }
        Ok(None) if present.iter().all(|&s| s == 1 && is_empty_segment(dir, s)) => (1, 0, None),
        Ok(None) => (
            1,
            highest,
            Some((
                0,
                "missing, but the directory holds log segments".to_string(),
            )),
        ),
        Err(Fault::Damaged { offset, reason }) => (1, highest, Some((offset, reason))),
        Err(Fault::Refused(error)) => return Err(error),
    };
    for sequence in first..=last {
        let path = segment_path(dir, sequence);
        if present.binary_search(&sequence).is_err() {
            let reason = format!("missing segment (segments {first} to {last} must exist)");
            replay.damage = Some(damage_at(&replay, path, 0, reason, None));
            return Ok(replay);
        }
        let bytes = Bytes::from(fs::read(&path).map_err(StorageError::io(&path))?);
        replay.segments += 1;
        replay.segment_last.push((sequence, None));
        match replay_segment(
            &path,
            identity,
            sequence,
            &bytes,
            sequence == last,
            &mut replay,
        )? {
            SegmentEnd::Clean { bytes } => replay.last_bytes = bytes,
            SegmentEnd::Torn(torn) => {
                replay.last_bytes = torn.offset;
                replay.torn = Some(torn);
            }
            SegmentEnd::Damaged {
                offset,
                reason,
                synced_through,
            } => {
                replay.damage = Some(damage_at(&replay, path, offset, reason, synced_through));
                return Ok(replay);
            }
        }
    }
    for &sequence in present.iter().filter(|s| !(first..=last).contains(*s)) {
        let path = segment_path(dir, sequence);
        if sequence < first && replay.manifest.is_some() {
            replay.compacted.push(path);
        } else if sequence == last + 1 && is_empty_segment(dir, sequence) {
            replay.leftover = Some(path);
        } else {
            let reason = format!("segment not named by the manifest (segments {first} to {last})");
            replay.damage = Some(damage_at(&replay, path, 0, reason, None));
            return Ok(replay);
        }
    }
    if let Some((offset, reason)) = manifest_damage {
        replay.damage = Some(damage_at(&replay, manifest_path, offset, reason, None));
    }
    Ok(replay)
}

fn damage_at(
    replay: &Replay,
    path: PathBuf,
    offset: u64,
    reason: String,
    synced_through: Option<LogIndex>,
) -> LogDamage {
    LogDamage {
        path,
        offset,
        reason,
        intact_through: replay.last_index(),
        synced_through,
    }
}

impl Wal {
    /// Opens the log in `dir` for appending after a [`replay`] that found
    /// no damage: cuts off its torn tail, removes a leftover empty segment
    /// and segments a compaction left, and starts segment 1 and the
    /// manifest in a new directory. A log without records continues after
    /// `after` (the snapshot's index).
    pub fn open(
        dir: &Path,
        identity: Identity,
        segment_bytes_max: u64,
        replay: &Replay,
        after: LogIndex,
    ) -> Result<Wal, StorageError> {
        assert!(replay.damage.is_none(), "a damaged log is not opened");
        if let Some(torn) = &replay.torn {
            cut_torn_tail(torn)?;
        }
        for fault in &replay.slot_faults {
            tracing::warn!(
                fault,
                "a sync slot is damaged; the other slot of its segment is intact"
            );
        }
        if !replay.compacted.is_empty() {
            tracing::info!(
                segments = replay.compacted.len(),
                "removing log segments a compaction left behind"
            );
            for path in &replay.compacted {
                fs::remove_file(path).map_err(StorageError::io(path))?;
            }
            sync_dir(dir)?;
        }
        if let Some(leftover) = &replay.leftover {
            tracing::warn!(path = %leftover.display(), "removing an empty segment left by a rotation cut short");
            fs::remove_file(leftover).map_err(StorageError::io(leftover))?;
            sync_dir(dir)?;
        }
        let (first_sequence, segment) = match replay.manifest {
            Some(manifest) => (
                manifest.first,
                open_for_append(
                    dir,
                    manifest.last,
                    replay.last_bytes,
                    replay.last_slot.map_or(0, |slot| slot.counter),
                )?,
            ),
            None => {
                let segment = create_segment(dir, identity, 1, segment_bytes_max)?;
                manifest::store(dir, identity, Manifest { first: 1, last: 1 })?;
                (1, segment)
            }
        };
        let mut segment_last = replay.segment_last.clone();
        if segment_last.is_empty() {
            segment_last.push((segment.sequence, None));
        }
        Ok(Wal {
            dir: dir.to_path_buf(),
            identity,
            segment_bytes_max,
            first_sequence,
            segment,
            pending: Vec::new(),
            last_index: replay.start.map_or(after, |_| replay.last_index()),
            segment_last,
        })
    }

    /// Deletes the segments before the current one whose entries are all
    /// at or below `through` (a snapshot covers them): the manifest is
    /// stored without them first, durably, then the files are removed (a
    /// crash in between leaves files before the manifest's first, which
    /// recovery removes). Returns how many segments went.
    pub fn compact(&mut self, through: LogIndex) -> Result<usize, StorageError> {
        let current = self.segment.sequence;
        let covered = self
            .segment_last
            .iter()
            .take_while(|(sequence, last)| *sequence < current && last.is_none_or(|l| l <= through))
            .count();
        if covered == 0 {
            return Ok(0);
        }
        let removed: Vec<u64> = self.segment_last.drain(..covered).map(|(s, _)| s).collect();
        self.first_sequence = self.segment_last.first().map_or(current, |(s, _)| *s);
        let manifest = Manifest {
            first: self.first_sequence,
            last: current,
        };
        manifest::store(&self.dir, self.identity, manifest)?;
        for sequence in &removed {
            let path = segment_path(&self.dir, *sequence);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StorageError::io(&path)(e))
                }
                _ => {}
            }
        }
        Ok(removed.len())
    }

    /// Discards the whole log, durably, so that it continues after `after`
    /// (a snapshot installed in its place): records not yet written are
    /// dropped, a new segment is started and named alone in the manifest,
    /// and the old segments are deleted.
    pub fn reset(&mut self, after: LogIndex) -> Result<(), StorageError> {
        self.pending.clear();
        let next = self.segment.sequence + 1;
        let segment = create_segment(&self.dir, self.identity, next, self.segment_bytes_max)?;
        let manifest = Manifest {
            first: next,
            last: next,
        };
        manifest::store(&self.dir, self.identity, manifest)?;
        for (sequence, _) in self.segment_last.drain(..) {
            let path = segment_path(&self.dir, sequence);
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
        }
        self.segment = segment;
        self.first_sequence = next;
        self.segment_last = vec![(next, None)];
        self.last_index = after;
        Ok(())
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
        if let Some((_, last)) = self.segment_last.last_mut() {
            *last = Some(last.map_or(index, |l| l.max(index)));
        }
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

    /// Writes the buffered records and a sync record after them with one
    /// write, then the segment's next sync slot, and syncs once.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let segment = &mut self.segment;
        record::encode_sync(self.last_index, segment.sequence, &mut self.pending);
        let end = segment.bytes + self.pending.len() as u64;
        let slot = SyncSlot {
            counter: segment.syncs + 1,
            last_index: self.last_index.0,
            end,
        };
        let slot_at = (SEGMENT_HEADER_BYTES + slot.position() * SLOT_BYTES) as u64;
        // The records first, then the slot that covers them: the one
        // `fdatasync` makes both durable.
        segment
            .file
            .write_all_at(&self.pending, segment.bytes)
            .and_then(|()| segment.file.write_all_at(&slot.encode(), slot_at))
            .and_then(|()| segment.file.sync_data())
            .map_err(StorageError::io(&segment.path))?;
        segment.bytes = end;
        segment.syncs = slot.counter;
        self.pending.clear();
        Ok(())
    }

    /// Seals the current segment and starts the next one when the current
    /// one is full. A segment always takes at least one record, so a record
    /// larger than the limit still finds a home.
    fn maybe_roll_segment(&mut self) -> Result<(), StorageError> {
        let size = self.segment.bytes + self.pending.len() as u64;
        if size < self.segment_bytes_max || size <= RECORDS_START as u64 {
            return Ok(());
        }
        self.flush()?;
        let next = self.segment.sequence + 1;
        let segment = create_segment(&self.dir, self.identity, next, self.segment_bytes_max)?;
        let manifest = Manifest {
            first: self.first_sequence,
            last: next,
        };
        manifest::store(&self.dir, self.identity, manifest)?;
        self.segment = segment;
        self.segment_last.push((next, None));
        Ok(())
    }
}

/// The path of segment `sequence` in `dir`.
pub fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.{SEGMENT_EXTENSION}"))
}

/// The sequence numbers of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
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

/// Whether segment `sequence` holds no record and no sync slot (at most a
/// header).
fn is_empty_segment(dir: &Path, sequence: u64) -> bool {
    fs::read(segment_path(dir, sequence))
        .is_ok_and(|bytes| bytes.get(SEGMENT_HEADER_BYTES..).is_none_or(all_zeros))
}

fn all_zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

fn replay_segment(
    path: &Path,
    identity: Identity,
    sequence: u64,
    bytes: &Bytes,
    is_last: bool,
    replay: &mut Replay,
) -> Result<SegmentEnd, StorageError> {
    let damaged = |offset: usize, reason: String| SegmentEnd::Damaged {
        offset: offset as u64,
        reason,
        synced_through: None,
    };
    match check_sealed(path, MAGIC, identity, bytes, SEGMENT_HEADER_BYTES) {
        Ok(()) => {}
        Err(Fault::Damaged { offset, reason }) => {
            return Ok(damaged(
                offset as usize,
                format!("segment header: {reason}"),
            ))
        }
        Err(Fault::Refused(error)) => return Err(error),
    }
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let found = read_u64(HEADER_BYTES);
    if found != sequence {
        let reason = format!("sequence number {found} in the header, expected {sequence}");
        return Ok(damaged(HEADER_BYTES, reason));
    }
    let created = read_u64(HEADER_BYTES + 8);
    if (bytes.len() as u64) < created {
        let reason = format!("segment cut short: created {created} bytes long");
        return Ok(damaged(bytes.len(), reason));
    }
    let slots = Slots::decode(&bytes[SEGMENT_HEADER_BYTES..RECORDS_START]);
    let slot = slots.latest();
    let holds_records = !all_zeros(&bytes[RECORDS_START..]);
    if slot.is_none() && holds_records && !(is_last && slots.are_empty()) {
        // A sealed segment was synced, so it has a slot; both slots of the
        // last segment are empty only after a crash before its first sync
        // completed (its records then follow the rules of a torn tail).
        let reason = if slots.are_empty() {
            "both sync slots are empty, but the sealed segment holds records"
        } else {
            "both sync slots are damaged, and the segment holds records"
        };
        return Ok(damaged(SEGMENT_HEADER_BYTES, reason.to_string()));
    }
    if let Some(fault) = slot.and_then(|_| slots.fault()) {
        replay
            .slot_faults
            .push(format!("{}: {fault}", path.display()));
    }
    replay.last_slot = slot;
    let synced_end = slot.map_or(RECORDS_START, |slot| slot.end as usize);
    if !(RECORDS_START..=bytes.len()).contains(&synced_end) {
        let reason =
            format!("sync slot names an end of records at {synced_end}, outside the segment");
        return Ok(damaged(SEGMENT_HEADER_BYTES, reason));
    }
    // Damage before the synced end may have lost acknowledged entries.
    let slot_damage = |offset: usize, problem: String| SegmentEnd::Damaged {
        offset: offset as u64,
        reason: format!("{problem} (the sync slot ends the synced records at offset {synced_end})"),
        synced_through: slot.map(|slot| LogIndex(slot.last_index)),
    };
    let mut offset = RECORDS_START;
    let mut ends_with_sync = false;
    let mut reached_synced_end = slot.is_none();
    while offset < bytes.len() {
        if !reached_synced_end && offset >= synced_end {
            if let Err(problem) = check_synced_end(offset, slot, replay) {
                return Ok(slot_damage(offset, problem));
            }
            reached_synced_end = true;
        }
        let rest = bytes.slice(offset..);
        let problem = match record::decode(&rest) {
            Decoded::Record { record, bytes } => {
                ends_with_sync = matches!(record, Record::Sync { .. });
                if let Err(reason) = apply_record(record, sequence, replay) {
                    return Ok(if offset < synced_end {
                        slot_damage(offset, reason)
                    } else {
                        damaged(offset, reason)
                    });
                }
                replay.records += 1;
                offset += bytes;
                continue;
            }
            // A record never starts with a zero length: the zeros the
            // segment was created with.
            _ if all_zeros(&rest) => break,
            Decoded::Incomplete => format!("record cut short after {} bytes", rest.len()),
            Decoded::Invalid { reason } => reason,
        };
        if offset < synced_end {
            return Ok(slot_damage(offset, problem));
        }
        let later_sync = record::resync(bytes, offset + 1)
            .filter_map(|(_, record)| match record {
                Record::Sync {
                    last_index,
                    sequence: of,
                } if of == sequence => Some(last_index),
                _ => None,
            })
            .last();
        return Ok(match later_sync {
            None if is_last => SegmentEnd::Torn(TornTail {
                path: path.to_path_buf(),
                offset: offset as u64,
                bytes: rest
                    .iter()
                    .rposition(|b| *b != 0)
                    .map_or(0, |last| last as u64 + 1),
                reason: problem,
            }),
            None => damaged(offset, format!("{problem}, in a sealed segment")),
            Some(_) => SegmentEnd::Damaged {
                offset: offset as u64,
                reason: format!("{problem}, before an intact sync record"),
                synced_through: later_sync,
            },
        });
    }
    if !reached_synced_end {
        let problem = match check_synced_end(offset, slot, replay) {
            Ok(()) => None,
            Err(_) if offset < synced_end => Some("zeros where synced records were".to_string()),
            Err(problem) => Some(problem),
        };
        if let Some(problem) = problem {
            return Ok(slot_damage(offset, problem));
        }
    }
    if !is_last && !ends_with_sync {
        let reason = "sealed segment does not end with a sync record (cut short?)".to_string();
        return Ok(damaged(offset, reason));
    }
    Ok(SegmentEnd::Clean {
        bytes: offset as u64,
    })
}

/// Checks that the records read so far end at `offset` exactly where the
/// sync slot `slot` says the synced ones end, with the log at its index.
fn check_synced_end(offset: usize, slot: Option<SyncSlot>, replay: &Replay) -> Result<(), String> {
    let Some(slot) = slot else { return Ok(()) };
    if offset as u64 != slot.end {
        return Err(format!(
            "a record ends at offset {offset}, not where sync {} ended them",
            slot.counter
        ));
    }
    let last = replay.last_index().0;
    if last != slot.last_index {
        return Err(format!(
            "the log ends at index {last}, but sync {} synced index {}",
            slot.counter, slot.last_index
        ));
    }
    Ok(())
}

/// Replays one record of segment `sequence`, or says why it cannot follow
/// what was replayed before it.
fn apply_record(record: Record, sequence: u64, replay: &mut Replay) -> Result<(), String> {
    // The first record read says where the log starts (after a compaction
    // or a reset, past 1); whether that start is right is for the caller,
    // who knows the snapshot, to judge.
    let next = match (replay.next_index(), &record) {
        (Some(next), _) => next,
        (None, Record::Entry { index, .. }) => index.0,
        (None, Record::Truncate { from }) => from.0,
        (None, Record::Sync { last_index, .. }) => last_index.0 + 1,
    };
    let start = replay.start.map_or(next, |start| start.0);
    replay.start = Some(LogIndex(start));
    let entries = &mut replay.entries;
    match record {
        Record::Entry { index, entry } => {
            if index.0 != next || index.0 == 0 {
                return Err(format!("entry index {index} where {next} was expected"));
            }
            if let Some(previous) = entries.last().filter(|p| p.term > entry.term) {
                return Err(format!("term {} after term {}", entry.term, previous.term));
            }
            entries.push(entry);
            if let Some((_, last)) = replay.segment_last.last_mut() {
                *last = Some(last.map_or(index, |l| l.max(index)));
            }
        }
        Record::Truncate { from } => {
            if from.0 == 0 || from.0 > next {
                return Err(format!(
                    "truncation from {from} of a log ending at {}",
                    next - 1
                ));
            }
            if from.0 < start {
                // Entries of a compacted segment, replaced since.
                entries.clear();
                replay.start = Some(from);
            } else {
                entries.truncate((from.0 - start) as usize);
            }
        }
        Record::Sync {
            last_index,
            sequence: of,
        } => {
            if last_index.0 != next - 1 || of != sequence {
                return Err(format!(
                    "sync record of index {last_index} in segment {of}, \
                     but the log ends at {} in segment {sequence}",
                    next - 1
                ));
            }
            replay.synced_through = Some(last_index);
        }
    }
    Ok(())
}

fn cut_torn_tail(torn: &TornTail) -> Result<(), StorageError> {
    let path = &torn.path;
    tracing::warn!(
        path = %path.display(),
        offset = torn.offset,
        discarded_bytes = torn.bytes,
        reason = torn.reason,
        "cutting off a torn record at the end of the log (a write after the last sync, interrupted by a crash)"
    );
    // Zeroed rather than cut, so the segment keeps its length and new
    // records after a shorter batch are not followed by stale ones.
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io(path))?;
    file.seek(SeekFrom::Start(torn.offset))
        .and_then(|_| file.write_all(&vec![0; torn.bytes as usize]))
        .and_then(|()| file.sync_data())
        .map_err(StorageError::io(path))
}

fn open_for_append(
    dir: &Path,
    sequence: u64,
    bytes: u64,
    syncs: u64,
) -> Result<Segment, StorageError> {
    let path = segment_path(dir, sequence);
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(StorageError::io(&path))?;
    Ok(Segment {
        file,
        path,
        sequence,
        bytes,
        syncs,
    })
}

/// Creates segment `sequence` with its header, `length` bytes long (or
/// just its header if longer), durably (file and directory).
fn create_segment(
    dir: &Path,
    identity: Identity,
    sequence: u64,
    length: u64,
) -> Result<Segment, StorageError> {
    let path = segment_path(dir, sequence);
    let length = length.max(RECORDS_START as u64);
    let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES);
    encode_header(MAGIC, identity, &mut header);
    header.extend_from_slice(&sequence.to_le_bytes());
    header.extend_from_slice(&length.to_le_bytes());
    seal(&mut header);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(StorageError::io(&path))?;
    file.write_all(&header)
        .and_then(|()| file.set_len(length))
        .and_then(|()| file.sync_all())
        .map_err(StorageError::io(&path))?;
    sync_dir(dir)?;
    Ok(Segment {
        file,
        path,
        sequence,
        bytes: RECORDS_START as u64,
        syncs: 0,
    })
}
