//! An append-only register replicated with Raft: the template for
//! applications that embed a `skiff-node`.
//!
//! Run one process per node of a cluster file (see `ClusterConfig`):
//!
//! ```text
//! cargo run -p skiff-node --example skiff-register -- --config cluster.toml --id 1
//! ```
//!
//! Clients speak a line protocol on the node's client address:
//!
//! ```text
//! append VALUE   ->  committed INDEX        VALUE is in the log at INDEX, for good
//!                    redirect HOST:PORT     ask the leader there instead
//!                    error REASON           not committed, or not known to be
//! read           ->  INDEX VALUE ... end    every committed value (linearizable)
//!                    redirect HOST:PORT | error REASON, as for append
//! dump           ->  INDEX VALUE ... end    what this node has applied (may be stale)
//! status         ->  role=R term=T leader=L commit=C last=I applied=A snapshot=S
//! ```
//!
//! The application state is a list of values, built only from the stream
//! of committed entries, so every node builds the same list. It is a
//! [`StateMachine`]: the node applies the log to it, snapshots it by the
//! `[snapshot]` policy of the cluster file (the log it covers is then
//! discarded), restores it from the newest snapshot at restart, and from
//! the leader's when this node fell too far behind.
//!
//! `read` is how clients should read: the server asks its node for a read
//! barrier ([`NodeHandle::read_barrier`]: the leader proves it still leads,
//! and a follower asks the leader for that proof and its index), and
//! answers once it has applied every entry through the barrier, so the
//! answer holds every value committed before the request. Answering from
//! the local list at once, as `dump` does to inspect one replica, may miss
//! values a newer leader has committed.

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use skiff_node::{
    ClusterConfig, CommittedEntry, LogIndex, Node, NodeHandle, NodeId, SnapshotMeta,
    SnapshotWriter, StateMachine, SubmitError,
};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The longest request line, so a client cannot make us buffer without end.
const LINE_BYTES_MAX: u64 = 64 * 1024;
/// Clients served at once.
const CLIENTS_MAX: usize = 1024;
/// How long an append or a read may wait for its outcome before the client
/// is told that it is unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One node of a replicated append-only register; clients speak a line
/// protocol (`append VALUE`, `read`, `dump`, `status`) on its client address.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The cluster's TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Which node of the configuration this process is.
    #[arg(long, value_name = "N")]
    id: u64,
    /// Accept peers on this inherited listening socket instead of binding
    /// the node's peer address: for a parent that holds the ports (tests).
    #[arg(long, value_name = "FD", requires = "client_listen_fd")]
    peer_listen_fd: Option<RawFd>,
    /// Accept clients on this inherited listening socket instead of binding
    /// the node's client address.
    #[arg(long, value_name = "FD", requires = "peer_listen_fd")]
    client_listen_fd: Option<RawFd>,
}

/// The register and how far it has applied the log.
#[derive(Default)]
struct Register {
    /// Committed values in log order, with their indices.
    values: Mutex<Vec<(LogIndex, Bytes)>>,
    /// The last index applied; reads wait on it.
    applied: watch::Sender<LogIndex>,
}

type Shared = Arc<Register>;

/// The register as the node's state machine.
struct Replica(Shared);

impl StateMachine for Replica {
    fn apply(&mut self, entry: CommittedEntry) {
        if !entry.data.is_empty() {
            let mut values = self.0.values.lock().expect("no panics while locked");
            values.push((entry.index, entry.data));
        }
        self.0.applied.send_replace(entry.index);
    }

    /// The values share their bytes, so the copy costs a pointer per value.
    fn snapshot(&self) -> Box<dyn SnapshotWriter> {
        let values = self.0.values.lock().expect("no panics while locked");
        Box::new(Frozen(values.clone()))
    }

    fn restore(&mut self, snapshot: SnapshotMeta, reader: &mut dyn Read) -> std::io::Result<()> {
        let mut restored = Vec::new();
        let mut header = [0u8; 12];
        loop {
            match reader.read_exact(&mut header) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
            let index = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
            let length = u32::from_le_bytes(header[8..].try_into().expect("4 bytes"));
            let mut value = vec![0; length as usize];
            reader.read_exact(&mut value)?;
            restored.push((LogIndex(index), Bytes::from(value)));
        }
        *self.0.values.lock().expect("no panics while locked") = restored;
        self.0.applied.send_replace(snapshot.index);
        Ok(())
    }
}

/// The values as of one applied index, written as
/// `index: u64 LE | length: u32 LE | value` each.
struct Frozen(Vec<(LogIndex, Bytes)>);

