//! The simulated world: nodes running real `skiff-core` machines, their
//! disks, a network, clients and a fault injector, all driven by one
//! seeded generator and one agenda of timed events. Single-threaded, so a
//! seed replays a run exactly.
//!
//! A run has two parts: the faulty part (until the time or step limit),
//! then a quiet period in which faults stop, partitions heal and every
//! node is up, and a new append must commit within the liveness bound.
//! The run ends at that commit, at the first violation, or when the
//! bound passes.
//!
//! The work is split by concern: `batch` runs one event through a machine
//! and performs its actions, `injection` crashes, restarts and partitions,
//! `clients` handles client requests (appends and reads), `storage` the
//! disks' faults, `snapshots` the nodes' snapshots and their transfers,
//! `forgery` the forged messages of `--forge`, `stall` the disks that
//! hang, `leadership` the time without a leader after heals and the
//! elections under partial partitions, `transfers` the leadership
//! transfers asked, and `membership` the membership churn (spare nodes
//! joining, promotions, removals, re-adds from their disks) and the
//! commit-quorum and change-ready checks that need every node's disk.

mod batch;
mod clients;
mod forgery;
mod injection;
mod leadership;
mod membership;
mod snapshots;
mod stall;
mod storage;
mod transfers;

use crate::app::AppState;
use crate::checker::leader_after_heal::LeaderAfterHeal;
use crate::checker::{Checkers, Failure, Leadership, Violation};
use crate::client::Client;
use crate::durable::Durable;
use crate::history::History;
use crate::network::Network;
use crate::options::{Limit, SimOptions};
use crate::queue::{EventQueue, Micros};
use crate::rng::Chance;
use crate::rng::SimRng;
use crate::stats::SimStats;
use crate::timeline::Timeline;
use crate::trace::{Time, Trace, TraceOutput};
use skiff_core::{Config, LogIndex, Machine, Message, NodeId, ReadId, Role, Term};

/// Something that happens at a point in simulated time.
#[derive(Debug)]
enum WorldEvent {
    /// A message arrives.
    Deliver {
        from: NodeId,
        to: usize,
        message: Message,
    },
    /// A node's alarm fires, unless a later alarm replaced it.
    Alarm { node: usize, generation: u64 },
    /// A client starts its next request.
    ClientSubmit { client: usize },
    /// A client's request reaches its node.
    ClientArrive { client: usize, attempt: u64 },
    /// A client gives up waiting.
    ClientTimeout { client: usize, attempt: u64 },
    /// The injector's next crash.
    Crash,
    /// A crashed node comes back.
    Restart { node: usize },
    /// The injector's next partition.
    PartitionStart,
    /// The current partition heals.
    PartitionHeal,
    /// The faulty part ends.
    QuietStart,
    /// The liveness bound passes.
    LivenessDeadline,
    /// A forged message reaches a node (`forgery.rs`).
    Forge,
    /// A chunk of a snapshot transfer arrives (`snapshots.rs`).
    Chunk {
        from: usize,
        to: usize,
        transfer: u64,
        chunk: usize,
    },
    /// The injector's next disk stall (`stall.rs`).
    StallStart,
    /// A node's disk answers again, unless the node crashed meanwhile.
    StallEnd { node: usize, incarnation: u64 },
    /// The injector's next leadership transfer (`transfers.rs`).
    TransferStart,
    /// The next membership change asked, with churn (`membership.rs`).
    ChangeStart,
    /// A change asked at once of a leader just elected (`membership.rs`).
    ChangeAfterElection,
    /// A node outside the cluster's configurations is stopped, unless it
    /// started a new life meanwhile (`membership.rs`).
    Stop { node: usize, incarnation: u64 },
}

