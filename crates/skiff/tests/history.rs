//! Concurrent clients against three `skiff node` processes whose leader is
//! killed with SIGKILL and restarted, twice; every operation is recorded
//! with its invocation and return times, and the history is checked for
//! linearizability against the file-store model.

mod common;

use bytes::Bytes;
use common::TestCluster;
use skiff::status_probe::wait_until_answering;
use skiff_fs::linearizability::{check_file_history, Budget, FileOperation, Operation, Outcome};
use skiff_fs::protocol::{Request, Response, Version};
use skiff_fs::{Client, ClientConfig, ClientError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 6;
/// Clients from this id on only read, and start on different servers, so
/// that reads answered from a follower's state would show stale values.
const READERS_FROM: u64 = 4;
const OPERATIONS_PER_CLIENT_MAX: usize = 20_000;
const LEADER_CRASHES: usize = 2;
/// Shared by every client, so that their operations interleave on each.
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
    known: &HashMap<String, Version>,
) -> Request {
    let name = FILES[rng.below(FILES.len() as u64) as usize].to_string();
    // Unique contents, so that a read names the change it saw.
    let contents = Bytes::from(format!("c{client}-{sequence}"));
    let kind = if client >= READERS_FROM {
        5
    } else {
        rng.below(10)
    };
    match kind {
        0..=3 => Request::Write {
            name,
            contents,
            exptime_s: 0,
        },
        4..=6 => Request::Read { name },
        7..=8 => Request::Cas {
            version: known.get(&name).copied().unwrap_or(Version(1)),
            name,
            contents,
            exptime_s: 0,
        },
        _ => Request::Delete { name },
    }
}

async fn run_client(id: u64, mut client: Client, recorder: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    let mut known = HashMap::new();
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
                    known.insert(request.name().to_string(), *version);
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
        recorder.history.lock().unwrap().push(Operation {
            invoked_at,
            input: request,
            outcome,
        });
    }
}

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
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(Vec::new()),
    });
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
