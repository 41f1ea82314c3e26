//! Snapshots of the store end to end: a server asked for one (`snapshot`)
//! reports it in `status`, and a whole cluster restarted after it finds
//! every file, with the same versions and the same expiry instants.

mod common;

use common::{check_files, write_files, Cluster, Session, TestClock};
use skiff_fs::protocol::{
    parse_snapshot_answer, parse_status_report, LogExtent, Response, SnapshotAnswer,
};
use skiff_fs::ClientError;
use skiff_node::LogIndex;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restarted_after_a_snapshot_finds_its_files_and_expires_them_on_time() {
    let clock = TestClock::default();
    let mut cluster = Cluster::start_with_test_clock(3, &clock).await;
    let leader = cluster.leader().await;
    let mut client = cluster.client();
    let written = write_files(&mut client, 20).await;
    client.write("short-lived", "x", 100).await.unwrap();
    let last_version = client.write("last", "y", 0).await.unwrap();

    let mut session = Session::open(&cluster.address(leader)).await;
    let snapshot = match session.ask(b"snapshot\r\n", parse_snapshot_answer).await {
        SnapshotAnswer::Taken(snapshot) => snapshot,
        refused => panic!("node {leader}: {refused:?}"),
    };
    // The leader applied every acknowledged write before answering it.
    assert!(snapshot.index.0 >= last_version.0, "{snapshot:?}");
    let status = session.ask(b"status\r\n", parse_status_report).await;
    assert_eq!(
        status.log,
        Some(LogExtent {
            snapshot_index: snapshot.index,
            entries: status.last_index.0 - snapshot.index.0,
        })
    );
    // Nothing applied since: nothing to take.
    let again = session.ask(b"snapshot\r\n", parse_snapshot_answer).await;
    assert!(
        matches!(&again, SnapshotAnswer::Refused(reason) if reason.contains("nothing")),
        "{again:?}"
    );
    // The followers take theirs too, so that every node restores one.
    for id in (1..=3).filter(|&id| id != leader) {
        let mut session = Session::open(&cluster.address(id)).await;
        let answer = session.ask(b"snapshot\r\n", parse_snapshot_answer).await;
        assert!(
            matches!(answer, SnapshotAnswer::Taken(_)),
            "node {id}: {answer:?}"
        );
    }

    for id in 1..=3 {
        cluster.stop_node(id).await;
    }
    for id in 1..=3 {
        cluster.start_node(id).await;
    }
    let leader = cluster.leader().await;
    let restarted = cluster.server(leader).status();
    assert!(
        restarted.node.snapshot.index >= LogIndex(1),
        "{restarted:?}"
    );
    let mut client = cluster.client();
    check_files(&mut client, &written).await;
    let file = client.read("short-lived").await.unwrap();
    assert!((1..=100).contains(&file.exptime_s), "{file:?}");
    // The expiry is an instant of the log's clock, kept by the snapshot.
    clock.advance(Duration::from_secs(100));
    assert!(matches!(
        client.read("short-lived").await,
        Err(ClientError::NotFound)
    ));
    assert_eq!(client.read("last").await.unwrap().version, last_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_answered_in_one_line_and_the_connection_goes_on() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let mut session = Session::open(&cluster.address(follower)).await;
    // Taken or refused (by this node's own judgement), in one line, by the
    // follower itself: no redirect.
    session.ask(b"snapshot\r\n", parse_snapshot_answer).await;
    // A follower serves reads itself and redirects changes.
    let answers = session
        .exchange(&[b"read nothing\r\ndelete nothing\r\n"], 2)
        .await;
    assert_eq!(
        answers,
        [
            Response::FileNotFound,
            Response::Redirect {
                leader: Some(cluster.address(leader))
            }
        ]
    );
    let mut session = Session::open(&cluster.address(leader)).await;
    let answers = session.exchange(&[b"snapshot now\r\n"], 1).await;
    assert_eq!(answers, [Response::CommandError]);
    session.expect_closed().await;
}
