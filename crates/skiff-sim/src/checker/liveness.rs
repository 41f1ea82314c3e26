//! Liveness: once faults stop (partitions healed, every node up, no more
//! loss), a leader is elected and a new append commits within a bound of
//! simulated time. "New" means submitted after the faults stopped, so that
//! an old, lucky append does not count.

use super::{Failure, Rule};
use crate::queue::Micros;

/// Tracks the quiet period at the end of a run.
#[derive(Debug, Default)]
pub struct Liveness {
    quiet_since: Option<Micros>,
    bound: Micros,
    recovered_at: Option<Micros>,
}

impl Liveness {
    /// Faults stopped at `now`; an append must commit within `bound`.
    pub fn start_quiet(&mut self, now: Micros, bound: Micros) {
        self.quiet_since = Some(now);
        self.bound = bound;
    }

    /// The deadline, once the quiet period has begun.
    pub fn deadline(&self) -> Option<Micros> {
        self.quiet_since.map(|since| since + self.bound)
    }

    /// A client's append submitted at `submitted` was acknowledged at `now`.
    pub fn observe_ack(&mut self, submitted: Micros, now: Micros) {
        let new = self.quiet_since.is_some_and(|since| submitted >= since);
        if new && self.recovered_at.is_none() {
            self.recovered_at = Some(now);
        }
    }

    /// When the cluster recovered, if it has.
    pub fn recovered_at(&self) -> Option<Micros> {
        self.recovered_at
    }

    /// How long after faults stopped the cluster recovered, if it has.
    pub fn recovery_time(&self) -> Option<Micros> {
        Some(self.recovered_at? - self.quiet_since?)
    }

    /// Fails once `now` is past the deadline without recovery.
    pub fn check(&self, now: Micros, leaders: &str) -> Result<(), Failure> {
        match (self.deadline(), self.recovered_at) {
            (Some(deadline), None) if now >= deadline => Err(Failure::new(
                Rule::Liveness,
                Vec::new(),
                format!(
                    "faults stopped at t={} ms but no append submitted since committed by \
                     t={} ms; leaders now: {leaders}",
                    self.quiet_since.unwrap_or_default() / 1000,
                    deadline / 1000
                ),
            )),
            _ => Ok(()),
        }
    }
}
