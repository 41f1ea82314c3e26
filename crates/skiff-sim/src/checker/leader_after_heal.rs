//! A leader after a heal: once a majority of nodes is up, running (no
//! stalled disk) and connected both ways, a leader that a majority follows
//! in its term is in place within a bound. The interval runs from the heal
//! (a partition healed, a node restarted, a stall ended, faults stopped)
//! that found the cluster without such a leader, to the first moment it has
//! one; a new fault before then (a crash, a partition, a stall) cuts it
//! short, uncounted, as the fault may rightly delay the election.
//!
//! The bound is [`LEADERLESS_TIMEOUTS`] election timeouts: a follower's
//! lease (one timeout) and its random wait (up to one more) end before it
//! asks for pre-votes; split votes and lost or slow messages (the faulty
//! part of a run keeps losing some, and delays some by up to a second)
//! repeat a round now and then; twenty leave room for several rounds, and a
//! cluster caught in an election storm (PreVote or CheckQuorum broken, or
//! turned off under a partial partition) exceeds them.

use super::{Failure, Rule};
use crate::queue::Micros;

/// The bound, in election timeouts.
pub const LEADERLESS_TIMEOUTS: u64 = 20;

/// The heal being waited on, and the intervals measured.
#[derive(Debug, Default)]
pub struct LeaderAfterHeal {
    bound: Micros,
    waiting_since: Option<Micros>,
    /// Intervals measured.
    pub intervals: u64,
    /// Their total length.
    pub total_us: Micros,
    /// The longest.
    pub max_us: Micros,
}

impl LeaderAfterHeal {
    /// A tracker whose bound is [`LEADERLESS_TIMEOUTS`] times `election_timeout`.
    pub fn new(election_timeout: Micros) -> LeaderAfterHeal {
        LeaderAfterHeal {
            bound: election_timeout.saturating_mul(LEADERLESS_TIMEOUTS),
            ..LeaderAfterHeal::default()
        }
    }

    /// The bound, in microseconds.
    pub fn bound(&self) -> Micros {
        self.bound
    }

    /// Whether an interval is running.
    pub fn waiting(&self) -> bool {
        self.waiting_since.is_some()
    }

    /// A heal at `now` found a majority up and connected but no leader it
    /// follows: the interval starts, unless one is running.
    pub fn healed(&mut self, now: Micros) {
        self.waiting_since.get_or_insert(now);
    }

    /// A fault at `now`: the running interval, if any, is dropped.
    pub fn disturbed(&mut self) {
        self.waiting_since = None;
    }

    /// A majority follows a leader at `now`: the running interval ends.
    pub fn led(&mut self, now: Micros) {
        if let Some(since) = self.waiting_since.take() {
            let length = now - since;
            self.intervals += 1;
            self.total_us += length;
            self.max_us = self.max_us.max(length);
        }
    }

    /// Fails once the running interval has passed the bound at `now`.
    pub fn check(&self, now: Micros) -> Result<(), Failure> {
        match self.waiting_since {
            Some(since) if now - since > self.bound => Err(Failure::new(
                Rule::LeaderAfterHeal,
                Vec::new(),
                format!(
                    "a majority has been up and connected since t={} ms, but no leader that a \
                     majority follows by t={} ms ({} ms, {LEADERLESS_TIMEOUTS} election timeouts)",
                    since / 1000,
                    now / 1000,
                    self.bound / 1000
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_heals_and_fails_past_the_bound() {
        let mut tracker = LeaderAfterHeal::new(100);
        assert_eq!(tracker.bound(), 2_000);
        tracker.healed(1_000);
        tracker.healed(1_500); // already waiting since 1000
        tracker.led(1_300);
        tracker.healed(5_000);
        tracker.disturbed();
        tracker.led(9_000); // dropped: nothing recorded
        assert_eq!((tracker.intervals, tracker.max_us), (1, 300));
        tracker.healed(10_000);
        assert!(tracker.check(12_000).is_ok());
        let failure = tracker.check(12_001).unwrap_err();
        assert_eq!(failure.rule, Rule::LeaderAfterHeal);
    }
}