/// One member of the cluster.
struct SimNode {
    id: NodeId,
    /// `None` while crashed.
    machine: Option<Machine>,
    disk: Durable,
    /// When the pending alarm fires, if one is armed.
    alarm_at: Option<Micros>,
    /// The time of the agenda event that will look at the alarm, if any.
    /// Re-arming later (a follower hearing from its leader) only moves
    /// `alarm_at`; the event then finds it moved and schedules itself again,
    /// so the agenda holds one alarm event per node instead of one per re-arm.
    alarm_event_at: Option<Micros>,
    /// Bumped whenever an earlier alarm event replaces a pending one, and by
    /// a crash, so that replaced events are ignored.
    alarm_generation: u64,
    /// Bumped by every crash, so that answers of a past life are not taken
    /// for answers to requests made to this one.
    incarnation: u64,
    /// Crash in the middle of the next batch that persists something.
    crash_armed: bool,
    /// Synced records of its disk were damaged since it last started.
    damage_pending: bool,
    /// Its application's state: the committed entries it applied, from its
    /// snapshot on.
    app: AppState,
    /// Reads its machine made ready (`ReadReady`) whose index its
    /// application has not applied yet: answered when it has.
    reads: Vec<(ReadId, LogIndex)>,
    /// A disk stall of this length (microseconds) hangs its next batch
    /// that writes (`stall.rs`).
    stall_armed: Option<Micros>,
    /// The stall in progress: the node steps nothing meanwhile.
    stall: Option<stall::Stall>,
    /// Part of the world: a first voter, or a spare started to join and
    /// not stopped since (`membership.rs`). Only present nodes restart.
    present: bool,
    /// Its stop is scheduled (`membership.rs`).
    stopping: bool,
    /// When it last started to join (0 for the first voters).
    joined_at: Micros,
    /// It joins again after a former life and restarts repairing until
    /// it has repaired (`membership.rs`).
    rejoin: bool,
}

impl SimNode {
    /// Faulty from its disk's damage until it has finished repairing.
    fn faulty(&self) -> bool {
        self.damage_pending || self.disk.unrepaired()
    }

    /// Down, or about to go down or stall, or stalled: the injector counts
    /// it against the majority it keeps available.
    fn unavailable(&self) -> bool {
        self.machine.is_none()
            || self.crash_armed
            || self.stall_armed.is_some()
            || self.stall.is_some()
    }
}

/// The parts of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Faulty,
    Quiet,
}

/// A whole simulated run.
pub struct World {
    options: SimOptions,
    config: Config,
    rng: SimRng,
    now: Micros,
    queue: EventQueue<WorldEvent>,
    nodes: Vec<SimNode>,
    network: Network,
    clients: Vec<Client>,
    /// The chance that a client's next request is a read.
    read_chance: Chance,
    checkers: Checkers,
    history: History,
    stats: SimStats,
    trace: Trace,
    /// Reused for every batch, so that stepping a machine allocates nothing.
    actions: Vec<skiff_core::Action>,
    phase: Phase,
    violation: Option<Violation>,
    /// The step from which trace text is written (0: all of it).
    text_from_step: u64,
    /// The liveness bound passed in a mode that does not check liveness.
    ended: bool,
    /// Snapshots and their transfers (`snapshots.rs`).
    snapshots: snapshots::Snapshots,
    /// The batch in progress compacted or replaced the log: its end
    /// compares the machine's whole log with the disk's.
    log_reshaped: bool,
    /// This seed's disks stall (`stall.rs`).
    stalls_on: bool,
    /// The time from heals to a followed leader (`leadership.rs`).
    heal: LeaderAfterHeal,
    /// The highest term any node has held.
    highest_term: Term,
    /// When the partial partition in force began, if one is.
    partial_since: Option<Micros>,
    /// The recording for the page, when one is asked for (`timeline`).
    timeline: Option<Box<Timeline>>,
    /// The membership's churn, when the profile asks for it (`membership.rs`).
    churn: Option<Box<membership::Churn>>,
    /// With forgeries on: the term and epoch of the last append request
    /// each node index sent each node (`forgery.rs`).
    epochs_sent:
        std::collections::HashMap<(usize, NodeId), (Term, u64), crate::hash::StableBuildHasher>,
}

