//! The disks lie (with `--disk-faults`): what a crash does to a node's
//! unsynced writes, damage to its synced records, and the recovery that
//! reads the disk back at a restart and restarts the node, repairing when
//! it found damage.
//!
//! # The faults, drawn at each crash
//!
//! * Unsynced writes (never acknowledged: the world syncs before a batch's
//!   first `Send` or `Commit`): all lost, or a random prefix kept
//!   (partial-writes), or a prefix kept and the next write torn
//!   (torn-write: recovery sees a bad record with no sync record after it).
//! * Damaging faults, one in three crashes, where allowed: a bit flip in a
//!   synced record, a lost fsync (the entries of one sync lost, with a
//!   later sync record surviving: the noticeable kind), a missing segment
//!   (the synced log lost from some index on, noticed through the
//!   manifest). Each makes recovery find damage and restart the node
//!   repairing. A damaged copy of the hard state is survived (the other
//!   copy is read, and both hold the last synced state), so it is counted
//!   and traced but changes nothing.
//!
//! The damaged index is drawn among the synced entries, two times in three
//! from the last quarter of them, where the entries the node acknowledged
//! most recently sit (those are the ones a lost acknowledgment can make a
//! majority of); the whole-log draw covers the rest.
//!
//! Not injected: a lost fsync of the last sync before a crash (it cannot
//! be told from a torn tail: no node-local recovery notices it, and it
//! loses acknowledged entries silently), damage to both hard-state copies
//! (the node then refuses to start), and damage in one- and two-node
//! clusters (no other copy to repair from, or no majority without the
//! repairing node), or, with membership churn, while a configuration in
//! play has fewer than three voters (for the same reasons: a sole voter's
//! bad disk loses what it acknowledged on its own).
//!
//! # The two modes
//!
//! [`DiskFaults::One`]: a damaging fault only hits a node when no other
//! node is faulty; a node is faulty from its damage until it has finished
//! repairing (its disk's repair mark, cleared when the machine stops
//! repairing). Nothing acknowledged may be lost and every rule is checked.
//!
//! [`DiskFaults::Many`]: no such limit. Every safety rule is still checked:
//! a repairing node neither votes nor stands, so any leader is elected by
//! nodes that hold what they acknowledged, and the argument of
//! `skiff-core`'s `machine/repair.rs` goes through with any number of
//! damaged nodes as long as every damage is noticed (Damage Noticed checks
//! that it is). Liveness is not checked: with a majority repairing no
//! leader can be elected, and the repairs wait for one.

use super::batch::kind;
use super::World;
use crate::checker::damage_noticed;
use crate::durable::{self, Recovery, UnsyncedFate};
use crate::faults::{DiskFaults, StorageFault};
use crate::trace::hash_event;
use skiff_core::{LogIndex, Machine, StateError};

impl World {
    /// The disk of node index `index` at its crash: unsynced writes are lost
    /// or partly kept, and synced records may be damaged unless
    /// `few_voters` (a configuration in play had fewer than three voters
    /// when it crashed: see [`World::few_voters_in_play`]).
    pub(super) fn crash_disk(&mut self, index: usize, few_voters: bool) {
        if self.options.disk_faults == DiskFaults::Off {
            self.nodes[index].disk.crash();
            return;
        }
        if !few_voters && self.damage_allowed(index) && self.rng.below(3) == 0 {
            self.damage(index);
        }
        let writes = self.nodes[index].disk.unsynced_writes() as u64;
        let kept = self.rng.below(writes + 1) as usize;
        let fate = if (kept as u64) < writes && self.rng.below(2) == 0 {
            let entries = self.rng.below(3) as usize;
            self.count_storage_fault(index, StorageFault::TornWrite, 0);
            UnsyncedFate::Torn { kept, entries }
        } else {
            if kept > 0 && (kept as u64) < writes {
                self.count_storage_fault(index, StorageFault::PartialWrites, kept as u64);
            }
            UnsyncedFate::Kept { kept }
        };
        self.nodes[index].disk.crash_keeping(fate);
    }

    /// Whether a damaging fault may hit node index `index` now.
    fn damage_allowed(&self, index: usize) -> bool {
        if self.nodes.len() <= 2 {
            return false;
        }
        match self.options.disk_faults {
            DiskFaults::Off => false,
            DiskFaults::Many => true,
            DiskFaults::One => self
                .nodes
                .iter()
                .enumerate()
                .all(|(other, node)| other == index || !node.faulty()),
        }
    }