impl SnapshotWriter for Frozen {
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> std::io::Result<()> {
        for (index, value) in &self.0 {
            out.write_all(&index.0.to_le_bytes())?;
            out.write_all(&(value.len() as u32).to_le_bytes())?;
            out.write_all(value)?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let id = NodeId(args.id);
    let config = ClusterConfig::load(&args.config)?;
    let client_address = config.node(id)?.client_address;
    let peer_address = config.node(id)?.peer_address;
    let (peers, clients) = match (args.peer_listen_fd, args.client_listen_fd) {
        (Some(peer), Some(client)) => {
            let listener = adopt_listener(client)?;
            listener.set_nonblocking(true)?;
            (adopt_listener(peer)?, TcpListener::from_std(listener)?)
        }
        _ => {
            let peers = std::net::TcpListener::bind(peer_address)
                .with_context(|| format!("cannot listen for peers on {peer_address}"))?;
            let clients = TcpListener::bind(client_address)
                .await
                .with_context(|| format!("cannot listen for clients on {client_address}"))?;
            (peers, clients)
        }
    };
    let register = Shared::default();
    let replica = Replica(register.clone());
    let mut node = Node::start_with_state_machine(&config, id, peers, replica).await?;
    let listener = clients;
    tracing::info!(%client_address, "serving clients");
    let clients = serve_clients(listener, node.handle(), config, register);
    tokio::select! {
        outcome = node.stopped() => {
            if let Err(e) = outcome {
                anyhow::bail!("{e}");
            }
        }
        () = clients => {}
        _ = tokio::signal::ctrl_c() => node.shutdown().await?,
    }
    Ok(())
}

/// Takes over the listening socket `fd` that the parent process left open
/// for us.
fn adopt_listener(fd: RawFd) -> anyhow::Result<std::net::TcpListener> {
    // SAFETY: the flags' contract: the parent passed `fd` open, for this
    // process alone, and nothing else here owns that number, so the
    // listener may own and close it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener
        .local_addr()
        .with_context(|| format!("fd {fd} is not a listening socket"))?;
    Ok(listener)
}

async fn serve_clients(
    listener: TcpListener,
    node: NodeHandle,
    config: ClusterConfig,
    register: Shared,
) {
    let config = Arc::new(config);
    let slots = Arc::new(tokio::sync::Semaphore::new(CLIENTS_MAX));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // too many clients: close this one
        };
        let (node, config, register) = (node.clone(), config.clone(), register.clone());
        tokio::spawn(async move {
            let _ = serve_client(stream, &node, &config, &register).await;
            drop(slot);
        });
    }
}

async fn serve_client(
    stream: TcpStream,
    node: &NodeHandle,
    config: &ClusterConfig,
    register: &Shared,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(LINE_BYTES_MAX)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 || line.last() != Some(&b'\n') {
            return Ok(()); // closed, or a line too long
        }
        let request = String::from_utf8_lossy(&line).trim_end().to_string();
        let answer = match request.split_once(' ') {
            Some(("append", value)) if !value.is_empty() => append(node, config, value).await,
            _ if request == "read" => read_linearizable(node, config, register).await,
            _ if request == "dump" => dump(register),
            _ if request == "status" => status(node, register),
            _ => "error unknown command; try append VALUE, read, dump or status\n".to_string(),
        };
        writer.write_all(answer.as_bytes()).await?;
    }
}

async fn append(node: &NodeHandle, config: &ClusterConfig, value: &str) -> String {
    let outcome = tokio::time::timeout(REQUEST_TIMEOUT, node.submit(value.to_string())).await;
    match outcome {
        Ok(Ok(index)) => format!("committed {index}\n"),
        Ok(Err(e)) => refusal(config, e),
        Err(_) => "error timed out; the value may or may not commit\n".to_string(),
    }
}

/// A linearizable read: the values once this node has proven that it leads
/// and has applied every entry through the barrier.
async fn read_linearizable(node: &NodeHandle, config: &ClusterConfig, register: &Shared) -> String {
    let mut applied = register.applied.subscribe();
    let caught_up = async {
        let barrier = node.read_barrier().await?;
        // Fails only once the applier has stopped with the node.
        let reached = applied.wait_for(|applied| *applied >= barrier).await;
        Ok::<_, SubmitError>(reached.is_ok())
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, caught_up).await {
        Ok(Ok(true)) => dump(register),
        Ok(Ok(false)) => "error the node stopped\n".to_string(),
        Ok(Err(e)) => refusal(config, e),
        Err(_) => "error timed out; try again\n".to_string(),
    }
}

/// The answer to a request the node refused.
fn refusal(config: &ClusterConfig, refused: SubmitError) -> String {
    match refused {
        SubmitError::NotLeader {
            leader: Some(leader),
        } => match config.node(leader) {
            Ok(leader) => format!("redirect {}\n", leader.client_address),
            Err(_) => "error the leader is unknown to the configuration\n".to_string(),
        },
        e => format!("error {e}\n"),
    }
}

/// The values this node has applied, without asking whether they are all.
fn dump(register: &Shared) -> String {
    let values = register.values.lock().expect("no panics while locked");
    let mut out = String::new();
    for (index, value) in values.iter() {
        out.push_str(&format!("{index} {}\n", String::from_utf8_lossy(value)));
    }
    out.push_str("end\n");
    out
}

fn status(node: &NodeHandle, register: &Shared) -> String {
    let status = node.status();
    let leader = status
        .leader
        .map_or("none".to_string(), |id| id.to_string());
    let applied = *register.applied.borrow();
    format!(
        "role={} term={} leader={leader} commit={} last={} applied={applied} snapshot={}\n",
        status.role, status.term, status.commit_index, status.last_index, status.snapshot.index
    )
}
