//! skiff-core driven in memory: one `Machine` per peer, one reused action
//! buffer, and two message queues that swap every round.

use crate::cluster::Cluster;
use skiff_core::{Action, Bytes, Config, Event, Machine, Message, NodeId, Role};
use std::mem;

/// Three or five `skiff_core::Machine`s joined by in-memory queues.
pub struct SkiffCluster {
    machines: Vec<Machine>,
    /// Reused for every step; drained as soon as the step returns.
    actions: Vec<Action>,
    /// Messages to deliver in this round.
    inbox: Vec<Envelope>,
    /// Messages sent during this round, delivered in the next.
    outbox: Vec<Envelope>,
    /// Ok commits the leader (node 1) has reported, its no-op included.
    leader_commits: u64,
    /// `leader_commits` when the leader took office: its no-op.
    commits_before_first_append: u64,
}

struct Envelope {
    from: NodeId,
    to: NodeId,
    message: Message,
}

const LEADER: NodeId = NodeId(1);

impl SkiffCluster {
    /// Steps machine `id` and performs its actions. Persistence actions are
    /// dropped: the machine keeps its own log in memory, and this bench has
    /// no disk. Alarms are ignored: no clock runs.
    fn step(&mut self, id: NodeId, event: Event) {
        let index = (id.0 - 1) as usize;
        self.machines[index].step(event, &mut self.actions);
        for action in self.actions.drain(..) {
            match action {
                Action::Send { to, message } => self.outbox.push(Envelope {
                    from: id,
                    to,
                    message,
                }),
                Action::Commit { result: Ok(_), .. } if id == LEADER => {
                    self.leader_commits += 1;
                }
                Action::Commit { result: Err(e), .. } if id == LEADER => {
                    panic!("skiff: the leader refused an append: {e}")
                }
                _ => {}
            }
        }
    }
}

impl Cluster for SkiffCluster {
    const NAME: &'static str = "skiff";

    fn elect(peers: u64) -> SkiffCluster {
        let ids: Vec<NodeId> = (1..=peers).map(NodeId).collect();
        let machines = ids
            .iter()
            .map(|id| Machine::new(Config::new(*id, ids.iter().copied())).expect("valid config"))
            .collect();
        let mut cluster = SkiffCluster {
            machines,
            actions: Vec::new(),
            inbox: Vec::new(),
            outbox: Vec::new(),
            leader_commits: 0,
            commits_before_first_append: 0,
        };
        for machine in &mut cluster.machines {
            machine.start(&mut cluster.actions);
        }
        cluster.actions.clear();
        // Node 1's election alarm fires; no other alarm ever does.
        cluster.step(LEADER, Event::Timeout);
        cluster.settle(100);
        assert_eq!(
            cluster.machines[0].role(),
            Role::Leader,
            "skiff: node 1 won"
        );
        assert_eq!(cluster.leader_commits, 1, "skiff: the no-op committed");
        cluster.commits_before_first_append = cluster.leader_commits;
        cluster
    }

    fn append(&mut self, payload: &[u8]) {
        let data = Bytes::copy_from_slice(payload);
        self.step(LEADER, Event::Append(data));
    }

    fn round(&mut self) {
        // Swap the queues rather than allocate: both keep their capacity.
        mem::swap(&mut self.inbox, &mut self.outbox);
        let mut inbox = mem::take(&mut self.inbox);
        for Envelope { from, to, message } in inbox.drain(..) {
            self.step(to, Event::Receive { from, message });
        }
        self.inbox = inbox;
    }

    fn committed(&self) -> u64 {
        self.leader_commits - self.commits_before_first_append
    }

    fn is_idle(&self) -> bool {
        self.outbox.is_empty()
    }
}
