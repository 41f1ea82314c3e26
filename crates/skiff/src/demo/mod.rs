//! `skiff demo`: the whole system in a minute, with nothing to set up.
//!
//! It starts a three-node cluster on loopback under a temporary directory
//! (child processes of this binary), runs concurrent clients against it,
//! kills the leader with SIGKILL a third of the way in (or `--kills N`
//! times, a third of the way into each Nth of the run), shows the failover
//! as polling `status` sees it, restarts the killed node, waits for it to
//! catch up and watches a while longer, then reports per kill every leader
//! change and term polling saw, and whether the restarted node rejoined
//! without an election (the term unchanged after it returned: with PreVote
//! and the leader's lease it cannot depose a healthy leader). Finally it
//! reads every file back from the new leader and checks that
//! the last acknowledged change of each is there (see `workload` for why
//! that check is exact). The clients send their changes in sessions, so
//! that a change whose answer was lost is resent and still applies once;
//! once the nodes are stopped, their committed log is replayed to count
//! changes applied twice (`log_audit`). It prints a summary and removes everything it
//! made, on success, error or Ctrl-C alike; the exit status is 0 only when
//! no write was lost and no read was stale.
//!
//! # Layout
//!
//! * `workload`: the clients, and what each knows of its files.
//! * `monitor`: polling `status` to see who leads.
//! * `progress`: events, and the progress bar or plain progress lines.
//! * `summary`: the closing report.
//! * `log_audit`: the count of changes applied twice, from the nodes' logs.

mod log_audit;
mod monitor;
mod progress;
mod summary;
mod workload;

use crate::duration_arg;
use anyhow::Context;
use monitor::{failovers, LeaderMonitor, Observation};
use progress::Progress;
use skiff::process_cluster::{write_dev_certs, Ports, ProcessCluster, STOP_GRACE};
use skiff::status_probe::{
    probe_with, wait_for_leader_with, wait_until_answering_with, PROBE_TIMEOUT_DEFAULT,
};
use skiff_fs::ClientTls;
use skiff_fs::{Client, ClientError};
use skiff_node::{NodeId, Term};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use summary::{Crash, Summary};
use tokio::sync::watch;
use tokio::time::Instant;
use workload::{file_name, run_client, ClientReport, LiveCounters, Verdict, FILES_PER_CLIENT};

const EXAMPLES: &str = "\
Examples:
  skiff demo
  skiff demo --duration 8s --clients 4
  skiff demo --duration 1m --kills 5      # one leader change per kill?

Everything happens under a temporary directory on 127.0.0.1 with ports the
system picks, and is removed at the end (--keep keeps it, logs included).
The exit status is 0 only when no acknowledged write was lost, no read
was stale and the committed log applied no change twice.";

/// Nodes in the demo's cluster.
const NODES: u64 = 3;
/// How long the nodes may take to start answering, and to elect a leader.
const START_PATIENCE: Duration = Duration::from_secs(15);
/// How long a new leader may take to appear after the crash.
const FAILOVER_PATIENCE: Duration = Duration::from_secs(15);
/// How long the restarted node may take to catch up.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(30);
/// How often the progress display is refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Final reads that find no leader are retried this many times.
const VERIFY_ATTEMPTS: usize = 5;
/// How often the restarted node is asked how far it got.
const CATCH_UP_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Stale reads and errors shown per client; all are counted.
const PROBLEMS_SHOWN_MAX: usize = 5;
/// How long the cluster is watched after a restarted node caught up, for
/// an election its return might cause: several election timeouts.
const REJOIN_WATCH: Duration = Duration::from_secs(2);

/// Arguments of `skiff demo`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct DemoArgs {
    /// How long the clients run, 3s to 1h; the leader is killed a third
    /// of the way in.
    #[arg(long, default_value = "45s",
          value_parser = duration_arg::between(Duration::from_secs(3), Duration::from_secs(3600)))]
    duration: Duration,
    /// How many times the leader is killed (and restarted): once a third of
    /// the way into each Nth of the run.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    kills: u64,
    /// Concurrent clients; each owns three files.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// Keep the temporary directory (configuration, data, node logs).
    #[arg(long)]
    keep: bool,
    /// Mutual TLS between the nodes, with development certificates made
    /// in the temporary directory.
    #[arg(long)]
    tls: bool,
    /// With --tls, the clients (the workload, the status polls, the final
    /// reads) use TLS too: `clients = true` in the cluster's configuration.
    #[arg(long, requires = "tls")]
    client_tls: bool,
}

