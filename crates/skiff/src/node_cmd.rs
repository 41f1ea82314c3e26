//! `skiff node`: runs one file server of a cluster in the foreground, with
//! its logs on standard error, until Ctrl-C or SIGTERM.

use crate::log_format::{self, LogFormat};
use anyhow::Context;
use skiff_fs::{ClientTls, Server, ServerConfig, ServerError};
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
  skiff node --config cluster.toml --id 4 --join 127.0.0.1:7201

Run one process per node of the configuration (`skiff up` writes one and
starts them all). The node listens for its peers on its peer_address and for
file clients on its client_address; logs go to standard error, filtered by
RUST_LOG (default: info). Ctrl-C or SIGTERM stops it cleanly: requests still
waiting for a commit are answered ERR_INTERNAL, the log is closed, and the
process exits 0.

Joining a running cluster (--join ADDRESS): give the new node a [[nodes]]
entry in its cluster.toml with `learner = true` (its id, peer and client
addresses, data directory; with [tls], certs/node-<id>.pem naming its id) and
start it with an empty data directory and --join naming any member's client
address. It asks the cluster, following `not the leader` answers to the
leader (at the address the answer names, else at the one its cluster.toml
gives), to add it as a learner with its addresses, then catches up from a
snapshot and the log. Promote it with `skiff member promote N` once it has
caught up, then remove `learner = true` from its entry. A node that is a
member already (a restart with --join) starts normally and asks nothing.";

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
    /// Join a running cluster as a learner, asking the member whose client
    /// address this is (see below). The node's cluster.toml entry must say
    /// `learner = true`.
    #[arg(long, value_name = "HOST:PORT")]
    join: Option<String>,
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
    if args.join.is_some() && !cluster.node(NodeId(args.id))?.learner {
        return Err(crate::usage::error(format!(
            "--join: node {} is one of the cluster's first voters in {}; a joining node's \
             [[nodes]] entry says `learner = true`",
            args.id,
            args.config.display()
        )));
    }
    let joining = args.join.clone().map(|address| Join {
        address,
        tls: ClientTls::for_cluster(&cluster),
        cluster: cluster.clone(),
    });
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
        let node = server.node();
        let join = async move {
            match joining {
                Some(join) => join.run(node).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop => server.shutdown().await,
            outcome = server.stopped() => match outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(ServerError::Stopped(e.to_string())),
            },
            failed = join => {
                tracing::error!(reason = %failed, "joining the cluster failed; stopping");
                server.shutdown().await?;
                Err(ServerError::Stopped(format!("joining the cluster failed: {failed}")))
            }
        }
    });
    // The server has stopped; only a read of standard input may still be
    // blocked in a thread, and it must not hold the exit.
    runtime.shutdown_timeout(STDIN_READER_GRACE);
    outcome?;
    tracing::info!("stopped");
    Ok(())
}

/// How long a join keeps asking before it gives up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `member add` exchange may take: the change commits first.
const MEMBER_ADD_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait before asking again after a refusal that says to retry.
const JOIN_RETRY: Duration = Duration::from_millis(100);
/// Bytes of an answer read before giving up on a line.
const ANSWER_BYTES_MAX: usize = 1024;

/// What `--join` asks of the cluster: to add this node as a learner.
struct Join {
    /// A member's client address, asked first.
    address: String,
    /// Client TLS, if the cluster's clients use it (or why it is unusable).
    tls: Result<Option<ClientTls>, skiff_node::tls::TlsError>,
    /// The joining node's cluster.toml, for the leader's client address.
    cluster: ClusterConfig,
}

/// How the cluster answered a `member add`.
enum JoinAnswer {
    /// Added, its entry committed at this index.
    Added(u64),
    /// The node is a member already.
    Member,
    /// Ask node N, which leads, at its client address when the answer
    /// gave it.
    Redirect(u64, Option<String>),
    /// Ask again shortly (no leader known, one not ready, another change
    /// or a transfer under way).
    Retry(String),
    /// Refused for good.
    Refused(String),
}

impl Join {
    /// Asks the cluster to add `node` as a learner with its addresses, and
    /// resolves only if that fails for good: with why. A node that is
    /// already a member asks nothing.
    async fn run(self, node: skiff_node::NodeHandle) -> String {
        let id = node.id();
        if node.membership().contains(id) {
            tracing::info!(
                %id,
                "--join: this node is already a member of the cluster's configuration; \
                 nothing to ask"
            );
            return std::future::pending().await;
        }
        match self.ask(id).await {
            Ok(Some(index)) => tracing::info!(
                event = "joined", %id, %index,
                "the cluster added this node as a learner; it catches up from the leader \
                 (then promote it: `skiff member promote {id}`)"
            ),
            Ok(None) => {
                tracing::info!(%id, "--join: the cluster counts this node a member already")
            }
            Err(reason) => return reason,
        }
        std::future::pending().await
    }

