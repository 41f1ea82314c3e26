//! Appends committed per second on a three-node loopback cluster with
//! durable logs (every turn syncs to disk), at 1 and at 64 concurrent
//! clients. The three nodes run in this process, each with its own data
//! directory under a temporary directory on the target's disk, and talk
//! over loopback TCP exactly as separate processes would.
//!
//! ```text
//! cargo bench -p skiff-node --bench cluster [-- --seconds 5 --clients 1,64 --bytes 128]
//! ```

use anyhow::Context;
use skiff_node::local::LocalCluster;
use skiff_node::{Node, NodeHandle, Role};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    seconds: u64,
    clients: Vec<usize>,
    bytes: usize,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 5,
        clients: vec![1, 64],
        bytes: 128,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => options.seconds = args.next().context("--seconds N")?.parse()?,
            "--bytes" => options.bytes = args.next().context("--bytes N")?.parse()?,
            "--clients" => {
                let list = args.next().context("--clients 1,64")?;
                options.clients = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            _ => {} // cargo bench passes --bench
        }
    }
    Ok(options)
}

async fn leader(nodes: &[Node]) -> NodeHandle {
    loop {
        if let Some(node) = nodes
            .iter()
            .find(|n| n.handle().status().role == Role::Leader)
        {
            return node.handle();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `clients` loops, each submitting one value at a time, for `seconds`.
async fn measure(leader: &NodeHandle, clients: usize, seconds: u64, bytes: usize) -> (u64, u64) {
    let committed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (leader, committed, failed) = (leader.clone(), committed.clone(), failed.clone());
            tokio::spawn(async move {
                let mut sequence = 0u64;
                while Instant::now() < deadline {
                    let mut value = format!("{client}-{sequence}-").into_bytes();
                    value.resize(bytes.max(value.len()), b'x');
                    sequence += 1;
                    match leader.submit(value).await {
                        Ok(_) => committed.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    (
        committed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    // Under the target directory, so the logs sync to a real disk (not tmpfs).
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base)?;
    let cluster = LocalCluster::bind(3, dir.path())?;
    let mut nodes = Vec::new();
    for id in cluster.config.ids() {
        nodes.push(cluster.start_node(id).await?);
    }
    let leader = leader(&nodes).await;
    println!(
        "three durable nodes on loopback, {}-byte appends, {} s per run, logs in {}",
        options.bytes,
        options.seconds,
        dir.path().display()
    );
    for &clients in &options.clients {
        let (committed, failed) = measure(&leader, clients, options.seconds, options.bytes).await;
        let rate = committed as f64 / options.seconds as f64;
        println!("clients {clients:>3}: {rate:>9.0} appends committed/s ({committed} committed, {failed} failed)");
    }
    for node in nodes {
        node.shutdown().await?;
    }
    Ok(())
}
