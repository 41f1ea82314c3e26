//! Membership changes through the library API: a learner added to a
//! running three-node cluster, promoted, and an old voter removed, while
//! writes go on; then restarts with `cluster.toml` updated to match, and
//! one with a stale `cluster.toml`, which the node refuses.

use skiff_node::local::LocalCluster;
use skiff_node::{
    ChangeMembershipError, LogIndex, MemberAddresses, MembershipChange, MembershipError, Node,
    NodeHandle, NodeId, Role, StartError, SubmitError,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const LEARNER: NodeId = NodeId(4);

/// Nodes 1 to 3 the first voters, node 4 listed as a learner (it starts
/// outside the cluster, and is added by a change).
fn cluster(dir: &std::path::Path) -> LocalCluster {
    let mut cluster = LocalCluster::bind(4, dir).unwrap();
    cluster.config.cluster_id = 16;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    cluster.config.nodes[3].learner = true;
    cluster
}

/// Waits until `check` holds for the statuses of `handles`.
async fn wait_until(handles: &[NodeHandle], what: &str, check: impl Fn(&[NodeHandle]) -> bool) {
    let mut watchers: Vec<_> = handles.iter().map(NodeHandle::watch_status).collect();
    tokio::time::timeout(TIMEOUT, async {
        while !check(handles) {
            // Any node's next turn may be the one that makes it hold.
            let changes = watchers.iter_mut().map(|w| Box::pin(w.changed()));
            let _ = futures_select_any(changes).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let statuses: Vec<_> = handles
            .iter()
            .map(|h| (h.status(), h.membership()))
            .collect();
        panic!("timed out waiting until {what}: {statuses:#?}")
    });
}

/// Resolves when the first of `futures` does.
async fn futures_select_any<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        let mut futures = futures.iter_mut();
        match futures.any(|f| std::pin::Pin::new(f).poll(cx).is_ready()) {
            true => std::task::Poll::Ready(()),
            false => std::task::Poll::Pending,
        }
    })
    .await
}

/// The handle of the node all of `handles` agree leads.
async fn leader(handles: &[NodeHandle]) -> NodeHandle {
    wait_until(handles, "a leader is known to all", |handles| {
        let leader = handles.iter().find(|h| h.status().role == Role::Leader);
        leader.is_some_and(|l| handles.iter().all(|h| h.status().leader == Some(l.id())))
    })
    .await;
    let leader = handles.iter().find(|h| h.status().role == Role::Leader);
    leader.expect("found above").clone()
}

/// Asks whoever leads among `handles` for `change`, following refusals
/// that say to retry (another leader, one not ready yet).
async fn change(
    handles: &[NodeHandle],
    change: MembershipChange,
    addresses: Option<MemberAddresses>,
) -> LogIndex {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let leader = leader(handles).await;
            match leader.change_membership(change, addresses).await {
                Ok(index) => return index,
                // A leader elected after the last change committed elsewhere
                // refuses until it has committed it again in its term.
                Err(ChangeMembershipError::Refused(
                    MembershipError::NotLeader { .. }
                    | MembershipError::LeaderNotReady
                    | MembershipError::ChangeInProgress,
                )) => tokio::time::sleep(Duration::from_millis(20)).await, // lets the cluster settle
                Err(other) => panic!("{change} failed: {other}"),
            }
        }
    })
    .await
    .expect("the change commits")
}

