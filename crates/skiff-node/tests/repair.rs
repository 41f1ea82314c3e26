//! A follower whose data directory was damaged while it was down starts,
//! repairs from the other nodes without ever voting meanwhile, and loses
//! nothing the cluster committed, even when the leader goes down next.

use skiff_node::local::LocalCluster;
use skiff_node::{CommittedEntry, LogIndex, Node, NodeHandle, NodeId, Role, Status, Term};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Small, so that the log spans several segments.
const SEGMENT_BYTES: u64 = 4096;
/// Bytes of a segment's header and its two 32-byte sync slots: its first
/// record starts here.
const RECORDS_START: usize = 48 + 2 * 32;
const ENTRIES: usize = 150;

fn cluster(dir: &Path) -> LocalCluster {
    let mut cluster = LocalCluster::bind(3, dir).unwrap();
    cluster.config.cluster_id = 5;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    cluster.config.segment_bytes_max = SEGMENT_BYTES;
    // Without PreVote, each failed election raises the term, which is how
    // these tests count them; a repairing node refuses pre-votes as it
    // refuses votes (the core's tests and the simulator cover that).
    cluster.config.pre_vote = false;
    cluster
}

/// Waits, on status changes rather than on a clock, until `done` holds for
/// the statuses of `handles` (in their order); panics after [`TIMEOUT`].
async fn wait_for(
    handles: &[NodeHandle],
    what: &str,
    mut done: impl FnMut(&[Status]) -> bool,
) -> Vec<Status> {
    let (changed, mut changes) = mpsc::unbounded_channel();
    for handle in handles {
        let mut watch = handle.watch_status();
        let changed = changed.clone();
        tokio::spawn(
            async move { while watch.changed().await.is_ok() && changed.send(()).is_ok() {} },
        );
    }
    let statuses = || handles.iter().map(NodeHandle::status).collect::<Vec<_>>();
    let waited = tokio::time::timeout(TIMEOUT, async {
        loop {
            let now = statuses();
            if done(&now) {
                return now;
            }
            changes.recv().await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", statuses()))
}

/// Waits until one of `handles` leads and the others follow it.
async fn leader(handles: &[NodeHandle]) -> NodeId {
    let statuses = wait_for(handles, "a leader", |statuses| {
        statuses.iter().any(|s| {
            s.role == Role::Leader
                && statuses
                    .iter()
                    .all(|o| o.leader == Some(s.id) && o.term == s.term)
        })
    })
    .await;
    statuses
        .iter()
        .find(|s| s.role == Role::Leader)
        .expect("found above")
        .id
}

/// The committed log at `handle` through `through`, every entry with its
/// index, term and data.
async fn committed_log(handle: &NodeHandle, through: LogIndex) -> Vec<CommittedEntry> {
    let mut subscription = handle.subscribe(LogIndex(1)).await.unwrap();
    let mut log = Vec::new();
    tokio::time::timeout(TIMEOUT, async {
        while log
            .last()
            .is_none_or(|e: &CommittedEntry| e.index < through)
        {
            log.push(subscription.next().await.expect("the node runs"));
        }
    })
    .await
    .expect("committed entries arrive");
    log
}

fn assert_holds(log: &[CommittedEntry], written: &[(LogIndex, String)], node: NodeId) {
    for (index, value) in written {
        let entry = log.iter().find(|e| e.index == *index);
        assert_eq!(
            entry.map(|e| e.data.as_ref()),
            Some(value.as_bytes()),
            "node {node} lost committed entry {index}"
        );
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    skiff_node::storage::segment_files(dir).unwrap()
}

/// Flips a bit inside the first record of the first segment, long before
/// the last sync record: damage, not a torn tail. Returns the file and its
/// damaged bytes.
fn flip_a_synced_bit(dir: &Path) -> (PathBuf, Option<Vec<u8>>) {
    let first = segments(dir).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    bytes[RECORDS_START + 20] ^= 0x10;
    fs::write(&first, &bytes).unwrap();
    (first, Some(bytes))
}

/// Deletes the last segment, which a plain log would not even notice.
fn delete_the_last_segment(dir: &Path) -> (PathBuf, Option<Vec<u8>>) {
    let last = segments(dir).pop().unwrap();
    fs::remove_file(&last).unwrap();
    (last, None)
}

async fn a_damaged_follower_repairs(damage: fn(&Path) -> (PathBuf, Option<Vec<u8>>)) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    let mut nodes = BTreeMap::new();
    for id in cluster.config.ids() {
        nodes.insert(id, cluster.start_node(id).await.expect("node starts"));
    }
    let handles = |nodes: &BTreeMap<NodeId, Node>| -> Vec<NodeHandle> {
        nodes.values().map(Node::handle).collect()
    };
    let first_leader = leader(&handles(&nodes)).await;
    let mut written = Vec::new();
    for n in 0..ENTRIES {
        let value = format!("v{n}-{}", "x".repeat(n % 7 * 10));
        let index = nodes[&first_leader].handle().submit(value.clone()).await;
        written.push((index.expect("committed"), value));
    }
    let last = written.last().unwrap().0;
    let ids: Vec<NodeId> = cluster.config.ids().collect();
    let damaged = *ids.iter().find(|id| **id != first_leader).unwrap();
    let other = *ids
        .iter()
        .find(|id| ![first_leader, damaged].contains(id))
        .unwrap();
    // The follower acknowledged every entry before it goes down.
    let damaged_handle = nodes[&damaged].handle();
    wait_for(&[damaged_handle], "the follower to hold the log", |s| {
        s[0].last_index >= last
    })
    .await;
    nodes.remove(&damaged).unwrap().shutdown().await.unwrap();
    let data_dir = cluster.config.node(damaged).unwrap().data_dir.clone();
    assert!(segments(&data_dir).len() >= 3, "{:?}", segments(&data_dir));
    let (file, damaged_bytes) = damage(&data_dir);

    // The leader goes down too: the two nodes left can only elect a leader
    // with the damaged node's vote.
    nodes
        .remove(&first_leader)
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let node = cluster
        .start_node(damaged)
        .await
        .expect("a damaged node starts");
    let damaged_handle = node.handle();
    nodes.insert(damaged, node);
    let status = damaged_handle.status();
    assert!(status.repairing, "{status:?}");
    assert!(
        status.last_index < last,
        "the damage cost entries: {status:?}"
    );
    let kept = data_dir.join("damaged-1").join(file.file_name().unwrap());
    match damaged_bytes {
        Some(bytes) => assert_eq!(fs::read(&kept).unwrap(), bytes, "kept as found"),
        None => assert!(!kept.exists() && data_dir.join("damaged-1/manifest").exists()),
    }

    let other_handle = nodes[&other].handle();
    let from_term = other_handle.status().term;
    let pair = [other_handle.clone(), damaged_handle.clone()];
    wait_for(&pair, "several failed elections", |statuses| {
        for s in statuses {
            assert_ne!(
                s.role,
                Role::Leader,
                "elected with a repairing voter: {s:?}"
            );
            assert!(s.id != damaged || s.repairing, "repaired without a leader");
        }
        statuses[0].term >= Term(from_term.0 + 4)
    })
    .await;
    assert_eq!(damaged_handle.status().role, Role::Follower);

    // With the old leader back, a leader elected after the damage repairs
    // the node.
    let restarted = cluster.start_node(first_leader).await.unwrap();
    nodes.insert(first_leader, restarted);
    wait_for(
        std::slice::from_ref(&damaged_handle),
        "the repair to end",
        |s| !s[0].repairing,
    )
    .await;
    let second_leader = leader(&handles(&nodes)).await;
    let leader_handle = nodes[&second_leader].handle();
    let through = leader_handle.status().commit_index;
    assert!(through >= last);
    let leader_log = committed_log(&leader_handle, through).await;
    let repaired_log = committed_log(&damaged_handle, through).await;
    assert_eq!(
        repaired_log, leader_log,
        "the repaired log equals the leader's"
    );
    assert_holds(&repaired_log, &written, damaged);

    // The repaired node now counts: the leader goes down, and the next one
    // still holds every committed entry.
    nodes
        .remove(&second_leader)
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let third_leader = leader(&handles(&nodes)).await;
    assert_ne!(third_leader, second_leader);
    let index = nodes[&third_leader].handle().submit("after").await.unwrap();
    let log = committed_log(&nodes[&third_leader].handle(), index).await;
    assert_holds(&log, &written, third_leader);

    for (_, node) in nodes {
        node.shutdown().await.unwrap();
    }
    let report = skiff_node::storage::check(&data_dir).unwrap().to_string();
    assert!(report.contains("repair flag: not set"), "{report}");
    assert!(report.contains("start normally"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_flipped_bit_repairs_without_voting_and_loses_nothing() {
    a_damaged_follower_repairs(flip_a_synced_bit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_missing_its_last_segment_repairs_without_voting_and_loses_nothing() {
    a_damaged_follower_repairs(delete_the_last_segment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_single_node_refuses_to_start_and_leaves_its_directory_as_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::bind(1, dir.path()).unwrap();
    cluster.config.segment_bytes_max = SEGMENT_BYTES;
    let node = cluster.start_node(NodeId(1)).await.unwrap();
    let handle = node.handle();
    wait_for(
        std::slice::from_ref(&handle),
        "the single node to lead",
        |s| s[0].role == Role::Leader,
    )
    .await;
    for n in 0..ENTRIES {
        handle.submit(format!("v{n}")).await.unwrap();
    }
    node.shutdown().await.unwrap();
    let data_dir = cluster.config.node(NodeId(1)).unwrap().data_dir.clone();
    let (file, _) = flip_a_synced_bit(&data_dir);
    let before = fs::read_dir(&data_dir).unwrap().count();

    let refused = cluster.start_node(NodeId(1)).await.unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("single-node cluster cannot") && text.contains(&file.display().to_string()),
        "{text}"
    );
    assert_eq!(
        fs::read_dir(&data_dir).unwrap().count(),
        before,
        "nothing moved"
    );
    assert!(!data_dir.join("damaged-1").exists());
}

/// Asks `leader` for `change` until it is taken (a leader not ready yet
/// refuses with `LeaderNotReady`), and returns the change's index.
async fn change_membership(
    leader: &NodeHandle,
    change: skiff_node::MembershipChange,
    addresses: Option<skiff_node::MemberAddresses>,
) -> LogIndex {
    use skiff_node::{ChangeMembershipError, MembershipError};
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match leader.change_membership(change, addresses).await {
                Ok(index) => return index,
                Err(ChangeMembershipError::Refused(MembershipError::LeaderNotReady)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await // its no-op commits
                }
                Err(other) => panic!("{change} failed: {other}"),
            }
        }
    })
    .await
    .expect("the change commits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_that_lost_the_latest_configuration_starts_repairing_and_regains_it() {
    use skiff_node::{MemberAddresses, MembershipChange};
    let dir = tempfile::tempdir().unwrap();
    // Nodes 1 to 3; node 4 added as a learner and promoted; node 5 added
    // as a learner last.
    let mut cluster = LocalCluster::bind(5, dir.path()).unwrap();
    cluster.config.cluster_id = 6;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    cluster.config.segment_bytes_max = SEGMENT_BYTES;
    cluster.config.nodes[3].learner = true;
    cluster.config.nodes[4].learner = true;
    let mut nodes = BTreeMap::new();
    for id in cluster.config.ids() {
        nodes.insert(id, cluster.start_node(id).await.expect("node starts"));
    }
    let voters: Vec<NodeHandle> = (1..=3).map(|id| nodes[&NodeId(id)].handle()).collect();
    let leader_id = leader(&voters).await;
    let leader_handle = nodes[&leader_id].handle();
    let addresses = |id: NodeId| {
        let node = cluster.config.node(id).unwrap();
        Some(MemberAddresses {
            peer: node.peer_address,
            client: node.client_address,
        })
    };
    let learner = MembershipChange::AddLearner(NodeId(4));
    change_membership(&leader_handle, learner, addresses(NodeId(4))).await;
    let four = nodes[&NodeId(4)].handle();
    let before = leader_handle.status().commit_index;
    wait_for(std::slice::from_ref(&four), "node 4 to catch up", |s| {
        s[0].commit_index >= before
    })
    .await;
    change_membership(&leader_handle, MembershipChange::Promote(NodeId(4)), None).await;
    // More than a segment's worth after the promotion, so that the last
    // change's entry, written last, lies in a later segment.
    for n in 0..ENTRIES {
        leader_handle.submit(format!("v{n}")).await.unwrap();
    }
    let last = MembershipChange::AddLearner(NodeId(5));
    let added = change_membership(&leader_handle, last, addresses(NodeId(5))).await;
    let damaged = [NodeId(1), NodeId(2), NodeId(3)]
        .into_iter()
        .find(|id| *id != leader_id)
        .unwrap();
    let damaged_handle = nodes[&damaged].handle();
    wait_for(
        &[damaged_handle],
        "the follower to hold the last change",
        |s| s[0].commit_index >= added,
    )
    .await;
    nodes.remove(&damaged).unwrap().shutdown().await.unwrap();
    // Its last segment, which holds the last change, is lost; cluster.toml
    // says what the operator recorded: node 4 a voter, node 5 a learner.
    // The intact log's configurations (the promotion's, and the one before)
    // disagree: a warning, not a refusal.
    let data_dir = cluster.config.node(damaged).unwrap().data_dir.clone();
    delete_the_last_segment(&data_dir);
    cluster.config.nodes[3].learner = false;
    let back = cluster.start_node(damaged).await.expect("starts repairing");
    let handle = back.handle();
    assert!(handle.status().repairing, "{:?}", handle.status());
    let ids = |members: &[(NodeId, MemberAddresses)]| -> Vec<NodeId> {
        members.iter().map(|(id, _)| *id).collect()
    };
    let view = handle.membership();
    assert!(
        view.learners.is_empty(),
        "the intact log lacks node 5: {view:?}"
    );
    // The leader repairs it, configuration included.
    wait_for(std::slice::from_ref(&handle), "the repair", |s| {
        !s[0].repairing && s[0].commit_index >= added
    })
    .await;
    let view = handle.membership();
    assert_eq!(
        ids(&view.voters),
        [NodeId(1), NodeId(2), NodeId(3), NodeId(4)]
    );
    assert_eq!(ids(&view.learners), [NodeId(5)]);
    back.shutdown().await.unwrap();
    for (_, node) in nodes {
        node.shutdown().await.unwrap();
    }
}
