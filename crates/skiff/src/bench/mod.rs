//! `skiff bench`: throughput and latency of replicated writes, for skiff
//! and for etcd, measured the same way in one run.
//!
//! Each target gets `--clients` concurrent clients, each with one
//! connection and one write of `--bytes` bytes in flight, writing its own
//! key for a `--warmup` and then `--duration` of measured load. Skiff's clients
//! write files through the file server's protocol; etcd's put keys with
//! its gRPC API (or, with `--etcd-api json`, its JSON gateway). By default the bench starts each cluster itself on
//! loopback, with durable logs, in a temporary directory, and stops it
//! afterwards; `--servers`/`--config` and `--etcd-endpoints` point it at
//! running clusters instead. With one client, or `--floor`, it also
//! measures the latency floor of this machine (see `floor`).
//!
//! With `--reads`, each target is also measured for linearizable reads in
//! the same run, after its writes: every client's key is written once,
//! then each client reads its own key over and over. Skiff's readers start
//! on the servers in turn and stay there (every server serves linearizable
//! reads, followers by asking the leader for a read index); etcd's readers
//! likewise spread over its members, with its default, linearizable
//! `KV.Range` through gRPC. Skiff's reads are followed by the same readers
//! against servers that answer at once and do nothing else (`ceiling`).
//!
//! # Layout
//!
//! * `load`: the clients' loop and the histograms.
//! * `writer`: one client's connection to skiff or etcd.
//! * `grpc`: etcd's gRPC put over HTTP/2.
//! * `http`: the keep-alive HTTP/1.1 client for etcd's JSON gateway.
//! * `etcd`: starting and stopping a local etcd cluster.
//! * `process`: ports, process groups, CPU time.
//! * `floor`: the fdatasync and loopback round-trip measurements.
//! * `ceiling`: servers that answer reads doing nothing else, the most
//!   any read path could reach on this machine.
//! * `report`: the table and the JSON.

mod ceiling;
mod disk;
mod etcd;
mod floor;
mod grpc;
mod http;
pub(crate) mod load;
mod process;
mod report;
mod writer;

use crate::duration_arg;
use anyhow::Context;
use floor::Floor;
use load::{Measurement, Schedule};
use report::{Report, TargetReport};
use skiff::process_cluster::{write_dev_certs, Ports, ProcessCluster, STOP_GRACE};
use skiff::status_probe::wait_for_leader;
use skiff_node::ClusterConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use writer::{EtcdGrpcWriter, EtcdJsonWriter, SkiffWriter, Writer};

const EXAMPLES: &str = "\
Examples:
  skiff bench                                  # 64 clients against 3 skiff nodes it starts
  skiff bench --target both                    # the same against skiff and etcd, side by side
  skiff bench --target both --clients 1        # one write at a time, with the latency floor
  skiff bench --servers 127.0.0.1:7101,127.0.0.1:7103,127.0.0.1:7105 --duration 30s
  skiff bench --format json --duration 5s      # the report as JSON on standard output
  skiff bench --target etcd --etcd-api json    # etcd through its JSON gateway
  skiff bench --tls-compare                    # skiff without, then with mutual TLS, and the ratio
  skiff bench --target both --reads            # writes, then linearizable reads, on skiff and etcd

Clusters the bench starts live under a temporary directory (--dir picks
its parent, and so the file system the logs and the floor's syncs use) and
are stopped and removed at the end. `--target etcd` needs Debian's etcd
(apt-get install -y etcd-server). See bench/README.md for what is measured.";

/// How long started nodes may take to answer and elect a leader.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// Which system to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Skiff's file server.
    Skiff,
    /// etcd, through its gRPC API (or its JSON gateway: see --etcd-api).
    Etcd,
    /// Skiff, then etcd, with the ratios.
    Both,
}

/// How the bench talks to etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EtcdApi {
    /// gRPC (`KV.Put`), as etcd's own client libraries do.
    Grpc,
    /// The JSON gateway (`POST /v3/kv/put`) over HTTP/1.1.
    Json,
}

/// How to print the report on standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table.
    Text,
    /// JSON.
    Json,
}

