//! A cluster whose peers speak mutual TLS, with development certificates
//! written to disk as `skiff certs` writes them.

mod common;

use skiff_node::local::LocalCluster;
use skiff_node::tls::DevCa;
use skiff_node::{LogIndex, NodeId};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Three nodes on bound listeners, with certificates in `dir/certs`.
fn tls_cluster(dir: &Path) -> LocalCluster {
    let mut cluster = LocalCluster::bind(3, dir).unwrap();
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    let certs = dir.join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = DevCa::new().unwrap();
    let tls = ca
        .write_cluster(&certs, cluster.config.ids(), false)
        .unwrap();
    cluster.config.tls = Some(tls);
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_of_three_commits_writes_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = tls_cluster(dir.path());
    let mut nodes = Vec::new();
    for id in cluster.config.ids() {
        nodes.push(cluster.start_node(id).await.expect("node starts"));
    }
    // A leader may lose its term to a slower node's election; write until
    // one leader has taken all ten.
    let last = tokio::time::timeout(TIMEOUT, async {
        'elect: loop {
            let leader = nodes[common::first_leader(&nodes).await].handle();
            let mut last = LogIndex(0);
            for i in 0..10 {
                match leader.submit(format!("value {i}")).await {
                    Ok(index) => last = index,
                    Err(_) => continue 'elect,
                }
            }
            break last;
        }
    })
    .await
    .expect("ten writes commit");
    for node in &nodes {
        let mut committed = node.handle().subscribe(LogIndex(1)).await.unwrap();
        let mut values = Vec::new();
        tokio::time::timeout(TIMEOUT, async {
            while let Some(entry) = committed.next().await {
                if !entry.data.is_empty() {
                    values.push(String::from_utf8(entry.data.to_vec()).unwrap());
                }
                if entry.index >= last {
                    break;
                }
            }
        })
        .await
        .expect("every node commits the writes");
        assert_eq!(values.len(), 10, "node {}: {values:?}", node.handle().id());
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_missing_or_mismatched_key_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = tls_cluster(dir.path());
    let key = dir.path().join("certs/node-1.key");
    std::fs::remove_file(&key).unwrap();
    let err = cluster.start_node(NodeId(1)).await.unwrap_err();
    assert!(err.to_string().contains("node-1.key"), "{err}");
    // Node 2's key beside node 2's certificate, but named as node 1's.
    let tls = cluster.config.tls.as_mut().unwrap();
    tls.key = dir.path().join("certs/node-2.key");
    let err = cluster.start_node(NodeId(1)).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("node-1.pem") && message.contains("node-2.key"),
        "{message}"
    );
}
