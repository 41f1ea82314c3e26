//! The simulated network: per-message latency with a long tail, loss,
//! duplication, and links cut by partitions. Reordering needs no code of
//! its own: it falls out of independent latencies.

use crate::faults::{FaultRates, PartitionKind};
use crate::queue::Micros;
use crate::rng::{Chance, SimRng};
use std::fmt::Write as _;

/// The most nodes a world can hold (the cut matrix is a bitmask per sender).
pub const NODES_MAX: usize = 9;

/// The usual latency: uniform in `[1 ms, 10 ms)`.
const LATENCY_US: (Micros, Micros) = (1_000, 10_000);
/// The slow path: uniform in `[50 ms, 1 s)`.
const LATENCY_TAIL_US: (Micros, Micros) = (50_000, 1_000_000);

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// A partition cuts the link.
    Blocked,
    /// The network lost it.
    Lost,
    /// It arrives at `at`, and a second copy at `duplicate_at` if duplicated.
    Delivered {
        /// When the message arrives.
        at: Micros,
        /// When a duplicate arrives, if the network made one.
        duplicate_at: Option<Micros>,
    },
}

/// Links, their faults, and the current partition.
#[derive(Clone, Debug)]
pub struct Network {
    loss: Chance,
    duplicate: Chance,
    latency_tail: Chance,
    /// `cut[from]` has bit `to` set when messages from `from` to `to` are dropped.
    cut: [u16; NODES_MAX],
}

impl Network {
    /// A network with the given rates and every link up.
    pub fn new(rates: &FaultRates) -> Network {
        Network {
            loss: Chance::new(rates.loss),
            duplicate: Chance::new(rates.duplicate),
            latency_tail: Chance::new(rates.latency_tail),
            cut: [0; NODES_MAX],
        }
    }

    /// Stops losing and duplicating messages (the quiet period). Slow
    /// messages stay: they are the weather, not a fault.
    pub fn stop_faults(&mut self) {
        self.loss = Chance::NEVER;
        self.duplicate = Chance::NEVER;
        self.heal();
    }

    /// Decides the fate of a message sent at `now` from node index `from` to `to`.
    pub fn fate(&self, rng: &mut SimRng, now: Micros, from: usize, to: usize) -> Fate {
        if self.is_cut(from, to) {
            return Fate::Blocked;
        }
        if rng.chance(self.loss) {
            return Fate::Lost;
        }
        let at = now + self.latency(rng);
        let duplicate_at = rng.chance(self.duplicate).then(|| now + self.latency(rng));
        Fate::Delivered { at, duplicate_at }
    }

    /// A latency drawn from the distribution: mostly 1 to 10 ms, sometimes far more.
    pub fn latency(&self, rng: &mut SimRng) -> Micros {
        let (low, high) = if rng.chance(self.latency_tail) {
            LATENCY_TAIL_US
        } else {
            LATENCY_US
        };
        rng.between(low, high)
    }

    /// Whether messages from `from` to `to` are dropped.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut[from] & (1 << to) != 0
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        self.cut.iter().any(|bits| *bits != 0)
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut = [0; NODES_MAX];
    }

    /// Cuts links in the shape of `kind` among `nodes` nodes; `leader` is the
    /// node index of the current leader, if any.
    pub fn partition(
        &mut self,
        kind: PartitionKind,
        nodes: usize,
        leader: Option<usize>,
        rng: &mut SimRng,
    ) {
        self.heal();
        match kind {
            PartitionKind::IsolateLeader => {
                let isolated = leader.unwrap_or_else(|| rng.index(nodes));
                self.split(nodes, |node| node == isolated);
            }
            PartitionKind::MinoritySplit => {
                let minority = draw_minority(nodes, rng);
                self.split(nodes, |node| minority & (1 << node) != 0);
            }
            PartitionKind::RandomCuts => {
                for a in 0..nodes {
                    for b in a + 1..nodes {
                        if rng.below(3) == 0 {
                            self.cut_link(a, b);
                            self.cut_link(b, a);
                        }
                    }
                }
            }
            PartitionKind::Bridge => {
                let (left, right) = draw_bridge(nodes, rng);
                for a in 0..nodes {
                    for b in 0..nodes {
                        if left & (1 << a) != 0 && right & (1 << b) != 0 {
                            self.cut_link(a, b);
                            self.cut_link(b, a);
                        }
                    }
                }
            }
            PartitionKind::OneWay => {
                for from in 0..nodes {
                    for to in (0..nodes).filter(|to| *to != from) {
                        if rng.below(3) == 0 {
                            self.cut_link(from, to);
                        }
                    }
                }
            }
        }
    }

    fn split(&mut self, nodes: usize, in_group: impl Fn(usize) -> bool) {
        for a in 0..nodes {
            for b in 0..nodes {
                if in_group(a) != in_group(b) {
                    self.cut_link(a, b);
                }
            }
        }
    }

    fn cut_link(&mut self, from: usize, to: usize) {
        self.cut[from] |= 1 << to;
    }

    /// The cut links, as node ids: `1<->2` both ways, `1->2` one way.
    pub fn describe_cuts(&self, nodes: usize) -> String {
        let mut text = String::new();
        for a in 0..nodes {
            for b in a + 1..nodes {
                let arrow = match (self.is_cut(a, b), self.is_cut(b, a)) {
                    (true, true) => format!("{}<->{}", a + 1, b + 1),
                    (true, false) => format!("{}->{}", a + 1, b + 1),
                    (false, true) => format!("{}->{}", b + 1, a + 1),
                    (false, false) => continue,
                };
                if !text.is_empty() {
                    text.push(' ');
                }
                let _ = write!(text, "{arrow}");
            }
        }
        if text.is_empty() {
            text.push_str("nothing");
        }
        text
    }
}

