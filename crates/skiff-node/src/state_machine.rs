//! The application a node replicates, as the node sees it: something that
//! applies committed entries in order, can be captured in a snapshot while
//! it goes on applying, and can be restored from one.
//!
//! With a [`StateMachine`] the node owns the whole life of the application's
//! state: it applies the committed log to it, snapshots it by the
//! configured policy (`[snapshot]` in the cluster's TOML), discards the log
//! the snapshot covers, restores it from the newest snapshot at restart, and
//! replaces it with a leader's snapshot when this node fell too far behind.

use crate::api::CommittedEntry;
use skiff_core::SnapshotMeta;
use std::io::{self, Read, Write};

/// An application whose state is a deterministic function of the committed
/// log: every replica that applies the same entries holds the same state.
pub trait StateMachine: Send + 'static {
    /// Applies the committed entry `entry`. Entries arrive in index order,
    /// each once, starting after the state the last [`restore`] (if any)
    /// left. Empty data is a leader's no-op or a read barrier: skip it.
    ///
    /// [`restore`]: StateMachine::restore
    fn apply(&mut self, entry: CommittedEntry);

    /// A frozen copy of the state as of the last entry applied, for the node
    /// to write in the background while it goes on applying. It must be
    /// cheap to take (a clone of shared, immutable parts, say): the node
    /// takes it between two applies.
    fn snapshot(&self) -> Box<dyn SnapshotWriter>;

    /// Replaces the whole state with the one `reader` holds, which a
    /// [`SnapshotWriter`] of this application wrote (on this node or
    /// another) as of `snapshot.index`. The node has checked the bytes'
    /// checksum; an error here means the application cannot read its own
    /// format, and stops the node.
    fn restore(&mut self, snapshot: SnapshotMeta, reader: &mut dyn Read) -> io::Result<()>;
}

/// A frozen copy of an application's state, written once to a snapshot file.
pub trait SnapshotWriter: Send + 'static {
    /// Writes the state to `out`, in a format the application's
    /// [`StateMachine::restore`] reads back. Runs on a blocking thread.
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> io::Result<()>;
}
