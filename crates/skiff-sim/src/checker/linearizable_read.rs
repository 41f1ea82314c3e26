//! Linearizable Read: the state a read returns is the fold of the agreed
//! committed log through the index `r` it was served at (the node's
//! applied index), and `r` covers everything the client could already
//! know of when it sent the read: the index of every append acknowledged
//! before, and the `r` of every read answered before.
//!
//! Together these place each read at a point between its sending and its
//! answer: it sees a prefix of the one agreed log (so no write it sees can
//! be undone, and none is missing in the middle), that prefix includes
//! every write that completed before the read began, and reads never go
//! back in real time. A read served from a leader that no longer leads,
//! without the round of heartbeats that ReadIndex asks for, returns a
//! prefix that misses a newer leader's acknowledged append: this rule
//! catches it.
//!
//! The world checks each read as it is answered, with the floor
//! ([`ReadFloor`]) fixed when the read was sent; [`History::check`]
//! (crate::history::History::check) checks every read of the run again at
//! the end, computing the floors afresh from the recorded order of events.

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use crate::app::AppState;
use skiff_core::{LogIndex, NodeId, ReadId};

/// What a read must see, fixed when it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadFloor {
    /// The highest index of an append acknowledged before the read was sent.
    pub acked: LogIndex,
    /// The highest index a read answered before it was sent was served at.
    pub read: LogIndex,
}

/// The running floor: what a read sent now must see.
#[derive(Debug, Default)]
pub struct LinearizableRead {
    floor: ReadFloor,
}

impl LinearizableRead {
    /// The floor of a read sent now.
    pub fn floor(&self) -> ReadFloor {
        self.floor
    }

    /// An append was acknowledged at `index`.
    pub fn observe_ack(&mut self, index: LogIndex) {
        self.floor.acked = self.floor.acked.max(index);
    }

    /// A read was answered with the state through `index`.
    pub fn observe_read(&mut self, index: LogIndex) {
        self.floor.read = self.floor.read.max(index);
    }
}

/// Checks read `id`, sent with `floor`, answered by `node` with `state`.
pub fn check(
    node: NodeId,
    id: ReadId,
    floor: ReadFloor,
    state: &AppState,
    agreed: &AgreedLog,
) -> Result<(), Failure> {
    let r = state.applied;
    let fail = |detail: String| Err(Failure::new(Rule::LinearizableRead, vec![node], detail));
    match agreed.fold_through(r) {
        Some(fold) if fold == *state => {}
        Some(fold) => {
            return fail(format!(
                "node {node} answered read {} with {state}, but the committed log folds \
                 into {fold} through index {r}",
                id.0
            ))
        }
        None => {
            return fail(format!(
                "node {node} answered read {} with {state}, past the committed log, which \
                 ends at {}",
                id.0,
                agreed.len()
            ))
        }
    }
    if r < floor.acked {
        return fail(format!(
            "node {node} answered read {} with the state through index {r}, but an append \
             acknowledged at index {} before the read was sent is missing (a stale read)",
            id.0, floor.acked
        ));
    }
    if r < floor.read {
        return fail(format!(
            "node {node} answered read {} with the state through index {r}, behind the \
             index {} of a read answered before it was sent (reads went back in time)",
            id.0, floor.read
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{Bytes, Term};

    fn agreed(entries: u64) -> AgreedLog {
        let mut log = AgreedLog::default();
        for i in 1..=entries {
            log.push(Term(1), Bytes::from(format!("d{i}")), Term(1));
        }
        log
    }

    #[test]
    fn a_read_must_see_the_agreed_prefix_and_everything_before_it() {
        let log = agreed(5);
        let through = |i| log.fold_through(LogIndex(i)).expect("committed");
        let (node, id) = (NodeId(2), ReadId(7));
        let mut reads = LinearizableRead::default();
        reads.observe_ack(LogIndex(3));
        let floor = reads.floor();
        assert_eq!(floor.acked, LogIndex(3));
        assert_eq!(check(node, id, floor, &through(3), &log), Ok(()));
        reads.observe_read(LogIndex(3));
        assert_eq!(reads.floor().read, LogIndex(3));
        // Stale: misses the acknowledged append at 3.
        let stale = check(node, id, floor, &through(2), &log).unwrap_err();
        assert_eq!(stale.rule, Rule::LinearizableRead);
        assert!(stale.detail.contains("stale read"), "{}", stale.detail);
        // Behind an earlier read.
        let behind = ReadFloor {
            acked: LogIndex(0),
            read: LogIndex(4),
        };
        let back = check(node, id, behind, &through(3), &log).unwrap_err();
        assert!(back.detail.contains("back in time"), "{}", back.detail);
        // A state that is not the agreed log's.
        let mut forged = through(4);
        forged.chain ^= 1;
        let wrong = check(node, id, floor, &forged, &log).unwrap_err();
        assert!(wrong.detail.contains("folds into"), "{}", wrong.detail);
        let past = check(
            node,
            id,
            floor,
            &AppState {
                applied: LogIndex(6),
                ..through(5)
            },
            &log,
        );
        assert!(past.unwrap_err().detail.contains("past the committed log"));
    }
}