/// A non-empty minority of `nodes` as a bitmask (empty when no minority exists).
fn draw_minority(nodes: usize, rng: &mut SimRng) -> u16 {
    let size = if nodes >= 2 {
        1 + rng.index((nodes - 1) / 2)
    } else {
        0
    };
    let mut members: Vec<usize> = (0..nodes).collect();
    let mut mask = 0u16;
    for _ in 0..size {
        let pick = members.swap_remove(rng.index(members.len()));
        mask |= 1 << pick;
    }
    mask
}

/// Two disjoint, non-empty groups of `nodes` as bitmasks, leaving at least
/// one node out of both (the bridge, which sees both groups). Fewer than
/// three nodes have no bridge: both groups are then empty.
fn draw_bridge(nodes: usize, rng: &mut SimRng) -> (u16, u16) {
    if nodes < 3 {
        return (0, 0);
    }
    let mut order: Vec<usize> = (0..nodes).collect();
    for i in (1..nodes).rev() {
        order.swap(i, rng.index(i + 1));
    }
    // 1 to nodes - 2 bridges, the rest split in two non-empty groups.
    let bridges = 1 + rng.index(nodes - 2);
    let grouped = nodes - bridges;
    let left_size = 1 + rng.index(grouped - 1);
    let mask = |members: &[usize]| members.iter().fold(0u16, |m, n| m | 1 << n);
    let left = mask(&order[bridges..bridges + left_size]);
    let right = mask(&order[bridges + left_size..]);
    (left, right)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultProfile;

    #[test]
    fn latency_is_mostly_short_with_a_tail() {
        let network = Network::new(&FaultProfile::Chaos.rates());
        let mut rng = SimRng::new(1);
        let draws: Vec<Micros> = (0..10_000).map(|_| network.latency(&mut rng)).collect();
        let slow = draws.iter().filter(|l| **l >= LATENCY_TAIL_US.0).count();
        assert!(draws
            .iter()
            .all(|l| *l >= LATENCY_US.0 && *l < LATENCY_TAIL_US.1));
        assert!((100..400).contains(&slow), "slow {slow}");
    }

    #[test]
    fn isolating_the_leader_cuts_it_both_ways_only() {
        let mut network = Network::new(&FaultRates::NONE);
        let mut rng = SimRng::new(1);
        network.partition(PartitionKind::IsolateLeader, 3, Some(1), &mut rng);
        assert_eq!(network.describe_cuts(3), "1<->2 2<->3");
        assert!(!network.is_cut(0, 2));
        network.heal();
        assert!(!network.is_partitioned());
    }

    #[test]
    fn minority_split_leaves_a_majority_connected() {
        let mut rng = SimRng::new(9);
        for nodes in 2..=NODES_MAX {
            for _ in 0..50 {
                let minority = draw_minority(nodes, &mut rng);
                let size = minority.count_ones() as usize;
                assert!(
                    size >= 1 && size * 2 < nodes + 1 && size < nodes,
                    "{nodes}: {size}"
                );
            }
        }
    }

    #[test]
    fn a_bridge_sees_both_groups_that_cannot_see_each_other() {
        let mut rng = SimRng::new(3);
        for nodes in 3..=NODES_MAX {
            for _ in 0..50 {
                let mut network = Network::new(&FaultRates::NONE);
                network.partition(PartitionKind::Bridge, nodes, None, &mut rng);
                let sees = |a: usize, b: usize| !network.is_cut(a, b);
                let bridges: Vec<usize> = (0..nodes)
                    .filter(|a| (0..nodes).all(|b| sees(*a, b) && sees(b, *a)))
                    .collect();
                assert!(!bridges.is_empty() && bridges.len() <= nodes - 2, "{nodes}");
                // Some pair is cut, and every cut is both ways between two
                // non-bridges: not transitive through any bridge.
                let cut: Vec<(usize, usize)> = (0..nodes)
                    .flat_map(|a| (0..nodes).map(move |b| (a, b)))
                    .filter(|(a, b)| !sees(*a, *b))
                    .collect();
                assert!(!cut.is_empty(), "{nodes}");
                for (a, b) in cut {
                    assert!(!sees(b, a) && !bridges.contains(&a) && !bridges.contains(&b));
                }
            }
        }
        let mut network = Network::new(&FaultRates::NONE);
        network.partition(PartitionKind::Bridge, 2, None, &mut rng);
        assert!(!network.is_partitioned());
    }

    #[test]
    fn cut_links_drop_messages() {
        let mut network = Network::new(&FaultRates::NONE);
        let mut rng = SimRng::new(1);
        network.partition(PartitionKind::IsolateLeader, 2, Some(0), &mut rng);
        assert_eq!(network.fate(&mut rng, 0, 0, 1), Fate::Blocked);
        network.heal();
        assert!(matches!(
            network.fate(&mut rng, 0, 0, 1),
            Fate::Delivered { .. }
        ));
    }
}
