//! A leader whose disk stalls (the `[faults] sync_stall_file` hook) is
//! replaced while the stall lasts, says so, and rejoins as a follower in
//! the new term once its disk answers; no acknowledged write is lost.

mod common;

use skiff_node::local::LocalCluster;
use skiff_node::{LogIndex, Node, NodeHandle, Role, Status, SubmitError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const ELECTION_TIMEOUT_MS: u64 = 150;
/// How long the leader's disk hangs.
const STALL: Duration = Duration::from_secs(10);
/// A generous bound on every wait; timing is reported, not asserted.
const DEADLINE: Duration = Duration::from_secs(20);
/// A submission to a node that does not answer in this long goes elsewhere.
const SUBMIT_PATIENCE: Duration = Duration::from_millis(500);
/// Writes acknowledged before the stall begins.
const ACKS_BEFORE: usize = 20;

/// What the nodes of this test process logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Sends every node's log lines here from now on.
    fn install() -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .init();
        captured
    }

    /// The captured lines that contain `text`.
    fn lines_with(&self, text: &str) -> Vec<String> {
        let bytes = self.0.lock().unwrap();
        let text_lines = String::from_utf8_lossy(&bytes);
        text_lines
            .lines()
            .filter(|line| line.contains(text))
            .map(str::to_string)
            .collect()
    }
}

/// Waits until `status` satisfies `condition`, up to [`DEADLINE`].
async fn wait_for(
    status: &mut watch::Receiver<Status>,
    what: &str,
    condition: impl FnMut(&Status) -> bool,
) -> Status {
    let waited = tokio::time::timeout(DEADLINE, status.wait_for(condition)).await;
    let seen = waited.ok().and_then(|seen| seen.ok().map(|seen| *seen));
    seen.unwrap_or_else(|| panic!("no {what} within {DEADLINE:?}; last {:?}", *status.borrow()))
}

/// Submits fresh values one after another, each to the node that says it
/// leads (or the next in turn), until `stop`; records what was acknowledged.
async fn write_steadily(
    handles: Vec<NodeHandle>,
    acknowledged: Arc<Mutex<Vec<(LogIndex, String)>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut target = 0;
    for sequence in 0.. {
        if *stop.borrow() {
            return;
        }
        let value = format!("w{sequence}");
        let handle = &handles[target];
        let submitted = tokio::select! {
            outcome = tokio::time::timeout(SUBMIT_PATIENCE, handle.submit(value.clone())) => outcome,
            _ = stop.changed() => return,
        };
        match submitted {
            Ok(Ok(index)) => acknowledged.lock().unwrap().push((index, value)),
            Ok(Err(SubmitError::NotLeader {
                leader: Some(leader),
            })) if leader != handle.id() => {
                target = handles.iter().position(|h| h.id() == leader).unwrap();
            }
            Ok(Err(SubmitError::NotLeader { .. })) => {
                // No leader known here: wait for this node to learn of one.
                let mut status = handle.watch_status();
                let learned = status.wait_for(|s| s.leader.is_some());
                let _ = tokio::time::timeout(SUBMIT_PATIENCE, learned).await;
                target = (target + 1) % handles.len();
            }
            Ok(Err(_)) | Err(_) => target = (target + 1) % handles.len(),
        }
    }
}

