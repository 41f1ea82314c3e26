//! Snapshots and log compaction (section 7): the log stops growing with the
//! cluster's age.
//!
//! # Taking one
//!
//! The application captures its state through some applied index `i` in a
//! durable snapshot and says so with [`Event::SnapshotTaken`]. The machine
//! drops its log through `i`, keeps `i`'s term as the term before its first
//! entry (for the consistency check of AppendEntries), and answers with
//! [`Action::LogCompact`], which lets the driver discard those entries. A
//! snapshot holds committed state only: an `i` past the commit index is
//! ignored, as is one not past the current snapshot.
//!
//! # Sending one
//!
//! A leader whose follower needs an entry that is gone sends an
//! [`InstallSnapshotReq`] naming its snapshot (index and term) instead of
//! entries (`replication.rs` decides when, `progress.rs` waits for the
//! answer). The machine never holds a snapshot's bytes: the drivers stream
//! them beside the message, and the follower's driver delivers the message
//! only once the whole snapshot has arrived and is durable.
//!
//! # Receiving one
//!
//! A follower answers an `InstallSnapshotReq` of the current term (after
//! the usual term handling, as for AppendEntries) in one of three ways,
//! always with the snapshot's index as the last index known to match:
//!
//! 1. **Already committed through it**: the snapshot is older than what this
//!    node knows is committed, so installing it would take the state back.
//!    Nothing changes.
//! 2. **The log holds the snapshot's last entry** (same index, same term):
//!    by Log Matching the log agrees with the snapshot's through it, and the
//!    snapshot proves those entries committed. The log after it is kept (the
//!    paper's rule), the entries through it commit and are reported as
//!    usual, and the snapshot itself is not needed.
//! 3. **Otherwise** the log is replaced: [`Action::SnapshotInstall`] makes
//!    the snapshot this node's and discards every entry, the commit index
//!    becomes the snapshot's index, and the application restores its state
//!    from it. Entries this node appended as leader that the snapshot covers
//!    are reported `OutcomeUnknown`: the snapshot says nothing of which
//!    entry won their index.

use super::{Machine, RoleState};
use crate::action::{Action, CommitError};
use crate::membership::Membership;
use crate::message::{InstallSnapshotReq, InstallSnapshotResp, Message};
use crate::types::{LogIndex, NodeId, SnapshotMeta};

// Taking a snapshot.
impl Machine {
    pub(super) fn handle_snapshot_taken(&mut self, index: LogIndex, actions: &mut Vec<Action>) {
        if index > self.commit_index || index <= self.log.snapshot().index {
            return; // not committed yet, or covered already: nothing to drop
        }
        self.log.compact(index);
        self.configs.compacted(index); // `membership.rs`
        let membership = self.configs.at_snapshot().clone();
        actions.push(Action::LogCompact {
            through: index,
            membership,
        });
    }
}

// Receiving one.
impl Machine {
    pub(super) fn handle_install_snapshot_req(
        &mut self,
        from: NodeId,
        req: InstallSnapshotReq,
        actions: &mut Vec<Action>,
    ) {
        let snapshot = req.snapshot;
        let epoch = req.epoch;
        if !self.follow(from, req.term) {
            // Stale (the answer teaches the newer term) or from a second
            // leader: nothing acknowledged.
            self.reply_install(from, LogIndex::ZERO, epoch);
            return;
        }
        self.note_joining((snapshot.term, snapshot.index)); // `membership.rs`, rule 6
        if snapshot.index <= self.commit_index {
            // Rule 1: older than what is known committed here.
        } else if self.log.term_at(snapshot.index) == Some(snapshot.term) {
            // Rule 2: the log already holds it; commit through it.
            self.commit_through(snapshot.index, actions);
            self.check_repaired(snapshot.index);
        } else {
            // Rule 3: replace the log with the snapshot.
            self.install(snapshot, req.membership, actions);
            self.check_repaired(snapshot.index);
        }
        self.reply_install(from, snapshot.index, epoch);
    }

    /// Makes `snapshot` this node's and the log empty after it.
    fn install(
        &mut self,
        snapshot: SnapshotMeta,
        membership: Membership,
        actions: &mut Vec<Action>,
    ) {
        debug_assert!(snapshot.index > self.commit_index);
        self.persist_hard_state(actions);
        actions.push(Action::SnapshotInstall {
            snapshot,
            membership: membership.clone(),
        });
        // Entries this node appended that the snapshot covers: which entry
        // committed at their index is unknown here.
        let covered = self
            .awaiting_outcome
            .partition_point(|awaiting| awaiting.index <= snapshot.index);
        for awaiting in self.awaiting_outcome.drain(..covered) {
            let data = match awaiting.data {
                Some(data) => data,
                None => self
                    .log
                    .get(awaiting.index)
                    .map(|entry| entry.data.clone())
                    .unwrap_or_default(),
            };
            self.deferred.push(Action::Commit {
                data,
                result: Err(CommitError::OutcomeUnknown {
                    index: awaiting.index,
                    term: awaiting.term,
                }),
            });
        }
        // Entries after the snapshot that still wait keep their data, for
        // their entries leave the log now.
        for awaiting in self.awaiting_outcome.iter_mut() {
            if awaiting.data.is_none() {
                awaiting.data = self.log.get(awaiting.index).map(|e| e.data.clone());
            }
        }
        self.log.reset(snapshot);
        self.commit_index = snapshot.index;
        self.configurations_installed(snapshot.index, membership); // `membership.rs`
    }

    pub(super) fn reply_install(&mut self, to: NodeId, index: LogIndex, epoch: u64) {
        let resp = InstallSnapshotResp {
            term: self.hard_state.term,
            index,
            epoch,
        };
        self.send(to, Message::InstallSnapshotResp(resp));
    }
}

// The leader hears back.
impl Machine {
    pub(super) fn handle_install_snapshot_resp(&mut self, from: NodeId, resp: InstallSnapshotResp) {
        let Some(position) = self.follower_answering(from, resp.term, resp.epoch, Some(resp.index))
        else {
            return;
        };
        let RoleState::Leader { followers, .. } = &mut self.role else {
            return;
        };
        // What the snapshot covers is committed, so the answer cannot move
        // the commit index; it only lets entries after it flow.
        followers[position].1.on_success(resp.index);
        if let Some((mut replicator, followers)) = self.replicator() {
            replicator.send_pending(from, &mut followers[position].1);
        }
    }
}
