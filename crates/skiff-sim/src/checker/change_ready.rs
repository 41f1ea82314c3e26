//! Change Ready: a leader appends a configuration entry only once it has
//! committed an entry of its own term (the fix for the single-server
//! change's pitfall, Ongaro on raft-dev, 2015). Until then the
//! configuration it holds may not be the latest committed one: a deposed
//! leader's uncommitted change elsewhere and this leader's change could
//! have majorities that do not overlap, and a committed entry could be lost.
//! The divergence itself needs a rare interleaving (the deposed leader must
//! come back and win with its own configuration's majority); this rule
//! catches the mistake when it is made.

use super::{Failure, Rule};
use skiff_core::{LogIndex, NodeId, Term};

/// Checks that `leader` of `term`, which appended a configuration entry
/// while its commit index was `commit` (an entry of `commit_term`), had
/// committed an entry of its own term.
pub fn check(
    leader: NodeId,
    term: Term,
    commit: LogIndex,
    commit_term: Option<Term>,
) -> Result<(), Failure> {
    if commit_term == Some(term) {
        return Ok(());
    }
    let held = commit_term.map_or("no entry it holds".to_string(), |t| format!("term {t}"));
    Err(Failure::new(
        Rule::ChangeReady,
        vec![leader],
        format!(
            "leader {leader} of term {term} appended a configuration entry while its commit \
             index {commit} was of {held}: it had not committed an entry of its own term"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_before_an_entry_of_the_term_commits_is_caught() {
        assert!(check(NodeId(1), Term(3), LogIndex(9), Some(Term(3))).is_ok());
        let failure = check(NodeId(1), Term(3), LogIndex(9), Some(Term(2))).unwrap_err();
        assert_eq!(failure.rule, Rule::ChangeReady);
    }
}
