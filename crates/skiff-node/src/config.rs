//! The cluster configuration: a TOML file that every node of a cluster
//! shares, validated before anything starts.
//!
//! ```toml
//! cluster_id = 1
//! election_timeout_ms = 300      # optional, default 300
//! heartbeat_interval_ms = 100    # optional, default 100
//! pre_vote = true                # optional, default true
//! check_quorum = true            # optional, default true
//! segment_bytes_max = 8388608    # optional, default 8 MiB
//!
//! [storage]                        # optional
//! stall_timeout_ms = 1000          # a sync outstanding this long is a stalled disk
//!
//! [reads]                          # optional: how linearizable reads are proven
//! follower_reads = true            # followers serve reads by asking the leader
//! lease = false                    # leaders answer from their lease (see below)
//! clock_drift_ms = 30              # the lease's margin for clocks that drift
//!
//! [tls]                            # optional: mutual TLS between peers
//! ca = "certs/ca.pem"              # the cluster's certificate authority
//! cert = "certs/node-{id}.pem"     # {id} is replaced by each node's id
//! key = "certs/node-{id}.key"
//! clients = false                  # also TLS for the file server's clients
//!
//! [limits]                         # optional: every key has a default
//! term_lead_max = 100000
//! sessions_max = 10000             # client sessions of the file server
//! # ... see `LimitsConfig`
//!
//! [metrics]                        # optional
//! enabled = true                   # false: nothing is counted (to measure the cost)
//!
//! [faults]                         # FOR TESTS ONLY: injected failures
//! sync_stall_file = "stall-{id}"   # while this file exists, the node's syncs wait
//!
//! [[nodes]]
//! id = 1
//! peer_address = "127.0.0.1:7101"    # Raft traffic between nodes
//! client_address = "127.0.0.1:7201"  # the application's clients
//! data_dir = "node-1"                # relative to the configuration file
//! metrics_address = "127.0.0.1:9101" # optional: Prometheus text at GET /metrics
//!
//! [[nodes]]
//! id = 2
//! # ...
//!
//! [[nodes]]
//! id = 4
//! learner = true                     # optional, default false: see below
//! # ...
//! ```
//!
//! # Membership
//!
//! The cluster's membership lives in its log and snapshots (see
//! `skiff_core`'s membership changes); `[[nodes]]` is where it starts and
//! a copy an operator keeps up to date. The nodes without `learner = true`
//! are the first voters: a fresh cluster starts with them. A node with
//! `learner = true` is not among them: it starts outside the cluster (a
//! node joining with `skiff node --join`), or is a learner the cluster
//! added, and its entry gives its own settings (addresses, data directory).
//!
//! A node whose data directory holds a configuration refuses to start
//! when `[[nodes]]` disagrees with it (ids, voter or learner, addresses),
//! naming both: `skiff member list` prints the cluster's configuration, to
//! copy here. A node that crashed with one change not yet committed in
//! its log accepts the configuration before that change too.
//!
//! # Leadership health
//!
//! `pre_vote` and `check_quorum` are on unless set to `false` (see
//! `skiff_core::Config`): with PreVote, a node whose election timeout fired
//! first asks whether it could win, without raising its term, so that a
//! node cut off for a while cannot depose a healthy leader when it
//! returns; with CheckQuorum, a leader that has not heard from a majority
//! within an election timeout steps down, so that clients stop waiting on
//! it, and a follower that hears from its leader refuses to vote for
//! anyone else (the lease).
//!
//! `[storage] stall_timeout_ms` is how long a sync may stay outstanding
//! before the disk counts as stalled: the node logs it, its status says
//! so, and it steps down if it leads and stands for no election until the
//! sync returns (`skiff_core::Event::StorageStalled`). The default,
//! [`STALL_TIMEOUT_MS_DEFAULT`], sits well above a slow but working sync.
//!
//! # Reads
//!
//! A linearizable read ([`NodeHandle::read_barrier`](crate::NodeHandle::read_barrier))
//! writes nothing to the log: the leader confirms it still leads with one
//! round of heartbeats, shared by every read that arrived meanwhile (the
//! thesis' ReadIndex, see `skiff_core`'s `read_index` module). With
//! `follower_reads` (the default) a follower asks its leader for that index
//! and serves the read from its own state, so that reads spread over the
//! cluster; with `follower_reads = false` a follower refuses reads with the
//! leader's id.
//!
//! `lease = true` lets a leader whose last round a majority confirmed
//! recently answer at once, without a round (`skiff_core::Config::lease_read_margin_ms`
//! is set to `clock_drift_ms`). The lease assumes that no node's clock runs
//! faster than the leader's by more than `clock_drift_ms` over an election
//! timeout and that a restarted node does not vote within an election
//! timeout; a clock that jumps breaks it, which is why it is off by default.
//! It stands on CheckQuorum, so `lease = true` with `check_quorum = false`
//! is refused, as is a `clock_drift_ms` not below `election_timeout_ms`.
//!
//! # Metrics
//!
//! A node counts its metrics ([`crate::metrics`]) unless `[metrics]
//! enabled = false`; a node with a `metrics_address` (or `skiff node
//! --metrics-address`) serves them there in the Prometheus text format at
//! `GET /metrics`.
//!
//! `[faults]` exists for tests and the test bed only: it injects failures
//! into a real node and must not appear in a production configuration.

