//! The store as the node's [`StateMachine`], and the way its answers get
//! back to the connections waiting for them.
//!
//! The node applies committed entries to [`FileStateMachine`], snapshots
//! it by its policy, and restores it at restart or from a leader's
//! snapshot. The machine hands each answer to the connection that
//! proposed the entry through [`Replies`], which it shares with the
//! connections, together with how far the store got.
//!
//! # Waiters a restore passes
//!
//! A restore replaces the store with one that already includes the
//! entries through the snapshot's index, so those entries are never
//! applied here, and nobody waiting for one of them would hear of it
//! before their request timed out. So a restore ends every wait for an
//! entry at or below its index at once: the connection answers
//! `ERR_INTERNAL` (the change did or did not happen; the proposer cannot
//! tell which from here). A wait whose entry's index is not yet known (its
//! submission has not resolved) is ended the same way as soon as the index
//! is known ([`Replies::committed_at`]).

use crate::command::ProposalId;
use crate::protocol::{Limits, Response, LINE_BYTES_MAX};
use crate::store::Store;
use skiff_node::{CommittedEntry, LogIndex, SnapshotMeta, SnapshotWriter, StateMachine};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The bounds on what a snapshot may hold: anything a log entry could have
/// carried, whatever the limits configured now (they may have been lowered
/// since the files were written). A name is bounded by the header line
/// that carried it, contents by the node's largest entry.
const SNAPSHOT_LIMITS: Limits = Limits {
    file_bytes_max: skiff_node::ENTRY_BYTES_MAX,
    name_bytes_max: LINE_BYTES_MAX,
};

/// Where the store's answers go, and how far the store got.
pub(super) struct Replies {
    /// This run's id in every [`ProposalId`] it makes.
    pub(super) server_id: u64,
    waiting: Mutex<Waiting>,
    /// The store's clock, so that proposals never carry an earlier time.
    clock_ms: AtomicU64,
    applied_index: AtomicU64,
}

/// The connections waiting for their proposals' answers.
#[derive(Default)]
struct Waiting {
    by_sequence: HashMap<u64, Waiter>,
    /// The index of the latest snapshot restored: entries through it are
    /// never applied here.
    restored_through: LogIndex,
}

struct Waiter {
    answer: oneshot::Sender<Response>,
    /// Where the proposal committed, once its submission said.
    index: Option<LogIndex>,
}

impl Replies {
    /// Replies for a server whose proposals carry `server_id`.
    pub(super) fn new(server_id: u64) -> Replies {
        Replies {
            server_id,
            waiting: Mutex::default(),
            clock_ms: AtomicU64::new(0),
            applied_index: AtomicU64::new(0),
        }
    }

    /// The store's clock, in ms.
    pub(super) fn clock_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Acquire)
    }

    /// The last index applied to the store, or restored from a snapshot.
    pub(super) fn applied_index(&self) -> LogIndex {
        LogIndex(self.applied_index.load(Ordering::Acquire))
    }

    /// Registers a wait for the answer to proposal `sequence`.
    pub(super) fn wait_for(&self, sequence: u64) -> oneshot::Receiver<Response> {
        let (answer, answered) = oneshot::channel();
        let waiter = Waiter {
            answer,
            index: None,
        };
        self.lock().by_sequence.insert(sequence, waiter);
        answered
    }

    /// Records that proposal `sequence` committed at `index`. If a restore
    /// already passed that index, the answer will never come: the wait
    /// ends at once, with the receiver seeing its sender dropped.
    pub(super) fn committed_at(&self, sequence: u64, index: LogIndex) {
        let mut waiting = self.lock();
        if index <= waiting.restored_through {
            waiting.by_sequence.remove(&sequence);
        } else if let Some(waiter) = waiting.by_sequence.get_mut(&sequence) {
            waiter.index = Some(index);
        }
    }

    /// Gives up waiting for proposal `sequence` (answered, or timed out).
    pub(super) fn forget(&self, sequence: u64) {
        self.lock().by_sequence.remove(&sequence);
    }

    /// Ends every wait: nothing more will be applied.
    pub(super) fn end_all(&self) {
        self.lock().by_sequence.clear();
    }

    fn deliver(&self, proposal: ProposalId, response: Response) {
        if proposal.server != self.server_id {
            return;
        }
        let waiter = self.lock().by_sequence.remove(&proposal.sequence);
        if let Some(waiter) = waiter {
            let _ = waiter.answer.send(response);
        }
    }

    fn published(&self, store: &Store) {
        self.clock_ms.store(store.clock_ms(), Ordering::Release);
        self.applied_index
            .store(store.applied_index().0, Ordering::Release);
    }

    /// Ends the waits that a restore through `index` passed, and any whose
    /// index will turn out to be at or below it.
    fn restored_through(&self, index: LogIndex) -> usize {
        let mut waiting = self.lock();
        waiting.restored_through = waiting.restored_through.max(index);
        let before = waiting.by_sequence.len();
        waiting
            .by_sequence
            .retain(|_, waiter| waiter.index.is_none_or(|at| at > index));
        before - waiting.by_sequence.len()
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic while holding this lock would be a bug; the map stays usable.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The file store, applied, snapshotted and restored by the node.
pub(super) struct FileStateMachine {
    store: Store,
    replies: Arc<Replies>,
}

impl FileStateMachine {
    /// An empty store whose answers go through `replies`.
    pub(super) fn new(replies: Arc<Replies>) -> FileStateMachine {
        FileStateMachine {
            store: Store::new(),
            replies,
        }
    }
}

impl StateMachine for FileStateMachine {
    fn apply(&mut self, entry: CommittedEntry) {
        match self.store.apply_data(entry.index, &entry.data) {
            Ok(Some((entry, response))) => self.replies.deliver(entry.proposal(), response),
            Ok(None) => {}
            Err(error) => {
                // Only a bug or a foreign writer can put such data in the log;
                // every replica skips it alike.
                tracing::error!(index = %entry.index, %error, "skipping an entry that is not a command");
            }
        }
        self.replies.published(&self.store);
    }

    fn snapshot(&self) -> Box<dyn SnapshotWriter> {
        Box::new(FrozenStore(self.store.clone()))
    }

    fn restore(&mut self, snapshot: SnapshotMeta, reader: &mut dyn Read) -> io::Result<()> {
        let store = Store::read_snapshot(reader, &SNAPSHOT_LIMITS)?;
        if store.applied_index() > snapshot.index {
            // The node would go on applying entries the store already holds.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the snapshot named {}:{} holds the store through index {}",
                    snapshot.index,
                    snapshot.term,
                    store.applied_index()
                ),
            ));
        }
        tracing::info!(
            snapshot = %format_args!("{}:{}", snapshot.index, snapshot.term),
            files = store.file_count(),
            "restored the file store from a snapshot"
        );
        self.store = store;
        self.replies.published(&self.store);
        // Entries after the store's own index but through the snapshot's
        // (no-ops, if the two differ) are not applied either.
        self.replies
            .applied_index
            .fetch_max(snapshot.index.0, Ordering::AcqRel);
        let ended = self.replies.restored_through(snapshot.index);
        if ended > 0 {
            tracing::info!(
                ended,
                "requests whose entries the snapshot covers get ERR_INTERNAL"
            );
        }
        Ok(())
    }
}

