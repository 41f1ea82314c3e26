//! Leadership transfer under load: clients write, compare-and-swap, delete
//! and read while leadership is handed from node to node, round the
//! cluster, several times. Every transfer must succeed, the writes refused
//! while one runs must reach the new leader instead of failing, and the
//! recorded history must be linearizable: no acknowledged write lost, no
//! read of a state that never was.

mod common;

use common::{operations_done, Cluster};
use skiff_fs::linearizability::{check_file_history, Budget, Outcome};
use skiff_fs::protocol::{parse_transfer_answer, Parsed, TransferAnswer};
use skiff_fs::workload::{Recorder, Workload};
use skiff_node::NodeId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: u64 = 4;
/// Clients from this id on only read.
const READERS_FROM: u64 = 3;
const TRANSFERS: usize = 6;
/// Operations the clients complete between two transfers.
const OPERATIONS_BETWEEN: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_round_the_cluster_under_load_and_nothing_acknowledged_is_lost() {
    let cluster = Cluster::start(3).await;
    let mut leader = cluster.leader().await;
    let workload = Arc::new(Workload {
        files: ["x", "y", "z"].iter().map(|f| f.to_string()).collect(),
        readers_from: READERS_FROM,
        operations_per_client_max: 5_000,
    });
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = cluster.client_starting_at(id % 3 + 1);
            let (workload, recorder, stop) = (workload.clone(), recorder.clone(), stop.clone());
            tokio::spawn(async move { workload.run_client(id, client, recorder, stop).await })
        })
        .collect();

    let mut done = operations_done(&recorder, 0, OPERATIONS_BETWEEN).await;
    let mut took = Vec::new();
    for _ in 0..TRANSFERS {
        let to = leader % 3 + 1;
        let started = Instant::now();
        let handed = cluster
            .server(leader)
            .node()
            .transfer_leadership(NodeId(to))
            .await;
        assert_eq!(
            handed,
            Ok(()),
            "node {leader} could not hand over to node {to}"
        );
        let now = cluster.leader().await;
        took.push(started.elapsed());
        assert_eq!(now, to, "node {to} was told to stand, but node {now} leads");
        leader = now;
        done = operations_done(&recorder, done, OPERATIONS_BETWEEN).await;
    }
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
        "{} operations ({unknown} with unknown outcome) over {TRANSFERS} transfers, each agreed \
         in {took:?}",
        history.len()
    );
    assert!(history.len() - unknown >= OPERATIONS_BETWEEN * (TRANSFERS + 1));
    check_file_history(&history, Budget::default()).unwrap();
}

#[tokio::test]
async fn the_transfer_command_answers_at_the_leader_and_refuses_elsewhere() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = leader % 3 + 1;
    let ask = |id: u64, line: String| {
        let address = cluster.address(id);
        async move {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream.write_all(line.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            loop {
                let mut chunk = [0u8; 256];
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "the server closed the connection");
                answer.extend_from_slice(&chunk[..read]);
                if let Parsed::Complete { value, .. } = parse_transfer_answer(&answer).unwrap() {
                    return value;
                }
            }
        }
    };
    // A follower refuses, naming the leader.
    let refused = ask(follower, format!("transfer {leader}\r\n")).await;
    let TransferAnswer::Refused(reason) = refused else {
        panic!("a follower handed over: {refused:?}");
    };
    assert!(
        reason.contains(&format!("the leader is node {leader}")),
        "{reason}"
    );
    // The leader refuses a stranger, then hands over.
    let unknown = ask(leader, "transfer 9\r\n".to_string()).await;
    assert!(
        matches!(unknown, TransferAnswer::Refused(ref r) if r.contains("not a voter")),
        "{unknown:?}"
    );
    let moved = ask(leader, format!("transfer {follower}\r\n")).await;
    assert_eq!(moved, TransferAnswer::Transferred(NodeId(follower)));
    assert_eq!(cluster.leader().await, follower);
}