use serde::{Deserialize, Serialize};
use skiff_core::NodeId;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The default base election timeout.
pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 300;
/// The default heartbeat interval.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 100;
/// The default size at which a log segment is sealed and a new one begun.
/// Compaction deletes whole segments only, and a segment is created at its
/// full size, so the log on disk is the snapshot policy's
/// ([`SNAPSHOT_BYTES_DEFAULT`]) plus up to about two segments: 8 MiB keeps
/// that well inside a bounded data directory while a segment still takes
/// tens of thousands of entries between rolls.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 8 << 20;

/// The default of [`StorageConfig::stall_timeout_ms`].
///
/// A stalled leader stops heartbeating at once (its event loop waits for
/// the sync), so its followers elect another within the election timeout
/// whatever this limit is; the limit decides when the node *says* its disk
/// stalled, and steps down and stops standing for elections. One second is
/// several times what a slow sync on a busy disk takes, so that a merely
/// slow disk does not make the leader step down again and again, and still
/// short next to an outage.
pub const STALL_TIMEOUT_MS_DEFAULT: u64 = 1000;

/// A whole cluster: its id, its timing and every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Identifies the cluster; peers and files of another cluster are refused.
    pub cluster_id: u64,
    /// Base election timeout; each election alarm is drawn from
    /// `[election_timeout_ms, 2 * election_timeout_ms)`.
    #[serde(default = "election_timeout_ms_default")]
    pub election_timeout_ms: u64,
    /// How often a leader sends heartbeats; must be below the election timeout.
    #[serde(default = "heartbeat_interval_ms_default")]
    pub heartbeat_interval_ms: u64,
    /// PreVote: a node asks whether it could win before it raises its term.
    #[serde(default = "enabled")]
    pub pre_vote: bool,
    /// CheckQuorum: a leader that has not heard from a majority within an
    /// election timeout steps down, and followers keep their leader's lease.
    #[serde(default = "enabled")]
    pub check_quorum: bool,
    /// Size at which a log segment is sealed.
    #[serde(default = "segment_bytes_max_default")]
    pub segment_bytes_max: u64,
    /// Mutual TLS between peers (and optionally for clients); absent means
    /// plain TCP, which the node warns about at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Bounds on what peers and clients may make a node hold.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// When nodes snapshot their application's state and discard the log
    /// it covers, and how snapshots travel between peers.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// How the node judges its disk.
    #[serde(default)]
    pub storage: StorageConfig,
    /// How linearizable reads are proven: follower reads, lease reads.
    #[serde(default)]
    pub reads: ReadsConfig,
    /// Whether nodes count metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Failures injected for tests; absent in production.
    #[serde(default, skip_serializing_if = "FaultsConfig::is_empty")]
    pub faults: FaultsConfig,
    /// Every member, in any order.
    pub nodes: Vec<NodeConfig>,
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id, unique in the cluster and not 0.
    pub id: u64,
    /// Where the node listens for its peers.
    pub peer_address: SocketAddr,
    /// Where the node's application listens for clients.
    pub client_address: SocketAddr,
    /// The node's data directory. A relative path is taken relative to the
    /// configuration file's directory by [`ClusterConfig::load`].
    pub data_dir: PathBuf,
    /// Where the node serves its metrics (Prometheus text at `GET
    /// /metrics`); absent, nobody serves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<SocketAddr>,
    /// Whether the node is a learner, or joining as one, rather than one of
    /// the cluster's first voters (see the module's documentation).
    #[serde(default, skip_serializing_if = "is_false")]
    pub learner: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Whether nodes count metrics (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether metrics are counted at all; off only to measure their cost.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig { enabled: true }
    }
}

