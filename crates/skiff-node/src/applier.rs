//! The task that runs the application's [`StateMachine`]: it applies
//! the committed entries the event loop hands it, restores the state from
//! a snapshot file, and takes snapshots, by the policy or on request.
//!
//! It runs on the node's own thread, beside the event loop (as the
//! application's tasks may, see `NodeHandle::runtime`): an entry reaches it,
//! and its answer reaches a client's connection task, without waking
//! another thread. Applying is the application's quick, in-memory work;
//! what may take long leaves the thread: a restore reads its file on the
//! blocking pool, and a snapshot is written by a thread of its own.
//!
//! Everything reaches it through one ordered channel, so that a restore or
//! a snapshot falls exactly between the entries before and after it. The
//! channel is unbounded: an entry waiting in it is also in the log, which
//! is not compacted past what was applied, so the queue costs little more
//! than the log already holds.
//!
//! A snapshot is a frozen copy taken between two applies
//! ([`StateMachine::snapshot`]), written to its file by a thread of its own
//! while applying goes on. At most one is written at a time; the event
//! loop hears of each one written ([`ApplierEvent::SnapshotWritten`]) and
//! only then lets the log go.

use crate::api::{CommittedEntry, SnapshotError};
use crate::config::SnapshotConfig;
use crate::state_machine::StateMachine;
use crate::storage::{self, Identity, StoredSnapshot};
use skiff_core::{LogIndex, SnapshotMeta};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The answer to a request for a snapshot now.
pub type SnapshotReply = oneshot::Sender<Result<SnapshotMeta, SnapshotError>>;

/// What the applier is asked to do, in order.
pub enum ApplierInput {
    /// Apply a committed entry (the next one).
    Entry(CommittedEntry),
    /// Replace the state with this snapshot's (a leader's, installed).
    Restore(StoredSnapshot),
    /// Take a snapshot now, whatever the policy says.
    SnapshotNow(SnapshotReply),
    /// The snapshot being written is done (from the writing thread).
    Written(Result<StoredSnapshot, String>),
}

/// What the applier tells the event loop.
pub enum ApplierEvent {
    /// A snapshot file is complete and durable; whoever asked for it waits
    /// in `replies` until the log it covers is released.
    SnapshotWritten {
        /// The file.
        snapshot: StoredSnapshot,
        /// Who asked for it.
        replies: Vec<SnapshotReply>,
    },
    /// The state machine cannot go on (a snapshot it cannot restore): the
    /// node stops.
    Failed(String),
}

/// Where and how the applier writes snapshots.
#[derive(Clone, Debug)]
pub struct SnapshotPlace {
    /// The directory of the node's snapshot files.
    pub dir: PathBuf,
    /// The node's identity, for the files' header.
    pub identity: Identity,
    /// When to take one, and the size of its frames.
    pub policy: SnapshotConfig,
    /// The index applied through, for the node's status and metrics
    /// (shared with the event loop, which reads it once per turn).
    pub applied: Arc<AtomicU64>,
}

/// The applier's end of things: its state machine and where it stands.
struct Applier<S> {
    /// Away only while a restore runs on the blocking pool.
    state_machine: Option<S>,
    place: SnapshotPlace,
    /// The last entry applied (or the snapshot restored).
    applied: SnapshotMeta,
    /// The index of the last snapshot taken or restored.
    last_snapshot: LogIndex,
    entries_since: u64,
    bytes_since: u64,
    writing: bool,
    /// The thread writing (or done writing) the last snapshot taken.
    writer: Option<std::thread::JoinHandle<()>>,
    /// Requests for a snapshot that the one being written does not serve:
    /// they arrived after it was taken.
    waiting: Vec<SnapshotReply>,
    /// Requests the snapshot being written serves.
    served: Vec<SnapshotReply>,
    /// For the writing thread's answer; weak, so that the channel closes
    /// when the event loop drops its end.
    inputs: mpsc::WeakUnboundedSender<ApplierInput>,
    events: mpsc::UnboundedSender<ApplierEvent>,
}

/// Restores `state_machine` from the snapshot file `snapshot` (verified as
/// it is read).
pub fn restore<S: StateMachine>(
    state_machine: &mut S,
    snapshot: &StoredSnapshot,
    cluster_id: u64,
) -> Result<(), String> {
    let (meta, mut reader) = storage::open_snapshot(&snapshot.path, cluster_id)
        .map_err(|fault| format!("cannot read the snapshot: {fault}"))?;
    state_machine.restore(meta, &mut reader).map_err(|e| {
        format!(
            "the state machine cannot restore {}: {e}",
            snapshot.path.display()
        )
    })
}

/// The applier for `state_machine`, whose state is as of `applied` (the
/// snapshot restored at start, or 0:0), as a future for the node's runtime
/// to run. It ends when the sender of `inputs` is dropped, after the
/// snapshot being written (if any) is done.
pub fn prepare<S: StateMachine>(
    state_machine: S,
    applied: SnapshotMeta,
    place: SnapshotPlace,
    inputs: (
        mpsc::UnboundedSender<ApplierInput>,
        mpsc::UnboundedReceiver<ApplierInput>,
    ),
    events: mpsc::UnboundedSender<ApplierEvent>,
) -> ApplierTask {
    let (sender, receiver) = inputs;
    let applier = Applier {
        state_machine: Some(state_machine),
        place,
        applied,
        last_snapshot: applied.index,
        entries_since: 0,
        bytes_since: 0,
        writing: false,
        writer: None,
        waiting: Vec::new(),
        served: Vec::new(),
        inputs: sender.downgrade(),
        events,
    };
    drop(sender);
    Box::pin(applier.run(receiver))
}

