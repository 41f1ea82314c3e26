//! Exactly-once changes end to end: session clients whose connections are
//! cut right after a change was sent (before its answer could come back)
//! resend it, while leaders are stopped and restarted; then the committed
//! log, replayed through a fresh store, shows every numbered change applied
//! at most once, and the recorded history is linearizable.
//!
//! The cuts are made by a proxy in front of each server, which the clients
//! know instead of the servers: it forwards a client's bytes to its server
//! and, for one change in four, closes both connections as soon as the
//! change is forwarded. It rewrites the servers' addresses in redirects to
//! its own, so that clients stay behind the proxies.
//!
//! A second test speaks the extension by hand: resends, stale numbers,
//! unknown and expired sessions.

mod common;

use common::{Cluster, Session, TestClock};
use skiff_fs::command::SessionPolicy;
use skiff_fs::linearizability::{check_file_history, Budget, Outcome};
use skiff_fs::store::audit::DuplicateAudit;
use skiff_fs::workload::{Recorder, Workload};
use skiff_fs::Response;
use skiff_fs::{Client, ClientConfig, Request};
use skiff_node::LogIndex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENTS: u64 = 5;
/// Clients from this id on only read.
const READERS_FROM: u64 = 4;
const LEADER_STOPS: usize = 3;
const FILES: [&str; 3] = ["x", "y", "z"];
/// One numbered change in this many has its connection cut.
const CUT_ONE_IN: u64 = 4;

/// What the proxies share: the servers' addresses with their proxies', and
/// how many connections they cut.
struct Proxies {
    /// `(server, proxy)` client addresses.
    addresses: Vec<(String, String)>,
    cuts: AtomicU64,
}

/// Starts one proxy per server; the listeners are bound before any address
/// is handed out, so no port is reused between binding and serving.
async fn start_proxies(cluster: &Cluster) -> Arc<Proxies> {
    let mut listeners = Vec::new();
    let mut addresses = Vec::new();
    for server in cluster.addresses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push((server, listener.local_addr().unwrap().to_string()));
        listeners.push(listener);
    }
    let proxies = Arc::new(Proxies {
        addresses,
        cuts: AtomicU64::new(0),
    });
    for (index, listener) in listeners.into_iter().enumerate() {
        let (proxies, server) = (proxies.clone(), proxies.addresses[index].0.clone());
        tokio::spawn(async move {
            let mut connection = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                connection += 1;
                let seed = (index as u64 + 1) * 1_000_003 + connection;
                tokio::spawn(forward(client, server.clone(), proxies.clone(), seed));
            }
        });
    }
    proxies
}

/// Forwards one client connection to `server` until either side closes, or
/// until it cuts the connection after forwarding a numbered change.
async fn forward(mut client: TcpStream, server: String, proxies: Arc<Proxies>, seed: u64) {
    let Ok(mut upstream) = TcpStream::connect(&server).await else {
        return; // the server is down: the client sees its connection close
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut from_client, mut from_server) = ([0u8; 8192], [0u8; 8192]);
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => {
                let Ok(read @ 1..) = read else { return };
                let chunk = &from_client[..read];
                if upstream.write_all(chunk).await.is_err() {
                    return;
                }
                let numbered_change = chunk.starts_with(b"session ")
                    && !chunk.starts_with(b"session open")
                    && !chunk.windows(6).any(|w| w == b" read ");
                if numbered_change && rng.u64(..CUT_ONE_IN) == 0 {
                    proxies.cuts.fetch_add(1, Ordering::Relaxed);
                    return; // dropping both streams closes them
                }
            }
            read = upstream.read(&mut from_server) => {
                let Ok(read @ 1..) = read else { return };
                let chunk = rewrite_addresses(&from_server[..read], &proxies.addresses);
                if client.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `chunk` with every server address replaced by its proxy's. (A redirect
/// split between two reads keeps the server's address: the client then
/// talks to that server directly, which only makes fewer cuts.)
fn rewrite_addresses(chunk: &[u8], addresses: &[(String, String)]) -> Vec<u8> {
    let mut out = chunk.to_vec();
    for (server, proxy) in addresses {
        let (server, proxy) = (server.as_bytes(), proxy.as_bytes());
        let mut rewritten = Vec::with_capacity(out.len());
        let mut rest = &out[..];
        while let Some(at) = rest.windows(server.len()).position(|w| w == server) {
            rewritten.extend_from_slice(&rest[..at]);
            rewritten.extend_from_slice(proxy);
            rest = &rest[at + server.len()..];
        }
        rewritten.extend_from_slice(rest);
        out = rewritten;
    }
    out
}

fn client_behind(proxies: &Proxies, start: u64) -> Client {
    let mut addresses: Vec<String> = proxies.addresses.iter().map(|(_, p)| p.clone()).collect();
    let first = start as usize % addresses.len();
    addresses.rotate_left(first);
    Client::new(ClientConfig {
        attempts_max: 200,
        backoff: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        retry_time_max: Duration::from_secs(20),
        request_timeout: Duration::from_secs(3),
        ..ClientConfig::new(addresses)
    })
}

/// Replays node `id`'s committed log from its first entry through
/// `through`. The cluster never snapshots, so the whole log is there.
async fn audit_log(cluster: &Cluster, id: u64, through: LogIndex) -> DuplicateAudit {
    let mut entries = cluster
        .server(id)
        .node()
        .subscribe(LogIndex(1))
        .await
        .unwrap();
    let mut audit = DuplicateAudit::new();
    while audit.store().applied_index() < through {
        let entry = tokio::time::timeout(common::PATIENCE, entries.next())
            .await
            .expect("the committed log arrives")
            .expect("the log is whole");
        audit.replay(entry.index, &entry.data).unwrap();
    }
    audit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_changes_apply_once_and_the_history_is_linearizable() {
    let mut cluster = Cluster::start_configured(3, |config| {
        config.snapshot.entries = 0;
        config.snapshot.bytes = 0;
    })
    .await;
    cluster.leader().await;
    let proxies = start_proxies(&cluster).await;
    let workload = Arc::new(Workload {
        files: FILES.iter().map(|f| f.to_string()).collect(),
        readers_from: READERS_FROM,
        operations_per_client_max: 5_000,
    });
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = client_behind(&proxies, id);
            let (workload, recorder, stop) = (workload.clone(), recorder.clone(), stop.clone());
            tokio::spawn(async move { workload.run_client(id, client, recorder, stop).await })
        })
        .collect();
    cluster.stop_and_restart_leaders(LEADER_STOPS).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let leader = cluster.leader().await;
    let commit = cluster.server(leader).status().node.commit_index;
    let audit = audit_log(&cluster, leader, commit).await;
    let report = audit.report();
    let history = recorder.history();
    let unknown = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    let changes = history
        .iter()
        .filter(|op| !matches!(op.input, Request::Read { .. }))
        .count();
    eprintln!(
        "{} operations ({changes} changes, {unknown} with unknown outcome), {} connections cut \
         after a change; log: {report:?}",
        history.len(),
        proxies.cuts.load(Ordering::Relaxed)
    );
    assert!(
        proxies.cuts.load(Ordering::Relaxed) >= 10,
        "too few cuts to test resends"
    );
    assert!(
        report.resent_entries > 0,
        "no resend reached the log: the check proves nothing"
    );
    assert_eq!(
        report.duplicates_applied, 0,
        "changes applied more than once"
    );
    assert!(
        history.len() - unknown >= 100,
        "too few operations completed"
    );
    // Every change went in a session; each that surely took effect
    // reached the log (once or more).
    let distinct_in_log = report.numbered_changes - report.resent_entries;
    let unknown_changes = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown && !matches!(op.input, Request::Read { .. }))
        .count();
    assert!(
        (changes - unknown_changes) as u64 <= distinct_in_log && distinct_in_log <= changes as u64,
        "{changes} changes ({unknown_changes} unknown), {distinct_in_log} in the log"
    );
    check_file_history(&history, Budget::default()).unwrap();
}