/// Where a node finds the cluster's certificate authority and its own
/// certificate and key. In `cert` and `key`, `{id}` stands for the node's
/// id, so that every node can share one configuration file. Relative paths
/// are taken relative to the configuration file by [`ClusterConfig::load`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The PEM certificate of the CA that signed every node's certificate.
    pub ca: PathBuf,
    /// The node's PEM certificate chain; `{id}` is the node's id.
    pub cert: PathBuf,
    /// The node's PEM private key; `{id}` is the node's id.
    pub key: PathBuf,
    /// Whether the file server's clients must use TLS too.
    #[serde(default)]
    pub clients: bool,
}

/// How a node judges its disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// A sync outstanding for this long counts as a stalled disk (see the
    /// module's documentation).
    pub stall_timeout_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            stall_timeout_ms: STALL_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// How linearizable reads are proven (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadsConfig {
    /// Whether a follower serves reads by asking its leader for a read
    /// index; otherwise it refuses them, naming the leader.
    pub follower_reads: bool,
    /// Whether a leader answers reads from its lease, without a round of
    /// heartbeats. Needs `check_quorum`.
    pub lease: bool,
    /// The lease's margin: how much faster than the leader's any node's
    /// clock may run over an election timeout. Used only with `lease`.
    pub clock_drift_ms: u64,
}

/// Default of [`ReadsConfig::clock_drift_ms`]: a tenth of the default
/// election timeout, far above the drift of working clocks over it.
pub const CLOCK_DRIFT_MS_DEFAULT: u64 = ELECTION_TIMEOUT_MS_DEFAULT / 10;

impl Default for ReadsConfig {
    fn default() -> ReadsConfig {
        ReadsConfig {
            follower_reads: true,
            lease: false,
            clock_drift_ms: CLOCK_DRIFT_MS_DEFAULT,
        }
    }
}

impl ReadsConfig {
    /// The core's `lease_read_margin_ms`: the drift margin when leases are on.
    pub fn lease_read_margin_ms(&self) -> Option<u64> {
        self.lease.then_some(self.clock_drift_ms)
    }
}

/// Failures injected into a real node, for tests and the test bed only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// While a file exists at this path, every sync of the node waits (a
    /// stalled disk); `{id}` is replaced by the node's id, and a relative
    /// path is taken relative to the configuration file by
    /// [`ClusterConfig::load`]. Unset, syncs cost nothing extra.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_stall_file: Option<PathBuf>,
}

impl FaultsConfig {
    /// Whether no fault is configured.
    pub fn is_empty(&self) -> bool {
        self.sync_stall_file.is_none()
    }

    /// Node `id`'s stall file, if one is configured.
    pub fn sync_stall_file_of(&self, id: NodeId) -> Option<PathBuf> {
        let path = self.sync_stall_file.as_ref()?;
        Some(PathBuf::from(
            path.to_string_lossy().replace("{id}", &id.to_string()),
        ))
    }
}

/// Bounds on what a peer or client may make a node hold or wait for. Every
/// field has a default; see each `*_DEFAULT` constant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A message whose term is more than this far above the node's own is
    /// refused and logged instead of adopted (a buggy or hostile peer could
    /// otherwise push every term to the maximum for good).
    pub term_lead_max: u64,
    /// How long a peer connection may take to authenticate and say hello.
    pub peer_handshake_timeout_ms: u64,
    /// The largest frame accepted from a peer before its handshake completes.
    pub peer_handshake_frame_bytes_max: u32,
    /// Peer connections that have not yet completed their handshake, at
    /// once; past it, a new connection closes the oldest still handshaking.
    pub peer_handshaking_max: usize,
    /// File-server clients served at once; when full, the longest-idle
    /// connection is closed to make room.
    pub clients_max: usize,
    /// A client connection with no request in progress is closed after this.
    pub client_idle_timeout_ms: u64,
    /// A request begun must be received whole within this.
    pub client_read_timeout_ms: u64,
    /// Bytes held, over all client connections, for requests received in part.
    pub client_pending_bytes_max: usize,
    /// A client session (the file server's `session` extension) unused for
    /// this long, by the log's clock, is forgotten.
    pub session_idle_timeout_ms: u64,
    /// The most client sessions kept; opening one more forgets the one
    /// closest to expiring.
    pub sessions_max: u64,
}

