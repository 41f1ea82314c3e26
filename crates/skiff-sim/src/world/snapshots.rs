//! Snapshots in the world: each node's application takes them as the
//! policy says, and leaders stream them to followers over the faulty
//! network.
//!
//! # Taking one
//!
//! After a batch, a node that applied at least `every` entries past its
//! current snapshot captures its applied state (instantly), writes it
//! durably (its own file, synced at once) and then tells its machine
//! (`Event::SnapshotTaken`), which compacts. The policy is drawn per seed,
//! from never to every 5 entries, unless `--compact-every` fixes it.
//!
//! # Sending one
//!
//! A `Send` of an `InstallSnapshotReq` becomes a transfer of the sender's
//! current snapshot (which must be the one the message names), cut into
//! chunks by its modelled size. Each chunk crosses the network on its own:
//! it may be lost, duplicated, delayed past later ones, or blocked by a
//! partition. The receiver keeps what arrived; only when every chunk has,
//! the snapshot is whole and durable and the message reaches its machine.
//! A lost chunk stalls the transfer until the leader asks again (about
//! every 20 heartbeats): the same snapshot to the same peer then resumes
//! it, sending only the missing chunks; another snapshot replaces it. A
//! crash of the receiver loses what it received; a crash of the sender
//! ends its transfers. When the last chunk arrives the receiver sometimes
//! gets a crash armed, so that it crashes in the middle of the install.

use super::batch::{kind, Input};
use super::{Phase, World, WorldEvent};
use crate::app::Snapshot;
use crate::checker::{snapshot_state, Failure, Rule};
use crate::network::Fate;
use crate::options::SimOptions;
use crate::rng::SimRng;
use crate::trace::{hash_event, Time};
use skiff_core::{Event, InstallSnapshotReq, Message, NodeId, SnapshotMeta};

/// Policies drawn per seed, in applied entries between snapshots (0: never).
const EVERY: [u64; 6] = [0, 0, 5, 5, 20, 100];
/// Chunk sizes drawn per seed, in bytes.
const CHUNK_BYTES: [u64; 3] = [64, 256, 1024];
/// The most chunks a transfer is cut into, however large the snapshot.
const CHUNKS_MAX: u64 = 64;

/// The snapshot policy of a run and the transfers in progress.
#[derive(Debug)]
pub(super) struct Snapshots {
    every: u64,
    chunk_bytes: u64,
    transfers: Vec<Transfer>,
    next_transfer: u64,
}

/// One snapshot on its way from one node to another.
#[derive(Debug)]
struct Transfer {
    id: u64,
    from: usize,
    to: usize,
    /// The newest request for it, delivered once the snapshot is whole.
    req: InstallSnapshotReq,
    snapshot: Snapshot,
    arrived: Vec<bool>,
    missing: usize,
    delivered: bool,
}

impl Snapshots {
    /// The policy for `options`: the one asked for, or one drawn.
    pub(super) fn draw(options: &SimOptions, rng: &mut SimRng) -> Snapshots {
        let drawn = EVERY[rng.index(EVERY.len())];
        let chunk_bytes = CHUNK_BYTES[rng.index(CHUNK_BYTES.len())];
        Snapshots {
            every: options.compact_every.unwrap_or(drawn),
            chunk_bytes,
            transfers: Vec::new(),
            next_transfer: 1,
        }
    }

    /// Applied entries between snapshots (0: never).
    pub(super) fn every(&self) -> u64 {
        self.every
    }

    /// The size of a chunk, in bytes.
    pub(super) fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    fn chunks_of(&self, snapshot: &Snapshot) -> usize {
        let chunks = snapshot.state.snapshot_bytes().div_ceil(self.chunk_bytes);
        chunks.clamp(1, CHUNKS_MAX) as usize
    }

    /// Node index `index` crashed: what it was receiving is lost, and what
    /// it was sending stops.
    pub(super) fn crashed(&mut self, index: usize) {
        self.transfers.retain(|t| t.from != index && t.to != index);
    }
}