    /// Draws and applies one damaging fault to the synced records of node
    /// index `index`, if it has any.
    fn damage(&mut self, index: usize) {
        let disk = &self.nodes[index].disk;
        // The synced records after the log's base: what its snapshot covers
        // is no longer read back.
        let base = disk.base().index.0;
        let synced = disk.synced_last_index().0 - base;
        if synced == 0 {
            return;
        }
        let from = base
            + if self.rng.below(3) < 2 {
                let quarter = synced.div_ceil(4);
                self.rng.between(synced - quarter + 1, synced + 1)
            } else {
                self.rng.between(1, synced + 1)
            };
        let kinds = [
            StorageFault::BitFlip,
            StorageFault::LostFsync,
            StorageFault::MissingSegment,
            StorageFault::HardStateCopy,
        ];
        let fault = kinds[self.rng.index(kinds.len())];
        let from = match fault {
            StorageFault::HardStateCopy => {
                self.count_storage_fault(index, fault, 0);
                return;
            }
            // The sync whose writes are lost: the last one that wrote
            // entries at or before `from` and is followed by another.
            StorageFault::LostFsync => {
                let starts: Vec<LogIndex> = disk.sync_run_starts().collect();
                let noticeable = &starts[..starts.len().saturating_sub(1)];
                match noticeable.iter().rev().find(|start| start.0 <= from) {
                    Some(start) => *start,
                    None => return,
                }
            }
            _ => LogIndex(from),
        };
        self.nodes[index].disk.damage_synced(from);
        self.nodes[index].damage_pending = true;
        self.count_storage_fault(index, fault, from.0);
    }

    fn count_storage_fault(&mut self, index: usize, fault: StorageFault, at: u64) {
        self.stats.storage_faults[fault.ordinal()] += 1;
        hash_event(
            self.trace.hasher(),
            kind::STORAGE_FAULT,
            at,
            index,
            fault.ordinal() as u64,
        );
        let id = self.nodes[index].id;
        match fault {
            StorageFault::PartialWrites => self.trace_world(format_args!(
                "# disk of {id}: {fault}, the first {at} unsynced writes kept"
            )),
            StorageFault::TornWrite | StorageFault::HardStateCopy => {
                self.trace_world(format_args!("# disk of {id}: {fault}"))
            }
            _ => self.trace_world(format_args!("# disk of {id}: {fault} at synced index {at}")),
        }
    }

    /// Reads back the disk of node index `index` as the node's recovery
    /// does and restores its machine from what recovery keeps.
    pub(super) fn recover_disk(
        &mut self,
        index: usize,
        config: skiff_core::Config,
    ) -> Result<Machine, StateError> {
        let node = &mut self.nodes[index];
        let id = node.id;
        let recovery = durable::recover(node.disk.scan());
        let (keep, damaged) = match recovery {
            Recovery::Clean => return node.disk.restore(config),
            Recovery::TornTail { keep } => (keep, false),
            Recovery::Damaged { keep } => (keep, true),
        };
        self.checkers.log_cut(id, &node.disk, keep);
        let last = node.disk.last_index();
        node.disk.lose_log_after(keep);
        node.disk.set_unrepaired(damaged);
        let what = if damaged {
            "damage: restarts repairing"
        } else {
            "torn tail, cut"
        };
        self.trace_world(format_args!(
            "# recovery of {id}: {what}, log kept to index {keep} of {last}"
        ));
        let node = &self.nodes[index];
        if damaged {
            node.disk.restore_damaged(config)
        } else {
            node.disk.restore(config)
        }
    }

    /// After node index `index` restarted as `repairing` says: damage must
    /// have been noticed.
    pub(super) fn check_damage_noticed(&mut self, index: usize, repairing: bool) {
        let node = &mut self.nodes[index];
        let damaged = std::mem::take(&mut node.damage_pending);
        if let Err(failure) = damage_noticed::check_restart(node.id, damaged, repairing) {
            self.fail(failure);
        }
    }

    /// After a batch of node index `index`: a damaged node whose machine no
    /// longer repairs has finished its repair.
    pub(super) fn note_repair(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let done = node.machine.as_ref().is_some_and(|m| !m.repairing());
        if done && node.disk.unrepaired() {
            node.disk.set_unrepaired(false);
            node.rejoin = false;
            self.stats.repairs += 1;
            let id = node.id;
            self.trace_world(format_args!("# {id} finished repairing"));
        }
    }
}