/// Runs the demo; an error when anything was lost or went wrong.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("skiff-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let program = std::env::current_exe().context("cannot find the skiff binary")?;
    let tls = match args.tls {
        true => Some(skiff_node::TlsConfig {
            clients: args.client_tls,
            ..write_dev_certs(dir.path(), NODES)?
        }),
        false => None,
    };
    let mut cluster =
        ProcessCluster::create_local_configured(program, dir.path(), NODES, Ports::Free, |c| {
            c.tls = tls;
        })?;
    println!(
        "skiff demo: {NODES} nodes on 127.0.0.1 under {}{}",
        dir.path().display(),
        match (args.tls, args.client_tls) {
            (true, true) => ", mutual TLS between them, TLS for the clients",
            (true, false) => ", mutual TLS between them",
            _ => "",
        }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            signal = skiff::shutdown::requested() => Err(Stop::Interrupted(signal)),
            summary = demo(&mut cluster, args) => summary.map_err(Stop::Failed),
        }
    });
    // Clients and the monitor may still be running after an interruption.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(Stop::Failed(_)) = &outcome {
        // The logs are about to be removed with the directory.
        for id in cluster.ids() {
            eprintln!("{}", cluster.log_tail(id));
        }
    }
    cluster.stop_all(STOP_GRACE);
    let outcome = outcome.map(|mut summary| {
        // The nodes are stopped: their logs say what was applied.
        match log_audit::audit_committed_log(cluster.config()) {
            Ok(audit) => summary.log_audit = Some(audit),
            Err(error) => {
                eprintln!(
                    "skiff demo: cannot audit the log: {}",
                    crate::error_chain::render(error.as_ref())
                );
                summary.errors += 1;
            }
        }
        summary
    });
    drop(cluster);
    clean_up(dir, args.keep);
    let summary = match outcome {
        Ok(summary) => summary,
        Err(Stop::Interrupted(signal)) => anyhow::bail!("interrupted by {signal}"),
        Err(Stop::Failed(error)) => return Err(error),
    };
    println!("{summary}");
    if !summary.passed() {
        anyhow::bail!(
            "{} lost writes, {} stale reads, {} errors, {} duplicates applied",
            summary.lost_writes,
            summary.stale_reads,
            summary.errors,
            summary.duplicates_applied()
        );
    }
    Ok(())
}

/// Why the demo ended early.
enum Stop {
    Interrupted(&'static str),
    Failed(anyhow::Error),
}

fn clean_up(dir: tempfile::TempDir, keep: bool) {
    if keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
        return;
    }
    let path = dir.path().to_path_buf();
    match dir.close() {
        Ok(()) => println!("removed {}", path.display()),
        Err(error) => eprintln!("cannot remove {}: {error}", path.display()),
    }
}

