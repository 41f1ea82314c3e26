//! Concurrent clients against a cluster whose leader is stopped and restarted
//! again and again; every operation is recorded with its invocation and
//! return times, and the history is checked for linearizability against the
//! file-store model.

mod common;

use common::Cluster;
use skiff_fs::linearizability::{check_file_history, Budget, CheckError, FileOperation, Outcome};
use skiff_fs::workload::{Recorder, Workload};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const CLIENTS: u64 = 6;
/// Clients from this id on only read, so that a server answering reads from
/// a follower's state would keep them there and show stale values.
const READERS_FROM: u64 = 4;
const OPERATIONS_PER_CLIENT_MAX: usize = 5_000;
const LEADER_CRASHES: usize = 3;
const FILES: [&str; 3] = ["x", "y", "z"];

fn workload() -> Workload {
    Workload {
        files: FILES.iter().map(|f| f.to_string()).collect(),
        readers_from: READERS_FROM,
        operations_per_client_max: OPERATIONS_PER_CLIENT_MAX,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_with_leader_crashes_are_linearizable() {
    let mut cluster = Cluster::start(3).await;
    cluster.leader().await;
    let workload = Arc::new(workload());
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            // Clients start on different servers, followers included.
            let client = cluster.client_starting_at(1 + id % 3);
            let (workload, recorder, stop) = (workload.clone(), recorder.clone(), stop.clone());
            tokio::spawn(async move { workload.run_client(id, client, recorder, stop).await })
        })
        .collect();
    cluster.stop_and_restart_leaders(LEADER_CRASHES).await;
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
    let started = Instant::now();
    let checked = check_file_history(&history, Budget::default());
    eprintln!("checked in {:?}", started.elapsed());
    if let Err(error) = checked {
        panic!("{error}\n{}", explain(&history, &error.error));
    }
}

/// The end of the longest linearizable prefix and the operations that could
/// not follow it: where to look when the check fails.
fn explain(history: &[FileOperation], error: &CheckError) -> String {
    let CheckError::NotLinearizable { longest_prefix } = error else {
        return String::new();
    };
    let name = longest_prefix.first().map(|&i| history[i].input.name());
    let tail = &longest_prefix[longest_prefix.len().saturating_sub(3)..];
    let mut stuck: Vec<&FileOperation> = history
        .iter()
        .enumerate()
        .filter(|(i, op)| Some(op.input.name()) == name && !longest_prefix.contains(i))
        .map(|(_, op)| op)
        .collect();
    stuck.sort_by_key(|op| op.invoked_at);
    let mut text = String::from("last linearized:\n");
    for &i in tail {
        text.push_str(&format!("  {:?}\n", history[i]));
    }
    text.push_str("first operations that could not follow:\n");
    for op in stuck.iter().take(3) {
        text.push_str(&format!("  {op:?}\n"));
    }
    text
}
