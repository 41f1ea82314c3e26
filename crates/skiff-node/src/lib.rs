//! A Raft node: `skiff-core`'s state machine driven for real, with a
//! durable write-ahead log, TCP between peers and real timers.
//!
//! `skiff-core` decides; this crate does. A [`Node`] owns one
//! [`Machine`](skiff_core::Machine) in an event loop that feeds it peer
//! messages, client submissions and alarms, and performs the actions it
//! answers with: persistence first and synced once per turn, then sends
//! and commits (a leader's replication requests alone go out before the
//! sync; `event_loop` says why that is safe).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use skiff_node::{ClusterConfig, LogIndex, Node, NodeId};
//!
//! let config = ClusterConfig::load("cluster.toml".as_ref())?;
//! let node = Node::start(&config, NodeId(1)).await?;
//! let handle = node.handle();
//! let mut committed = handle.subscribe(LogIndex(1)).await?;
//! tokio::spawn(async move {
//!     while let Some(entry) = committed.next().await {
//!         // apply entry.data to the application's state, skipping empty entries
//!     }
//! });
//! match handle.submit("hello").await {
//!     Ok(index) => println!("committed at {index}"),
//!     Err(e) => println!("not committed: {e}"), // e.g. NotLeader { leader }
//! }
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! An application whose state must survive the log being compacted
//! implements [`StateMachine`] and starts the node with
//! [`Node::start_with_state_machine`]: the node then applies the log to it,
//! snapshots it by the `[snapshot]` policy, and restores it at restart or
//! from a leader's snapshot. A plain [`Subscription`] ends when a snapshot
//! covers the entry it needs next.
//!
//! The example `skiff-register` (`examples/skiff-register.rs`, run with
//! `cargo run -p skiff-node --example skiff-register -- --help`) is a
//! complete application built this way, small enough to copy, reads
//! included: they wait for [`NodeHandle::read_barrier`].
//!
//! # Layout
//!
//! * `config`: the cluster's TOML file and its validation.
//! * [`local`]: a loopback cluster whose listeners are bound up front, for
//!   tests and benchmarks.
//! * [`storage`]: the data directory: write-ahead log segments, framed
//!   records, the manifest, the two hard-state copies, snapshot files (the
//!   newest and one older; the log is compacted after them), the directory lock,
//!   crash recovery that tells a torn tail from damage, and the repair of
//!   a damaged directory (damaged files moved aside, the intact prefix
//!   rewritten, a durable repair flag). Public for tools
//!   that open or check a stopped node's directory ([`storage::check`],
//!   `skiff check`); the record format stays private.
//! * [`tls`]: mutual TLS between peers, which field of a certificate
//!   names a node, and development certificates.
//! * `transport`: peer connections over TCP (or TLS); its [`wire`] format is public,
//!   for tools and tests that speak to a node as a peer would.
//! * `event_loop`: the task that owns the machine and performs its actions,
//!   on a thread it shares only with the transport's tasks.
//! * `node`: starting, using and stopping a node ([`Node`], [`NodeHandle`]).
//! * `address_book`: every member's addresses, kept in the context of
//!   the configuration they belong to ([`AddressBook`]).
//! * `api`: the types users see (errors, [`Status`], [`CommittedEntry`]).
//! * `state_machine`: what an application implements so that the node can
//!   apply the log to it, snapshot it and restore it ([`StateMachine`]).
//! * [`metrics`]: the node's Prometheus registry and series;
//!   [`metrics_http`]: the `GET /metrics` responder that serves them.
//! * `leadership`: notices leader changes and elections each turn, says
//!   why, and logs them as alertable events.
//! * `applier`: the thread that runs a [`StateMachine`]: applies, restores,
//!   takes snapshots by the `[snapshot]` policy.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod address_book;
mod api;
mod applier;
pub mod config;
mod event_loop;
mod leadership;
pub mod local;
pub mod metrics;
pub mod metrics_http;
mod node;
mod stall;
mod state_machine;
pub mod storage;
pub mod tls;
mod transport;

pub use address_book::{AddressBook, AddressBookError};
pub use api::{
    ChangeMembershipError, CommittedEntry, LeaderChange, MemberAddresses, MembershipView,
    NodeError, SnapshotError, StartError, Status, SubmitError, TransferLeaderError,
    ENTRY_BYTES_MAX,
};
pub use config::{
    ClusterConfig, ConfigError, FaultsConfig, LimitsConfig, MetricsConfig, NodeConfig, ReadsConfig,
    SnapshotConfig, StorageConfig, TlsConfig,
};
pub use node::{Node, NodeHandle, Subscription, TASKS_GRACE};
pub use skiff_core::{
    LogIndex, MembershipChange, MembershipError, NodeId, Role, SnapshotMeta, Term,
};
pub use state_machine::{SnapshotWriter, StateMachine};
pub use storage::StorageError;
pub use transport::wire;
