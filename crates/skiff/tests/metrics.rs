//! The metrics endpoint and the JSON logs of a three-node cluster of
//! `skiff node` processes, under writes and a leader kill.

mod common;

use bytes::Bytes;
use common::{skiff_binary, PATIENCE};
use skiff::process_cluster::{Ports, ProcessCluster};
use skiff::status_probe::{wait_for_leader, wait_until_answering};
use skiff_fs::client::{Client, ClientConfig};
use skiff_node::NodeId;
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes per phase.
const WRITES: usize = 20;

/// One scrape: each sample (`name{labels}`) and its value.
type Samples = HashMap<String, f64>;

/// `GET /metrics` from `address`, parsed from the text format: lines
/// `name{labels} value`, comments and `# EOF` skipped.
async fn scrape(address: SocketAddr) -> Samples {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let mut samples = Samples::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(
            samples.insert(name.to_string(), value).is_none(),
            "twice: {line}"
        );
    }
    samples
}

fn value(samples: &Samples, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
}

/// The client requests counted, over every series of the family.
fn client_requests(samples: &Samples) -> f64 {
    (samples.iter())
        .filter(|(name, _)| name.starts_with("skiff_client_requests_total{"))
        .map(|(_, value)| value)
        .sum()
}

async fn write_files(servers: &[String], prefix: &str) {
    let mut client = Client::new(ClientConfig::new(servers.to_vec()));
    for i in 0..WRITES {
        let name = format!("{prefix}-{i}");
        client
            .write(&name, Bytes::from_static(b"contents"), 0)
            .await
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

/// The JSON lines of node `id`'s log that carry `event`.
fn events(cluster: &ProcessCluster, id: NodeId, event: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(cluster.log_path(id)).unwrap();
    text.lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .filter(|line| line["event"] == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_under_writes_and_a_leader_kill_and_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster =
        ProcessCluster::create_local(skiff_binary(), dir.path(), 3, Ports::Free).unwrap();
    cluster.serve_metrics().unwrap();
    cluster.add_node_args(["--log-format", "json"]);
    cluster.start_all().unwrap();
    let servers = cluster.client_addresses();
    for address in &servers {
        wait_until_answering(address, PATIENCE).await.unwrap();
    }
    let leader = NodeId(wait_for_leader(&servers, PATIENCE).await.unwrap().id.0);
    let survivor = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let leader_metrics = cluster.metrics_address(leader).unwrap();
    let survivor_metrics = cluster.metrics_address(survivor).unwrap();

    let before = scrape(leader_metrics).await;
    assert_eq!(value(&before, "skiff_node_role{role=\"leader\"}"), 1.0);
    write_files(&servers, "first").await;
    let after = scrape(leader_metrics).await;
    let commit = "skiff_commit_index";
    assert!(value(&after, commit) >= value(&before, commit) + WRITES as f64);
    let fsyncs = "skiff_fsync_duration_seconds_count";
    assert!(value(&after, fsyncs) > value(&before, fsyncs));
    assert!(value(&after, "skiff_group_commit_entries_count") > 0.0);
    let writes_ok = "skiff_client_requests_total{command=\"write\",outcome=\"ok\"}";
    assert!(value(&after, writes_ok) >= value(&before, writes_ok) + WRITES as f64);
    assert!(client_requests(&after) > client_requests(&before));
    let sent = "skiff_messages_sent_total{kind=\"append_entries_req\"}";
    assert!(value(&after, sent) > value(&before, sent));
    assert!(value(&after, "skiff_peer_connections_open") >= 1.0);
    assert!(after.contains_key(&format!(
        "skiff_follower_match_lag_entries{{peer=\"{survivor}\"}}"
    )));

    let survivor_before = scrape(survivor_metrics).await;
    cluster.kill(leader).unwrap();
    let successor = wait_for_leader(&servers, PATIENCE).await.unwrap();
    assert_ne!(successor.id, leader);
    write_files(&servers, "second").await;
    let survivor_after = scrape(survivor_metrics).await;
    let changes = "skiff_leader_changes_total";
    assert!(value(&survivor_after, changes) >= value(&survivor_before, changes) + 1.0);
    assert!(value(&survivor_after, commit) >= value(&after, commit) + WRITES as f64);
    assert!(value(&survivor_after, fsyncs) > value(&survivor_before, fsyncs));
    let messages = "skiff_messages_received_total{kind=\"vote_req\"}";
    let votes = value(&survivor_after, messages)
        + value(
            &survivor_after,
            "skiff_messages_received_total{kind=\"vote_resp\"}",
        );
    assert!(votes > 0.0, "an election took place");

    // The survivor logged the change as JSON, with its reason; it was
    // logged before the status showed the new leader.
    let changed = events(&cluster, survivor, "leader_changed");
    let last = changed.last().expect("a leader_changed line");
    assert_eq!(last["leader"], successor.id.0.to_string(), "{last}");
    assert_eq!(last["previous"], leader.0.to_string(), "{last}");
    let reason = last["reason"].as_str().unwrap();
    assert!(
        ["election_timeout", "higher_term"].contains(&reason),
        "{last}"
    );
    assert_eq!(last["level"], "WARN", "{last}");
}