/// Arguments of `skiff bench`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Target::Skiff)]
    target: Target,
    /// Measure running skiff servers (client addresses) instead of starting some.
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        conflicts_with = "config"
    )]
    servers: Vec<String>,
    /// Measure the running skiff cluster of this configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Measure running etcd members (client addresses) instead of starting some.
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    etcd_endpoints: Vec<SocketAddr>,
    /// How the clients talk to etcd.
    #[arg(long, value_enum, default_value_t = EtcdApi::Grpc)]
    etcd_api: EtcdApi,
    /// Concurrent clients, each with one write in flight.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    clients: u64,
    /// Bytes of each written value.
    #[arg(long, value_name = "B", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    bytes: u64,
    /// Measured load per target, 1s to 1h: `10s`, `2m`.
    #[arg(long, default_value = "10s",
          value_parser = duration_arg::between(Duration::from_secs(1), Duration::from_secs(3600)))]
    duration: Duration,
    /// Load before the measurement starts, up to 10m: `2s`, `0s`.
    #[arg(long, default_value = "2s",
          value_parser = duration_arg::between(Duration::ZERO, Duration::from_secs(600)))]
    warmup: Duration,
    /// Nodes (and etcd members) of the clusters the bench starts.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Also measure the latency floor (always done with one client).
    #[arg(long)]
    floor: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The report's format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The directory under which started clusters keep their data.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Start the skiff cluster with mutual TLS between its nodes.
    #[arg(long, conflicts_with_all = ["servers", "config"])]
    tls: bool,
    /// Measure the skiff cluster it starts twice under the same load,
    /// without and then with mutual TLS between its nodes, and print the ratio.
    #[arg(long, conflicts_with_all = ["servers", "config", "tls"])]
    tls_compare: bool,
    /// After the load, stop one follower of the skiff cluster the bench
    /// started, start it again, and report how long it took to serve again
    /// (answering, knowing the leader, caught up to what it had committed).
    #[arg(long, conflicts_with_all = ["servers", "config"])]
    restart_check: bool,
    /// After the writes, measure linearizable reads of the clients' keys
    /// (written first) the same way, and print reads over writes (etcd's
    /// reads use gRPC whatever --etcd-api says).
    #[arg(long)]
    reads: bool,
    /// Whether the nodes the bench starts count metrics (`[metrics]
    /// enabled`); with `on`, each serves them on a free port, printed on
    /// standard error, for a scrape during the run.
    #[arg(long, value_enum, default_value_t = MetricsSwitch::On, conflicts_with_all = ["servers", "config"])]
    metrics: MetricsSwitch,
    /// Measure the skiff cluster it starts twice under the same load,
    /// without and then with metrics counted (`[metrics] enabled`), and
    /// print what they cost.
    #[arg(long, conflicts_with_all = ["servers", "config", "metrics", "tls_compare"])]
    metrics_compare: bool,
}

/// `--metrics on|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsSwitch {
    /// Counted and served.
    On,
    /// Not counted (`[metrics] enabled = false`): the baseline of their cost.
    Off,
}

impl BenchArgs {
    fn runs(&self, target: Target) -> bool {
        self.target == target || self.target == Target::Both
    }

    /// Whether the latency floor is measured.
    fn wants_floor(&self) -> bool {
        self.floor || self.clients == 1
    }
}