/// The demo proper: start, load, crash, restart, verify.
async fn demo(cluster: &mut ProcessCluster, args: &DemoArgs) -> anyhow::Result<Summary> {
    let progress = Arc::new(Progress::new());
    let addresses = cluster.client_addresses();
    start_cluster(cluster, &progress).await?;
    let tls = client_tls(cluster)?;
    let mut monitor = LeaderMonitor::start(addresses.clone(), tls.clone());
    let duration = args.duration;
    let clients = usize::try_from(args.clients).context("too many clients")?;
    progress.event(&format!(
        "{clients} clients write, read and cas their own files for {}, each in a session",
        humantime::format_duration(duration)
    ));
    progress.start_workload(duration);
    let started = Instant::now();
    let counters = Arc::new(LiveCounters::default());
    let workers = spawn_clients(clients, &addresses, tls, started + duration, &counters);
    let display = tokio::spawn(show_progress(
        started,
        duration,
        counters.clone(),
        monitor.subscribe(),
        progress.clone(),
    ));
    let crashes = async {
        let mut crashes = Vec::new();
        for kill in 0..args.kills {
            let timeline = Timeline::of(started, duration, kill, args.kills);
            crashes.push(crash_and_restart(cluster, &mut monitor, &progress, timeline).await?);
        }
        anyhow::Ok(crashes)
    }
    .await;
    let mut reports = Vec::with_capacity(workers.len());
    for worker in workers {
        reports.push(worker.await.context("a client task failed")?);
    }
    let workload = started.elapsed();
    display.abort();
    progress.finish();
    let crashes = crashes?;
    progress.event(&format!(
        "clients stopped after {} operations",
        counters.operations.load(Ordering::Relaxed)
    ));
    let verification = verify(cluster, &reports, &progress).await?;
    let failovers = failovers(&monitor.history());
    for failover in &failovers {
        progress.event(&format!(
            "polling saw node {} (term {}) give way to node {} (term {}), {} ms without a leader",
            failover.from.0,
            failover.from.1,
            failover.to.0,
            failover.to.1,
            failover.leaderless().as_millis()
        ));
    }
    let mut summary = summarize(reports, workload, crashes, failovers.len(), verification);
    // Only the node killed on purpose may have stopped, and it was restarted.
    for (id, status) in cluster.reap_exited() {
        progress.event(&format!("node {id} exited by itself ({status})"));
        summary.errors += 1;
    }
    Ok(summary)
}

/// The TLS the cluster's clients must use, if its configuration says so.
fn client_tls(cluster: &ProcessCluster) -> anyhow::Result<Option<ClientTls>> {
    ClientTls::for_cluster(cluster.config()).context("cannot use the cluster's CA for clients")
}

/// Starts every node and waits for the first leader.
async fn start_cluster(cluster: &mut ProcessCluster, progress: &Progress) -> anyhow::Result<()> {
    let tls = client_tls(cluster)?;
    cluster.start_all()?;
    for id in cluster.ids() {
        let address = cluster.client_address(id)?.to_string();
        wait_until_answering_with(tls.as_ref(), &address, START_PATIENCE)
            .await
            .with_context(|| format!("node {id} does not answer on {address}"))?;
    }
    let leader = wait_for_leader_with(tls.as_ref(), &cluster.client_addresses(), START_PATIENCE)
        .await
        .context("no leader was elected")?;
    progress.event(&format!(
        "nodes up on {}; node {} leads (term {})",
        cluster.client_addresses().join(", "),
        leader.id,
        leader.term
    ));
    Ok(())
}

fn spawn_clients(
    clients: usize,
    addresses: &[String],
    tls: Option<ClientTls>,
    until: Instant,
    counters: &Arc<LiveCounters>,
) -> Vec<tokio::task::JoinHandle<ClientReport>> {
    (0..clients)
        .map(|id| {
            // Clients start on different servers, so followers redirect some.
            let mut servers = addresses.to_vec();
            servers.rotate_left(id % addresses.len());
            tokio::spawn(run_client(
                id,
                servers,
                tls.clone(),
                until,
                counters.clone(),
            ))
        })
        .collect()
}

/// Refreshes the progress display until aborted.
async fn show_progress(
    started: Instant,
    duration: Duration,
    counters: Arc<LiveCounters>,
    leader: watch::Receiver<Observation>,
    progress: Arc<Progress>,
) {
    loop {
        let done = started.elapsed().min(duration);
        let operations = counters.operations.load(Ordering::Relaxed);
        let leader = match leader.borrow().leader {
            Some((id, term)) => format!("leader: node {id} (term {term})"),
            None => "leader: none".to_string(),
        };
        progress.update(done, format!("{operations} ops, {leader}"));
        tokio::time::sleep(PROGRESS_INTERVAL).await;
    }
}

/// When the crash and the restart happen.
struct Timeline {
    kill_at: Instant,
    restart_at: Instant,
}

impl Timeline {
    /// Kill `kill` of `kills` in a run of `duration` from `started`: a
    /// third and a half of the way into its share of the run.
    fn of(started: Instant, duration: Duration, kill: u64, kills: u64) -> Timeline {
        let share = duration / u32::try_from(kills).unwrap_or(u32::MAX);
        let begins = started + share * u32::try_from(kill).unwrap_or(u32::MAX);
        Timeline {
            kill_at: begins + share / 3,
            restart_at: begins + share / 2,
        }
    }
}

