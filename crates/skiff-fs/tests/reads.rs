//! Reads without log entries: served by the leader and by followers from
//! the store once it applied through a read index, with expiry decided by
//! the log's clock, and through the log when only the log may decide.

mod common;

use common::{contents, written, Cluster, Session, TestClock};
use skiff_fs::protocol::Response;
use std::time::Duration;

/// The leader and the two followers of a three-node cluster.
async fn roles(cluster: &Cluster) -> (u64, [u64; 2]) {
    let leader = cluster.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    (leader, [followers[0], followers[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_serve_reads_that_see_every_write_before_them_without_logging_them() {
    let cluster = Cluster::start(3).await;
    let (leader, followers) = roles(&cluster).await;
    let mut writer = Session::open(&cluster.address(leader)).await;
    let mut readers = [
        Session::open(&cluster.address(followers[0])).await,
        Session::open(&cluster.address(followers[1])).await,
        Session::open(&cluster.address(leader)).await,
    ];
    for round in 0..10u8 {
        let value = [b'a' + round];
        let mut request = b"write f 1\r\n".to_vec();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        let version = written(&writer.exchange(&[&request], 1).await[0]);
        // Each read begins after the write was acknowledged: each must see it.
        for reader in &mut readers {
            assert_eq!(
                reader.exchange(&[b"read f\r\n"], 1).await,
                [contents(version, &value, 0)]
            );
        }
    }
    let before = cluster.server(leader).status().node.last_index;
    for reader in &mut readers {
        for _ in 0..20 {
            let answer = reader.exchange(&[b"read f\r\nread missing\r\n"], 2).await;
            assert_eq!(answer[1], Response::FileNotFound);
        }
    }
    let after = cluster.server(leader).status().node.last_index;
    assert_eq!(before, after, "reads wrote nothing to the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_expired_by_the_servers_clock_but_not_the_logs_is_read_through_the_log() {
    let clock = TestClock::default();
    let cluster = Cluster::start_with_test_clock(3, &clock).await;
    let (leader, followers) = roles(&cluster).await;
    let mut at_leader = Session::open(&cluster.address(leader)).await;
    let mut at_follower = Session::open(&cluster.address(followers[0])).await;
    let version = written(&at_leader.exchange(&[b"write short 1 1\r\na\r\n"], 1).await[0]);
    // Live by every clock: served from the store, at the follower too.
    assert_eq!(
        at_follower.exchange(&[b"read short\r\n"], 1).await,
        [contents(version, b"a", 1)]
    );
    // Past the expiry by the servers' clock; the log's clock, the write's
    // time, says live. A follower cannot decide that: it sends the client
    // to the leader.
    clock.advance(Duration::from_millis(1000));
    assert_eq!(
        at_follower.exchange(&[b"read short\r\n"], 1).await,
        [Response::Redirect {
            leader: Some(cluster.address(leader))
        }]
    );
    // The leader reads through the log: one entry, whose time is past the
    // expiry, decides it for everyone.
    let before = cluster.server(leader).status().node.last_index;
    assert_eq!(
        at_leader.exchange(&[b"read short\r\n"], 1).await,
        [Response::FileNotFound]
    );
    let after = cluster.server(leader).status().node.last_index;
    assert_eq!(after.0, before.0 + 1, "the read went through the log");
    // From then on the log's clock says expired, and the follower, having
    // applied through its read index, says so without the leader.
    for _ in 0..3 {
        assert_eq!(
            at_follower.exchange(&[b"read short\r\n"], 1).await,
            [Response::FileNotFound]
        );
    }
    assert_eq!(cluster.server(leader).status().node.last_index, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_knows_no_leader_redirects_with_no_address() {
    let mut cluster = Cluster::start(3).await;
    let (leader, followers) = roles(&cluster).await;
    let mut session = Session::open(&cluster.address(followers[0])).await;
    assert_eq!(
        session.exchange(&[b"read f\r\n"], 1).await,
        [Response::FileNotFound]
    );
    cluster.stop_node(leader).await;
    cluster.stop_node(followers[1]).await;
    // The read waits for a leader that is gone, and fails once the node
    // gives up on it (it stands for election, alone, and cannot win).
    assert_eq!(
        session.exchange(&[b"read f\r\n"], 1).await,
        [Response::Redirect { leader: None }]
    );
    let status = cluster.server(followers[0]).status().node;
    assert_eq!(status.leader, None, "{status:?}");
}
