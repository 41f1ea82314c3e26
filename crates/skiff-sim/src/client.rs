//! Simulated clients: each submits appends with data no one has used before,
//! and linearizable reads, follows `NotLeader` hints, gives up on a request
//! after a timeout and moves on to a new one. A request's data (or read id)
//! is never sent twice, so the checkers can tell every execution of an
//! append, and every read, apart.
//!
//! A share of the requests ([`SimOptions::read_share`](crate::SimOptions))
//! are reads. A read goes to the believed leader half the time and to a
//! random node otherwise, so that followers serve reads too (through the
//! leader's read index).

use crate::app::AppState;
use crate::checker::linearizable_read::ReadFloor;
use crate::queue::Micros;
use crate::rng::{Chance, SimRng};
use skiff_core::{Bytes, CommitError, LogIndex, NodeId, ReadError, ReadId};

/// How long a client waits for an answer before it gives up on a request.
pub const REQUEST_TIMEOUT_US: Micros = 500_000;
/// Pause after an acknowledgement before the next request: up to 2 ms.
const THINK_US_MAX: Micros = 2_000;
/// Pause before following a hint to the leader.
const REDIRECT_US: Micros = 1_000;
/// Pause before trying another node when no leader is known.
const NO_LEADER_US: Micros = 20_000;

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Append this unique datum.
    Append(Bytes),
    /// A linearizable read of the whole application state, named by a
    /// unique id.
    Read(ReadId),
}

/// A request on its way or waiting for an answer.
#[derive(Clone, Debug)]
pub struct Pending {
    /// What is asked.
    pub request: Request,
    /// The node index it was sent to.
    pub node: usize,
    /// The incarnation of that node that took the request, once it arrived.
    /// Only that incarnation's answer counts: a restarted node has forgotten it.
    pub incarnation: Option<u64>,
    /// When it was submitted.
    pub submitted_at: Micros,
    /// The world step in which it was submitted (set by the world).
    pub submitted_step: u64,
    /// What a read must see, fixed when it is sent (set by the world).
    pub floor: ReadFloor,
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
    /// A read's answer: the node's application state once it had applied
    /// through the read's index.
    Read(AppState),
    /// A read refused because too many wait: try another node.
    Busy,
}

impl Answer {
    /// The answer carried by a `Commit` action's result.
    pub fn of(result: Result<LogIndex, CommitError>) -> Answer {
        match result {
            Ok(index) => Answer::Acked(index),
            Err(CommitError::NotLeader { leader }) => Answer::NotLeader(leader),
            Err(CommitError::Overwritten { .. }) => Answer::Overwritten,
            // The leader hands over to `to`: ask there.
            Err(CommitError::TransferInProgress { to }) => Answer::NotLeader(Some(to)),
            // A refusal of a kind added later: look for the leader again.
            Err(_) => Answer::NotLeader(None),
        }
    }