/// When a node snapshots its application's state and discards the log the
/// snapshot covers (the log's size and the restart time then stay bounded
/// however long the cluster runs), and how snapshots travel to followers
/// that need entries a leader no longer holds. Every field has a default;
/// see each `*_DEFAULT` constant.
///
/// Only a node started with a [`StateMachine`](crate::StateMachine) takes
/// snapshots (its applier counts what it applied); a node without
/// one never compacts its log, but still installs a leader's snapshot when
/// it needs entries the leader no longer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// Take a snapshot once this many entries have been applied since the
    /// last one; 0 never snapshots by count.
    pub entries: u64,
    /// Take a snapshot once the entries applied since the last one hold
    /// this many bytes of data; 0 never snapshots by size.
    pub bytes: u64,
    /// The size of one chunk of a snapshot sent to a follower.
    pub chunk_bytes: u32,
}

/// Default of [`SnapshotConfig::entries`].
pub const SNAPSHOT_ENTRIES_DEFAULT: u64 = 50_000;
/// Default of [`SnapshotConfig::bytes`].
pub const SNAPSHOT_BYTES_DEFAULT: u64 = 16 << 20;
/// Default of [`SnapshotConfig::chunk_bytes`].
pub const SNAPSHOT_CHUNK_BYTES_DEFAULT: u32 = 256 << 10;

impl Default for SnapshotConfig {
    fn default() -> SnapshotConfig {
        SnapshotConfig {
            entries: SNAPSHOT_ENTRIES_DEFAULT,
            bytes: SNAPSHOT_BYTES_DEFAULT,
            chunk_bytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
        }
    }
}

/// Default of [`LimitsConfig::term_lead_max`].
pub const TERM_LEAD_MAX_DEFAULT: u64 = 100_000;
/// Default of [`LimitsConfig::peer_handshake_timeout_ms`].
pub const PEER_HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default of [`LimitsConfig::peer_handshake_frame_bytes_max`].
pub const PEER_HANDSHAKE_FRAME_BYTES_MAX_DEFAULT: u32 = 1024;
/// Default of [`LimitsConfig::peer_handshaking_max`].
pub const PEER_HANDSHAKING_MAX_DEFAULT: usize = 16;
/// Default of [`LimitsConfig::clients_max`].
pub const CLIENTS_MAX_DEFAULT: usize = 1024;
/// Default of [`LimitsConfig::client_idle_timeout_ms`].
pub const CLIENT_IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;
/// Default of [`LimitsConfig::client_read_timeout_ms`].
pub const CLIENT_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default of [`LimitsConfig::client_pending_bytes_max`].
pub const CLIENT_PENDING_BYTES_MAX_DEFAULT: usize = 64 << 20;
/// Default of [`LimitsConfig::session_idle_timeout_ms`]: an hour.
pub const SESSION_IDLE_TIMEOUT_MS_DEFAULT: u64 = 60 * 60 * 1000;
/// Default of [`LimitsConfig::sessions_max`]: each session costs the store
/// about a hundred bytes.
pub const SESSIONS_MAX_DEFAULT: u64 = 10_000;

