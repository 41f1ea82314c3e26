//! raft-rs driven in memory: one `RawNode<MemStorage>` per peer, handled
//! the way raft-rs's own examples (`five_mem_node`, `single_mem_node`) and
//! the `RawNode` docs prescribe, with the batching options a throughput-minded
//! user would turn on.

use crate::cluster::Cluster;
use raft::eraftpb::{ConfState, Entry, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};
use std::mem;

/// Three or five `raft::RawNode`s joined by in-memory queues.
pub struct RaftCluster {
    nodes: Vec<RawNode<MemStorage>>,
    /// Messages to deliver in this round.
    inbox: Vec<Message>,
    /// Messages sent during this round, delivered in the next.
    outbox: Vec<Message>,
    /// Client entries (non-empty data) the leader has seen committed.
    leader_commits: u64,
}

const LEADER: u64 = 1;

/// The configuration every node gets. Ticks never happen in this bench, so
/// the tick counts only need to be valid.
fn config(id: u64) -> Config {
    let config = Config {
        id,
        election_tick: 10,
        heartbeat_tick: 3,
        // The same byte bound as skiff's `bytes_per_message_max`; raft-rs's
        // default (0) would put one entry in each message.
        max_size_per_msg: 1 << 20,
        // raft-rs's default window.
        max_inflight_msgs: 256,
        // Followers learn the commit index from the next append, as in skiff,
        // instead of from an extra broadcast after every commit.
        skip_bcast_commit: true,
        // Proposals made before the next Ready join the append message
        // already queued for a follower, instead of one message each.
        batch_append: true,
        ..Config::default()
    };
    config.validate().expect("valid raft-rs config");
    config
}

/// Handles one Ready of `node` as the raft-rs examples do: send the leader's
/// messages at once, apply committed entries, persist entries and hard
/// state, send the messages that had to wait for persistence, advance, and
/// handle the LightReady. Returns the client entries committed.
fn handle_ready(node: &mut RawNode<MemStorage>, outbox: &mut Vec<Message>) -> u64 {
    if !node.has_ready() {
        return 0;
    }
    let mut ready = node.ready();
    let mut committed = 0;
    if !ready.messages().is_empty() {
        outbox.extend(ready.take_messages());
    }
    if !ready.snapshot().is_empty() {
        let snapshot = ready.snapshot().clone();
        node.store()
            .wl()
            .apply_snapshot(snapshot)
            .expect("snapshot");
    }
    committed += count_client_entries(&ready.take_committed_entries());
    if !ready.entries().is_empty() {
        node.store().wl().append(ready.entries()).expect("append");
    }
    if let Some(hard_state) = ready.hs() {
        node.store().wl().set_hardstate(hard_state.clone());
    }
    if !ready.persisted_messages().is_empty() {
        outbox.extend(ready.take_persisted_messages());
    }
    let mut light = node.advance(ready);
    if let Some(commit) = light.commit_index() {
        node.store().wl().mut_hard_state().set_commit(commit);
    }
    outbox.extend(light.take_messages());
    committed += count_client_entries(&light.take_committed_entries());
    node.advance_apply();
    committed
}

/// "Applies" committed entries by counting those a client proposed; the
/// leader's no-op has empty data.
fn count_client_entries(entries: &[Entry]) -> u64 {
    entries.iter().filter(|e| !e.data.is_empty()).count() as u64
}

impl Cluster for RaftCluster {
    const NAME: &'static str = "raft-rs";

    fn elect(peers: u64) -> RaftCluster {
        let voters: Vec<u64> = (1..=peers).collect();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let nodes = voters
            .iter()
            .map(|id| {
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((voters.clone(), vec![])));
                RawNode::new(&config(*id), storage, &logger).expect("raft-rs node")
            })
            .collect();
        let mut cluster = RaftCluster {
            nodes,
            inbox: Vec::new(),
            outbox: Vec::new(),
            leader_commits: 0,
        };
        cluster.nodes[0].campaign().expect("campaign");
        cluster.settle(100);
        assert_eq!(
            cluster.nodes[0].raft.state,
            StateRole::Leader,
            "raft-rs: node 1 won"
        );
        cluster
    }

    fn append(&mut self, payload: &[u8]) {
        let leader = &mut self.nodes[(LEADER - 1) as usize];
        leader
            .propose(Vec::new(), payload.to_vec())
            .expect("the leader accepts proposals");
    }

    fn round(&mut self) {
        // Every node handles its Ready once per round, after all of the
        // round's input: the batching raft-rs's Ready design is made for.
        for (position, node) in self.nodes.iter_mut().enumerate() {
            let committed = handle_ready(node, &mut self.outbox);
            if position as u64 + 1 == LEADER {
                self.leader_commits += committed;
            }
        }
        mem::swap(&mut self.inbox, &mut self.outbox);
        for message in self.inbox.drain(..) {
            let to = (message.to - 1) as usize;
            self.nodes[to].step(message).expect("step");
        }
    }

    fn committed(&self) -> u64 {
        self.leader_commits
    }

    fn is_idle(&self) -> bool {
        self.outbox.is_empty() && self.nodes.iter().all(|node| !node.has_ready())
    }
}