    /// The answer carried by a `ReadFailed` action's error.
    pub fn of_read_error(error: ReadError) -> Answer {
        match error {
            ReadError::NotLeader { leader } => Answer::NotLeader(leader),
            // Busy, or a refusal of a kind added later: back off elsewhere.
            _ => Answer::Busy,
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

    /// Starts a request: a read with chance `read`, else an append of new
    /// data. An append goes to the believed leader or else to a random one
    /// of `nodes`; a read also goes to a random node half the time.
    /// Returns the request.
    pub fn submit(
        &mut self,
        now: Micros,
        nodes: usize,
        read: Chance,
        rng: &mut SimRng,
    ) -> &mut Pending {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.attempts += 1;
        let (request, hint) = if rng.chance(read) {
            let hint = self.leader_hint.filter(|_| rng.below(2) == 0);
            (Request::Read(read_id(self.id, sequence)), hint)
        } else {
            let data = Bytes::from(format!("c{}-{sequence}", self.id));
            (Request::Append(data), self.leader_hint)
        };
        let node = hint.unwrap_or_else(|| rng.index(nodes));
        self.pending.insert(Pending {
            request,
            node,
            incarnation: None,
            submitted_at: now,
            submitted_step: 0,
            floor: ReadFloor::default(),
            attempt: self.attempts,
        })
    }

    /// Whether the answer of `node` (index) in `incarnation` about the
    /// append of `data` is the one this client waits for.
    pub fn awaits(&self, node: usize, incarnation: u64, data: &[u8]) -> bool {
        self.awaits_from(node, incarnation)
            .is_some_and(|request| matches!(request, Request::Append(d) if d == data))
    }

    /// Whether the answer of `node` (index) in `incarnation` about read
    /// `id` is the one this client waits for.
    pub fn awaits_read(&self, node: usize, incarnation: u64, id: ReadId) -> bool {
        self.awaits_from(node, incarnation) == Some(&Request::Read(id))
    }

    fn awaits_from(&self, node: usize, incarnation: u64) -> Option<&Request> {
        self.pending
            .as_ref()
            .filter(|p| p.node == node && p.incarnation == Some(incarnation))
            .map(|p| &p.request)
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
            // A follower may have answered: the hint stays what it was.
            Answer::Read(_) => rng.below(THINK_US_MAX + 1),
            Answer::NotLeader(Some(leader)) => {
                let index = (leader.0 as usize).wrapping_sub(1);
                self.leader_hint = (index < nodes).then_some(index);
                REDIRECT_US
            }
            Answer::NotLeader(None) | Answer::Overwritten | Answer::Busy => {
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

/// The id of read `sequence` of client `client`: unique in the run, and
/// readable in a trace (`client * 10^9 + sequence`).
pub fn read_id(client: usize, sequence: u64) -> ReadId {
    ReadId(client as u64 * READ_IDS_PER_CLIENT + sequence)
}

/// Read ids of one client; a run submits far fewer requests per client.
const READ_IDS_PER_CLIENT: u64 = 1_000_000_000;

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

    const APPENDS: Chance = Chance::NEVER;

    fn appended(pending: &Pending) -> Bytes {
        match &pending.request {
            Request::Append(data) => data.clone(),
            Request::Read(id) => panic!("a read {id:?} where an append was asked for"),
        }
    }

    #[test]
    fn data_is_never_reused_and_hints_are_followed() {
        let mut rng = SimRng::new(1);
        let mut client = Client::new(3);
        let first = appended(client.submit(0, 5, APPENDS, &mut rng));
        let node = client.pending.as_ref().map(|p| p.node).unwrap_or(0);
        let (_, pause) = client
            .answer(node, Answer::NotLeader(Some(NodeId(4))), 5, &mut rng)
            .expect("was pending");
        assert_eq!(pause, REDIRECT_US);
        let second = client.submit(10, 5, APPENDS, &mut rng);
        assert_eq!(second.node, 3, "follows the hint to node 4 (index 3)");
        assert_ne!(appended(second), first);
        assert_eq!(first, Bytes::from("c3-1"));
    }

    #[test]
    fn only_the_awaited_incarnation_answers() {
        let mut rng = SimRng::new(1);
        let mut client = Client::new(1);
        client.submit(0, 3, APPENDS, &mut rng);
        let pending = client.pending.as_mut().expect("pending");
        pending.incarnation = Some(2);
        let node = pending.node;
        let data = appended(pending);
        assert!(client.awaits(node, 2, &data));
        assert!(!client.awaits(node, 3, &data));
        assert!(!client.awaits(node, 2, b"other"));
        assert!(!client.awaits_read(node, 2, read_id(1, 1)));
    }

    #[test]
    fn reads_have_unique_ids_go_anywhere_and_keep_the_hint() {
        let mut rng = SimRng::new(9);
        let mut client = Client::new(2);
        client.leader_hint = Some(1);
        let (mut ids, mut nodes) = (Vec::new(), [0; 5]);
        for now in 0..200 {
            let pending = client.submit(now, 5, Chance::new(1.0), &mut rng);
            let Request::Read(id) = pending.request else {
                panic!("every request is a read");
            };
            ids.push(id);
            nodes[pending.node] += 1;
            let node = pending.node;
            client.pending.as_mut().expect("pending").incarnation = Some(0);
            assert!(client.awaits_read(node, 0, id));
            let state = AppState::default();
            client.answer(node, Answer::Read(state), 5, &mut rng);
            assert_eq!(
                client.leader_hint,
                Some(1),
                "a read's answer keeps the hint"
            );
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        assert!(ids.iter().all(|id| id.0 / READ_IDS_PER_CLIENT == 2));
        // Half to the believed leader, the rest spread over all five.
        assert!(nodes[1] > 100 && nodes.iter().all(|n| *n > 0), "{nodes:?}");
        let mut mixed = Client::new(1);
        let reads = (0..1000)
            .filter(|now| {
                let pending = mixed.submit(*now, 3, Chance::new(0.3), &mut rng);
                matches!(pending.request, Request::Read(_))
            })
            .count();
        assert!((200..400).contains(&reads), "{reads} reads of 1000");
    }

    #[test]
    fn a_timeout_ends_only_its_own_attempt() {
        let mut rng = SimRng::new(1);
        let mut client = Client::new(1);
        let attempt = client.submit(0, 3, APPENDS, &mut rng).attempt;
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