/// Runs the bench and prints the report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("skiff-bench-");
    let dir = match &args.dir {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .context("cannot create a temporary directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (results, mut floors) =
        skiff::shutdown::run_until_requested(runtime, measure_targets(args, dir.path()))?;
    if args.wants_floor() && floors.is_empty() {
        floors.push(measure_floor(args, dir.path())?);
    }
    let report = Report::new(
        args.clients,
        usize::try_from(args.bytes)?,
        args.warmup,
        args.duration,
        results,
        &floors,
    );
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json() + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match args.format {
        Format::Text => print!("{report}"),
        Format::Json => println!("{}", report.to_json()),
    }
    Ok(())
}

/// The targets' reports, and the floors measured around Skiff's run.
async fn measure_targets(
    args: &BenchArgs,
    dir: &Path,
) -> anyhow::Result<(Vec<TargetReport>, Vec<Floor>)> {
    let mut results = Vec::new();
    let mut floors = Vec::new();
    if args.runs(Target::Skiff) {
        if args.metrics_compare {
            let off = Variant {
                tls: args.tls,
                metrics: MetricsSwitch::Off,
            };
            results.extend(bench_skiff(args, dir, off, &mut floors).await?);
        }
        let main = Variant {
            tls: args.tls,
            metrics: args.metrics,
        };
        results.extend(bench_skiff(args, dir, main, &mut floors).await?);
        if args.tls_compare {
            let tls = Variant { tls: true, ..main };
            results.extend(bench_skiff(args, dir, tls, &mut floors).await?);
        }
    }
    if args.runs(Target::Etcd) {
        results.extend(bench_etcd(args, &dir.join("etcd")).await?);
    }
    Ok((results, floors))
}

/// Measures the floor on the file system of `dir` (see `floor`).
fn measure_floor(args: &BenchArgs, dir: &Path) -> anyhow::Result<Floor> {
    floor::measure(dir, args.nodes as usize).context("cannot measure the floor")
}

/// How the bench's own skiff cluster runs.
#[derive(Clone, Copy, Debug)]
struct Variant {
    /// Mutual TLS between the nodes.
    tls: bool,
    /// Metrics counted and served.
    metrics: MetricsSwitch,
}

/// Measures Skiff's writes, and its reads with `--reads`; when the floor
/// is wanted, it is measured on `dir`'s file system just before and just
/// after the writes, into `floors`, so that the floor and Skiff meet the
/// machine in the same state.
async fn bench_skiff(
    args: &BenchArgs,
    bench_dir: &Path,
    variant: Variant,
    floors: &mut Vec<Floor>,
) -> anyhow::Result<Vec<TargetReport>> {
    let tls = variant.tls;
    let (target, dir) = match (tls, variant.metrics) {
        (true, _) => (report::SKIFF_TLS, &bench_dir.join("skiff-tls")),
        (false, MetricsSwitch::Off) if args.metrics_compare => (
            report::SKIFF_NO_METRICS,
            &bench_dir.join("skiff-no-metrics"),
        ),
        (false, _) => ("skiff", &bench_dir.join("skiff")),
    };
    let mut cluster = None;
    let (servers, setup) = if !args.servers.is_empty() {
        (
            args.servers.clone(),
            format!("servers {}", args.servers.join(",")),
        )
    } else if let Some(config) = &args.config {
        let addresses = client_addresses(config)?;
        let setup = format!("the cluster of {}", config.display());
        (addresses, setup)
    } else {
        let started = start_skiff(args.nodes, dir, tls, variant.metrics).await?;
        let setup = format!(
            "{} skiff nodes started by the bench on 127.0.0.1{}, data in {}",
            args.nodes,
            if tls { ", mutual TLS between them" } else { "" },
            dir.display()
        );
        let addresses = started.client_addresses();
        cluster = Some(started);
        (addresses, setup)
    };
    let value = writer::value(usize::try_from(args.bytes)?);
    let writers = (0..args.clients as usize)
        .map(|client| Writer::Skiff(SkiffWriter::new(&servers, client, value.clone())))
        .collect();
    let pids: Option<Vec<u32>> = cluster.as_ref().map(|cluster| {
        let ids = cluster.ids();
        ids.iter().filter_map(|&id| cluster.pid(id)).collect()
    });
    if args.wants_floor() {
        floors.push(measure_floor(args, bench_dir)?);
    }
    let watch = cluster.as_ref().map(|cluster| {
        let dirs = (cluster.config().nodes.iter())
            .map(|node| (node.id, node.data_dir.clone()))
            .collect();
        disk::DiskWatch::start(dirs, pids.clone().unwrap_or_default())
    });
    let (measurement, cpu) = measure(writers, args, pids.clone()).await?;
    let disk = watch.map(disk::DiskWatch::finish);
    if args.wants_floor() {
        floors.push(measure_floor(args, bench_dir)?);
    }
    let mut reports = Vec::new();
    if args.reads {
        let writers = (0..args.clients as usize)
            .map(|client| Writer::Skiff(SkiffWriter::new(&servers, client, value.clone())))
            .collect();
        write_each_key(writers).await?;
        let readers = (0..args.clients as usize)
            .map(|client| Writer::Skiff(SkiffWriter::reader(&servers, client, value.clone())))
            .collect();
        let (reads, cpu) = measure(readers, args, pids).await?;
        let setup = format!(
            "{setup}; each client reads its own file from server <client> mod {}",
            servers.len()
        );
        reports.push(TargetReport::new(report::SKIFF_READS, setup, &reads, cpu));
        reports.push(measure_ceiling(args, servers.len(), value.clone()).await?);
    }
    let mut restart = None;
    if let Some(mut cluster) = cluster {
        if args.restart_check {
            restart = Some(restart_follower(&mut cluster).await?);
        }
        cluster.stop_all(STOP_GRACE);
    }
    let mut report = TargetReport::new(target, setup, &measurement, cpu);
    report.disk = disk;
    report.restart = restart;
    reports.insert(0, report);
    Ok(reports)
}

/// The same readers as Skiff's against `count` servers that answer at once
/// and do nothing else (see `ceiling`).
async fn measure_ceiling(
    args: &BenchArgs,
    count: usize,
    value: bytes::Bytes,
) -> anyhow::Result<TargetReport> {
    let servers = ceiling::CeilingServers::start(count, value.clone())
        .context("cannot start the ceiling's servers")?;
    let readers = (0..args.clients as usize)
        .map(|client| {
            Writer::Skiff(SkiffWriter::reader(
                servers.addresses(),
                client,
                value.clone(),
            ))
        })
        .collect();
    let (reads, cpu) = measure(readers, args, None).await?;
    let setup = format!(
        "{count} servers in the bench's process (their CPU time in its column) that answer every \
         read at once with the file and do nothing else; the same readers as skiff-reads"
    );
    Ok(TargetReport::new(report::CEILING_READS, setup, &reads, cpu))
}

/// Has every writer write its key once, so that reads find it.
async fn write_each_key(writers: Vec<Writer>) -> anyhow::Result<()> {
    for mut writer in writers {
        writer
            .write()
            .await
            .map_err(|error| anyhow::anyhow!("writing a key for the reads failed: {error}"))?;
    }
    Ok(())
}

/// Stops a follower of `cluster`, starts it again, and measures how long it
/// takes to serve again: to answer `status`, know the leader, and have
/// committed at least what it had committed when it stopped.
async fn restart_follower(cluster: &mut ProcessCluster) -> anyhow::Result<report::RestartReport> {
    use skiff::status_probe::{probe, PROBE_TIMEOUT_DEFAULT};
    use skiff_node::Role;
    let mut follower = None;
    for id in cluster.ids() {
        let address = cluster.client_address(id)?.to_string();
        if let Ok(status) = probe(&address, PROBE_TIMEOUT_DEFAULT).await {
            if status.role == Role::Follower {
                follower = Some((id, address, status.commit_index));
                break;
            }
        }
    }
    let (id, address, committed) =
        follower.context("no follower answered, so none could be restarted")?;
    cluster.stop(id, STOP_GRACE)?;
    let started = tokio::time::Instant::now();
    cluster.start(id)?;
    loop {
        if let Ok(status) = probe(&address, PROBE_TIMEOUT_DEFAULT).await {
            if status.leader.is_some() && status.commit_index >= committed {
                return Ok(report::RestartReport {
                    node: id.0,
                    committed_before: committed.0,
                    serving_after_ms: started.elapsed().as_secs_f64() * 1000.0,
                });
            }
        }
        if started.elapsed() > START_PATIENCE {
            anyhow::bail!(
                "node {id} did not serve again within {START_PATIENCE:?} of its restart:\n{}",
                cluster.log_tail(id)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The client addresses of the configuration at `path`.
fn client_addresses(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = ClusterConfig::parse(&text)?;
    Ok(config
        .nodes
        .iter()
        .map(|node| node.client_address.to_string())
        .collect())
}

/// Starts `nodes` skiff nodes under `dir`, with mutual TLS between them
/// when `tls`, and waits for a leader.
async fn start_skiff(
    nodes: u64,
    dir: &Path,
    tls: bool,
    metrics: MetricsSwitch,
) -> anyhow::Result<ProcessCluster> {
    let program = std::env::current_exe().context("cannot find the skiff binary")?;
    let tls = match tls {
        true => Some(write_dev_certs(dir, nodes)?),
        false => None,
    };
    let mut cluster =
        ProcessCluster::create_local_configured(program, dir, nodes, Ports::Free, |c| {
            c.tls = tls;
            c.metrics.enabled = metrics == MetricsSwitch::On;
        })?;
    if metrics == MetricsSwitch::On {
        cluster.serve_metrics()?;
        for id in cluster.ids() {
            if let Some(address) = cluster.metrics_address(id) {
                eprintln!("node {id} metrics: http://{address}/metrics");
            }
        }
    }
    cluster.start_all_answering(START_PATIENCE).await?;
    wait_for_leader(&cluster.client_addresses(), START_PATIENCE)
        .await
        .context("the skiff nodes elected no leader")?;
    Ok(cluster)
}

async fn bench_etcd(args: &BenchArgs, dir: &Path) -> anyhow::Result<Vec<TargetReport>> {
    let mut cluster = None;
    let (endpoints, setup) = if args.etcd_endpoints.is_empty() {
        check_etcd_installed()?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let started = etcd::EtcdCluster::start(args.nodes as usize, dir)?;
        let endpoints = started.client_addresses();
        cluster = Some(started);
        let setup = format!(
            "{} etcd members ({}) started by the bench on 127.0.0.1, data in {}",
            args.nodes,
            etcd_version(),
            dir.display()
        );
        (endpoints, setup)
    } else {
        let list: Vec<String> = args
            .etcd_endpoints
            .iter()
            .map(ToString::to_string)
            .collect();
        (
            args.etcd_endpoints.clone(),
            format!("etcd members {}", list.join(",")),
        )
    };
    let leader = match etcd::wait_for_leader(&endpoints, START_PATIENCE).await {
        Ok(leader) => leader,
        Err(error) => {
            let logs = cluster.as_ref().map(|c| c.log_tails()).unwrap_or_default();
            return Err(error.context(logs));
        }
    };
    let value = writer::value(usize::try_from(args.bytes)?);
    let writers = (0..args.clients as usize)
        .map(|client| match args.etcd_api {
            EtcdApi::Grpc => Writer::EtcdGrpc(EtcdGrpcWriter::new(leader, client, &value)),
            EtcdApi::Json => Writer::EtcdJson(EtcdJsonWriter::new(leader, client, &value)),
        })
        .collect();
    let pids = cluster.as_ref().map(|cluster| cluster.pids());
    let (measurement, cpu) = measure(writers, args, pids.clone()).await?;
    let mut reports = Vec::new();
    if args.reads {
        let writers = (0..args.clients as usize)
            .map(|client| Writer::EtcdGrpc(EtcdGrpcWriter::new(leader, client, &value)))
            .collect();
        write_each_key(writers).await?;
        let readers = (0..args.clients as usize)
            .map(|client| {
                let member = endpoints[client % endpoints.len()];
                Writer::EtcdGrpc(EtcdGrpcWriter::reader(member, client))
            })
            .collect();
        let (reads, cpu) = measure(readers, args, pids).await?;
        let setup = format!(
            "{setup}; each client reads its own key from member <client> mod {} with gRPC KV.Range \
             (linearizable)",
            endpoints.len()
        );
        reports.push(TargetReport::new(report::ETCD_READS, setup, &reads, cpu));
    }
    drop(cluster);
    let api = match args.etcd_api {
        EtcdApi::Grpc => "gRPC KV.Put",
        EtcdApi::Json => "the JSON gateway",
    };
    let setup = format!("{setup}; clients put to the leader {leader} with {api}");
    reports.insert(0, TargetReport::new("etcd", setup, &measurement, cpu));
    Ok(reports)
}

fn check_etcd_installed() -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("etcd").is_file()));
    if !found {
        anyhow::bail!(
            "no etcd on the PATH: install Debian's etcd-server (apt-get install -y etcd-server) \
             or give --etcd-endpoints"
        );
    }
    Ok(())
}

/// `etcd --version`'s first line, e.g. "etcd Version: 3.4.23".
fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.lines().next().map(str::to_string)
        })
        .unwrap_or_else(|| "version unknown".into())
}

/// Runs the load, and reads the CPU time that this process and `pids` used
/// during the measured window.
async fn measure(
    writers: Vec<Writer>,
    args: &BenchArgs,
    pids: Option<Vec<u32>>,
) -> anyhow::Result<(Measurement, (Duration, Option<Duration>))> {
    let schedule = Schedule::starting_now(args.warmup, args.duration);
    let load = tokio::spawn(load::run(writers, schedule));
    let me = [std::process::id()];
    let servers = pids.unwrap_or_default();
    tokio::time::sleep_until(schedule.measure_from).await;
    let before = (
        process::total_cpu_time(&me),
        process::total_cpu_time(&servers),
    );
    tokio::time::sleep_until(schedule.until).await;
    let after = (
        process::total_cpu_time(&me),
        process::total_cpu_time(&servers),
    );
    let measurement = load.await??;
    let servers_cpu = (!servers.is_empty()).then(|| after.1.saturating_sub(before.1));
    Ok((measurement, (after.0.saturating_sub(before.0), servers_cpu)))
}
