//! `skiff abuse`: the file server's client limits under the abuse issue 12
//! describes, measured from outside.
//!
//! It starts a cluster of `skiff node` processes (a fresh 3-node one, or the
//! nodes of `--config`), then:
//!
//! 1. a well-behaved client writes for `--duration` with nothing else going
//!    on (the unloaded latencies);
//! 2. `--idle` connections to the leader that never send a byte, and
//!    `--half-sent` connections that each send a 1 MB write minus its last
//!    byte, are opened and held;
//! 3. the well-behaved client writes for `--duration` again (the loaded
//!    latencies), while the leader's resident memory (`VmRSS` from
//!    `/proc/PID/status`) is sampled from before step 2 to the end.
//!
//! It prints both phases' p50/p99 and failed writes, how the server dealt
//! with the abusive connections, and the leader's peak resident memory
//! against the bound the server's limits promise (see [`rss_bound_kib`]).

use crate::duration_arg;
use anyhow::Context;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use skiff::process_cluster::{Ports, ProcessCluster};
use skiff::status_probe::wait_for_leader;
use skiff_fs::{Client, ClientConfig};
use skiff_node::{LimitsConfig, NodeId};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

const EXAMPLES: &str = "\
Examples:
  skiff abuse                                  # 2000 idle + 500 half-sent against a fresh cluster
  skiff abuse --idle 300 --half-sent 60 --duration 2s
  skiff abuse --config my-cluster/cluster.toml # the nodes of that file, with its [limits]

The cluster runs in a temporary directory (or the nodes of --config are
started, so its [limits] apply) and is stopped at the end. The command
raises its open-file limit (RLIMIT_NOFILE) to fit every connection, and
its nodes inherit it. Unloaded and loaded latencies are printed, not
judged; the resident memory is checked against the bound of the leader's
limits, and the command fails if the bound is broken or a write failed.";

/// The cluster size `skiff abuse` starts.
const NODES: u64 = 3;
/// The contents of the abusive writes: 1 MB, the protocol's default maximum.
const HALF_SENT_CONTENT_BYTES: usize = 1_000_000;
/// The contents of each of the well-behaved client's writes.
const PROBE_CONTENT_BYTES: usize = 100;
/// Descriptors this process needs beyond one per abusive connection.
const DESCRIPTORS_SPARE: u64 = 256;
/// How long a node may take to answer its first `status`, and the cluster
/// to elect a leader.
const START_PATIENCE: Duration = Duration::from_secs(10);
/// How long one abusive connect may take before it counts as failed.
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);
/// How often the leader's resident memory is read.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(20);
/// What the server may hold per connection beyond its request buffer (the
/// connection's task, socket registration and slot), in the bound.
const CONNECTION_OVERHEAD_KIB: u64 = 16;
/// A connection's request buffer outside the pending budget
/// (`UNBUDGETED_BYTES` in the server).
const UNBUDGETED_KIB: u64 = 16;

/// Arguments of `skiff abuse`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct AbuseArgs {
    /// Connections to the leader that never send anything.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    idle: usize,
    /// Connections to the leader that each send a 1 MB write minus its last
    /// byte and then wait.
    #[arg(long, value_name = "M", default_value_t = 500)]
    half_sent: usize,
    /// How long the well-behaved client writes in each phase, 1s to 5m.
    #[arg(long, default_value = "5s",
          value_parser = duration_arg::between(Duration::from_secs(1), Duration::from_secs(300)))]
    duration: Duration,
    /// Start the nodes of this cluster configuration (with its [limits])
    /// instead of a fresh 3-node cluster.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs the abuse and prints what it measured.
