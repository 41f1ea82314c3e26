//! Simulated clients: each submits appends with data no one has used before,
//! follows `NotLeader` hints, gives up on a request after a timeout and
//! moves on to new data. A request's data is never sent twice, so the
//! checkers can tell every execution of an append apart.

use crate::queue::Micros;
use crate::rng::SimRng;
use skiff_core::{Bytes, CommitError, LogIndex, NodeId};

/// How long a client waits for an answer before it gives up on a request.
pub const REQUEST_TIMEOUT_US: Micros = 500_000;
/// Pause after an acknowledgement before the next request: up to 2 ms.
const THINK_US_MAX: Micros = 2_000;
/// Pause before following a hint to the leader.
const REDIRECT_US: Micros = 1_000;
/// Pause before trying another node when no leader is known.
const NO_LEADER_US: Micros = 20_000;

/// A request on its way or waiting for an answer.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The unique data of the request.
    pub data: Bytes,
    /// The node index it was sent to.
    pub node: usize,
    /// The incarnation of that node that took the request, once it arrived.
    /// Only that incarnation's answer counts: a restarted node has forgotten it.
    pub incarnation: Option<u64>,
    /// When it was submitted.
    pub submitted_at: Micros,
    /// Tells this request's timeout apart from older ones.
    pub attempt: u64,
}

/// An answer a node gives a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Committed at this index.
    Acked(LogIndex),
    /// Refused: not the leader.
    NotLeader(Option<NodeId>),
    /// Appended but overwritten by a later leader.
    Overwritten,
}

impl Answer {
    /// The answer carried by a `Commit` action's result.
    pub fn of(result: Result<LogIndex, CommitError>) -> Answer {
        match result {
            Ok(index) => Answer::Acked(index),
            Err(CommitError::NotLeader { leader }) => Answer::NotLeader(leader),
            Err(CommitError::Overwritten { .. }) => Answer::Overwritten,
            // A refusal of a kind added later: look for the leader again.
            Err(_) => Answer::NotLeader(None),
        }
    }
}

/// One client.
#[derive(Clone, Debug)]
pub struct Client {
    /// Its number, part of every datum it makes (`c<id>-<sequence>`).
    pub id: usize,
    next_sequence: u64,
    attempts: u64,
    /// The node index it believes leads.
    pub leader_hint: Option<usize>,
    /// The request in progress.
    pub pending: Option<Pending>,
}

impl Client {
    /// Client `id`, with nothing in progress.
    pub fn new(id: usize) -> Client {
        Client {
            id,
            next_sequence: 1,
            attempts: 0,
            leader_hint: None,
            pending: None,
        }
    }

    /// Starts a request with new data, to the believed leader or else to a
    /// random one of `nodes`. Returns the request.
    pub fn submit(&mut self, now: Micros, nodes: usize, rng: &mut SimRng) -> &Pending {
        let data = Bytes::from(format!("c{}-{}", self.id, self.next_sequence));
        self.next_sequence += 1;
        self.attempts += 1;
        let node = self.leader_hint.unwrap_or_else(|| rng.index(nodes));
        self.pending.insert(Pending {
            data,
            node,
            incarnation: None,
            submitted_at: now,
            attempt: self.attempts,
        })
    }

    /// Whether the answer of `node` (index) in `incarnation` about `data`
    /// is the one this client waits for.
    pub fn awaits(&self, node: usize, incarnation: u64, data: &[u8]) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.node == node && p.incarnation == Some(incarnation) && p.data == data)
    }

    /// Takes `answer` from node index `node` and returns the finished request
    /// and how long to wait before the next one.
    pub fn answer(
        &mut self,
        node: usize,
        answer: Answer,
        nodes: usize,
        rng: &mut SimRng,
    ) -> Option<(Pending, Micros)> {
        let pending = self.pending.take()?;
        let pause = match answer {
            Answer::Acked(_) => {
                self.leader_hint = Some(node);
                rng.below(THINK_US_MAX + 1)
            }
            Answer::NotLeader(Some(leader)) => {
                let index = (leader.0 as usize).wrapping_sub(1);
                self.leader_hint = (index < nodes).then_some(index);
                REDIRECT_US
            }
            Answer::NotLeader(None) | Answer::Overwritten => {
                self.leader_hint = Some(other_than(node, nodes, rng));
                NO_LEADER_US
            }
        };
        Some((pending, pause))
    }

    /// The request of `attempt` timed out; returns whether it was still
    /// pending (so the client moves on).
    pub fn time_out(&mut self, attempt: u64) -> bool {
        if self.pending.as_ref().is_some_and(|p| p.attempt == attempt) {
            self.pending = None;
            self.leader_hint = None;
            return true;
        }
        false
    }
}

/// A node index other than `node`, when there is one.
fn other_than(node: usize, nodes: usize, rng: &mut SimRng) -> usize {
    if nodes < 2 {
        return node;
    }
    let pick = rng.index(nodes - 1);
    if pick >= node {
        pick + 1
    } else {
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_never_reused_and_hints_are_followed() {
        let mut rng = SimRng::new(1);
        let mut client = Client::new(3);
        let first = client.submit(0, 5, &mut rng).data.clone();
        let node = client.pending.as_ref().map(|p| p.node).unwrap_or(0);
        let (_, pause) = client
            .answer(node, Answer::NotLeader(Some(NodeId(4))), 5, &mut rng)
            .expect("was pending");
        assert_eq!(pause, REDIRECT_US);
        let second = client.submit(10, 5, &mut rng);
        assert_eq!(second.node, 3, "follows the hint to node 4 (index 3)");
        assert_ne!(second.data, first);
        assert_eq!(first, Bytes::from("c3-1"));
    }

    #[test]
    fn only_the_awaited_incarnation_answers() {
        let mut rng = SimRng::new(1);
        let mut client = Client::new(1);
        client.submit(0, 3, &mut rng);
        let pending = client.pending.as_mut().expect("pending");
        pending.incarnation = Some(2);
        let (node, data) = (pending.node, pending.data.clone());
        assert!(client.awaits(node, 2, &data));
        assert!(!client.awaits(node, 3, &data));
        assert!(!client.awaits(node, 2, b"other"));
    }

    #[test]
    fn a_timeout_ends_only_its_own_attempt() {
        let mut rng = SimRng::new(1);
        let mut client = Client::new(1);
        let attempt = client.submit(0, 3, &mut rng).attempt;
        assert!(!client.time_out(attempt + 1));
        assert!(client.time_out(attempt));
        assert!(client.pending.is_none());
        assert!(!client.time_out(attempt));
    }

    #[test]
    fn no_leader_means_another_node() {
        let mut rng = SimRng::new(5);
        for node in 0..4 {
            for _ in 0..20 {
                let other = other_than(node, 4, &mut rng);
                assert!(other < 4 && other != node);
            }
        }
    }
}
