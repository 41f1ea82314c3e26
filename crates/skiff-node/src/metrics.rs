//! The node's metrics, in a Prometheus registry that the application may
//! add its own families to and that [`crate::metrics_http`] serves.
//!
//! Hot paths stay cheap: every series a message or a request touches is
//! created up front and kept in an array indexed by its kind, so that
//! counting one is an atomic add, with no lookup, lock or allocation.
//! Gauges that mirror the machine (term, commit index, ...) are set once
//! per event-loop turn. Histograms take an uncontended lock per
//! observation, so they are observed per sync and per client request,
//! never per peer message.
//!
//! A node whose configuration says `[metrics] enabled = false` gets
//! [`Metrics::disabled`]: every recording call returns at once and the
//! registry stays empty, which is how the cost of metrics is measured.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use skiff_core::{LogIndex, Message, NodeId, Role, SnapshotMeta, Term};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A counter an application registered ([`Metrics::register_counters`]).
pub use prometheus_client::metrics::counter::Counter;
/// A gauge an application registered ([`Metrics::register_gauge`]).
pub use prometheus_client::metrics::gauge::Gauge;

/// Every metric name starts with this, followed by `_`.
pub const PREFIX: &str = "skiff";

/// One label, `name="value"`, with a value from a fixed vocabulary.
type Label = [(&'static str, &'static str); 1];
/// Two such labels.
type Labels2 = [(&'static str, &'static str); 2];

/// The kinds of peer message, as the `kind` label writes them.
const MESSAGE_KINDS: [&str; 11] = [
    "append_entries_req",
    "append_entries_resp",
    "vote_req",
    "vote_resp",
    "pre_vote_req",
    "pre_vote_resp",
    "install_snapshot_req",
    "install_snapshot_resp",
    "read_index_req",
    "read_index_resp",
    "timeout_now",
];

/// The roles, as the `role` label writes them.
const ROLES: [Role; 4] = [
    Role::Follower,
    Role::PreCandidate,
    Role::Candidate,
    Role::Leader,
];

/// Which way a peer message went, for [`Metrics::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Queued for a peer.
    Sent,
    /// Received from a peer.
    Received,
    /// Dropped because the peer's queue was full.
    Dropped,
}

/// What happened to a snapshot, for [`Metrics::snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotOp {
    /// The applier wrote one of this node's state machine.
    Taken,
    /// A transfer to a follower began.
    Sent,
    /// A leader's snapshot was installed here.
    Installed,
}

impl SnapshotOp {
    fn name(self) -> &'static str {
        match self {
            SnapshotOp::Taken => "taken",
            SnapshotOp::Sent => "sent",
            SnapshotOp::Installed => "installed",
        }
    }
}

/// A node's metrics: cheap to clone, shared by the event loop, the
/// transport and the application.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    node: Option<Arc<NodeMetrics>>,
}

/// The node's own series.
#[derive(Debug)]
struct NodeMetrics {
    roles: [Gauge; 4],
    term: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    last_index: Gauge,
    log_entries: Gauge,
    snapshot_index: Gauge,
    voters: Gauge,
    learners: Gauge,
    follower_lag: Family<[(&'static str, String); 1], Gauge>,
    fsync_seconds: Histogram,
    group_commit_entries: Histogram,
    sent: [Counter; MESSAGE_KINDS.len()],
    received: [Counter; MESSAGE_KINDS.len()],
    dropped: [Counter; MESSAGE_KINDS.len()],
    elections: Family<Label, Counter>,
    leader_changes: Counter,
    step_downs: Family<Label, Counter>,
    storage_faults: Family<Label, Counter>,
    storage_repairs: Counter,
    snapshots: Family<Label, Counter>,
    snapshot_bytes: Family<Label, Counter>,
    peer_connections_open: Gauge,
    peer_connections_refused: Family<Label, Counter>,
}

impl Metrics {
    /// Metrics that count, in a registry of their own.
    pub fn enabled() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let node = NodeMetrics::register(&mut registry);
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            node: Some(Arc::new(node)),
        }
    }

    /// Metrics that count nothing: every call returns at once.
    pub fn disabled() -> Metrics {
        Metrics {
            registry: Arc::new(Mutex::new(Registry::with_prefix(PREFIX))),
            node: None,
        }
    }

    /// Whether these metrics count.
    pub fn is_enabled(&self) -> bool {
        self.node.is_some()
    }

