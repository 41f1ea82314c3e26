//! Commit Quorum: every entry a leader commits is, at that moment, held by
//! a majority of the voters of the configuration in force at the leader
//! (its latest, committed or not: the single-server change's rule, the
//! thesis 4.1). Held means on the voter's disk at the same index and term,
//! or covered by its snapshot; a node whose disk lost synced records and
//! has not repaired yet is given the benefit of the doubt (the leader may
//! rightly have counted what it acknowledged before the loss).
//!
//! Counting real copies rather than the leader's bookkeeping is what
//! catches a leader that counts a removed node, a learner, or a stale
//! answer from a former life of a re-added node.

use super::{Failure, Rule};
use skiff_core::{LogIndex, Membership, NodeId, Term};

/// Checks that `leader`'s commit of the entry of `term` at `index` is held
/// by a majority of `membership`'s voters, as `holds` tells per voter.
pub fn check(
    leader: NodeId,
    index: LogIndex,
    term: Term,
    membership: &Membership,
    holds: impl Fn(NodeId) -> bool,
) -> Result<(), Failure> {
    let holders: Vec<NodeId> = membership
        .voters()
        .iter()
        .copied()
        .filter(|voter| holds(*voter))
        .collect();
    if holders.len() >= membership.quorum() {
        return Ok(());
    }
    let list: Vec<String> = holders.iter().map(ToString::to_string).collect();
    Err(Failure::new(
        Rule::CommitQuorum,
        vec![leader],
        format!(
            "leader {leader} committed the entry of term {term} at index {index} while only \
             [{}] of the voters {membership} held it (a majority is {})",
            list.join(","),
            membership.quorum()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_without_a_majority_of_the_latest_voters_is_caught() {
        let four = Membership::new([1, 2, 3, 4].map(NodeId), [NodeId(5)]).unwrap();
        let at = (LogIndex(7), Term(2));
        let holds = |set: &'static [u64]| move |id: NodeId| set.contains(&id.0);
        assert!(check(NodeId(1), at.0, at.1, &four, holds(&[1, 2, 3])).is_ok());
        // The learner and a removed node count for nothing.
        let failure = check(NodeId(1), at.0, at.1, &four, holds(&[1, 2, 5, 6])).unwrap_err();
        assert_eq!(failure.rule, Rule::CommitQuorum);
        assert!(failure.detail.contains("only [1,2]"), "{}", failure.detail);
    }
}
