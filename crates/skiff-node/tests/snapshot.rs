//! Snapshots of a node running a `StateMachine`: the policy (by entries,
//! by bytes), `snapshot_now`, compaction keeping the data directory
//! bounded, a restart that restores the snapshot and applies only the log
//! after it, and subscriptions a snapshot overtakes.

use bytes::Bytes;
use skiff_node::local::LocalCluster;
use skiff_node::{
    CommittedEntry, LogIndex, Node, NodeHandle, NodeId, Role, SnapshotConfig, SnapshotError,
    SnapshotMeta, SnapshotWriter, StateMachine, Status,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const TIMEOUT: Duration = Duration::from_secs(30);
const ME: NodeId = NodeId(1);

/// What the test's application saw.
#[derive(Debug, Default)]
struct Seen {
    /// The state: `key=value` entries, the last value per key.
    map: BTreeMap<String, String>,
    /// Entries applied since the start (not restored).
    applies: u64,
    /// Snapshots restored, in order.
    restored: Vec<SnapshotMeta>,
}

/// A key-value map as the node's state machine; the test reads what it
/// saw through the shared half.
#[derive(Clone)]
struct Kv {
    seen: Arc<Mutex<Seen>>,
    applied: Arc<watch::Sender<LogIndex>>,
}

impl Kv {
    fn new() -> Kv {
        Kv {
            seen: Arc::default(),
            applied: Arc::new(watch::Sender::new(LogIndex(0))),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    async fn applied_through(&self, index: LogIndex) {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(TIMEOUT, applied.wait_for(|a| *a >= index))
            .await
            .expect("applied in time")
            .expect("the applier runs");
    }
}

impl StateMachine for Kv {
    fn apply(&mut self, entry: CommittedEntry) {
        let mut seen = self.seen();
        seen.applies += 1;
        if let Some((key, value)) = std::str::from_utf8(&entry.data)
            .ok()
            .and_then(|text| text.split_once('='))
        {
            seen.map.insert(key.to_string(), value.to_string());
        }
        drop(seen);
        self.applied.send_replace(entry.index);
    }

    fn snapshot(&self) -> Box<dyn SnapshotWriter> {
        Box::new(Frozen(self.seen().map.clone()))
    }

    fn restore(&mut self, snapshot: SnapshotMeta, reader: &mut dyn Read) -> std::io::Result<()> {
        let mut text = String::new();
        reader.read_to_string(&mut text)?;
        let mut seen = self.seen();
        seen.map = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        seen.restored.push(snapshot);
        drop(seen);
        self.applied.send_replace(snapshot.index);
        Ok(())
    }
}

struct Frozen(BTreeMap<String, String>);

impl SnapshotWriter for Frozen {
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> std::io::Result<()> {
        for (key, value) in &self.0 {
            writeln!(out, "{key}={value}")?;
        }
        Ok(())
    }
}

/// One node with small segments and `policy`.
fn single(dir: &Path, policy: SnapshotConfig) -> LocalCluster {
    let mut cluster = LocalCluster::bind(1, dir).unwrap();
    cluster.config.cluster_id = 13;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    cluster.config.segment_bytes_max = 4096;
    cluster.config.snapshot = policy;
    cluster
}

fn policy(entries: u64, bytes: u64) -> SnapshotConfig {
    SnapshotConfig {
        entries,
        bytes,
        ..SnapshotConfig::default()
    }
}

async fn wait_status(handle: &NodeHandle, what: impl Fn(&Status) -> bool) -> Status {
    let mut status = handle.watch_status();
    let found = tokio::time::timeout(TIMEOUT, status.wait_for(|s| what(s)))
        .await
        .expect("status reached in time")
        .expect("the node runs");
    *found
}

/// Starts the node with `kv` and waits until it leads and has committed
/// its term's first entry.
async fn start(cluster: &LocalCluster, kv: &Kv) -> Node {
    let node = cluster
        .start_node_with_state_machine(ME, kv.clone())
        .await
        .expect("node starts");
    let handle = node.handle();
    wait_status(&handle, |s| {
        s.role == Role::Leader && s.commit_index == s.last_index
    })
    .await;
    node
}

/// Submits `key{i % keys}=` and `value_bytes` of value for each `i` in
/// `range`, up to 100 at a time; returns the last index.
async fn write(
    handle: &NodeHandle,
    range: std::ops::Range<u64>,
    keys: u64,
    value_bytes: usize,
) -> LogIndex {
    let mut last = LogIndex(0);
    let all: Vec<u64> = range.collect();
    for window in all.chunks(100) {
        let mut tasks = tokio::task::JoinSet::new();
        for &i in window {
            let handle = handle.clone();
            let mut data = format!("key{}=", i % keys).into_bytes();
            let value = format!("{i}-");
            data.extend(value.bytes().cycle().take(value_bytes));
            tasks.spawn(async move { handle.submit(Bytes::from(data)).await });
        }
        while let Some(outcome) = tasks.join_next().await {
            last = last.max(outcome.unwrap().expect("committed"));
        }
    }
    last
}

/// The bytes of the files under `dir`. The node may delete a segment or a
/// snapshot while it is walked: a file that vanished counts as nothing.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(items) = std::fs::read_dir(dir) else {
        return 0;
    };
    items
        .filter_map(Result::ok)
        .map(|item| match item.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&item.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_policy_compacts_and_a_restart_restores_then_applies_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = single(dir.path(), policy(50, 0));
    let data_dir = cluster.config.node(ME).unwrap().data_dir.clone();
    let kv = Kv::new();
    let node = start(&cluster, &kv).await;
    let handle = node.handle();
    // The leader's no-op is entry 1: 49 more make 50 applied.
    let last = write(&handle, 0..48, 7, 10).await;
    kv.applied_through(last).await;
    assert_eq!(
        handle.status().snapshot,
        SnapshotMeta::default(),
        "49 applied, none due"
    );
    let last = write(&handle, 48..49, 7, 10).await;
    assert_eq!(last, LogIndex(50));
    let status = wait_status(&handle, |s| s.snapshot.index > LogIndex(0)).await;
    assert_eq!(
        status.snapshot.index,
        LogIndex(50),
        "taken at the 50th entry applied"
    );

    let last = write(&handle, 49..230, 7, 10).await;
    kv.applied_through(last).await;
    // Every 50 entries, or later while the one before is still written: a
    // slow write defers the next snapshot, so where they land depends on
    // timing, but once all is applied fewer than 50 entries stay outside.
    let status = wait_status(&handle, |s| s.snapshot.index.0 + 50 > last.0).await;
    let snapshot = status.snapshot;
    let map = kv.seen().map.clone();
    let segments = skiff_node::storage::segment_files(&data_dir).unwrap().len();
    node.shutdown().await.unwrap();
    assert!(segments <= 3, "{segments} segments left after compaction");

    let restarted = Kv::new();
    let started = Instant::now();
    let node = start(&cluster, &restarted).await;
    eprintln!(
        "restart with a snapshot at {} and {} entries after it: leading in {:?}",
        snapshot.index,
        last.0 - snapshot.index.0,
        started.elapsed()
    );
    let handle = node.handle();
    let status = handle.status();
    assert_eq!(status.snapshot, snapshot);
    // The new term's no-op follows what was written.
    assert_eq!(status.last_index, last.next());
    restarted.applied_through(status.last_index).await;
    {
        let seen = restarted.seen();
        assert_eq!(seen.restored, [snapshot]);
        assert_eq!(
            seen.applies,
            status.last_index.0 - snapshot.index.0,
            "only the log after it"
        );
        assert_eq!(seen.map, map);
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_policy_takes_a_snapshot_once_the_applied_data_reaches_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = single(dir.path(), policy(0, 4000));
    let kv = Kv::new();
    let node = start(&cluster, &kv).await;
    let handle = node.handle();
    // Entries of exactly 500 bytes ("key0=" and 495 of value).
    let last = write(&handle, 0..7, 1, 495).await;
    kv.applied_through(last).await;
    assert_eq!(
        handle.status().snapshot.index,
        LogIndex(0),
        "3500 bytes, none due"
    );
    let last = write(&handle, 7..8, 1, 495).await;
    let status = wait_status(&handle, |s| s.snapshot.index > LogIndex(0)).await;
    assert_eq!(status.snapshot.index, last, "taken at 4000 bytes");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_now_takes_one_whatever_the_policy_and_only_with_something_new() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = single(dir.path(), policy(0, 0));
    let kv = Kv::new();
    let node = start(&cluster, &kv).await;
    let handle = node.handle();
    let last = write(&handle, 0..5, 3, 4).await;
    kv.applied_through(last).await;
    let taken = handle.snapshot_now().await.unwrap();
    assert_eq!(taken.index, last);
    assert_eq!(handle.status().snapshot, taken, "current once it resolves");
    assert_eq!(
        handle.snapshot_now().await,
        Err(SnapshotError::NothingNew(last))
    );
    let snapshots = dir.path().join("node-1").join("snapshots");
    let files: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".snap"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    node.shutdown().await.unwrap();

    // A node without a state machine has nothing to capture.
    let plain = cluster.start_node(ME).await.unwrap();
    assert_eq!(
        plain.handle().snapshot_now().await,
        Err(SnapshotError::NoStateMachine)
    );
    plain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_stays_bounded_while_many_entries_are_written() {
    const BOUND: u64 = 128 << 10;
    let dir = tempfile::tempdir().unwrap();
    let cluster = single(dir.path(), policy(100, 0));
    let data_dir = cluster.config.node(ME).unwrap().data_dir.clone();
    let kv = Kv::new();
    let node = start(&cluster, &kv).await;
    let handle = node.handle();
    let mut largest = 0;
    let mut written = 0;
    for round in 0..50 {
        let range = round * 100..(round + 1) * 100;
        write(&handle, range, 10, 100).await;
        written += 100 * 106;
        largest = largest.max(dir_bytes(&data_dir));
    }
    eprintln!("{written} bytes of entries written; the data directory peaked at {largest} bytes");
    assert!(written > 3 * BOUND, "the test writes well past the bound");
    assert!(
        largest < BOUND,
        "the data directory reached {largest} bytes"
    );
    wait_status(&handle, |s| s.snapshot.index >= LogIndex(4_900)).await;
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_whose_entries_a_snapshot_covers_ends_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = single(dir.path(), policy(20, 0));
    let kv = Kv::new();
    let node = start(&cluster, &kv).await;
    let handle = node.handle();
    let mut early = handle.subscribe(LogIndex(1)).await.unwrap();
    write(&handle, 0..60, 3, 4).await;
    let status = wait_status(&handle, |s| s.snapshot.index >= LogIndex(40)).await;
    // A subscription that kept up sees every entry.
    for index in 1..=status.snapshot.index.0 {
        assert_eq!(early.next().await.unwrap().index, LogIndex(index));
    }
    let mut late = handle.subscribe(LogIndex(1)).await.unwrap();
    assert_eq!(late.next().await, None);
    let overtaken = late.overtaken_by().expect("ended by a snapshot");
    assert!(overtaken.index >= status.snapshot.index);
    assert_eq!(early.overtaken_by(), None);
    node.shutdown().await.unwrap();
}

/// Plays node 2, a leader of term `term`, towards node 1: dials it and
/// sends `req` as a peer would, once the file is where node 1's transport
/// would have put it.
async fn send_as_leader(cluster: &LocalCluster, message: skiff_core::Message) {
    use skiff_node::wire::{self, Frame, Hello, WireMessage, FRAME_BYTES_MAX, LENGTH_BYTES};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = cluster.config.node(ME).unwrap().peer_address;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut out = Vec::new();
    let hello = Hello {
        cluster_id: cluster.config.cluster_id,
        node_id: 2,
        peer_id: ME.0,
        address: None,
    };
    wire::encode_frame(&Frame::Hello(hello), &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut prefix = [0; LENGTH_BYTES];
    stream.read_exact(&mut prefix).await.unwrap();
    let length = wire::check_length(prefix, FRAME_BYTES_MAX).unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    let body = Bytes::from(body);
    assert!(matches!(wire::decode_frame(&body), Ok(Frame::Hello(_))));
    out.clear();
    let frame = Frame::Message(WireMessage::from_message(&message));
    wire::encode_frame(&frame, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    stream.flush().await.unwrap();
    // Kept open until the node has had the message.
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
}

/// Node 1 of a three-node cluster `cluster_id`, started alone with a state
/// machine: with long timeouts it stays a follower, for a test to play its
/// leader (`send_as_leader`). Returns the cluster, node 1's data directory,
/// its state machine and the node.
async fn lone_follower(dir: &Path, cluster_id: u64) -> (LocalCluster, PathBuf, Kv, Node) {
    let mut cluster = LocalCluster::bind(3, dir).unwrap();
    cluster.config.cluster_id = cluster_id;
    cluster.config.election_timeout_ms = 10_000;
    let data_dir = cluster.config.node(ME).unwrap().data_dir.clone();
    let kv = Kv::new();
    let node = cluster
        .start_node_with_state_machine(ME, kv.clone())
        .await
        .unwrap();
    (cluster, data_dir, kv, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaders_snapshot_is_verified_installed_restored_and_survives_a_restart() {
    use skiff_core::{InstallSnapshotReq, Message, Term};
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, data_dir, kv, node) = lone_follower(dir.path(), 14).await;
    let handle = node.handle();

    // The leader's snapshot, as node 1's transport leaves it once received.
    let snapshot = SnapshotMeta {
        index: LogIndex(100),
        term: Term(4),
    };
    let received = leave_received(&data_dir, 14, snapshot, b"colour=blue\nshape=round\n");

    // The cluster has a learner by then, node 4: the snapshot's
    // configuration says so, with its addresses.
    let learner = skiff_node::MemberAddresses {
        peer: "127.0.0.1:1".parse().unwrap(),
        client: "127.0.0.1:2".parse().unwrap(),
    };
    let book: skiff_node::AddressBook = [(NodeId(4), learner)].into_iter().collect();
    let membership =
        skiff_core::Membership::new(bootstrap_membership().voters().to_vec(), vec![NodeId(4)])
            .unwrap()
            .with_context(book.encode());
    let req = InstallSnapshotReq {
        term: Term(5),
        leader: NodeId(2),
        snapshot,
        membership,
        epoch: 0,
    };
    send_as_leader(&cluster, Message::InstallSnapshotReq(req)).await;
    let status = wait_status(&handle, |s| s.snapshot == snapshot).await;
    assert_eq!(
        (status.commit_index, status.last_index),
        (LogIndex(100), LogIndex(100))
    );
    assert_eq!(status.term, Term(5));
    kv.applied_through(LogIndex(100)).await;
    {
        let seen = kv.seen();
        assert_eq!(seen.restored, [snapshot]);
        assert_eq!(seen.map.get("colour").map(String::as_str), Some("blue"));
    }
    assert!(!received.exists(), "adopted, not left in incoming");
    node.shutdown().await.unwrap();

    // cluster.toml does not list the learner the data directory's
    // configuration has: the node says so, naming both, and does not start.
    let refused = cluster
        .start_node_with_state_machine(ME, Kv::new())
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        matches!(refused, skiff_node::StartError::MembershipMismatch { .. }),
        "{text}"
    );
    for part in [
        "learners 4 (peer 127.0.0.1:1, client 127.0.0.1:2)",
        "cluster.toml lists voters 1",
        "skiff member list",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
    let mut learner_entry = cluster.config.nodes[0].clone();
    learner_entry.id = 4;
    learner_entry.learner = true;
    learner_entry.peer_address = learner.peer;
    learner_entry.client_address = learner.client;
    learner_entry.data_dir = dir.path().join("node-4");
    learner_entry.metrics_address = None;
    cluster.config.nodes.push(learner_entry);

    let restarted = Kv::new();
    let node = cluster
        .start_node_with_state_machine(ME, restarted.clone())
        .await
        .unwrap();
    let status = node.handle().status();
    assert_eq!(status.snapshot, snapshot);
    assert_eq!(
        status.last_index,
        LogIndex(100),
        "the log starts after the snapshot"
    );
    assert_eq!(status.term, Term(5));
    assert_eq!(restarted.seen().restored, [snapshot]);
    assert_eq!(restarted.seen().map.len(), 2);
    let membership = node.handle().membership();
    assert_eq!(
        membership.learners,
        [(NodeId(4), learner)],
        "the snapshot's configuration survives the restart: {membership:?}"
    );
    assert_eq!(membership.voters.len(), 3, "{membership:?}");
    node.shutdown().await.unwrap();
}

/// The configuration of `lone_follower`'s cluster before any change.
fn bootstrap_membership() -> skiff_core::Membership {
    skiff_core::Membership::new(vec![NodeId(1), NodeId(2), NodeId(3)], vec![]).unwrap()
}

/// A snapshot file as node 1's transport leaves it once received from
/// node 2: whole and durable, under the name the event loop looks for.
fn leave_received(
    data_dir: &Path,
    cluster_id: u64,
    snapshot: SnapshotMeta,
    state: &[u8],
) -> PathBuf {
    let incoming = data_dir.join("snapshots").join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let leader = skiff_node::storage::Identity {
        cluster_id,
        node_id: 2,
    };
    let written = skiff_node::storage::write_snapshot(&incoming, leader, snapshot, 8, |out| {
        out.write_all(state)
    })
    .unwrap();
    let received = incoming.join(format!("from-2-{}-{}.snap", snapshot.index, snapshot.term));
    std::fs::rename(&written.path, &received).unwrap();
    received
}

/// A received file that fails its checksums (the disk lied after the
/// transport checked it) is deleted and its message dropped: the machine
/// never hears of it, so it never resets to a snapshot it cannot restore.
/// The leader's next one is installed as usual, and one older than what is
/// then committed changes nothing and is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_snapshots_that_fail_their_checks_or_are_too_old_are_deleted_never_installed() {
    use skiff_core::{InstallSnapshotReq, Message, Term};
    let dir = tempfile::tempdir().unwrap();
    let (cluster, data_dir, kv, node) = lone_follower(dir.path(), 16).await;
    let request = |index| InstallSnapshotReq {
        term: Term(5),
        leader: NodeId(2),
        snapshot: SnapshotMeta {
            index: LogIndex(index),
            term: Term(4),
        },
        membership: bootstrap_membership(),
        epoch: 0,
    };

    let damaged = request(100);
    let path = leave_received(&data_dir, 16, damaged.snapshot, b"colour=red\n");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 12;
    bytes[last] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    send_as_leader(&cluster, Message::InstallSnapshotReq(damaged)).await;
    // The file's deletion is what the node does with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while path.exists() {
        assert!(Instant::now() < deadline, "the damaged file was kept");
        tokio::time::sleep(Duration::from_millis(1)).await; // polls the condition
    }

    let sound = request(200);
    leave_received(&data_dir, 16, sound.snapshot, b"colour=blue\n");
    send_as_leader(&cluster, Message::InstallSnapshotReq(sound.clone())).await;
    let status = wait_status(&node.handle(), |s| s.snapshot == sound.snapshot).await;
    assert_eq!(status.commit_index, LogIndex(200));
    kv.applied_through(LogIndex(200)).await;
    {
        let seen = kv.seen();
        let restored = &seen.restored;
        assert_eq!(
            restored,
            &[sound.snapshot],
            "the damaged one was never restored"
        );
        assert_eq!(seen.map.get("colour").map(String::as_str), Some("blue"));
    }

    // A snapshot older than what is now committed (a resend that crossed
    // the install): the machine changes nothing, and the file goes.
    let older = request(150);
    let path = leave_received(&data_dir, 16, older.snapshot, b"colour=green\n");
    send_as_leader(&cluster, Message::InstallSnapshotReq(older)).await;
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "the older snapshot's file was kept"
        );
        tokio::time::sleep(Duration::from_millis(1)).await; // polls the condition
    }
    assert_eq!(node.handle().status().snapshot, sound.snapshot);
    assert_eq!(kv.seen().restored, [sound.snapshot]);
    node.shutdown().await.unwrap();
}

/// Not a benchmark, but the figure the snapshot work is for: a restart
/// reads (and the application applies) a long log, or restores a snapshot
/// and applies a short one. Both restarts must rebuild the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_a_snapshot_applies_only_the_short_log_after_it() {
    const ENTRIES: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let cluster = single(dir.path(), policy(0, 0));
    let kv = Kv::new();
    let node = start(&cluster, &kv).await;
    let last = write(&node.handle(), 0..ENTRIES, 1_000, 100).await;
    kv.applied_through(last).await;
    let map = kv.seen().map.clone();
    node.shutdown().await.unwrap();

    // Restarts until the node serves with the whole state applied.
    let restart = |label: &'static str| {
        let cluster = &cluster;
        let map = &map;
        async move {
            let kv = Kv::new();
            let started = Instant::now();
            let node = cluster
                .start_node_with_state_machine(ME, kv.clone())
                .await
                .expect("node starts");
            let recovered = started.elapsed();
            let handle = node.handle();
            let status = wait_status(&handle, |s| {
                s.role == Role::Leader && s.commit_index == s.last_index
            })
            .await;
            kv.applied_through(status.last_index).await;
            let elapsed = started.elapsed();
            let applies = kv.seen().applies;
            eprintln!(
                "restart {label}: snapshot at {}, {} entries in the log; recovered (and restored) \
                 in {recovered:?}; {applies} applied, serving with its state (an election \
                 included) in {elapsed:?}",
                status.snapshot.index,
                status.last_index.0 - status.snapshot.index.0,
            );
            assert_eq!(&kv.seen().map, map);
            (node, applies)
        }
    };
    let (node, long) = restart("from the long log").await;
    assert!(long > ENTRIES);
    let taken = node.handle().snapshot_now().await.unwrap();
    node.shutdown().await.unwrap();
    let (node, short) = restart("from a snapshot").await;
    assert_eq!(node.handle().status().snapshot, taken);
    assert!(short <= 2, "{short} entries applied after the snapshot");
    node.shutdown().await.unwrap();
}

/// The catch-up of issue 13: a follower stopped while the others take
/// 200,000 writes restarts after the leader compacted past its log, and
/// catches up through the leader's snapshot (streamed by the transport).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stopped_for_200000_writes_catches_up_through_a_snapshot() {
    const WRITES: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::bind(3, dir.path()).unwrap();
    cluster.config.cluster_id = 15;
    cluster.config.election_timeout_ms = 300;
    cluster.config.heartbeat_interval_ms = 50;
    let machines: Vec<Kv> = (0..3).map(|_| Kv::new()).collect();
    let mut nodes = Vec::new();
    for (id, kv) in cluster.config.ids().zip(&machines) {
        nodes.push(Some(
            cluster
                .start_node_with_state_machine(id, kv.clone())
                .await
                .unwrap(),
        ));
    }
    let first = nodes[0].as_ref().unwrap().handle();
    let leader = wait_status(&first, |s| s.leader.is_some())
        .await
        .leader
        .unwrap();
    let leader_position = (leader.0 - 1) as usize;
    let leader_handle = nodes[leader_position].as_ref().unwrap().handle();
    wait_status(&leader_handle, |s| s.role == Role::Leader).await;
    let stopped_position = (leader_position + 1) % 3;
    let stopped_id = NodeId(stopped_position as u64 + 1);
    let stopped_last = nodes[stopped_position]
        .as_ref()
        .unwrap()
        .handle()
        .status()
        .last_index;
    nodes[stopped_position]
        .take()
        .unwrap()
        .shutdown()
        .await
        .unwrap();

    let last = write(&leader_handle, 0..WRITES, 1_000, 20).await;
    let status = wait_status(&leader_handle, |s| s.snapshot.index > stopped_last).await;
    eprintln!(
        "the leader compacted through {} while node {stopped_id} was down",
        status.snapshot.index
    );

    let kv = Kv::new();
    let started = Instant::now();
    let node = cluster
        .start_node_with_state_machine(stopped_id, kv.clone())
        .await
        .unwrap();
    kv.applied_through(last).await;
    let elapsed = started.elapsed();
    let installed = kv.seen().restored.clone();
    eprintln!("node {stopped_id} caught up through {installed:?} to index {last} in {elapsed:?}");
    assert!(
        installed.last().is_some_and(|s| s.index > stopped_last),
        "{installed:?}"
    );
    assert_eq!(kv.seen().map, machines[leader_position].seen().map);
    node.shutdown().await.unwrap();
    for node in nodes.into_iter().flatten() {
        node.shutdown().await.unwrap();
    }
}
