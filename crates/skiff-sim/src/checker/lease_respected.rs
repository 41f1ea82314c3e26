//! The leader's lease is respected (with PreVote or CheckQuorum on): a node
//! that accepted an `AppendEntriesReq` or `InstallSnapshotReq` from the
//! leader of its current term at simulated time `t` grants no vote and no
//! pre-vote before `t` plus the election timeout, except a vote of that
//! very term: the term has its leader, elected by a majority, so no other
//! candidate can win it and the vote deposes nobody (the leader's own vote
//! request arriving late, or a rival's of the same term). A node that still hears a live leader must not help
//! another depose it (`skiff-core`'s `machine/check_quorum.rs`).
//!
//! A vote for a leadership transfer's candidate (`VoteReq` marked
//! `transfer`, sent after the leader's `TimeoutNow`) is not checked here:
//! the leader itself asked for that election (the thesis, 3.10).
//!
//! The lease belongs to the term it was taken in: a node whose term moves on
//! (it adopted a newer term from a message that is not the vote request it
//! answers) holds no lease of the old leader. A crash forgets the lease.

use super::{Failure, NodeView, Rule};
use crate::queue::Micros;
use skiff_core::{NodeId, Role, Term};
use std::collections::HashMap;

/// When each node last accepted a request from its leader, and in which term.
#[derive(Debug, Default)]
pub struct LeaseRespected {
    accepted: HashMap<NodeId, (Term, Micros)>,
}

impl LeaseRespected {
    /// `node` is about to grant a vote or pre-vote (`what`) of `granted`
    /// term at `now`; its lease, if any, must have ended:
    /// `timeout` after it was taken.
    pub fn check_grant(
        &self,
        node: NodeId,
        granted: Term,
        now: Micros,
        timeout: Micros,
        what: &str,
    ) -> Result<(), Failure> {
        let Some(&(term, at)) = self.accepted.get(&node) else {
            return Ok(());
        };
        if now >= at + timeout || granted == term {
            return Ok(());
        }
        Err(Failure::new(
            Rule::LeaseRespected,
            vec![node],
            format!(
                "node {node} {what} at t={} ms, {} us after it accepted a request from \
                 the leader of term {term} (its lease runs {} ms)",
                now / 1000,
                now - at,
                timeout / 1000
            ),
        ))
    }

    /// The batch of `node` ended: it accepted its leader's request at `now`
    /// when `leader_request` is that request's term and sender and it ends a
    /// follower of that term; a term that moved on ends the lease.
    pub fn end_batch(
        &mut self,
        node: NodeId,
        before: &NodeView,
        after: &NodeView,
        leader_request: Option<(Term, NodeId)>,
        now: Micros,
    ) {
        // A request the machine rejected (a forgery) gives no lease: it
        // then says it hears no leader.
        let accepted = leader_request.filter(|(term, _)| {
            after.role == Role::Follower && after.term == *term && after.hears_leader
        });
        if let Some((term, _)) = accepted {
            self.accepted.insert(node, (term, now));
        } else if after.term != before.term {
            self.accepted.remove(&node);
        }
    }

    /// `node` crashed: its lease is forgotten with its memory.
    pub fn forget(&mut self, node: NodeId) {
        self.accepted.remove(&node);
    }
}