impl LimitsConfig {
    /// Refuses a zero bound, which would refuse everything.
    fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            ("term_lead_max", self.term_lead_max == 0),
            (
                "peer_handshake_timeout_ms",
                self.peer_handshake_timeout_ms == 0,
            ),
            (
                "peer_handshake_frame_bytes_max",
                self.peer_handshake_frame_bytes_max == 0,
            ),
            ("peer_handshaking_max", self.peer_handshaking_max == 0),
            ("clients_max", self.clients_max == 0),
            ("client_idle_timeout_ms", self.client_idle_timeout_ms == 0),
            ("client_read_timeout_ms", self.client_read_timeout_ms == 0),
            (
                "client_pending_bytes_max",
                self.client_pending_bytes_max == 0,
            ),
            ("session_idle_timeout_ms", self.session_idle_timeout_ms == 0),
            ("sessions_max", self.sessions_max == 0),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((key, _)) => Err(ConfigError::Invalid(format!(
                "limits.{key} must be above 0"
            ))),
            None => Ok(()),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            term_lead_max: TERM_LEAD_MAX_DEFAULT,
            peer_handshake_timeout_ms: PEER_HANDSHAKE_TIMEOUT_MS_DEFAULT,
            peer_handshake_frame_bytes_max: PEER_HANDSHAKE_FRAME_BYTES_MAX_DEFAULT,
            peer_handshaking_max: PEER_HANDSHAKING_MAX_DEFAULT,
            clients_max: CLIENTS_MAX_DEFAULT,
            client_idle_timeout_ms: CLIENT_IDLE_TIMEOUT_MS_DEFAULT,
            client_read_timeout_ms: CLIENT_READ_TIMEOUT_MS_DEFAULT,
            client_pending_bytes_max: CLIENT_PENDING_BYTES_MAX_DEFAULT,
            session_idle_timeout_ms: SESSION_IDLE_TIMEOUT_MS_DEFAULT,
            sessions_max: SESSIONS_MAX_DEFAULT,
        }
    }
}