pub fn run(args: &AbuseArgs) -> anyhow::Result<()> {
    let connections = u64::try_from(args.idle + args.half_sent).unwrap_or(u64::MAX);
    raise_open_files_limit(connections.saturating_add(DESCRIPTORS_SPARE))?;
    let program = std::env::current_exe().context("cannot find the skiff binary")?;
    let dir = tempfile::Builder::new()
        .prefix("skiff-abuse-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut cluster = match &args.config {
        Some(config) => ProcessCluster::new(program, config)?,
        None => ProcessCluster::create_local(program, dir.path(), NODES, Ports::Free)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // `cluster` is dropped, stopping every node, whichever way this returns.
    skiff::shutdown::run_until_requested(runtime, abuse(&mut cluster, args))
}

/// Raises this process's soft limit on open files to `needed` (the nodes it
/// starts inherit it), failing clearly if the hard limit is lower.
fn raise_open_files_limit(needed: u64) -> anyhow::Result<()> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).context("cannot read the open-file limit")?;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        anyhow::bail!(
            "{needed} open files are needed but the hard limit (RLIMIT_NOFILE) is {hard}: \
             raise it (`ulimit -Hn`, as root) or ask for fewer --idle/--half-sent connections"
        );
    }
    setrlimit(Resource::RLIMIT_NOFILE, needed, hard)
        .with_context(|| format!("cannot raise the open-file limit from {soft} to {needed}"))
}

async fn abuse(cluster: &mut ProcessCluster, args: &AbuseArgs) -> anyhow::Result<()> {
    let (leader, leader_address, pid) = start(cluster).await?;
    let limits = cluster.config().limits.clone();
    println!("leader: node {leader}, pid {pid}, clients on {leader_address}");
    let mut servers = cluster.client_addresses();
    servers.sort_by_key(|address| *address != leader_address.to_string());
    let mut client = Client::new(ClientConfig::new(servers));

    let (unloaded, ()) =
        measure_while(&mut client, "unloaded", tokio::time::sleep(args.duration)).await;
    println!("unloaded: {unloaded}");

    let rss_before = resident_kib(pid)?;
    let sampler = RssSampler::start(pid, rss_before);
    let mut abusers = JoinSet::new();
    // The client keeps writing while the abuse begins, as a busy client
    // would: an idle one would be the longest idle, and closed first.
    let abuse = async {
        let opened = open_abusers(&mut abusers, leader_address, args).await;
        println!(
            "abuse: {} idle and {} half-sent connections opened to the leader ({} connects \
             failed); {} more of load",
            opened.idle,
            opened.half_sent,
            opened.failed,
            humantime::format_duration(args.duration)
        );
        tokio::time::sleep(args.duration).await;
    };
    let (loaded, ()) = measure_while(&mut client, "loaded", abuse).await;
    println!("loaded (from the first abusive connection on): {loaded}");
    let rss_peak = sampler.stop(pid);
    let ended = end_abusers(abusers).await;
    println!(
        "server closed: {} idle, {} half-sent ({} of them answered ERR_INTERNAL); still open at the end: {}",
        ended.idle_closed, ended.half_sent_closed, ended.half_sent_internal, ended.still_open
    );
    if let (Some(before), Some(during)) = (unloaded.p99, loaded.p99) {
        let ratio = during.as_secs_f64() / before.as_secs_f64().max(1e-9);
        println!("p99 loaded / unloaded: {ratio:.1}x");
    }
    let connections = u64::try_from(args.idle + args.half_sent + 1).unwrap_or(u64::MAX);
    let bound = rss_bound_kib(rss_before, &limits, connections);
    println!(
        "leader resident memory: before {rss_before} KiB, peak {rss_peak} KiB, bound {bound} KiB \
         (before + client_pending_bytes_max + {} KiB per connection)",
        UNBUDGETED_KIB + CONNECTION_OVERHEAD_KIB
    );
    let failed = unloaded.failed + loaded.failed;
    anyhow::ensure!(failed == 0, "{failed} well-behaved writes failed");
    anyhow::ensure!(
        rss_peak <= bound,
        "the leader's resident memory ({rss_peak} KiB) broke its bound ({bound} KiB)"
    );
    Ok(())
}

