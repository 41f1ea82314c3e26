//! The demo's closing report.

use hdrhistogram::Histogram;
use skiff_node::{NodeId, Term};
use std::fmt;
use std::time::Duration;

/// The leader the demo killed and what followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    /// The leader killed with SIGKILL, and its term.
    pub killed: (NodeId, Term),
    /// The next leader polling saw, and its term.
    pub successor: (NodeId, Term),
    /// From the SIGKILL to the first poll that saw the successor lead.
    pub leaderless: Duration,
    /// From the restart of the killed node to its commit index reaching
    /// the leader's at the restart.
    pub catch_up: Duration,
}

/// Everything the demo reports at the end.
#[derive(Debug)]
pub struct Summary {
    /// How long the clients ran.
    pub workload: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Files, all clients together.
    pub files: usize,
    /// Answered writes.
    pub writes: u64,
    /// Answered reads.
    pub reads: u64,
    /// Answered cas (success or version mismatch).
    pub cas: u64,
    /// Changes and reads whose answer was lost.
    pub uncertain: u64,
    /// Operations that found no leader in the client's attempts.
    pub unavailable: u64,
    /// Latency of answered operations, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Leader changes polling saw, the crash's included.
    pub failovers: usize,
    /// The crash, when it happened.
    pub crash: Option<Crash>,
    /// Acknowledged changes, all files together.
    pub acknowledged: u64,
    /// Where the final reads were answered.
    pub verified_on: Option<NodeId>,
    /// Reads during the run that missed an acknowledged change.
    pub stale_reads: usize,
    /// Files whose final read missed its last acknowledged change.
    pub lost_writes: usize,
    /// Unexpected errors.
    pub errors: usize,
}

impl Summary {
    /// Answered operations.
    pub fn operations(&self) -> u64 {
        self.writes + self.reads + self.cas
    }

    /// Whether the run showed the cluster doing its job.
    pub fn passed(&self) -> bool {
        self.lost_writes == 0 && self.stale_reads == 0 && self.errors == 0
    }
}

/// Microseconds as milliseconds with one decimal.
fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.workload.as_secs_f64();
        let throughput = self.operations() as f64 / seconds.max(f64::MIN_POSITIVE);
        let latency = &self.latency_us;
        writeln!(f, "summary")?;
        writeln!(
            f,
            "  workload:         {seconds:.1} s, {} clients, {} files",
            self.clients, self.files
        )?;
        writeln!(
            f,
            "  operations:       {} ({} writes, {} reads, {} cas)",
            self.operations(),
            self.writes,
            self.reads,
            self.cas
        )?;
        writeln!(f, "  throughput:       {throughput:.0} ops/s")?;
        writeln!(
            f,
            "  latency:          p50 {}, p99 {}, p99.9 {}, max {}",
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.99)),
            ms(latency.value_at_quantile(0.999)),
            ms(latency.max())
        )?;
        writeln!(
            f,
            "  answer lost:      {} (outcome unknown; checked like the rest)",
            self.uncertain
        )?;
        writeln!(
            f,
            "  no leader found:  {} (nothing changed; not retried)",
            self.unavailable
        )?;
        self.write_crash(f)?;
        let on = self
            .verified_on
            .map_or("-".to_string(), |id| format!("node {id}"));
        writeln!(
            f,
            "  verified:         {} acknowledged changes; the last of each file read back on {on}",
            self.acknowledged
        )?;
        writeln!(f, "  errors:           {}", self.errors)?;
        writeln!(f, "  stale reads:      {}", self.stale_reads)?;
        write!(f, "  lost writes:      {}", self.lost_writes)
    }
}

impl Summary {
    fn write_crash(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(crash) = &self.crash else {
            return writeln!(
                f,
                "  failovers:        {} (no leader was killed)",
                self.failovers
            );
        };
        let ((killed, old_term), (successor, new_term)) = (crash.killed, crash.successor);
        writeln!(
            f,
            "  failovers:        {}: node {killed} (term {old_term}) killed, node {successor} \
             leads (term {new_term}) after {} ms without a leader",
            self.failovers,
            crash.leaderless.as_millis()
        )?;
        writeln!(
            f,
            "  restart:          node {killed} caught up in {:.1} s",
            crash.catch_up.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_ends_with_lost_writes() {
        let mut latency_us = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in [1000, 2000, 3000, 400_000] {
            latency_us.record(us).unwrap();
        }
        let summary = Summary {
            workload: Duration::from_secs(2),
            clients: 2,
            files: 6,
            writes: 2,
            reads: 1,
            cas: 1,
            uncertain: 0,
            unavailable: 0,
            latency_us,
            failovers: 1,
            crash: Some(Crash {
                killed: (NodeId(1), Term(1)),
                successor: (NodeId(2), Term(2)),
                leaderless: Duration::from_millis(612),
                catch_up: Duration::from_millis(400),
            }),
            acknowledged: 3,
            verified_on: Some(NodeId(2)),
            stale_reads: 0,
            lost_writes: 0,
            errors: 0,
        };
        let text = summary.to_string();
        assert!(summary.passed());
        assert!(
            text.contains("operations:       4 (2 writes, 1 reads, 1 cas)"),
            "{text}"
        );
        assert!(text.contains("throughput:       2 ops/s"), "{text}");
        assert!(text.contains("p50 2.0 ms, p99 400.1 ms"), "{text}");
        assert!(text.contains("node 1 (term 1) killed, node 2 leads (term 2) after 612 ms"));
        assert!(text.ends_with("lost writes:      0"), "{text}");
        let failed = Summary {
            lost_writes: 1,
            ..summary
        };
        assert!(!failed.passed());
    }
}
