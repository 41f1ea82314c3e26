//! Replacing every machine of a running cluster, one at a time, under
//! load: nodes 1, 2 and 3 are replaced by 4, 5 and 6, each new node
//! started empty, added as a learner with the protocol's `member add`,
//! promoted once it has caught up, and the old one removed and retired.
//! Node 1 leads when its turn comes: it hands leadership to node 4 first,
//! or, in the second test, is removed while it leads, without a transfer,
//! so that the removed leader steps down by itself; later steps hand
//! leadership to a new node first when an old one leads. Clients write, compare-and-swap,
//! delete and read throughout; every change must commit, nothing
//! acknowledged may be lost, and the recorded history must be
//! linearizable.

mod common;

use common::{client_config, operations_done, Cluster, Session, PATIENCE};
use skiff_core::TransferError;
use skiff_fs::linearizability::{check_file_history, Budget, Outcome};
use skiff_fs::protocol::{
    parse_member_answer, parse_member_list, MemberAnswer, MemberList, MemberRequest, MemberRole,
    Request, Response,
};
use skiff_fs::workload::{Recorder, Workload};
use skiff_fs::{Client, ClientConfig};
use skiff_node::{LogIndex, NodeId, Role, TransferLeaderError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CLIENTS: u64 = 4;
/// Clients from this id on only read.
const READERS_FROM: u64 = 3;
/// Operations the clients complete between two steps of a replacement.
const OPERATIONS_BETWEEN: usize = 20;
/// The id of the client that reads every file once the load has stopped.
const FINAL_READER: u64 = 100;

/// Sends `request` to the leader over the protocol, following `not the
/// leader` answers, and answers the change's log index.
async fn change_members(cluster: &Cluster, request: MemberRequest) -> LogIndex {
    let mut address = cluster.address(cluster.leader().await);
    let mut wire = Vec::new();
    request.encode(&mut wire);
    for _ in 0..10 {
        let mut session = Session::open(&address).await;
        match session.ask(&wire, parse_member_answer).await {
            MemberAnswer::Changed(index) => return index,
            MemberAnswer::NotLeader { leader } => {
                // The answer names the leader's client address.
                address = match leader.and_then(|hint| hint.client) {
                    Some(client) => client.to_string(),
                    None => cluster.address(cluster.leader().await),
                };
            }
            MemberAnswer::Refused(reason) => panic!("{request:?} refused: {reason}"),
        }
    }
    panic!("{request:?}: no leader took it")
}

/// Node `id`'s `member list`.
async fn member_list(cluster: &Cluster, id: u64) -> MemberList {
    let mut session = Session::open(&cluster.address(id)).await;
    session.ask(b"member list\r\n", parse_member_list).await
}

/// Waits until node `id` has applied everything the leader had committed
/// when asked.
async fn caught_up(cluster: &Cluster, id: u64) -> LogIndex {
    let leader = cluster.leader().await;
    let target = cluster.server(leader).status().node.commit_index;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let applied = cluster.server(id).status().applied_index;
        if applied >= target {
            return applied;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {id} applied {applied} of {target}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Hands leadership to `to`, which must be a voter. A transfer may time
/// out on a loaded machine (the target did not win within an election
/// timeout); it is then asked again of whoever leads, a few times.
async fn transfer(cluster: &Cluster, to: u64) {
    for _ in 0..5 {
        let from = cluster.leader().await;
        if from == to {
            return;
        }
        let handed = cluster
            .server(from)
            .node()
            .transfer_leadership(NodeId(to))
            .await;
        match handed {
            Ok(()) => {}
            Err(TransferLeaderError::Refused(TransferError::TimedOut)) => continue,
            Err(error) => panic!("node {from} could not hand over to {to}: {error}"),
        }
    }
    assert_eq!(cluster.leader().await, to, "node {to} never took office");
}

/// What becomes of an old node that leads when its turn to go comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OldLeader {
    /// It hands leadership to its replacement first, every time.
    HandsOver,
    /// Node 1, leading, is removed without a transfer and steps down by
    /// itself; later old leaders hand over.
    RemovedWhileLeading,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_is_replaced_under_load_leaders_handing_over_first() {
    replace_every_node(OldLeader::HandsOver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_is_replaced_under_load_the_first_leader_removed_while_it_leads() {
    replace_every_node(OldLeader::RemovedWhileLeading).await;
}

/// Replaces nodes 1, 2, 3 by 4, 5, 6 under load, node 1 leading when its
/// turn comes, and checks the history and the final configuration.
async fn replace_every_node(old_leader: OldLeader) {
    let mut cluster = Cluster::start_with_spares(3, 3).await;
    let leader = cluster.leader().await;
    let files: Vec<String> = ["x", "y", "z"].iter().map(|f| f.to_string()).collect();
    let workload = Arc::new(Workload {
        files: files.clone(),
        readers_from: READERS_FROM,
        operations_per_client_max: 100_000,
    });
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    // Every client knows all six servers: those of nodes not started yet
    // hold their connections unanswered, those of retired nodes refuse.
    let all: Vec<String> = (1..=6).map(|id| cluster.address(id)).collect();
    let client = |first: u64| {
        Client::new(ClientConfig {
            request_timeout: Duration::from_secs(2),
            retry_time_max: Duration::from_secs(30),
            ..client_config(all.clone(), first)
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = client(id % 3 + 1);
            let (workload, recorder, stop) = (workload.clone(), recorder.clone(), stop.clone());
            tokio::spawn(async move { workload.run_client(id, client, recorder, stop).await })
        })
        .collect();

    let mut done = operations_done(&recorder, 0, OPERATIONS_BETWEEN).await;
    // Node 1 leads when its turn comes.
    if leader != 1 {
        transfer(&cluster, 1).await;
    }
    let mut leader_removals = 0;
    for (old, new) in [(1, 4), (2, 5), (3, 6)] {
        cluster.start_joining_node(new).await;
        let node = cluster.node_config(new);
        let add = MemberRequest::Add {
            id: NodeId(new),
            peer: node.peer_address,
            client: node.client_address,
        };
        let added = change_members(&cluster, add).await;
        let leader = cluster.leader().await;
        let list = member_list(&cluster, leader).await;
        let learner = list.member(NodeId(new)).expect("the new node is listed");
        assert_eq!(learner.role, MemberRole::Learner, "{list:?}");
        assert!(learner.behind.is_some(), "the leader knows its progress");
        let applied = caught_up(&cluster, new).await;
        assert!(applied >= added);
        done = operations_done(&recorder, done, OPERATIONS_BETWEEN).await;

        change_members(&cluster, MemberRequest::Promote(NodeId(new))).await;
        let leader = cluster.leader().await;
        let removed_while_leading = old_leader == OldLeader::RemovedWhileLeading && old == 1;
        if leader == old && !removed_while_leading {
            transfer(&cluster, new).await;
        }
        let leader = cluster.leader().await;
        let removed = change_members(&cluster, MemberRequest::Remove(NodeId(old))).await;
        if leader == old {
            leader_removals += 1;
            // The removed leader steps down once the change commits.
            let deadline = tokio::time::Instant::now() + PATIENCE;
            while cluster.server(old).status().node.role == Role::Leader {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {old} still leads"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        cluster.retire_node(old).await;
        let leader = cluster.leader().await;
        assert_ne!(leader, old);
        let list = member_list(&cluster, leader).await;
        assert!(list.member(NodeId(old)).is_none(), "{list:?}");
        eprintln!("node {old} replaced by node {new} (removed at {removed}); node {leader} leads");
        done = operations_done(&recorder, done, OPERATIONS_BETWEEN).await;
    }
    let expected_removals = usize::from(old_leader == OldLeader::RemovedWhileLeading);
    assert_eq!(leader_removals, expected_removals, "{old_leader:?}");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    // Reads of every file once the load has stopped, in the same history:
    // an acknowledged change lost would make them unlinearizable.
    let final_reads = Workload {
        files: files.clone(),
        readers_from: 0,
        operations_per_client_max: 30,
    };
    let reader = client(4);
    let never = Arc::new(AtomicBool::new(false));
    let before_final_reads = recorder.history().len();
    final_reads
        .run_client(FINAL_READER, reader, recorder.clone(), never)
        .await;

    for id in 4..=6 {
        let view = cluster.server(id).node().membership();
        let voters: Vec<NodeId> = view.voters.iter().map(|(id, _)| *id).collect();
        assert_eq!(voters, [NodeId(4), NodeId(5), NodeId(6)], "node {id}");
        assert!(view.learners.is_empty(), "node {id}: {view:?}");
    }
    let list = member_list(&cluster, cluster.leader().await).await;
    assert_eq!(list.voters(), [NodeId(4), NodeId(5), NodeId(6)]);
    assert!(!list.change_pending);

    let history = recorder.history();
    let unknown = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    let acknowledged_changes = history
        .iter()
        .filter(|op| !matches!(op.input, Request::Read { .. }))
        .filter(|op| {
            matches!(
                op.outcome,
                Outcome::Returned {
                    output: Response::Written { .. } | Response::Deleted,
                    ..
                }
            )
        })
        .count();
    for file in &files {
        let read = history[before_final_reads..].iter().any(|op| {
            matches!(&op.input, Request::Read { name } if name == file)
                && matches!(op.outcome, Outcome::Returned { .. })
        });
        assert!(read, "{file} was not read after the load");
    }
    eprintln!(
        "{old_leader:?}: {} operations ({acknowledged_changes} acknowledged changes, {unknown} with unknown \
         outcome) over 3 replacements; final voters [4, 5, 6]",
        history.len()
    );
    assert!(acknowledged_changes >= OPERATIONS_BETWEEN);
    check_file_history(&history, Budget::default()).unwrap();
}
