//! The two sync slots at the start of every log segment, right after its
//! header: where the segment's records stood at its last completed sync.
//!
//! ```text
//! slot  = counter: u64 LE | last index: u64 LE | end: u64 LE | reserved: u32 (0) | crc: u32 LE
//! crc   = CRC32C of the 28 bytes before it
//! ```
//!
//! Each sync writes the next slot (A for odd counters, B for even ones)
//! just before its `fdatasync`, so the same `fdatasync` makes the slot
//! durable with the records it covers. Damage to the end of the records
//! does not reach the slots, which sit at a fixed place at the start of the
//! file: recovery knows how far the segment was synced even when the sync
//! records at its end are gone. Two slots, so that a write of one torn by a
//! crash leaves the other, one sync older, intact.

/// Bytes of one slot.
pub const SLOT_BYTES: usize = 32;
/// Bytes of both slots.
pub const SLOTS_BYTES: usize = 2 * SLOT_BYTES;

const CRC_AT: usize = SLOT_BYTES - 4;

/// One sync, as a slot records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncSlot {
    /// Which sync of the segment this was: 1 for the first, and so on.
    pub counter: u64,
    /// The log's last index at the sync.
    pub last_index: u64,
    /// Where the segment's records ended at the sync (an offset in the file).
    pub end: u64,
}

/// What one slot's bytes hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Zeros: never written.
    Empty,
    /// A slot whose checksum holds.
    Valid(SyncSlot),
    /// Neither: damaged (or torn by a crash while written).
    Damaged,
}

impl SyncSlot {
    /// The slot this sync goes to: 0 (A) for odd counters, 1 (B) for even.
    pub fn position(&self) -> usize {
        if self.counter % 2 == 1 {
            0
        } else {
            1
        }
    }

    /// The encoding of the slot.
    pub fn encode(&self) -> [u8; SLOT_BYTES] {
        let mut out = [0; SLOT_BYTES];
        out[0..8].copy_from_slice(&self.counter.to_le_bytes());
        out[8..16].copy_from_slice(&self.last_index.to_le_bytes());
        out[16..24].copy_from_slice(&self.end.to_le_bytes());
        let crc = crc32c::crc32c(&out[..CRC_AT]);
        out[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// Reads the slot in `bytes` (exactly [`SLOT_BYTES`] long).
pub fn decode(bytes: &[u8]) -> SlotState {
    if bytes.iter().all(|b| *b == 0) {
        return SlotState::Empty;
    }
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let stored = u32::from_le_bytes(bytes[CRC_AT..SLOT_BYTES].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[..CRC_AT]) != stored {
        return SlotState::Damaged;
    }
    let reserved = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    let slot = SyncSlot {
        counter: read_u64(0),
        last_index: read_u64(8),
        end: read_u64(16),
    };
    // A counter of 0 is never written, and the slot must be in its place.
    if reserved != 0 || slot.counter == 0 {
        return SlotState::Damaged;
    }
    SlotState::Valid(slot)
}

/// What both slots of a segment say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    /// Slot A, then slot B.
    pub states: [SlotState; 2],
}

impl Slots {
    /// Reads both slots from `bytes` (exactly [`SLOTS_BYTES`] long).
    pub fn decode(bytes: &[u8]) -> Slots {
        let states = [
            decode(&bytes[..SLOT_BYTES]),
            decode(&bytes[SLOT_BYTES..SLOTS_BYTES]),
        ];
        // A valid slot in the other's place was not written there.
        let mut slots = Slots { states };
        for position in 0..2 {
            if let SlotState::Valid(slot) = slots.states[position] {
                if slot.position() != position {
                    slots.states[position] = SlotState::Damaged;
                }
            }
        }
        slots
    }

    /// The latest sync recorded: the valid slot with the highest counter.
    pub fn latest(&self) -> Option<SyncSlot> {
        self.states
            .iter()
            .filter_map(|state| match state {
                SlotState::Valid(slot) => Some(*slot),
                _ => None,
            })
            .max_by_key(|slot| slot.counter)
    }

    /// Whether no slot was ever written.
    pub fn are_empty(&self) -> bool {
        self.states.iter().all(|s| *s == SlotState::Empty)
    }

    /// Why the slot other than the latest is not as the latest implies
    /// (damaged, or empty although an earlier sync wrote it), if it is not.
    pub fn fault(&self) -> Option<String> {
        let latest = self.latest()?;
        let other = 1 - latest.position();
        let name = ["A", "B"][other];
        match self.states[other] {
            SlotState::Damaged => Some(format!("sync slot {name} is damaged")),
            SlotState::Empty if latest.counter > 1 => Some(format!(
                "sync slot {name} is empty, but sync {} wrote it",
                latest.counter - 1
            )),
            SlotState::Valid(slot) if slot.counter >= latest.counter || slot.end > latest.end => {
                Some(format!(
                    "sync slot {name} (sync {}, end {}) does not precede the other",
                    slot.counter, slot.end
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(counter: u64) -> SyncSlot {
        SyncSlot {
            counter,
            last_index: 10 * counter,
            end: 100 * counter,
        }
    }

    fn both(a: &[u8], b: &[u8]) -> Slots {
        Slots::decode(&[a, b].concat())
    }

    #[test]
    fn the_latest_valid_slot_wins_and_a_damaged_other_is_noted() {
        let slots = both(&slot(3).encode(), &slot(2).encode());
        assert_eq!(slots.latest(), Some(slot(3)));
        assert_eq!(slots.fault(), None);
        let mut damaged = slot(3).encode();
        damaged[9] ^= 1;
        let slots = both(&damaged, &slot(2).encode());
        assert_eq!(slots.latest(), Some(slot(2)));
        assert_eq!(slots.fault().as_deref(), Some("sync slot A is damaged"));
    }

    #[test]
    fn a_first_sync_leaves_the_other_slot_empty() {
        let slots = both(&slot(1).encode(), &[0; SLOT_BYTES]);
        assert_eq!(slots.latest(), Some(slot(1)));
        assert_eq!(slots.fault(), None);
        let slots = both(&[0; SLOT_BYTES], &slot(4).encode());
        assert!(slots.fault().unwrap().contains("slot A is empty"));
        assert!(both(&[0; SLOT_BYTES], &[0; SLOT_BYTES]).are_empty());
    }

    #[test]
    fn any_flipped_bit_or_a_slot_out_of_place_is_damage() {
        let good = slot(5).encode();
        for bit in 0..SLOT_BYTES * 8 {
            let mut bytes = good;
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&bytes), SlotState::Damaged, "bit {bit}");
        }
        let swapped = both(&slot(2).encode(), &slot(1).encode());
        assert_eq!(swapped.states, [SlotState::Damaged, SlotState::Damaged]);
        assert_eq!(swapped.latest(), None);
    }
}
