//! A disk that hangs: a leader whose persistence does not complete stops
//! leading, so that the cluster elects another instead of waiting on it.
//!
//! The machine has no clock and performs no I/O, so the driver decides
//! when its storage has stalled (a write or sync outstanding for longer
//! than it allows) and says so with [`Event::StorageStalled`]; it says
//! [`Event::StorageRecovered`] once that persistence completes. While
//! stalled:
//!
//! 1. **A leader steps down** in its term and reports
//!    [`StepDownReason::StorageStalled`]: its heartbeats stop, so the
//!    followers' timeouts elect another leader. A driver whose heartbeats do
//!    not wait on the disk would otherwise keep a leader that can commit
//!    nothing in office for as long as the disk hangs. A (pre-)candidate
//!    gives up its candidacy.
//! 2. **The node stands for no election and grants no (pre-)vote**: a vote
//!    must be durable before it is sent, and a leader needs a disk. Its
//!    timeouts only re-arm the alarm.
//! 3. **Everything else goes on**: it takes entries and answers as a
//!    follower; the driver holds the answers until the disk makes what they
//!    promise durable.
//!
//! [`Event::StorageStalled`]: crate::Event::StorageStalled
//! [`Event::StorageRecovered`]: crate::Event::StorageRecovered

use super::{Machine, RoleState};
use crate::action::StepDownReason;

impl Machine {
    pub(super) fn handle_storage_stalled(&mut self) {
        self.storage_stalled = true;
        match self.role {
            RoleState::Leader { .. } => self.step_down(StepDownReason::StorageStalled),
            RoleState::PreCandidate { .. } | RoleState::Candidate { .. } => {
                self.become_follower(self.hard_state.term)
            }
            RoleState::Follower => {}
        }
    }

    pub(super) fn handle_storage_recovered(&mut self) {
        self.storage_stalled = false;
    }

    /// Whether the driver reported its storage stalled and not yet
    /// recovered: the node neither leads, stands nor votes meanwhile.
    pub fn storage_stalled(&self) -> bool {
        self.storage_stalled
    }
}
