//! Real `skiff-register` processes on loopback: replication, restarts,
//! crash recovery and misbehaving peers.

mod common;

use common::{last_segment, Cluster};
use skiff_node::wire::{self, Frame, Hello};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Every value of `values`, in order, at the indices `acknowledged` says.
fn assert_holds(cluster: &Cluster, id: u64, acknowledged: &[(u64, String)]) {
    let dump = cluster.dump(id);
    for (index, value) in acknowledged {
        assert!(
            dump.contains(&(*index, value.clone())),
            "node {id} lacks {value} at {index}: {dump:?}\n{}",
            cluster.all_logs()
        );
    }
}

fn append_values(cluster: &Cluster, prefix: &str, count: usize) -> Vec<(u64, String)> {
    (0..count)
        .map(|n| {
            let value = format!("{prefix}-{n}");
            (cluster.append(&value), value)
        })
        .collect()
}

#[test]
fn three_nodes_elect_a_leader_and_replicate() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    cluster.wait_for_leader(TIMEOUT);
    let acknowledged = append_values(&cluster, "v", 20);
    let indices: Vec<u64> = acknowledged.iter().map(|(i, _)| *i).collect();
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "indices grow: {indices:?}"
    );
    let commit = cluster.wait_converged(indices[19], TIMEOUT);
    assert!(commit >= indices[19]);
    let first = cluster.dump(1);
    assert_eq!(
        first, acknowledged,
        "the log holds exactly the appended values"
    );
    for id in [2, 3] {
        assert_eq!(cluster.dump(id), first, "node {id} differs");
    }
}

#[test]
fn reads_at_the_leader_and_at_a_follower_see_every_acknowledged_value() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let leader = cluster.wait_for_leader(TIMEOUT);
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let acknowledged = append_values(&cluster, "r", 5);
    // No wait for convergence: the read barrier is the wait.
    assert_eq!(cluster.read(leader), Ok(acknowledged.clone()));
    // A follower read: the follower asks the leader for the read index and
    // answers once it has applied through it.
    assert_eq!(cluster.read(follower), Ok(acknowledged));
}

#[test]
fn a_restarted_node_catches_up() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let leader = cluster.wait_for_leader(TIMEOUT);
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let mut acknowledged = append_values(&cluster, "before", 10);
    cluster.kill(follower);
    acknowledged.extend(append_values(&cluster, "while-down", 10));
    cluster.start(follower);
    let last = acknowledged.last().unwrap().0;
    cluster.wait_converged(last, TIMEOUT);
    assert_holds(&cluster, follower, &acknowledged);
    assert_eq!(cluster.dump(follower), cluster.dump(leader));
}

#[test]
fn a_torn_tail_is_cut_off_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let acknowledged = append_values(&cluster, "v", 10);
    cluster.wait_converged(acknowledged.last().unwrap().0, TIMEOUT);
    cluster.kill_all();
    // Cut node 1's last record short, as a crash in the middle of writing
    // it would: segments are created at their full length, so a torn write
    // leaves zeros where the rest of the record would be. (A record cut
    // short was never synced, so in a real crash it was never acknowledged;
    // here it was, and the other nodes still hold it.)
    let segment = last_segment(cluster.data_dir(1));
    let mut bytes = fs::read(&segment).unwrap();
    let records_end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    bytes[records_end - 3..records_end].fill(0);
    // The crash also kept the last sync's slot from the disk (each segment
    // has two 32-byte sync slots after its 48-byte header, the latest with
    // the higher counter): otherwise the slot proves the record synced.
    let counter = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let latest_slot = if counter(48) > counter(80) { 48 } else { 80 };
    bytes[latest_slot..latest_slot + 32].fill(0);
    fs::write(&segment, bytes).unwrap();

    cluster.start_all();
    cluster.wait_converged(acknowledged.last().unwrap().0, TIMEOUT);
    for id in cluster.ids() {
        assert_holds(&cluster, id, &acknowledged);
    }
    let log = cluster.log(1);
    assert!(
        log.contains("cutting off a torn record"),
        "no warning in the log:\n{log}"
    );
    // The node appends after the cut as usual.
    let index = cluster.append("after");
    cluster.wait_converged(index, TIMEOUT);
    assert_holds(&cluster, 1, &[(index, "after".to_string())]);
}