/// What a finished run returns to the runner.
pub struct Outcome {
    /// The counters.
    pub stats: SimStats,
    /// The hash of the whole trace.
    pub trace_hash: u64,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// The first error writing the trace text, if any.
    pub trace_error: Option<std::io::Error>,
    /// How long after faults stopped a new append committed.
    pub recovered_after_us: Option<Micros>,
    /// The recording, if [`World::with_timeline`] asked for one.
    pub timeline: Option<Timeline>,
}

impl World {
    /// A world for `options` (which must be valid), tracing to `output`.
    pub fn new(options: &SimOptions, output: TraceOutput) -> World {
        let mut rng = SimRng::new(options.seed);
        let config = draw_config(options, &mut rng);
        let pool = membership::pool_size(options.nodes, options.membership);
        let nodes = (1..=pool as u64)
            .map(|id| SimNode {
                id: NodeId(id),
                machine: None,
                disk: Durable::default(),
                alarm_at: None,
                alarm_event_at: None,
                alarm_generation: 0,
                incarnation: 0,
                crash_armed: false,
                damage_pending: false,
                app: AppState::default(),
                reads: Vec::new(),
                stall_armed: None,
                stall: None,
                present: id <= options.nodes as u64,
                stopping: false,
                joined_at: 0,
                rejoin: false,
            })
            .collect();
        let snapshots = snapshots::Snapshots::draw(options, &mut rng);
        World {
            config,
            rng,
            now: 0,
            queue: EventQueue::default(),
            nodes,
            network: Network::new(&options.faults),
            clients: (1..=options.clients).map(Client::new).collect(),
            read_chance: Chance::new(options.read_share),
            checkers: Checkers::new(options.nodes)
                .with_pool(pool)
                .with_leadership(Leadership {
                    pre_vote: options.pre_vote,
                    check_quorum: options.check_quorum,
                    election_timeout_us: options.election_timeout_ms * 1000,
                    heartbeat_us: options.heartbeat_interval_ms * 1000,
                }),
            history: History::default(),
            stats: SimStats {
                runs: 1,
                ..SimStats::default()
            },
            trace: Trace::new(output),
            actions: Vec::with_capacity(64),
            phase: Phase::Faulty,
            violation: None,
            text_from_step: 0,
            ended: false,
            snapshots,
            log_reshaped: false,
            stalls_on: false,
            heal: LeaderAfterHeal::new(options.election_timeout_ms * 1000),
            highest_term: Term(0),
            partial_since: None,
            timeline: None,
            churn: membership::draw(options.nodes, options.membership),
            epochs_sent: Default::default(),
            options: options.clone(),
        }
    }

    /// Writes trace text only from world step `step` on (the hash still
    /// covers everything). Replays use it to quote the end of a run cheaply.
    pub fn with_text_from_step(mut self, step: u64) -> World {
        self.text_from_step = step;
        self.trace.set_muted(step > 0);
        self
    }

