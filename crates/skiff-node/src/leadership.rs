//! Notices, once per event-loop turn, the elections this node started and
//! the leaders it learned of, says why the previous leader was lost, counts
//! them in the metrics and logs them as alertable events (`event =
//! "leader_changed"`, `"leader_lost"`, `"election_started"`).

use crate::api::LeaderChange;
use crate::metrics::Metrics;
use skiff_core::{NodeId, Role, StepDownReason, Term};

/// Why a leader was lost when nothing more specific is known.
const HIGHER_TERM: &str = "higher_term";
/// This node's election timer fired: it heard no leader.
const ELECTION_TIMEOUT: &str = "election_timeout";
/// The first leader this node learned of.
const STARTUP: &str = "startup";

/// What the last turn looked like, and what is known of the last change.
#[derive(Debug)]
pub(crate) struct Leadership {
    id: NodeId,
    role: Role,
    term: Term,
    leader: Option<NodeId>,
    /// The leader lost and why, until a new one is known.
    lost: Option<(NodeId, &'static str)>,
    /// Set by a step-down this turn, taken by [`Leadership::observe`].
    stepped_down: Option<StepDownReason>,
    last_change: Option<LeaderChange>,
}

impl Leadership {
    /// Starts from a node that knows no leader yet.
    pub fn new(id: NodeId, term: Term) -> Leadership {
        Leadership {
            id,
            role: Role::Follower,
            term,
            leader: None,
            lost: None,
            stepped_down: None,
            last_change: None,
        }
    }

    /// The machine stepped down as leader for `reason` this turn.
    pub fn stepped_down(&mut self, reason: StepDownReason, metrics: &Metrics) {
        metrics.stepped_down(step_down_name(reason));
        self.stepped_down = Some(reason);
    }

    /// The last new leader this node learned of.
    pub fn last_change(&self) -> Option<LeaderChange> {
        self.last_change
    }

    /// Compares the turn's role, term and leader with the last turn's.
    pub fn observe(&mut self, role: Role, term: Term, leader: Option<NodeId>, metrics: &Metrics) {
        let stepped_down = self.stepped_down.take();
        let standing = matches!(role, Role::PreCandidate | Role::Candidate);
        if standing && (role != self.role || term != self.term) {
            metrics.election_started(role == Role::PreCandidate);
            tracing::info!(
                event = "election_started", id = %self.id, %term, pre_vote = role == Role::PreCandidate,
                "election started"
            );
        }
        if leader != self.leader || (leader.is_some() && term != self.term) {
            if let Some(previous) = self.leader {
                let reason = match stepped_down {
                    Some(reason) => step_down_name(reason),
                    None if standing => ELECTION_TIMEOUT,
                    None => HIGHER_TERM,
                };
                self.lost = Some((previous, reason));
                if leader.is_none() {
                    tracing::warn!(
                        event = "leader_lost", id = %self.id, %term, previous = %previous, reason,
                        "leader lost"
                    );
                }
            }
            if let Some(new) = leader {
                let (previous, reason) = match self.lost.take() {
                    Some((previous, reason)) => (Some(previous), reason),
                    None => (None, STARTUP),
                };
                metrics.leader_changed();
                let previous_text = previous.map_or_else(|| "none".to_string(), |p| p.to_string());
                tracing::warn!(
                    event = "leader_changed", id = %self.id, %term, leader = %new,
                    previous = %previous_text, reason, "leader changed"
                );
                self.last_change = Some(LeaderChange {
                    at_unix_ms: unix_ms(),
                    term,
                    leader: new,
                    previous,
                    reason,
                });
            }
        }
        (self.role, self.term, self.leader) = (role, term, leader);
    }
}

/// The name of a step-down reason in metrics, logs and leader changes.
pub(crate) fn step_down_name(reason: StepDownReason) -> &'static str {
    match reason {
        StepDownReason::QuorumLost => "quorum_lost",
        StepDownReason::StorageStalled => "storage_stalled",
        StepDownReason::Removed => "removed",
        // A reason this version does not know by name.
        _ => "other",
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_leader_carries_why_the_old_one_was_lost() {
        let metrics = Metrics::enabled();
        let mut leadership = Leadership::new(NodeId(1), Term(1));
        leadership.observe(Role::Follower, Term(1), Some(NodeId(2)), &metrics);
        let first = leadership.last_change().unwrap();
        assert_eq!(
            (first.leader, first.previous, first.reason),
            (NodeId(2), None, STARTUP)
        );
        // Node 1's timer fires: it stands, then wins.
        leadership.observe(Role::PreCandidate, Term(1), Some(NodeId(2)), &metrics);
        leadership.observe(Role::Candidate, Term(2), None, &metrics);
        leadership.observe(Role::Leader, Term(2), Some(NodeId(1)), &metrics);
        let change = leadership.last_change().unwrap();
        assert_eq!(
            (change.leader, change.previous, change.reason, change.term),
            (NodeId(1), Some(NodeId(2)), ELECTION_TIMEOUT, Term(2))
        );
        // It steps down for lack of a quorum; node 3 leads next.
        leadership.stepped_down(StepDownReason::QuorumLost, &metrics);
        leadership.observe(Role::Follower, Term(2), None, &metrics);
        leadership.observe(Role::Follower, Term(3), Some(NodeId(3)), &metrics);
        let change = leadership.last_change().unwrap();
        assert_eq!(
            (change.previous, change.reason),
            (Some(NodeId(1)), "quorum_lost")
        );
        let text = metrics.encode();
        assert!(text.contains("skiff_leader_changes_total 3"), "{text}");
        assert!(
            text.contains("skiff_elections_started_total{kind=\"pre_vote\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("skiff_elections_started_total{kind=\"vote\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("skiff_step_downs_total{reason=\"quorum_lost\"} 1"),
            "{text}"
        );
    }
}