#[test]
fn a_corrupt_record_mid_log_is_repaired_from_the_other_nodes_and_kept_aside() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let leader = cluster.wait_for_leader(TIMEOUT);
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let acknowledged = append_values(&cluster, "v", 5);
    cluster.wait_converged(acknowledged.last().unwrap().0, TIMEOUT);
    cluster.kill(follower);
    let segment = cluster.data_dir(follower).join(format!("{:020}.wal", 1));
    let mut bytes = fs::read(&segment).unwrap();
    let first_record = 48 + 2 * 32; // the segment header and its sync slots
    bytes[first_record + 20] ^= 0x55;
    fs::write(&segment, &bytes).unwrap();

    cluster.start(follower);
    let index = cluster.append("after");
    cluster.wait_converged(index, TIMEOUT);
    assert_holds(&cluster, follower, &acknowledged);
    assert_eq!(cluster.dump(follower), cluster.dump(leader));
    let log = cluster.log(follower);
    let kept = cluster.data_dir(follower).join("damaged-1");
    for expected in [
        format!("file={}", segment.display()),
        format!("offset={first_record}"),
        format!("moved_to={}", kept.display()),
        "repair finished".to_string(),
    ] {
        assert!(
            log.contains(&expected),
            "no {expected:?} in the log:\n{log}"
        );
    }
    let evidence = kept.join(segment.file_name().unwrap());
    assert_eq!(
        fs::read(evidence).unwrap(),
        bytes,
        "the damaged segment is kept as found"
    );
}

/// Writes `bytes` to the node's peer port and waits for the node to close.
fn intrude(address: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => answer,
        // Closing with our bytes unread makes the kernel reset the connection.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => answer,
        Err(e) => panic!("the node did not close the connection: {e}"),
    }
}

fn hello(cluster_id: u64, node_id: u64, peer_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let frame = Frame::Hello(Hello {
        cluster_id,
        node_id,
        peer_id,
        address: None,
    });
    wire::encode_frame(&frame, &mut out).unwrap();
    out
}

#[test]
fn garbage_and_foreign_peers_are_refused_while_the_cluster_works() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let leader = cluster.wait_for_leader(TIMEOUT);
    let peer_address = cluster.config.nodes[leader as usize - 1].peer_address;
    intrude(peer_address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    intrude(peer_address, &[0, 0, 0, 3, 99, 1, 2]); // bad version
    intrude(peer_address, &[0x7f, 0xff, 0xff, 0xff]); // absurd length
    let refused = intrude(peer_address, &hello(7, 2, leader));
    let body = bytes::Bytes::from(refused).slice(4..);
    // The refusal tells nothing; the reason is in the node's log.
    let expected = Frame::Refused(wire::REFUSAL.into());
    assert_eq!(wire::decode_frame(&body).unwrap(), expected);
    intrude(peer_address, &hello(cluster.config.cluster_id, 9, leader)); // unknown node

    let acknowledged = append_values(&cluster, "v", 5);
    cluster.wait_converged(acknowledged.last().unwrap().0, TIMEOUT);
    for id in cluster.ids() {
        assert_holds(&cluster, id, &acknowledged);
    }
    let log = cluster.log(leader);
    for reason in [
        "wire version 99",
        "frame length 2147483647",
        "cluster 7 is not",
        "node 9 is not a peer",
    ] {
        assert!(log.contains(reason), "{reason:?} not logged:\n{log}");
    }
}

#[test]
fn registers_snapshot_by_the_policy_and_restore_their_values_at_restart() {
    let mut cluster = Cluster::new(3);
    cluster.config.snapshot.entries = 20;
    cluster.config.save(&cluster.config_path).unwrap();
    cluster.start_all();
    cluster.wait_for_leader(TIMEOUT);
    let acknowledged = append_values(&cluster, "s", 50);
    cluster.wait_converged(acknowledged.last().unwrap().0, TIMEOUT);
    cluster.kill_all();
    for id in cluster.ids() {
        let snapshots = cluster.data_dir(id).join("snapshots");
        let taken = fs::read_dir(&snapshots)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".snap")
            })
            .count();
        assert!(
            taken >= 1,
            "node {id} took no snapshot in {}",
            snapshots.display()
        );
    }
    cluster.start_all();
    let leader = cluster.wait_for_leader(TIMEOUT);
    assert_eq!(cluster.read(leader), Ok(acknowledged.clone()));
    cluster.wait_converged(acknowledged.last().unwrap().0, TIMEOUT);
    for id in cluster.ids() {
        assert_eq!(cluster.dump(id), acknowledged, "node {id}");
    }
}