/// The applier's work, to be spawned on the node's runtime.
pub type ApplierTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The state machine is away only while a restore runs, which the applier
/// awaits before it takes its next input.
const STATE_MACHINE_IS_BACK: &str = "the state machine is back after every restore";

impl<S: StateMachine> Applier<S> {
    async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<ApplierInput>) {
        while let Some(input) = inputs.recv().await {
            match input {
                ApplierInput::Entry(entry) => self.apply(entry),
                ApplierInput::Restore(snapshot) => self.restore(snapshot).await,
                ApplierInput::SnapshotNow(reply) => self.snapshot_now(reply),
                ApplierInput::Written(result) => self.written(result),
            }
        }
        // The node stops once the snapshot being written is complete.
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }

    fn apply(&mut self, entry: CommittedEntry) {
        if entry.index <= self.applied.index {
            return; // the snapshot restored covers it
        }
        debug_assert_eq!(entry.index, self.applied.index.next(), "entries in order");
        self.applied = SnapshotMeta {
            index: entry.index,
            term: entry.term,
        };
        (self.place.applied).store(entry.index.0, Ordering::Relaxed);
        self.entries_since += 1;
        self.bytes_since += entry.data.len() as u64;
        self.state_machine
            .as_mut()
            .expect(STATE_MACHINE_IS_BACK)
            .apply(entry);
        if self.due() && !self.writing {
            self.take();
        }
    }

    /// Whether the policy calls for a snapshot.
    fn due(&self) -> bool {
        let policy = &self.place.policy;
        (policy.entries > 0 && self.entries_since >= policy.entries)
            || (policy.bytes > 0 && self.bytes_since >= policy.bytes)
    }

    /// Restores from `snapshot` on the blocking pool: reading a large file
    /// must not hold up the event loop that shares this thread.
    async fn restore(&mut self, snapshot: StoredSnapshot) {
        let mut state_machine = self.state_machine.take().expect(STATE_MACHINE_IS_BACK);
        let cluster_id = self.place.identity.cluster_id;
        let file = snapshot.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let outcome = restore(&mut state_machine, &file, cluster_id);
            (state_machine, outcome)
        })
        .await;
        let outcome = match restored {
            Ok((state_machine, outcome)) => {
                self.state_machine = Some(state_machine);
                outcome
            }
            Err(e) => {
                // The state machine panicked; without it nothing goes on.
                let _ = self
                    .events
                    .send(ApplierEvent::Failed(format!("the restore failed: {e}")));
                return;
            }
        };
        match outcome {
            Ok(()) => {
                tracing::info!(snapshot = %snapshot.meta, "the state machine restored a leader's snapshot");
                self.applied = snapshot.meta;
                (self.place.applied).store(snapshot.meta.index.0, Ordering::Relaxed);
                self.last_snapshot = snapshot.meta.index;
                self.entries_since = 0;
                self.bytes_since = 0;
            }
            Err(reason) => {
                let _ = self.events.send(ApplierEvent::Failed(reason));
            }
        }
    }

    fn snapshot_now(&mut self, reply: SnapshotReply) {
        if self.writing {
            self.waiting.push(reply);
        } else if self.applied.index <= self.last_snapshot {
            let _ = reply.send(Err(SnapshotError::NothingNew(self.last_snapshot)));
        } else {
            self.served.push(reply);
            self.take();
        }
    }

    /// Takes a frozen copy of the state as of the last entry applied and
    /// writes it on a thread of its own.
    fn take(&mut self) {
        let meta = self.applied;
        let writer = self
            .state_machine
            .as_ref()
            .expect(STATE_MACHINE_IS_BACK)
            .snapshot();
        self.writing = true;
        self.last_snapshot = meta.index;
        self.entries_since = 0;
        self.bytes_since = 0;
        let place = self.place.clone();
        let done = self.inputs.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("skiff-snapshot-{}", meta.index))
            .spawn(move || {
                let result = write(&place, meta, writer);
                if let Some(inputs) = done.upgrade() {
                    let _ = inputs.send(ApplierInput::Written(result));
                }
            });
        match spawned {
            Ok(writer) => {
                // The one before is done: its answer was received.
                if let Some(before) = self.writer.replace(writer) {
                    let _ = before.join();
                }
            }
            Err(e) => self.written(Err(format!("cannot start the snapshot thread: {e}"))),
        }
    }

    fn written(&mut self, result: Result<StoredSnapshot, String>) {
        self.writing = false;
        let replies = std::mem::take(&mut self.served);
        match result {
            Ok(snapshot) => {
                tracing::debug!(snapshot = %snapshot.meta, "snapshot written");
                let _ = self
                    .events
                    .send(ApplierEvent::SnapshotWritten { snapshot, replies });
            }
            Err(reason) => {
                tracing::error!(%reason, "taking a snapshot failed; the log is kept");
                for reply in replies {
                    let _ = reply.send(Err(SnapshotError::Failed(reason.clone())));
                }
            }
        }
        for reply in std::mem::take(&mut self.waiting) {
            self.snapshot_now(reply);
        }
        // Entries applied while it was written may have made another due.
        if self.due() && !self.writing {
            self.take();
        }
    }
}

fn write(
    place: &SnapshotPlace,
    meta: SnapshotMeta,
    writer: Box<dyn crate::state_machine::SnapshotWriter>,
) -> Result<StoredSnapshot, String> {
    let chunk_bytes = place.policy.chunk_bytes as usize;
    storage::write_snapshot(&place.dir, place.identity, meta, chunk_bytes, |out| {
        writer.write_to(out)
    })
    .map_err(|e| describe(&e, &place.dir))
}

/// An error with its causes, for a message.
fn describe(error: &storage::StorageError, dir: &Path) -> String {
    let mut text = format!("writing a snapshot in {}: {error}", dir.display());
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
