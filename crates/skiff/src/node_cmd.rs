//! `skiff node`: runs one file server of a cluster in the foreground, with
//! its logs on standard error, until Ctrl-C or SIGTERM.

use crate::log_format::{self, LogFormat};
use anyhow::Context;
use skiff_fs::{Server, ServerConfig, ServerError};
use skiff_node::metrics_http::{spawn_metrics_server, MetricsHttpLimits};
use skiff_node::{ClusterConfig, NodeId};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long the exit waits for a blocked read of standard input.
const STDIN_READER_GRACE: Duration = Duration::from_millis(100);

const EXAMPLES: &str = "\
Examples:
  skiff node --config skiff-cluster/cluster.toml --id 1
  RUST_LOG=debug skiff node --config cluster.toml --id 2
  skiff node --config cluster.toml --id 1 --metrics-address 127.0.0.1:9101 --log-format json

Run one process per node of the configuration (`skiff up` writes one and
starts them all). The node listens for its peers on its peer_address and for
file clients on its client_address; logs go to standard error, filtered by
RUST_LOG (default: info). Ctrl-C or SIGTERM stops it cleanly: requests still
waiting for a commit are answered ERR_INTERNAL, the log is closed, and the
process exits 0.";

/// Arguments of `skiff node`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct NodeArgs {
    /// The cluster configuration file (TOML), shared by every node.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Which node of the configuration this process is.
    #[arg(long, value_name = "N")]
    id: u64,
    /// Also stop when standard input closes: `skiff up` and `skiff demo`
    /// pass it, so that their nodes stop even when they are killed.
    #[arg(long)]
    exit_on_stdin_close: bool,
    /// Accept peers on this inherited listening socket instead of binding
    /// the peer address: for process supervisors and tests that hold the
    /// node's ports. Needs --client-listen-fd.
    #[arg(long, value_name = "FD", requires = "client_listen_fd")]
    peer_listen_fd: Option<RawFd>,
    /// Accept file clients on this inherited listening socket instead of
    /// binding the client address: for process supervisors and tests.
    /// Needs --peer-listen-fd.
    #[arg(long, value_name = "FD", requires = "peer_listen_fd")]
    client_listen_fd: Option<RawFd>,
    /// Serve Prometheus metrics at GET /metrics on this address (overrides
    /// the node's metrics_address in the configuration).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_address: Option<SocketAddr>,
    /// Serve metrics on this inherited listening socket: for process
    /// supervisors and tests that hold the port.
    #[arg(long, value_name = "FD", conflicts_with = "metrics_address")]
    metrics_listen_fd: Option<RawFd>,
    /// How log lines are written to standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Runs the node until a stop is requested or it fails.
pub fn run(args: &NodeArgs) -> anyhow::Result<()> {
    // First, while no descriptor of this process can have taken their numbers.
    let listeners = match (args.peer_listen_fd, args.client_listen_fd) {
        (Some(peer), Some(client)) => Some((adopt_listener(peer)?, adopt_listener(client)?)),
        _ => None,
    };
    let metrics_listener = args.metrics_listen_fd.map(adopt_listener).transpose()?;
    log_format::init(args.log_format);
    let cluster = ClusterConfig::load(&args.config)?;
    let metrics_address = match args.metrics_address {
        Some(address) => Some(address),
        None => cluster.node(NodeId(args.id))?.metrics_address,
    };
    let metrics_listener = match (metrics_listener, metrics_address) {
        (Some(listener), _) => Some(listener),
        (None, Some(address)) => Some(
            TcpListener::bind(address)
                .with_context(|| format!("cannot listen for metrics on {address}"))?,
        ),
        (None, None) => None,
    };
    let config = ServerConfig::new(cluster, NodeId(args.id));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let watch_stdin = args.exit_on_stdin_close;
    let outcome = runtime.block_on(async move {
        let stop = async move {
            let reason = tokio::select! {
                signal = skiff::shutdown::requested() => signal,
                () = stdin_closed(watch_stdin) => "standard input closed",
            };
            tracing::info!(reason, "stopping");
        };
        let mut server = match listeners {
            Some((peers, clients)) => Server::start_with_listeners(config, peers, clients).await?,
            None => Server::start(config).await?,
        };
        // On this process's runtime, off the node's thread: a scrape
        // encodes the registry without delaying the event loop.
        let _metrics_server = match metrics_listener {
            Some(listener) => {
                let address = listener.local_addr().ok();
                let metrics = server.node().metrics().clone();
                let task = spawn_metrics_server(listener, metrics, MetricsHttpLimits::default())
                    .map_err(|e| ServerError::Config(format!("cannot serve metrics: {e}")))?;
                tracing::info!(address = ?address, "serving metrics at GET /metrics");
                Some(AbortOnDrop(task))
            }
            None => None,
        };
        tokio::select! {
            () = stop => server.shutdown().await,
            outcome = server.stopped() => match outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(ServerError::Stopped(e.to_string())),
            },
        }
    });
    // The server has stopped; only a read of standard input may still be
    // blocked in a thread, and it must not hold the exit.
    runtime.shutdown_timeout(STDIN_READER_GRACE);
    outcome?;
    tracing::info!("stopped");
    Ok(())
}

/// Takes over the listening socket `fd` that the parent process left open
/// for this one (`--peer-listen-fd`, `--client-listen-fd`).
fn adopt_listener(fd: RawFd) -> anyhow::Result<TcpListener> {
    // Descriptors 0 to 2 are standard streams this process keeps using.
    anyhow::ensure!(fd > 2, "fd {fd} is a standard stream, not a listener");
    // SAFETY: the flags' contract: the parent left `fd` open for this
    // process alone, and nothing else here owns that number (it is adopted
    // once, before anything else opens files), so the listener may own and
    // close it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    listener
        .local_addr()
        .with_context(|| format!("fd {fd} is not a listening socket"))?;
    Ok(listener)
}

/// Stops the metrics server with the node.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves when standard input reaches its end, if `watch` is set; never
/// otherwise. Whatever arrives on it is ignored.
async fn stdin_closed(watch: bool) {
    if !watch {
        return std::future::pending().await;
    }
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 256];
    while let Ok(read) = stdin.read(&mut sink).await {
        if read == 0 {
            return;
        }
    }
}
