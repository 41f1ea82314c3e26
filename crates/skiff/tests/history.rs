//! Concurrent clients against three `skiff node` processes whose leader is
//! killed with SIGKILL and restarted, twice; every operation is recorded
//! with its invocation and return times, and the history is checked for
//! linearizability against the file-store model.

mod common;

use common::TestCluster;
use skiff::status_probe::wait_until_answering;
use skiff_fs::linearizability::{check_file_history, Budget, Outcome};
use skiff_fs::protocol::Request;
use skiff_fs::workload::{Recorder, Workload};
use skiff_fs::{Client, ClientConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: u64 = 6;
/// Clients from this id on only read, and start on different servers, so
/// that reads answered from a follower's state would show stale values.
const READERS_FROM: u64 = 4;
const OPERATIONS_PER_CLIENT_MAX: usize = 20_000;
const LEADER_CRASHES: usize = 2;
/// Shared by every client, so that their operations interleave on each.
const FILES: [&str; 3] = ["x", "y", "z"];

/// Kills the leader with SIGKILL, lets the others elect a new one under
/// load, restarts it, and again.
async fn crash_leaders(cluster: &mut TestCluster) {
    for _ in 0..LEADER_CRASHES {
        let leader = cluster.leader().await.id;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.cluster.kill(leader).unwrap();
        let successor = cluster.leader().await;
        assert_ne!(successor.id, leader);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cluster.cluster.start(leader).unwrap();
        wait_until_answering(&cluster.address(leader), common::PATIENCE)
            .await
            .unwrap();
    }
    cluster.leader().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_with_leaders_killed_are_linearizable() {
    let mut cluster = TestCluster::start(3).await;
    let workload = Arc::new(Workload {
        files: FILES.iter().map(|f| f.to_string()).collect(),
        readers_from: READERS_FROM,
        operations_per_client_max: OPERATIONS_PER_CLIENT_MAX,
    });
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let addresses = cluster.cluster.client_addresses();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let mut servers = addresses.clone();
            servers.rotate_left(id as usize % addresses.len());
            let client = Client::new(ClientConfig {
                attempts_max: 100,
                backoff: Duration::from_millis(20),
                request_timeout: Duration::from_secs(3),
                ..ClientConfig::new(servers)
            });
            let (workload, recorder, stop) = (workload.clone(), recorder.clone(), stop.clone());
            tokio::spawn(async move { workload.run_client(id, client, recorder, stop).await })
        })
        .collect();
    crash_leaders(&mut cluster).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let history = recorder.history();
    let unknown = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    eprintln!(
        "history: {} operations, {unknown} with unknown outcome, over {:?}",
        history.len(),
        recorder.elapsed()
    );
    assert!(
        history.len() - unknown >= 100,
        "too few operations completed"
    );
    // Enough reads answered for stale ones to show.
    let reads = history
        .iter()
        .filter(|op| matches!(op.input, Request::Read { .. }) && op.outcome != Outcome::Unknown)
        .count();
    assert!(reads >= 50, "only {reads} reads answered");
    let started = Instant::now();
    let checked = check_file_history(&history, Budget::default());
    eprintln!("checked in {:?}", started.elapsed());
    if let Err(error) = checked {
        panic!("{error}");
    }
}