/// The extension on the wire, as a hand-written client speaks it: a
/// resend is answered from the session on any connection, an older number
/// is refused, and a session unused for longer than its idle time (by the
/// log's clock) is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_extension_on_the_wire() {
    let clock = TestClock::default();
    let cluster = Cluster::start_with_test_clock(3, &clock).await;
    let leader = cluster.address(cluster.leader().await);
    let mut s = Session::open(&leader).await;
    let id = match s.exchange(&[b"session open\r\n"], 1).await[..] {
        [Response::SessionOpened { id }] => id,
        ref other => panic!("{other:?}"),
    };
    let write = format!("session {id} 1 write f 3\r\nabc\r\n");
    let first = s.exchange(&[write.as_bytes()], 1).await;
    assert!(matches!(first[..], [Response::Written { .. }]), "{first:?}");
    // A plain client changes the file; the resend, on a new connection,
    // gets the first answer and changes nothing.
    let later = s.exchange(&[b"write f 1\r\nx\r\n"], 1).await;
    let mut resent = Session::open(&leader).await;
    assert_eq!(resent.exchange(&[write.as_bytes()], 1).await, first);
    let read = s.exchange(&[b"read f\r\n"], 1).await;
    assert!(
        matches!(&read[..], [Response::Contents { version, .. }]
            if Response::Written { version: *version } == later[0]),
        "{read:?}"
    );
    let delete = format!("session {id} 2 delete f\r\n");
    assert_eq!(
        s.exchange(&[delete.as_bytes()], 1).await,
        [Response::Deleted]
    );
    assert_eq!(
        s.exchange(&[write.as_bytes()], 1).await,
        [Response::SessionStale { last: 2 }]
    );
    // Reads need no number of their own.
    let numbered_read = format!("session {id} 2 read f\r\n");
    assert_eq!(
        s.exchange(&[numbered_read.as_bytes()], 1).await,
        [Response::FileNotFound]
    );
    assert_eq!(
        s.exchange(&[b"session 999999 1 delete f\r\n"], 1).await,
        [Response::SessionExpired]
    );
    // An hour later by the log's clock (a plain write carries the time),
    // the session is gone, and its next change is not applied.
    clock.advance(SessionPolicy::default().idle_timeout() + Duration::from_secs(1));
    s.exchange(&[b"write tick 1\r\nx\r\n"], 1).await;
    let after = format!("session {id} 3 write f 1\r\ny\r\n");
    assert_eq!(
        s.exchange(&[after.as_bytes()], 1).await,
        [Response::SessionExpired]
    );
    assert_eq!(
        s.exchange(&[b"read f\r\n"], 1).await,
        [Response::FileNotFound]
    );
}
