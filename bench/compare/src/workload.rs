//! The two workloads, written once for every implementation.

use crate::alloc_counter::{self, Counted};
use crate::cluster::Cluster;
use std::time::{Duration, Instant};

/// Data size of a sequential append.
pub const SEQUENTIAL_BYTES: usize = 16;
/// Data size of a pipelined append.
pub const PIPELINED_BYTES: usize = 128;
/// Appends the client offers per loop turn in the pipelined workload.
pub const PIPELINED_PER_TURN: u64 = 1_000;

/// The most rounds one sequential append may take to commit; a sane
/// implementation needs three.
const ROUNDS_PER_COMMIT_MAX: usize = 100;

/// What one sequential run measured.
#[derive(Clone, Copy, Debug)]
pub struct Sequential {
    /// Commits per second over the whole run.
    pub commits_per_second: f64,
    /// Mean time from handing an append to the leader until the leader
    /// reports it committed.
    pub latency_mean: Duration,
}

/// One 16-byte append at a time, each committed on the leader before the
/// next is offered.
pub fn sequential<C: Cluster>(peers: u64, appends: u64) -> Sequential {
    let mut cluster = C::elect(peers);
    let result = sequential_loop(&mut cluster, appends);
    drop(cluster); // outside the loop: callgrind's --toggle-collect leaves it out
    result
}

/// The timed part of [`sequential`], apart so that callgrind can count it
/// alone (`--toggle-collect='*sequential_loop*'`).
#[inline(never)]
pub fn sequential_loop<C: Cluster>(cluster: &mut C, appends: u64) -> Sequential {
    let payload = [0x5a_u8; SEQUENTIAL_BYTES];
    let started = Instant::now();
    for appended in 1..=appends {
        commit_one(cluster, &payload, appended);
    }
    let elapsed = started.elapsed();
    // Each append is offered the moment the previous one has committed, so
    // the loop's time divided by the appends is the mean time from offer to
    // commit. Reading the clock around every append instead would add two
    // clock reads (about 40 ns) to each one, more than a tenth of skiff's.
    Sequential {
        commits_per_second: appends as f64 / elapsed.as_secs_f64(),
        latency_mean: elapsed.div_f64(appends as f64),
    }
}

/// Heap allocations of `appends` entries of the sequential workload:
/// everything allocated from the client's data buffer through every
/// message, log entry and action until the leader reports the commit.
/// The cluster is elected and warmed up first, so buffers that are reused
/// (queues, action vectors, logs growing by doubling) count only as their
/// amortised share.
pub fn sequential_allocations<C: Cluster>(peers: u64, appends: u64) -> Counted {
    let mut cluster = C::elect(peers);
    let payload = [0x5a_u8; SEQUENTIAL_BYTES];
    let warm_up = appends / 10;
    for appended in 1..=warm_up {
        commit_one(&mut cluster, &payload, appended);
    }
    alloc_counter::start();
    for appended in warm_up + 1..=warm_up + appends {
        commit_one(&mut cluster, &payload, appended);
    }
    alloc_counter::stop()
}

fn commit_one<C: Cluster>(cluster: &mut C, payload: &[u8], target: u64) {
    cluster.append(payload);
    let mut rounds = 0;
    while cluster.committed() < target {
        cluster.round();
        rounds += 1;
        assert!(
            rounds <= ROUNDS_PER_COMMIT_MAX,
            "{}: append {target} did not commit",
            C::NAME
        );
    }
}

/// `appends` appends of 128 bytes, [`PIPELINED_PER_TURN`] offered per loop
/// turn whatever is still uncommitted, then turns until all have committed.
/// Returns committed entries per second.
pub fn pipelined<C: Cluster>(peers: u64, appends: u64) -> f64 {
    let mut cluster = C::elect(peers);
    let rate = pipelined_loop(&mut cluster, appends);
    drop(cluster); // outside the loop: callgrind's --toggle-collect leaves it out
    rate
}

/// The timed part of [`pipelined`], apart so that callgrind can count it
/// alone (`--toggle-collect='*pipelined_loop*'`).
#[inline(never)]
pub fn pipelined_loop<C: Cluster>(cluster: &mut C, appends: u64) -> f64 {
    let payload = [0xa5_u8; PIPELINED_BYTES];
    // Every turn commits something once the pipeline is full; this bounds a
    // stuck implementation, not a slow one.
    let turns_max = appends * 10 + 1_000;
    let started = Instant::now();
    let mut offered = 0;
    let mut turns = 0;
    while cluster.committed() < appends {
        let batch = PIPELINED_PER_TURN.min(appends - offered);
        for _ in 0..batch {
            cluster.append(&payload);
        }
        offered += batch;
        cluster.round();
        turns += 1;
        assert!(turns <= turns_max, "{}: pipeline stalled", C::NAME);
    }
    let elapsed = started.elapsed();
    assert_eq!(cluster.committed(), appends, "{}: committed all", C::NAME);
    appends as f64 / elapsed.as_secs_f64()
}
