//! What the clients were told: every acknowledged append, in the order the
//! acknowledgements came. At the end of a run the whole history is checked
//! once more against the agreed sequence (the checkers already check each
//! acknowledgement as it happens; the agreed sequence only grows, so the
//! two must agree, and this says so for the record of the whole run).

use crate::checker::agreed::AgreedLog;
use crate::checker::{appended_once, Failure};
use crate::queue::Micros;
use skiff_core::{Bytes, LogIndex, NodeId};

/// One acknowledged append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The client's number (1-based, as in its data `c<client>-<sequence>`).
    pub client: usize,
    /// The node that acknowledged it.
    pub node: NodeId,
    /// The appended data.
    pub data: Bytes,
    /// The index it was acknowledged at.
    pub index: LogIndex,
    /// When the client submitted it.
    pub submitted_at: Micros,
    /// When the acknowledgement came.
    pub acked_at: Micros,
}

/// Every acknowledgement of a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    acks: Vec<Ack>,
}

impl History {
    /// Records an acknowledgement.
    pub fn record(&mut self, ack: Ack) {
        self.acks.push(ack);
    }

    /// Every acknowledgement so far, in order.
    pub fn acks(&self) -> &[Ack] {
        &self.acks
    }

    /// Checks every acknowledgement against the agreed sequence.
    pub fn check(&self, agreed: &AgreedLog) -> Result<(), Failure> {
        for ack in &self.acks {
            appended_once::check_ack(ack.node, &ack.data, ack.index, agreed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Rule;
    use skiff_core::Term;

    #[test]
    fn a_history_that_disagrees_with_the_agreed_sequence_fails() {
        let mut agreed = AgreedLog::default();
        agreed.push(Term(1), Bytes::from("c1-1"), Term(1));
        let ack = |data: &'static str, index: u64| Ack {
            client: 1,
            node: NodeId(1),
            data: Bytes::from(data),
            index: LogIndex(index),
            submitted_at: 0,
            acked_at: 1,
        };
        let mut history = History::default();
        history.record(ack("c1-1", 1));
        assert_eq!(history.check(&agreed), Ok(()));
        history.record(ack("c1-2", 1));
        let failure = history.check(&agreed).unwrap_err();
        assert_eq!(failure.rule, Rule::AppendedOnce);
        assert_eq!(history.acks().len(), 2);
    }
}
