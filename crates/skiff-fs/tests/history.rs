//! Concurrent clients against a cluster whose leader is stopped and restarted
//! again and again; every operation is recorded with its invocation and
//! return times, and the history is checked for linearizability against the
//! file-store model.

mod common;

use bytes::Bytes;
use common::Cluster;
use skiff_fs::linearizability::{
    check_file_history, Budget, CheckError, FileOperation, Operation, Outcome,
};
use skiff_fs::protocol::{Request, Response, Version};
use skiff_fs::{Client, ClientError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 6;
/// Clients from this id on only read, so that a server answering reads from
/// a follower's state would keep them there and show stale values.
const READERS_FROM: u64 = 4;
const OPERATIONS_PER_CLIENT_MAX: usize = 5_000;
const LEADER_CRASHES: usize = 3;
const FILES: [&str; 3] = ["x", "y", "z"];

/// The operations every client saw, on one clock.
struct Recorder {
    start: Instant,
    history: Mutex<Vec<FileOperation>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// A small xorshift generator, so each client's choices follow its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn next_request(
    rng: &mut Rng,
    client: u64,
    sequence: usize,
    known: &HashMap<&str, Version>,
) -> Request {
    let name = FILES[rng.below(FILES.len() as u64) as usize];
    // Unique contents, so that a read names the write it saw.
    let contents = Bytes::from(format!("c{client}-{sequence}"));
    let kind = if client >= READERS_FROM {
        5
    } else {
        rng.below(10)
    };
    match kind {
        0..=3 => Request::Write {
            name: name.to_string(),
            contents,
            exptime_s: 0,
        },
        4..=6 => Request::Read {
            name: name.to_string(),
        },
        7..=8 => Request::Cas {
            name: name.to_string(),
            version: known.get(name).copied().unwrap_or(Version(1)),
            contents,
            exptime_s: 0,
        },
        _ => Request::Delete {
            name: name.to_string(),
        },
    }
}

/// Runs one client until told to stop, recording each operation.
async fn run_client(id: u64, mut client: Client, recorder: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    let mut known: HashMap<&str, Version> = HashMap::new();
    for sequence in 0..OPERATIONS_PER_CLIENT_MAX {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let request = next_request(&mut rng, id, sequence, &known);
        let invoked_at = recorder.now();
        let result = client.call(&request).await;
        let returned_at = recorder.now();
        let outcome = match result {
            Ok(output) => {
                if let Response::Written { version }
                | Response::Contents { version, .. }
                | Response::VersionMismatch { current: version } = &output
                {
                    let name = FILES.iter().find(|f| **f == request.name()).unwrap();
                    known.insert(name, *version);
                }
                Outcome::Returned {
                    at: returned_at,
                    output,
                }
            }
            Err(error) if error.outcome_unknown() => Outcome::Unknown,
            // Every attempt was redirected or could not connect: nothing
            // was proposed, so the operation did not happen.
            Err(ClientError::Unavailable { .. }) => continue,
            Err(error) => panic!("client {id}: {error}"),
        };
        let operation = Operation {
            invoked_at,
            input: request,
            outcome,
        };
        recorder.history.lock().unwrap().push(operation);
    }
}

async fn crash_leaders(cluster: &mut Cluster) {
    for _ in 0..LEADER_CRASHES {
        let leader = cluster.leader().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.stop_node(leader).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        cluster.start_node(leader).await;
    }
    cluster.leader().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_with_leader_crashes_are_linearizable() {
    let mut cluster = Cluster::start(3).await;
    cluster.leader().await;
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            // Clients start on different servers, followers included.
            let client = cluster.client_starting_at(1 + id % 3);
            tokio::spawn(run_client(id, client, recorder.clone(), stop.clone()))
        })
        .collect();
    crash_leaders(&mut cluster).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let history = recorder.history.lock().unwrap().clone();
    let unknown = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    eprintln!(
        "history: {} operations, {unknown} with unknown outcome, over {:?}",
        history.len(),
        recorder.start.elapsed()
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