    /// Follows `not the leader` answers from `self.address` to the leader
    /// (at the address the answer gives, else the one cluster.toml gives)
    /// and asks it, until added or refused for good.
    async fn ask(&self, id: NodeId) -> Result<Option<u64>, String> {
        let tls = self.tls.as_ref().map_err(|e| e.to_string())?.as_ref();
        let me = self.cluster.node(id).map_err(|e| e.to_string())?;
        let request = format!(
            "member add {id} {} {}\r\n",
            me.peer_address, me.client_address
        );
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        let mut address = self.address.clone();
        let mut last = String::from("no answer yet");
        while tokio::time::Instant::now() < deadline {
            let answer =
                tokio::time::timeout(MEMBER_ADD_TIMEOUT, exchange(tls, &address, &request)).await;
            let answer = match answer {
                Ok(Ok(line)) => parse_member_answer(&line),
                Ok(Err(e)) => JoinAnswer::Retry(format!("{address}: {e}")),
                Err(_) => {
                    JoinAnswer::Retry(format!("{address}: no answer in {MEMBER_ADD_TIMEOUT:?}"))
                }
            };
            match answer {
                JoinAnswer::Added(index) => return Ok(Some(index)),
                JoinAnswer::Member => return Ok(None),
                JoinAnswer::Refused(reason) => {
                    return Err(format!("{address} refused to add node {id}: {reason}"))
                }
                JoinAnswer::Redirect(_, Some(at)) => address = at,
                JoinAnswer::Redirect(leader, None) => match self.cluster.node(NodeId(leader)) {
                    Ok(leader) => address = leader.client_address.to_string(),
                    Err(_) => {
                        return Err(format!(
                            "node {leader} leads, but this node's cluster.toml has no \
                             [[nodes]] entry for it: add one with its client address"
                        ))
                    }
                },
                JoinAnswer::Retry(reason) => {
                    tracing::info!(%address, %reason, "--join: asking again shortly");
                    last = reason;
                    // Asks the address given again: the leader may have moved.
                    address = self.address.clone();
                    tokio::time::sleep(JOIN_RETRY).await;
                }
            }
        }
        Err(format!(
            "the cluster did not add node {id} within {JOIN_TIMEOUT:?}: {last}"
        ))
    }
}

/// Sends `request` to the file server at `address` and reads its one-line
/// answer (the file protocol's `member add` extension).
async fn exchange(
    tls: Option<&ClientTls>,
    address: &str,
    request: &str,
) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    match tls {
        Some(tls) => read_answer(tls.connect(address, stream).await?, request).await,
        None => read_answer(stream, request).await,
    }
}

async fn read_answer(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    request: &str,
) -> std::io::Result<String> {
    use tokio::io::AsyncWriteExt;
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    while !answer.ends_with(b"\n") {
        if answer.len() >= ANSWER_BYTES_MAX {
            return Err(std::io::Error::other("answer too long"));
        }
        let mut chunk = [0u8; 256];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&answer).trim().to_string())
}

/// Reads `MEMBER_OK <index>` or `ERR_MEMBER <reason>`, the reason being
/// the core's `MembershipError` text.
fn parse_member_answer(line: &str) -> JoinAnswer {
    if let Some(index) = line.strip_prefix("MEMBER_OK ") {
        return match index.trim().parse() {
            Ok(index) => JoinAnswer::Added(index),
            Err(_) => JoinAnswer::Refused(format!("unexpected answer {line:?}")),
        };
    }
    let Some(reason) = line.strip_prefix("ERR_MEMBER") else {
        return JoinAnswer::Refused(format!(
            "unexpected answer {line:?} (a server without the member extension?)"
        ));
    };
    let reason = reason.trim();
    // `the leader is node 2`, or `the leader is node 2 at 127.0.0.1:7102`.
    let leader = reason
        .strip_prefix("not the leader; the leader is node ")
        .and_then(|rest| {
            let mut words = rest.split_whitespace();
            let id = words.next()?.parse().ok()?;
            let at = match (words.next(), words.next()) {
                (Some("at"), Some(address)) => Some(address.to_string()),
                _ => None,
            };
            Some((id, at))
        });
    let retry = [
        "no leader is known",
        "has not committed an entry of its term",
        "another membership change",
        "leadership transfer is under way",
    ];
    match leader {
        Some((leader, at)) => JoinAnswer::Redirect(leader, at),
        None if reason.contains("already a member") => JoinAnswer::Member,
        None if retry.iter().any(|r| reason.contains(r)) => JoinAnswer::Retry(reason.to_string()),
        None => JoinAnswer::Refused(reason.to_string()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_answers_are_read_as_the_join_follows_them() {
        assert!(matches!(
            parse_member_answer("MEMBER_OK 42"),
            JoinAnswer::Added(42)
        ));
        assert!(matches!(
            parse_member_answer("ERR_MEMBER not the leader; the leader is node 3"),
            JoinAnswer::Redirect(3, None)
        ));
        let JoinAnswer::Redirect(2, Some(at)) = parse_member_answer(
            "ERR_MEMBER not the leader; the leader is node 2 at 127.0.0.1:7102",
        ) else {
            panic!("not a redirect with an address");
        };
        assert_eq!(at, "127.0.0.1:7102");
        assert!(matches!(
            parse_member_answer("ERR_MEMBER the node is already a member"),
            JoinAnswer::Member
        ));
        for retry in [
            "ERR_MEMBER not the leader; no leader is known",
            "ERR_MEMBER the leader has not committed an entry of its term yet; retry shortly",
            "ERR_MEMBER another membership change has not committed yet",
        ] {
            assert!(
                matches!(parse_member_answer(retry), JoinAnswer::Retry(_)),
                "{retry}"
            );
        }
        for refused in [
            "ERR_MEMBER cannot remove the last voter",
            "MEMBER_OK x",
            "OK",
        ] {
            assert!(
                matches!(parse_member_answer(refused), JoinAnswer::Refused(_)),
                "{refused}"
            );
        }
    }
}
