//! The library API in one process: nodes started with `Node::start`,
//! driven through `NodeHandle`.

use skiff_node::local::LocalCluster;
use skiff_node::{LogIndex, Node, NodeHandle, NodeId, Role, SubmitError, ENTRY_BYTES_MAX};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// `count` nodes on listeners bound here, with short timeouts.
fn cluster(count: u64, dir: &Path) -> LocalCluster {
    let mut cluster = LocalCluster::bind(count, dir).unwrap();
    cluster.config.cluster_id = 3;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    cluster.config.segment_bytes_max = 1 << 20;
    cluster
}

async fn start_all(cluster: &LocalCluster) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in cluster.config.ids() {
        nodes.push(cluster.start_node(id).await.expect("node starts"));
    }
    nodes
}

/// Waits until one node leads and the others know it; returns its position.
async fn leader(nodes: &[Node]) -> usize {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let statuses: Vec<_> = nodes.iter().map(|n| n.handle().status()).collect();
            if let Some(position) = statuses.iter().position(|s| s.role == Role::Leader) {
                let leader = statuses[position].id;
                if statuses.iter().all(|s| s.leader == Some(leader)) {
                    return position;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a leader is elected")
}

/// The non-empty data committed at `handle`, through index `through`.
async fn committed(handle: &NodeHandle, through: LogIndex) -> Vec<(LogIndex, String)> {
    let mut subscription = handle.subscribe(LogIndex(1)).await.unwrap();
    let mut values = Vec::new();
    tokio::time::timeout(TIMEOUT, async {
        while let Some(entry) = subscription.next().await {
            if !entry.data.is_empty() {
                values.push((entry.index, String::from_utf8(entry.data.to_vec()).unwrap()));
            }
            if entry.index >= through {
                break;
            }
        }
    })
    .await
    .expect("entries arrive");
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_subscribe_status_read_barrier_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(3, dir.path());
    let nodes = start_all(&cluster).await;
    let position = leader(&nodes).await;
    let leader_handle = nodes[position].handle();
    let follower = nodes[(position + 1) % 3].handle();

    let refused = follower.submit("x").await;
    assert_eq!(
        refused,
        Err(SubmitError::NotLeader {
            leader: Some(leader_handle.id())
        })
    );
    assert_eq!(leader_handle.submit("").await, Err(SubmitError::Empty));
    let big = vec![0u8; ENTRY_BYTES_MAX + 1];
    assert_eq!(
        leader_handle.submit(big).await,
        Err(SubmitError::TooLarge {
            length: ENTRY_BYTES_MAX + 1
        })
    );

    let mut expected = Vec::new();
    for n in 0..10 {
        let value = format!("value-{n}");
        expected.push((leader_handle.submit(value.clone()).await.unwrap(), value));
    }
    let last = expected.last().unwrap().0;
    let barrier = leader_handle.read_barrier().await.unwrap();
    assert!(
        barrier >= last,
        "a barrier {barrier} covers the writes before it ({last})"
    );
    // A follower asks the leader for the index: the same proof, no entry.
    let at_follower = follower.read_barrier().await.unwrap();
    assert!(at_follower >= last, "{at_follower} covers {last}");
    assert_eq!(
        leader_handle.status().last_index,
        last,
        "barriers log nothing"
    );
    for node in &nodes {
        assert_eq!(committed(&node.handle(), last).await, expected);
    }
    let status = leader_handle.status();
    assert!(status.commit_index >= last && status.last_index >= status.commit_index);

    // Shutting down releases the data directory; a restart recovers the log.
    let mut nodes = nodes;
    let stopped = nodes.remove(position);
    let stopped_id = stopped.handle().id();
    stopped.shutdown().await.unwrap();
    assert_eq!(
        leader_handle.submit("late").await,
        Err(SubmitError::Stopped)
    );
    // On the same listener: its port was never free for others to take.
    let restarted = cluster.start_node(stopped_id).await.unwrap();
    assert!(restarted.handle().status().last_index >= last);
    nodes.push(restarted);
    let position = leader(&nodes).await;
    let index = nodes[position]
        .handle()
        .submit("after restart")
        .await
        .unwrap();
    for node in &nodes {
        let values = committed(&node.handle(), index).await;
        assert_eq!(values.last(), Some(&(index, "after restart".to_string())));
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(1, dir.path());
    let node = cluster.start_node(NodeId(1)).await.unwrap();
    let second = cluster.start_node(NodeId(1)).await;
    let err = second.expect_err("the directory is locked").to_string();
    assert!(err.contains("in use by another process"), "{err}");
    // A single node elects itself and commits alone.
    let handle = node.handle();
    let index = tokio::time::timeout(TIMEOUT, async {
        loop {
            match handle.submit("solo").await {
                Ok(index) => return index,
                Err(SubmitError::NotLeader { .. }) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        committed(&handle, index).await,
        vec![(index, "solo".to_string())]
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_on_the_node_runtime_submit_and_outlive_the_event_loop() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(1, dir.path());
    let nodes = start_all(&cluster).await;
    leader(&nodes).await;
    let node = nodes.into_iter().next().unwrap();
    let handle = node.handle();
    let runtime = handle.runtime().clone();

    // A submission from the node's own thread commits like any other.
    let submitter = handle.clone();
    let submitted = runtime.spawn(async move { submitter.submit("from inside").await });
    let index = tokio::time::timeout(TIMEOUT, submitted)
        .await
        .expect("the task finishes")
        .expect("the task does not panic")
        .expect("the entry commits");
    assert_eq!(
        committed(&handle, index).await.last(),
        Some(&(index, "from inside".to_string()))
    );

    // A task still running when the node stops gets to finish its work.
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let (answer, answered) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        let _ = wait.await;
        let _ = answer.send("finished after the node stopped");
    });
    node.shutdown().await.unwrap();
    go.send(()).unwrap();
    let answer = tokio::time::timeout(TIMEOUT, answered).await.unwrap();
    assert_eq!(answer, Ok("finished after the node stopped"));
}
