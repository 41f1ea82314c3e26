//! Watching who leads, the way an operator would: by polling every server's
//! `status` and taking the leader a majority agrees on.

use skiff::status_probe::{agreed_leader, probe_all_with};
use skiff_fs::protocol::StatusReport;
use skiff_fs::ClientTls;
use skiff_node::{NodeId, Term};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often every server is asked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long one poll waits for a server: a dead one refuses at once on
/// loopback, a stuck one must not slow the polling much.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// The leader seen from some moment on (`None`: no agreed leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// When the poll that first saw it ended.
    pub at: Instant,
    /// The leader and its term.
    pub leader: Option<(NodeId, Term)>,
}

/// A task polling the cluster, and what it saw.
pub struct LeaderMonitor {
    current: watch::Receiver<Observation>,
    history: Arc<Mutex<Vec<Observation>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderMonitor {
    /// Starts polling `addresses`, every server of the cluster, over `tls`
    /// if the cluster's clients must use it.
    pub fn start(addresses: Vec<String>, tls: Option<ClientTls>) -> LeaderMonitor {
        let first = Observation {
            at: Instant::now(),
            leader: None,
        };
        let (publish, current) = watch::channel(first);
        let history = Arc::new(Mutex::new(vec![first]));
        let task = tokio::spawn(poll(addresses, tls, publish, history.clone()));
        LeaderMonitor {
            current,
            history,
            task,
        }
    }

    /// The leader seen by the last poll.
    pub fn current(&self) -> Observation {
        *self.current.borrow()
    }

    /// A receiver of every new observation.
    pub fn subscribe(&self) -> watch::Receiver<Observation> {
        self.current.clone()
    }

    /// Waits up to `patience` for a leader in a term above `term`; returns
    /// the first observation of one.
    pub async fn leader_after(&mut self, term: Term, patience: Duration) -> Option<Observation> {
        let newer = |o: &Observation| o.leader.is_some_and(|(_, t)| t > term);
        let waited = tokio::time::timeout(patience, self.current.wait_for(newer)).await;
        waited.ok()?.ok().map(|seen| *seen)
    }

    /// Every change of leader seen so far, the first (no leader) included.
    pub fn history(&self) -> Vec<Observation> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for LeaderMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll(
    addresses: Vec<String>,
    tls: Option<ClientTls>,
    publish: watch::Sender<Observation>,
    history: Arc<Mutex<Vec<Observation>>>,
) {
    loop {
        let reports = probe_all_with(tls.as_ref(), &addresses, PROBE_TIMEOUT).await;
        let leader = agreed_leader(&reports, addresses.len()).map(|r: StatusReport| (r.id, r.term));
        if leader != publish.borrow().leader {
            let seen = Observation {
                at: Instant::now(),
                leader,
            };
            history.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
            publish.send_replace(seen);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One change of leader: who led, who leads now, and how long the cluster
/// had no leader in between, as polling saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failover {
    /// The leader before.
    pub from: (NodeId, Term),
    /// The leader after.
    pub to: (NodeId, Term),
    /// When polling first saw no leader, or the new one if it saw no gap.
    pub lost_at: Instant,
    /// When the new leader was first seen.
    pub found_at: Instant,
}

impl Failover {
    /// How long no leader was seen.
    pub fn leaderless(&self) -> Duration {
        self.found_at.saturating_duration_since(self.lost_at)
    }
}

/// The failovers in a monitor's history: each pair of consecutive leaders.
pub fn failovers(history: &[Observation]) -> Vec<Failover> {
    let mut failovers = Vec::new();
    let mut previous: Option<(NodeId, Term)> = None;
    let mut lost_at = None;
    for observation in history {
        match (previous, observation.leader) {
            (Some(from), Some(to)) if from != to => {
                failovers.push(Failover {
                    from,
                    to,
                    lost_at: lost_at.unwrap_or(observation.at),
                    found_at: observation.at,
                });
            }
            (_, None) => {
                lost_at = Some(observation.at);
                continue;
            }
            _ => {}
        }
        if observation.leader.is_some() {
            previous = observation.leader;
            lost_at = None;
        }
    }
    failovers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at: Instant, ms: u64, leader: Option<(u64, u64)>) -> Observation {
        Observation {
            at: at + Duration::from_millis(ms),
            leader: leader.map(|(id, term)| (NodeId(id), Term(term))),
        }
    }

    #[test]
    fn failovers_pair_consecutive_leaders_across_gaps() {
        let t = Instant::now();
        let history = [
            seen(t, 0, None),
            seen(t, 500, Some((1, 1))),
            seen(t, 8000, None),
            seen(t, 8600, Some((3, 3))),
            seen(t, 9000, Some((2, 4))),
        ];
        let found = failovers(&history);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].from, (NodeId(1), Term(1)));
        assert_eq!(found[0].to, (NodeId(3), Term(3)));
        assert_eq!(found[0].leaderless(), Duration::from_millis(600));
        assert_eq!(found[1].to, (NodeId(2), Term(4)));
        assert_eq!(found[1].leaderless(), Duration::ZERO);
    }

    #[test]
    fn no_change_of_leader_is_no_failover() {
        let t = Instant::now();
        let history = [
            seen(t, 0, None),
            seen(t, 500, Some((1, 1))),
            seen(t, 900, None),
            seen(t, 950, Some((1, 1))),
        ];
        assert!(failovers(&history).is_empty());
    }
}