fn enabled() -> bool {
    true
}
fn election_timeout_ms_default() -> u64 {
    ELECTION_TIMEOUT_MS_DEFAULT
}
fn heartbeat_interval_ms_default() -> u64 {
    HEARTBEAT_INTERVAL_MS_DEFAULT
}
fn segment_bytes_max_default() -> u64 {
    SEGMENT_BYTES_MAX_DEFAULT
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written; what the system said is the
    /// source, not repeated here.
    #[error("{path}")]
    Io {
        /// The configuration file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a cluster configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The configuration parses but makes no sense.
    #[error("invalid cluster configuration: {0}")]
    Invalid(String),
    /// The `[tls]` files cannot be read or used; the error names the file.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The requested node is not in the configuration.
    #[error("node {id} is not in the cluster configuration (nodes: {known})")]
    UnknownNode {
        /// The requested id.
        id: u64,
        /// The configured ids.
        known: String,
    },
}

impl ClusterConfig {
    /// A cluster of `count` nodes with ids `1..=count` on 127.0.0.1: node `i`
    /// takes peer port `base_port + 2(i-1)` and client port one above it,
    /// and data directory `base_dir/node-i`.
    pub fn local(count: u64, base_dir: &Path, base_port: u16) -> ClusterConfig {
        let address = |offset: u64| {
            let port = u64::from(base_port) + offset;
            let port = u16::try_from(port).expect("base_port leaves room for every node's ports");
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        };
        let nodes = (1..=count)
            .map(|id| NodeConfig {
                id,
                peer_address: address(2 * (id - 1)),
                client_address: address(2 * (id - 1) + 1),
                data_dir: base_dir.join(format!("node-{id}")),
                metrics_address: None,
                learner: false,
            })
            .collect();
        ClusterConfig {
            cluster_id: 1,
            election_timeout_ms: ELECTION_TIMEOUT_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            pre_vote: true,
            check_quorum: true,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            tls: None,
            limits: LimitsConfig::default(),
            snapshot: SnapshotConfig::default(),
            storage: StorageConfig::default(),
            reads: ReadsConfig::default(),
            metrics: MetricsConfig::default(),
            faults: FaultsConfig::default(),
            nodes,
        }
    }

    /// Reads and validates a configuration file. Relative data directories
    /// and `[tls]` paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = ClusterConfig::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for node in &mut config.nodes {
            if node.data_dir.is_relative() {
                node.data_dir = base.join(&node.data_dir);
            }
        }
        if let Some(path) = &mut config.faults.sync_stall_file {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        if let Some(tls) = &mut config.tls {
            for path in [&mut tls.ca, &mut tls.cert, &mut tls.key] {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text, without validation or path resolution.
    pub fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a cluster configuration always serializes")
    }

    /// Writes the configuration to `path` as TOML.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        std::fs::write(path, self.to_toml()).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The configuration of node `id`.
    pub fn node(&self, id: NodeId) -> Result<&NodeConfig, ConfigError> {
        self.nodes
            .iter()
            .find(|n| n.id == id.0)
            .ok_or_else(|| ConfigError::UnknownNode {
                id: id.0,
                known: self
                    .ids()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            })
    }

    /// Every node id, in configuration order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.iter().map(|n| NodeId(n.id))
    }

    /// The ids of the nodes that are not learners: the cluster's first
    /// voters, in configuration order.
    pub fn voter_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .iter()
            .filter(|n| !n.learner)
            .map(|n| NodeId(n.id))
    }

    /// Checks the configuration, naming the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if self.nodes.is_empty() {
            return invalid("no nodes: list every member under [[nodes]]".into());
        }
        if self.voter_ids().next().is_none() {
            return invalid(
                "every node is a learner: the cluster needs at least one voter (learner = false)"
                    .into(),
            );
        }
        if self.election_timeout_ms == 0 || self.heartbeat_interval_ms == 0 {
            return invalid("election_timeout_ms and heartbeat_interval_ms must be above 0".into());
        }
        if self.heartbeat_interval_ms >= self.election_timeout_ms {
            return invalid(format!(
                "heartbeat_interval_ms ({}) must be below election_timeout_ms ({}), \
                 or followers start elections under a healthy leader",
                self.heartbeat_interval_ms, self.election_timeout_ms
            ));
        }
        if self.election_timeout_ms > 3_600_000 {
            return invalid(format!(
                "election_timeout_ms ({}) is over an hour",
                self.election_timeout_ms
            ));
        }
        if self.segment_bytes_max < 4096 {
            return invalid(format!(
                "segment_bytes_max ({}) must be at least 4096",
                self.segment_bytes_max
            ));
        }
        if self.storage.stall_timeout_ms == 0 {
            return invalid(
                "storage.stall_timeout_ms must be above 0, or every sync counts as stalled".into(),
            );
        }
        if self.storage.stall_timeout_ms > 3_600_000 {
            return invalid(format!(
                "storage.stall_timeout_ms ({}) is over an hour",
                self.storage.stall_timeout_ms
            ));
        }
        self.validate_reads()?;
        self.limits.validate()?;
        self.validate_nodes()
    }

    /// Refuses a lease that nothing upholds or that has no time left.
    fn validate_reads(&self) -> Result<(), ConfigError> {
        if !self.reads.lease {
            return Ok(());
        }
        if !self.check_quorum {
            return Err(ConfigError::Invalid(
                "reads.lease = true needs check_quorum = true: the lease stands on followers \
                 refusing votes while they hear their leader, which only CheckQuorum does"
                    .into(),
            ));
        }
        if self.reads.clock_drift_ms >= self.election_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "reads.clock_drift_ms ({}) must be below election_timeout_ms ({}): \
                 the lease lasts the election timeout minus the drift",
                self.reads.clock_drift_ms, self.election_timeout_ms
            )));
        }
        Ok(())
    }

    fn validate_nodes(&self) -> Result<(), ConfigError> {
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        let mut dirs = HashSet::new();
        for node in &self.nodes {
            let problem = if node.id == 0 {
                Some("node id 0 is reserved; number nodes from 1".to_string())
            } else if !ids.insert(node.id) {
                Some(format!("node id {} appears twice", node.id))
            } else if let Some(address) = [node.peer_address, node.client_address]
                .into_iter()
                .find(|a| !addresses.insert(*a))
            {
                Some(format!(
                    "address {address} (node {}) is used twice",
                    node.id
                ))
            } else if !dirs.insert(node.data_dir.clone()) {
                Some(format!(
                    "data_dir {} (node {}) is used twice",
                    node.data_dir.display(),
                    node.id
                ))
            } else {
                missing_parent(&node.data_dir).map(|parent| {
                    format!(
                        "data_dir {} of node {}: its parent directory {} does not exist",
                        node.data_dir.display(),
                        node.id,
                        parent.display()
                    )
                })
            };
            if let Some(message) = problem {
                return Err(ConfigError::Invalid(message));
            }
        }
        Ok(())
    }
}

