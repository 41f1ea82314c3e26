//! `skiff up`: a whole local cluster in one command. Writes (or reuses) a
//! configuration on 127.0.0.1, starts every node as a child process, prints
//! where clients connect, and stops every node on Ctrl-C or SIGTERM.

use crate::log_format::LogFormat;
use crate::usage;
use anyhow::Context;
use skiff::process_cluster::{
    write_dev_certs, Ports, ProcessCluster, CERTS_DIR, CONFIG_FILE_NAME, STOP_GRACE,
};
use skiff::status_probe::{wait_for_leader_with, wait_until_answering_with};
use skiff_fs::protocol::StatusReport;
use skiff_fs::ClientTls;
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  skiff up                                   # 3 nodes, ./skiff-cluster, ports 7100-7105
  skiff up --nodes 5 --dir /tmp/c5 --base-port 9000
  skiff up --dir /tmp/c --base-port 0        # any free ports
  skiff up --tls --dir /tmp/ct               # mutual TLS between the nodes
  skiff up --tls --client-tls                # ... and TLS for the file server's clients

The directory keeps the configuration (cluster.toml), each node's data
(node-N/) and log (node-N.log). It is kept when the cluster stops, so the
next `skiff up` with the same --dir brings the same files back; when
cluster.toml exists it is used as it is, and --nodes/--base-port are refused.
Delete the directory to start afresh.

While it runs, from another terminal in the same directory:
  skiff status
  echo hello | skiff fs write greeting
  skiff fs read greeting
(with another --dir, add --config DIR/cluster.toml). With --client-tls these
use TLS by themselves, since cluster.toml says [tls] clients = true; against
addresses given with --servers, add --tls-ca DIR/certs/ca.pem.";

/// The directory `skiff up` uses without `--dir`.
const DEFAULT_DIR: &str = "skiff-cluster";
/// The cluster size without `--nodes`.
const NODES_DEFAULT: u64 = 3;
/// The first port without `--base-port`.
const BASE_PORT_DEFAULT: u16 = 7100;
/// How long a node may take to answer its first `status`.
const START_PATIENCE: Duration = Duration::from_secs(10);
/// How long to wait for the first leader before printing the addresses anyway.
const ELECTION_PATIENCE: Duration = Duration::from_secs(10);
/// How often to look whether a node died.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Arguments of `skiff up`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct UpArgs {
    /// How many nodes [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=99))]
    nodes: Option<u64>,
    /// The cluster's directory: configuration, data and logs.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Node i listens for peers on P+2(i-1) and for clients on P+2(i-1)+1;
    /// 0 picks free ports [default: 7100].
    #[arg(long, value_name = "P")]
    base_port: Option<u16>,
    /// Mutual TLS between the nodes: makes a development CA and node
    /// certificates in DIR/certs and names them in the new cluster.toml.
    #[arg(long)]
    tls: bool,
    /// With --tls, clients must use TLS too (`clients = true` in
    /// cluster.toml), with the same CA; off by default, so that tools that
    /// speak plain TCP to the servers keep working.
    #[arg(long, requires = "tls")]
    client_tls: bool,
    /// Give each new node a metrics address (Prometheus text at GET
    /// /metrics): the ports after the client ports, or free ones with
    /// --base-port 0. An existing cluster.toml's metrics_address keys apply
    /// as they are.
    #[arg(long)]
    metrics: bool,
    /// How the nodes write their logs (node-N.log): text, or one JSON
    /// object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve a live timeline of the nodes' roles, terms and commit indices
    /// at http://ADDRESS/ (e.g. 127.0.0.1:7000).
    #[arg(long, value_name = "ADDRESS")]
    ui: Option<String>,
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub fn run(args: &UpArgs) -> anyhow::Result<()> {
    let program = std::env::current_exe().context("cannot find the skiff binary")?;
    let mut cluster = prepare_cluster(args, program)?;
    cluster.add_node_args(["--log-format", args.log_format.name()]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // `cluster` is dropped, stopping every node, whichever way this returns.
    let outcome = runtime.block_on(async {
        if let Some(address) = &args.ui {
            let live = skiff::ui::live::LiveCluster::of(&cluster)?;
            let bound = skiff::ui::live::start(address, live).await?;
            println!("timeline: http://{bound}/");
        }
        tokio::select! {
            signal = skiff::shutdown::requested() => Ok(Some(signal)),
            served = serve(&mut cluster) => served.map(|()| None),
        }
    });
    let signal = outcome?;
    if let Some(signal) = signal {
        println!("{signal}: stopping every node");
    }
    report_stopped(&mut cluster);
    Ok(())
}

/// The cluster of the configuration in `--dir`, or of a new one.
fn prepare_cluster(args: &UpArgs, program: PathBuf) -> anyhow::Result<ProcessCluster> {
    let existing = args.dir.join(CONFIG_FILE_NAME);
    if existing.exists() {
        if args.nodes.is_some()
            || args.base_port.is_some()
            || args.tls
            || args.client_tls
            || args.metrics
        {
            return Err(usage::error(format!(
                "{} exists: it is used as it is, so --nodes, --base-port, --tls, --client-tls \
                 and --metrics \
                 cannot apply; \
                 omit them, or remove {} to start afresh",
                existing.display(),
                args.dir.display()
            )));
        }
        println!("using the existing configuration {}", existing.display());
        return Ok(ProcessCluster::new(program, &existing)?);
    }
    let ports = match args.base_port.unwrap_or(BASE_PORT_DEFAULT) {
        0 => Ports::Free,
        base => Ports::Consecutive { base },
    };
    let count = args.nodes.unwrap_or(NODES_DEFAULT);
    let tls = match args.tls {
        true => Some(skiff_node::TlsConfig {
            clients: args.client_tls,
            ..write_dev_certs(&args.dir, count)?
        }),
        false => None,
    };
    let metrics_ports = match (args.metrics, ports) {
        (true, Ports::Consecutive { base }) => {
            let first = u64::from(base) + 2 * count;
            let last = first + count - 1;
            let first = u16::try_from(first)
                .ok()
                .filter(|_| last <= u64::from(u16::MAX))
                .ok_or_else(|| usage::error("--base-port leaves no room for the metrics ports"))?;
            Some(first)
        }
        _ => None,
    };
    let mut cluster =
        ProcessCluster::create_local_configured(program, &args.dir, count, ports, |c| {
            c.tls = tls;
            if let Some(first) = metrics_ports {
                for (offset, node) in (0u16..).zip(c.nodes.iter_mut()) {
                    node.metrics_address =
                        Some(std::net::SocketAddr::from(([127, 0, 0, 1], first + offset)));
                }
            }
        })?;
    if args.metrics && metrics_ports.is_none() {
        cluster.serve_metrics()?;
    }
    if args.tls {
        println!(
            "wrote development certificates in {}",
            args.dir.join(CERTS_DIR).display()
        );
    }
    println!("wrote {}", cluster.config_path().display());
    Ok(cluster)
}

/// Starts the nodes, prints where they are, then watches for nodes that
/// die; returns only on error.
async fn serve(cluster: &mut ProcessCluster) -> anyhow::Result<()> {
    let tls = ClientTls::for_cluster(cluster.config())?;
    cluster.start_all()?;
    for id in cluster.ids() {
        let address = cluster.client_address(id)?.to_string();
        let answering = wait_until_answering_with(tls.as_ref(), &address, START_PATIENCE);
        if let Err(error) = answering.await {
            anyhow::bail!(
                "node {id} does not answer on {address}: {error}\n{}",
                cluster.log_tail(id)
            );
        }
    }
    let addresses = cluster.client_addresses();
    let leader = wait_for_leader_with(tls.as_ref(), &addresses, ELECTION_PATIENCE)
        .await
        .ok();
    print_cluster(cluster, leader);
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        for (id, status) in cluster.reap_exited() {
            println!(
                "node {id} exited ({status}); the others keep running. Its log: {}",
                cluster.log_path(id).display()
            );
        }
        if cluster.ids().iter().all(|id| !cluster.is_running(*id)) {
            anyhow::bail!("every node has exited");
        }
    }
}