impl World {
    /// After a batch of node index `index`: takes a snapshot of its applied
    /// state if the policy says it is due, and tells its machine.
    pub(super) fn maybe_take_snapshot(&mut self, index: usize) {
        let every = self.snapshots.every;
        let node = &self.nodes[index];
        if every == 0 || node.machine.is_none() || self.violation.is_some() {
            return;
        }
        let applied = node.app.applied;
        if applied.0 < node.disk.snapshot().index.0.saturating_add(every) {
            return;
        }
        let id = node.id;
        let Some(term) = node.disk.term_at(applied) else {
            let detail = format!("node {id} applied index {applied}, which its disk does not hold");
            self.fail(Failure::new(Rule::DurableState, vec![id], detail));
            return;
        };
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: applied,
                term,
            },
            state: node.app,
        };
        if let Err(failure) = self.checkers.snapshot(id, &snapshot, "took") {
            self.fail(failure);
            return;
        }
        if let Err(refused) = self.nodes[index].disk.store_snapshot(snapshot) {
            let detail = format!("node {id} {refused}");
            self.fail(Failure::new(Rule::DurableState, vec![id], detail));
            return;
        }
        self.stats.snapshots_taken += 1;
        hash_event(
            self.trace.hasher(),
            kind::SNAPSHOT,
            self.now,
            index,
            applied.0,
        );
        if self.trace.wants_text() {
            let (now, meta, state) = (Time(self.now), snapshot.meta, snapshot.state);
            self.trace.line(format_args!(
                "{now} on {id} snapshot taken through {meta} ({state}), durable"
            ));
        }
        let taken = Event::SnapshotTaken { index: applied };
        self.run_batch(index, Input::Step(taken), None);
    }

    /// A `Send` of `req` by node index `from` to `to`: starts a transfer of
    /// its current snapshot, or resumes the one in progress.
    pub(super) fn send_snapshot(
        &mut self,
        from: usize,
        to: NodeId,
        req: InstallSnapshotReq,
    ) -> Result<(), Failure> {
        self.stats.messages_sent += 1;
        let to_index = (to.0 as usize).wrapping_sub(1);
        if to_index >= self.nodes.len() || to_index == from {
            self.trace_send(to, &req, "  # not a peer: lost");
            return Ok(()); // nowhere to deliver
        }
        let id = self.nodes[from].id;
        let current = self.nodes[from].disk.current_snapshot();
        snapshot_state::check_sent(id, req.snapshot, current.as_ref())?;
        let Some(snapshot) = current else {
            return Ok(()); // check_sent refuses a missing snapshot
        };
        self.checkers.snapshot(id, &snapshot, "sent")?;
        let transfers = &mut self.snapshots.transfers;
        let existing = transfers
            .iter()
            .position(|t| t.from == from && t.to == to_index);
        let resumable = existing.filter(|at| {
            let transfer = &transfers[*at];
            transfer.snapshot.meta == req.snapshot && !transfer.delivered
        });
        let at = match resumable {
            Some(at) => {
                transfers[at].req = req.clone();
                at
            }
            None => {
                if let Some(at) = existing {
                    transfers.swap_remove(at);
                }
                let chunks = self.snapshots.chunks_of(&snapshot);
                let transfer = Transfer {
                    id: self.snapshots.next_transfer,
                    from,
                    to: to_index,
                    req: req.clone(),
                    snapshot,
                    arrived: vec![false; chunks],
                    missing: chunks,
                    delivered: false,
                };
                self.snapshots.next_transfer += 1;
                self.stats.transfers_started += 1;
                self.snapshots.transfers.push(transfer);
                self.snapshots.transfers.len() - 1
            }
        };
        let transfer = &self.snapshots.transfers[at];
        let transfer_id = transfer.id;
        let missing: Vec<usize> = (0..transfer.arrived.len())
            .filter(|chunk| !transfer.arrived[*chunk])
            .collect();
        let note = format!(
            "  # transfer {transfer_id}: {} of {} chunks to send",
            missing.len(),
            transfer.arrived.len()
        );
        self.trace_send(to, &req, &note);
        for chunk in missing {
            self.send_chunk(from, to_index, transfer_id, chunk);
        }
        Ok(())
    }

    fn trace_send(&mut self, to: NodeId, req: &InstallSnapshotReq, note: &str) {
        if self.trace.wants_text() {
            let message = Message::InstallSnapshotReq(req.clone());
            self.trace
                .line(format_args!("  Send(to={to}, {message}){note}"));
        }
    }

    /// One chunk onto the network.
    fn send_chunk(&mut self, from: usize, to: usize, transfer: u64, chunk: usize) {
        self.stats.chunks_sent += 1;
        let fate = self.network.fate(&mut self.rng, self.now, from, to);
        let h = self.trace.hasher();
        match fate {
            Fate::Blocked | Fate::Lost => {
                hash_event(h, kind::CHUNK_FATE, 0, chunk, transfer);
                self.stats.chunks_lost += 1;
            }
            Fate::Delivered { at, duplicate_at } => {
                hash_event(h, kind::CHUNK_FATE, at, chunk, duplicate_at.unwrap_or(0));
                let arrival = |at| {
                    (
                        at,
                        WorldEvent::Chunk {
                            from,
                            to,
                            transfer,
                            chunk,
                        },
                    )
                };
                for (at, event) in [Some(at), duplicate_at].into_iter().flatten().map(arrival) {
                    self.queue.push(at, event);
                }
            }
        }
    }

    /// A chunk arrives at node index `to`. The last one missing makes the
    /// snapshot whole: durable at the receiver, and its request delivered.
    pub(super) fn chunk_arrives(&mut self, from: usize, to: usize, transfer: u64, chunk: usize) {
        hash_event(self.trace.hasher(), kind::CHUNK, self.now, to, transfer);
        if self.nodes[to].machine.is_none() {
            self.stats.chunks_lost += 1;
            return;
        }
        let transfers = &mut self.snapshots.transfers;
        // A transfer replaced, or ended by a crash, takes no more chunks.
        let Some(at) = transfers.iter().position(|t| t.id == transfer) else {
            return;
        };
        let transfer = &mut transfers[at];
        if std::mem::replace(&mut transfer.arrived[chunk], true) {
            return; // a duplicate
        }
        transfer.missing -= 1;
        if transfer.missing > 0 {
            return;
        }
        transfer.delivered = true;
        let (req, snapshot, chunks) = (
            transfer.req.clone(),
            transfer.snapshot,
            transfer.arrived.len(),
        );
        self.stats.transfers_completed += 1;
        let from_id = self.nodes[from].id;
        if self.trace.wants_text() {
            let (now, id, meta) = (Time(self.now), self.nodes[to].id, snapshot.meta);
            self.trace.line(format_args!(
                "{now} on {id} snapshot {meta} from {from_id} whole ({chunks} chunks), durable"
            ));
        }
        self.nodes[to].disk.receive_snapshot(snapshot);
        self.maybe_arm_install_crash(to);
        self.deliver(from_id, to, Message::InstallSnapshotReq(req));
        self.nodes[to].disk.discard_received();
    }

    /// Sometimes, in the faulty part of a run with crashes, a node about
    /// to install a snapshot crashes in the middle of the install.
    fn maybe_arm_install_crash(&mut self, index: usize) {
        let crashes = self.phase == Phase::Faulty && self.options.faults.crash_rate > 0.0;
        if !crashes || self.nodes[index].crash_armed || self.rng.below(4) != 0 {
            return;
        }
        if !self.crash_allowed() {
            return;
        }
        self.nodes[index].crash_armed = true;
        let id = self.nodes[index].id;
        self.trace_world(format_args!(
            "# crash of {id} armed for its next batch that persists (an install)"
        ));
    }

    /// A `SnapshotInstall` of node index `index`: the snapshot it received
    /// whole, which becomes its application's state.
    pub(super) fn installed_snapshot(
        &mut self,
        index: usize,
        meta: SnapshotMeta,
    ) -> Result<Snapshot, Failure> {
        let node = &self.nodes[index];
        let Some(snapshot) = node.disk.received().filter(|r| r.meta == meta) else {
            let id = node.id;
            return Err(Failure::new(
                Rule::DurableState,
                vec![id],
                format!("node {id} installed snapshot {meta}, which it has not received whole"),
            ));
        };
        self.checkers.installed(node.id, &node.app, &snapshot)?;
        self.stats.snapshots_installed += 1;
        Ok(snapshot)
    }
}