/// Submits `data` to whichever of `handles` leads, again after a refusal
/// while an election runs, and returns its index; panics with `what`
/// after [`TIMEOUT`].
async fn submit_to_leader(handles: &[NodeHandle], data: &'static str, what: &str) -> LogIndex {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let leader = leader(handles).await;
            match leader.submit(data).await {
                Ok(index) => return index,
                Err(SubmitError::NotLeader { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await // a new election
                }
                Err(other) => panic!("{other}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Submits one write after another to whichever of `handles` leads,
/// counting those acknowledged, until `stop`.
fn write_load(
    handles: Arc<Mutex<Vec<NodeHandle>>>,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sequence = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let candidates = handles.lock().unwrap().clone();
            let leader = candidates
                .iter()
                .find(|h| h.status().role == Role::Leader)
                .cloned();
            let Some(leader) = leader else {
                tokio::time::sleep(Duration::from_millis(5)).await; // no leader yet
                continue;
            };
            sequence += 1;
            let submitted = tokio::time::timeout(
                Duration::from_secs(2),
                leader.submit(format!("w{sequence}")),
            );
            match submitted.await {
                Ok(Ok(_)) => {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(SubmitError::NotLeader { .. } | SubmitError::TransferInProgress { .. }))
                | Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Ok(Err(other)) => panic!("write failed: {other}"),
            }
        }
    })
}

/// Waits until `acknowledged` passes what it was when called by `more`.
async fn writes_commit(acknowledged: &AtomicU64, more: u64, during: &str) {
    let from = acknowledged.load(Ordering::Relaxed);
    tokio::time::timeout(TIMEOUT, async {
        while acknowledged.load(Ordering::Relaxed) < from + more {
            tokio::time::sleep(Duration::from_millis(5)).await; // polls the counter
        }
    })
    .await
    .unwrap_or_else(|_| panic!("writes stopped committing {during}"));
}

fn ids(members: &[(NodeId, MemberAddresses)]) -> Vec<NodeId> {
    members.iter().map(|(id, _)| *id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_is_added_promoted_and_an_old_voter_removed_while_writes_commit() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=4 {
        nodes.push(cluster.start_node(NodeId(id)).await.expect("node starts"));
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    let voters = &handles[..3];
    let first_leader = leader(voters).await;
    let view = first_leader.membership();
    assert_eq!(ids(&view.voters), [NodeId(1), NodeId(2), NodeId(3)]);
    assert!(view.learners.is_empty() && !view.change_pending, "{view:?}");

    let shared = Arc::new(Mutex::new(voters.to_vec()));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let load = write_load(shared.clone(), stop.clone(), acknowledged.clone());
    writes_commit(&acknowledged, 20, "before any change").await;

    // Adding a learner needs its addresses.
    assert_eq!(
        first_leader
            .change_membership(MembershipChange::AddLearner(LEARNER), None)
            .await,
        Err(ChangeMembershipError::AddressesRequired)
    );
    let learner_config = cluster.config.node(LEARNER).unwrap().clone();
    let addresses = MemberAddresses {
        peer: learner_config.peer_address,
        client: learner_config.client_address,
    };
    let added = change(
        voters,
        MembershipChange::AddLearner(LEARNER),
        Some(addresses),
    )
    .await;
    let view = leader(voters).await.membership();
    assert_eq!(view.learners, [(LEARNER, addresses)], "{view:?}");
    writes_commit(&acknowledged, 20, "after the learner was added").await;
    // The learner catches up from the log, and sees itself a learner.
    let learner = handles[3].clone();
    wait_until(
        std::slice::from_ref(&learner),
        "the learner caught up",
        |h| h[0].status().commit_index >= added,
    )
    .await;
    assert_eq!(ids(&learner.membership().learners), [LEARNER]);
    assert_eq!(learner.status().role, Role::Follower);
    let lag = leader(voters).await.membership().lag_of(LEARNER);
    assert!(lag.is_some(), "the leader reports the learner's lag");

    change(voters, MembershipChange::Promote(LEARNER), None).await;
    let promoted = leader(voters).await.membership();
    assert_eq!(
        ids(&promoted.voters),
        [NodeId(1), NodeId(2), NodeId(3), LEARNER]
    );
    writes_commit(&acknowledged, 20, "after the promotion").await;

    // Remove an old voter that does not lead.
    let leader_id = leader(voters).await.id();
    let removed = [NodeId(1), NodeId(2), NodeId(3)]
        .into_iter()
        .find(|id| *id != leader_id)
        .unwrap();
    let remaining: Vec<NodeHandle> = handles
        .iter()
        .filter(|h| h.id() != removed)
        .cloned()
        .collect();
    *shared.lock().unwrap() = remaining.clone();
    let removal = change(&remaining, MembershipChange::Remove(removed), None).await;
    writes_commit(&acknowledged, 20, "after the removal").await;
    let view = leader(&remaining).await.membership();
    assert_eq!(view.voters.len(), 3, "{view:?}");
    assert!(!view.contains(removed), "{view:?}");
    // Another change of the same node is refused with a clear reason.
    let again = leader(&remaining)
        .await
        .change_membership(MembershipChange::Remove(removed), None)
        .await;
    assert_eq!(
        again,
        Err(ChangeMembershipError::Refused(MembershipError::UnknownNode))
    );
    // The removed node hears nothing more (the leader stopped replicating
    // to it when it appended the change), and cannot disrupt the others:
    // their term holds while writes go on.
    let term = leader(&remaining).await.status().term;
    writes_commit(&acknowledged, 50, "with the removed node still running").await;
    assert_eq!(leader(&remaining).await.status().term, term);

    // The leader removes itself: it leads until the change commits (its
    // followers still answer it), then steps down, and the two left elect
    // one of them while writes go on.
    let old_leader = leader(&remaining).await;
    let mut watch = old_leader.watch_status();
    let self_removal = old_leader
        .change_membership(MembershipChange::Remove(old_leader.id()), None)
        .await
        .expect("a leader may remove itself");
    tokio::time::timeout(TIMEOUT, watch.wait_for(|s| s.role != Role::Leader))
        .await
        .expect("the removed leader steps down")
        .unwrap();
    let remaining: Vec<NodeHandle> = remaining
        .into_iter()
        .filter(|h| h.id() != old_leader.id())
        .collect();
    *shared.lock().unwrap() = remaining.clone();
    writes_commit(&acknowledged, 20, "after the leader removed itself").await;
    let view = leader(&remaining).await.membership();
    assert_eq!(view.voters.len(), 2, "{view:?}");
    assert!(!view.contains(old_leader.id()), "{view:?}");
    assert!(self_removal > removal);

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    for node in nodes {
        node.shutdown().await.unwrap();
    }

    // A restart with the old cluster.toml: the data directory's
    // configuration disagrees, and the node says so.
    let survivor = remaining[0].id();
    let stale = cluster.start_node(survivor).await.unwrap_err();
    let text = stale.to_string();
    assert!(
        matches!(stale, StartError::MembershipMismatch { .. }),
        "{text}"
    );
    assert!(text.contains("skiff member list"), "{text}");

    // cluster.toml updated to match: the removed node gone, the learner a
    // voter. The survivors come back with the new configuration and go on.
    cluster
        .config
        .nodes
        .retain(|n| n.id != removed.0 && n.id != old_leader.id().0);
    for node in &mut cluster.config.nodes {
        node.learner = false;
    }
    let mut restarted = Vec::new();
    for handle in &remaining {
        restarted.push(cluster.start_node(handle.id()).await.expect("restarts"));
    }
    let handles: Vec<NodeHandle> = restarted.iter().map(Node::handle).collect();
    let view = handles[0].membership();
    let mut expected: Vec<NodeId> = remaining.iter().map(NodeHandle::id).collect();
    expected.sort_unstable();
    assert_eq!(ids(&view.voters), expected, "{view:?}");
    let index = submit_to_leader(
        &handles,
        "after the restart",
        "a write commits after the restart",
    )
    .await;
    assert!(index > self_removal);
    for node in restarted {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_away_while_every_other_member_was_replaced_catches_up_from_the_new_ones() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    // Nodes 1 to 3 the first voters; 4 and 5 the replacements of 1 and 2.
    let mut cluster = LocalCluster::bind(5, dir.path()).unwrap();
    cluster.config.cluster_id = 17;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    cluster.config.nodes[3].learner = true;
    cluster.config.nodes[4].learner = true;
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=5 {
        nodes.push(cluster.start_node(NodeId(id)).await.expect("node starts"));
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    leader(&handles[..3]).await;
    // Node 3 goes away, knowing only the first configuration.
    let away = nodes.remove(2);
    away.shutdown().await.unwrap();
    let mut present: Vec<NodeHandle> = handles
        .into_iter()
        .filter(|h| h.id() != NodeId(3))
        .collect();
    let leader_of = |present: &[NodeHandle]| {
        present
            .iter()
            .filter(|h| h.id() <= NodeId(2))
            .cloned()
            .collect::<Vec<_>>()
    };
    for new in [NodeId(4), NodeId(5)] {
        let config = cluster.config.node(new).unwrap().clone();
        let addresses = MemberAddresses {
            peer: config.peer_address,
            client: config.client_address,
        };
        change(
            &leader_of(&present),
            MembershipChange::AddLearner(new),
            Some(addresses),
        )
        .await;
        change(&leader_of(&present), MembershipChange::Promote(new), None).await;
    }
    // Every member that knew node 3's log is removed and stopped: 4 and 5
    // carry the cluster, and only they can bring node 3 up to date.
    for old in [NodeId(1), NodeId(2)] {
        change(&present, MembershipChange::Remove(old), None).await;
        present.retain(|h| h.id() != old);
        let position = nodes.iter().position(|n| n.handle().id() == old).unwrap();
        nodes.remove(position).shutdown().await.unwrap();
    }
    let new_leader = leader(&present).await;
    let written = new_leader.submit("while node 3 was away").await.unwrap();
    assert_eq!(
        ids(&new_leader.membership().voters),
        [NodeId(3), NodeId(4), NodeId(5)]
    );

    // Node 3 comes back with its data directory and the cluster.toml of
    // its time: its configuration names neither 4 nor 5.
    cluster.config.nodes.retain(|n| n.id <= 3);
    cluster
        .config
        .nodes
        .iter_mut()
        .for_each(|n| n.learner = false);
    let back = cluster
        .start_node(NodeId(3))
        .await
        .expect("node 3 restarts");
    assert_eq!(
        ids(&back.handle().membership().voters),
        [NodeId(1), NodeId(2), NodeId(3)]
    );
    // It answers the new leader, which it did not know, and catches up:
    // the configuration that replaced 1 and 2, and the write after it.
    let back_handle = back.handle();
    wait_until(
        std::slice::from_ref(&back_handle),
        "node 3 caught up",
        |h| {
            h[0].status().commit_index >= written
                && h[0].status().leader.is_some_and(|l| l > NodeId(3))
        },
    )
    .await;
    let view = back_handle.membership();
    assert_eq!(
        ids(&view.voters),
        [NodeId(3), NodeId(4), NodeId(5)],
        "{view:?}"
    );
    // And it counts again: with node 5 stopped, 3 and 4 commit.
    let five = nodes.pop().unwrap();
    assert_eq!(five.handle().id(), NodeId(5));
    five.shutdown().await.unwrap();
    let remaining = [nodes[0].handle(), back_handle.clone()];
    let index = submit_to_leader(
        &remaining,
        "with node 5 stopped",
        "nodes 3 and 4 commit without node 5",
    )
    .await;
    assert!(index > written);
    back.shutdown().await.unwrap();
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
