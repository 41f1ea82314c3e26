//! Leader Completeness (Raft, Figure 3): if an entry is committed in a given
//! term, it is present in the logs of the leaders of all higher terms.
//!
//! Checked when a node takes office in term `L`: its log must hold every
//! entry known to have committed in a term before `L` (see `agreed` for the
//! commit-term bound; a leader of an older term can win late, after newer
//! terms committed entries it never had). Leader Append-Only keeps them
//! there for the rest of the term.
//!
//! Comparing the last such entry is enough, which keeps the check cheap
//! however long the run: the agreed sequence is the log prefix of the node
//! that committed its last entry (State Machine Safety checks every node's
//! commits against it, from index 1), and Log Matching, checked on every
//! stored entry, makes any log that holds the same entry at the same index
//! identical up to it. An entry the leader's log no longer holds because
//! its snapshot covers it counts as held: Snapshot State checks that the
//! snapshot holds the committed log through its index.

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use crate::durable::Durable;
use skiff_core::render::DataText;
use skiff_core::{NodeId, Term};

/// Checks that `leader`, now leading `term` with the log on `disk`, holds
/// all of `agreed`.
pub fn check_new_leader(
    leader: NodeId,
    term: Term,
    disk: &Durable,
    agreed: &AgreedLog,
) -> Result<(), Failure> {
    let index = agreed.committed_before(term);
    let Some((committed_term, data)) = agreed.get(index) else {
        return Ok(()); // nothing committed before this term
    };
    if index <= disk.base().index {
        return Ok(()); // its snapshot covers it
    }
    let held = disk.entry(index);
    if held.is_some_and(|entry| entry.term == committed_term && entry.data == *data) {
        return Ok(());
    }
    let found = match held {
        Some(entry) => format!("{entry}"),
        None => format!("nothing (its log ends at {})", disk.last_index()),
    };
    Err(Failure::new(
        Rule::LeaderCompleteness,
        vec![leader],
        format!(
            "node {leader} became leader of term {term} without committed entry \
             {index} ({committed_term}:{}); it holds {found} there",
            DataText(data)
        ),
    ))
}