/// Kills the leader at `kill_at`, waits for its successor, restarts it at
/// `restart_at` (or once the successor leads), waits for it to catch up and
/// watches [`REJOIN_WATCH`] longer; reports every leader seen meanwhile.
async fn crash_and_restart(
    cluster: &mut ProcessCluster,
    monitor: &mut LeaderMonitor,
    progress: &Progress,
    timeline: Timeline,
) -> anyhow::Result<Crash> {
    tokio::time::sleep_until(timeline.kill_at).await;
    let (victim, victim_term) = match monitor.current().leader {
        Some(leader) => leader,
        None => monitor
            .leader_after(Term(0), FAILOVER_PATIENCE)
            .await
            .and_then(|seen| seen.leader)
            .context("no leader to kill")?,
    };
    let pid = cluster
        .pid(victim)
        .map_or("?".to_string(), |p| p.to_string());
    cluster.kill(victim)?;
    let killed_at = Instant::now();
    progress.event(&format!("SIGKILL to node {victim}, the leader (pid {pid})"));
    let seen = monitor
        .leader_after(victim_term, FAILOVER_PATIENCE)
        .await
        .context("no new leader after the crash")?;
    let successor = seen.leader.context("a leader was seen")?;
    let leaderless = seen.at.saturating_duration_since(killed_at);
    progress.event(&format!(
        "node {} leads (term {}); the cluster had no leader for {} ms",
        successor.0,
        successor.1,
        leaderless.as_millis()
    ));
    tokio::time::sleep_until(timeline.restart_at).await;
    let at_restart = monitor
        .current()
        .leader
        .context("no leader at the restart")?;
    let restarted_at = Instant::now();
    let catch_up = restart(cluster, monitor, progress, victim).await?;
    // An observation window, not a synchronization: an election the
    // restarted node causes would show within a few election timeouts.
    tokio::time::sleep(REJOIN_WATCH).await;
    let history = monitor.history();
    let leaders_from = |from: Instant| -> Vec<(NodeId, Term)> {
        let mut leaders: Vec<(NodeId, Term)> = Vec::new();
        for leader in history
            .iter()
            .filter(|o| o.at >= from)
            .filter_map(|o| o.leader)
        {
            if leaders.last() != Some(&leader) && leader != (victim, victim_term) {
                leaders.push(leader);
            }
        }
        leaders
    };
    let crash = Crash {
        killed: (victim, victim_term),
        successor,
        leaderless,
        catch_up,
        leaders: leaders_from(killed_at),
        at_restart,
        after_restart: leaders_from(restarted_at)
            .into_iter()
            .filter(|leader| *leader != at_restart)
            .collect(),
    };
    progress.event(&crash.story());
    Ok(crash)
}