/// What the leader may hold at most, in KiB, with `connections` clients:
/// what it held `before` the abuse, the whole pending-bytes budget, and for
/// each connection it keeps (at most `clients_max`) its unbudgeted buffer
/// and its bookkeeping.
fn rss_bound_kib(before: u64, limits: &LimitsConfig, connections: u64) -> u64 {
    let kept = connections.min(u64::try_from(limits.clients_max).unwrap_or(u64::MAX));
    let budget_kib = u64::try_from(limits.client_pending_bytes_max / 1024).unwrap_or(u64::MAX);
    before
        .saturating_add(budget_kib)
        .saturating_add(kept.saturating_mul(UNBUDGETED_KIB + CONNECTION_OVERHEAD_KIB))
}

/// Starts every node and waits for a leader: its id, client address and
/// process id.
async fn start(cluster: &mut ProcessCluster) -> anyhow::Result<(NodeId, SocketAddr, u32)> {
    cluster.start_all_answering(START_PATIENCE).await?;
    let leader = wait_for_leader(&cluster.client_addresses(), START_PATIENCE)
        .await
        .context("the cluster elected no leader")?
        .id;
    let pid = cluster.pid(leader).context("the leader is not running")?;
    Ok((leader, cluster.client_address(leader)?, pid))
}

/// One phase of the well-behaved client's writes.
struct Phase {
    writes: usize,
    failed: usize,
    first_error: Option<String>,
    p50: Option<Duration>,
    p99: Option<Duration>,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
        };
        write!(
            f,
            "{} writes, p50 {}, p99 {}, {} failed",
            self.writes,
            ms(self.p50),
            ms(self.p99),
            self.failed
        )?;
        if let Some(error) = &self.first_error {
            write!(f, " (first: {error})")?;
        }
        Ok(())
    }
}

/// Writes one file after another, timing each, until `load` is done;
/// returns the writes and what `load` returned.
async fn measure_while<T>(
    client: &mut Client,
    phase: &str,
    load: impl std::future::Future<Output = T>,
) -> (Phase, T) {
    let (stop, stopped) = watch::channel(false);
    let load = async {
        let outcome = load.await;
        let _ = stop.send(true);
        outcome
    };
    tokio::join!(measure_writes(client, phase, stopped), load)
}

/// Writes one file after another until `stopped` turns true, timing each.
/// A write is never cancelled midway, which would leave the client's
/// connection with an answer it no longer waits for.
async fn measure_writes(client: &mut Client, phase: &str, stopped: watch::Receiver<bool>) -> Phase {
    let contents = bytes::Bytes::from(vec![b'w'; PROBE_CONTENT_BYTES]);
    let mut latency_us = crate::bench::load::latency_histogram();
    let (mut failed, mut first_error) = (0, None);
    while !*stopped.borrow() {
        let name = format!("abuse-probe-{phase}-{}", latency_us.len() % 100);
        let started = Instant::now();
        match client.write(&name, contents.clone(), 0).await {
            Ok(_) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                latency_us.saturating_record(us.max(1));
            }
            Err(error) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let quantile = |q: f64| {
        (!latency_us.is_empty()).then(|| Duration::from_micros(latency_us.value_at_quantile(q)))
    };
    Phase {
        writes: latency_us.len() as usize + failed,
        failed,
        first_error,
        p50: quantile(0.50),
        p99: quantile(0.99),
    }
}

/// The resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss_kib(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// The `VmRSS:   1234 kB` line of a `/proc/PID/status`.
fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Reads a process's resident memory in the background, keeping the peak.
struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Samples `pid` from now, starting from a peak of `before_kib`.
    fn start(pid: u32, before_kib: u64) -> RssSampler {
        let peak_kib = Arc::new(AtomicU64::new(before_kib));
        let peak = peak_kib.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(kib) = resident_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(RSS_SAMPLE_INTERVAL).await;
            }
        });
        RssSampler { peak_kib, task }
    }

    /// Takes one last sample and stops; returns the peak seen.
    fn stop(self, pid: u32) -> u64 {
        self.task.abort();
        if let Ok(kib) = resident_kib(pid) {
            self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        }
        self.peak_kib.load(Ordering::Relaxed)
    }
}

/// How many abusive connections were opened.
struct Opened {
    idle: usize,
    half_sent: usize,
    failed: usize,
}

