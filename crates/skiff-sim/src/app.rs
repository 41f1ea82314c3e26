//! The simulated application: what each node folds its committed entries
//! into, and what its snapshots hold. Small and deterministic, so that a
//! checker can compare any node's state with the fold of the agreed log at
//! the same index in O(1): the applied index, how many non-empty entries
//! were applied, their bytes (the snapshot's modelled size) and a hash
//! chain of their data in order (any entry lost, changed, added or
//! reordered changes it).

use crate::hash::StableHasher;
use skiff_core::{LogIndex, SnapshotMeta};
use std::fmt;

/// The application state after applying the committed log through `applied`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppState {
    /// The last index applied (0: nothing yet).
    pub applied: LogIndex,
    /// Non-empty entries applied (a leader's empty entry changes nothing).
    pub count: u64,
    /// Their data, in bytes.
    pub bytes: u64,
    /// The hash chain of their data, in index order.
    pub chain: u64,
}

/// What a snapshot file holds beyond its data: a fixed header's worth.
const SNAPSHOT_HEADER_BYTES: u64 = 64;

impl AppState {
    /// Applies the entry committed at the index after `applied`.
    pub fn apply(&mut self, data: &[u8]) {
        self.applied = self.applied.next();
        if data.is_empty() {
            return;
        }
        self.count += 1;
        self.bytes += data.len() as u64;
        let mut h = StableHasher::default();
        h.word(self.chain);
        h.bytes(data);
        self.chain = h.value();
    }

    /// The modelled size of a snapshot of this state, in bytes.
    pub fn snapshot_bytes(&self) -> u64 {
        SNAPSHOT_HEADER_BYTES + self.bytes
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "applied={} count={} bytes={} chain={:016x}",
            self.applied, self.count, self.bytes, self.chain
        )
    }
}

/// A snapshot as a driver holds it: its name and the application state it
/// captured, through `meta.index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Its last index and term.
    pub meta: SnapshotMeta,
    /// The application state through `meta.index`.
    pub state: AppState,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(data: &[&str]) -> AppState {
        let mut state = AppState::default();
        for datum in data {
            state.apply(datum.as_bytes());
        }
        state
    }

    #[test]
    fn the_fold_tells_order_loss_and_change_apart() {
        let base = fold(&["a", "", "b"]);
        assert_eq!(base.applied, LogIndex(3));
        assert_eq!((base.count, base.bytes), (2, 2));
        assert_eq!(base.snapshot_bytes(), 66);
        assert_eq!(base, fold(&["a", "", "b"]));
        for other in [vec!["b", "", "a"], vec!["a", "b"], vec!["a", "", "c"]] {
            assert_ne!(base, fold(&other), "{other:?}");
        }
        // An empty entry moves the index only.
        let (with, without) = (fold(&["a", ""]), fold(&["a"]));
        assert_eq!((with.count, with.chain), (without.count, without.chain));
        assert_ne!(with.applied, without.applied);
    }
}