    /// The registry in the Prometheus text format (version 0.0.4 with
    /// OpenMetrics' `# EOF`, which Prometheus accepts).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &registry);
        text
    }

    /// Adds the application's request families: a counter
    /// `<name>_total{command,outcome}` and a latency histogram
    /// `<name>_duration_seconds{command}`, with every series created now
    /// for the fixed vocabularies `commands` and `outcomes`.
    pub fn register_requests(
        &self,
        name: &str,
        help: &str,
        commands: &'static [&'static str],
        outcomes: &'static [&'static str],
    ) -> RequestMetrics {
        if self.node.is_none() {
            return RequestMetrics::default();
        }
        let counts = Family::<Labels2, Counter>::default();
        let latency = Family::<Label, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let mut series = Vec::with_capacity(commands.len() * outcomes.len());
        for command in commands {
            for outcome in outcomes {
                let labels = [("command", *command), ("outcome", *outcome)];
                series.push(counts.get_or_create(&labels).clone());
            }
        }
        let latencies = commands
            .iter()
            .map(|command| latency.get_or_create(&[("command", *command)]).clone())
            .collect();
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry.register(name, help.to_string(), counts);
        registry.register(
            format!("{name}_duration_seconds"),
            format!("{help}: latency"),
            latency,
        );
        RequestMetrics {
            counts: series,
            latencies,
            outcomes: outcomes.len(),
        }
    }

    /// Adds a gauge of the application's (e.g. connections open).
    pub fn register_gauge(&self, name: &str, help: &str) -> Option<Gauge> {
        self.node.as_ref()?;
        let gauge = Gauge::default();
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry.register(name, help.to_string(), gauge.clone());
        Some(gauge)
    }

    /// Adds a counter family of the application's with one label, and
    /// creates its series for `values` now.
    pub fn register_counters(
        &self,
        name: &str,
        help: &str,
        label: &'static str,
        values: &'static [&'static str],
    ) -> Vec<Counter> {
        if self.node.is_none() {
            return Vec::new();
        }
        let family = Family::<Label, Counter>::default();
        let series = (values.iter())
            .map(|value| family.get_or_create(&[(label, *value)]).clone())
            .collect();
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry.register(name, help.to_string(), family);
        series
    }

    /// Counts one peer message of `message`'s kind going `direction`.
    #[inline]
    pub(crate) fn message(&self, direction: Direction, message: &Message) {
        self.messages(direction, MessageKind::of(message));
    }

    /// Counts one peer message of `kind` going `direction`.
    #[inline]
    pub(crate) fn messages(&self, direction: Direction, MessageKind(kind): MessageKind) {
        if let Some(node) = &self.node {
            let counters = match direction {
                Direction::Sent => &node.sent,
                Direction::Received => &node.received,
                Direction::Dropped => &node.dropped,
            };
            counters[kind].inc();
        }
    }

    /// Records one sync: how long it took and how many log entries it
    /// made durable (a group commit).
    pub(crate) fn sync(&self, took: Duration, entries: usize) {
        if let Some(node) = &self.node {
            node.fsync_seconds.observe(took.as_secs_f64());
            if entries > 0 {
                node.group_commit_entries.observe(entries as f64);
            }
        }
    }

    /// Mirrors the machine's state, once per turn.
    pub(crate) fn machine(&self, state: &MachineGauges) {
        let Some(node) = &self.node else { return };
        for (gauge, role) in node.roles.iter().zip(ROLES) {
            gauge.set(i64::from(role == state.role));
        }
        node.term.set(gauge_value(state.term.0));
        node.commit_index.set(gauge_value(state.commit_index.0));
        node.last_index.set(gauge_value(state.last_index.0));
        node.snapshot_index.set(gauge_value(state.snapshot.index.0));
        let entries = state.last_index.0.saturating_sub(state.snapshot.index.0);
        node.log_entries.set(gauge_value(entries));
    }

    /// The leader's view of each follower: how many entries its log lags
    /// behind the leader's last index. Called with `None` when this node
    /// stops leading, which removes the series.
    pub(crate) fn follower_lag(&self, lags: Option<(&[(NodeId, LogIndex)], LogIndex)>) {
        let Some(node) = &self.node else { return };
        match lags {
            Some((matches, last)) => {
                for (peer, matched) in matches {
                    let lag = last.0.saturating_sub(matched.0);
                    let labels = [("peer", peer.to_string())];
                    node.follower_lag
                        .get_or_create(&labels)
                        .set(gauge_value(lag));
                }
            }
            None => node.follower_lag.clear(),
        }
    }

    /// Mirrors the size of the configuration in force.
    pub(crate) fn membership(&self, voters: usize, learners: usize) {
        if let Some(node) = &self.node {
            node.voters.set(gauge_value(voters as u64));
            node.learners.set(gauge_value(learners as u64));
        }
    }

    /// Sets the index the state machine has applied through.
    pub(crate) fn applied(&self, index: LogIndex) {
        if let Some(node) = &self.node {
            node.applied_index.set(gauge_value(index.0));
        }
    }

    /// Counts an election this node started: with PreVote (`pre_vote`) or
    /// for real.
    pub(crate) fn election_started(&self, pre_vote: bool) {
        if let Some(node) = &self.node {
            let kind = if pre_vote { "pre_vote" } else { "vote" };
            node.elections.get_or_create(&[("kind", kind)]).inc();
        }
    }

    /// Counts a new leader this node learned of.
    pub(crate) fn leader_changed(&self) {
        if let Some(node) = &self.node {
            node.leader_changes.inc();
        }
    }

    /// Counts a step-down for `reason` (the core's reason name).
    pub(crate) fn stepped_down(&self, reason: &'static str) {
        if let Some(node) = &self.node {
            node.step_downs.get_or_create(&[("reason", reason)]).inc();
        }
    }

    /// Counts a storage fault of `kind` (`damaged_log`, `stall`,
    /// `snapshot_unverified`).
    pub(crate) fn storage_fault(&self, kind: &'static str) {
        if let Some(node) = &self.node {
            node.storage_faults.get_or_create(&[("kind", kind)]).inc();
        }
    }

    /// Counts a repair of a damaged log begun.
    pub(crate) fn storage_repair(&self) {
        if let Some(node) = &self.node {
            node.storage_repairs.inc();
        }
    }

    /// Counts a snapshot `op` of `bytes`.
    pub(crate) fn snapshot(&self, op: SnapshotOp, bytes: u64) {
        if let Some(node) = &self.node {
            let labels = [("op", op.name())];
            node.snapshots.get_or_create(&labels).inc();
            node.snapshot_bytes.get_or_create(&labels).inc_by(bytes);
        }
    }

    /// A peer connection opened (`+1`) or closed (`-1`).
    pub(crate) fn peer_connections(&self, delta: i64) {
        if let Some(node) = &self.node {
            node.peer_connections_open.inc_by(delta);
        }
    }

    /// Counts a peer connection refused or closed before it was
    /// established, for `reason` (`handshake`, `handshaking_max`).
    pub(crate) fn peer_connection_refused(&self, reason: &'static str) {
        if let Some(node) = &self.node {
            node.peer_connections_refused
                .get_or_create(&[("reason", reason)])
                .inc();
        }
    }
}

