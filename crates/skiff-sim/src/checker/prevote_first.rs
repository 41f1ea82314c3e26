//! PreVote before standing (with PreVote on): a node raises its term only
//! by adopting a newer term it received, or by standing for election after
//! a majority (itself included) granted it a pre-vote for that very term
//! since it last became a pre-candidate (Ongaro's thesis, 9.6). A
//! pre-candidacy that raised the real term, or a candidacy without the
//! grants, breaks the rule. The one exception is a leadership transfer:
//! told by the leader of its term (`TimeoutNow`), a node stands at once
//! for the next term, without pre-votes (the thesis, 3.10).

use super::{Failure, NodeView, Rule};
use skiff_core::{NodeId, Role, Term};
use std::collections::HashMap;

/// What a batch handed its machine, as far as this rule cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stepped {
    /// Its alarm fired.
    Timeout,
    /// A message of `term` from `from`; `prevote_grant` when it granted a
    /// pre-vote.
    Message {
        /// The sender.
        from: NodeId,
        /// The term the message carries.
        term: Term,
        /// It is a granted `PreVoteResp`.
        prevote_grant: bool,
    },
    /// A `TimeoutNow` of `term` from `from`; `from_leader` when `from` led
    /// `term` (a leadership transfer: the receiver stands at once).
    TimeoutNow {
        /// The sender.
        from: NodeId,
        /// The term the message carries.
        term: Term,
        /// The sender was seen leading `term`.
        from_leader: bool,
    },
    /// Anything else (a start, a client's append, a storage event).
    Other,
}

/// The pre-vote round of each pre-candidate: the term asked and who granted it.
#[derive(Debug, Default)]
pub struct PreVoteFirst {
    rounds: HashMap<NodeId, (Term, Vec<NodeId>)>,
}

impl PreVoteFirst {
    /// Checks the batch of `node` that took it from `before` to `after`,
    /// having stepped `stepped`, whose latest configuration's voters are
    /// `voters`, with majority `quorum`.
    pub fn end_batch(
        &mut self,
        node: NodeId,
        before: &NodeView,
        after: &NodeView,
        stepped: Stepped,
        voters: &[NodeId],
        quorum: usize,
    ) -> Result<(), Failure> {
        if let Stepped::Message {
            from,
            term,
            prevote_grant: true,
        } = stepped
        {
            if let Some((asked, grants)) = self.rounds.get_mut(&node) {
                if *asked == term && before.role == Role::PreCandidate && !grants.contains(&from) {
                    grants.push(from);
                }
            }
        }
        if after.term > before.term {
            self.check_rise(node, before, after, stepped, voters, quorum)?;
        }
        let asks_anew = after.role == Role::PreCandidate
            && (before.role != Role::PreCandidate
                || after.term != before.term
                || stepped == Stepped::Timeout);
        if asks_anew {
            let asked = Term(after.term.0.saturating_add(1));
            self.rounds.insert(node, (asked, vec![node]));
        } else if after.role != Role::PreCandidate {
            self.rounds.remove(&node);
        }
        Ok(())
    }

    fn check_rise(
        &self,
        node: NodeId,
        before: &NodeView,
        after: &NodeView,
        stepped: Stepped,
        voters: &[NodeId],
        quorum: usize,
    ) -> Result<(), Failure> {
        let stood = matches!(after.role, Role::Candidate | Role::Leader);
        let adopted = matches!(stepped, Stepped::Message { term, .. } if term >= after.term);
        if stood {
            let grants = match self.rounds.get(&node) {
                // Only its configuration's voters count (a learner's or a
                // removed node's grant elects nobody).
                Some((asked, grants)) if *asked == after.term => {
                    grants.iter().filter(|g| voters.contains(g)).count()
                }
                _ => 0,
            };
            // A cluster of one is its own majority: nobody to ask.
            if grants >= quorum || quorum == 1 {
                return Ok(());
            }
            // Told to by the leader of the term it stood from.
            if let Stepped::TimeoutNow {
                term,
                from_leader: true,
                ..
            } = stepped
            {
                if term == before.term && after.term.0 == term.0.saturating_add(1) {
                    return Ok(());
                }
            }
            return Err(Failure::new(
                Rule::PreVoteFirst,
                vec![node],
                format!(
                    "node {node} stood for election in term {} with pre-votes for that term \
                     from {grants} node(s), itself included, not a majority of {quorum}",
                    after.term
                ),
            ));
        }
        if adopted {
            return Ok(());
        }
        let cause = match stepped {
            Stepped::Timeout => "on its own timeout".to_string(),
            Stepped::Message { from, term, .. } => {
                format!("on a message of term {term} from {from}")
            }
            Stepped::TimeoutNow { from, term, .. } => {
                format!("on a TimeoutNow of term {term} from {from}")
            }
            Stepped::Other => "on an event that carries no term".to_string(),
        };
        Err(Failure::new(
            Rule::PreVoteFirst,
            vec![node],
            format!(
                "node {node} raised its term from {} to {} {cause}, ending as {}, without \
                 standing for election",
                before.term, after.term, after.role
            ),
        ))
    }

    /// `node` crashed: its round is gone.
    pub fn forget(&mut self, node: NodeId) {
        self.rounds.remove(&node);
    }
}