/// Restarts node `id` and waits until its commit index reaches the
/// leader's at the restart; returns how long that took.
async fn restart(
    cluster: &mut ProcessCluster,
    monitor: &LeaderMonitor,
    progress: &Progress,
    id: NodeId,
) -> anyhow::Result<Duration> {
    let (leader, _) = monitor
        .current()
        .leader
        .context("no leader at the restart")?;
    let leader_address = cluster.client_address(leader)?.to_string();
    let tls = client_tls(cluster)?;
    let target = probe_with(tls.as_ref(), &leader_address, PROBE_TIMEOUT_DEFAULT)
        .await
        .context("the leader does not answer status")?
        .commit_index;
    cluster.start(id)?;
    let restarted_at = Instant::now();
    progress.event(&format!(
        "restarted node {id}; the leader's commit index is {target}"
    ));
    let address = cluster.client_address(id)?.to_string();
    let deadline = restarted_at + CATCH_UP_PATIENCE;
    loop {
        if let Ok(report) = probe_with(tls.as_ref(), &address, PROBE_TIMEOUT_DEFAULT).await {
            if report.commit_index >= target {
                let took = restarted_at.elapsed();
                progress.event(&format!(
                    "node {id} caught up in {:.1} s (commit index {})",
                    took.as_secs_f64(),
                    report.commit_index
                ));
                return Ok(took);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "node {id} did not catch up within {CATCH_UP_PATIENCE:?}"
        );
        tokio::time::sleep(CATCH_UP_POLL_INTERVAL).await;
    }
}

/// What the final reads found.
struct Verification {
    leader: NodeId,
    lost_writes: usize,
}

/// Reads every file back through the leader and checks each against what
/// its client knows.
async fn verify(
    cluster: &ProcessCluster,
    reports: &[ClientReport],
    progress: &Progress,
) -> anyhow::Result<Verification> {
    let addresses = cluster.client_addresses();
    let tls = client_tls(cluster)?;
    let leader = wait_for_leader_with(tls.as_ref(), &addresses, FAILOVER_PATIENCE)
        .await
        .context("no leader for the final reads")?;
    let leader_address = cluster.client_address(leader.id)?.to_string();
    // The leader first; the others in case it changes meanwhile.
    let mut servers = addresses.clone();
    servers.rotate_left(
        addresses
            .iter()
            .position(|a| *a == leader_address)
            .unwrap_or(0),
    );
    let mut client = Client::new(workload::client_config(servers, tls));
    let mut lost_writes = 0;
    let mut files = 0;
    for (owner, report) in reports.iter().enumerate() {
        for (index, knowledge) in report.files.iter().enumerate() {
            let name = file_name(owner, index);
            let read = final_read(&mut client, &name).await?;
            files += 1;
            if let Verdict::Inconsistent(why) = knowledge.judge(read.as_ref()) {
                lost_writes += 1;
                progress.event(&format!("LOST WRITE {name}: {why}"));
            }
        }
    }
    // Only a leader answers reads; a new election during the reads would
    // have redirected the client, so name the server that answered last.
    let answered_by = client.connected_to().unwrap_or(&leader_address).to_string();
    let leader = cluster
        .ids()
        .into_iter()
        .find(|id| {
            cluster
                .client_address(*id)
                .is_ok_and(|a| a.to_string() == answered_by)
        })
        .context("the final reads were answered by a server not in the cluster")?;
    progress.event(&format!(
        "read back all {files} files from node {leader} (the leader): {lost_writes} lost"
    ));
    Ok(Verification {
        leader,
        lost_writes,
    })
}

/// Reads `name`; `None` when it does not exist. Reads change nothing, so
/// one that found no leader or lost its answer is simply asked again.
async fn final_read(client: &mut Client, name: &str) -> anyhow::Result<Option<skiff_fs::File>> {
    let mut last = None;
    for _ in 0..VERIFY_ATTEMPTS {
        match client.read(name).await {
            Ok(file) => return Ok(Some(file)),
            Err(ClientError::NotFound) => return Ok(None),
            Err(error @ ClientError::Unavailable { .. }) => last = Some(error),
            Err(error) if error.outcome_unknown() => last = Some(error),
            Err(error) => return Err(error).with_context(|| format!("reading {name}")),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no attempt"), anyhow::Error::from))
        .with_context(|| format!("reading {name}"))
}

/// Adds up the clients' reports.
fn summarize(
    reports: Vec<ClientReport>,
    workload: Duration,
    crashes: Vec<Crash>,
    failovers: usize,
    verification: Verification,
) -> Summary {
    let mut summary = Summary {
        workload,
        clients: reports.len(),
        files: reports.len() * FILES_PER_CLIENT,
        writes: 0,
        reads: 0,
        cas: 0,
        uncertain: 0,
        unavailable: 0,
        latency_us: workload::latency_histogram(),
        failovers,
        crashes,
        acknowledged: 0,
        verified_on: Some(verification.leader),
        stale_reads: 0,
        lost_writes: verification.lost_writes,
        errors: 0,
        log_audit: None,
    };
    for report in reports {
        summary.writes += report.writes;
        summary.reads += report.reads;
        summary.cas += report.cas;
        summary.uncertain += report.uncertain;
        summary.unavailable += report.unavailable;
        summary.acknowledged += report.files.iter().map(|f| f.acknowledged()).sum::<u64>();
        summary.stale_reads += report.anomalies.len();
        summary.errors += report.errors.len();
        for problem in report
            .anomalies
            .iter()
            .chain(&report.errors)
            .take(PROBLEMS_SHOWN_MAX)
        {
            println!("  {problem}");
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = summary.latency_us.add(&report.latency_us);
    }
    summary
}
