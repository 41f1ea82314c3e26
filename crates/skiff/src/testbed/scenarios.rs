//! The measured scenarios: each injects its faults through the nemesis,
//! watches every node's `status` from the root namespace, heals, and
//! prints its property with PASS or FAIL.
//!
//! What is awaited: the scenarios poll every node's `status` every
//! [`POLL_INTERVAL`] (each probe bounded by [`PROBE_TIMEOUT`]) until the
//! condition they measure holds or its deadline passes; the times they
//! report are thus accurate to about one poll. The only fixed waits are
//! the faults' own durations (how long a partition is held).

use super::nemesis::{Fault, Nemesis, Timing, STALL_FILE};
use super::report::{in_timeouts, Report};
use anyhow::Context;
use skiff::status_probe::{agreed_leader, probe_all, wait_for_leader, ProbeError};
use skiff_fs::protocol::StatusReport;
use skiff_fs::workload::Rng;
use skiff_node::{NodeId, Role, Term};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// How often the nodes' status is polled while a property is measured.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long one status probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a healed cluster may take to agree on a leader again.
const LEADER_PATIENCE: Duration = Duration::from_secs(30);
/// The most election timeouts a property may take to count as passed.
const TIMEOUTS_ALLOWED: u32 = 2;
/// Elections per minute a partial partition may cause.
const ELECTIONS_PER_MINUTE_MAX: u64 = 2;

/// A running cluster under the nemesis, and where its figures go.
pub struct Bed<'a> {
    /// The faults.
    pub nemesis: Nemesis<'a>,
    /// Every node's client address, in id order.
    pub addresses: Vec<String>,
    /// The cluster's timing from its `cluster.toml`.
    pub timing: Timing,
    /// Progress and properties.
    pub report: Report,
    /// The test bed's directory (configuration, data, stall files).
    pub dir: PathBuf,
}

