//! Raft consensus as a pure state machine.
//!
//! `skiff-core` is deterministic: it contains no networking code, no disk
//! access, no threads, no async and no timestamps from the operating system.
//! A [`Machine`] takes [`Event`]s (an append from the layer above, a timeout,
//! a message from a peer) and answers each with a batch of [`Action`]s
//! (messages to send, entries to persist, commits to report, the next alarm).
//! Drivers perform the actions: `skiff-node` with a write-ahead log, TCP and
//! real timers; `skiff-sim` with a simulated disk, network and clock.
//!
//! The only randomness is a generator seeded from [`Config::seed`], so the same
//! events always produce the same actions.
//!
//! # Layout
//!
//! * `types`: the paper's nouns ([`Term`], [`LogIndex`], [`NodeId`], [`Entry`]).
//! * `entries`: [`Entries`], the shared list of entries a request carries.
//! * `event`, `action`, `message`: what goes in and what comes out.
//! * `config`: [`Config`] and its validation.
//! * `membership`: [`Membership`], the voters and learners, and the
//!   single-server [`MembershipChange`]s between configurations.
//! * `machine`: the state machine; `election` and `replication` hold the work
//!   of each event, `progress` a leader's per-follower bookkeeping, `quorum`
//!   the majority arithmetic, `log` the in-memory log.
//! * `render`: the text form of messages and actions used by scenarios and traces.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod action;
mod config;
mod entries;
mod event;
mod log;
mod machine;
mod membership;
mod message;
mod progress;
mod quorum;
pub mod render;
mod rng;
mod types;

pub use action::{Action, CommitError, ReadError, Rejection, StepDownReason, TransferError};
pub use bytes::Bytes;
pub use config::{Config, ConfigError, TERM_LEAD_MAX_DEFAULT};
pub use entries::Entries;
pub use event::Event;
pub use machine::{Machine, StartState, StateError};
pub use membership::{DecodeError, Membership, MembershipChange, MembershipError};
pub use message::{
    AppendEntriesReq, AppendEntriesResp, InstallSnapshotReq, InstallSnapshotResp, Message,
    ReadIndexReq, ReadIndexResp, TimeoutNow, VoteReq, VoteResp,
};
pub use types::{Entry, EntryKind, HardState, LogIndex, NodeId, ReadId, Role, SnapshotMeta, Term};
