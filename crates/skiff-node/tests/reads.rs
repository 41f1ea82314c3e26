//! Linearizable reads through `NodeHandle::read_barrier`: ReadIndex at the
//! leader, follower reads, lease reads, and a leader cut off from its
//! majority, which must never prove a read.

use skiff_node::local::LocalCluster;
use skiff_node::{LogIndex, Node, NodeHandle, NodeId, Role, SubmitError};
use std::path::Path;
use std::time::Duration;

/// The longest any step may take before the test fails: a bound for
/// failures, never a wait the test relies on.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Three nodes on listeners bound here, with short timeouts, configured by
/// `configure`, all started.
async fn start_cluster(
    dir: &Path,
    configure: impl FnOnce(&mut skiff_node::ClusterConfig),
) -> (LocalCluster, Vec<Node>) {
    let mut cluster = LocalCluster::bind(3, dir).unwrap();
    cluster.config.cluster_id = 15;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    configure(&mut cluster.config);
    let mut nodes = Vec::new();
    for id in cluster.config.ids() {
        nodes.push(cluster.start_node(id).await.expect("node starts"));
    }
    (cluster, nodes)
}

/// Waits, on status changes, until one node leads and every other knows
/// it; returns the leader's position.
async fn leader(nodes: &[Node]) -> usize {
    let mut watches: Vec<_> = nodes.iter().map(|n| n.handle().watch_status()).collect();
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let statuses: Vec<_> = watches.iter().map(|w| *w.borrow()).collect();
            if let Some(position) = statuses.iter().position(|s| s.role == Role::Leader) {
                let leader = statuses[position].id;
                if statuses.iter().all(|s| s.leader == Some(leader)) {
                    return position;
                }
            }
            let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
            let _ = futures_select_first(changes).await;
        }
    })
    .await
    .expect("a leader is elected and known")
}

/// Resolves when the first of `futures` does.
async fn futures_select_first<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for future in &mut futures {
            if std::pin::Pin::new(&mut *future).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The non-empty data `handle` committed through `through`, in order.
async fn committed(handle: &NodeHandle, through: LogIndex) -> Vec<String> {
    let mut subscription = handle.subscribe(LogIndex(1)).await.unwrap();
    let mut values = Vec::new();
    tokio::time::timeout(TIMEOUT, async {
        while let Some(entry) = subscription.next().await {
            if !entry.data.is_empty() {
                values.push(String::from_utf8(entry.data.to_vec()).unwrap());
            }
            if entry.index >= through {
                break;
            }
        }
    })
    .await
    .expect("the entries arrive");
    values
}

async fn read(handle: &NodeHandle) -> Result<LogIndex, SubmitError> {
    tokio::time::timeout(TIMEOUT, handle.read_barrier())
        .await
        .expect("the read is answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_at_the_leader_and_at_a_follower_cover_a_just_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, nodes) = start_cluster(dir.path(), |_| {}).await;
    let position = leader(&nodes).await;
    let leader = nodes[position].handle();
    let follower = nodes[(position + 1) % 3].handle();

    let mut last = LogIndex(0);
    for round in 0..20 {
        let written = leader.submit(format!("value-{round}")).await.unwrap();
        let at_leader = read(&leader).await.unwrap();
        assert!(
            at_leader >= written,
            "the leader's read index {at_leader} covers the write committed at {written}"
        );
        let at_follower = read(&follower).await.unwrap();
        assert!(
            at_follower >= written,
            "the follower's read index {at_follower} covers the write committed at {written}"
        );
        last = written;
    }
    // The follower reaches the index it was given, and its state then holds
    // the last write.
    let values = committed(&follower, last).await;
    assert_eq!(values.last().map(String::as_str), Some("value-19"));
    // No read wrote to the log: the writes are all it holds after the no-op.
    let status = leader.status();
    assert_eq!(status.last_index, last, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_reads_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, nodes) = start_cluster(dir.path(), |_| {}).await;
    let position = leader(&nodes).await;
    let written = nodes[position].handle().submit("x").await.unwrap();
    let mut reads = tokio::task::JoinSet::new();
    for n in 0..300 {
        let handle = nodes[n % 3].handle();
        reads.spawn(async move { read(&handle).await });
    }
    while let Some(outcome) = reads.join_next().await {
        let index = outcome.unwrap().unwrap();
        assert!(index >= written, "{index} covers {written}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_without_follower_reads_refuses_naming_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, nodes) = start_cluster(dir.path(), |config| {
        config.reads.follower_reads = false;
        config.reads.lease = true;
    })
    .await;
    let position = leader(&nodes).await;
    let leader = nodes[position].handle();
    let follower = nodes[(position + 1) % 3].handle();
    let written = leader.submit("x").await.unwrap();
    // With the lease on, the leader still answers, from a round or its lease.
    for _ in 0..10 {
        assert!(read(&leader).await.unwrap() >= written);
    }
    assert_eq!(
        read(&follower).await,
        Err(SubmitError::NotLeader {
            leader: Some(leader.id())
        })
    );
}

/// Stops every node but the leader, whose read then cannot be confirmed.
async fn cut_off_leader(nodes: Vec<Node>) -> (NodeHandle, Node, LogIndex) {
    let position = leader(&nodes).await;
    let handle = nodes[position].handle();
    let written = handle.submit("before the cut").await.unwrap();
    assert!(read(&handle).await.unwrap() >= written);
    let mut kept = None;
    for (n, node) in nodes.into_iter().enumerate() {
        if n == position {
            kept = Some(node);
        } else {
            node.shutdown().await.unwrap();
        }
    }
    (handle, kept.unwrap(), written)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_majority_fails_its_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, nodes) = start_cluster(dir.path(), |_| {}).await;
    let (handle, _node, _) = cut_off_leader(nodes).await;
    // CheckQuorum steps the leader down within an election timeout or two,
    // and the read held for a round that can never be confirmed fails then.
    match read(&handle).await {
        Err(SubmitError::NotLeader { leader }) => {
            assert_ne!(leader, Some(handle.id()), "it no longer leads");
        }
        other => panic!("a cut-off leader answered a read: {other:?}"),
    }
    // The status the turn publishes after answering says so too.
    let mut status = handle.watch_status();
    tokio::time::timeout(TIMEOUT, status.wait_for(|s| s.role != Role::Leader))
        .await
        .expect("the status shows the step-down")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_check_quorum_a_cut_off_leader_answers_no_read_within_its_callers_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, nodes) = start_cluster(dir.path(), |config| config.check_quorum = false).await;
    let (handle, _node, _) = cut_off_leader(nodes).await;
    // The leader keeps leading (nothing tells it otherwise), but no round
    // it begins is confirmed: its reads wait until their callers give up.
    let bound = Duration::from_millis(1500);
    let outcome = tokio::time::timeout(bound, handle.read_barrier()).await;
    assert!(
        outcome.is_err(),
        "a cut-off leader answered a read: {outcome:?}"
    );
    assert_eq!(handle.status().role, Role::Leader);
    assert_eq!(handle.status().leader, Some(NodeId(handle.id().0)));
}
