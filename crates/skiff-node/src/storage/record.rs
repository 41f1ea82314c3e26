//! The framing of one write-ahead-log record, as pure functions over bytes.
//!
//! ```text
//! record   = length: u32 LE | crc: u32 LE | payload (length bytes)
//! crc      = CRC32C of the 4 length bytes followed by the payload
//! payload  = kind: u8 | body
//!   kind 1 (entry):    index: u64 LE | term: u64 LE | data (the rest)
//!   kind 2 (truncate): from: u64 LE   (entries at `from` and after are removed)
//!   kind 3 (sync):     last index: u64 LE | segment sequence: u64 LE
//!   kind 4 (configuration entry): as kind 1; the data is an encoded
//!                      `skiff_core::Membership`
//! ```
//!
//! Kind 1 is a [`EntryKind::Normal`] entry and kind 4 a
//! [`EntryKind::Membership`] one. Kind 4 was added with membership
//! changes, as a kind of its own rather than a field in kind 1, so that
//! the records of data directories written before it (kind 1 only) read
//! exactly as they did, as normal entries.
//!
//! A sync record ends every batch that was synced: it is written with the
//! batch, just before its `fdatasync`, so it costs no extra system call, and
//! once the sync completes everything before it is durable. It carries the
//! log's last index and its segment's sequence number, which recovery checks
//! against what it replayed.
//!
//! The checksum covers the length too, so a flipped bit in a length field is
//! caught once the record's bytes are read. The checksum is computed when a
//! record is encoded and checked again when it is decoded.

use bytes::Bytes;
use skiff_core::{Entry, EntryKind, LogIndex, Term};

/// Bytes before the payload: length and checksum.
pub const RECORD_HEADER_BYTES: usize = 8;

/// The largest payload a record may claim. A length above this is taken as
/// corruption, not as a record cut short by a crash.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 << 20;

const KIND_ENTRY: u8 = 1;
const KIND_TRUNCATE: u8 = 2;
const KIND_SYNC: u8 = 3;
const KIND_MEMBERSHIP_ENTRY: u8 = 4;
const ENTRY_FIXED_BYTES: usize = 1 + 8 + 8;
const TRUNCATE_BYTES: usize = 1 + 8;
const SYNC_BYTES: usize = 1 + 8 + 8;

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `entry` is stored at `index`.
    Entry {
        /// Where the entry goes.
        index: LogIndex,
        /// The entry.
        entry: Entry,
    },
    /// Entries at `from` and after are removed.
    Truncate {
        /// The first removed index.
        from: LogIndex,
    },
    /// Everything before this record was synced.
    Sync {
        /// The log's last index at the sync.
        last_index: LogIndex,
        /// The sequence number of the segment holding the record.
        sequence: u64,
    },
}

/// What lies at some offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record taking `bytes` bytes.
    Record {
        /// The record.
        record: Record,
        /// Its size on disk, header included.
        bytes: usize,
    },
    /// The buffer ends before the record it starts does: a write cut short.
    Incomplete,
    /// The bytes are not a valid record.
    Invalid {
        /// What is wrong, for the error message.
        reason: String,
    },
}

/// Appends the encoding of an entry record to `out`.
pub fn encode_entry(index: LogIndex, entry: &Entry, out: &mut Vec<u8>) {
    let start = begin(out);
    out.push(match entry.kind {
        EntryKind::Normal => KIND_ENTRY,
        EntryKind::Membership => KIND_MEMBERSHIP_ENTRY,
    });
    out.extend_from_slice(&index.0.to_le_bytes());
    out.extend_from_slice(&entry.term.0.to_le_bytes());
    out.extend_from_slice(&entry.data);
    finish(out, start);
}

/// Appends the encoding of a truncate record to `out`.
pub fn encode_truncate(from: LogIndex, out: &mut Vec<u8>) {
    let start = begin(out);
    out.push(KIND_TRUNCATE);
    out.extend_from_slice(&from.0.to_le_bytes());
    finish(out, start);
}

/// Appends the encoding of a sync record to `out`.
pub fn encode_sync(last_index: LogIndex, sequence: u64, out: &mut Vec<u8>) {
    let start = begin(out);
    out.push(KIND_SYNC);
    out.extend_from_slice(&last_index.0.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    finish(out, start);
}

fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    start
}