    /// Records the run into a [`Timeline`], returned in the [`Outcome`].
    pub fn with_timeline(mut self) -> World {
        let title = format!(
            "skiff sim: seed {}, {} nodes, faults {}",
            self.options.seed, self.options.nodes, self.options.profile
        );
        self.timeline = Some(Box::new(Timeline::new(&title, self.nodes.len(), "us")));
        self
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Outcome {
        self.begin();
        let step_limit = match self.options.limit {
            Limit::Steps(steps) => Some(steps),
            Limit::Time { .. } => None,
        };
        while self.violation.is_none()
            && !self.ended
            && self.checkers.liveness().recovered_at().is_none()
        {
            if self.phase == Phase::Faulty && step_limit.is_some_and(|s| self.stats.steps >= s) {
                self.start_quiet();
            }
            let Some((time, event)) = self.queue.pop() else {
                break;
            };
            self.now = time;
            self.checkers.set_now(time);
            self.stats.steps += 1;
            if self.stats.steps == self.text_from_step {
                self.trace.set_muted(false);
            }
            if let Some(event) = self.unless_stalled(event) {
                self.dispatch(event);
            }
            self.watch_leaderless();
        }
        self.finish()
    }

    fn begin(&mut self) {
        self.draw_stalls();
        if self.trace.wants_text() {
            let (o, c, f) = (&self.options, &self.config, &self.options.faults);
            let limit = match o.limit {
                Limit::Time { ms } => format!("time={ms}ms"),
                Limit::Steps(steps) => format!("steps={steps}"),
            };
            self.trace.line(format_args!(
                "# seed={} nodes={} clients={} {limit} faults={} loss={} dup={} slow={} \
                 partition_rate={} crash_rate={} election={} heartbeat={} inflight_max={} \
                 entries_per_message_max={} disk_faults={} forgeries={} compact_every={} \
                 chunk_bytes={} prevote={} check_quorum={} stall_rate={} stalls={} \
                 stall_limit={}ms reads={} lease_read_margin={} transfer_rate={}",
                o.seed,
                o.nodes,
                o.clients,
                o.profile,
                f.loss,
                f.duplicate,
                f.latency_tail,
                f.partition_rate,
                f.crash_rate,
                c.election_timeout_ms,
                c.heartbeat_interval_ms,
                c.inflight_max,
                c.entries_per_message_max,
                o.disk_faults,
                o.forgeries,
                self.snapshots.every(),
                self.snapshots.chunk_bytes(),
                on_off(c.pre_vote),
                on_off(c.check_quorum),
                f.stall_rate,
                on_off(self.stalls_on),
                o.stall_limit_ms,
                o.read_share,
                c.lease_read_margin_ms
                    .map_or("off".to_string(), |m| format!("{m}ms")),
                f.transfer_rate,
            ));
            if self.churn.is_some() {
                let (first, pool) = (self.options.nodes, self.nodes.len());
                self.trace.line(format_args!(
                    "# membership=churn first_voters=1..={first} spares={}..={pool}",
                    first + 1
                ));
            }
        }
        for index in 0..self.nodes.len() {
            if self.nodes[index].present {
                self.boot(index);
            }
        }
        for client in 0..self.clients.len() {
            let at = self.rng.below(50_000);
            self.queue.push(at, WorldEvent::ClientSubmit { client });
        }
        self.schedule_first_faults();
        self.schedule_forgery();
        if let Limit::Time { ms } = self.options.limit {
            self.queue
                .push(ms.saturating_mul(1000), WorldEvent::QuietStart);
        }
    }

    fn dispatch(&mut self, event: WorldEvent) {
        match event {
            WorldEvent::Deliver { from, to, message } => self.deliver(from, to, message),
            WorldEvent::Alarm { node, generation } => self.alarm(node, generation),
            WorldEvent::ClientSubmit { client } => self.client_submit(client),
            WorldEvent::ClientArrive { client, attempt } => self.client_arrive(client, attempt),
            WorldEvent::ClientTimeout { client, attempt } => self.client_timeout(client, attempt),
            WorldEvent::Crash => self.crash_fault(),
            WorldEvent::Restart { node } => self.restart(node),
            WorldEvent::PartitionStart => self.partition_start(),
            WorldEvent::PartitionHeal => self.partition_heal(),
            WorldEvent::QuietStart => self.start_quiet(),
            WorldEvent::LivenessDeadline => self.liveness_deadline(),
            WorldEvent::Forge => self.forge(),
            WorldEvent::Chunk {
                from,
                to,
                transfer,
                chunk,
            } => self.chunk_arrives(from, to, transfer, chunk),
            WorldEvent::StallStart => self.stall_fault(),
            WorldEvent::StallEnd { node, incarnation } => self.end_stall(node, incarnation),
            WorldEvent::TransferStart => self.transfer_fault(),
            WorldEvent::ChangeStart => {
                self.schedule_change();
                self.change_fault();
            }
            WorldEvent::ChangeAfterElection => self.change_fault(),
            WorldEvent::Stop { node, incarnation } => self.stop(node, incarnation),
        }
    }

    fn finish(mut self) -> Outcome {
        if self.violation.is_none() {
            if let Err(failure) = self.history.check(self.checkers.agreed()) {
                self.fail(failure);
            }
        }
        self.stats.simulated_us = self.now;
        self.partition_ended();
        self.stats.leaderless_intervals = self.heal.intervals;
        self.stats.leaderless_total_us = self.heal.total_us;
        self.stats.leaderless_max_us = self.heal.max_us;
        self.stats.elections = self.checkers.elections();
        self.stats.commits = self.checkers.agreed().len();
        let recovered_after_us = self.checkers.liveness().recovery_time();
        if let Some(violation) = &self.violation {
            if self.trace.wants_text() {
                self.trace.line(format_args!("# VIOLATION {violation}"));
            }
        }
        if let Some(timeline) = self.timeline.as_deref_mut() {
            if let Some(violation) = &self.violation {
                timeline.violation(violation.time_us, &violation.to_string());
            }
            timeline.finish(self.now);
        }
        Outcome {
            stats: self.stats,
            trace_hash: self.trace.hash(),
            violation: self.violation,
            trace_error: self.trace.finish().err(),
            recovered_after_us,
            timeline: self.timeline.map(|t| *t),
        }
    }

    /// Records the first violation; the run stops after the current step.
    fn fail(&mut self, failure: Failure) {
        if self.violation.is_none() {
            self.violation = Some(Violation::new(failure, self.stats.steps, self.now));
        }
    }

    /// The node index of the up leader with the highest term, if any.
    fn current_leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| Some((index, node.machine.as_ref()?)))
            .filter(|(_, machine)| machine.role() == Role::Leader)
            .max_by_key(|(index, machine)| (machine.term(), std::cmp::Reverse(*index)))
            .map(|(index, _)| index)
    }

    fn liveness_deadline(&mut self) {
        if self.options.disk_faults == crate::faults::DiskFaults::Many {
            // With several nodes repairing at once no leader may be
            // electable: this mode does not check liveness.
            self.ended = true;
            return;
        }
        let leaders: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .filter(|m| m.role() == Role::Leader)
            .map(|m| format!("{} (term {})", m.id(), m.term()))
            .collect();
        let leaders = if leaders.is_empty() {
            "none".to_string()
        } else {
            leaders.join(", ")
        };
        if let Err(failure) = self.checkers.liveness().check(self.now, &leaders) {
            self.fail(failure);
        }
    }

    fn trace_world(&mut self, what: std::fmt::Arguments<'_>) {
        if self.trace.wants_text() {
            let now = Time(self.now);
            self.trace.line(format_args!("{now} {what}"));
        }
        if let Some(timeline) = self.timeline.as_deref_mut() {
            let text = what.to_string();
            timeline.note(self.now, None, text.trim_start_matches("# "));
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The machines' configuration for this run. Window and batch sizes are
/// drawn per seed ("swarm testing"), so that small windows, one-entry
/// batches and long probes all get exercised across seeds.
fn draw_config(options: &SimOptions, rng: &mut SimRng) -> Config {
    const INFLIGHT: [usize; 4] = [1, 2, 4, 8];
    const ENTRIES: [usize; 5] = [1, 2, 4, 16, 256];
    let peers: Vec<NodeId> = (1..=options.nodes as u64).map(NodeId).collect();
    let mut config = Config::new(NodeId(1), peers);
    config.election_timeout_ms = options.election_timeout_ms;
    config.heartbeat_interval_ms = options.heartbeat_interval_ms;
    config.inflight_max = INFLIGHT[rng.index(INFLIGHT.len())];
    config.entries_per_message_max = ENTRIES[rng.index(ENTRIES.len())];
    config.pre_vote = options.pre_vote;
    config.check_quorum = options.check_quorum;
    config.lease_read_margin_ms = options.lease_read_margin_ms;
    config
}