impl Drop for FileStateMachine {
    /// The node dropped the machine: it stopped, and nothing more will be
    /// applied. Ending the waits tells every waiting request so at once.
    fn drop(&mut self) {
        self.replies.end_all();
    }
}

/// A frozen copy of the store, written in the background.
struct FrozenStore(Store);

impl SnapshotWriter for FrozenStore {
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> io::Result<()> {
        self.0.write_snapshot(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::protocol::{Request, Version};
    use bytes::Bytes;
    use skiff_node::Term;

    const SERVER: u64 = 77;

    fn entry(index: u64, sequence: u64, name: &str) -> CommittedEntry {
        let command = Command {
            timestamp_ms: 1_000 * index,
            proposal: ProposalId {
                server: SERVER,
                sequence,
            },
            session: None,
            request: Request::Write {
                name: name.to_string(),
                contents: Bytes::from_static(b"x"),
                exptime_s: 0,
            },
        };
        CommittedEntry {
            index: LogIndex(index),
            term: Term(1),
            data: command.encode(),
        }
    }

    fn snapshot_bytes(machine: &FileStateMachine) -> Vec<u8> {
        let mut out = Vec::new();
        machine.snapshot().write_to(&mut out).unwrap();
        out
    }

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
        }
    }

    #[test]
    fn applied_entries_answer_their_proposers_and_move_the_shared_progress() {
        let replies = Arc::new(Replies::new(SERVER));
        let mut machine = FileStateMachine::new(replies.clone());
        let mut answered = replies.wait_for(5);
        machine.apply(entry(1, 5, "f"));
        assert_eq!(
            answered.try_recv(),
            Ok(Response::Written {
                version: Version(1)
            })
        );
        assert_eq!(replies.applied_index(), LogIndex(1));
        assert_eq!(replies.clock_ms(), 1_000);
    }

    #[test]
    fn a_restore_replaces_the_store_and_ends_the_waits_it_passes() {
        let replies = Arc::new(Replies::new(SERVER));
        let mut leader = FileStateMachine::new(Arc::new(Replies::new(1)));
        for index in 1..=3 {
            leader.apply(entry(index, index, &format!("f{index}")));
        }
        let snapshot = snapshot_bytes(&leader);
        let mut follower = FileStateMachine::new(replies.clone());
        // Committed at 2 (covered), at 9 (not), and not yet known.
        let mut covered = replies.wait_for(2);
        replies.committed_at(2, LogIndex(2));
        let mut later = replies.wait_for(9);
        replies.committed_at(9, LogIndex(9));
        let mut unknown = replies.wait_for(3);
        follower.restore(meta(3), &mut &snapshot[..]).unwrap();
        assert_eq!(follower.store, leader.store);
        assert_eq!(replies.applied_index(), LogIndex(3));
        assert_eq!(replies.clock_ms(), 3_000);
        assert!(matches!(
            covered.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            later.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        // Its submission resolves after the restore: the wait ends then.
        assert!(matches!(
            unknown.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        replies.committed_at(3, LogIndex(3));
        assert!(matches!(
            unknown.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        // The store goes on from the snapshot.
        follower.apply(entry(4, 9, "g"));
        assert!(matches!(later.try_recv(), Ok(Response::Written { .. })));
    }

    #[test]
    fn a_bad_snapshot_or_one_past_its_name_is_an_error() {
        let mut machine = FileStateMachine::new(Arc::new(Replies::new(SERVER)));
        let error = machine.restore(meta(3), &mut &b"junk"[..]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        machine.apply(entry(1, 1, "f"));
        machine.apply(entry(2, 2, "f"));
        let ahead = snapshot_bytes(&machine);
        let error = machine.restore(meta(1), &mut &ahead[..]).unwrap_err();
        assert!(error.to_string().contains("through index 2"), "{error}");
    }

    #[test]
    fn dropping_the_machine_ends_every_wait() {
        let replies = Arc::new(Replies::new(SERVER));
        let machine = FileStateMachine::new(replies.clone());
        let mut answered = replies.wait_for(1);
        drop(machine);
        assert!(matches!(
            answered.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
