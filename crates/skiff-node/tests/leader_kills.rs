//! The headline test: a three-process cluster survives 20 leader kills with
//! SIGKILL under continuous appends, and every acknowledged value is
//! present exactly once, at its acknowledged index, on every node.

mod common;

use common::{Client, Cluster};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const KILLS: usize = 20;
const CLIENTS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(20);
/// Appends acknowledged under each leader before it is killed.
const ACKS_PER_LEADER_MIN: usize = 3;

#[derive(Default)]
struct History {
    /// Values a node acknowledged, with their indices.
    acknowledged: Vec<(u64, String)>,
    /// Every value ever sent, acknowledged or not.
    sent: HashSet<String>,
}

/// Appends fresh values until `stop`: a value is sent once and never again,
/// whatever the answer. Redirects are followed; after an error or a lost
/// connection the client moves to another node.
fn run_client(
    client: usize,
    addresses: Vec<SocketAddr>,
    history: Arc<Mutex<History>>,
    stop: Arc<AtomicBool>,
) {
    let mut target = addresses[client % addresses.len()];
    let mut connection: Option<Client> = None;
    let mut sequence = 0u64;
    let mut rotation = client;
    while !stop.load(Ordering::Relaxed) {
        if connection.is_none() {
            connection = Client::connect(target);
        }
        let Some(open) = connection.as_mut() else {
            rotation += 1;
            target = addresses[rotation % addresses.len()];
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        sequence += 1;
        let value = format!("c{client}-{sequence}");
        history.lock().unwrap().sent.insert(value.clone());
        let answer = open.request(&format!("append {value}"));
        match answer.as_deref().and_then(|a| a.split_once(' ')) {
            Some(("committed", index)) => {
                let index = index.parse().expect("an index");
                history.lock().unwrap().acknowledged.push((index, value));
            }
            Some(("redirect", to)) => {
                target = to.parse().expect("an address");
                connection = None;
            }
            _ => {
                rotation += 1;
                target = addresses[rotation % addresses.len()];
                connection = None;
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn acknowledged_count(history: &Mutex<History>) -> usize {
    history.lock().unwrap().acknowledged.len()
}

#[test]
fn twenty_leader_kills_under_appends_lose_and_duplicate_nothing() {
    let started = Instant::now();
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    cluster.wait_for_leader(TIMEOUT);
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let addresses: Vec<SocketAddr> = cluster
        .ids()
        .iter()
        .map(|id| cluster.client_address(*id))
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (addresses, history, stop) = (addresses.clone(), history.clone(), stop.clone());
            thread::spawn(move || run_client(client, addresses, history, stop))
        })
        .collect();

    for kill in 1..=KILLS {
        let leader = cluster.wait_for_leader(TIMEOUT);
        let before = acknowledged_count(&history);
        cluster.wait_until(TIMEOUT, "appends under the new leader", || {
            (acknowledged_count(&history) >= before + ACKS_PER_LEADER_MIN).then_some(())
        });
        cluster.kill(leader);
        cluster.wait_for_leader(TIMEOUT);
        cluster.start(leader);
        eprintln!(
            "kill {kill}: node {leader}; {} values acknowledged",
            acknowledged_count(&history)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }

    let history = history.lock().unwrap();
    let last = history
        .acknowledged
        .iter()
        .map(|(index, _)| *index)
        .max()
        .unwrap();
    cluster.wait_converged(last, TIMEOUT);
    let reference = cluster.dump(1);
    for id in [2, 3] {
        assert_eq!(cluster.dump(id), reference, "node {id} differs from node 1");
    }
    check_history(&history, &reference);
    eprintln!(
        "{KILLS} leader kills, {} values acknowledged, {} sent, {} in the log, {:.1?}",
        history.acknowledged.len(),
        history.sent.len(),
        reference.len(),
        started.elapsed()
    );
}

/// Every acknowledged value at its index; no value twice; nothing unsent.
fn check_history(history: &History, log: &[(u64, String)]) {
    let mut seen = HashMap::new();
    for (index, value) in log {
        assert!(
            history.sent.contains(value),
            "{value} at {index} was never sent"
        );
        if let Some(first) = seen.insert(value.clone(), *index) {
            panic!("{value} is in the log twice, at {first} and {index}");
        }
    }
    for (index, value) in &history.acknowledged {
        assert_eq!(
            seen.get(value),
            Some(index),
            "{value} was acknowledged at {index} but the log has it at {:?}",
            seen.get(value)
        );
    }
}
