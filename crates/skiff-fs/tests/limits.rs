//! The client limits of `[limits]` on real sockets: idle and read timeouts,
//! the budget of bytes for requests received in part, and `clients_max`.
//! Limits are set low so that each is reached at once, and every wait is
//! for an event (an answer, a close, the budget held) with a deadline.

mod common;

use common::{Cluster, Session, PATIENCE};
use skiff_fs::protocol::Response;
use skiff_node::ClusterConfig;
use std::time::Duration;

/// A one-node cluster, whose node leads, with `configure`'s limits.
async fn one_server(configure: impl FnOnce(&mut ClusterConfig)) -> Cluster {
    let cluster = Cluster::start_configured(1, configure).await;
    cluster.leader().await;
    cluster
}

/// A write of `size` bytes of contents, split after `sent` of them.
fn write_request(name: &str, size: usize) -> Vec<u8> {
    let mut request = format!("write {name} {size}\r\n").into_bytes();
    request.extend(std::iter::repeat_n(b'x', size));
    request.extend_from_slice(b"\r\n");
    request
}

/// Waits until the server holds at least `bytes` of the pending budget.
async fn until_pending_bytes(cluster: &Cluster, at_least: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while cluster.server(1).status().pending_bytes < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the budget never held {at_least} bytes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn is_written(responses: &[Response]) -> bool {
    matches!(responses, [Response::Written { .. }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let cluster = one_server(|config| config.limits.client_idle_timeout_ms = 200).await;
    let mut idle = Session::open(&cluster.address(1)).await;
    assert!(is_written(
        &idle.exchange(&[b"write f 1\r\nx\r\n"], 1).await
    ));
    idle.expect_closed().await;
    // The server still serves new clients.
    let mut next = Session::open(&cluster.address(1)).await;
    assert!(is_written(
        &next.exchange(&[b"write f 1\r\ny\r\n"], 1).await
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_closed_after_the_read_timeout_and_never_executed() {
    let cluster = one_server(|config| config.limits.client_read_timeout_ms = 200).await;
    let mut half = Session::open(&cluster.address(1)).await;
    half.send(&[b"write f 10\r\nabc"]).await;
    half.expect_closed().await;
    let mut check = Session::open(&cluster.address(1)).await;
    assert_eq!(
        check.exchange(&[b"read f\r\n"], 1).await,
        [Response::FileNotFound]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_holds_a_large_request_while_a_small_one_is_served() {
    // The tests' servers take files of up to 64 KiB; each connection's
    // first 16 KiB are outside the budget.
    let cluster = one_server(|config| config.limits.client_pending_bytes_max = 60_000).await;
    let first_request = write_request("first", 60_000);
    let mut first = Session::open(&cluster.address(1)).await;
    let (first_part, first_rest) = first_request.split_at(50_000);
    first.send(&[first_part]).await;
    // Its buffer grew to 64 KiB for 50,000 bytes: 48 KiB of the budget.
    until_pending_bytes(&cluster, 48 * 1024).await;

    // 40,000 bytes need 16 KiB more than the 10,848 left: held.
    let mut second = Session::open(&cluster.address(1)).await;
    second.send(&[&write_request("second", 40_000)]).await;
    let mut small = Session::open(&cluster.address(1)).await;
    assert!(is_written(
        &small.exchange(&[b"write small 5\r\nhello\r\n"], 1).await
    ));
    assert!(second.is_silent(), "the second write waits for the budget");

    // Once the first is whole, its bytes return and the second goes on.
    assert!(is_written(&first.exchange(&[first_rest], 1).await));
    assert!(is_written(&second.receive(1).await));
    let mut check = Session::open(&cluster.address(1)).await;
    let read = check.exchange(&[b"read second\r\n"], 1).await;
    assert!(
        matches!(&read[..], [Response::Contents { contents, .. }] if contents.len() == 40_000),
        "{read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_budget_can_never_hold_gets_err_internal() {
    let cluster = one_server(|config| config.limits.client_pending_bytes_max = 20_000).await;
    let mut large = Session::open(&cluster.address(1)).await;
    // Past 32 KiB its buffer would need 48 KiB of a 20,000-byte budget.
    large.send(&[&write_request("large", 60_000)]).await;
    assert_eq!(large.receive(1).await, [Response::Internal]);
    large.expect_closed().await;
    assert_eq!(cluster.server(1).status().pending_bytes, 0);
    let mut small = Session::open(&cluster.address(1)).await;
    assert!(is_written(
        &small.exchange(&[b"write small 5\r\nhello\r\n"], 1).await
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_closes_its_longest_idle_connection_for_a_new_client() {
    const CLIENTS_MAX: usize = 4;
    let cluster = one_server(|config| config.limits.clients_max = CLIENTS_MAX).await;
    let mut idle = Vec::new();
    // One after another, so that the first is idle the longest.
    for _ in 0..CLIENTS_MAX {
        let mut session = Session::open(&cluster.address(1)).await;
        assert_eq!(
            session.exchange(&[b"read none\r\n"], 1).await,
            [Response::FileNotFound]
        );
        idle.push(session);
    }
    let mut new = Session::open(&cluster.address(1)).await;
    assert!(is_written(&new.exchange(&[b"write f 1\r\nx\r\n"], 1).await));
    idle[0].expect_closed().await;
    for session in &mut idle[1..] {
        assert_eq!(
            session.exchange(&[b"read none\r\n"], 1).await,
            [Response::FileNotFound]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_send_give_way_to_a_new_client_oldest_first() {
    const CLIENTS_MAX: usize = 4;
    let cluster = one_server(|config| config.limits.clients_max = CLIENTS_MAX).await;
    // Accepted in the order they connect, the first idle the longest.
    let mut silent = Vec::new();
    for _ in 0..CLIENTS_MAX {
        silent.push(Session::open(&cluster.address(1)).await);
    }
    let mut new = Vec::new();
    for longest_idle in &mut silent[..2] {
        // Kept open, so that the next one finds the slots full again.
        let mut session = Session::open(&cluster.address(1)).await;
        assert!(is_written(
            &session.exchange(&[b"write f 1\r\nx\r\n"], 1).await
        ));
        longest_idle.expect_closed().await;
        new.push(session);
    }
    for session in &mut silent[2..] {
        assert!(session.is_silent(), "only the two longest idle were closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_full_of_busy_connections_refuses_a_new_client_at_once() {
    const CLIENTS_MAX: usize = 3;
    let cluster = one_server(|config| config.limits.clients_max = CLIENTS_MAX).await;
    let mut busy = Vec::new();
    for index in 0..CLIENTS_MAX {
        let mut session = Session::open(&cluster.address(1)).await;
        // More than the unbudgeted 16 KiB, so that the budget shows it read.
        let request = write_request(&format!("busy{index}"), 30_000);
        session.send(&[&request[..20_000]]).await;
        busy.push((session, request));
    }
    until_pending_bytes(&cluster, CLIENTS_MAX * 16 * 1024).await;
    let mut refused = Session::open(&cluster.address(1)).await;
    refused.expect_closed().await;
    for (session, request) in &mut busy {
        assert!(is_written(
            &session.exchange(&[&request[20_000..]], 1).await
        ));
    }
}