/// The parent of `dir` when it is named and does not exist. A data
/// directory itself is created on first start; its parent must be there,
/// so that a typo in a path is caught instead of silently creating a tree.
fn missing_parent(dir: &Path) -> Option<&Path> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty())?;
    (!parent.is_dir()).then_some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_configuration_is_valid_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClusterConfig::local(3, dir.path(), 7100);
        config.validate().unwrap();
        assert_eq!(config.nodes[2].peer_address.to_string(), "127.0.0.1:7104");
        assert_eq!(config.nodes[2].client_address.to_string(), "127.0.0.1:7105");
        let path = dir.path().join("cluster.toml");
        config.save(&path).unwrap();
        assert_eq!(ClusterConfig::load(&path).unwrap(), config);
    }

    #[test]
    fn learners_are_marked_and_not_among_the_first_voters_and_old_files_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "cluster_id = 4\n{ONE_NODE}\n[[nodes]]\nid = 4\nlearner = true\n\
             peer_address = \"127.0.0.1:9003\"\nclient_address = \"127.0.0.1:9004\"\n\
             data_dir = \"n4\"\n"
        );
        let config = load_text(dir.path(), &text);
        assert!(!config.nodes[0].learner, "absent means a voter");
        assert!(config.nodes[1].learner);
        assert_eq!(config.voter_ids().collect::<Vec<_>>(), [NodeId(3)]);
        let saved = dir.path().join("saved.toml");
        config.save(&saved).unwrap();
        let saved_text = std::fs::read_to_string(&saved).unwrap();
        assert_eq!(saved_text.matches("learner").count(), 1, "{saved_text}");
        assert_eq!(ClusterConfig::load(&saved).unwrap(), config);
        let mut all_learners = config;
        all_learners.nodes[0].learner = true;
        let error = all_learners.validate().unwrap_err().to_string();
        assert!(error.contains("at least one voter"), "{error}");
    }

    /// `text` written to `dir/c.toml` and loaded from there.
    fn load_text(dir: &Path, text: &str) -> ClusterConfig {
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        ClusterConfig::load(&path).unwrap()
    }

    #[test]
    fn defaults_fill_in_and_relative_dirs_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"
            cluster_id = 4
            [[nodes]]
            id = 1
            peer_address = "127.0.0.1:9001"
            client_address = "127.0.0.1:9002"
            data_dir = "n1"
        "#;
        let config = load_text(dir.path(), text);
        assert_eq!(config.election_timeout_ms, ELECTION_TIMEOUT_MS_DEFAULT);
        assert_eq!(config.nodes[0].data_dir, dir.path().join("n1"));
        assert_eq!(config.tls, None);
        assert!(config.pre_vote && config.check_quorum, "both on by default");
        assert_eq!(config.storage.stall_timeout_ms, STALL_TIMEOUT_MS_DEFAULT);
        assert!(config.faults.is_empty());
    }

    const ONE_NODE: &str = r#"
        [[nodes]]
        id = 3
        peer_address = "127.0.0.1:9001"
        client_address = "127.0.0.1:9002"
        data_dir = "n3"
    "#;

    #[test]
    fn leadership_and_stall_keys_are_read_and_the_stall_file_is_per_node() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "cluster_id = 4\npre_vote = false\ncheck_quorum = false\n\
             [storage]\nstall_timeout_ms = 250\n\
             [faults]\nsync_stall_file = \"stall-{{id}}\"\n{ONE_NODE}"
        );
        let config = load_text(dir.path(), &text);
        assert!(!config.pre_vote && !config.check_quorum);
        assert_eq!(config.storage.stall_timeout_ms, 250);
        assert_eq!(
            config.faults.sync_stall_file_of(NodeId(3)),
            Some(dir.path().join("stall-3"))
        );
        let saved = dir.path().join("saved.toml");
        config.save(&saved).unwrap();
        assert_eq!(ClusterConfig::load(&saved).unwrap(), config);
    }

    #[test]
    fn invalid_leadership_and_stall_values_are_named() {
        let parse = |text: &str| {
            ClusterConfig::parse(&format!("cluster_id = 4\n{text}\n{ONE_NODE}"))
                .unwrap_err()
                .to_string()
        };
        let err = parse("pre_vote = \"yes\"");
        assert!(err.contains("pre_vote") && err.contains("bool"), "{err}");
        let err = parse("check_quorum = 1");
        assert!(
            err.contains("check_quorum") && err.contains("bool"),
            "{err}"
        );
        let err = parse("[storage]\nstall_timeout = 5");
        assert!(err.contains("stall_timeout"), "{err}");
        let err = parse("[faults]\nsync_stall = \"x\"");
        assert!(err.contains("sync_stall"), "{err}");
        assert!(problem(|c| c.storage.stall_timeout_ms = 0)
            .contains("storage.stall_timeout_ms must be above 0"));
    }

    #[test]
    fn relative_tls_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"
            cluster_id = 4
            [tls]
            ca = "certs/ca.pem"
            cert = "certs/node-{id}.pem"
            key = "/abs/node-{id}.key"
            [[nodes]]
            id = 1
            peer_address = "127.0.0.1:9001"
            client_address = "127.0.0.1:9002"
            data_dir = "n1"
        "#;
        let tls = load_text(dir.path(), text).tls.unwrap();
        assert_eq!(tls.ca, dir.path().join("certs/ca.pem"));
        assert_eq!(tls.cert, dir.path().join("certs/node-{id}.pem"));
        assert_eq!(tls.key, PathBuf::from("/abs/node-{id}.key"));
    }

    fn problem(change: impl FnOnce(&mut ClusterConfig)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ClusterConfig::local(3, dir.path(), 7100);
        change(&mut config);
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn each_problem_is_named() {
        assert!(problem(|c| c.nodes[1].id = 1).contains("node id 1 appears twice"));
        assert!(problem(|c| c.nodes[1].id = 0).contains("node id 0 is reserved"));
        assert!(
            problem(|c| c.nodes[2].client_address = c.nodes[0].peer_address)
                .contains("address 127.0.0.1:7100 (node 3) is used twice")
        );
        assert!(
            problem(|c| c.nodes[1].data_dir = c.nodes[0].data_dir.clone()).contains("used twice")
        );
        assert!(problem(|c| c.heartbeat_interval_ms = 300)
            .contains("must be below election_timeout_ms"));
        assert!(
            problem(|c| c.nodes[0].data_dir = "/nonexistent/x/node-1".into())
                .contains("parent directory /nonexistent/x does not exist")
        );
        assert!(problem(|c| c.nodes.clear()).contains("no nodes"));
        assert!(problem(|c| c.election_timeout_ms = 0).contains("above 0"));
        assert!(
            problem(|c| c.limits.clients_max = 0).contains("limits.clients_max must be above 0")
        );
        assert!(
            problem(|c| c.limits.sessions_max = 0).contains("limits.sessions_max must be above 0")
        );
        assert!(problem(|c| c.limits.session_idle_timeout_ms = 0)
            .contains("limits.session_idle_timeout_ms must be above 0"));
        let lease_without_check_quorum = problem(|c| {
            c.reads.lease = true;
            c.check_quorum = false;
        });
        assert!(
            lease_without_check_quorum.contains("reads.lease = true needs check_quorum = true"),
            "{lease_without_check_quorum}"
        );
        assert!(problem(|c| {
            c.reads.lease = true;
            c.reads.clock_drift_ms = c.election_timeout_ms;
        })
        .contains("reads.clock_drift_ms (300) must be below election_timeout_ms (300)"));
    }

    #[test]
    fn reads_default_to_follower_reads_without_a_lease() {
        let config = ClusterConfig::parse("cluster_id = 1\nnodes = []").unwrap();
        assert_eq!(config.reads, ReadsConfig::default());
        assert!(config.reads.follower_reads);
        assert_eq!(config.reads.lease_read_margin_ms(), None);
        let text = "cluster_id = 1\nnodes = []\n[reads]\nlease = true\nclock_drift_ms = 20\n\
                    follower_reads = false";
        let config = ClusterConfig::parse(text).unwrap();
        assert!(!config.reads.follower_reads);
        assert_eq!(config.reads.lease_read_margin_ms(), Some(20));
        // The drift alone does not turn the lease on.
        let config =
            ClusterConfig::parse("cluster_id = 1\nnodes = []\n[reads]\nclock_drift_ms = 20")
                .unwrap();
        assert_eq!(config.reads.lease_read_margin_ms(), None);
    }

    #[test]
    fn parse_errors_and_unknown_nodes_say_where() {
        let err = ClusterConfig::parse("cluster_id = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        let err = ClusterConfig::parse("cluster_id = 1\nnodes = []\nbogus = 2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let config = ClusterConfig::local(2, dir.path(), 7100);
        let err = config.node(NodeId(5)).unwrap_err().to_string();
        assert_eq!(
            err,
            "node 5 is not in the cluster configuration (nodes: 1,2)"
        );
    }
}
