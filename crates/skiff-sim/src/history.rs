//! What the clients were told: every acknowledged append and every read
//! answer, in the order they came. At the end of a run the whole history
//! is checked once more against the agreed sequence (the checkers already
//! check each answer as it happens; the agreed sequence only grows, so the
//! two must agree, and this says so for the record of the whole run).
//!
//! The reads are checked for linearizability
//! ([`linearizable_read`](crate::checker::linearizable_read)) with floors
//! computed afresh from the history alone: a read sent at world step `s`
//! must see every append acknowledged, and every read answered, at a step
//! before `s`. Steps order the run's events totally (a request is sent by
//! an event of its own), so "before" needs no clock.

use crate::app::AppState;
use crate::checker::agreed::AgreedLog;
use crate::checker::linearizable_read::{self, ReadFloor};
use crate::checker::{appended_once, Failure};
use crate::queue::Micros;
use skiff_core::{Bytes, LogIndex, NodeId, ReadId};

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
    /// The world step in which it came.
    pub acked_step: u64,
}

/// One read answered to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The client's number (1-based).
    pub client: usize,
    /// The node that answered it.
    pub node: NodeId,
    /// The read.
    pub id: ReadId,
    /// The application state returned (served at index `state.applied`).
    pub state: AppState,
    /// When the client sent it.
    pub sent_at: Micros,
    /// The world step in which the client sent it.
    pub sent_step: u64,
    /// When the answer came.
    pub answered_at: Micros,
    /// The world step in which the answer came.
    pub answered_step: u64,
}

/// Every acknowledgement and read answer of a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    acks: Vec<Ack>,
    reads: Vec<Read>,
}

impl History {
    /// Records an acknowledgement.
    pub fn record(&mut self, ack: Ack) {
        self.acks.push(ack);
    }

    /// Records a read answer.
    pub fn record_read(&mut self, read: Read) {
        self.reads.push(read);
    }

    /// Every acknowledgement so far, in order.
    pub fn acks(&self) -> &[Ack] {
        &self.acks
    }

    /// Every read answer so far, in order.
    pub fn reads(&self) -> &[Read] {
        &self.reads
    }

    /// Checks every acknowledgement and every read against the agreed
    /// sequence, and every read against what was known when it was sent.
    pub fn check(&self, agreed: &AgreedLog) -> Result<(), Failure> {
        for ack in &self.acks {
            appended_once::check_ack(ack.node, &ack.data, ack.index, agreed)?;
        }
        for (read, floor) in self.read_floors() {
            linearizable_read::check(read.node, read.id, floor, &read.state, agreed)?;
        }
        Ok(())
    }

    /// Each read with its floor: the highest index acknowledged, and the
    /// highest index a read was served at, in steps before it was sent.
    fn read_floors(&self) -> Vec<(&Read, ReadFloor)> {
        let mut acks: Vec<(u64, LogIndex)> =
            self.acks.iter().map(|a| (a.acked_step, a.index)).collect();
        let mut served: Vec<(u64, LogIndex)> = self
            .reads
            .iter()
            .map(|r| (r.answered_step, r.state.applied))
            .collect();
        acks.sort_unstable();
        served.sort_unstable();
        let mut reads: Vec<&Read> = self.reads.iter().collect();
        reads.sort_by_key(|read| read.sent_step);
        let (mut acks, mut served) = (acks.into_iter().peekable(), served.into_iter().peekable());
        let mut floor = ReadFloor::default();
        let mut floors = Vec::with_capacity(reads.len());
        for read in reads {
            while let Some((_, index)) = acks.next_if(|(step, _)| *step < read.sent_step) {
                floor.acked = floor.acked.max(index);
            }
            while let Some((_, index)) = served.next_if(|(step, _)| *step < read.sent_step) {
                floor.read = floor.read.max(index);
            }
            floors.push((read, floor));
        }
        floors
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
            acked_step: 1,
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
