//! An append-only register replicated with Raft: the template for
//! applications that embed a `skiff-node`.
//!
//! Run one process per node of a cluster file (see `ClusterConfig`):
//!
//! ```text
//! skiff-register --config cluster.toml --id 1
//! ```
//!
//! Clients speak a line protocol on the node's client address:
//!
//! ```text
//! append VALUE   ->  committed INDEX        VALUE is in the log at INDEX, for good
//!                    redirect HOST:PORT     ask the leader there instead
//!                    error REASON           not committed, or not known to be
//! dump           ->  INDEX VALUE ... end    every value this node has applied
//! status         ->  role=R term=T leader=L commit=C last=I applied=A
//! ```
//!
//! The application state is a list of values, built only from the stream
//! of committed entries, so every node builds the same list.

use anyhow::Context;
use bytes::Bytes;
use skiff_node::{ClusterConfig, LogIndex, Node, NodeHandle, NodeId, SubmitError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The longest request line, so a client cannot make us buffer without end.
const LINE_BYTES_MAX: u64 = 64 * 1024;
/// Clients served at once.
const CLIENTS_MAX: usize = 1024;
/// How long an append may wait for its outcome before the client is told
/// that it is unknown.
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The register: committed values in log order, with their indices.
#[derive(Default)]
struct Register {
    values: Vec<(LogIndex, Bytes)>,
    applied: LogIndex,
}

type Shared = Arc<Mutex<Register>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (config_path, id) = parse_args()?;
    let config = ClusterConfig::load(&config_path)?;
    let client_address = config.node(id)?.client_address;
    let mut node = Node::start(&config, id).await?;
    let register = Shared::default();
    tokio::spawn(apply_committed(node.handle(), register.clone()));
    let listener = TcpListener::bind(client_address)
        .await
        .with_context(|| format!("cannot listen for clients on {client_address}"))?;
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

fn parse_args() -> anyhow::Result<(PathBuf, NodeId)> {
    let usage = "usage: skiff-register --config FILE --id N";
    let mut args = std::env::args().skip(1);
    let (mut config, mut id) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--id" => {
                id = Some(
                    args.next()
                        .context(usage)?
                        .parse()
                        .context("--id takes a number")?,
                )
            }
            _ => anyhow::bail!("unexpected argument {arg:?}; {usage}"),
        }
    }
    Ok((config.context(usage)?, NodeId(id.context(usage)?)))
}

/// Builds the register from the committed log, skipping empty entries
/// (a leader's no-op, read barriers).
async fn apply_committed(node: NodeHandle, register: Shared) {
    let Ok(mut committed) = node.subscribe(LogIndex(1)).await else {
        return;
    };
    while let Some(entry) = committed.next().await {
        let mut register = register.lock().expect("no panics while locked");
        if !entry.data.is_empty() {
            register.values.push((entry.index, entry.data));
        }
        register.applied = entry.index;
    }
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
            _ if request == "dump" => dump(register),
            _ if request == "status" => status(node, register),
            _ => "error unknown command; try append VALUE, dump or status\n".to_string(),
        };
        writer.write_all(answer.as_bytes()).await?;
    }
}

async fn append(node: &NodeHandle, config: &ClusterConfig, value: &str) -> String {
    let outcome = tokio::time::timeout(APPEND_TIMEOUT, node.submit(value.to_string())).await;
    match outcome {
        Ok(Ok(index)) => format!("committed {index}\n"),
        Ok(Err(SubmitError::NotLeader {
            leader: Some(leader),
        })) => match config.node(leader) {
            Ok(leader) => format!("redirect {}\n", leader.client_address),
            Err(_) => "error the leader is unknown to the configuration\n".to_string(),
        },
        Ok(Err(e)) => format!("error {e}\n"),
        Err(_) => "error timed out; the value may or may not commit\n".to_string(),
    }
}

fn dump(register: &Shared) -> String {
    let register = register.lock().expect("no panics while locked");
    let mut out = String::new();
    for (index, value) in &register.values {
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
    let applied = register.lock().expect("no panics while locked").applied;
    format!(
        "role={} term={} leader={leader} commit={} last={} applied={applied}\n",
        status.role, status.term, status.commit_index, status.last_index
    )
}
