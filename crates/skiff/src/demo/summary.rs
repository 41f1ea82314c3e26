//! The demo's closing report.

use super::log_audit::LogAudit;
use hdrhistogram::Histogram;
use skiff_node::{NodeId, Term};
use std::fmt;
use std::time::Duration;

/// The leader the demo killed and what followed.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Every leader polling saw from the kill to the end of the watch
    /// after the restart, in order, the successor first: one per leader
    /// change.
    pub leaders: Vec<(NodeId, Term)>,
    /// The leader when the killed node restarted.
    pub at_restart: (NodeId, Term),
    /// The leaders polling saw after the restart other than that one:
    /// none when the node rejoined without an election.
    pub after_restart: Vec<(NodeId, Term)>,
}

/// `node 2 (term 3), node 1 (term 5)`.
fn leader_list(leaders: &[(NodeId, Term)]) -> String {
    let named: Vec<String> = leaders
        .iter()
        .map(|(id, term)| format!("node {id} (term {term})"))
        .collect();
    named.join(", ")
}

impl Crash {
    /// Whether the restarted node came back without an election: no other
    /// leader and no other term after its restart.
    pub fn rejoined_quietly(&self) -> bool {
        self.after_restart.is_empty()
    }

    /// One line: the leader changes and terms this kill led to, and how
    /// the killed node rejoined.
    pub fn story(&self) -> String {
        let (killed, term) = self.killed;
        let changes = self.leaders.len();
        let plural = if changes == 1 { "" } else { "s" };
        let rejoin = if self.rejoined_quietly() {
            format!(
                "rejoined without an election (node {} still leads, term {} unchanged)",
                self.at_restart.0, self.at_restart.1
            )
        } else {
            format!(
                "its return caused an election: after node {} (term {}) came {}",
                self.at_restart.0,
                self.at_restart.1,
                leader_list(&self.after_restart)
            )
        };
        format!(
            "kill of node {killed} (term {term}): {changes} leader change{plural} ({}); \
             node {killed} {rejoin}",
            leader_list(&self.leaders)
        )
    }
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
    /// The crashes, in order (none when the run ended before the first).
    pub crashes: Vec<Crash>,
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
    /// What the committed log shows about changes applied twice, once the
    /// nodes stopped.
    pub log_audit: Option<LogAudit>,
}

impl Summary {
    /// Answered operations.
    pub fn operations(&self) -> u64 {
        self.writes + self.reads + self.cas
    }

    /// Changes of client sessions the log applied more than once.
    pub fn duplicates_applied(&self) -> u64 {
        self.log_audit
            .as_ref()
            .map_or(0, |audit| audit.report.duplicates_applied)
    }

    /// Whether the run showed the cluster doing its job.
    pub fn passed(&self) -> bool {
        self.lost_writes == 0
            && self.stale_reads == 0
            && self.errors == 0
            && self.duplicates_applied() == 0
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
        writeln!(f, "  lost writes:      {}", self.lost_writes)?;
        match &self.log_audit {
            Some(audit) => write!(
                f,
                "  duplicates applied: {} (node {}'s committed log, entries {}..={}: {} sessions, \
                 {} numbered changes, {} resends reached the log)",
                audit.report.duplicates_applied,
                audit.node,
                audit.entries.0,
                audit.entries.1,
                audit.report.sessions_opened,
                audit.report.numbered_changes,
                audit.report.resent_entries
            ),
            None => write!(f, "  duplicates applied: - (the log was not audited)"),
        }
    }
}

impl Summary {
    fn write_crash(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.crashes.is_empty() {
            return writeln!(
                f,
                "  failovers:        {} (no leader was killed)",
                self.failovers
            );
        }
        let quiet = self.crashes.iter().filter(|c| c.rejoined_quietly()).count();
        writeln!(
            f,
            "  failovers:        {} for {} kills; {quiet} of {} restarted nodes rejoined \
             without an election",
            self.failovers,
            self.crashes.len(),
            self.crashes.len()
        )?;
        for (number, crash) in self.crashes.iter().enumerate() {
            let ((killed, old_term), (successor, new_term)) = (crash.killed, crash.successor);
            writeln!(
                f,
                "  kill {}:           node {killed} (term {old_term}) killed, node {successor} \
                 leads (term {new_term}) after {} ms without a leader; {} leader change{}",
                number + 1,
                crash.leaderless.as_millis(),
                crash.leaders.len(),
                if crash.leaders.len() == 1 { "" } else { "s" },
            )?;
            writeln!(
                f,
                "  restart {}:        node {killed} caught up in {:.1} s; {}",
                number + 1,
                crash.catch_up.as_secs_f64(),
                if crash.rejoined_quietly() {
                    format!(
                        "rejoined in term {} without an election",
                        crash.at_restart.1
                    )
                } else {
                    format!("then came {}", leader_list(&crash.after_restart))
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_ends_with_lost_writes_and_duplicates() {
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
            crashes: vec![Crash {
                killed: (NodeId(1), Term(1)),
                successor: (NodeId(2), Term(2)),
                leaderless: Duration::from_millis(612),
                catch_up: Duration::from_millis(400),
                leaders: vec![(NodeId(2), Term(2))],
                at_restart: (NodeId(2), Term(2)),
                after_restart: vec![],
            }],
            acknowledged: 3,
            verified_on: Some(NodeId(2)),
            stale_reads: 0,
            lost_writes: 0,
            errors: 0,
            log_audit: Some(LogAudit {
                node: NodeId(3),
                entries: (skiff_core::LogIndex(1), skiff_core::LogIndex(40)),
                report: skiff_fs::store::audit::AuditReport {
                    entries: 40,
                    sessions_opened: 2,
                    numbered_changes: 20,
                    resent_entries: 3,
                    duplicates_applied: 0,
                },
            }),
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
        assert!(text.contains("1 for 1 kills; 1 of 1 restarted nodes rejoined without"));
        assert!(
            text.contains("rejoined in term 2 without an election"),
            "{text}"
        );
        assert!(text.contains("lost writes:      0\n"), "{text}");
        assert!(
            text.ends_with(
                "duplicates applied: 0 (node 3's committed log, entries 1..=40: 2 sessions, \
                 20 numbered changes, 3 resends reached the log)"
            ),
            "{text}"
        );
        let story = summary.crashes[0].story();
        assert_eq!(
            story,
            "kill of node 1 (term 1): 1 leader change (node 2 (term 2)); node 1 rejoined \
             without an election (node 2 still leads, term 2 unchanged)"
        );
        let mut noisy = summary.crashes[0].clone();
        noisy.leaders.push((NodeId(1), Term(5)));
        noisy.after_restart.push((NodeId(1), Term(5)));
        assert!(!noisy.rejoined_quietly());
        assert!(
            noisy
                .story()
                .contains("2 leader changes (node 2 (term 2), node 1 (term 5))"),
            "{}",
            noisy.story()
        );
        assert!(noisy
            .story()
            .contains("its return caused an election: after node 2 (term 2) came node 1 (term 5)"));
        let mut duplicated = Summary {
            lost_writes: 0,
            ..summary
        };
        if let Some(audit) = &mut duplicated.log_audit {
            audit.report.duplicates_applied = 1;
        }
        assert!(!duplicated.passed());
        let failed = Summary {
            lost_writes: 1,
            ..duplicated
        };
        assert!(!failed.passed());
    }
}