/// What [`Metrics::machine`] mirrors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MachineGauges {
    pub role: Role,
    pub term: Term,
    pub commit_index: LogIndex,
    pub last_index: LogIndex,
    pub snapshot: SnapshotMeta,
}

/// An application's request counters and latencies, made by
/// [`Metrics::register_requests`]; empty (and free) when metrics are off.
#[derive(Clone, Debug, Default)]
pub struct RequestMetrics {
    /// By command, then outcome.
    counts: Vec<Counter>,
    /// By command.
    latencies: Vec<Histogram>,
    outcomes: usize,
}

impl RequestMetrics {
    /// Counts one request of `commands[command]` that ended with
    /// `outcomes[outcome]` after `took` (indices into the vocabularies
    /// given at registration; out of range counts nothing).
    pub fn record(&self, command: usize, outcome: usize, took: Duration) {
        if outcome >= self.outcomes {
            return;
        }
        if let Some(counter) = self.counts.get(command * self.outcomes + outcome) {
            counter.inc();
        }
        if let Some(latency) = self.latencies.get(command) {
            latency.observe(took.as_secs_f64());
        }
    }
}

impl NodeMetrics {
    fn register(registry: &mut Registry) -> NodeMetrics {
        let role_family = Family::<Label, Gauge>::default();
        let roles = ROLES.map(|role| {
            role_family
                .get_or_create(&[("role", role_name(role))])
                .clone()
        });
        registry.register(
            "node_role",
            "1 for the node's current role, 0 for the others",
            role_family,
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let family = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Label, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let by_kind = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Label, Counter>::default();
            let series = MESSAGE_KINDS.map(|kind| family.get_or_create(&[("kind", kind)]).clone());
            registry.register(name, help, family);
            series
        };
        let follower_lag = Family::default();
        registry.register(
            "follower_match_lag_entries",
            "On the leader: entries between its last index and each follower's match index",
            follower_lag.clone(),
        );
        let fsync_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register(
            "fsync_duration_seconds",
            "How long each sync of the log took",
            fsync_seconds.clone(),
        );
        let group_commit_entries = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "group_commit_entries",
            "Log entries made durable by one sync",
            group_commit_entries.clone(),
        );
        NodeMetrics {
            roles,
            term: gauge(registry, "term", "The current term"),
            commit_index: gauge(
                registry,
                "commit_index",
                "The highest index known committed",
            ),
            applied_index: gauge(
                registry,
                "applied_index",
                "The last index the state machine applied (the commit index without one)",
            ),
            last_index: gauge(registry, "last_index", "The index of the last log entry"),
            log_entries: gauge(
                registry,
                "log_entries",
                "Entries in the log after the snapshot",
            ),
            snapshot_index: gauge(registry, "snapshot_index", "The index the log starts after"),
            voters: gauge(
                registry,
                "membership_voters",
                "Voters in the configuration in force on this node (its latest)",
            ),
            learners: gauge(
                registry,
                "membership_learners",
                "Learners in the configuration in force on this node (its latest)",
            ),
            follower_lag,
            fsync_seconds,
            group_commit_entries,
            sent: by_kind(
                registry,
                "messages_sent",
                "Peer messages queued for sending, by kind",
            ),
            received: by_kind(
                registry,
                "messages_received",
                "Peer messages received, by kind",
            ),
            dropped: by_kind(
                registry,
                "messages_dropped",
                "Peer messages dropped because the peer's queue was full, by kind",
            ),
            elections: family(
                registry,
                "elections_started",
                "Elections this node started, by kind",
            ),
            leader_changes: counter(
                registry,
                "leader_changes",
                "New leaders this node learned of",
            ),
            step_downs: family(
                registry,
                "step_downs",
                "Times this node stepped down as leader, by reason",
            ),
            storage_faults: family(registry, "storage_faults", "Storage faults found, by kind"),
            storage_repairs: counter(
                registry,
                "storage_repairs",
                "Repairs of a damaged log begun",
            ),
            snapshots: family(registry, "snapshots", "Snapshots taken, sent and installed"),
            snapshot_bytes: family(
                registry,
                "snapshot_bytes",
                "Bytes of the snapshots taken, sent and installed",
            ),
            peer_connections_open: gauge(
                registry,
                "peer_connections_open",
                "Authenticated connections from peers open now",
            ),
            peer_connections_refused: family(
                registry,
                "peer_connections_refused",
                "Peer connections closed before they were established, by reason",
            ),
        }
    }
}