/// Fills in the length and checksum of the record that starts at `start`.
fn finish(out: &mut [u8], start: usize) {
    let length = out.len() - start - RECORD_HEADER_BYTES;
    assert!(
        length <= RECORD_PAYLOAD_BYTES_MAX,
        "record payload of {length} bytes exceeds the limit; entries are checked on submission"
    );
    let length = (length as u32).to_le_bytes();
    out[start..start + 4].copy_from_slice(&length);
    let crc = checksum(&length, &out[start + RECORD_HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(length: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length), payload)
}

/// Decodes the record at the start of `buffer`. Entry data is a slice of
/// `buffer`, so decoding a segment copies no entry data.
pub fn decode(buffer: &Bytes) -> Decoded {
    if buffer.len() < RECORD_HEADER_BYTES {
        return Decoded::Incomplete;
    }
    let length = u32::from_le_bytes(buffer[0..4].try_into().expect("4 bytes")) as usize;
    let stored_crc = u32::from_le_bytes(buffer[4..8].try_into().expect("4 bytes"));
    let end = RECORD_HEADER_BYTES.saturating_add(length);
    if length > RECORD_PAYLOAD_BYTES_MAX {
        let reason = format!("length {length} exceeds the limit of {RECORD_PAYLOAD_BYTES_MAX}");
        return Decoded::Invalid { reason };
    }
    if buffer.len() < end {
        return Decoded::Incomplete;
    }
    let payload = buffer.slice(RECORD_HEADER_BYTES..end);
    let crc = checksum(&buffer[0..4], &payload);
    if crc != stored_crc {
        let reason = format!("checksum {crc:#010x} does not match the stored {stored_crc:#010x}");
        return Decoded::Invalid { reason };
    }
    match decode_payload(payload) {
        Ok(record) => Decoded::Record { record, bytes: end },
        Err(reason) => Decoded::Invalid { reason },
    }
}

fn decode_payload(payload: Bytes) -> Result<Record, String> {
    let read_u64 = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    match payload.first() {
        Some(&kind @ (KIND_ENTRY | KIND_MEMBERSHIP_ENTRY))
            if payload.len() >= ENTRY_FIXED_BYTES =>
        {
            Ok(Record::Entry {
                index: LogIndex(read_u64(1)),
                entry: Entry {
                    term: Term(read_u64(9)),
                    kind: match kind {
                        KIND_ENTRY => EntryKind::Normal,
                        _ => EntryKind::Membership,
                    },
                    data: payload.slice(ENTRY_FIXED_BYTES..),
                },
            })
        }
        Some(&KIND_TRUNCATE) if payload.len() == TRUNCATE_BYTES => Ok(Record::Truncate {
            from: LogIndex(read_u64(1)),
        }),
        Some(&KIND_SYNC) if payload.len() == SYNC_BYTES => Ok(Record::Sync {
            last_index: LogIndex(read_u64(1)),
            sequence: read_u64(9),
        }),
        Some(kind) => Err(format!(
            "record of kind {kind} with a payload of {} bytes",
            payload.len()
        )),
        None => Err("empty record".to_string()),
    }
}

/// The valid records found in `buffer` from `from` on, each with its
/// offset, when the frame boundaries there are unknown (after damage): it
/// tries every offset, and after a valid record goes on past its end.
/// For the damage path only: it may read a record's bytes many times.
pub fn resync(buffer: &Bytes, from: usize) -> impl Iterator<Item = (usize, Record)> + '_ {
    let mut offset = from;
    std::iter::from_fn(move || {
        while offset < buffer.len() {
            match decode(&buffer.slice(offset..)) {
                Decoded::Record { record, bytes } => {
                    let found = offset;
                    offset += bytes;
                    return Some((found, record));
                }
                Decoded::Incomplete | Decoded::Invalid { .. } => offset += 1,
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, data: &'static str) -> Entry {
        Entry::new(Term(term), data)
    }

    fn configuration(term: u64) -> Entry {
        let ids = |ids: &[u64]| {
            ids.iter()
                .copied()
                .map(skiff_core::NodeId)
                .collect::<Vec<_>>()
        };
        let membership = skiff_core::Membership::new(ids(&[1, 2, 3]), ids(&[4])).unwrap();
        Entry::membership(Term(term), &membership)
    }

    #[test]
    fn an_entry_record_written_before_entry_kinds_reads_as_a_normal_entry() {
        // Kind 1, index 9, term 2, data "old", framed by hand as the code
        // before membership changes wrote it.
        let mut payload = vec![1];
        payload.extend_from_slice(&9u64.to_le_bytes());
        payload.extend_from_slice(&2u64.to_le_bytes());
        payload.extend_from_slice(b"old");
        let length = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&length), &payload);
        let mut old = length.to_vec();
        old.extend_from_slice(&crc.to_le_bytes());
        old.extend_from_slice(&payload);
        let Decoded::Record { record, .. } = decode(&Bytes::from(old)) else {
            panic!("the old record does not decode");
        };
        let expected = Record::Entry {
            index: LogIndex(9),
            entry: entry(2, "old"),
        };
        assert_eq!(record, expected);
        assert!(matches!(record, Record::Entry { entry, .. } if entry.kind == EntryKind::Normal));
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        encode_entry(LogIndex(7), &entry(3, "hello"), &mut out);
        encode_truncate(LogIndex(5), &mut out);
        encode_entry(LogIndex(5), &entry(4, ""), &mut out);
        encode_entry(LogIndex(6), &configuration(4), &mut out);
        encode_sync(LogIndex(5), 3, &mut out);
        let mut buffer = Bytes::from(out);
        let mut records = Vec::new();
        while !buffer.is_empty() {
            let Decoded::Record { record, bytes } = decode(&buffer) else {
                panic!("not a record: {:?}", decode(&buffer));
            };
            records.push(record);
            buffer = buffer.slice(bytes..);
        }
        assert_eq!(
            records,
            vec![
                Record::Entry {
                    index: LogIndex(7),
                    entry: entry(3, "hello")
                },
                Record::Truncate { from: LogIndex(5) },
                Record::Entry {
                    index: LogIndex(5),
                    entry: entry(4, "")
                },
                Record::Entry {
                    index: LogIndex(6),
                    entry: configuration(4)
                },
                Record::Sync {
                    last_index: LogIndex(5),
                    sequence: 3
                },
            ]
        );
    }

    #[test]
    fn resync_finds_the_records_after_a_damaged_length() {
        let mut out = Vec::new();
        encode_entry(LogIndex(1), &entry(1, "first"), &mut out);
        let second = out.len();
        encode_entry(LogIndex(2), &entry(1, "second"), &mut out);
        let sync = out.len();
        encode_sync(LogIndex(2), 1, &mut out);
        out[0] ^= 0x10; // the first record's length now points elsewhere
        let buffer = Bytes::from(out);
        assert!(matches!(decode(&buffer), Decoded::Invalid { .. }));
        let found: Vec<usize> = resync(&buffer, 1).map(|(at, _)| at).collect();
        assert_eq!(found, [second, sync]);
    }

    #[test]
    fn a_cut_record_is_incomplete() {
        let mut out = Vec::new();
        encode_entry(LogIndex(1), &entry(1, "abcdef"), &mut out);
        for cut in 0..out.len() {
            assert_eq!(
                decode(&Bytes::copy_from_slice(&out[..cut])),
                Decoded::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let mut out = Vec::new();
        encode_entry(LogIndex(1), &entry(1, "abcdef"), &mut out);
        for position in 0..out.len() {
            for bit in 0..8 {
                let mut damaged = out.clone();
                damaged[position] ^= 1 << bit;
                let decoded = decode(&Bytes::from(damaged));
                assert!(
                    matches!(decoded, Decoded::Invalid { .. } | Decoded::Incomplete),
                    "flip of bit {bit} at {position} gave {decoded:?}"
                );
            }
        }
    }

    #[test]
    fn zeros_and_absurd_lengths_are_invalid() {
        let zeros = Bytes::from(vec![0u8; 32]);
        assert!(matches!(decode(&zeros), Decoded::Invalid { .. }));
        let mut huge = vec![0xffu8; 16];
        huge[4..8].copy_from_slice(&[0; 4]);
        assert!(matches!(
            decode(&Bytes::from(huge)),
            Decoded::Invalid { .. }
        ));
    }
}