/// The non-empty data committed at `handle`, through index `through`.
async fn committed(handle: &NodeHandle, through: LogIndex) -> Vec<(LogIndex, String)> {
    let mut subscription = handle.subscribe(LogIndex(1)).await.unwrap();
    let mut values = Vec::new();
    let read = async {
        while let Some(entry) = subscription.next().await {
            if !entry.data.is_empty() {
                values.push((entry.index, String::from_utf8(entry.data.to_vec()).unwrap()));
            }
            if entry.index >= through {
                break;
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the committed entries arrive");
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_stalls_is_replaced_and_rejoins_as_follower() {
    let logs = Captured::install();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::bind(3, dir.path()).unwrap();
    cluster.config.cluster_id = 14;
    cluster.config.election_timeout_ms = ELECTION_TIMEOUT_MS;
    cluster.config.heartbeat_interval_ms = 40;
    cluster.config.faults.sync_stall_file = Some(dir.path().join("stall-{id}"));
    let stall_timeout = Duration::from_millis(cluster.config.storage.stall_timeout_ms);
    let mut nodes: Vec<Node> = Vec::new();
    for id in cluster.config.ids() {
        nodes.push(cluster.start_node(id).await.expect("node starts"));
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    let old = tokio::time::timeout(DEADLINE, common::first_leader(&nodes))
        .await
        .expect("a first leader");
    let old_id = handles[old].id();

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = watch::channel(false);
    let writer = tokio::spawn(write_steadily(
        handles.clone(),
        acknowledged.clone(),
        stopped,
    ));
    let mut progress = handles[old].watch_status();
    let enough = progress.borrow().commit_index.0 + ACKS_BEFORE as u64;
    wait_for(&mut progress, "writes before the stall", |s| {
        s.commit_index.0 >= enough
    })
    .await;

    let old_term = handles[old].status().term;
    let stall_file = cluster.config.faults.sync_stall_file_of(old_id).unwrap();
    std::fs::write(&stall_file, b"").unwrap();
    let stalled_at = Instant::now();
    let acknowledged_before = acknowledged.lock().unwrap().len();

    // Another node leads, in a later term, while the disk still hangs.
    let (new_leader, elected) = {
        let (sender, mut found) = tokio::sync::mpsc::channel(2);
        for handle in handles.iter().filter(|h| h.id() != old_id) {
            let (mut status, sender) = (handle.watch_status(), sender.clone());
            tokio::spawn(async move {
                let leads = |s: &Status| s.role == Role::Leader && s.term > old_term;
                let seen = status.wait_for(leads).await.map(|seen| *seen);
                if let Ok(seen) = seen {
                    let _ = sender.send((seen, Instant::now())).await;
                }
            });
        }
        tokio::time::timeout(DEADLINE, found.recv())
            .await
            .expect("a new leader while the disk hangs")
            .unwrap()
    };
    let replaced_after = elected - stalled_at;
    assert!(
        replaced_after < STALL,
        "the new leader came after the stall"
    );
    assert!(stall_file.exists());

    // The old leader reports the stall, and leads no more, while it lasts.
    let mut old_status = handles[old].watch_status();
    let reported = wait_for(&mut old_status, "stall reported by the old leader", |s| {
        s.storage_stalled
    })
    .await;
    let reported_after = stalled_at.elapsed();
    let reported_role = reported.role;
    let stepped_down = wait_for(&mut old_status, "step-down of the old leader", |s| {
        s.role != Role::Leader
    })
    .await;
    let stepped_down_after = stalled_at.elapsed();
    assert!(
        stepped_down_after < STALL,
        "stepped down only after the stall"
    );
    assert!(stepped_down.storage_stalled || stepped_down.role == Role::Follower);

    // The fault's schedule, not a synchronization: the disk hangs this long.
    tokio::time::sleep_until(stalled_at + STALL).await;
    std::fs::remove_file(&stall_file).unwrap();
    let rejoined = wait_for(&mut old_status, "the old leader following the new", |s| {
        !s.storage_stalled
            && s.role == Role::Follower
            && s.term >= new_leader.term
            && s.leader.is_some()
    })
    .await;
    let rejoined_after = stalled_at.elapsed();

    stop.send(true).unwrap();
    writer.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let last = acknowledged.iter().map(|(index, _)| *index).max().unwrap();
    let written_since = acknowledged.len() - acknowledged_before;
    for handle in &handles {
        let log = committed(handle, last).await;
        for (index, value) in &acknowledged {
            assert!(
                log.contains(&(*index, value.clone())),
                "node {}: {value}, acknowledged at {index}, is missing",
                handle.id()
            );
        }
    }
    // One warning for the stall, the step-down, and the recovery.
    let of_old = |lines: Vec<String>| -> Vec<String> {
        let id = format!("id={old_id}");
        lines
            .into_iter()
            .filter(|line| line.contains(&id))
            .collect()
    };
    let stalled = of_old(logs.lines_with("storage stalled: sync outstanding for"));
    assert_eq!(stalled.len(), 1, "{stalled:#?}");
    assert!(stalled[0].contains("stepping down"), "{}", stalled[0]);
    let stepped_down = logs.lines_with("stepped down as leader");
    assert!(
        stepped_down
            .iter()
            .any(|line| line.contains(&format!("id={old_id}")) && line.contains("storage_stalled")),
        "{stepped_down:#?}"
    );
    let recovered = of_old(logs.lines_with("storage recovered after"));
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    eprintln!("{}\n{}", stalled[0], recovered[0]);
    let new_leader_status = handles
        .iter()
        .find(|h| h.id() == new_leader.id)
        .unwrap()
        .status();
    eprintln!(
        "disk stall of node {old_id} (term {old_term}, stall limit {} ms): node {} leads \
         (term {}) {} ms after the stall began = {:.2} election timeouts of {ELECTION_TIMEOUT_MS} ms; \
         stall reported after {} ms (role then: {reported_role}), old leader no longer leading after \
         {} ms; rejoined as follower in term {} (leader {:?}) {} ms after the stall began, \
         {} ms after it ended; the new leader is in term {}; {} writes acknowledged, {} after the \
         stall began, all on every node",
        stall_timeout.as_millis(),
        new_leader.id,
        new_leader.term,
        replaced_after.as_millis(),
        replaced_after.as_secs_f64() * 1000.0 / ELECTION_TIMEOUT_MS as f64,
        reported_after.as_millis(),
        stepped_down_after.as_millis(),
        rejoined.term,
        rejoined.leader,
        rejoined_after.as_millis(),
        (rejoined_after - STALL).as_millis(),
        new_leader_status.term,
        acknowledged.len(),
        written_since,
    );
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
