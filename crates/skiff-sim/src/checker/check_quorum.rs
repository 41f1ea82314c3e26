//! CheckQuorum (with CheckQuorum on), a liveness-style rule: a leader that
//! has stepped no message at all from a majority (itself included) within
//! the last election timeout plus two heartbeats of simulated time is no
//! longer leader after its next heartbeat alarm. The core counts only
//! answers, and measures silence in heartbeat alarms, which may start it up
//! to two heartbeats late (`skiff-core`'s `machine/check_quorum.rs`): so
//! this bound holds for a correct machine, and a leader that never checks
//! its majority breaks it.
//!
//! Time a leader spent blocked on a stalled disk does not count: its alarms
//! could not run (`world/stall.rs`); its silence is measured from when it
//! took office or last resumed, whichever is later.

use super::{Failure, NodeView, Rule};
use crate::queue::Micros;
use skiff_core::{NodeId, Role};
use std::collections::HashMap;

/// When each node last stepped a message from each peer, and since when it
/// has been leading (or running again).
#[derive(Debug, Default)]
pub struct CheckQuorum {
    heard: HashMap<(NodeId, NodeId), Micros>,
    since: HashMap<NodeId, Micros>,
}

impl CheckQuorum {
    /// `node` stepped a message from `from` at `now`.
    pub fn observe_message(&mut self, node: NodeId, from: NodeId, now: Micros) {
        self.heard.insert((node, from), now);
    }

    /// `node` went on at `now` after being blocked (a stalled disk).
    pub fn resumed(&mut self, node: NodeId, now: Micros) {
        self.since.insert(node, now);
    }

    /// Checks the batch of `node` (`timeout`: its alarm fired) whose
    /// latest configuration's voters are `peers`, with majority `quorum`; `window` is the election
    /// timeout plus two heartbeats.
    #[allow(clippy::too_many_arguments)]
    pub fn end_batch(
        &mut self,
        node: NodeId,
        before: &NodeView,
        after: &NodeView,
        timeout: bool,
        peers: &[NodeId],
        quorum: usize,
        now: Micros,
        window: Micros,
    ) -> Result<(), Failure> {
        let took_office = after.role == Role::Leader
            && (before.role != Role::Leader || before.term != after.term);
        if took_office {
            self.since.insert(node, now);
            return Ok(());
        }
        let still_leads =
            before.role == Role::Leader && after.role == Role::Leader && after.term == before.term;
        if !timeout || !still_leads {
            return Ok(());
        }
        let since = self.since.get(&node).copied().unwrap_or(0);
        let from = now.saturating_sub(window);
        let heard = peers
            .iter()
            .filter(|peer| **peer != node)
            .filter(|peer| {
                let last = self.heard.get(&(node, **peer)).copied().unwrap_or(0);
                last.max(since) >= from
            })
            .count();
        // A leader its latest configuration removed does not count itself.
        let itself = usize::from(peers.contains(&node));
        if heard + itself >= quorum {
            return Ok(());
        }
        Err(Failure::new(
            Rule::CheckQuorum,
            vec![node],
            format!(
                "node {node} is still leader of term {} after its heartbeat alarm at t={} ms, \
                 having heard from {heard} peer(s) in the last {} ms (a majority is {quorum}, \
                 itself included)",
                after.term,
                now / 1000,
                window / 1000
            ),
        ))
    }
}
