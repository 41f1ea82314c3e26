//! Protocol-aware recovery: a node whose disk lost part of a log it may
//! have acknowledged (Alagappan et al., FAST'18) rejoins without ever
//! helping to lose a committed entry.
//!
//! # The danger
//!
//! A follower that acknowledged entry `E` and then lost it from its disk
//! breaks the assumption every Raft proof rests on: that a node keeps what
//! it acknowledged. `E` may have committed with that acknowledgment in its
//! majority. If the node now votes, it may elect a candidate that lacks `E`
//! (the candidate's log is as up to date as the node's damaged one), and
//! `E` is lost. If it stands for election, the same. And a leader that
//! counted its acknowledgment keeps believing the node holds `E`.
//!
//! # The rules
//!
//! A damaged node restarts with the part of its log that is provably
//! intact and the term `H` of its hard state (the driver never guesses: a
//! hard state it cannot read is a node it must not start). Then:
//!
//! 1. **It moves to term `H + 1` at once**, with no vote, and stores it.
//!    Every acknowledgment it gave before the damage was given in a term
//!    `<= H`, so only leaders of those terms can count one. Its answers now
//!    carry term `H + 1`, so such a leader steps down at the next exchange
//!    instead of resending forever past the node's shorter log, and every
//!    leader it deals with from now on starts with no belief about its log.
//! 2. **While repairing it grants no vote and stands for no election**; its
//!    timeouts only re-arm the alarm. It still accepts entries and answers
//!    them truthfully: it acknowledges only what it holds.
//! 3. **It is repaired once its commit index reaches an entry of a term
//!    `>= H + 1`.** That entry was committed by a leader of term `T > H`,
//!    elected without this node's vote. Any entry `E` committed with the
//!    node's lost acknowledgment was committed in a term `<= H < T` by a
//!    majority that, without this node, intersects `T`'s electing majority
//!    only in nodes that truly hold `E`; so `T`'s leader holds `E`, and by
//!    Log Matching so does this node, which matches that leader's log up to
//!    its commit index. From then on its log holds everything it ever
//!    acknowledged, and it votes and stands again.
//!
//! The cost is availability, never safety: until repaired the node does not
//! count towards an election, so a cluster that loses its leader while as
//! many nodes are damaged or down as it can tolerate waits for one of them.
//! A single-node cluster cannot repair at all (no other copy exists), so
//! the machine refuses to start damaged alone.

use super::{Machine, RoleState};
use crate::types::{HardState, LogIndex, Term};

/// The state of a node that is repairing: the term whose committed entries
/// prove its log whole again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Repair {
    /// `H + 1`: an entry of this term or later, committed, ends the repair.
    pub(super) until_term: Term,
}

impl Machine {
    /// Enters repair from hard state `hard_state` (rule 1): the next term,
    /// no vote, stored at the first output. Returns `None` when the term
    /// space is exhausted, which only absurd input reaches.
    pub(super) fn begin_repair(&mut self) -> Option<()> {
        let until_term = Term(self.hard_state.term.0.checked_add(1)?);
        self.hard_state = HardState {
            term: until_term,
            voted_for: None,
        };
        self.hard_state_dirty = true;
        self.leader = None;
        self.role = RoleState::Follower;
        self.repair = Some(Repair { until_term });
        Some(())
    }

    /// Whether this node is repairing a damaged log: it then grants no
    /// vote and stands for no election (rule 2).
    pub fn repairing(&self) -> bool {
        self.repair.is_some()
    }

    /// Ends the repair once the commit index reaches an entry of the
    /// repair's term or later (rule 3). Called whenever the commit index moves.
    pub(super) fn check_repaired(&mut self, commit: LogIndex) {
        if let Some(repair) = self.repair {
            if self
                .log
                .term_at(commit)
                .is_some_and(|t| t >= repair.until_term)
            {
                self.repair = None;
            }
        }
    }
}
