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
//!
//! # Reads without the log
//!
//! A read is answered from the store once it has applied through the read
//! index the node proved ([`Replies::applied_through`]), so the store lives
//! here, shared by the node's applier and the connections: all of them run
//! on the node's one thread, so its lock is never contended. The store
//! decides expiry by the log's clock; a file that is live there but has
//! expired by this server's clock is left for the log to decide
//! ([`LocalRead::ExpiredByLocalClock`]).

use crate::command::ProposalId;
use crate::protocol::{Limits, Response, LINE_BYTES_MAX};
use crate::store::Store;
use skiff_node::{CommittedEntry, LogIndex, SnapshotMeta, SnapshotWriter, StateMachine};
use std::collections::{BTreeMap, HashMap};
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

/// Where the store's answers go, how far the store got, and the store.
pub(super) struct Replies {
    /// This run's id in every [`ProposalId`] it makes.
    pub(super) server_id: u64,
    waiting: Mutex<Waiting>,
    /// The store the node applies to, which reads are answered from.
    store: Mutex<Store>,
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
    /// Reads waiting for the store to apply through an index.
    reads: BTreeMap<LogIndex, Vec<oneshot::Sender<()>>>,
}

/// A read answered from the store without the log.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LocalRead {
    /// The answer, with expiry decided by the log's clock.
    Answer(Response),
    /// The file is live by the log's clock but expired by this server's:
    /// only a read through the log may decide it is gone, so that no later
    /// read on another server, whose clock is behind, shows it again.
    ExpiredByLocalClock,
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
            store: Mutex::new(Store::new()),
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

    /// Resolves once the store has applied (or restored) through `index`;
    /// fails if nothing more will be applied.
    pub(super) async fn applied_through(
        &self,
        index: LogIndex,
    ) -> Result<(), oneshot::error::RecvError> {
        if self.applied_index() >= index {
            return Ok(());
        }
        let (reached, wait) = oneshot::channel();
        {
            let mut waiting = self.lock();
            // Checked again under the lock that applying takes to wake
            // readers, so that no apply slips between check and wait.
            if self.applied_index() >= index {
                return Ok(());
            }
            waiting.reads.entry(index).or_default().push(reached);
        }
        wait.await
    }

    /// Answers a read of `name` from the store, at this server's clock
    /// `now_ms` when the file is live by the log's clock.
    pub(super) fn read(&self, name: &str, now_ms: u64) -> LocalRead {
        let store = self.store();
        match store.read_at(name, store.clock_ms()) {
            Response::Contents { .. } => match store.read_at(name, now_ms) {
                Response::FileNotFound => LocalRead::ExpiredByLocalClock,
                live => LocalRead::Answer(live),
            },
            absent => LocalRead::Answer(absent),
        }
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
        let mut waiting = self.lock();
        waiting.by_sequence.clear();
        waiting.reads.clear();
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

    /// Wakes the reads waiting for an index the store has reached.
    fn wake_reads(&self) {
        let applied = self.applied_index();
        let mut waiting = self.lock();
        if waiting
            .reads
            .first_key_value()
            .is_none_or(|(at, _)| *at > applied)
        {
            return;
        }
        let later = waiting.reads.split_off(&applied.next());
        let reached = std::mem::replace(&mut waiting.reads, later);
        drop(waiting);
        for reader in reached.into_values().flatten() {
            let _ = reader.send(());
        }
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

    fn store(&self) -> MutexGuard<'_, Store> {
        // As for `lock`: a panic under it would be a bug.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic while holding this lock would be a bug; the map stays usable.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The file store (kept in [`Replies`]), applied, snapshotted and
/// restored by the node.
pub(super) struct FileStateMachine {
    replies: Arc<Replies>,
}

impl FileStateMachine {
    /// The store in `replies`, whose answers go through them too.
    pub(super) fn new(replies: Arc<Replies>) -> FileStateMachine {
        FileStateMachine { replies }
    }
}

impl StateMachine for FileStateMachine {
    fn apply(&mut self, entry: CommittedEntry) {
        let mut store = self.replies.store();
        let applied = store.apply_data(entry.index, &entry.data);
        self.replies.published(&store);
        drop(store);
        self.replies.wake_reads();
        match applied {
            Ok(Some((command, response))) => self.replies.deliver(command.proposal, response),
            Ok(None) => {}
            Err(error) => {
                // Only a bug or a foreign writer can put such data in the log;
                // every replica skips it alike.
                tracing::error!(index = %entry.index, %error, "skipping an entry that is not a command");
            }
        }
    }

    fn snapshot(&self) -> Box<dyn SnapshotWriter> {
        Box::new(FrozenStore(self.replies.store().clone()))
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
        let mut current = self.replies.store();
        *current = store;
        self.replies.published(&current);
        drop(current);
        // Entries after the store's own index but through the snapshot's
        // (no-ops, if the two differ) are not applied either.
        self.replies
            .applied_index
            .fetch_max(snapshot.index.0, Ordering::AcqRel);
        self.replies.wake_reads();
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
        assert_eq!(*follower.replies.store(), *leader.replies.store());
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

    /// Whether `future` is ready when polled once now.
    fn ready<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut context).is_ready()
    }

    #[test]
    fn reads_wait_for_the_store_and_answer_expiry_by_the_logs_clock() {
        let replies = Arc::new(Replies::new(SERVER));
        let mut machine = FileStateMachine::new(replies.clone());
        let mut through_two = Box::pin(replies.applied_through(LogIndex(2)));
        assert!(!ready(through_two.as_mut()));
        // Entry 1 writes "f" at 1,000 ms, expiring 1 s later.
        let mut expiring = entry(1, 1, "f");
        let mut command = Command::decode_shared(&expiring.data).unwrap().unwrap();
        if let Request::Write { exptime_s, .. } = &mut command.request {
            *exptime_s = 1;
        }
        expiring.data = command.encode();
        machine.apply(expiring);
        assert!(!ready(through_two.as_mut()), "index 1 is not 2");
        assert!(ready(
            Box::pin(replies.applied_through(LogIndex(1))).as_mut()
        ));
        // Live by the log's clock (1,000) and by the server's.
        assert!(matches!(
            replies.read("f", 1_500),
            LocalRead::Answer(Response::Contents { exptime_s: 1, .. })
        ));
        // Expired by the server's clock alone: the log must decide.
        assert_eq!(replies.read("f", 2_000), LocalRead::ExpiredByLocalClock);
        assert_eq!(
            replies.read("missing", 0),
            LocalRead::Answer(Response::FileNotFound)
        );
        // Entry 2, at 2,000 ms, moves the log's clock past the expiry.
        machine.apply(entry(2, 2, "g"));
        assert!(ready(through_two.as_mut()));
        assert_eq!(
            replies.read("f", 0),
            LocalRead::Answer(Response::FileNotFound)
        );
        // A wait no apply will end ends when the machine goes.
        let mut never = Box::pin(replies.applied_through(LogIndex(9)));
        assert!(!ready(never.as_mut()));
        drop(machine);
        assert!(ready(never.as_mut()));
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
