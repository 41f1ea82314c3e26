//! State Machine Safety (Raft, Figure 3): if a node has applied an entry at
//! a given index, no other node ever applies a different entry at that
//! index. Checked on the commit streams: every node's `Commit` actions,
//! from index 1 after each (re)start, must be a prefix of one agreed
//! sequence, in order, without gaps or repeats. A node restarted from a
//! snapshot, or that installed one, continues after the snapshot's index
//! (Snapshot State checks what the snapshot holds).

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use skiff_core::render::DataText;
use skiff_core::{Bytes, LogIndex, NodeId, Term};

/// The agreed sequence and where each node's commit stream stands.
#[derive(Debug, Default)]
pub struct StateMachineSafety {
    agreed: AgreedLog,
    /// Per node index: the next index its stream must commit.
    next: Vec<LogIndex>,
}

/// What one commit did to the agreed sequence.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The index was already agreed, on the same data.
    Known,
    /// The commit extended the agreed sequence; `earlier` is where the same
    /// non-empty data had committed before, if it had.
    Extended {
        /// An earlier index holding the same data.
        earlier: Option<LogIndex>,
    },
}

impl StateMachineSafety {
    /// A checker for nodes `1..=nodes`.
    pub fn new(nodes: usize) -> StateMachineSafety {
        StateMachineSafety {
            agreed: AgreedLog::default(),
            next: vec![LogIndex(1); nodes],
        }
    }

    /// The agreed sequence so far.
    pub fn agreed(&self) -> &AgreedLog {
        &self.agreed
    }

    /// `node` restarted from a snapshot through `snapshot_index` (0: none),
    /// or installed one: its stream continues after it.
    pub fn restarted(&mut self, node: NodeId, snapshot_index: LogIndex) {
        if let Some(next) = self.next.get_mut(node_position(node)) {
            *next = snapshot_index.next();
        }
    }

    /// `node`, in `node_term`, committed `data` (stored with `term`) at `index`.
    pub fn observe_commit(
        &mut self,
        node: NodeId,
        node_term: Term,
        index: LogIndex,
        term: Term,
        data: &Bytes,
    ) -> Result<CommitOutcome, Failure> {
        let Some(next) = self.next.get_mut(node_position(node)) else {
            return Err(failure(node, format!("commit from unknown node {node}")));
        };
        if index != *next {
            let expected = *next;
            return Err(failure(
                node,
                format!("node {node} committed index {index} when its stream was at {expected}"),
            ));
        }
        *next = index.next();
        if index > LogIndex(self.agreed.len()).next() {
            let known = self.agreed.len();
            return Err(failure(
                node,
                format!("node {node} committed index {index}, but the committed log known ends at {known}"),
            ));
        }
        if let Some((agreed_term, agreed_data)) = self.agreed.get(index) {
            if agreed_term == term && agreed_data == data {
                return Ok(CommitOutcome::Known);
            }
            return Err(failure(
                node,
                format!(
                    "node {node} committed {term}:{} at index {index}, \
                     where {agreed_term}:{} was committed before",
                    DataText(data),
                    DataText(agreed_data)
                ),
            ));
        }
        let earlier = self.agreed.push(term, data.clone(), node_term);
        Ok(CommitOutcome::Extended { earlier })
    }
}

fn node_position(node: NodeId) -> usize {
    (node.0 as usize).wrapping_sub(1)
}

fn failure(node: NodeId, detail: String) -> Failure {
    Failure::new(Rule::StateMachineSafety, vec![node], detail)
}