/// The buckets of a client request's latency: 50 µs to about 6.5 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// A counter-sized value as a gauge's `i64`, saturating.
fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The `role` label of `role`.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
        // A role this version does not know by name.
        _ => "other",
    }
}

/// A peer message's kind: its index in [`MESSAGE_KINDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MessageKind(usize);

impl MessageKind {
    /// The kind of `message`.
    pub(crate) fn of(message: &Message) -> MessageKind {
        MessageKind(message_kind(message))
    }
}

/// The index of `message`'s kind in [`MESSAGE_KINDS`].
fn message_kind(message: &Message) -> usize {
    match message {
        Message::AppendEntriesReq(_) => 0,
        Message::AppendEntriesResp(_) => 1,
        Message::VoteReq(_) => 2,
        Message::VoteResp(_) => 3,
        Message::PreVoteReq(_) => 4,
        Message::PreVoteResp(_) => 5,
        Message::InstallSnapshotReq(_) => 6,
        Message::InstallSnapshotResp(_) => 7,
        Message::ReadIndexReq(_) => 8,
        Message::ReadIndexResp(_) => 9,
        Message::TimeoutNow(_) => 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_text_format() {
        let metrics = Metrics::enabled();
        let vote = Message::VoteResp(skiff_core::VoteResp {
            term: Term(1),
            granted: true,
        });
        metrics.message(Direction::Sent, &vote);
        metrics.message(Direction::Sent, &vote);
        metrics.sync(Duration::from_millis(2), 3);
        metrics.stepped_down("QuorumLost");
        metrics.membership(3, 1);
        let requests =
            metrics.register_requests("client_requests", "Requests", &["read"], &["ok", "error"]);
        requests.record(0, 1, Duration::from_millis(1));
        let text = metrics.encode();
        assert!(
            text.contains("skiff_messages_sent_total{kind=\"vote_resp\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("skiff_fsync_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("skiff_group_commit_entries_sum 3.0"),
            "{text}"
        );
        assert!(
            text.contains("skiff_step_downs_total{reason=\"QuorumLost\"} 1"),
            "{text}"
        );
        assert!(text.contains("skiff_membership_voters 3"), "{text}");
        assert!(text.contains("skiff_membership_learners 1"), "{text}");
        assert!(
            text.contains("skiff_client_requests_total{command=\"read\",outcome=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("skiff_client_requests_duration_seconds_count{command=\"read\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn disabled_metrics_register_and_count_nothing() {
        let metrics = Metrics::disabled();
        let vote = Message::VoteResp(skiff_core::VoteResp {
            term: Term(1),
            granted: true,
        });
        metrics.message(Direction::Sent, &vote);
        let requests = metrics.register_requests("client_requests", "Requests", &["read"], &["ok"]);
        requests.record(0, 0, Duration::from_millis(1));
        assert!(!metrics.encode().contains("skiff_"), "{}", metrics.encode());
    }
}