/// How an abusive connection ended.
enum Ending {
    /// An idle connection the server closed.
    IdleClosed,
    /// A half-sent connection the server closed, answering `ERR_INTERNAL`
    /// first or not.
    HalfSentClosed { internal: bool },
}

/// Opens the idle connections, then the half-sent ones, each held by a
/// task in `abusers` that ends when the server closes its connection.
async fn open_abusers(
    abusers: &mut JoinSet<Ending>,
    leader: SocketAddr,
    args: &AbuseArgs,
) -> Opened {
    let mut opened = Opened {
        idle: 0,
        half_sent: 0,
        failed: 0,
    };
    for _ in 0..args.idle {
        match connect(leader).await {
            Some(stream) => {
                abusers.spawn(async move {
                    wait_for_close(stream).await;
                    Ending::IdleClosed
                });
                opened.idle += 1;
            }
            None => opened.failed += 1,
        }
    }
    // One copy of the contents for every connection: the abuser must not
    // hold what it wants the server to hold.
    let contents: Arc<[u8]> = vec![b'h'; HALF_SENT_CONTENT_BYTES].into();
    for index in 0..args.half_sent {
        let Some(mut stream) = connect(leader).await else {
            opened.failed += 1;
            continue;
        };
        let contents = contents.clone();
        abusers.spawn(async move {
            let header = format!("write abuse-half-sent-{index} {HALF_SENT_CONTENT_BYTES}\r\n");
            // The contents and their `\r`, without the final `\n`.
            let sent = async {
                stream.write_all(header.as_bytes()).await?;
                stream.write_all(&contents).await?;
                stream.write_all(b"\r").await
            };
            let internal = match sent.await {
                Ok(()) => wait_for_close(stream).await.starts_with(b"ERR_INTERNAL"),
                Err(_) => false,
            };
            Ending::HalfSentClosed { internal }
        });
        opened.half_sent += 1;
    }
    opened
}

/// A connection to `address`, or `None` if it could not be made in time.
async fn connect(address: SocketAddr) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_PATIENCE, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => Some(stream),
        _ => None,
    }
}

/// Waits until the server closes `stream`; returns the first bytes it said.
async fn wait_for_close(mut stream: TcpStream) -> Vec<u8> {
    let mut said = Vec::new();
    let mut chunk = [0u8; 64];
    while let Ok(read @ 1..) = stream.read(&mut chunk).await {
        if said.len() < chunk.len() {
            said.extend_from_slice(&chunk[..read]);
        }
    }
    said
}

/// How the abusive connections had ended when the run did.
struct Ended {
    idle_closed: usize,
    half_sent_closed: usize,
    half_sent_internal: usize,
    still_open: usize,
}

/// Counts the connections the server closed and closes the others.
async fn end_abusers(mut abusers: JoinSet<Ending>) -> Ended {
    let mut ended = Ended {
        idle_closed: 0,
        half_sent_closed: 0,
        half_sent_internal: 0,
        still_open: 0,
    };
    // Finished tasks give their results at once; the rest are still open.
    while let Some(Some(ending)) = abusers.try_join_next().map(Result::ok) {
        match ending {
            Ending::IdleClosed => ended.idle_closed += 1,
            Ending::HalfSentClosed { internal } => {
                ended.half_sent_closed += 1;
                ended.half_sent_internal += usize::from(internal);
            }
        }
    }
    ended.still_open = abusers.len();
    abusers.shutdown().await;
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        let status = "Name:\tskiff\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss_kib(status), Some(12345));
        assert_eq!(parse_vm_rss_kib("Name:\tskiff\n"), None);
        assert!(resident_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn the_bound_counts_at_most_clients_max_connections() {
        let limits = LimitsConfig {
            clients_max: 10,
            client_pending_bytes_max: 1 << 20,
            ..LimitsConfig::default()
        };
        assert_eq!(rss_bound_kib(1000, &limits, 5), 1000 + 1024 + 5 * 32);
        assert_eq!(rss_bound_kib(1000, &limits, 500), 1000 + 1024 + 10 * 32);
    }
}