impl Bed<'_> {
    fn ids(&self) -> Vec<NodeId> {
        (1..=self.addresses.len() as u64).map(NodeId).collect()
    }

    async fn statuses(&self) -> Vec<Result<StatusReport, ProbeError>> {
        probe_all(&self.addresses, PROBE_TIMEOUT).await
    }

    async fn leader(&self) -> anyhow::Result<StatusReport> {
        wait_for_leader(&self.addresses, LEADER_PATIENCE)
            .await
            .context("the cluster has no leader")
    }

    /// The leader, once every node follows it in its term and has caught
    /// up with what it had committed when the wait began: a fault measured
    /// from here is not mixed with the end of the previous one (a follower
    /// still reconnecting, or holding a lease from a late message, would
    /// slow the election the fault is meant to time).
    async fn settled(&self) -> anyhow::Result<StatusReport> {
        let leader = self.leader().await?;
        let began = Instant::now();
        while began.elapsed() < LEADER_PATIENCE {
            let reports = self.statuses().await;
            let Some(Ok(now)) = reports.get(leader.id.0 as usize - 1) else {
                break;
            };
            let follows = |r: &StatusReport| {
                r.term == now.term
                    && r.leader == Some(now.id)
                    && r.commit_index >= leader.commit_index
            };
            if now.role == Role::Leader && reports.iter().all(|r| r.as_ref().is_ok_and(follows)) {
                return Ok(*now);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        // The leader changed or some node lags: take whoever leads now.
        self.leader().await
    }

    fn allowed(&self) -> Duration {
        self.timing.election_timeout * TIMEOUTS_ALLOWED
    }

    /// A follower of `leader`: the highest id that is not it.
    fn follower_of(&self, leader: NodeId) -> NodeId {
        let ids = self.ids().into_iter().rev();
        ids.into_iter().find(|&id| id != leader).unwrap_or(leader)
    }
}

/// The highest term any answering node reports.
fn highest_term(reports: &[Result<StatusReport, ProbeError>]) -> Option<Term> {
    reports.iter().flatten().map(|r| r.term).max()
}

/// (a) A leader cut off from every other node: how long until the others
/// agree on a new leader, and until the isolated one stops leading.
pub async fn isolate_leader(bed: &mut Bed<'_>) -> anyhow::Result<()> {
    let old = bed.settled().await?;
    let patience = (bed.timing.election_timeout * 10).max(Duration::from_secs(3));
    bed.report.progress(format_args!(
        "isolate-leader: node {} (term {}) cut off from every other node, watched for up to {patience:?}",
        old.id, old.term
    ));
    let fault = bed.nemesis.isolation(old.id);
    bed.nemesis.inject(fault)?;
    let (replaced, stepped_down) = watch_replacement(bed, &old, patience).await;
    bed.nemesis.heal_all()?;
    let timeout = bed.timing.election_timeout;
    let figure = |measured: Option<Duration>| match measured {
        Some(duration) => in_timeouts(duration, timeout),
        None => format!("not within {}", in_timeouts(patience, timeout)),
    };
    let limit = bed.allowed();
    let within = |measured: Option<Duration>| measured.is_some_and(|d| d <= limit);
    let allowed = in_timeouts(limit, timeout);
    bed.report.property(
        "(a) isolated leader replaced",
        format!("{} (allowed {allowed})", figure(replaced)),
        within(replaced),
    );
    bed.report.property(
        "(a) isolated leader steps down",
        format!("{} (allowed {allowed})", figure(stepped_down)),
        within(stepped_down),
    );
    let healed = bed.leader().await?;
    bed.report.progress(format_args!(
        "isolate-leader: healed; leader node {} term {}",
        healed.id, healed.term
    ));
    Ok(())
}

/// Watches, for up to `patience` from now, until the others agree on a
/// leader of a term after `old`'s and until `old`'s own node stops saying
/// it leads; returns how long each took, if it happened.
async fn watch_replacement(
    bed: &Bed<'_>,
    old: &StatusReport,
    patience: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let began = Instant::now();
    let (mut replaced, mut stepped_down) = (None, None);
    while (replaced.is_none() || stepped_down.is_none()) && began.elapsed() < patience {
        let mut reports = bed.statuses().await;
        let old_node = reports.remove(old.id.0 as usize - 1);
        if stepped_down.is_none() && old_node.is_ok_and(|r| r.role != Role::Leader) {
            stepped_down = Some(began.elapsed());
        }
        let new = agreed_leader(&reports, bed.addresses.len());
        if replaced.is_none() && new.is_some_and(|n| n.term > old.term) {
            replaced = Some(began.elapsed());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    (replaced, stepped_down)
}

/// (b) A follower partitioned from every other node for `hold`, then let
/// back: the leader and the term must be those of before.
pub async fn rejoin(bed: &mut Bed<'_>, hold: Duration) -> anyhow::Result<()> {
    let before = bed.leader().await?;
    let node = bed.follower_of(before.id);
    bed.report.progress(format_args!(
        "rejoin: node {node} cut off for {} (leader node {} term {})",
        humantime::format_duration(hold),
        before.id,
        before.term
    ));
    let fault = bed.nemesis.isolation(node);
    bed.nemesis.inject(fault)?;
    tokio::time::sleep(hold).await;
    let leader_commit = bed.leader().await?.commit_index;
    bed.nemesis.heal_all()?;
    let healed_at = Instant::now();
    // Awaited: the node knows a leader and has caught up with what was
    // committed before the heal; then the cluster is watched for a few
    // more election timeouts, in which a disruption would show.
    let (mut caught_up, mut term_seen) = (None, before.term);
    let settle = bed.timing.election_timeout * 3;
    let deadline = healed_at + LEADER_PATIENCE;
    loop {
        let reports = bed.statuses().await;
        term_seen = term_seen.max(highest_term(&reports).unwrap_or(term_seen));
        let rejoined = &reports[node.0 as usize - 1];
        if caught_up.is_none()
            && rejoined
                .as_ref()
                .is_ok_and(|r| r.leader.is_some() && r.commit_index >= leader_commit)
        {
            caught_up = Some(healed_at.elapsed());
        }
        let settled = caught_up.is_some_and(|at| healed_at.elapsed() >= at + settle);
        if settled || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let after = bed.leader().await?;
    let unchanged = after.id == before.id && after.term == before.term && term_seen == before.term;
    let caught_up_text = match caught_up {
        Some(at) => format!("caught up {} ms after the heal", at.as_millis()),
        None => format!("not caught up within {LEADER_PATIENCE:?}"),
    };
    bed.report.property(
        "(b) rejoin after a partition changes neither leader nor term",
        format!(
            "node {node} cut off {}; before: leader {} term {}; after: leader {} term {} \
             (highest term seen {term_seen}); {caught_up_text}",
            humantime::format_duration(hold),
            before.id,
            before.term,
            after.id,
            after.term
        ),
        unchanged && caught_up.is_some(),
    );
    Ok(())
}

/// (e) The leader's disk hangs for `hold`: its syncs wait while its stall
/// file exists. How long until the others agree on a new leader, until it
/// stops leading, and, once its disk answers, until it follows the new one.
pub async fn stall(bed: &mut Bed<'_>, hold: Duration) -> anyhow::Result<()> {
    let old = bed.settled().await?;
    let file = bed
        .dir
        .join(STALL_FILE.replace("{id}", &old.id.0.to_string()));
    bed.report.progress(format_args!(
        "stall: node {}'s disk (the leader, term {}) hangs for {}",
        old.id,
        old.term,
        humantime::format_duration(hold)
    ));
    std::fs::write(&file, b"").with_context(|| format!("cannot create {}", file.display()))?;
    let stalled_at = Instant::now();
    // Awaited: a leader agreed by the others in a newer term, and the old
    // leader's own status no longer saying leader, within the stall.
    let (replaced, stepped_down) = watch_replacement(bed, &old, hold).await;
    if let Some(rest) = hold.checked_sub(stalled_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
    let answered_at = Instant::now();
    // Awaited: the old leader follows a leader of a newer term.
    let mut rejoined = None;
    while rejoined.is_none() && answered_at.elapsed() < LEADER_PATIENCE {
        let reports = bed.statuses().await;
        let follows = reports[old.id.0 as usize - 1].as_ref().is_ok_and(|r| {
            r.role == Role::Follower && r.term > old.term && r.leader.is_some_and(|l| l != old.id)
        });
        if follows {
            rejoined = Some(answered_at.elapsed());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let timeout = bed.timing.election_timeout;
    let limit = bed.allowed();
    let figure = |measured: Option<Duration>, within: Duration| match measured {
        Some(duration) => in_timeouts(duration, timeout),
        None => format!("not within {}", in_timeouts(within, timeout)),
    };
    bed.report.property(
        "(e) leader with a stalled disk replaced",
        format!(
            "{} (allowed {}); it stopped leading after {}; after its disk answered it followed \
             the new leader in {}",
            figure(replaced, hold),
            in_timeouts(limit, timeout),
            figure(stepped_down, hold),
            figure(rejoined, LEADER_PATIENCE),
        ),
        replaced.is_some_and(|d| d <= limit) && stepped_down.is_some() && rejoined.is_some(),
    );
    Ok(())
}

/// (c) A partial partition held for `hold`: the leader and one follower
/// cannot reach each other, every other link stays up. Counts elections
/// (terms begun) in that time.
pub async fn partial(bed: &mut Bed<'_>, hold: Duration) -> anyhow::Result<()> {
    let leader = bed.leader().await?;
    let node = bed.follower_of(leader.id);
    bed.report.progress(format_args!(
        "partial: link {}-{node} down for {} (the others see both)",
        leader.id,
        humantime::format_duration(hold)
    ));
    let start_term = highest_term(&bed.statuses().await).unwrap_or(leader.term);
    bed.nemesis
        .inject(Fault::LinksDown(vec![(leader.id, node)]))?;
    let cut_at = Instant::now();
    let mut end_term = start_term;
    let mut next_progress = Duration::from_secs(10);
    while cut_at.elapsed() < hold {
        end_term = end_term.max(highest_term(&bed.statuses().await).unwrap_or(end_term));
        if cut_at.elapsed() >= next_progress {
            bed.report.progress(format_args!(
                "partial: term {start_term} -> {end_term} so far"
            ));
            next_progress += Duration::from_secs(10);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    bed.nemesis.heal_all()?;
    let elections = end_term.0 - start_term.0;
    let minutes = hold.as_secs_f64() / 60.0;
    // Two per minute begun, so that a shortened run may still hold one.
    let allowed = ELECTIONS_PER_MINUTE_MAX * (minutes.ceil() as u64).max(1);
    bed.report.property(
        "(c) elections under a partial partition",
        format!(
            "{elections} elections (term {start_term} -> {end_term}) in {}: {:.1} per minute \
             (allowed {allowed}, {ELECTIONS_PER_MINUTE_MAX} per minute begun)",
            humantime::format_duration(hold),
            elections as f64 / minutes
        ),
        elections <= allowed,
    );
    bed.leader().await?;
    Ok(())
}

/// Random faults for `duration`, one at a time, each held one to three
/// seconds and healed; after each heal the cluster must agree on a leader
/// again within [`LEADER_PATIENCE`].
pub async fn chaos(bed: &mut Bed<'_>, duration: Duration, seed: u64) -> anyhow::Result<()> {
    let mut rng = Rng::for_client(seed);
    let ids = bed.ids();
    let started = Instant::now();
    let (mut faults, mut slowest_recovery, mut unrecovered) = (0, Duration::ZERO, 0);
    bed.report.progress(format_args!(
        "chaos: random faults for {}",
        humantime::format_duration(duration)
    ));
    while started.elapsed() < duration {
        let leader = agreed_leader(&bed.statuses().await, ids.len()).map(|r| r.id);
        let fault = draw_fault(&mut rng, &ids, leader, &bed.nemesis);
        let hold = Duration::from_millis(1000 + rng.below(2000));
        bed.report
            .progress(format_args!("chaos: {fault} for {} ms", hold.as_millis()));
        bed.nemesis.inject(fault)?;
        faults += 1;
        tokio::time::sleep(hold).await;
        bed.nemesis.heal_all()?;
        let healed_at = Instant::now();
        match bed.leader().await {
            Ok(_) => slowest_recovery = slowest_recovery.max(healed_at.elapsed()),
            Err(_) => unrecovered += 1,
        }
    }
    bed.report.property(
        "chaos: a leader after every heal",
        format!(
            "{faults} faults; leader agreed again at most {} ms after a heal; {unrecovered} without a leader within {LEADER_PATIENCE:?}",
            slowest_recovery.as_millis()
        ),
        unrecovered == 0,
    );
    Ok(())
}

/// One fault drawn with `rng` among every kind the nemesis has.
fn draw_fault(rng: &mut Rng, ids: &[NodeId], leader: Option<NodeId>, nemesis: &Nemesis) -> Fault {
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
    match rng.below(6) {
        0 => nemesis.isolation(leader.unwrap_or_else(|| pick(rng))),
        1 => {
            let mut minority = BTreeSet::new();
            let size = 1 + rng.below(((ids.len() - 1) / 2) as u64) as usize;
            while minority.len() < size {
                minority.insert(pick(rng));
            }
            let rest = ids.iter().copied().filter(|id| !minority.contains(id));
            let rest = rest.collect();
            Fault::Partition(minority, rest)
        }
        2 | 3 => {
            let from = pick(rng);
            let mut to = pick(rng);
            while to == from {
                to = pick(rng);
            }
            if rng.below(2) == 0 {
                Fault::LinksDown(vec![(from.min(to), from.max(to))])
            } else {
                Fault::OneWay(from, to)
            }
        }
        4 => Fault::Crash(pick(rng)),
        _ => Fault::Pause(pick(rng)),
    }
}