fn print_cluster(cluster: &ProcessCluster, leader: Option<StatusReport>) {
    let config = cluster.config_path().display();
    println!(
        "cluster of {} nodes, configuration {config}",
        cluster.ids().len()
    );
    for id in cluster.ids() {
        let node = cluster
            .config()
            .node(id)
            .expect("ids come from the configuration");
        println!(
            "  node {id}  client {}  peer {}  pid {}  log {}",
            node.client_address,
            node.peer_address,
            cluster.pid(id).map_or("-".to_string(), |p| p.to_string()),
            cluster.log_path(id).display()
        );
    }
    println!("servers: {}", cluster.client_addresses().join(","));
    if let Some(tls) = cluster.config().tls.as_ref().filter(|tls| tls.clients) {
        println!(
            "clients: TLS only; `skiff fs/status --config {config}` use it by themselves, \
             or add --tls-ca {}",
            tls.ca.display()
        );
    }
    for id in cluster.ids() {
        let configured = cluster
            .config()
            .node(id)
            .ok()
            .and_then(|n| n.metrics_address);
        if let Some(address) = cluster.metrics_address(id).or(configured) {
            println!("  node {id}  metrics http://{address}/metrics");
        }
    }
    match leader {
        Some(leader) => println!("leader: node {} (term {})", leader.id, leader.term),
        None => println!("leader: none yet (see `skiff status --config {config}`)"),
    }
    println!("ready; Ctrl-C stops every node");
}

/// Stops every node and says how each ended.
fn report_stopped(cluster: &mut ProcessCluster) {
    for (id, outcome) in cluster.stop_all(STOP_GRACE) {
        match outcome {
            Ok(status) => println!("node {id} stopped ({status})"),
            Err(error) => eprintln!("node {id}: {error}"),
        }
    }
}
