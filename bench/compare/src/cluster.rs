//! What a workload needs from an implementation: a cluster of peers in one
//! process whose messages are handed over in memory, in rounds.

/// A cluster of `peers` in one process, node 1 its elected leader.
///
/// Messages move in rounds: a round hands every message queued so far to its
/// receiver, and what the receivers send in turn waits for the next round.
/// No clock runs, so there are no heartbeats or elections once the leader is
/// in office, and nothing is written to disk.
pub trait Cluster: Sized {
    /// The implementation's name in the report.
    const NAME: &'static str;

    /// A cluster of `peers` voters whose leader has taken office and whose
    /// messages are all delivered.
    fn elect(peers: u64) -> Self;

    /// The client hands `payload` to the leader. The implementation copies it
    /// into the owned buffer its API takes: one allocation, counted as the
    /// client's.
    fn append(&mut self, payload: &[u8]);

    /// One round: every node handles what it has pending, and every message
    /// sent in the previous round reaches its receiver.
    fn round(&mut self);

    /// Client entries the leader has reported committed so far (the leader's
    /// no-op is not one of them).
    fn committed(&self) -> u64;

    /// Whether no message is in flight and no node has work pending.
    fn is_idle(&self) -> bool;

    /// Runs rounds until the cluster is idle, at most `rounds_max` of them.
    fn settle(&mut self, rounds_max: usize) {
        for _ in 0..rounds_max {
            if self.is_idle() {
                return;
            }
            self.round();
        }
        assert!(
            self.is_idle(),
            "{}: not idle after {rounds_max} rounds",
            Self::NAME
        );
    }
}
